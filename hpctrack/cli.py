"""The ``hpctrack`` command line: each command parses, makes one library call, renders.

Expected failures (errors from hpctrack, and OS errors such as an unwritable
output file) become ``Error: <one line>`` and exit code 1; usage errors exit 2;
Ctrl-C exits 130. ``--debug`` (or ``HPCTRACK_DEBUG=1``) shows the full
traceback instead. Every ``HPCTRACK_*`` variable is checked before a command
runs, so a bad value is one line naming it. JSON outputs are strict JSON: NaN
and infinities become null.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

import click

from .aggregate import AGGREGATIONS

from ._terminal import markup, printable, printable_block
from ._types import JobState, finite_json, state_summary
from .errors import HpctrackError
from .launch.registry import backend_class, backend_names

__all__ = ["main", "cli"]

_DEBUG = {"on": False}


def _fail(message: str) -> "None":
    click.echo(f"Error: {printable(' '.join(message.split()))}", err=True)  # one line, whatever the message held
    sys.exit(1)


def _echo(text: str = "", err: bool = False) -> None:
    """One line for a person: names and values in it come from the store, so controls are shown, not obeyed."""
    click.echo(printable(text), err=err)


def _os_error_line(err: OSError) -> str:
    """An OSError as ``<what>: <path>`` (``No such file or directory: /x/y.csv``)."""
    what = err.strerror or str(err) or type(err).__name__
    path = err.filename if err.filename is not None else None
    return f"{what}: {path}" if path is not None else what


def _handle_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except HpctrackError as err:
            if _DEBUG["on"]:
                raise
            _fail(str(err))
        except OSError as err:  # a path that is not there or not writable: expected, one line
            if _DEBUG["on"]:
                raise
            _fail(_os_error_line(err))
        except KeyboardInterrupt:
            if _DEBUG["on"]:
                raise
            _echo("interrupted", err=True)
            sys.exit(130)

    return wrapper


def _echo_json(data: Any) -> None:
    """Strict JSON on stdout: NaN and infinities become null (JSON has no such numbers)."""
    click.echo(json.dumps(finite_json(data), indent=1, default=str, allow_nan=False))


root_option = click.option(
    "--root", envvar="HPCTRACK_ROOT", default=None, metavar="DIR",
    help="Storage root (default: $HPCTRACK_ROOT, `root:` in ~/.config/hpctrack/config.yaml, ~/.local/share/hpctrack).",
)


def _fmt_duration(seconds: Optional[float]) -> str:
    if seconds is None:
        return ""
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _cell(value: Any) -> str:
    """A value in a rich table: formatted, controls escaped, and never read as markup."""
    return markup(_fmt_value(value))


def _fmt_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if value != value:  # NaN
            return ""
        return f"{value:.4g}"
    return str(value)


_STATE_STYLE = {
    JobState.COMPLETED: "green", JobState.RUNNING: "cyan", JobState.PENDING: "dim",
    JobState.FAILED: "red", JobState.CANCELLED: "yellow", JobState.TIMEOUT: "red",
    JobState.OUT_OF_MEMORY: "red", JobState.NODE_FAIL: "red", JobState.PREEMPTED: "yellow",
    JobState.LOST: "bold red",
}


_STATES = {s.value for s in JobState}


def _print_wide(renderable: Any) -> None:
    """Print a table at its natural width: cells are never cut to fit a narrow terminal or pipe."""
    from rich.console import Console

    console = Console()
    needed = console.measure(renderable, options=console.options.update_width(100_000)).maximum
    if needed > console.width:
        console = Console(width=needed)
    console.print(renderable)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="hpctrack")
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors (also HPCTRACK_DEBUG=1).")
def cli(debug: bool) -> None:
    """Experiment tracking for HPC clusters: launch Hydra sweeps, watch them, tabulate results."""
    from . import settings

    try:
        _DEBUG["on"] = debug or bool(settings.get("HPCTRACK_DEBUG"))
        for name in settings.SETTINGS:  # a bad value stops here, naming itself, before anything is written
            settings.get(name)
    except HpctrackError as err:
        if _DEBUG["on"]:
            raise
        _fail(str(err))


@cli.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": True})
@click.argument("script", type=click.Path(dir_okay=False))
@click.argument("overrides", nargs=-1, type=click.UNPROCESSED)
@click.option("--backend", type=click.Choice(backend_names()), default="local", show_default=True,
              help="Where jobs run.")
@click.option("--parallel", "-j", type=int, default=None,
              help="Most jobs running at once (local default: CPU cores; slurm: the array's %N).")
@click.option("--partition", default=None, help="SLURM partition (hydra.launcher.partition).")
@click.option("--time", "time_limit", default=None, metavar="TIME",
              help="SLURM time limit, e.g. 30, 04:00:00, 1-00:00:00 (hydra.launcher.time).")
@click.option("--detach", is_flag=True, help="Return at once; the jobs carry on in the background.")
@click.option("--name", default=None, help="Name the sweep, to address it by name later.")
@click.option("--store", default="hdf5", show_default=True, help="Run store backend.")
@click.option("--no-progress", is_flag=True, help="No live progress bar while waiting.")
@click.option("--no-code-snapshot", is_flag=True,
              help="Jobs run the code where it is, not a copy taken at launch (hydra.launcher.code_snapshot=false).")
@click.option("--share-group", default=None, metavar="GROUP",
              help="Make the sweep readable, never writable, by GROUP (hydra.launcher.share_group; "
                   "default: share_group in the user config, else owner only).")
@root_option
@_handle_errors
def launch(script: str, overrides: Sequence[str], backend: str, parallel: Optional[int], partition: Optional[str],
           time_limit: Optional[str], detach: bool, name: Optional[str], store: str, no_progress: bool,
           no_code_snapshot: bool, share_group: Optional[str], root: Optional[str]) -> None:
    """Run SCRIPT's Hydra sweep over OVERRIDES (e.g. 'optimizer.lr=0.01,0.1' 'seed=0,1,2').

    hpctrack's options may stand anywhere; every other argument after SCRIPT goes to Hydra,
    overrides and Hydra's own flags (e.g. --config-name) alike.
    """
    from .launch.script import launch_script

    try:
        manifest = launch_script(script, list(overrides), backend=backend, parallel=parallel, detach=detach,
                                 name=name, root=root, store=store, progress=not no_progress,
                                 command=["hpctrack", *sys.argv[1:]],
                                 slurm={"partition": partition, "time": time_limit},
                                 code_snapshot=not no_code_snapshot, share_group=share_group)
    except KeyboardInterrupt:
        _echo("interrupted: the sweep's jobs were cancelled (see `hpctrack status latest`)", err=True)
        sys.exit(130)
    ref = manifest.name or manifest.id
    if backend_class(manifest.backend).has_queue:
        arrays = sorted({j.job_id.split("_", 1)[0] for j in manifest.jobs if j.job_id})
        _echo(f"sweep {manifest.id}: {len(manifest.jobs)} jobs queued as "
              f"{backend_class(manifest.backend).label} job array "
                   f"{', '.join(arrays)} (watch: hpctrack status {ref} --watch)")
        return
    if detach:
        _echo(f"sweep {manifest.id}: {len(manifest.jobs)} jobs launched in the background "
                   f"(watch: hpctrack status {ref})")
        return
    from .status import job_statuses

    states = [s.state for s in job_statuses(manifest)]
    _echo(f"sweep {manifest.id}: {state_summary(states)}  (results: hpctrack table {ref})")
    if any(s != JobState.COMPLETED for s in states):
        sys.exit(1)


@cli.command("ls")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@root_option
@_handle_errors
def ls_command(fmt: str, root: Optional[str]) -> None:
    """The sweeps under the root, newest first."""
    from .config import resolve_root
    from .status import recorded_states
    from .sweep import list_sweeps

    rows = []
    for sweep in list_sweeps(root):
        try:  # one damaged sweep is named and skipped, never fatal to the listing
            m = sweep.manifest
            states, unconfirmed = recorded_states(m)
        except HpctrackError as err:
            _echo(f"skipped {sweep.path}: {' '.join(str(err).split())}", err=True)
            continue
        summary = state_summary(states)
        if unconfirmed:
            summary += f" ({unconfirmed} unconfirmed: `hpctrack status {m.name or m.id}` asks {m.backend})"
        rows.append({
            "name": m.name, "id": m.id, "created": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(m.created)),
            "backend": m.backend, "script": os.path.basename(m.script) if m.script else "",
            "jobs": summary, "unconfirmed": unconfirmed, "path": str(m.path),
        })
    if fmt == "json":
        _echo_json(rows)
        return
    if not rows:
        _echo(f"no sweeps under {resolve_root(root)}")
        return
    from rich.table import Table

    table = Table(box=None, header_style="bold")
    for column in ("name", "id", "created", "backend", "script", "jobs"):
        table.add_column(column)
    for row in rows:
        table.add_row(*(markup(row[c] or "") for c in ("name", "id", "created", "backend", "script", "jobs")))
    _print_wide(table)


@cli.command()
@click.argument("sweep", default="latest")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--watch", "-w", is_flag=True, help="Refresh in place until every job has ended.")
@click.option("--interval", type=float, default=5.0, show_default=True, help="Seconds between refreshes (--watch).")
@click.option("--stalled", "only_stalled", is_flag=True,
              help="Only jobs that stalled: running, but no run.log call for far longer than their step cadence.")
@root_option
@_handle_errors
def status(sweep: str, fmt: str, watch: bool, interval: float, only_stalled: bool, root: Optional[str]) -> None:
    """Every job of SWEEP (default: latest) with state, progress, runtime and error."""
    from .sweep import load_sweep

    sw = load_sweep(sweep, root=root)
    if fmt == "json":
        from .requeue import incomplete_jobs

        manifest = sw.manifest
        st = sw.sweep_status()
        jobs = [s for s in st.jobs if s.stalled] if only_stalled else st.jobs
        _echo_json({"sweep": manifest.id, "name": manifest.name, "path": str(manifest.path),
                    "backend": manifest.backend, "note": st.note,
                    "summary": state_summary(s.state for s in st.jobs),
                    "incomplete": {str(i): why for i, why in incomplete_jobs(manifest, st.jobs).items()},
                    "lost": {str(i): why for i, why in st.lost.items()},
                    "stalled": [s.index for s in st.jobs if s.stalled],
                    "jobs": [s.to_json() for s in jobs]})  # fmt: skip
        return
    if not watch:
        _print_wide(_status_view(sw, only_stalled)[0])
        return
    if not sys.stdout.isatty():
        _watch_into_file(sw, only_stalled, interval)
        return
    from rich.console import Console
    from rich.live import Live

    with Live(console=Console(), auto_refresh=False) as live:
        while True:
            view, done, _ = _status_view(sw, only_stalled)
            live.update(view, refresh=True)
            if done:
                break
            time.sleep(interval)


def _watch_into_file(sw: Any, only_stalled: bool, interval: float) -> None:
    """``status --watch`` into a pipe or file: each view at its natural width, printed when something changed."""
    last = None
    try:
        while True:
            view, done, signature = _status_view(sw, only_stalled)
            if signature != last:  # states, errors, flags; not every tick of the runtimes
                _print_wide(view)
                sys.stdout.flush()
                last = signature
            if done:
                return
            time.sleep(interval)
    except KeyboardInterrupt:
        return


def _status_view(sw: Any, only_stalled: bool = False) -> "tuple[Any, bool, Any]":
    """The status table of a sweep as a rich renderable, whether every job has ended, and what it shows
    (states, errors, notes, flags; not runtimes), to tell whether it changed."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    manifest = sw.manifest
    st = sw.sweep_status()
    ref = manifest.name or manifest.id
    title = f"sweep {manifest.id}" + (f" ({manifest.name})" if manifest.name else "") + f" · {manifest.backend}"
    table = Table(title=markup(title), title_justify="left", box=None, header_style="bold")
    for column in ("job", "state", "overrides", "step", "attempt", "runtime", "job id", "node", "error / note"):
        table.add_column(column, no_wrap=column != "error / note")
    shown = [s for s in st.jobs if s.stalled] if only_stalled else st.jobs
    for s in shown:
        flag = " [red](hung?)" if s.possibly_hung else (" [yellow](stalled)" if s.stalled else "")
        state = f"[{_STATE_STYLE.get(s.state, '')}]{s.state.value}" + flag
        said = markup(s.error) if s.error else (f"[dim]{markup(s.note)}" if s.note else "")
        if s.error and s.note:
            said += f" [dim]({markup(s.note)})"
        table.add_row(str(s.index), state, markup(" ".join(s.overrides)),
                      "" if s.last_step is None else str(s.last_step), "" if s.attempt is None else str(s.attempt),
                      _fmt_duration(s.runtime_s), markup(s.job_id or ""), markup(s.node or ""), said)
    # Text is never markup; printable() keeps its controls from the terminal.
    parts: List[Any] = [table, Text(state_summary(s.state for s in st.jobs))]
    from .requeue import incomplete_jobs

    gap = {i: why for i, why in incomplete_jobs(manifest, st.jobs).items() if i not in st.lost}
    if gap:
        listing = ", ".join(f"{i} ({why})" for i, why in sorted(gap.items()))
        parts.append(Text(printable(f"without a completed run: {len(gap)} of {len(st.jobs)} configs: {listing}; "
                                    f"`hpctrack resume {ref}` submits them"), style="yellow"))
    if st.lost:
        listing = "; ".join(f"job {i} ({why})" for i, why in sorted(st.lost.items()))
        parts.append(Text(printable(f"lost: {listing}. Their run data is gone or unreadable: `hpctrack verify {ref}` "
                                    f"says more and `--repair` restores what it can; `hpctrack resume {ref} "
                                    "--include-lost` reruns them"), style="red"))  # fmt: skip
    stalled = [s.index for s in st.jobs if s.stalled]
    if stalled:
        parts.append(Text(f"stalled: job {', '.join(map(str, stalled))}: no run.log call for far longer than the "
                          "job's own step interval (a blocked collective or data loader?)", style="yellow"))
    if st.note:
        parts.append(Text(printable(f"note: {st.note}"), style="yellow"))
    signature = [(s.index, s.state, s.error, s.note, s.stalled, s.possibly_hung) for s in shown] + [st.note]
    return Group(*parts), all(s.state.is_final for s in st.jobs), signature


