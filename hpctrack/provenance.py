"""What produced a run: code version, environment, machine and scheduler, captured at run start.

:func:`capture` never raises and never takes long: each probe (git, nvidia-smi) has a
short timeout, and whatever could not be captured is named under ``not_captured`` with
the reason. Inside :func:`shared_capture` (a packed array task running its runs one
after the other), what is the same for every run of the process (packages, python,
machine, GPUs, the git state of a folder) is read once and shared by the runs; what
belongs to one run (command, cwd, script, environment, SLURM variables) is read per run. Secrets are never recorded: environment variables come from an allowlist
(SLURM's included), variables whose name looks like a secret (:func:`hpctrack.secrets.is_secret_key`)
are dropped even when allowed, secret values in command lines and in the git diff are masked,
and remote URLs keep only scheme, host and path.
"""

from __future__ import annotations

import os
import platform
import re
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from typing import Any, Dict, Iterator, List, Optional, Tuple

__all__ = [
    "capture",
    "shared_capture",
    "shared_facts",
    "host_info",
    "git_info",
    "DIFF_CAP_BYTES",
    "ENV_ALLOWLIST",
    "redact_url",
]

#: The recorded diff of tracked files is cut at this size (the cut is recorded).
DIFF_CAP_BYTES = 256 * 1024
#: Untracked files listed at most.
UNTRACKED_CAP = 200
#: Environment variables recorded (exact names, or prefixes ending in ``*``).
ENV_ALLOWLIST = (
    "CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "PYTHONPATH", "PYTHONHASHSEED",
    "VIRTUAL_ENV", "CONDA_DEFAULT_ENV", "CONDA_PREFIX", "HOSTNAME", "USER", "LANG", "TZ",
    "SLURM_*", "SUBMITIT_*", "HPCTRACK_*", "NCCL_*", "TORCH_*", "CUBLAS_WORKSPACE_CONFIG",
)  # fmt: skip
_PROBE_TIMEOUT_S = 2.0


_HOST = re.compile(r"^[A-Za-z0-9.\-\[\]]+(:\d*)?$")
_HOST_START = re.compile(r"^[A-Za-z0-9.\-\[\]]+(:\d*)?(/|$)")


def redact_url(url: str) -> str:
    """A remote URL reduced to scheme, host (and port) and path: no user, password, query or fragment.

    ``https://user:to/ken@host:8443/x.git?private_token=t#f`` -> ``https://host:8443/x.git``;
    ``git@host:org/x.git`` -> ``host:org/x.git``. A password holding ``/`` or ``@`` is removed
    whole: the credentials end at the last ``@`` that a host follows.
    """
    url = url.strip()
    scheme, sep, rest = url.partition("://")
    if not sep or not re.match(r"^\w[\w+.-]*$", scheme):
        scheme, sep, rest = "", "", url  # scp-like (user@host:path) or a local path
    rest = re.split(r"[?#]", rest, maxsplit=1)[0]
    first = rest.split("/", 1)[0]
    if "@" in rest and ("@" in first or not _HOST.match(first) or not sep):
        cuts = [i for i, c in enumerate(rest) if c == "@" and (not sep or _HOST_START.match(rest[i + 1 :]))]
        # Without an @ that a host follows, the end of the credentials cannot be told: cut at the last @.
        rest = rest[cuts[-1] + 1 :] if cuts else rest.rsplit("@", 1)[1]
    return f"{scheme}{sep}{rest}"


def _run(cmd: List[str], cwd: Optional[str] = None, max_bytes: Optional[int] = None) -> Tuple[int, str]:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, timeout=_PROBE_TIMEOUT_S)
    out = proc.stdout if max_bytes is None else proc.stdout[: max_bytes + 1]
    return proc.returncode, out.decode("utf-8", errors="replace")


