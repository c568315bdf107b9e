"""Requeue and resume: submit jobs of an existing sweep again, into the same runs.

A resubmitted job reopens its run as a new attempt (``Run.attempt``): the run
restores its latest checkpoint, and the points the earlier attempt logged after
it are superseded by the new attempt's, so every history stays one value per
step. Nothing here creates a run directory or renumbers a job.

Two calls racing for the same jobs submit each job once: the jobs are claimed
under the manifest lock (their submission is checked unchanged since the status
was read, then marked pending), and only then submitted, outside the lock.

Which code the resubmitted jobs run (``code``): ``launch``, the sweep's code
snapshot taken at launch, so that every run of a sweep ran the same code; or
``current``, a new snapshot of the code as it is now (a bug fixed since), recorded
in the resubmitted jobs' ``JobRecord.code`` only.
A ``LOST`` job (its run data is gone or unreadable) is never resubmitted by
default: rerunning it starts its run over. With ``include_lost`` it is, after
its damaged data is moved aside into ``runs/<i>/lost-<time>/`` (never deleted).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence

from ._types import JobState
from .errors import ConfigError
from .manifest import Manifest, load_manifest, update_manifest
from .safefs import check_inside
from .safefs import replace as safe_replace
from .status import JobStatus, sweep_status

__all__ = ["DEFAULT_REQUEUE_STATES", "CODE_CHOICES", "RequeuePlan", "requeue_sweep", "resume_sweep",
           "incomplete_jobs", "never_submitted", "move_aside"]  # fmt: skip

#: What ``hpctrack requeue`` selects without ``--state``.
DEFAULT_REQUEUE_STATES = (
    JobState.FAILED,
    JobState.TIMEOUT,
    JobState.PREEMPTED,
    JobState.NODE_FAIL,
    JobState.OUT_OF_MEMORY,
    JobState.CANCELLED,
)
#: Launcher options a requeue may change (``hpctrack requeue --time ...``).
RESOURCE_OPTIONS = ("time", "timeout_min", "partition", "mem_gb", "cpus_per_task", "gpus_per_node", "gres",
                    "constraint", "account", "qos", "parallel")  # fmt: skip
#: Which code resubmitted jobs run: the sweep's snapshot taken at launch, or the code as it is now.
CODE_CHOICES = ("launch", "current")


@dataclass
class RequeuePlan:
    """What a requeue or resume selected, and what it did."""

    sweep_id: str
    selected: List[int] = field(default_factory=list)  # jobs to submit (claimed, unless a dry run)
    reasons: Dict[int, str] = field(default_factory=dict)  # selected job -> why (its state)
    skipped: Dict[int, str] = field(default_factory=dict)  # asked-for jobs left alone -> why
    submitted: bool = False
    resources: Dict[str, Any] = field(default_factory=dict)
    code: str = "launch"  # which code the selected jobs run (CODE_CHOICES)
    code_snapshot: Dict[str, Any] = field(default_factory=dict)  # code="current": the new snapshot (a dry run: digest)
    code_warning: Optional[str] = None  # the code on disk is not what the jobs will run; what to do about it
    #: LOST jobs left alone because ``include_lost`` was not given (what ``--include-lost`` would add).
    lost: Dict[int, str] = field(default_factory=dict)
    #: Resubmitted LOST jobs: where their damaged run data was moved.
    moved: Dict[int, str] = field(default_factory=dict)


def never_submitted(manifest: Manifest, status: JobStatus) -> bool:
    """A PENDING job that nothing holds: no scheduler ever accepted it (``sbatch`` refused, a launch died)."""
    job = manifest.jobs[status.index]
    # A local runner's queue holds pending jobs without ids; a queued job without an id never reached the scheduler.
    from .launch.registry import backend_class

    return status.state == JobState.PENDING and job.job_id is None and backend_class(manifest.backend).has_queue


def incomplete_jobs(manifest: Manifest, statuses: Sequence[JobStatus]) -> Dict[int, str]:
    """Jobs of the sweep's grid with no completed run that nothing is running or queued for.

    Returns job index -> why (``FAILED``, ``CANCELLED``, ``never submitted`` ...).
    """
    out: Dict[int, str] = {}
    for status in statuses:
        if status.state == JobState.PRUNED:
            continue  # its study stopped it on purpose: nothing is missing
        if status.state.is_final and status.state != JobState.COMPLETED:
            out[status.index] = status.state.value
        elif never_submitted(manifest, status):
            out[status.index] = "never submitted"
    return out


def _backend_options(manifest: Manifest, resources: Mapping[str, Any]) -> Dict[str, Any]:
    from .launch import backend_options

    return {**backend_options(manifest.backend, manifest.launcher), **resources}


def _check(manifest: Manifest, resources: Mapping[str, Any], code: str = "launch") -> None:
    if code not in CODE_CHOICES:
        raise ConfigError(f"code must be 'launch' or 'current', not {code!r}: launch runs the sweep's code "
                          "snapshot taken at launch, current the code as it is now")  # fmt: skip
    from .launch.registry import backend_class, backend_names

    backend = backend_class(manifest.backend)
    if not backend.launches:
        raise ConfigError(f"sweep {manifest.id} is a plain script run (python train.py), not a launched sweep: "
                          "run the script again")  # fmt: skip
    unknown = sorted(set(resources) - set(RESOURCE_OPTIONS))
    if unknown:
        raise ConfigError(f"cannot change {', '.join(unknown)} on requeue; changeable: {', '.join(RESOURCE_OPTIONS)}")
    foreign = sorted(set(resources) - set(backend.resource_options))
    if foreign:
        owners = [n for n in backend_names() if set(foreign) <= set(backend_class(n).resource_options)]
        where = " or ".join(backend_class(n).label for n in owners) or "other backends'"
        given = " and ".join(f"--{key.replace('_', '-')}" for key in foreign)
        raise ConfigError(f"{given}: {where} resources, which apply to {where} sweeps only")
    backend(**_backend_options(manifest, resources))  # the backend checks the values, before anything is claimed


def _launch_code_warning(manifest: Manifest) -> Optional[str]:
    """One line when the code on disk is not the sweep's snapshot that the jobs will run again, else None."""
    from .snapshot import code_changes

    hint = "add --code current to run the code as it is now"
    if not manifest.script:
        return None
    if not manifest.code:
        return (f"sweep {manifest.id} was launched without a code snapshot: the jobs run its script as it was "
                f"at launch, its other modules and config files as they are now; {hint}")  # fmt: skip
    changes = code_changes(manifest.code, manifest.script)
    if not changes:
        return None  # the same code, or nothing left to compare with
    listing = ", ".join(changes[:3]) + (f" and {len(changes) - 3} more" if len(changes) > 3 else "")
    return (f"the code on disk differs from the sweep's snapshot {manifest.code.get('digest')} ({listing}); "
            f"the jobs run that launch-time code again: {hint}")  # fmt: skip