@cli.command()
@click.argument("sweep", default="latest")
@click.option("--state", "states", multiple=True, metavar="STATE",
              type=click.Choice([s.value for s in JobState if not s.is_final], case_sensitive=False),
              help="Only jobs in this state (PENDING or RUNNING). Repeatable.")
@click.option("--jobs", "job_list", default=None, metavar="I,J,...", help="Only these job indices.")
@root_option
@_handle_errors
def cancel(sweep: str, states: Sequence[str], job_list: Optional[str], root: Optional[str]) -> None:
    """Cancel the jobs of SWEEP that have not ended (default: all of them)."""
    from .sweep import load_sweep

    indices = _parse_jobs(job_list)
    sw = load_sweep(sweep, root=root)
    cancelled = sw.cancel(states=[JobState(s.upper()) for s in states] or None, jobs=indices)
    if not cancelled:
        _echo("nothing to cancel")
    else:
        _echo(f"cancelled {len(cancelled)} job{'s' if len(cancelled) != 1 else ''}: "
                   + ",".join(str(i) for i in cancelled))
    for note in getattr(sw, "cancel_notes", []):
        click.echo(f"not signalled: {note}", err=True)


_RESOURCE_OPTIONS = [
    click.option("--time", "time_limit", default=None, metavar="TIME",
                 help="New SLURM time limit for the resubmitted jobs (04:00:00, 1-12:00:00)."),
    click.option("--partition", default=None, help="New SLURM partition."),
    click.option("--mem-gb", type=float, default=None, help="New memory per node in GB."),
    click.option("--cpus-per-task", type=int, default=None, help="New CPUs per task."),
    click.option("--gpus-per-node", type=int, default=None, help="New GPUs per node."),
    click.option("--parallel", "-j", type=int, default=None, help="Local sweeps: jobs at once."),
    click.option("--detach", is_flag=True, help="Local sweeps: return at once, the jobs run in the background."),
    click.option("--dry-run", is_flag=True, help="Only list what would be submitted."),
]


