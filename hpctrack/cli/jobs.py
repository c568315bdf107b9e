"""Commands that submit or stop jobs: ``launch``, ``requeue``, ``resume``, ``cancel``, ``rerun``."""

from __future__ import annotations

import sys
from typing import Any, Callable, Dict, Optional, Sequence

import click

from .._types import JobState, exit_code_for, state_summary
from ..manifest import sweep_ref
from ._base import cli, echo, fail, handle_errors, parse_jobs, root_option
from .render import report_resubmission


class _BackendChoice(click.Choice):
    """``--backend``: the launchable backends, listed when an option is checked or shown, not at import.

    Listing them imports each backend's module; ``hpctrack ls`` or ``table`` need none of them.
    """

    def __init__(self) -> None:
        super().__init__([])

    @property  # type: ignore[override]
    def choices(self) -> Sequence[str]:
        from ..launch.registry import backend_names

        return backend_names()

    @choices.setter
    def choices(self, value: Sequence[str]) -> None:
        pass  # always the registry's


def backend_class(name: str) -> Any:
    """The backend class registered as ``name`` (:func:`hpctrack.launch.registry.backend_class`)."""
    from ..launch.registry import backend_class as registered

    return registered(name)


@cli.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": True})
@click.argument("script", required=False, type=click.Path(dir_okay=False))
@click.argument("overrides", nargs=-1, type=click.UNPROCESSED)
@click.option(
    "--exec",
    "exec_command",
    default=None,
    metavar="CMD",
    help="Sweep a shell command instead of a Hydra script: ${key} in CMD is each job's value of key "
    "(quoted for the shell); every argument is then an override (see README: Sweeps of any program).",
)
@click.option(
    "--config",
    "config_file",
    default=None,
    metavar="FILE.yaml",
    help="--exec: the config the jobs' configs start from (a key not in it needs +key=VALUE).",
)
@click.option(
    "--metrics-file",
    default=None,
    metavar="FILE.csv|FILE.jsonl",
    help="--exec: a file the command appends rows of metrics to, in its run's directory; followed while it runs.",
)
@click.option("--backend", type=_BackendChoice(), default="local", show_default=True, help="Where jobs run.")
@click.option(
    "--parallel",
    "-j",
    type=click.IntRange(min=1),
    default=None,
    help="Most jobs running at once (local default: CPU cores; slurm: the array's %N).",
)
@click.option("--partition", default=None, help="SLURM partition (hydra.launcher.partition).")
@click.option(
    "--time",
    "time_limit",
    default=None,
    metavar="TIME",
    help="SLURM time limit, e.g. 30, 04:00:00, 1-00:00:00 (hydra.launcher.time).",
)
@click.option("--mem-gb", type=float, default=None, help="SLURM memory per node in GB (hydra.launcher.mem_gb).")
@click.option("--cpus-per-task", type=int, default=None, help="SLURM CPUs per task (hydra.launcher.cpus_per_task).")
@click.option("--gpus-per-node", type=int, default=None, help="SLURM GPUs per node (hydra.launcher.gpus_per_node).")
@click.option("--detach", is_flag=True, help="Return at once; the jobs carry on in the background.")
@click.option("--name", default=None, help="Name the sweep, to address it by name later.")
@click.option("--store", default="hdf5", show_default=True, help="Run store backend.")
@click.option("--no-progress", is_flag=True, help="No live progress bar while waiting.")
@click.option(
    "--no-code-snapshot",
    is_flag=True,
    help="Jobs run the code where it is, not a copy taken at launch (hydra.launcher.code_snapshot=false).",
)
@click.option(
    "--share-group",
    default=None,
    metavar="GROUP",
    help="Make the sweep readable, never writable, by GROUP (hydra.launcher.share_group; "
    "default: share_group in the user config, else owner only).",
)
@click.option(
    "--optimize",
    "objective",
    default=None,
    metavar="SEL:min|max",
    help="Run a hyper-parameter search instead of the grid: minimise or maximise SEL (KEY, KEY:last|min|max, "
    "or a summary key) over the search space the overrides give (interval, tag(log,interval), choice, range). "
    "Needs pip install 'hpctrack[optimize]'.",
)
@click.option("--trials", type=int, default=None, help="--optimize: trials in all (completed, failed or pruned).")
@click.option("--direction", default=None, metavar="minimize|maximize", help="--optimize: instead of :min/:max.")
@click.option("--sampler", default=None, metavar="tpe|random", help="--optimize: Optuna's sampler (default tpe).")
@click.option(
    "--prune", default=None, metavar="median|percentile|hyperband", help="--optimize: stop trials that do worse."
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Check every job's config, print what would be submitted (jobs, arrays, resources); submit nothing.",
)
@root_option
@handle_errors
def launch(
    script: Optional[str],
    overrides: Sequence[str],
    exec_command: Optional[str],
    config_file: Optional[str],
    metrics_file: Optional[str],
    backend: str,
    parallel: Optional[int],
    partition: Optional[str],
    time_limit: Optional[str],
    mem_gb: Optional[float],
    cpus_per_task: Optional[int],
    gpus_per_node: Optional[int],
    detach: bool,
    name: Optional[str],
    store: str,
    no_progress: bool,
    no_code_snapshot: bool,
    share_group: Optional[str],
    objective: Optional[str],
    trials: Optional[int],
    direction: Optional[str],
    sampler: Optional[str],
    prune: Optional[str],
    dry_run: bool,
    root: Optional[str],
) -> None:
    """Run SCRIPT's Hydra sweep over OVERRIDES (e.g. 'optimizer.lr=0.01,0.1' 'seed=0,1,2').

    hpctrack's options may stand anywhere; every other argument after SCRIPT goes to Hydra,
    overrides and Hydra's own flags (e.g. --config-name) alike. With --optimize the overrides
    give a search space, and a detached driver runs the study (see README: Hyper-parameter search).
    With --exec CMD there is no SCRIPT: each job runs CMD, and every argument is an override.
    """
    from ..launch.script import launch_script

    slurm = {"partition": partition, "time": time_limit, "mem_gb": mem_gb, "cpus_per_task": cpus_per_task,
             "gpus_per_node": gpus_per_node}  # fmt: skip
    if exec_command is None:
        given = [flag for flag, value in (("--config", config_file), ("--metrics-file", metrics_file)) if value]
        if given:
            fail(f"{given[0]} is an option of --exec (a sweep of a shell command); a Hydra script has its own "
                 "config (--config-name, --config-path)")  # fmt: skip
        if script is None:
            raise click.UsageError("missing SCRIPT (a Hydra script), or --exec CMD (a shell command)")
    else:
        if objective is not None:
            fail("--optimize is not an option of --exec: a study runs a Hydra script")
        _launch_exec(exec_command, [script, *overrides] if script is not None else list(overrides), config_file,
                     metrics_file, backend=backend, parallel=parallel, detach=detach, name=name, root=root,
                     store=store, progress=not no_progress, slurm=slurm, code_snapshot=not no_code_snapshot,
                     share_group=share_group, dry_run=dry_run)  # fmt: skip
        return
    assert script is not None
    study = {"--trials": trials, "--direction": direction, "--sampler": sampler, "--prune": prune}
    if objective is None:
        given = [flag for flag, value in study.items() if value is not None]
        if given:
            fail(f"{given[0]} is an option of --optimize; add --optimize KEY:min|max")
    elif dry_run:
        fail("--dry-run is not an option of --optimize (the study chooses its trials as it runs)")
    else:
        _launch_study(script, overrides, objective, trials, direction, sampler, prune, backend=backend,
                      parallel=parallel, name=name, root=root, store=store, slurm=slurm,
                      no_code_snapshot=no_code_snapshot, share_group=share_group)  # fmt: skip
        return

    try:
        manifest = launch_script(
            script,
            list(overrides),
            backend=backend,
            parallel=parallel,
            detach=detach,
            name=name,
            root=root,
            store=store,
            progress=not no_progress,
            command=["hpctrack", *sys.argv[1:]],
            slurm=slurm,
            code_snapshot=not no_code_snapshot,
            share_group=share_group,
            dry_run=dry_run,
        )
    except KeyboardInterrupt:
        echo("interrupted: the sweep's jobs were cancelled (see `hpctrack status latest`)", err=True)
        sys.exit(130)
    if manifest is None:  # a dry run: the launcher printed the plan
        return
    _report_launch(manifest, detach)


