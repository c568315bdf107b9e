"""The ``Backend`` interface: hand a sweep's jobs to something that runs them.

A backend is one folder under ``hpctrack/launch/`` plus one line in
:mod:`hpctrack.launch.registry`. Code outside the backend never tests a
backend's name: it asks the capabilities declared here as class attributes
(``backend_class(manifest.backend).has_queue``) or calls the methods.
"""

from __future__ import annotations

import abc
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Dict, List, Mapping, Optional, Sequence, Tuple

from .._types import JobState
from ..manifest import JobRecord, Manifest, load_manifest

__all__ = ["Backend", "JobInfo", "NOT_BACKEND_OPTIONS"]

#: Launcher config keys that are hpctrack's own, not options of the backend (``exec``, ``metrics_file`` and
#: ``config``: an ``--exec`` sweep's command, metrics file and YAML).
NOT_BACKEND_OPTIONS = ("_target_", "root", "name", "store", "detach", "progress", "sweep_id", "code_snapshot",
                       "share_group", "wait", "wait_poll_s", "dry_run", "exec", "metrics_file", "config")  # fmt: skip


@dataclass(frozen=True)
class JobInfo:
    """What the backend knows about one job right now."""

    state: Optional[JobState]  # None: the job has ended but the backend can't say how
    node: Optional[str] = None
    reason: Optional[str] = None  # e.g. SLURM's pending reason
    exit_code: Optional[str] = None
    scheduler_state: Optional[str] = None  # the scheduler's own word (REQUEUED, COMPLETING, ...)
    ended: bool = False
    error: Optional[str] = None  # why the backend ended the job itself (not a scheduler's pending reason)