def _resource_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(_RESOURCE_OPTIONS):
        fn = option(fn)
    return fn


_CODE_OPTION = click.option(
    "--code", type=click.Choice(["launch", "current"]), default="launch", show_default=True,
    help="Code the resubmitted jobs run: the sweep's snapshot taken at launch, or the code as it is now "
         "(a new snapshot, for these jobs only).")  # fmt: skip


def _report_resubmission(sw: Any, plan: Any, verb: str, dry_run: bool, detach: bool) -> None:
    for index, why in sorted(plan.skipped.items()):
        _echo(f"job {index} skipped: {why}")
    unlisted = {i: why for i, why in plan.lost.items() if i not in plan.skipped}
    if unlisted:
        ref = sw.manifest.name or sw.manifest.id
        _echo(f"not {verb}d: {len(unlisted)} LOST job{'s' if len(unlisted) != 1 else ''} whose run data is gone: "
                   + "; ".join(f"{i} ({why})" for i, why in sorted(unlisted.items()))
                   + f". `hpctrack verify {ref}` says why; add --include-lost to rerun them from scratch")
    for index, where in sorted(plan.moved.items()):
        _echo(f"job {index}: its damaged run data was moved aside to {where}")
    if not plan.selected:
        _echo(f"nothing to {verb}")
        return
    if plan.code_warning:
        _echo(f"warning: {plan.code_warning}", err=True)
    listing = ", ".join(f"{i} ({plan.reasons.get(i, '?')})" for i in plan.selected)
    changes = "".join(f" {k}={v}" for k, v in plan.resources.items())
    listing += (f" with{changes}" if changes else "") + (
        f", running the code as it is now (snapshot {plan.code_snapshot.get('digest')})" if plan.code == "current"
        else "")  # fmt: skip
    if dry_run:
        _echo(f"would {verb} {len(plan.selected)} job{'s' if len(plan.selected) != 1 else ''}: {listing}")
        return
    manifest = sw.manifest
    _echo(f"{verb}d {len(plan.selected)} job{'s' if len(plan.selected) != 1 else ''} of sweep {manifest.id}: "
               f"{listing}")
    if not backend_class(manifest.backend).has_queue and not detach:
        from .launch.progress import wait_with_progress

        try:
            wait_with_progress(manifest.path, show=sys.stderr.isatty())
        except KeyboardInterrupt:
            _echo("interrupted: the sweep's jobs were cancelled (see `hpctrack status`)", err=True)
            sys.exit(130)
        states = [s.state for s in sw.status() if s.index in plan.selected]
        _echo(f"sweep {manifest.id}: {state_summary(states)} of the resubmitted jobs")
        if any(s != JobState.COMPLETED for s in states):
            sys.exit(1)