def _current_code(manifest: Manifest, dry_run: bool) -> Dict[str, Any]:
    """The snapshot of the code as it is now, taken for ``code="current"`` (a dry run only hashes it)."""
    from .manifest import SWEEPS_DIR
    from .snapshot import code_digest, make_snapshot

    script = manifest.script
    if not script or not Path(script).exists():
        raise ConfigError(f"the sweep's script {script} no longer exists: --code current cannot snapshot the "
                          "code; requeue with --code launch")  # fmt: skip
    too_big = "requeue with --code launch"
    if dry_run:
        return {"digest": code_digest(script, too_big=too_big)}
    root = manifest.path.parent.parent if manifest.path.parent.name == SWEEPS_DIR else None
    if root is None:
        raise ConfigError(f"sweep {manifest.path} is not under a storage root's {SWEEPS_DIR}/: cannot store a "
                          "code snapshot for it")  # fmt: skip
    return make_snapshot(script, root, too_big=too_big)


def requeue_sweep(
    manifest: Manifest,
    *,
    states: Optional[Sequence[JobState]] = None,
    jobs: Optional[Sequence[int]] = None,
    resources: Optional[Mapping[str, Any]] = None,
    dry_run: bool = False,
    include_unsubmitted: bool = False,
    code: str = "launch",
    include_lost: bool = False,
) -> RequeuePlan:
    """Submit the selected jobs of the sweep again, as one array (SLURM) or one runner (local).

    Parameters
    ----------
    states:
        Select jobs in these states (default :data:`DEFAULT_REQUEUE_STATES`).
    jobs:
        Only these job indices (still filtered by state; a job that is pending,
        running or completed is skipped with the reason).
    resources:
        Launcher options to change for the resubmitted jobs, e.g. ``{"time": "04:00:00"}``.
    dry_run:
        Select and report, submit nothing.
    include_unsubmitted:
        Also select jobs that were never submitted (what :func:`resume_sweep` adds).
    include_lost:
        Also select ``LOST`` jobs (their run data is gone or unreadable), whatever
        ``states`` says; their damaged data is moved aside first, and they start over.
    code:
        ``"launch"``: the selected jobs run the sweep's code snapshot taken at launch
        (``plan.code_warning`` says when the code on disk differs); ``"current"``: a new
        snapshot of the code as it is now, for the selected jobs only.

    Raises
    ------
    ConfigError
        Bad input (unknown job, resource or code choice; ``current`` without the
        script); nothing was claimed or submitted.
    """
    resources = {k: v for k, v in (resources or {}).items() if v is not None}
    _check(manifest, resources, code)
    wanted_states = set(states or DEFAULT_REQUEUE_STATES)
    if jobs is not None:
        bad = sorted(set(jobs) - {j.index for j in manifest.jobs})
        if bad:
            raise ConfigError(f"sweep {manifest.id} has jobs 0-{len(manifest.jobs) - 1}; no job {bad[0]}")
    statuses = sweep_status(manifest).jobs
    plan = RequeuePlan(sweep_id=manifest.id, resources=dict(resources), code=code)
    for status in statuses:
        if jobs is not None and status.index not in jobs:
            continue
        if include_unsubmitted and never_submitted(manifest, status):
            plan.selected.append(status.index)
            plan.reasons[status.index] = "never submitted"
        elif not status.state.is_final:
            if jobs is not None:
                plan.skipped[status.index] = f"{status.state.value}: still queued or running"
        elif status.state == JobState.LOST or status.data_lost:
            if include_lost:
                plan.selected.append(status.index)
                plan.reasons[status.index] = status.state.value
            else:
                plan.lost[status.index] = status.data_lost or status.error or "its run data is gone"
                if jobs is not None:
                    plan.skipped[status.index] = (f"{status.state.value}: {plan.lost[status.index]}; add "
                                                  "--include-lost to rerun it")  # fmt: skip
        elif status.state in wanted_states:
            plan.selected.append(status.index)
            plan.reasons[status.index] = status.state.value
        elif jobs is not None:
            plan.skipped[status.index] = (f"{status.state.value}: not selected (add --state {status.state.value} "
                                          "to requeue it)")  # fmt: skip
    if not plan.selected:
        return plan
    if code == "current":  # before anything is claimed: a refused snapshot leaves the sweep as it was
        plan.code_snapshot = _current_code(manifest, dry_run)
    else:
        plan.code_warning = _launch_code_warning(manifest)
    if dry_run:
        return plan
    # A job runs its own snapshot only when it is not the sweep's.
    job_code = plan.code_snapshot if plan.code_snapshot.get("digest") not in (None, manifest.code.get("digest")) \
        else {}  # fmt: skip
    snapshot = {s.index: (manifest.jobs[s.index].job_id, manifest.jobs[s.index].submitted) for s in statuses}
    by_index = {s.index: s for s in statuses}
    claimed: List[int] = []
    earlier_code: Dict[int, Dict[str, Any]] = {}  # to give back if the submission fails

    def claim(m: Manifest) -> None:
        now = time.time()
        m.submission_error = None  # a refused launch being resumed: its jobs are about to be submitted
        for index in plan.selected:
            job = m.jobs[index]
            if (job.job_id, job.submitted) != snapshot[index]:
                continue  # someone else resubmitted it since we looked
            job.resubmit(by_index[index].state, by_index[index].error, now)
            job.history[-1]["code"] = (job.code or m.code).get("digest")  # what the submission before ran
            job.resources = {**job.resources, **resources}
            earlier_code[index], job.code = job.code, dict(job_code)
            claimed.append(index)

    update_manifest(manifest.path, claim)
    for index in plan.selected:
        if index not in claimed:
            plan.skipped[index] = "requeued meanwhile by another call"
    plan.selected = claimed
    if not claimed:
        return plan
    from .launch import get_backend

    fresh = load_manifest(manifest.path)
    backend = get_backend(fresh.backend, **_backend_options(fresh, resources))
    try:
        backend.preflight()
        for index in claimed:
            if by_index[index].state == JobState.LOST or by_index[index].data_lost:
                plan.moved[index] = str(move_aside(fresh.run_path(index), base=fresh.path))
        backend.submit(fresh, claimed)
    except BaseException:
        for index, aside in plan.moved.items():  # nothing was submitted: the data goes back where it was
            for entry in os.listdir(aside):
                safe_replace(Path(aside) / entry, fresh.run_path(index) / entry, fresh.path)
            os.rmdir(aside)
        plan.moved.clear()
        _release(manifest, claimed, earlier_code)
        raise
    plan.submitted = True
    return plan


