"""The ``hpctrack`` command line: each command parses, makes one library call, renders.

Errors from hpctrack become ``Error: <one line>`` and exit code 1; usage errors
exit 2. ``--debug`` (or ``HPCTRACK_DEBUG=1``) shows the full traceback instead.
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

from ._types import JobState, state_summary
from .errors import HpctrackError

__all__ = ["main", "cli"]

_DEBUG = {"on": False}


def _fail(message: str) -> "None":
    click.echo(f"Error: {message}", err=True)
    sys.exit(1)


def _handle_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except HpctrackError as err:
            if _DEBUG["on"]:
                raise
            _fail(str(err))

    return wrapper


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
}


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
@click.option("--debug", is_flag=True, envvar="HPCTRACK_DEBUG", help="Show full tracebacks on errors.")
def cli(debug: bool) -> None:
    """Experiment tracking for HPC clusters: launch Hydra sweeps, watch them, tabulate results."""
    _DEBUG["on"] = debug


@cli.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": True})
@click.argument("script", type=click.Path(dir_okay=False))
@click.argument("overrides", nargs=-1, type=click.UNPROCESSED)
@click.option("--backend", type=click.Choice(["local", "slurm"]), default="local", show_default=True,
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
@root_option
@_handle_errors
def launch(script: str, overrides: Sequence[str], backend: str, parallel: Optional[int], partition: Optional[str],
           time_limit: Optional[str], detach: bool, name: Optional[str], store: str, no_progress: bool,
           root: Optional[str]) -> None:
    """Run SCRIPT's Hydra sweep over OVERRIDES (e.g. 'optimizer.lr=0.01,0.1' 'seed=0,1,2').

    hpctrack's options may stand anywhere; every other argument after SCRIPT goes to Hydra,
    overrides and Hydra's own flags (e.g. --config-name) alike.
    """
    from .launch.script import launch_script

    try:
        manifest = launch_script(script, list(overrides), backend=backend, parallel=parallel, detach=detach,
                                 name=name, root=root, store=store, progress=not no_progress,
                                 command=["hpctrack", *sys.argv[1:]],
                                 slurm={"partition": partition, "time": time_limit})
    except KeyboardInterrupt:
        click.echo("interrupted: the sweep's jobs were cancelled (see `hpctrack status latest`)", err=True)
        sys.exit(130)
    ref = manifest.name or manifest.id
    if manifest.backend == "slurm":
        arrays = sorted({j.job_id.split("_", 1)[0] for j in manifest.jobs if j.job_id})
        click.echo(f"sweep {manifest.id}: {len(manifest.jobs)} jobs queued as SLURM job array "
                   f"{', '.join(arrays)} (watch: hpctrack status {ref} --watch)")
        return
    if detach:
        click.echo(f"sweep {manifest.id}: {len(manifest.jobs)} jobs launched in the background "
                   f"(watch: hpctrack status {ref})")
        return
    from .status import job_statuses

    states = [s.state for s in job_statuses(manifest)]
    click.echo(f"sweep {manifest.id}: {state_summary(states)}  (results: hpctrack table {ref})")
    if any(s != JobState.COMPLETED for s in states):
        sys.exit(1)


@cli.command("ls")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@root_option
@_handle_errors
def ls_command(fmt: str, root: Optional[str]) -> None:
    """The sweeps under the root, newest first."""
    from .config import resolve_root
    from .sweep import list_sweeps

    rows = []
    for sweep in list_sweeps(root):
        m = sweep.manifest
        rows.append({
            "name": m.name, "id": m.id, "created": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(m.created)),
            "backend": m.backend, "script": os.path.basename(m.script) if m.script else "",
            "jobs": state_summary(j.state for j in m.jobs), "path": str(m.path),
        })
    if fmt == "json":
        click.echo(json.dumps(rows, indent=1))
        return
    if not rows:
        click.echo(f"no sweeps under {resolve_root(root)}")
        return
    from rich.table import Table

    table = Table(box=None, header_style="bold")
    for column in ("name", "id", "created", "backend", "script", "jobs"):
        table.add_column(column)
    for row in rows:
        table.add_row(*(row[c] or "" for c in ("name", "id", "created", "backend", "script", "jobs")))
    _print_wide(table)


@cli.command()
@click.argument("sweep", default="latest")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--watch", "-w", is_flag=True, help="Refresh in place until every job has ended.")
@click.option("--interval", type=float, default=5.0, show_default=True, help="Seconds between refreshes (--watch).")
@root_option
@_handle_errors
def status(sweep: str, fmt: str, watch: bool, interval: float, root: Optional[str]) -> None:
    """Every job of SWEEP (default: latest) with state, progress, runtime and error."""
    from .sweep import load_sweep

    sw = load_sweep(sweep, root=root)
    if fmt == "json":
        from .requeue import incomplete_jobs

        manifest = sw.manifest
        st = sw.sweep_status()
        click.echo(json.dumps({"sweep": manifest.id, "name": manifest.name, "path": str(manifest.path),
                               "backend": manifest.backend, "note": st.note,
                               "summary": state_summary(s.state for s in st.jobs),
                               "incomplete": {str(i): why for i, why in incomplete_jobs(manifest, st.jobs).items()},
                               "jobs": [s.to_json() for s in st.jobs]}, indent=1))
        return
    if not watch:
        _print_wide(_status_view(sw)[0])
        return
    from rich.console import Console
    from rich.live import Live

    with Live(console=Console(), auto_refresh=False) as live:
        while True:
            view, done = _status_view(sw)
            live.update(view, refresh=True)
            if done:
                break
            time.sleep(interval)


def _status_view(sw: Any) -> "tuple[Any, bool]":
    """The status table of a sweep as a rich renderable, and whether every job has ended."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    manifest = sw.manifest
    st = sw.sweep_status()
    title = f"sweep {manifest.id}" + (f" ({manifest.name})" if manifest.name else "") + f" · {manifest.backend}"
    table = Table(title=title, title_justify="left", box=None, header_style="bold")
    for column in ("job", "state", "overrides", "step", "attempt", "runtime", "job id", "node", "error"):
        table.add_column(column, no_wrap=column != "error")
    for s in st.jobs:
        state = f"[{_STATE_STYLE.get(s.state, '')}]{s.state.value}" + (" [red](hung?)" if s.possibly_hung else "")
        table.add_row(str(s.index), state, " ".join(s.overrides),
                      "" if s.last_step is None else str(s.last_step), "" if s.attempt is None else str(s.attempt),
                      _fmt_duration(s.runtime_s), s.job_id or "", s.node or "", s.error or "")
    parts: List[Any] = [table, Text(state_summary(s.state for s in st.jobs))]
    from .requeue import incomplete_jobs

    gap = incomplete_jobs(manifest, st.jobs)
    if gap:
        listing = ", ".join(f"{i} ({why})" for i, why in sorted(gap.items()))
        parts.append(Text(f"without a completed run: {len(gap)} of {len(st.jobs)} configs: {listing}; "
                          f"`hpctrack resume {manifest.name or manifest.id}` submits them", style="yellow"))
    if st.note:
        parts.append(Text(f"note: {st.note}", style="yellow"))
    return Group(*parts), all(s.state.is_final for s in st.jobs)


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
    cancelled = load_sweep(sweep, root=root).cancel(states=[JobState(s.upper()) for s in states] or None,
                                                   jobs=indices)
    if not cancelled:
        click.echo("nothing to cancel")
    else:
        click.echo(f"cancelled {len(cancelled)} job{'s' if len(cancelled) != 1 else ''}: "
                   + ",".join(str(i) for i in cancelled))


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