def _report_launch(manifest: Any, detach: bool) -> None:
    """One line on what was launched; exit 1 when a local sweep waited for did not complete every job."""
    ref = sweep_ref(manifest)
    if backend_class(manifest.backend).has_queue:
        echo(
            f"sweep {manifest.id}: {len(manifest.jobs)} job{'s' if len(manifest.jobs) != 1 else ''} queued as "
            f"{backend_class(manifest.backend).label} job array "
            f"{', '.join(manifest.array_ids())} (watch: hpctrack status {ref} --watch)"
        )
        return
    if detach:
        echo(
            f"sweep {manifest.id}: {len(manifest.jobs)} jobs launched in the background (watch: hpctrack status {ref})"
        )
        return
    from ..status import job_statuses

    states = [s.state for s in job_statuses(manifest)]
    echo(f"sweep {manifest.id}: {state_summary(states)}  (results: hpctrack table {ref})")
    if exit_code_for(states):
        sys.exit(1)


def _launch_exec(command: str, overrides: Sequence[str], config_file: Optional[str], metrics_file: Optional[str],
                 **options: Any) -> None:  # fmt: skip
    """``launch --exec``: a sweep of a shell command."""
    from ..launch.command import launch_command

    try:
        manifest = launch_command(command, list(overrides), config_file=config_file, metrics_file=metrics_file,
                                  command=["hpctrack", *sys.argv[1:]], **options)  # fmt: skip
    except KeyboardInterrupt:
        echo("interrupted: the sweep's jobs were cancelled (see `hpctrack status latest`)", err=True)
        sys.exit(130)
    if manifest is not None:  # None: a dry run, which printed the plan
        _report_launch(manifest, options["detach"])