_INCLUDE_LOST_HELP = ("Also rerun LOST jobs (their run data is gone or unreadable) from scratch, after moving "
                      "their damaged data aside into runs/<i>/lost-<time>/.")


def _resources(**options: Any) -> Dict[str, Any]:
    names = {"time_limit": "time"}
    return {names.get(k, k): v for k, v in options.items() if v is not None}


@cli.command()
@click.argument("sweep", default="latest")
@click.option("--state", "states", multiple=True, metavar="STATE",
              type=click.Choice([s.value for s in JobState if s.is_final], case_sensitive=False),
              help="Only jobs in this state (default: FAILED, TIMEOUT, PREEMPTED, NODE_FAIL, OUT_OF_MEMORY, "
                   "CANCELLED). Repeatable.")
@click.option("--jobs", "job_list", default=None, metavar="I,J,...", help="Only these job indices.")
@_resource_options
@_CODE_OPTION
@click.option("--include-lost", is_flag=True, help=_INCLUDE_LOST_HELP)
@root_option
@_handle_errors
def requeue(sweep: str, states: Sequence[str], job_list: Optional[str], dry_run: bool, detach: bool, code: str,
            include_lost: bool, root: Optional[str], **resources: Any) -> None:
    """Submit the failed, timed-out, preempted or cancelled jobs of SWEEP again, into their runs.

    Each resubmitted run continues as its next attempt from its latest checkpoint. Jobs
    still pending or running are never requeued. They run the sweep's launch-time code
    unless --code current.
    """
    from .sweep import load_sweep

    sw = load_sweep(sweep, root=root)
    plan = sw.requeue(states=[JobState(s.upper()) for s in states] or None, jobs=_parse_jobs(job_list),
                      resources=_resources(**resources), dry_run=dry_run, code=code, include_lost=include_lost)
    _report_resubmission(sw, plan, "requeue", dry_run, detach)


@cli.command()
@click.argument("sweep", default="latest")
@_resource_options
@_CODE_OPTION
@click.option("--include-lost", is_flag=True, help=_INCLUDE_LOST_HELP)
@root_option
@_handle_errors
def resume(sweep: str, dry_run: bool, detach: bool, code: str, include_lost: bool, root: Optional[str],
           **resources: Any) -> None:
    """Submit every job of SWEEP without a completed run that is not queued or running.

    For a launch that was interrupted (Ctrl-C, a lost runner, a refused submission) and
    for whatever failed: completed jobs are never submitted again, and no run is renumbered.
    They run the sweep's launch-time code unless --code current.
    """
    from .sweep import load_sweep

    sw = load_sweep(sweep, root=root)
    plan = sw.resume(resources=_resources(**resources), dry_run=dry_run, code=code, include_lost=include_lost)
    _report_resubmission(sw, plan, "resume", dry_run, detach)


@cli.command()
@click.argument("sweeps", nargs=-1)
@click.option("--all", "all_sweeps", is_flag=True, help="Every sweep under the root.")
@click.option("--dry-run", is_flag=True, help="Only list what would be removed.")
@root_option
@_handle_errors
def gc(sweeps: Sequence[str], all_sweeps: bool, dry_run: bool, root: Optional[str]) -> None:
    """Remove submitit's per-job pickles and scripts of ended jobs (never logs or run data)."""
    from .gc import GcReport, collect_sweep
    from .sweep import list_sweeps, load_sweep

    if not sweeps and not all_sweeps:
        raise click.UsageError("name the sweeps to clean, or pass --all")
    targets = list(list_sweeps(root)) if all_sweeps else [load_sweep(ref, root=root) for ref in sweeps]
    total = GcReport()
    for sw in targets:
        total.add(collect_sweep(sw.manifest, dry_run=dry_run))
    verb = "would remove" if dry_run else "removed"
    _echo(f"{verb} {len(total.files)} files ({total.bytes / 1024:.1f} KiB) from {len(targets)} "
               f"sweep{'s' if len(targets) != 1 else ''}"
               + (f"; {total.skipped_jobs} jobs still pending or running were left alone" if total.skipped_jobs else ""))
    if dry_run:
        for path in total.files:
            _echo(f"  {path}")


def _parse_jobs(text: Optional[str]) -> Optional[List[int]]:
    if text is None:
        return None
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated job indices like 3,7, got {text!r}") from None


_SELECTOR_HELP = ("Metric column(s): KEY (last, min, max; or a summary value), "
                  "KEY:last|min|max|mean|argmin|argmax|count|last_step, or KEY:at=STEP. Repeatable.")


@cli.command()
@click.argument("sweep", default="latest")
@click.option("--metric", "-m", "metrics", multiple=True, metavar="KEY[:STAT]", help=_SELECTOR_HELP)
@click.option("--group-by", "-g", "group_by", multiple=True, metavar="KEY",
              help="Group runs by these params: mean ± std (and n) over the rest, e.g. the seeds. Repeatable.")
@click.option("--grouped", is_flag=True, help="Group by every swept key except the seed keys.")
@click.option("--seed-keys", default="seed", show_default=True, metavar="K1,K2",
              help="Swept keys that are repetitions, left out of --grouped.")
@click.option("--agg", "aggs", multiple=True, type=click.Choice(list(AGGREGATIONS)),
              help="Aggregations per group (default: mean, std, count). Repeatable.")
