"""The study's driver: asks Optuna for trials, submits them as jobs of the sweep, tells it their results.

One driver runs a study at a time: it holds the study's lease (``study/writer.lease``,
the lock a run's writer holds, refreshed by a heartbeat), so a second one started by
mistake stops at once, and ``status`` can tell a live driver from a dead one on any host.

Nothing is lost or done twice when the driver dies at any point, because each step
is recorded before the next one starts:

1. ``ask``: the trial exists in the journal, with its parameters;
2. the job index it will get is recorded on the trial (user attribute ``job``);
3. the job is added to the sweep (one manifest update for the batch) and submitted.

A driver that starts reconciles both ways: trials whose job never reached the sweep
are submitted now with their recorded parameters; jobs that no trial claims get one
(their parameters enqueued); trials whose job ended while no driver ran are told.
"""

from __future__ import annotations

import math
import os
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

from .._types import JobState
from ..errors import ConfigError, RunBusyError
from ..manifest import Manifest, load_manifest, update_manifest
from .objective import Objective
from .space import SearchSpace
from .study import JOURNAL_FILE, open_study, study_dir

__all__ = ["Driver", "TRIAL_JOB_ATTR", "SCHEDULER_JOB", "record_study"]

#: The user attribute of an Optuna trial that names its job index in the sweep.
TRIAL_JOB_ATTR = "job"
#: Set on a trial whose job was cancelled: not one of the study's results (it is asked again).
CANCELLED_ATTR = "cancelled"
#: Seconds between two looks at the running trials.
DEFAULT_POLL_S = 2.0
#: The scheduler's id of the driver's own job, taken by ``python -m hpctrack.optimize`` before it clears the
#: scheduler's variables (the trials it submits must not inherit its allocation); None when not a job.
SCHEDULER_JOB: Dict[str, Optional[str]] = {"id": None}

Submit = Callable[[List[List[str]]], List[int]]


def record_study(sweep_dir: Path, change: Callable[[Dict[str, Any]], None]) -> Manifest:
    """Change the manifest's ``study`` section in place, under the manifest lock."""

    def apply(m: Manifest) -> None:
        change(m.study)

    return update_manifest(sweep_dir, apply)