def _launch_study(script: str, overrides: Sequence[str], objective: str, trials: Optional[int],
                  direction: Optional[str], sampler: Optional[str], prune: Optional[str], *, backend: str,
                  parallel: Optional[int], name: Optional[str], root: Optional[str], store: str,
                  slurm: Dict[str, Any], no_code_snapshot: bool, share_group: Optional[str]) -> None:  # fmt: skip
    """``launch --optimize``: create the study's sweep, start its driver, say where it runs."""
    from ..optimize.launch import StudyOptions, launch_study

    if trials is None:
        fail("--optimize needs --trials N: how many trials the study runs in all")
    assert trials is not None
    options = StudyOptions(objective=objective, trials=trials, parallel=1 if parallel is None else parallel,
                           direction=direction, sampler=sampler or "tpe", prune=prune)  # fmt: skip
    manifest = launch_study(script, list(overrides), options, backend=backend, name=name, root=root, store=store,
                            command=["hpctrack", *sys.argv[1:]], slurm=slurm,
                            code_snapshot=not no_code_snapshot, share_group=share_group)  # fmt: skip
    driver = manifest.study.get("driver") or {}
    where = f"SLURM job {driver['job_id']}" if driver.get("job_id") else f"pid {driver.get('pid')} in the background"
    ref = manifest.name or manifest.id
    echo(f"study {manifest.id}: {options.trials} trials, {options.parallel} at a time, driven by {where} "
         f"(watch: hpctrack status {ref} --watch; results: hpctrack table {ref})")  # fmt: skip


@cli.command()
@click.argument("sweep", default="latest")
@click.option(
    "--state",
    "states",
    multiple=True,
    metavar="STATE",
    type=click.Choice([s.value for s in JobState if not s.is_final], case_sensitive=False),
    help="Only jobs in this state (PENDING or RUNNING). Repeatable.",
)
@click.option("--jobs", "job_list", default=None, metavar="I,J,...", help="Only these job indices.")
@root_option
@handle_errors
def cancel(sweep: str, states: Sequence[str], job_list: Optional[str], root: Optional[str]) -> None:
    """Cancel the jobs of SWEEP that have not ended (default: all of them)."""
    from ..sweep import load_sweep

    indices = parse_jobs(job_list)
    sw = load_sweep(sweep, root=root)
    manifest = sw.manifest
    if manifest.study and indices is None and not states:
        from ..optimize.control import cancel_study

        note = cancel_study(manifest)  # first: a live driver would submit new trials
        echo(f"study {manifest.id}: driver stopped" if note is None else f"not stopped: {note}", err=note is not None)
    cancelled = sw.cancel(states=[JobState(s.upper()) for s in states] or None, jobs=indices)
    if not cancelled:
        echo("nothing to cancel")
    else:
        echo(
            f"cancelled {len(cancelled)} job{'s' if len(cancelled) != 1 else ''}: "
            + ",".join(str(i) for i in cancelled)
        )
    for note in getattr(sw, "cancel_notes", []):
        click.echo(f"not signalled: {note}", err=True)


