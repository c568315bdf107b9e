"""A new scheduler is one folder plus one registry line: a toy one, registered here, keeps the contract.

``ToyBackend`` is the skeleton of docs/architecture.md ("How to add a
scheduler"): it starts each job as its own process through the shared job
command, asks the processes for the jobs' states, and cancels with SIGTERM.
Registered by one line (the ``toy_registered`` fixture), it passes the whole
``BackendTests`` suite without any other change to hpctrack.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import pytest

from hpctrack._process import pid_alive, process_identity, why_not_ours
from hpctrack._types import JobState
from hpctrack.config import BaseLauncherConf, launcher_target
from hpctrack.launch import job_command
from hpctrack.launch.base import Backend, JobInfo
from hpctrack.launch.registry import BACKENDS
from hpctrack.manifest import LOG_DIR, Manifest, update_manifest
from hpctrack.testing import BackendTests


@dataclass
class ToyLauncherConf(BaseLauncherConf):
    """Run each job as its own process on this machine."""

    _target_: str = launcher_target("toy")
    parallel: Optional[int] = None  # what `launch -j` sets (the toy starts every job at once)


class ToyBackend(Backend):
    """Each job is a process of its own: its pid is its job id."""

    name = "toy"
    label = "toy"
    conf = ToyLauncherConf
    has_queue = False  # the jobs start at once; a launch may wait for them
    records_final_states = False  # nothing of ours watches the jobs: status records what it learns

    def submit(self, manifest: Manifest, indices: Sequence[int]) -> None:
        started: Dict[int, Tuple[str, dict, str]] = {}
        for index in indices:
            logs = manifest.run_path(index) / LOG_DIR
            logs.mkdir(parents=True, exist_ok=True)
            with open(logs / "job.log", "ab") as log:
                proc = subprocess.Popen(job_command(manifest.path, index), stdin=subprocess.DEVNULL, stdout=log,
                                        stderr=log, start_new_session=True, cwd=manifest.cwd or None)  # fmt: skip
            started[index] = (str(proc.pid), process_identity(proc.pid), str(logs / "job.log"))

        def record(m: Manifest) -> None:
            for index, (pid, ident, log) in started.items():
                job = m.jobs[index]
                job.job_id, job.process, job.stdout, job.stderr = pid, ident, log, log
                job.state, job.submitted = JobState.RUNNING, time.time()

        update_manifest(manifest.path, record)

    def query(self, manifest: Manifest) -> Tuple[Dict[int, JobInfo], Optional[str]]:
        infos = {}
        for job in manifest.jobs:
            if job.job_id and not job.state.is_final:
                ours = why_not_ours(job.process or {}, str(manifest.path)) is None
                infos[job.index] = JobInfo(state=JobState.RUNNING) if ours else JobInfo(state=None, ended=True)
        return infos, None

    def cancel(self, manifest: Manifest, indices: Optional[Sequence[int]] = None) -> Optional[List[str]]:
        notes = []
        for job in manifest.jobs:
            if job.job_id and (indices is None or job.index in indices) and not job.state.is_final:
                why = why_not_ours(job.process or {}, str(manifest.path))
                if why is not None:
                    notes.append(f"job {job.index} {why}")
                    continue
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(job.job_id), signal.SIGTERM)
        return notes

    def states_current(self, manifest: Manifest) -> bool:
        return False


@pytest.fixture(autouse=True)
def toy_registered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(BACKENDS, "toy", ToyBackend)  # the one registry line


class TestToyBackend(BackendTests):
    backend = "toy"


def test_the_toy_appears_wherever_backends_are_listed(toy_registered: None) -> None:
    from hpctrack.launch.registry import backend_names

    assert "toy" in backend_names()
    assert not pid_alive(2**22 + 1)  # the neutral helper the toy uses