def git_info(path: Optional[str]) -> Dict[str, Any]:
    """Commit, branch, remote (no credentials), dirty flag, diff of tracked files, untracked files.

    ``{"available": False, "reason": ...}`` without git or outside a repository.
    """
    from .secrets import mask_diff

    folder = os.path.dirname(os.path.abspath(path)) if path and os.path.isfile(path) else (path or os.getcwd())
    try:
        code, root = _run(["git", "rev-parse", "--show-toplevel"], cwd=folder)
    except FileNotFoundError:
        return {"available": False, "reason": "no git: the git command was not found"}
    except (OSError, subprocess.TimeoutExpired) as err:
        return {"available": False, "reason": f"git failed: {err}"}
    if code != 0:
        return {"available": False, "reason": f"not in a git repository: {folder}"}
    root = root.strip()
    info: Dict[str, Any] = {"available": True, "root": root}
    try:
        info["commit"] = _run(["git", "rev-parse", "HEAD"], cwd=root)[1].strip() or None
        branch = _run(["git", "rev-parse", "--abbrev-ref", "HEAD"], cwd=root)[1].strip()
        info["branch"] = None if branch == "HEAD" else branch
        remote = _run(["git", "config", "--get", "remote.origin.url"], cwd=root)[1].strip()
        info["remote"] = redact_url(remote) if remote else None
        _, diff = _run(["git", "diff", "HEAD", "--no-color", "--no-ext-diff"], cwd=root, max_bytes=DIFF_CAP_BYTES)
        info["dirty"] = bool(diff)
        info["diff_truncated"] = len(diff.encode()) > DIFF_CAP_BYTES
        # Values assigned to secret-looking keys are masked: the diff is recorded, the secret is not.
        info["diff"], masked = mask_diff(diff.encode()[:DIFF_CAP_BYTES].decode("utf-8", errors="ignore"))
        if masked:
            info["diff_masked_lines"] = masked
        info["diff_cap_bytes"] = DIFF_CAP_BYTES
        _, untracked = _run(["git", "ls-files", "--others", "--exclude-standard"], cwd=root)
        files = [f for f in untracked.splitlines() if f]
        info["untracked"] = files[:UNTRACKED_CAP]
        info["untracked_count"] = len(files)
        if files:
            info["dirty"] = True
    except (OSError, subprocess.TimeoutExpired) as err:
        info["error"] = f"git failed part-way: {err}"
    if info.get("diff"):
        import hashlib

        info["diff_sha256"] = hashlib.sha256(info["diff"].encode()).hexdigest()
    return info


def _name_version(text: str) -> Tuple[Optional[str], Optional[str]]:
    """``Name`` and ``Version`` from a core-metadata header; the body (the long description) is not read."""
    name = version = None
    for line in text.splitlines():
        if not line:  # the headers end at the first empty line
            break
        key, sep, value = line.partition(":")
        if sep:
            key = key.strip().lower()
            if key == "name" and name is None:
                name = value.strip()
            elif key == "version" and version is None:
                version = value.strip()
        if name is not None and version is not None:
            break
    return name, version


def _packages() -> List[str]:
    from importlib import metadata

    seen = {}
    for dist in metadata.distributions():
        # Only the two header lines: parsing the whole file as an email message (dist.metadata) costs
        # ~1 ms per distribution, most of a run's start.
        name, version = _name_version(dist.read_text("METADATA") or dist.read_text("PKG-INFO") or "")
        if name and name.lower() not in seen:
            seen[name.lower()] = f"{name}=={version}"
    return sorted(seen.values(), key=str.lower)


def _gpus() -> Optional[List[Dict[str, str]]]:
    import shutil

    if shutil.which("nvidia-smi") is None:
        return None
    code, out = _run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"])
    if code != 0:
        raise OSError(f"nvidia-smi exit code {code}")
    gpus = []
    for line in out.splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) >= 2:
            gpus.append({"name": parts[0], "driver": parts[1], "memory": parts[2] if len(parts) > 2 else ""})
    return gpus


def _kept(name: str, value: str) -> Optional[str]:
    """An environment variable's value as recorded: None for a secret-looking name; command lines masked."""
    from .secrets import is_secret_key, mask_json_argv, mask_text

    if is_secret_key(name):
        return None
    return mask_json_argv(value) if name == "HPCTRACK_COMMAND" else mask_text(value)


def _environment() -> Dict[str, str]:
    out = {}
    for name, value in os.environ.items():
        if any(name == a or (a.endswith("*") and name.startswith(a[:-1])) for a in ENV_ALLOWLIST):
            kept = _kept(name, value)
            if kept is not None:
                out[name] = kept
    return dict(sorted(out.items()))


def _slurm() -> Optional[Dict[str, str]]:
    out = {k: _kept(k, v) for k, v in os.environ.items() if k.startswith("SLURM_")}
    return {k: v for k, v in out.items() if v is not None} or None


#: The scheduler's job id variables a run's ``info`` keeps under ``job_env``.
JOB_ENV_IDS = ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SUBMITIT_LOCAL_JOB_ID")


def host_info() -> Dict[str, Any]:
    """Where this process runs, for the top level of a run's ``info``: host, pid, python, argv, cwd, job ids.

    Cheap (no probe), unlike :func:`capture`; ``argv`` has its secret values masked.
    """
    from . import __version__
    from .secrets import mask_argv

    env_ids = {key: os.environ[key] for key in JOB_ENV_IDS if key in os.environ}
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "python": platform.python_version(),
        "argv": mask_argv(sys.argv),
        "cwd": os.getcwd(),
        "hpctrack_version": __version__,
        **({"job_env": env_ids} if env_ids else {}),
    }


#: What a :func:`shared_capture` block has read once for its runs (None outside one).
_shared: Optional[Dict[str, Any]] = None