_RESOURCE_OPTIONS = [
    click.option(
        "--time",
        "time_limit",
        default=None,
        metavar="TIME",
        help="New SLURM time limit for the resubmitted jobs (04:00:00, 1-12:00:00).",
    ),
    click.option("--partition", default=None, help="New SLURM partition."),
    click.option("--mem-gb", type=float, default=None, help="New memory per node in GB."),
    click.option("--cpus-per-task", type=int, default=None, help="New CPUs per task."),
    click.option("--gpus-per-node", type=int, default=None, help="New GPUs per node."),
    click.option("--parallel", "-j", type=click.IntRange(min=1), default=None, help="Local sweeps: jobs at once."),
    click.option("--detach", is_flag=True, help="Local sweeps: return at once, the jobs run in the background."),
    click.option("--dry-run", is_flag=True, help="Only list what would be submitted."),
    click.option("--no-progress", is_flag=True, help="Local sweeps: no live progress bar while waiting."),
]


def _resource_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(_RESOURCE_OPTIONS):
        fn = option(fn)
    return fn


_CODE_OPTION = click.option(
    "--code", type=click.Choice(["launch", "current"]), default="launch", show_default=True,
    help="Code the resubmitted jobs run: the sweep's snapshot taken at launch, or the code as it is now "
         "(a new snapshot, for these jobs only).")  # fmt: skip


_INCLUDE_LOST_HELP = (
    "Also rerun LOST jobs (their run data is gone or unreadable) from scratch, after moving "
    "their damaged data aside into runs/<i>/lost-<time>/."
)


def _resources(**options: Any) -> Dict[str, Any]:
    names = {"time_limit": "time"}
    return {names.get(k, k): v for k, v in options.items() if v is not None}


@cli.command()
@click.argument("sweep", default="latest")
@click.option(
    "--state",
    "states",
    multiple=True,
    metavar="STATE",
    type=click.Choice([s.value for s in JobState if s.is_final], case_sensitive=False),
    help="Only jobs in this state (default: FAILED, TIMEOUT, PREEMPTED, NODE_FAIL, OUT_OF_MEMORY, "
    "CANCELLED). Repeatable.",
)
@click.option("--jobs", "job_list", default=None, metavar="I,J,...", help="Only these job indices.")
@_resource_options
@_CODE_OPTION
@click.option("--include-lost", is_flag=True, help=_INCLUDE_LOST_HELP)
@root_option
@handle_errors
def requeue(
    sweep: str,
    states: Sequence[str],
    job_list: Optional[str],
    dry_run: bool,
    detach: bool,
    code: str,
    include_lost: bool,
    root: Optional[str],
    no_progress: bool,
    **resources: Any,
) -> None:
    """Submit the failed, timed-out, preempted or cancelled jobs of SWEEP again, into their runs.

    Each resubmitted run continues as its next attempt from its latest checkpoint. Jobs
    still pending or running are never requeued. They run the sweep's launch-time code
    unless --code current.
    """
    from ..sweep import load_sweep

    sw = load_sweep(sweep, root=root)
    if sw.manifest.study:
        fail(f"the trials of study {sw.manifest.id} are not requeued: its driver told Optuna how each ended and "
             f"asks for new trials instead; `hpctrack resume {sw.manifest.name or sw.manifest.id}` starts a "
             "stopped or dead driver again")  # fmt: skip
    plan = sw.requeue(
        states=[JobState(s.upper()) for s in states] or None,
        jobs=parse_jobs(job_list),
        resources=_resources(**resources),
        dry_run=dry_run,
        code=code,
        include_lost=include_lost,
    )
    if report_resubmission(sw, plan, "requeue", dry_run):
        _wait_for_resubmitted(sw, plan, detach, progress=not no_progress)


