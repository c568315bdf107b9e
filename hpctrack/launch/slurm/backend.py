"""SLURM backend: a sweep becomes ONE job array, submitted through submitit.

``submit`` returns as soon as ``sbatch`` accepted the array; nothing polls in
the foreground. A sweep larger than the cluster's ``MaxArraySize`` becomes
several arrays. With ``runs_per_task: K`` each array task runs K jobs of the
sweep (one after the other, or side by side), each still its own run.

``states`` asks SLURM about the whole sweep in one ``sacct`` call (falling back
to one ``squeue`` call when accounting is unavailable), never one call per job.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from ..._types import JobState
from ...config import BaseLauncherConf, launcher_target
from ...errors import ConfigError, SubmissionError
from ...manifest import LOG_DIR, Manifest, update_manifest
from ..base import Backend, JobInfo

__all__ = ["SlurmBackend", "SlurmLauncherConf", "SLURM_STATES", "parse_sacct", "parse_squeue", "max_array_size",
           "parse_time_min"]  # fmt: skip
@dataclass
class SlurmLauncherConf(BaseLauncherConf):
    """Submit the sweep to SLURM as one job array; returns once the array is queued."""

    _target_: str = launcher_target("slurm")
    # block until the array has ended and return each job's real outcome to Hydra (sweepers such as
    # Optuna need the values); false (default): return once the array is queued
    wait: bool = False
    # seconds between two looks at the queue (one sacct call) while waiting
    wait_poll_s: float = 10.0
    # partition (queue); None -> the cluster's default
    partition: Optional[str] = None
    # time limit in minutes (sbatch --time); see `time` for SLURM's own format
    timeout_min: int = 60
    # time limit in SLURM's format ("04:00:00", "1-12:00:00"); wins over timeout_min
    time: Optional[str] = None
    nodes: int = 1
    tasks_per_node: int = 1
    cpus_per_task: Optional[int] = None
    # memory per node in GB (sbatch --mem)
    mem_gb: Optional[float] = None
    # GPUs per node (sbatch --gpus-per-node)
    gpus_per_node: Optional[int] = None
    # generic resources, e.g. "gpu:a100:2" (sbatch --gres)
    gres: Optional[str] = None
    constraint: Optional[str] = None
    account: Optional[str] = None
    qos: Optional[str] = None
    exclusive: bool = False
    # most array tasks running at once (sbatch --array=...%N)
    array_parallelism: int = 256
    # runs of the sweep per array task, for many short runs
    runs_per_task: int = 1
    # packed runs: "serial" (one after the other) or "parallel" (side by side on the allocation)
    pack: str = "serial"
    # seconds before the time limit that SLURM signals the job (USR2): it flushes, calls the
    # run's on_requeue hooks and requeues itself (see max_requeues)
    signal_delay_s: int = 120
    # automatic requeues per job on a time limit or preemption; 0: let the job end (TIMEOUT)
    max_requeues: int = 3
    # shell lines run before the job, e.g. ["module load cuda", "source .venv/bin/activate"]
    setup: List[str] = field(default_factory=list)
    # any other sbatch option, e.g. {"mail-type": "END"}
    additional_parameters: Dict[str, Any] = field(default_factory=dict)


#: Seconds before the time limit at which SLURM signals a job (``--signal=USR2@N``).
DEFAULT_SIGNAL_DELAY_S = 120

#: SLURM's job states (first word of sacct's State) in hpctrack's vocabulary.
SLURM_STATES: Dict[str, JobState] = {
    "PENDING": JobState.PENDING,
    "REQUEUED": JobState.PENDING,
    "REQUEUE_HOLD": JobState.PENDING,
    "REQUEUE_FED": JobState.PENDING,
    "CONFIGURING": JobState.RUNNING,
    "RUNNING": JobState.RUNNING,
    "COMPLETING": JobState.RUNNING,
    "RESIZING": JobState.RUNNING,
    "SUSPENDED": JobState.RUNNING,
    "STOPPED": JobState.RUNNING,
    "SIGNALING": JobState.RUNNING,
    "STAGE_OUT": JobState.RUNNING,
    "COMPLETED": JobState.COMPLETED,
    "FAILED": JobState.FAILED,
    "SPECIAL_EXIT": JobState.FAILED,
    "TIMEOUT": JobState.TIMEOUT,
    "DEADLINE": JobState.TIMEOUT,
    "CANCELLED": JobState.CANCELLED,
    "REVOKED": JobState.CANCELLED,
    "PREEMPTED": JobState.PREEMPTED,
    "OUT_OF_MEMORY": JobState.OUT_OF_MEMORY,
    "NODE_FAIL": JobState.NODE_FAIL,
    "BOOT_FAIL": JobState.NODE_FAIL,
}

_TIME_RE = re.compile(r"^(?:(?P<d>\d+)-)?(?P<a>\d+)(?::(?P<b>\d+))?(?::(?P<c>\d+))?$")


def parse_time_min(text: str) -> int:
    """Minutes (rounded up) of a SLURM time string: MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS."""
    m = _TIME_RE.match(str(text).strip())
    if not m:
        raise ConfigError(f"bad time {text!r}: use MM, HH:MM:SS or D-HH:MM:SS (SLURM's --time format)")
    d, a, b, c = (int(g) if g is not None else None for g in m.group("d", "a", "b", "c"))
    if d is not None:  # D-HH[:MM[:SS]]
        seconds = d * 86400 + (a or 0) * 3600 + (b or 0) * 60 + (c or 0)
    elif c is not None:  # HH:MM:SS
        seconds = (a or 0) * 3600 + (b or 0) * 60 + c
    elif b is not None:  # MM:SS
        seconds = (a or 0) * 60 + b
    else:  # MM
        seconds = (a or 0) * 60
    return max(1, -(-seconds // 60))


def _run(cmd: List[str], timeout_s: float = 60) -> Tuple[int, str, str]:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    except FileNotFoundError:
        return 127, "", f"{cmd[0]}: command not found"
    except subprocess.TimeoutExpired:
        return 124, "", f"{cmd[0]} timed out after {timeout_s:g} s"
    return proc.returncode, proc.stdout, proc.stderr


def _check_partitions(requested: str) -> None:
    """Refuse a partition the cluster does not have (``sbatch -p`` takes a comma-separated list).

    Checked before the sweep is written: sbatch refuses it only after. When the
    partitions cannot be listed (the controller is unreachable), sbatch has the last word.
    """
    code, out, _ = _run(["sinfo", "-h", "-o", "%R"])
    known = sorted(set(out.split())) if code == 0 else []
    if not known:
        return
    missing = [p.strip() for p in requested.split(",") if p.strip() and p.strip() not in known]
    if missing:
        raise ConfigError(f"no partition {', '.join(repr(p) for p in missing)} on this cluster; its partitions: "
                          f"{', '.join(known)} (--partition / hydra.launcher.partition)")  # fmt: skip


def _test_submission(params: Dict[str, Any]) -> None:
    """Ask sbatch whether it would take an array task with these parameters (``--test-only``: nothing is queued).

    A dry run says what SLURM would refuse (memory or CPUs no node has, an unknown account)
    instead of leaving it to the launch. When the controller cannot be reached, nothing is said.
    """
    import tempfile

    from submitit.slurm.slurm import _make_sbatch_string

    with tempfile.TemporaryDirectory(prefix="hpctrack-test-only-") as folder:
        script = _make_sbatch_string(command="true", folder=folder, **params)
        try:
            proc = subprocess.run(["sbatch", "--test-only"], input=script, capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            return
    if proc.returncode == 0 or "contact slurm controller" in proc.stderr.lower():
        return
    lines = [ln.strip() for ln in proc.stderr.splitlines() if ln.strip()]
    reason = "; ".join(dict.fromkeys(ln.split("error:", 1)[-1].strip() for ln in lines)) or f"exit {proc.returncode}"
    raise ConfigError(f"SLURM would refuse the jobs: {reason} (sbatch --test-only); change the resources "
                      "(--mem-gb, --cpus-per-task, --gpus-per-node, --time, --partition, hydra.launcher.*)")  # fmt: skip


def max_array_size() -> int:
    """The cluster's ``MaxArraySize`` (``scontrol show config``); 1001, SLURM's default, if unreadable."""
    code, out, _ = _run(["scontrol", "show", "config"])
    if code == 0:
        m = re.search(r"^MaxArraySize\s*=\s*(\d+)", out, re.MULTILINE)
        if m:
            return int(m.group(1))
    return 1001


def _expand_task_ids(spec: str) -> List[str]:
    """``3,5-7%2`` -> ``["3", "5", "6", "7"]``."""
    spec = spec.split("%", 1)[0]
    out: List[str] = []
    for part in spec.split(","):
        if "-" in part:
            lo, hi = part.split("-", 1)
            out.extend(str(i) for i in range(int(lo), int(hi) + 1))
        elif part:
            out.append(part)
    return out


_ARRAY_RANGE = re.compile(r"^(\d+)_\[(.+)\]$")


def _expand_job_id(job_id: str) -> List[str]:
    """``123_[4-6%2]`` -> ``["123_4", "123_5", "123_6"]``; other ids unchanged."""
    if "[" not in job_id:
        return [job_id]
    m = _ARRAY_RANGE.match(job_id)
    if m:
        return [f"{m.group(1)}_{t}" for t in _expand_task_ids(m.group(2))]
    return [job_id]


def parse_sacct(text: str) -> Dict[str, JobInfo]:
    """Rows of ``sacct -X -P -n -o JobID,State,ExitCode,NodeList,Reason`` by job id."""
    out: Dict[str, JobInfo] = {}
    # JobInfo is frozen: the rows of an array mostly say the same, and one instance serves them all
    # (100,000 rows of a large sweep are parsed in a third of the time).
    shared: Dict[Tuple[str, ...], JobInfo] = {}
    for line in text.splitlines():
        fields = line.split("|")
        if len(fields) < 2 or not fields[0]:
            continue
        job_id, raw_state = fields[0], fields[1]
        word = raw_state.split()[0] if raw_state.strip() else ""
        state = SLURM_STATES.get(word)
        if state is None:
            continue
        exit_code = fields[2] if len(fields) > 2 else ""
        node = fields[3] if len(fields) > 3 and fields[3] not in ("", "None assigned") else None
        reason = fields[4] if len(fields) > 4 and fields[4] not in ("", "None") else None
        key = (word, node or "", reason or "", exit_code)
        info = shared.get(key)
        if info is None:
            info = shared[key] = JobInfo(state=state, node=node, reason=reason, exit_code=exit_code or None,
                                         scheduler_state=word)  # fmt: skip
        for jid in _expand_job_id(job_id):
            out[jid] = info
    return out


def parse_squeue(text: str) -> Dict[str, JobInfo]:
    """Rows of ``squeue -h -r -o %i|%T|%N|%r`` by job id."""
    out: Dict[str, JobInfo] = {}
    for line in text.splitlines():
        fields = line.strip().split("|")
        if len(fields) < 2:
            continue
        state = SLURM_STATES.get(fields[1].strip())
        if state is None:
            continue
        node = fields[2] if len(fields) > 2 and fields[2] else None
        reason = fields[3] if len(fields) > 3 and fields[3] not in ("", "None") else None
        for jid in _expand_job_id(fields[0].strip()):
            out[jid] = JobInfo(state=state, node=node, reason=reason, scheduler_state=fields[1].strip())
    return out


def _sbatch_reason(err: BaseException) -> str:
    text = str(err)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    errors = [ln.split("error:", 1)[1].strip() for ln in lines if "error:" in ln]
    return "; ".join(dict.fromkeys(errors)) or (lines[-1] if lines else type(err).__name__)


@dataclass
class _Resources:
    """The launcher config's resource fields, checked and turned into submitit's sbatch parameters."""

    options: Dict[str, Any]

    @property
    def time_min(self) -> int:
        o = self.options
        return parse_time_min(o["time"]) if o.get("time") else int(o.get("timeout_min") or 60)

    def check(self) -> None:
        """Refuse settings SLURM would accept but that defeat the job, before anything is submitted.

        Raises
        ------
        ConfigError
            ``signal_delay_s`` is not smaller than the time limit: SLURM would send
            the time-limit signal at (or before) the job's start, before the run can
            handle it, and the job would fail with nothing recorded.
        """
        limit_s = self.time_min * 60
        delay = int(self.options.get("signal_delay_s") or DEFAULT_SIGNAL_DELAY_S)
        if delay >= limit_s:
            hint = max(1, min(limit_s // 2, DEFAULT_SIGNAL_DELAY_S))
            raise ConfigError(f"signal_delay_s={delay} is not smaller than the time limit ({self.time_min} min = "
                              f"{limit_s} s): SLURM would signal the job before it could start; set "
                              f"hydra.launcher.signal_delay_s={hint} or ask for more time (--time)")  # fmt: skip

    def sbatch_parameters(self, job_name: str) -> Dict[str, Any]:
        self.check()
        o = self.options
        params: Dict[str, Any] = {
            "job_name": job_name,
            "time": self.time_min,
            "nodes": int(o.get("nodes") or 1),
            "ntasks_per_node": int(o.get("tasks_per_node") or 1),
            "array_parallelism": int(o.get("array_parallelism") or 256),
            "signal_delay_s": int(o.get("signal_delay_s") or DEFAULT_SIGNAL_DELAY_S),
            "wckey": "hpctrack",
        }
        for key in ("partition", "cpus_per_task", "constraint", "account", "qos", "gres", "comment", "exclude"):
            if o.get(key) is not None:
                params[key] = o[key]
        if o.get("mem_gb") is not None:
            params["mem"] = f"{int(float(o['mem_gb']) * 1024)}M"
        if o.get("gpus_per_node"):
            params["gpus_per_node"] = int(o["gpus_per_node"])
        if o.get("exclusive"):
            params["exclusive"] = True
        if o.get("setup"):
            params["setup"] = list(o["setup"])
        if o.get("additional_parameters"):
            params["additional_parameters"] = dict(o["additional_parameters"])
        return params


class SlurmBackend(Backend):
    """Submit a sweep to SLURM as one job array (several when it exceeds ``MaxArraySize``)."""

    name = "slurm"
    label = "SLURM"
    conf = SlurmLauncherConf
    has_queue = True
    records_final_states = False  # only sacct knows how a job ended: status records what it learns
    parallel_option = "array_parallelism"
    resource_options = ("time", "timeout_min", "partition", "mem_gb", "cpus_per_task", "gpus_per_node", "gres",
                        "constraint", "account", "qos", "parallel")  # fmt: skip

    @classmethod
    def job_environment(cls, manifest: Manifest, early: Any) -> Optional[Dict[str, Any]]:
        from ._task import slurm_environment

        return slurm_environment(manifest, early)

    def __init__(self, **options: Any) -> None:
        self.options = options
        k = 1 if options.get("runs_per_task") is None else int(options["runs_per_task"])
        if k < 1:
            raise ConfigError(f"runs_per_task must be at least 1, got {k}")
        self.runs_per_task = k
        pack = options.get("pack") or "serial"
        if pack not in ("serial", "parallel"):
            raise ConfigError(f"pack must be 'serial' or 'parallel', got {pack!r}")
        self.pack = pack
        if options.get("array_parallelism") is not None and int(options["array_parallelism"]) < 1:
            raise ConfigError(f"array_parallelism must be at least 1, got {options['array_parallelism']} "
                              "(hydra.launcher.array_parallelism, --parallel)")  # fmt: skip
        if options.get("time"):
            parse_time_min(str(options["time"]))
        _Resources(dict(options)).check()

    def preflight(self) -> None:
        if shutil.which("sbatch") is None:
            raise ConfigError("sbatch not found on PATH: --backend slurm runs where SLURM's commands are "
                              "(a login node), or use --backend local")
        if self.options.get("partition"):
            _check_partitions(str(self.options["partition"]))

    def _arrays(self, indices: Sequence[int], limit: int) -> List[List[List[int]]]:
        """The job arrays ``submit`` makes: array tasks of ``runs_per_task`` jobs, ``limit`` tasks per array."""
        tasks = [list(indices[i:i + self.runs_per_task]) for i in range(0, len(indices), self.runs_per_task)]
        return [tasks[i:i + limit] for i in range(0, len(tasks), limit)]

    def plan(self, n_jobs: int) -> List[str]:
        limit = max_array_size()
        arrays = self._arrays(range(n_jobs), limit)
        sizes = [len(a) for a in arrays]
        shown = ", ".join(str(s) for s in sizes[:8]) + (f", ... ({len(sizes) - 8} more)" if len(sizes) > 8 else "")
        params = _Resources(self.options).sbatch_parameters("hpctrack-<sweep>")
        _test_submission(params)
        params.pop("job_name", None)
        resources = " ".join(f"{k}={v}" for k, v in params.items())
        return [f"SLURM: {len(arrays)} job array{'s' if len(arrays) != 1 else ''} of {shown} task"
                f"{'s' if sizes != [1] else ''} (MaxArraySize {limit}, {self.runs_per_task} run"
                f"{'s' if self.runs_per_task != 1 else ''} per task, {self.pack}), "
                f"{sum(sizes)} array tasks in all",
                f"resources per task: {resources}"]  # fmt: skip

    def submit(self, manifest: Manifest, indices: Sequence[int]) -> None:
        import submitit

        from ._task import SlurmTask, max_requeues

        chunks = self._arrays(indices, max_array_size())
        job_name = f"hpctrack-{manifest.name or manifest.id}"
        params = _Resources(self.options).sbatch_parameters(job_name)
        submitted: Dict[int, Tuple[str, str, str]] = {}
        from ...safefs import job_umask

        # submitit writes the submission scripts and pickles the jobs run, and sbatch passes the umask
        # on to the jobs (SLURM_UMASK): never writable by others, for this submission only.
        previous = job_umask(manifest.launcher.get("share_group"))
        try:
            for chunk in chunks:
                # submitit requeues a task on SLURM's signal at most max_num_timeout times
                # for a time limit; SlurmTask.checkpoint counts preemptions too.
                executor = submitit.SlurmExecutor(folder=manifest.path / LOG_DIR / "%j",
                                                  max_num_timeout=max_requeues(self.options))
                try:
                    executor.update_parameters(**params)
                except ValueError as err:
                    raise ConfigError(f"bad SLURM resources: {str(err).splitlines()[0]}") from err
                with contextlib.redirect_stderr(io.StringIO()):  # submitit echoes sbatch's stderr
                    jobs = executor.map_array(SlurmTask(max_requeues(self.options)),
                                              [str(manifest.path)] * len(chunk), chunk,
                                              [self.pack] * len(chunk))
                for job, task in zip(jobs, chunk):
                    for index in task:
                        submitted[index] = (str(job.job_id), str(job.paths.stdout), str(job.paths.stderr))
        except ConfigError:
            raise
        except Exception as err:
            reason = _sbatch_reason(err)
            self._record(manifest, submitted, error=f"sbatch refused the sweep: {reason}")
            raise SubmissionError(f"sbatch refused the sweep: {reason}"
                                  + (f" ({len(submitted)} jobs had been queued)" if submitted else
                                     " (nothing was submitted)"), reason=reason) from err
        finally:
            os.umask(previous)
        self._record(manifest, submitted, error=None)

    @staticmethod
    def _record(manifest: Manifest, submitted: Dict[int, Tuple[str, str, str]], error: Optional[str]) -> None:
        now = time.time()

        def change(m: Manifest) -> None:
            for job in m.jobs:
                if job.index in submitted:
                    job.job_id, job.stdout, job.stderr = submitted[job.index]
                    job.submitted, job.state = now, JobState.PENDING
                elif error is not None and job.job_id is None:
                    job.state, job.error = JobState.CANCELLED, f"never submitted: {error}"
            if error is not None:
                m.submission_error = error

        update_manifest(manifest.path, change)

    def _ids(self, manifest: Manifest) -> List[str]:
        return sorted({j.job_id.split("_", 1)[0] for j in manifest.jobs if j.job_id})

    def query(self, manifest: Manifest) -> Tuple[Dict[int, JobInfo], Optional[str]]:
        ids = self._ids(manifest)
        if not ids:
            return {}, None
        code, out, err = _run(["sacct", "-X", "-P", "-n", "-j", ",".join(ids),
                               "-o", "JobID,State,ExitCode,NodeList,Reason"])
        note = None
        if code == 0:
            rows = parse_sacct(out)
        else:
            reason = (err.strip().splitlines() or [f"exit code {code}"])[-1]
            code, out, err2 = _run(["squeue", "-h", "-r", "-j", ",".join(ids), "-o", "%i|%T|%N|%r"])
            if code != 0:
                note = (f"sacct unavailable ({reason}) and squeue failed "
                        f"({(err2.strip().splitlines() or ['?'])[-1]}); states from the runs' own records")
                return {}, note
            rows = parse_squeue(out)
            note = f"sacct unavailable ({reason}); states from squeue and the runs' own records"
            # squeue only lists jobs that have not ended: mark the rest as ended, state unknown.
            for job in manifest.jobs:
                if job.job_id and job.job_id not in rows:
                    rows[job.job_id] = JobInfo(state=None, ended=True)
        return {j.index: rows[j.job_id] for j in manifest.jobs if j.job_id in rows}, note

    def start_driver(self, manifest: Manifest, command: Sequence[str], log_dir: Path) -> Dict[str, Any]:
        """A one-task, one-CPU job with the sweep's partition, account, qos and ``setup`` lines."""
        import shlex

        from ...safefs import write_file

        launcher = manifest.launcher
        lines = ["#!/bin/bash", *[str(line) for line in launcher.get("setup") or []], f"exec {shlex.join(command)}", ""]
        script = log_dir / "driver.sbatch"
        write_file(script, "\n".join(lines), manifest.path, mode=0o700)
        cmd = ["sbatch", "--parsable", f"--job-name=hpctrack-study-{manifest.id}",
               f"--output={log_dir / 'driver-%j.log'}", "--ntasks=1", "--cpus-per-task=1"]  # fmt: skip
        cmd += [f"--{key}={launcher[key]}" for key in ("partition", "account", "qos") if launcher.get(key)]
        code, out, err = _run([*cmd, str(script)])
        if code != 0:
            reason = (err.strip().splitlines() or [f"exit code {code}"])[-1]
            raise SubmissionError(f"sbatch refused the study's driver: {reason}", reason=reason)
        return {"job_id": out.strip().split(";")[0], "submitted": time.time()}

    def driver_state(self, driver: Mapping[str, Any], sweep_dir: Path) -> Optional[str]:
        if not driver.get("job_id"):
            return None
        code, out, _ = _run(["squeue", "-h", "-j", str(driver["job_id"]), "-o", "%T"], timeout_s=30)
        words = out.split()
        word = words[0] if code == 0 and words else None
        if word == "PENDING":
            return "queued"
        return "started" if word in ("RUNNING", "CONFIGURING", "COMPLETING") else None

    def stop_driver(self, driver: Mapping[str, Any], sweep_dir: Path) -> Optional[str]:
        job_id = str(driver["job_id"])
        if self.driver_state(driver, sweep_dir) == "queued":
            _run(["scancel", job_id])
        else:  # --signal=TERM: the batch step gets SIGTERM, and the driver ends between two of its steps
            _run(["scancel", "--signal=TERM", "--full", job_id])
        return None

    def cancel(self, manifest: Manifest, indices: Optional[Sequence[int]] = None) -> None:
        wanted = set(indices) if indices is not None else None
        ids = sorted({j.job_id for j in manifest.jobs if j.job_id and (wanted is None or j.index in wanted)})
        if not ids:
            return
        # SIGINT to the jobs' steps first (not the batch shell): each run stops between two of its
        # steps and records its cancel. SLURM's own SIGTERM is bypassed by submitit, so without it a
        # cancelled job trains on until KillWait and may even record itself completed. Pending jobs
        # have no step to signal: that scancel's complaint about them is not the cancel's failure.
        _run(["scancel", "--signal=INT", *ids])
        code, _, err = _run(["scancel", *ids])
        if code != 0:
            raise SubmissionError(f"scancel failed: {err.strip() or f'exit code {code}'}", reason=err.strip())