#: What a rerun of a lost job moves aside: the store, its end record, checkpoints and artifacts
#: (and its recovery files, which a new attempt 1 would otherwise write over).
_LOST_DATA = ("end.json", "checkpoints", "artifacts")


def move_aside(run_dir: Path, *, base: Optional[Path] = None) -> Path:
    """Move a run's damaged data into ``run_dir/lost-<time>/`` so that its job starts over; returns that folder.

    The store (``run.*``), end record, recovery files, checkpoints and artifacts go; logs stay.
    Nothing is deleted. ``base``: the sweep directory (default: the one holding
    ``runs/<i>``); a run directory planted as a link out of it is refused.
    """
    run_dir = Path(run_dir)
    check_inside(run_dir, base if base is not None else run_dir.parent.parent, "move the data of")
    aside = run_dir / f"lost-{time.strftime('%Y%m%d-%H%M%S')}"
    n = 1
    while aside.exists():
        n += 1
        aside = run_dir / f"lost-{time.strftime('%Y%m%d-%H%M%S')}-{n}"
    aside.mkdir()
    for entry in sorted(os.listdir(run_dir)):
        if entry.startswith(("run.", "recovery-")) or entry in _LOST_DATA:
            safe_replace(run_dir / entry, aside / entry, run_dir)
    return aside