def _report_resubmission(sw: Any, plan: Any, verb: str, dry_run: bool, detach: bool) -> None:
    for index, why in sorted(plan.skipped.items()):
        click.echo(f"job {index} skipped: {why}")
    if not plan.selected:
        click.echo(f"nothing to {verb}")
        return
    listing = ", ".join(f"{i} ({plan.reasons.get(i, '?')})" for i in plan.selected)
    changes = "".join(f" {k}={v}" for k, v in plan.resources.items())
    if dry_run:
        click.echo(f"would {verb} {len(plan.selected)} job{'s' if len(plan.selected) != 1 else ''}: {listing}"
                   + (f" with{changes}" if changes else ""))
        return
    manifest = sw.manifest
    click.echo(f"{verb}d {len(plan.selected)} job{'s' if len(plan.selected) != 1 else ''} of sweep {manifest.id}: "
               f"{listing}" + (f" with{changes}" if changes else ""))
    if manifest.backend == "local" and not detach:
        from .launch.progress import wait_with_progress

        try:
            wait_with_progress(manifest.path, show=sys.stderr.isatty())
        except KeyboardInterrupt:
            click.echo("interrupted: the sweep's jobs were cancelled (see `hpctrack status`)", err=True)
            sys.exit(130)
        states = [s.state for s in sw.status() if s.index in plan.selected]
        click.echo(f"sweep {manifest.id}: {state_summary(states)} of the resubmitted jobs")
        if any(s != JobState.COMPLETED for s in states):
            sys.exit(1)


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
@root_option
@_handle_errors
def requeue(sweep: str, states: Sequence[str], job_list: Optional[str], dry_run: bool, detach: bool,
            root: Optional[str], **resources: Any) -> None:
    """Submit the failed, timed-out, preempted or cancelled jobs of SWEEP again, into their runs.

    Each resubmitted run continues as its next attempt from its latest checkpoint. Jobs
    still pending or running are never requeued.
    """
    from .sweep import load_sweep

    sw = load_sweep(sweep, root=root)
    plan = sw.requeue(states=[JobState(s.upper()) for s in states] or None, jobs=_parse_jobs(job_list),
                      resources=_resources(**resources), dry_run=dry_run)
    _report_resubmission(sw, plan, "requeue", dry_run, detach)