@click.option("--filter", "where", default=None, metavar="EXPR",
              help="Keep runs matching EXPR on params, metrics and state, e.g. \"optimizer.lr < 0.1 and "
                   "state == 'COMPLETED'\".")
@click.option("--sort", "sort", multiple=True, metavar="[-]COLUMN", help="Sort by COLUMN (-COLUMN: descending).")
@click.option("--top", type=int, default=None, metavar="N", help="Only the first N rows.")
@click.option("--include-incomplete", is_flag=True, help="Aggregate runs that did not complete too.")
@click.option("--all-params", is_flag=True, help="Every config key, not only the swept ones.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json", "parquet", "markdown"]),
              default="table", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write to this file instead of the terminal.")
@root_option
@_handle_errors
def table(sweep: str, metrics: Sequence[str], group_by: Sequence[str], grouped: bool, seed_keys: str,
          aggs: Sequence[str], where: Optional[str], sort: Sequence[str], top: Optional[int],
          include_incomplete: bool, all_params: bool, fmt: str, output: Optional[str], root: Optional[str]) -> None:
    """One row per run of SWEEP (default: latest), or per group with --group-by / --grouped.

    Per run: swept params, state, runtime, metric stats, summary. Grouped: n and, for each
    metric, mean ± std over the group's completed runs (the best group marked with *).
    """
    from .sweep import load_sweep

    groups: Any = list(group_by) if group_by else (True if grouped else None)
    frame = load_sweep(sweep, root=root).table(
        metrics=list(metrics) or None, all_params=all_params, group_by=groups, agg=list(aggs) or None,
        where=where, sort=list(sort) or None, top=top, include_incomplete=include_incomplete,
        seed_keys=_keys(seed_keys),
    )
    _emit_frame(frame, fmt, output, _print_frame)
    if frame.attrs.get("note"):
        _echo(f"note: {frame.attrs['note']}", err=True)


def _emit_frame(frame: Any, fmt: str, output: Optional[str], show: Callable[[Any], None]) -> None:
    """``show`` the frame in the terminal, or export it (``fmt``) to stdout or ``output``."""
    from .aggregate import export_table

    if fmt == "table" and output is None:
        show(frame)
        return
    text = export_table(frame, "markdown" if fmt == "table" else fmt, Path(output) if output else None)
    if text is not None:
        click.echo(text, nl=False)
    else:
        _echo(f"wrote {len(frame)} rows to {output}", err=True)


def _keys(text: str) -> List[str]:
    """``seed,rep`` -> ``["seed", "rep"]``."""
    return [k for k in text.split(",") if k]


@cli.command()
@click.argument("sweeps", nargs=-1, required=True)
@click.option("--metric", "-m", "metrics", multiple=True, required=True, metavar="KEY[:STAT]", help=_SELECTOR_HELP)
@click.option("--group-by", "-g", "group_by", multiple=True, metavar="KEY",
              help="Align on these params (default: the swept keys the sweeps share, but the seeds).")
@click.option("--seed-keys", default="seed", show_default=True, metavar="K1,K2")
@click.option("--filter", "where", default=None, metavar="EXPR", help="Keep runs matching EXPR (as in table).")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json", "parquet", "markdown"]),
              default="table", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), default=None)
@root_option
@_handle_errors
def compare(sweeps: Sequence[str], metrics: Sequence[str], group_by: Sequence[str], seed_keys: str,
            where: Optional[str], fmt: str, output: Optional[str], root: Optional[str]) -> None:
    """SWEEPS side by side on their common params: mean ± std and n of each metric, with deltas.

    Each sweep after the first gets, per metric, its delta against the first and whether the
    delta is beyond the seed-to-seed spread (larger than both sweeps' std).
    """
    from .compare import compare_sweeps
    from .sweep import load_sweep

    frame = compare_sweeps([load_sweep(ref, root=root) for ref in sweeps], list(metrics),
                           group_by=list(group_by) or None, where=where,
                           seed_keys=_keys(seed_keys))  # fmt: skip
    _emit_frame(frame, fmt, output, _print_comparison)
    if frame.attrs.get("note"):
        _echo(f"note: {frame.attrs['note']}", err=True)


@cli.command()
@click.argument("sweep")
@click.argument("metric")
@click.option("--group-by", "-g", "group_by", multiple=True, metavar="KEY",
              help="One curve per value of these params (default: every swept key but the seeds).")
@click.option("--x", "x", type=click.Choice(["step", "time"]), default="step", show_default=True)
@click.option("--band", type=click.Choice(["std", "ci", "none"]), default="std", show_default=True,
              help="Shade mean ± std, or the 95% confidence interval of the mean.")
@click.option("--seed-keys", default="seed", show_default=True, metavar="K1,K2")
@click.option("--completed-only", is_flag=True, help="Leave out runs that did not complete (partial curves).")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, writable=True),
              help="Image file: .png, .svg or .pdf.")
@root_option
@_handle_errors
def plot(sweep: str, metric: str, group_by: Sequence[str], x: str, band: str, seed_keys: str,
         completed_only: bool, output: str, root: Optional[str]) -> None:
    """Plot METRIC of SWEEP: the mean curve of each group with a std or CI band (needs matplotlib)."""
    from .plot import plot_metric
    from .sweep import load_sweep

    result = plot_metric(load_sweep(sweep, root=root), metric, output, group_by=list(group_by) or True, x=x,
                         band=band, include_incomplete=not completed_only,
                         seed_keys=_keys(seed_keys))  # fmt: skip
    for index, why in sorted(result.skipped.items()):
        _echo(f"skipped job {index}: {why}", err=True)
    _echo(f"wrote {result.path}")