def _release(manifest: Manifest, claimed: Sequence[int], earlier_code: Mapping[int, Dict[str, Any]]) -> None:
    """A submission that failed: the claimed jobs go back to how they had ended, with the code they had."""

    def release(m: Manifest) -> None:
        for index in claimed:
            job = m.jobs[index]
            if job.job_id is None and job.history:
                last = job.history.pop()
                job.job_id, job.submitted, job.ended = last["job_id"], last["submitted"], last["ended"]
                job.code = dict(earlier_code.get(index, job.code))
                job.state = JobState(last["state"]) if last.get("state") else JobState.FAILED
                job.error = last.get("error")

    update_manifest(manifest.path, release)


def resume_sweep(
    manifest: Manifest,
    *,
    resources: Optional[Mapping[str, Any]] = None,
    dry_run: bool = False,
    code: str = "launch",
    include_lost: bool = False,
) -> RequeuePlan:
    """Submit the sweep's gap: every job without a completed run that is not queued or running.

    That is the jobs that failed, were cancelled (e.g. a local sweep stopped with
    Ctrl-C), timed out or whose node was lost, plus those never submitted.
    Completed jobs are never submitted again. ``LOST`` jobs (run data gone) only
    with ``include_lost``; ``code`` as in :func:`requeue_sweep`.
    """
    states = [s for s in JobState if s.is_final and s not in (JobState.COMPLETED, JobState.LOST, JobState.PRUNED)]
    return requeue_sweep(manifest, states=states, resources=resources, dry_run=dry_run, include_unsubmitted=True,
                         include_lost=include_lost, code=code)  # fmt: skip
