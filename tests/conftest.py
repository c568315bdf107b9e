"""Shared fixtures: every test gets its own storage root and config home."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, List

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "digits" / "train.py"
SCRIPTS = Path(__file__).resolve().parent / "e2e" / "scripts"


@pytest.fixture
def hpctrack_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh storage root in HPCTRACK_ROOT, and no user config file."""
    root = tmp_path / "root"
    monkeypatch.setenv("HPCTRACK_ROOT", str(root))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("HPCTRACK_FLUSH_INTERVAL_S", "0.5")
    return root


def run_cli(
    *args: str, cwd: Path | None = None, timeout: float = 240, check: bool = False
) -> subprocess.CompletedProcess:
    """``python -m hpctrack ARGS`` as a real subprocess, the way a user runs it."""
    proc = subprocess.run(
        [sys.executable, "-m", "hpctrack", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(os.environ),
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"hpctrack {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def wait_for(what: str, predicate: Callable[[], Any], timeout_s: float = 240, every_s: float = 0.5) -> Any:
    """Poll ``predicate`` until it returns something true (returned), or fail naming ``what`` (bounded)."""
    deadline = time.monotonic() + timeout_s
    while True:
        got = predicate()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout_s} s: {what}")
        time.sleep(every_s)


def error_lines(stderr: str) -> List[str]:
    return [line for line in stderr.splitlines() if line.startswith("Error:")]


def one_error(proc: subprocess.CompletedProcess, *needles: str) -> str:
    """The one error line of a command that failed with exit code 1 and printed nothing else; holds ``needles``."""
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    lines = error_lines(proc.stderr)
    assert len(lines) == 1 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


# -- the real SLURM test cluster from slurm/ ------------------------------------------------


#: Node states of a cluster that is up: "completing" is a node finishing the jobs of an earlier test.
_UP_STATES = {"idle", "mixed", "allocated", "completing"}


def _cluster_problem(wait_s: float = 60) -> str | None:
    if shutil.which("sinfo") is None:
        return "sinfo not found"
    deadline = time.monotonic() + wait_s
    while True:
        try:
            proc = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=20)
        except subprocess.TimeoutExpired:
            return "sinfo timed out"
        if proc.returncode != 0:
            problem = (proc.stderr.strip().splitlines() or [f"sinfo exit code {proc.returncode}"])[-1]
        else:
            states = {s.rstrip("*~#!%$@^-") for s in proc.stdout.split()}
            if states & _UP_STATES:
                return None
            problem = f"no usable node (states: {', '.join(sorted(states)) or 'none'})"
        if time.monotonic() > deadline:  # a node may be between states for a moment: asked again first
            return problem
        time.sleep(2)


@pytest.fixture(scope="session")
def slurm_cluster() -> None:
    problem = _cluster_problem()
    if problem:
        message = f"SLURM test cluster is not up ({problem}); start it with `bash slurm/up.sh` as root"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="session")
def slurm_root(tmp_path_factory: pytest.TempPathFactory, slurm_cluster: None) -> str:
    """One storage root for the SLURM tests (jobs on the node write there)."""
    return str(tmp_path_factory.mktemp("slurm-root"))


# -- a small filesystem that fills up -----------------------------------------------------------


@pytest.fixture
def fresh_hydra_version_base():
    """Hydra's version base as a fresh process has it (unspecified: jobs change into their output
    directory, which Hydra's launcher suites check). Another test on the same worker may have set it
    (any ``version_base=None`` sets 1.3) and Hydra keeps it in a process-wide singleton."""
    from hydra.core.singleton import Singleton
    from hydra.version import VersionBase

    saved = Singleton._instances.pop(VersionBase, None)
    yield
    Singleton._instances.pop(VersionBase, None)
    if saved is not None:
        Singleton._instances[VersionBase] = saved


@pytest.fixture
def small_tmpfs(tmp_path: Path):
    """A 12 MB tmpfs mounted at ``tmp_path/full`` (root only), unmounted afterwards."""
    from hpctrack.testing.stores import mounted_tmpfs

    with mounted_tmpfs(tmp_path / "full") as mount_point:
        yield mount_point


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist reads the groups off the markers
def pytest_collection_modifyitems(config: pytest.Config, items: List[pytest.Item]) -> None:
    """With pytest-xdist (``--dist loadgroup``), the SLURM tests run one after another in one worker.

    The test cluster is one node: tests that each wait for their own jobs would
    otherwise queue behind each other's and time out (two at a time failed on a
    loaded machine). Markers go on before pytest-xdist reads them (``tryfirst``).
    """
    for item in items:
        if item.get_closest_marker("slurm") is not None:
            item.add_marker(pytest.mark.xdist_group("slurm"))
        elif item.get_closest_marker("browser") is not None:  # one root, server and Chromium for them all
            item.add_marker(pytest.mark.xdist_group("browser"))