@contextmanager
def shared_capture(facts: Optional[Dict[str, Any]] = None) -> Iterator[None]:
    """Inside the block, the runs this process starts share one read of what is the same for all of them.

    For a task that runs many runs one after the other in one process (``runs_per_task``): the
    installed packages, python, platform, hostname, CPU count, GPUs and the git state of each
    folder are read by the first run's :func:`capture` and recorded as they are by every run;
    ``shared`` in each run's provenance says when they were read and how many runs used them.
    Outside a block, every capture reads everything.

    Parameters
    ----------
    facts:
        What :func:`shared_facts` read in the task that started this process (its runs side by
        side, each in a process of its own), used instead of reading them again; None: read here.
    """
    global _shared
    outer, _shared = _shared, {"values": facts, "git": {}, "runs": 0}
    try:
        yield
    finally:
        _shared = outer


def _probe_into(into: Dict[str, Any], why: Dict[str, str], name: str, fn: Any) -> None:
    try:
        value = fn()
    except Exception as err:  # recorded, never fatal: provenance must not fail a job
        why[name] = f"{type(err).__name__}: {err}"
        return
    if value is not None:
        into[name] = value


def shared_facts() -> Dict[str, Any]:
    """What is the same for every run of this process (JSON): the values and, under ``not_captured``, why not.

    Read now, for :func:`shared_capture` in the processes this one starts on the same node
    with the same Python environment.
    """
    started = time.perf_counter()
    out: Dict[str, Any] = {}
    missing: Dict[str, str] = {}
    _probe_into(out, missing, "python", lambda: {"version": platform.python_version(),
                                                 "implementation": platform.python_implementation(),
                                                 "executable": sys.executable})  # fmt: skip
    _probe_into(out, missing, "packages", _packages)
    _probe_into(out, missing, "platform", platform.platform)
    _probe_into(out, missing, "hostname", socket.gethostname)
    _probe_into(out, missing, "cpu_count", os.cpu_count)
    _probe_into(out, missing, "gpus", _gpus)
    return {"values": out, "not_captured": missing, "captured_at": time.time(), "pid": os.getpid(),
            "capture_s": round(time.perf_counter() - started, 4)}  # fmt: skip


def _git(folder: str) -> Dict[str, Any]:
    """:func:`git_info` of ``folder``, read once per folder inside a :func:`shared_capture` block."""
    if _shared is None:
        return git_info(folder)
    cache: Dict[str, Dict[str, Any]] = _shared["git"]
    if folder not in cache:
        cache[folder] = git_info(folder)
    return cache[folder]


def capture(script: Optional[str] = None, snapshot: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Provenance of this process, for the run's ``info["provenance"]``. Never raises.

    With a code ``snapshot`` (the sweep's, taken at launch), the code recorded is the
    snapshot's: its git identity as captured at launch, not the repository as it is now.
    Inside :func:`shared_capture`, the facts common to the process's runs are read once.
    """
    from .secrets import mask_argv

    started = time.perf_counter()
    out: Dict[str, Any] = {"captured_at": time.time()}
    missing: Dict[str, str] = {}

    def probe(name: str, fn: Any) -> None:
        _probe_into(out, missing, name, fn)

    probe("command", lambda: mask_argv([sys.executable, *sys.argv]))
    probe("cwd", os.getcwd)
    probe("script", lambda: os.path.abspath(script) if script else (os.path.abspath(sys.argv[0]) if sys.argv
                                                                     and sys.argv[0] else None))  # fmt: skip
    if snapshot and snapshot.get("git"):
        out["git"] = {**snapshot["git"], "from_snapshot": snapshot.get("digest")}
    else:
        probe("git", lambda: _git(out.get("script") or os.getcwd()))
    if snapshot:
        out["code_snapshot"] = {k: snapshot.get(k) for k in ("digest", "path", "source", "commit", "diff_sha256")}
    if isinstance(out.get("git"), dict) and not out["git"].get("available", True):
        missing["git"] = out["git"]["reason"]
    if _shared is None:
        facts = {**shared_facts(), "runs": 1}
    else:
        if _shared["values"] is None:
            _shared["values"] = shared_facts()
        _shared["runs"] += 1
        facts = {**_shared["values"], "runs": _shared["runs"]}
    out.update(facts["values"])
    missing.update(facts["not_captured"])
    # When the facts common to the process's runs were read, by which process, and how many runs have
    # used that read (1: this run read them itself).
    out["shared"] = {k: facts[k] for k in ("captured_at", "pid", "capture_s", "runs")}
    probe("conda", lambda: {"env": os.environ["CONDA_DEFAULT_ENV"], "prefix": os.environ.get("CONDA_PREFIX")}
          if "CONDA_DEFAULT_ENV" in os.environ else None)  # fmt: skip
    probe("cpus_usable", lambda: len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None)
    probe("slurm", _slurm)
    probe("environment", _environment)
    out["not_captured"] = missing
    out["capture_s"] = round(time.perf_counter() - started, 4)
    return out