@cli.command()
@click.argument("sweep", default="latest")
@_resource_options
@root_option
@_handle_errors
def resume(sweep: str, dry_run: bool, detach: bool, root: Optional[str], **resources: Any) -> None:
    """Submit every job of SWEEP without a completed run that is not queued or running.

    For a launch that was interrupted (Ctrl-C, a lost runner, a refused submission) and
    for whatever failed: completed jobs are never submitted again, and no run is renumbered.
    """
    from .sweep import load_sweep

    sw = load_sweep(sweep, root=root)
    plan = sw.resume(resources=_resources(**resources), dry_run=dry_run)
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
    click.echo(f"{verb} {len(total.files)} files ({total.bytes / 1024:.1f} KiB) from {len(targets)} "
               f"sweep{'s' if len(targets) != 1 else ''}"
               + (f"; {total.skipped_jobs} jobs still pending or running were left alone" if total.skipped_jobs else ""))
    if dry_run:
        for path in total.files:
            click.echo(f"  {path}")


def _parse_jobs(text: Optional[str]) -> Optional[List[int]]:
    if text is None:
        return None
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated job indices like 3,7, got {text!r}") from None


@cli.command()
@click.argument("sweep", default="latest")
@click.option("--metric", "-m", "metrics", multiple=True, metavar="KEY[:STAT]",
              help="Metric column(s): KEY (last, min, max) or KEY:last|min|max|count|last_step. Repeatable.")
@click.option("--all-params", is_flag=True, help="Every config key, not only the swept ones.")
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json", "parquet", "markdown"]),
              default="table", show_default=True)
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write to this file instead of the terminal.")
@root_option
@_handle_errors
def table(sweep: str, metrics: Sequence[str], all_params: bool, fmt: str, output: Optional[str],
          root: Optional[str]) -> None:
    """One row per run of SWEEP (default: latest): swept params, state, runtime, metrics, summary."""
    from .aggregate import export_table
    from .sweep import load_sweep

    frame = load_sweep(sweep, root=root).table(metrics=list(metrics) or None, all_params=all_params)
    if fmt == "table" and output is None:
        _print_frame(frame)
        return
    text = export_table(frame, "markdown" if fmt == "table" else fmt, Path(output) if output else None)
    if text is not None:
        click.echo(text, nl=False)
    else:
        click.echo(f"wrote {len(frame)} rows to {output}", err=True)


def _print_frame(frame: Any) -> None:
    from rich.table import Table

    grid = Table(box=None, header_style="bold")
    for column in frame.columns:
        grid.add_column(str(column), justify="right" if frame[column].dtype.kind in "iuf" else "left")
    for row in frame.itertuples(index=False):
        cells = []
        for column, value in zip(frame.columns, row):
            if column == "runtime_s":
                cells.append(_fmt_duration(value if value == value else None) if value is not None else "")
            elif column == "state":
                cells.append(f"[{_STATE_STYLE.get(JobState(value), '')}]{value}")
            else:
                cells.append(_fmt_value(value))
        grid.add_row(*cells)
    _print_wide(grid)


def main(argv: Optional[List[str]] = None) -> None:
    """Entry point of the ``hpctrack`` console script."""
    cli.main(args=argv, prog_name="hpctrack")


if __name__ == "__main__":  # pragma: no cover
    main()
