"""Starting, watching and stopping a study's driver.

The sweep's backend runs it (``Backend.start_driver``): locally a background
process in its own session (``python -m hpctrack.optimize SWEEP_DIR``), recorded
with its identity (host, pid, start time, boot) so that ``cancel`` signals it only
while it is still ours; on SLURM a job of its own (one task, one CPU), so nothing
of the study runs on the login node. Either way it runs the user's script as ``hpctrack launch`` does,
with the sweeper ``hpctrack_optimize`` driving the sweep's launcher.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

from ..errors import ConfigError
from ..manifest import Manifest, load_manifest
from .driver import record_study
from .study import DRIVER_FILE, study_dir

__all__ = ["DriverState", "driver_state", "start_driver", "stop_driver", "resume_study", "cancel_study",
           "write_driver_file", "read_driver_file", "ENDED_STATES"]  # fmt: skip

#: How a driver that ended recorded its end (``study.state``).
ENDED_STATES = ("finished", "stopped", "failed")


@dataclass(frozen=True)
class DriverState:
    """What is known of a study's driver.

    ``state`` is ``running`` (it holds the study's lease), ``starting`` (its process
    or job exists, it has not taken the lease yet), ``queued`` (its SLURM job waits),
    ``finished``/``stopped``/``failed`` (it ended and recorded how), or ``dead``
    (it ended without recording it: killed, node failure, time limit; ``hpctrack
    resume`` starts it again).
    """

    state: str
    where: str = ""  # "pid 123 on host", "SLURM job 456"
    error: Optional[str] = None

    @property
    def alive(self) -> bool:
        """The driver runs, or is about to."""
        return self.state in ("running", "starting", "queued")


def write_driver_file(sweep_dir: Path, data: Dict[str, Any]) -> None:
    """Record what the driver runs (``study/driver.json``, owner-only: the arguments hold real values)."""
    from ..safefs import PRIVATE_FILE_MODE, write_file

    folder = study_dir(sweep_dir)
    folder.mkdir(mode=0o750, exist_ok=True)  # never writable by others, whatever the umask
    write_file(folder / DRIVER_FILE, json.dumps(data, indent=1), Path(sweep_dir), mode=PRIVATE_FILE_MODE)


def read_driver_file(sweep_dir: Path) -> Dict[str, Any]:
    """What :func:`write_driver_file` recorded; refused when another user could have written it."""
    from ..safefs import check_owner_only

    path = study_dir(sweep_dir) / DRIVER_FILE
    if not path.is_file():
        raise ConfigError(f"{path} is missing: the study's driver cannot be started (launch the study again)")
    check_owner_only(path, "the study's driver file")
    return dict(json.loads(path.read_text()))


def driver_state(manifest: Manifest) -> DriverState:
    """Whether the study's driver runs, on any host (its lease), or how it ended."""
    from ..locking import writer_state

    study = manifest.study
    driver = study.get("driver") or {}
    where = f"SLURM job {driver['job_id']}" if driver.get("job_id") else (
        f"pid {driver.get('pid')} on {driver.get('host')}" if driver.get("pid") else "")  # fmt: skip
    try:
        holder = writer_state(study_dir(manifest.path))
    except OSError:
        holder = None
    if holder is not None and holder.presumed_alive:
        return DriverState("running", f"pid {holder.pid} on {holder.host}" + (
            f", SLURM job {holder.job_id}" if holder.job_id else ""))  # fmt: skip
    recorded = study.get("state")
    if recorded in ENDED_STATES:
        return DriverState(str(recorded), where, study.get("error"))
    word = _backend(manifest).driver_state(driver, manifest.path) if driver else None
    if word == "queued":
        return DriverState("queued", where)
    if word == "started" and recorded != "running":  # its process or job exists, it has not taken the lease yet
        return DriverState("starting", where)
    return DriverState("dead", where)


def start_driver(sweep_dir: Path) -> Dict[str, Any]:
    """Start the study's driver (a background process, or a SLURM job); returns what was recorded of it."""
    manifest = load_manifest(sweep_dir)
    read_driver_file(sweep_dir)  # refused before anything starts
    driver = _backend(manifest).start_driver(manifest, _command(manifest), study_dir(manifest.path))

    def change(study: Dict[str, Any]) -> None:
        study["driver"] = driver
        study["state"], study["error"], study["ended"] = "starting", None, None
        study["restarts"] = int(study.get("restarts", -1)) + 1

    record_study(manifest.path, change)
    return driver


def _command(manifest: Manifest) -> List[str]:
    return [sys.executable, "-m", "hpctrack.optimize", str(manifest.path)]


def _backend(manifest: Manifest) -> Any:
    """The sweep's backend: it runs, watches and stops the driver as it runs things (``Backend.start_driver``)."""
    from ..launch import get_backend

    return get_backend(manifest.backend)


def stop_driver(manifest: Manifest, *, wait_s: float = 60.0) -> Optional[str]:
    """Stop the study's driver (SIGTERM locally, ``scancel`` on SLURM) and wait for it to end.

    Returns a line when it could not be stopped from here (another host), else None.
    A driver stops between two of its steps: it never leaves a trial half-submitted.
    """

    state = driver_state(manifest)
    if not state.alive:
        return None
    note = _backend(manifest).stop_driver(manifest.study.get("driver") or {}, manifest.path)
    if note is not None:
        return note
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if not driver_state(load_manifest(manifest.path)).alive:
            return None
        time.sleep(0.3)
    return f"the study's driver ({state.where}) did not stop within {wait_s:.0f} s"


def resume_study(sweep_dir: Path, *, dry_run: bool = False) -> str:
    """Start the study's driver again when it is not running and the study has not finished; says what it did.

    The driver reconciles the study with the sweep as it starts (see
    :mod:`hpctrack.optimize.driver`): no trial is lost or run twice. Trials are
    never resubmitted here: the driver tells the study how each ended, and asks
    for new ones until the study's trials have ended.
    """
    from ..status import job_statuses

    manifest = load_manifest(sweep_dir)
    state = driver_state(manifest)
    ended = sum(1 for s in job_statuses(manifest) if s.state.is_final)
    if state.alive:
        return f"study {manifest.id}: its driver is {state.state} ({state.where}); nothing to resume"
    if state.state == "finished":
        return (
            f"study {manifest.id}: finished, {ended} of {manifest.study.get('trials')} trials ended; nothing to resume"
        )
    if dry_run:
        return f"study {manifest.id}: would start its driver again ({state.state}: {state.where or 'never started'})"
    driver = start_driver(manifest.path)
    where = f"SLURM job {driver['job_id']}" if driver.get("job_id") else f"pid {driver.get('pid')}"
    return (f"study {manifest.id}: driver started again ({where}); {ended} of {manifest.study.get('trials')} "
            "trials had ended")  # fmt: skip


def cancel_study(manifest: Manifest) -> Optional[str]:
    """Stop the study's driver first (so that it submits nothing more), and mark the study stopped.

    Returns a line when the driver could not be stopped from here. The trials are
    cancelled afterwards like any sweep's jobs (:meth:`hpctrack.sweep.Sweep.cancel`).
    """
    note = stop_driver(manifest)
    if note is None and driver_state(load_manifest(manifest.path)).state == "dead":

        def change(study: Dict[str, Any]) -> None:
            study["state"], study["ended"] = "stopped", time.time()

        record_study(manifest.path, change)
    return note