@cli.command()
@click.argument("sweeps", nargs=-1)
@click.option("--all", "all_sweeps", is_flag=True, help="Every sweep under the root.")
@root_option
@_handle_errors
def reindex(sweeps: Sequence[str], all_sweeps: bool, root: Optional[str]) -> None:
    """Rebuild the summary index of SWEEPS from their runs (what `table` reads for ended runs)."""
    from .sweep import list_sweeps, load_sweep

    if not sweeps and not all_sweeps:
        raise click.UsageError("name the sweeps to reindex, or pass --all")
    targets = list(list_sweeps(root)) if all_sweeps else [load_sweep(ref, root=root) for ref in sweeps]
    for sw in targets:
        count, lost = sw.reindex()
        _echo(f"sweep {sw.id}: indexed {count} ended run{'s' if count != 1 else ''}"
                   + (f"; kept {len(lost)} unreadable run{'s' if len(lost) != 1 else ''} in the index, marked LOST:"
                      if lost else ""))  # fmt: skip
        for index, reason in sorted(lost.items()):
            _echo(f"  job {index}: {reason}")


@cli.command()
@click.argument("sweeps", nargs=-1)
@click.option("--all", "all_sweeps", is_flag=True, help="Every sweep under the root.")
@click.option("--repair", is_flag=True,
              help="Restore what can be restored: the HDF5 store's intact spare copy, a damaged checkpoint moved "
                   "aside, the index rebuilt from the stores. Nothing is deleted.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@root_option
@_handle_errors
def verify(sweeps: Sequence[str], all_sweeps: bool, repair: bool, fmt: str, root: Optional[str]) -> None:
    """Check every run of SWEEPS (default: latest): store, points, index, checkpoints. One line per problem.

    Exits 1 when any problem remains. See the README, "When verify reports a problem".
    """
    from .sweep import list_sweeps, load_sweep

    targets = list(list_sweeps(root)) if all_sweeps else [load_sweep(ref, root=root) for ref in sweeps or ["latest"]]
    out, remaining = [], 0
    for sw in targets:
        entry: Dict[str, Any] = {"sweep": sw.id, "path": str(sw.path)}
        try:
            problems = sw.verify()
        except HpctrackError as err:  # a damaged manifest: nothing else of the sweep can be checked
            entry.update(problems=[{"job": None, "what": " ".join(str(err).split()), "part": "manifest"}])
            remaining += 1
            out.append(entry)
            continue
        entry["problems"] = [{"job": p.job, "what": p.what, "part": p.part} for p in problems]
        if repair and problems:
            report = sw.repair()
            entry.update(repaired=report.done, cannot=report.cannot)
            problems = sw.verify()
            entry["remaining"] = [{"job": p.job, "what": p.what, "part": p.part} for p in problems]
        remaining += len(problems)
        out.append(entry)
    if fmt == "json":
        _echo_json({"sweeps": out, "problems": remaining})
    else:
        for entry in out:
            for p in entry["problems"]:
                _echo(f"{entry['sweep']}/{p['job']}: {p['what']}" if p["job"] is not None
                           else f"{entry['sweep']}: {p['what']}")  # fmt: skip
            for line in entry.get("repaired", []):
                _echo(f"repaired {line}")
            for line in entry.get("cannot", []):
                _echo(f"cannot repair {line}")
            left = entry.get("remaining", entry["problems"])
            _echo(f"sweep {entry['sweep']}: " + (f"{len(left)} problem{'s' if len(left) != 1 else ''}"
                                                      + (" left" if "remaining" in entry else "")
                                                      if left else "no problem found"))  # fmt: skip
    if remaining:
        sys.exit(1)


@cli.command()
@click.argument("run")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--packages", is_flag=True, help="List every installed package (text format).")
@root_option
@_handle_errors
def show(run: str, fmt: str, packages: bool, root: Optional[str]) -> None:
    """Everything about RUN (SWEEP/JOB, e.g. latest/3, a run id, or a run directory).

    Config, overrides, command, code version, environment, host, SLURM ids, attempts,
    timings, outcome, artifacts with hashes.
    """
    from .runinfo import describe_run, resolve_run

    data = describe_run(*resolve_run(run, root))
    if fmt == "json":
        click.echo(json.dumps(data, indent=1, default=str))  # JSON escapes control characters itself
        return
    _print_run(data, packages)


@cli.command("diff")
@click.argument("run_a")
@click.argument("run_b")
@click.option("--code", "full_code", is_flag=True, help="Print the unified diff of every file of code that differs.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@root_option
@_handle_errors
def diff_command(run_a: str, run_b: str, full_code: bool, fmt: str, root: Optional[str]) -> None:
    """What differs between RUN_A and RUN_B: config keys, code (file by file), packages, host and resources."""
    from .runinfo import describe_run, diff_runs, resolve_run

    result = diff_runs(describe_run(*resolve_run(run_a, root)), describe_run(*resolve_run(run_b, root)))
    if fmt == "json":
        click.echo(json.dumps(result, indent=1, default=str))
        return
    _echo(f"--- {result['runs'][0]}")
    _echo(f"+++ {result['runs'][1]}")
    same = True
    for section in ("config", "code", "packages", "host_and_resources"):
        changes = result[section]
        if not changes:
            continue
        same = False
        _echo(f"{section.replace('_', ' ')}:")
        for key, (a, b) in changes.items():
            _echo(f"  {key}: {_fmt_value(a) if a is not None else '(none)'} -> "
                       f"{_fmt_value(b) if b is not None else '(none)'}")
    files = result["code_files"]
    same = _print_code_files(files, result["runs"], full_code) and same
    if result["code_diff_differs"] and not files["comparable"]:
        same = False
        _echo("code: the uncommitted changes differ (hpctrack show RUN --format json has both diffs)")
    if same:
        _echo("no difference in config, code, packages, host or resources")


def _print_code_files(files: Dict[str, Any], runs: List[str], full: bool) -> bool:
    """Print the files of code that differ (``full``: their unified diffs); whether the code is the same."""
    notes = [f"{run}: {files['notes'][side]}" for side, run in zip("ab", runs) if files["notes"].get(side)]
    if not files["comparable"]:
        _echo(f"code files: cannot compare the code ({'; '.join(notes)})")
        return False
    for note in notes:
        _echo(f"code files: {note}")
    changed = files["files"]
    if not changed:
        return True
    _echo(f"code files: {files['a']} -> {files['b']}: {len(changed)} file{'s' if len(changed) != 1 else ''} "
               f"differ{'s' if len(changed) == 1 else ''}")  # fmt: skip
    for f in changed:
        counts = f"(+{f['added_lines']} -{f['removed_lines']})" if f["added_lines"] is not None else "(binary or large)"
        _echo(f"  {f['change']}  {f['path']}  {counts}")
    if full:
        click.echo(printable_block("".join(f["text"] for f in changed)), nl=False)
    else:
        _echo("  (--code prints the unified diff)")
    return False


@cli.command()
@click.argument("run")
@click.argument("secrets", nargs=-1)
@click.option("--backend", type=click.Choice(backend_names()), default="local", show_default=True)
@click.option("--at-commit", is_flag=True,
              help="Run the recorded code: a git worktree at the run's commit with its uncommitted diff applied.")
@click.option("--detach", is_flag=True, help="Return at once; the job carries on in the background.")
@click.option("--no-progress", is_flag=True, help="No live progress bar while waiting.")
@root_option
@_handle_errors
def rerun(run: str, secrets: Sequence[str], backend: str, at_commit: bool, detach: bool, no_progress: bool,
          root: Optional[str]) -> None:
    """RUN's exact config again, as a new one-run sweep (RUN: SWEEP/JOB, a run id or a run directory).

    SECRETS: the values of the run's secret overrides, recorded masked, given again (db.password=VALUE).
    """
    from .rerun import rerun_run
    from .runinfo import resolve_run
    from .status import job_statuses

    sweep, index = resolve_run(run, root)
    manifest, warnings = rerun_run(sweep, index, backend=backend, at_commit=at_commit, root=root,
                                   progress=not no_progress, detach=detach, secrets=list(secrets))  # fmt: skip
    for warning in warnings:
        _echo(f"warning: {warning}", err=True)
    if backend_class(backend).has_queue or detach:
        _echo(f"rerun of {sweep.id}/{index}: sweep {manifest.id} submitted (watch: hpctrack status {manifest.id})")
        return
    states = [s.state for s in job_statuses(manifest)]
    _echo(f"rerun of {sweep.id}/{index}: sweep {manifest.id}: {state_summary(states)}  "
               f"(compare: hpctrack diff {sweep.id}/{index} {manifest.id}/0)")
    if any(s != JobState.COMPLETED for s in states):
        sys.exit(1)


def _when(t: Any) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(t))) if t else "-"