class Backend(abc.ABC):
    """Runs the jobs of a sweep whose manifest and job function are already on disk.

    ``submit`` returns as soon as the jobs are handed over: it never waits for
    them to run. Job ids are recorded in the manifest. Instances are cheap and
    hold only the backend's options: ``status`` and ``cancel`` make one with no
    options (``backend_class(name)()``) to ask about a recorded sweep.

    Capabilities are class attributes, so that callers can ask them before
    making an instance; a backend states what it cannot do here rather than
    raising ``NotImplementedError``.
    """

    #: The name in ``--backend``, in manifests, and in ``hydra/launcher=hpctrack_<name>``.
    name: ClassVar[str]
    #: The scheduler's name as users know it, in messages ("queued as SLURM job array ...").
    label: ClassVar[str] = ""
    #: The launcher config dataclass (a :class:`hpctrack.config.BaseLauncherConf`), registered in
    #: Hydra's ConfigStore as ``hydra/launcher=hpctrack_<name>``; None when the backend is not launched.
    conf: ClassVar[Optional[type]] = None

    #: ``hpctrack launch`` and ``hpctrack requeue`` can submit jobs to it (a plain script run cannot).
    launches: ClassVar[bool] = True
    #: Jobs wait in an external scheduler's queue: it gives each job its id when it accepts it (a
    #: pending job without an id never reached it), and a launch returns once the jobs are queued
    #: instead of waiting for them.
    has_queue: ClassVar[bool] = False
    #: Something of the backend's own (a runner, the script) writes each job's final state into the
    #: manifest; when False, ``status`` writes the final states it learns from :meth:`query`.
    records_final_states: ClassVar[bool] = True
    #: The launcher config key that ``--parallel`` sets (most jobs running at once).
    parallel_option: ClassVar[str] = "parallel"
    #: Launcher options ``hpctrack requeue`` may change for the resubmitted jobs.
    resource_options: ClassVar[Tuple[str, ...]] = ()

    @classmethod
    def options_from_launcher(cls, launcher: Mapping[str, Any]) -> Dict[str, Any]:
        """The backend's options in a launcher config (as recorded in a manifest); the rest is hpctrack's."""
        return {k: v for k, v in launcher.items() if k not in NOT_BACKEND_OPTIONS}

    @classmethod
    def job_environment(cls, manifest: Manifest, early: Any) -> Optional[Dict[str, Any]]:
        """In a job's process: what this scheduler's environment says of it, or None when not run by it.

        Called by the entry point for every registered backend before the job's
        run opens, whatever backend launched the sweep (a local sweep may run
        inside an allocation); the first answer is recorded in the run's info
        under the backend's name. ``early`` (:class:`hpctrack._signals.EarlySignals`)
        holds the job's signal handlers while it starts.
        """
        return None

    def preflight(self) -> None:
        """Raise ConfigError when this backend can't submit from here; called before anything is written."""

    def plan(self, n_jobs: int) -> List[str]:
        """Lines saying how :meth:`submit` would hand ``n_jobs`` jobs over (``launch --dry-run``).

        Asks nothing that changes state (a scheduler's limits may be read) and
        writes nothing.
        """
        return []

    @abc.abstractmethod
    def submit(self, manifest: Manifest, indices: Sequence[int]) -> None:
        """Start (or queue) the jobs ``indices`` of ``manifest``; return at once.

        Records each job's id (and, on failure, ``submission_error``) in the
        manifest through :func:`hpctrack.manifest.update_manifest`. May be called
        again for jobs of the same sweep (requeue) while others still run.
        """

    @abc.abstractmethod
    def query(self, manifest: Manifest) -> Tuple[Dict[int, JobInfo], Optional[str]]:
        """The backend's view of the sweep's jobs, from one query for the whole sweep.

        Returns the jobs it knows about by index, and a note for the user when
        the view is degraded (e.g. SLURM accounting unavailable), else None.
        Called by readers (``status``, ``table``) in any process, on any host.
        """

    @abc.abstractmethod
    def cancel(self, manifest: Manifest, indices: Optional[Sequence[int]] = None) -> Optional[List[str]]:
        """Cancel the given jobs (default: every job of the sweep that has not ended).

        May return one line per job it could not signal from here, saying why
        (it runs on another host, or has already gone).
        """

    def settled(self, info: JobInfo) -> bool:
        """True when :meth:`query`'s answer for a job is final and the scheduler will not change it by itself.

        ``status`` then keeps it in the manifest and stops asking about the job.
        A preempted job, or one whose node failed, may be requeued by the
        scheduler itself, and one that ended in a state the backend cannot say
        may be told later: those are asked again.
        """
        return info.state is not None and info.state.is_final and info.state not in _MAY_REQUEUE

    def states_current(self, manifest: Manifest) -> bool:
        """True when a live process on this host keeps the manifest's job states current.

        ``hpctrack ls`` then trusts the recorded states without asking the scheduler.
        """
        return False

    def process_of(self, manifest: Manifest, job: JobRecord) -> Optional[Dict[str, Any]]:
        """Where job's own process runs (``host``, ``pid``) when only the manifest can say; None otherwise.

        For backends :meth:`query` knows nothing of (a plain script run), status
        judges a job whose run has not written yet by this process.
        """
        return None

    def wait(
        self, sweep_dir: Path, *, poll_s: float = 0.5, on_update: Optional[Callable[[Manifest], None]] = None
    ) -> Manifest:
        """Block until every job of the sweep has ended; used only when the backend has no queue.

        ``on_update`` is called with the manifest after each poll. A
        KeyboardInterrupt cancels the sweep's jobs and is re-raised. This default
        watches the manifest, and asks :meth:`query` about the jobs it does not
        record as ended when the backend does not record final states itself.
        """
        try:
            while True:
                manifest = load_manifest(sweep_dir)
                if on_update is not None:
                    on_update(manifest)
                open_jobs = [j for j in manifest.jobs if not j.state.is_final]
                if open_jobs and not self.records_final_states:
                    infos = self.query(manifest)[0]
                    open_jobs = [j for j in open_jobs if not _ended(infos.get(j.index))]
                if not open_jobs:
                    return manifest
                time.sleep(poll_s)
        except KeyboardInterrupt:
            self.cancel(load_manifest(sweep_dir))
            raise

    def start_driver(self, manifest: Manifest, command: Sequence[str], log_dir: Path) -> Dict[str, Any]:
        """Start a long-lived process of the sweep that is not one of its jobs (a study's driver).

        It runs ``command`` the way this backend runs things (a detached process
        locally, a one-task job on a scheduler), writes its output under
        ``log_dir``, and returns what identifies it (recorded in the manifest).

        Raises
        ------
        ConfigError
            The backend cannot run such a process.
        """
        from ..errors import ConfigError

        raise ConfigError(f"backend {self.name!r} cannot run a study's driver; use one of the launch backends")

    def driver_state(self, driver: Mapping[str, Any], sweep_dir: Path) -> Optional[str]:
        """What the backend knows of a process :meth:`start_driver` started: ``queued``, ``started``, or
        None when it has ended (or cannot be found)."""
        return None

    def stop_driver(self, driver: Mapping[str, Any], sweep_dir: Path) -> Optional[str]:
        """Ask that process to stop (it ends between two of its steps); a line when it cannot be from here."""
        return None

    def result(self, manifest: Manifest, index: int) -> Any:
        """The value job ``index``'s function returned, when the backend keeps it; else None."""
        return None


#: Final states a scheduler may leave by itself (it requeues a preempted job, or one whose node failed).
_MAY_REQUEUE = (JobState.PREEMPTED, JobState.NODE_FAIL)


def _ended(info: Optional[JobInfo]) -> bool:
    return info is not None and (info.ended or (info.state is not None and info.state.is_final))