@cli.command()
@click.argument("sweep", default="latest")
@_resource_options
@_CODE_OPTION
@click.option("--include-lost", is_flag=True, help=_INCLUDE_LOST_HELP)
@root_option
@handle_errors
def resume(
    sweep: str,
    dry_run: bool,
    detach: bool,
    code: str,
    include_lost: bool,
    root: Optional[str],
    no_progress: bool,
    **resources: Any,
) -> None:
    """Submit every job of SWEEP without a completed run that is not queued or running.

    For a launch that was interrupted (Ctrl-C, a lost runner, a refused submission) and
    for whatever failed: completed jobs are never submitted again, and no run is renumbered.
    They run the sweep's launch-time code unless --code current.
    """
    from ..sweep import load_sweep

    sw = load_sweep(sweep, root=root)
    if sw.manifest.study:
        from ..optimize.control import resume_study

        if include_lost or code != "launch" or any(v is not None for v in resources.values()):
            fail("resuming a study starts its driver again, which submits new trials with the study's settings: "
                 "--code, --include-lost and resource options do not apply")  # fmt: skip
        echo(resume_study(sw.path, dry_run=dry_run))
        return
    plan = sw.resume(resources=_resources(**resources), dry_run=dry_run, code=code, include_lost=include_lost)
    if report_resubmission(sw, plan, "resume", dry_run):
        _wait_for_resubmitted(sw, plan, detach, progress=not no_progress)


@cli.command()
@click.argument("run")
@click.argument("secrets", nargs=-1)
@click.option("--backend", type=_BackendChoice(), default="local", show_default=True)
@click.option(
    "--at-commit",
    is_flag=True,
    help="Run the recorded code: a git worktree at the run's commit with its uncommitted diff applied.",
)
@click.option("--detach", is_flag=True, help="Return at once; the job carries on in the background.")
@click.option("--no-progress", is_flag=True, help="No live progress bar while waiting.")
@root_option
@handle_errors
def rerun(
    run: str,
    secrets: Sequence[str],
    backend: str,
    at_commit: bool,
    detach: bool,
    no_progress: bool,
    root: Optional[str],
) -> None:
    """RUN's exact config again, as a new one-run sweep (RUN: SWEEP/JOB, a run id or a run directory).

    SECRETS: the values of the run's secret overrides, recorded masked, given again (db.password=VALUE).
    """
    from ..rerun import rerun_run
    from ..runinfo import resolve_run
    from ..status import job_statuses

    sweep, index = resolve_run(run, root)
    manifest, warnings = rerun_run(sweep, index, backend=backend, at_commit=at_commit, root=root,
                                   progress=not no_progress, detach=detach, secrets=list(secrets))  # fmt: skip
    for warning in warnings:
        echo(f"warning: {warning}", err=True)
    if backend_class(backend).has_queue or detach:
        echo(f"rerun of {sweep.id}/{index}: sweep {manifest.id} submitted (watch: hpctrack status {manifest.id})")
        return
    states = [s.state for s in job_statuses(manifest)]
    echo(
        f"rerun of {sweep.id}/{index}: sweep {manifest.id}: {state_summary(states)}  "
        f"(compare: hpctrack diff {sweep.id}/{index} {manifest.id}/0)"
    )
    if exit_code_for(states):
        sys.exit(1)


def _wait_for_resubmitted(sw: Any, plan: Any, detach: bool, *, progress: bool = True) -> None:
    """A local sweep's resubmitted jobs, waited for unless ``detach``; exit 1 unless every one completed."""
    manifest = sw.manifest
    if not backend_class(manifest.backend).has_queue and not detach:
        from ..launch.progress import wait_with_progress

        try:
            wait_with_progress(manifest.path, show=progress and sys.stderr.isatty())
        except KeyboardInterrupt:
            echo("interrupted: the sweep's jobs were cancelled (see `hpctrack status`)", err=True)
            sys.exit(130)
        states = [s.state for s in sw.status() if s.index in plan.selected]
        echo(f"sweep {manifest.id}: {state_summary(states)} of the resubmitted jobs")
        if exit_code_for(states):
            sys.exit(1)