def _print_run(d: Dict[str, Any], packages: bool) -> None:
    job, prov = d["job"], d.get("provenance") or {}
    out = [f"run {d['run_id']}  ({d['sweep']['name'] or d['sweep']['id']}, job {job['index']}, "
           f"{d['sweep']['backend']}, store {d['sweep']['store']})",
           f"  dir:        {d['run_dir']}",
           f"  state:      {job['state']}" + (f"  ({job['error']})" if job.get("error") else "")]
    if d.get("record") is None and "status" not in d:
        left = d.get("left_behind") or {}
        end = d.get("end_record")
        if d.get("data_lost") or end or left.get("checkpoints") or left.get("recovery"):
            out.append(f"  store:      {d.get('data_lost') or 'missing: the run ran, but its store is gone'}")
            if end:
                out.append(f"  end record: attempt {end.get('attempt')} ended {end.get('state')}"
                           + (f": {end['error']}" if end.get("error") else "") + f" ({_when(end.get('time'))})")
            if left.get("recovery"):
                out.append(f"  recovery:   {', '.join(left['recovery'])} (what the run could not write to its store; "
                           "JSON lines)")  # fmt: skip
            if left.get("checkpoints"):
                out.append(f"  checkpoints: {', '.join(left['checkpoints'])}")
        else:
            out.append("  the run has not started: nothing recorded yet")
        click.echo("\n".join(printable(line) for line in out))
        return
    st = d["status"]
    out += [f"  started:    {_when(st.get('start_time'))}   ended: {_when(st.get('end_time'))}   "
            f"runtime: {_fmt_duration(st.get('runtime_s'))}   last step: {st.get('last_step')}",
            f"  overrides:  {' '.join(job['overrides']) or '-'}",
            f"  command:    {' '.join(map(str, prov.get('command') or []))}",
            f"  cwd:        {prov.get('cwd', '-')}",
            f"  launched:   {' '.join(d['sweep']['launched_with'] or []) or '-'}"]
    git = prov.get("git") or {}
    if git.get("available"):
        dirty = f", uncommitted changes ({len((git.get('diff') or '').encode())} bytes of diff" + (
            f", {git.get('untracked_count')} untracked files" if git.get("untracked_count") else "") + ")" \
            if git.get("dirty") else ", clean"  # fmt: skip
        out.append(f"  code:       {git.get('commit')} on {git.get('branch') or '(detached)'}{dirty}")
        out.append(f"              repo {git.get('root')}" + (f", remote {git['remote']}" if git.get("remote") else ""))
    else:
        out.append(f"  code:       {(prov.get('not_captured') or {}).get('git') or git.get('reason') or 'not recorded'}")
    snapshot = prov.get("code_snapshot") or {}
    out.append(f"  snapshot:   {snapshot['digest']} ({snapshot.get('source')}, {snapshot.get('path')})" if snapshot
               else "  snapshot:   none (the run imported the code where it was)")  # fmt: skip
    py = prov.get("python") or {}
    out += [f"  python:     {py.get('version', '-')} ({py.get('executable', '-')}); "
            f"{len(prov.get('packages') or [])} packages" + (f"; conda env {prov['conda']['env']}" if prov.get("conda")
                                                               else ""),  # fmt: skip
            f"  host:       {prov.get('hostname', '-')}, {prov.get('platform', '-')}, "
            f"{prov.get('cpus_usable', prov.get('cpu_count', '-'))} CPUs"
            + (f", GPUs: {', '.join(g['name'] + ' (driver ' + g['driver'] + ')' for g in prov['gpus'])}"
               if prov.get("gpus") else "")]  # fmt: skip
    slurm = d.get("slurm") or {}
    if slurm:
        out.append(f"  slurm:      job {slurm.get('job_id')}"
                   + (f" (array {slurm.get('array_job_id')}_{slurm.get('array_task_id')})" if slurm.get("array_job_id") else "")
                   + f", partition {slurm.get('partition')}, nodes {slurm.get('nodelist')}")  # fmt: skip
        if slurm.get("requested"):
            out.append("              requested: " + ", ".join(f"{k}={v}" for k, v in slurm["requested"].items()))
    if prov.get("not_captured"):
        out.append("  not captured: " + "; ".join(f"{k}: {v}" for k, v in prov["not_captured"].items()))
    attempts = d.get("attempts") or []
    if attempts:
        out.append("  attempts:")
        for a in attempts:
            out.append(f"    {a.get('attempt')}: job {a.get('job_id', '-')} on {a.get('host', '-')}, "
                       f"{_when(a.get('start'))} -> {_when(a.get('end'))}, {a.get('outcome') or 'running'}"
                       + (f", restarted at step {a['restart_step']}" if a.get("restart_step") is not None else "")
                       + (f", code {a['code']}" if a.get("code") else ""))  # fmt: skip
    if d.get("error"):
        out.append(f"  error:      {d['error'].get('type')}: {d['error'].get('message')}")
    if d.get("summary"):
        out.append("  summary:    " + ", ".join(f"{k}={_fmt_value(v)}" for k, v in d["summary"].items()))
    if d.get("metrics"):
        out.append("  metrics:    " + ", ".join(f"{k} (last {_fmt_value(v['last'])} at step {v['last_step']}, "
                                                f"{v['count']} points)" for k, v in d["metrics"].items()))
    if d.get("artifacts"):
        out.append("  artifacts:")
        for name, a in d["artifacts"].items():
            out.append(f"    {name}  {a.get('size', 0)} bytes  sha256 {a.get('sha256', '(directory)')}")
    if d.get("checkpoint"):
        c = d["checkpoint"]
        out.append(f"  checkpoint: {c.get('path')} (step {c.get('step')}, attempt {c.get('attempt')})")
    if d.get("config_yaml"):
        out.append("  config:")
        out += ["    " + line for line in d["config_yaml"].rstrip().splitlines()]
    env = prov.get("environment") or {}
    if env:
        out.append("  environment: " + ", ".join(f"{k}={v}" for k, v in env.items()))
    if packages:
        out.append("  packages:")
        out += ["    " + p for p in prov.get("packages") or []]
    click.echo("\n".join(printable(line) for line in out))