class Driver:
    """Runs the study of one sweep until its trials have ended, or it is told to stop.

    Parameters
    ----------
    sweep_dir:
        The sweep, whose manifest has a ``study`` section.
    space:
        The search space and the fixed overrides, with their real values.
    submit:
        Adds a batch of trials (their overrides) to the sweep and submits them;
        returns their job indices, which must continue the sweep's.
    """

    def __init__(self, sweep_dir: Path, space: SearchSpace, submit: Submit, *, poll_s: Optional[float] = None) -> None:
        self.sweep_dir = Path(sweep_dir)
        self.space = space
        self.submit = submit
        manifest = load_manifest(self.sweep_dir)
        if not manifest.study:
            raise ConfigError(f"sweep {manifest.id} has no study: it was not launched with --optimize")
        self.spec = manifest.study
        self.objective = Objective.from_json(self.spec["objective"])
        self.trials = int(self.spec["trials"])
        self.parallel = int(self.spec["parallel"])
        self.poll_s = float(poll_s if poll_s is not None else self.spec.get("poll_s") or DEFAULT_POLL_S)
        self.stop = threading.Event()
        self.study: Any = None
        self._distributions = space.distributions()

    # -- the loop ---------------------------------------------------------------------------

    def run(self) -> str:
        """Drive the study; returns how the driver ended: ``finished`` or ``stopped``.

        Raises
        ------
        RunBusyError
            Another driver of the study is alive.
        """
        from ..locking import WriterLease

        lease = WriterLease(study_dir(self.sweep_dir))
        study_dir(self.sweep_dir).mkdir(exist_ok=True)
        try:
            lease.acquire(timeout_s=2.0)
        except RunBusyError:
            from ..locking import describe_holder

            raise RunBusyError(f"the study of {self.sweep_dir.name} already has a live driver "
                               f"({describe_holder(lease.path)})") from None  # fmt: skip
        # The one live driver: a journal lock left by a driver killed while it appended is stale (Optuna
        # would wait out its grace period before taking it over).
        stale = study_dir(self.sweep_dir) / (JOURNAL_FILE + ".lock")
        if os.path.lexists(stale):
            os.unlink(stale)
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: self.stop.set())
        outcome, error = "failed", None
        try:
            self._started()
            self.study = open_study(self.sweep_dir, self.spec)
            self._reconcile()
            outcome = self._loop()
        except BaseException as err:
            error = f"{type(err).__name__}: {err}"
            raise
        finally:
            self._ended(outcome, error)
            lease.release()
        return outcome

    def _loop(self) -> str:
        from optuna.trial import TrialState

        while True:
            self._poll()
            trials = self.study.get_trials(deepcopy=False)
            running = sum(1 for t in trials if t.state == TrialState.RUNNING)
            # a cancelled trial is not one of the study's: it is asked again with its parameters
            ended = sum(1 for t in trials if t.state.is_finished() and not t.user_attrs.get(CANCELLED_ATTR))
            self._summarise(trials)
            # A trial submitted again after a restart is waited for, and so is a pruned trial's job that is
            # still stopping: the study is finished only once nothing of it runs.
            if ended >= self.trials and not running and not self._jobs_running():
                return "finished"
            if self.stop.is_set():
                return "stopped"
            free = min(self.parallel - running, self.trials - ended - running)
            if free > 0:
                self._ask(free)
                continue  # look at once: a trial may end fast
            self.stop.wait(self.poll_s)

    def _jobs_running(self) -> bool:
        """Whether a job of the study's sweep has not ended yet (a pruned trial's job may still be stopping)."""
        from ..status import sweep_status

        return not all(s.state.is_final for s in sweep_status(load_manifest(self.sweep_dir)).jobs)

    # -- trials ---------------------------------------------------------------------------

    def _ask(self, n: int) -> None:
        """Ask for ``n`` trials, record the job each will be, then add them to the sweep as one batch."""
        start = len(load_manifest(self.sweep_dir).jobs)
        batch = [self.study.ask(self._distributions) for _ in range(n)]
        for offset, trial in enumerate(batch):
            trial.set_user_attr(TRIAL_JOB_ATTR, start + offset)
        self._submit([trial.params for trial in batch], [trial.number for trial in batch], start)

    def _submit(self, params: Sequence[Dict[str, Any]], numbers: Sequence[int], start: int) -> None:
        indices = self.submit([self.space.trial_overrides(p) for p in params])
        if list(indices) != list(range(start, start + len(params))):
            raise ConfigError(f"trials {list(numbers)} became jobs {indices}, not {start}-{start + len(params) - 1}: "
                              "something else added jobs to the study's sweep")  # fmt: skip

        def change(study: Dict[str, Any]) -> None:
            trial_of_job = study.setdefault("trial_of_job", {})
            for index, number in zip(indices, numbers):
                trial_of_job[str(index)] = number

        record_study(self.sweep_dir, change)

    def _poll(self) -> None:
        """Tell the study each running trial's outcome once its job ended; report and prune the others."""
        from optuna.trial import TrialState

        running = [t for t in self.study.get_trials(deepcopy=False) if t.state == TrialState.RUNNING]
        if not running:
            return
        from ..status import sweep_status

        manifest = load_manifest(self.sweep_dir)
        jobs = {t.number: int(t.user_attrs[TRIAL_JOB_ATTR]) for t in running
                if int(t.user_attrs.get(TRIAL_JOB_ATTR, len(manifest.jobs))) < len(manifest.jobs)}  # fmt: skip
        if not jobs:
            return
        statuses = {s.index: s for s in sweep_status(manifest, only=set(jobs.values())).jobs}
        for trial in running:
            status = statuses.get(jobs.get(trial.number, -1))
            if status is None:
                continue
            record = manifest.jobs[status.index]
            if record.pruned or status.state == JobState.PRUNED:
                self.study.tell(trial.number, state=TrialState.PRUNED, skip_if_finished=True)
            elif status.state == JobState.COMPLETED:
                if self.spec.get("prune"):  # its whole history, so the pruner compares later trials with it
                    self._report(trial, status.index, manifest, prune=False)
                value = self.objective.value(status.record) if status.record is not None else None
                if value is None:
                    self._live(trial).set_user_attr("error", f"the run has no finite {self.objective.selector}")
                    self.study.tell(trial.number, state=TrialState.FAIL)
                else:
                    self.study.tell(trial.number, value)
            elif status.state == JobState.CANCELLED:
                # cancelled (`hpctrack cancel`): not a result; the study asks again for the same parameters
                live = self._live(trial)
                live.set_user_attr(CANCELLED_ATTR, True)
                live.set_user_attr("error", f"cancelled: {status.error or ''}")
                self.study.tell(trial.number, state=TrialState.FAIL)
                self.study.enqueue_trial(trial.params, skip_if_exists=False)
            elif status.state.is_final:
                self._live(trial).set_user_attr("error", f"{status.state.value}: {status.error or ''}")
                self.study.tell(trial.number, state=TrialState.FAIL)
            elif status.state == JobState.RUNNING and self.spec.get("prune"):
                self._report(trial, status.index, manifest)

    def _live(self, trial: Any) -> Any:
        """The running trial ``trial`` (a FrozenTrial) as an ``optuna.trial.Trial`` to report to."""
        import optuna

        return optuna.trial.Trial(self.study, trial._trial_id)

    def _report(self, trial: Any, index: int, manifest: Manifest, *, prune: bool = True) -> None:
        """Tell the pruner the trial's new intermediate values; prune it when the pruner says so (``prune``)."""
        from ..errors import HpctrackError
        from ..store import open_store

        try:
            history = open_store(manifest.run_path(index), manifest.store).read_history(self.objective.key)
        except (KeyError, HpctrackError, OSError):
            return  # nothing logged yet (or not this metric): nothing to report
        reported = max(trial.intermediate_values) if trial.intermediate_values else -math.inf
        live = self._live(trial)
        new = [(step, value) for step, value in self.objective.intermediate(history.step, history.value)
               if step > reported]  # fmt: skip
        for step, value in new:
            live.report(value, step)
        if prune and new and live.should_prune():
            self._prune(trial, index, new[-1][0])

    def _prune(self, trial: Any, index: int, step: int) -> None:
        """Mark the job pruned, stop it, then tell the study (a restart finds the mark and tells it again)."""
        from optuna.trial import TrialState

        from ..launch import get_backend

        now = time.time()

        def mark(m: Manifest) -> None:
            m.jobs[index].pruned = {"time": now, "step": step, "trial": trial.number}

        manifest = update_manifest(self.sweep_dir, mark)
        if not manifest.jobs[index].state.is_final:
            get_backend(manifest.backend).cancel(manifest, [index])
        self.study.tell(trial.number, state=TrialState.PRUNED, skip_if_finished=True)

    # -- starting again ------------------------------------------------------------------------

    def _reconcile(self) -> None:
        """Make the journal and the sweep agree after a driver died (see the module's docs)."""
        from optuna.trial import TrialState

        manifest = load_manifest(self.sweep_dir)
        trials = self.study.get_trials(deepcopy=False)
        claimed = {int(t.user_attrs[TRIAL_JOB_ATTR]) for t in trials if TRIAL_JOB_ATTR in t.user_attrs}
        # Jobs no trial claims (a journal write lost): each gets a trial with its parameters.
        for job in manifest.jobs:
            if job.index in claimed:
                continue
            params = self._params_of(job.overrides)
            if params is None:
                continue
            self.study.enqueue_trial(params, user_attrs={TRIAL_JOB_ATTR: job.index})
            self.study.ask(self._distributions)
        # Trials asked whose job never reached the sweep (the driver died in between): submitted now.
        missing = sorted((t for t in trials if t.state == TrialState.RUNNING
                          and int(t.user_attrs.get(TRIAL_JOB_ATTR, 1 << 62)) >= len(manifest.jobs)),
                         key=lambda t: (int(t.user_attrs.get(TRIAL_JOB_ATTR, 1 << 62)), t.number))  # fmt: skip
        if missing:
            start = len(manifest.jobs)
            for offset, trial in enumerate(missing):
                self._live(trial).set_user_attr(TRIAL_JOB_ATTR, start + offset)
            self._submit([t.params for t in missing], [t.number for t in missing], start)
        # Jobs added to the sweep that never reached the backend (the driver died in between): submitted now.
        # Locally only when no job runner is alive, as one might still hold them in its queue.
        from ..launch import backend_options, get_backend

        manifest = load_manifest(self.sweep_dir)
        stranded = [j.index for j in manifest.jobs if j.state == JobState.PENDING and j.job_id is None]
        backend = get_backend(manifest.backend, **backend_options(manifest.backend, manifest.launcher))
        if stranded and not backend.states_current(manifest):
            backend.preflight()
            backend.submit(manifest, stranded)
        # Pruned marks whose trial was not told yet, and pruned trials whose job still runs.
        manifest = load_manifest(self.sweep_dir)
        for trial in self.study.get_trials(deepcopy=False):
            index = trial.user_attrs.get(TRIAL_JOB_ATTR)
            if index is None or int(index) >= len(manifest.jobs):
                continue
            job = manifest.jobs[int(index)]
            if trial.state == TrialState.PRUNED and not job.pruned:
                self._prune(trial, int(index), max(trial.intermediate_values or {0: 0}))

    def _params_of(self, overrides: Sequence[str]) -> Optional[Dict[str, Any]]:
        """A job's parameters read back from its overrides; None when one is missing or masked."""
        from hydra.core.override_parser.overrides_parser import OverridesParser

        parser = OverridesParser.create()
        values: Dict[str, Any] = {}
        for text in overrides:
            override = parser.parse_override(text)
            values[override.key_or_group] = override.value()
        params = {}
        for param in self.space.params:
            if param.name not in values or values[param.name] == "***":
                return None
            params[param.name] = values[param.name]
        return params

    # -- what the manifest says of the driver ---------------------------------------------------

    def _started(self) -> None:
        from .._process import process_identity

        identity = process_identity(_pid())
        job_id = SCHEDULER_JOB["id"]

        def change(study: Dict[str, Any]) -> None:
            driver = dict(study.get("driver") or {})
            driver.update({"host": socket.gethostname(), "pid": _pid(), "started": time.time(),
                           **{k: v for k, v in identity.items() if k in ("start", "boot")}})  # fmt: skip
            if job_id:
                driver["job_id"] = job_id
            study["driver"] = driver
            study["state"], study["error"], study["ended"] = "running", None, None

        record_study(self.sweep_dir, change)

    def _ended(self, outcome: str, error: Optional[str]) -> None:
        now = time.time()

        def change(study: Dict[str, Any]) -> None:
            study["state"], study["error"], study["ended"] = outcome, error, now

        try:
            record_study(self.sweep_dir, change)
        except Exception:  # the study's state is derived again by status from the lease and the journal
            pass

    def _summarise(self, trials: Sequence[Any]) -> None:
        """Keep the counts and the best trial in the manifest, for readers without Optuna."""
        from optuna.trial import TrialState

        counts: Dict[str, int] = {}
        for trial in trials:
            counts[trial.state.name] = counts.get(trial.state.name, 0) + 1
        complete = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
        best = None
        if complete:
            top = (min if self.objective.minimize else max)(complete, key=lambda t: t.value)
            best = {"trial": top.number, "job": top.user_attrs.get(TRIAL_JOB_ATTR), "value": top.value,
                    "params": dict(top.params)}  # fmt: skip
        summary = {"counts": counts, "best": best}
        if all(self.spec.get(k) == v for k, v in summary.items()):
            return

        def change(study: Dict[str, Any]) -> None:
            study.update(summary)

        self.spec = record_study(self.sweep_dir, change).study


def _pid() -> int:
    import os

    return os.getpid()