def _print_frame(frame: Any) -> None:
    from rich.table import Table

    best = frame.attrs.get("best")
    aggs = frame.attrs.get("aggregations") or []
    metrics = frame.attrs.get("metrics") or []
    grid = Table(box=None, header_style="bold")
    if "group_by" in frame.attrs and "mean" in aggs:
        # Grouped: one "mean ± std" cell per metric, other aggregations as their own columns.
        shown = [c for c in frame.columns if not any(str(c) == f"{m} {a}" for m in metrics for a in aggs)]
        for column in shown:
            grid.add_column(markup(column), justify="right")
        for metric in metrics:
            grid.add_column(markup(metric) + (" (mean ± std)" if "std" in aggs else " (mean)"), justify="right")
            for agg in aggs:
                if agg not in ("mean", "std", "count"):
                    grid.add_column(markup(f"{metric} {agg}"), justify="right")
        grid.add_column("", justify="left")
        for pos, row in enumerate(frame.to_dict(orient="records")):
            cells = [_cell(row[c]) for c in shown]
            for metric in metrics:
                mean = _cell(row[f"{metric} mean"])
                cells.append(mean + (f" ± {_cell(row[f'{metric} std'])}" if "std" in aggs else ""))
                cells.extend(_cell(row[f"{metric} {agg}"]) for agg in aggs if agg not in ("mean", "std", "count"))
            cells.append("[bold green]* best[/]" if pos == best else "")
            grid.add_row(*cells)
        _print_wide(grid)
        best_by = frame.attrs.get("best_by")
        if best is not None and best_by:  # which metric ranked the groups, and which way
            _echo(f"* best: {best_by['direction']} mean of {best_by['column']}")
        return
    for position, column in enumerate(frame.columns):  # by position: a param and a summary key may share a name
        grid.add_column(markup(column), justify="right" if frame.iloc[:, position].dtype.kind in "iuf" else "left")
    for row in frame.itertuples(index=False):
        cells = []
        for column, value in zip(frame.columns, row):
            if column == "runtime_s":
                cells.append(_fmt_duration(value if value == value else None) if value is not None else "")
            elif column == "state":
                cells.append(f"[{_STATE_STYLE.get(JobState(value), '')}]{value}" if value in _STATES else markup(value))
            else:
                cells.append(_cell(value))
        grid.add_row(*cells)
    _print_wide(grid)


def _print_comparison(frame: Any) -> None:
    from rich.table import Table

    labels, metrics, keys = frame.attrs["labels"], frame.attrs["metrics"], frame.attrs["group_by"]
    grid = Table(box=None, header_style="bold")
    for key in keys:
        grid.add_column(markup(key), justify="right")
    for metric in metrics:
        for label in labels:
            grid.add_column(f"{markup(metric)}\n{markup(label)}", justify="right")
        for label in labels[1:]:
            grid.add_column(f"delta\n{markup(label)}", justify="right")
    for row in frame.to_dict(orient="records"):
        cells = [_cell(row[k]) for k in keys]
        for metric in metrics:
            for label in labels:
                n = row[f"{metric} count {label}"]
                cells.append(f"{_cell(row[f'{metric} mean {label}'])} ± {_cell(row[f'{metric} std {label}'])}"
                             f" (n={_cell(n)})")  # fmt: skip
            for label in labels[1:]:
                beyond = row[f"{metric} beyond spread {label}"]
                mark = " [bold]beyond spread[/]" if beyond else ""
                cells.append(f"{_cell(row[f'{metric} delta {label}'])}{mark}")
        grid.add_row(*cells)
    _print_wide(grid)


def main(argv: Optional[List[str]] = None) -> None:
    """Entry point of the ``hpctrack`` console script."""
    cli.main(args=argv, prog_name="hpctrack")


if __name__ == "__main__":  # pragma: no cover
    main()
