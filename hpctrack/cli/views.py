"""Commands that look at sweeps and runs: ``status``, ``ls``, ``show``, ``diff``."""

from __future__ import annotations

import json
import sys
import time
from typing import Optional, Sequence

import click

from ._base import cli, echo, echo_json, handle_errors, root_option, since_option, sweep_tag_option
from .render import print_diff, print_run, print_sweep, print_sweeps, print_wide, status_view, watch_into_file


@cli.command("ls")
@click.option(
    "--where",
    metavar="EXPR",
    help="Only sweeps matching EXPR (the filter language of `table --filter`) "
    "over name, id, created, backend, store, script, n_jobs, unconfirmed, note, states.STATE, tags.KEY.",
)
@sweep_tag_option
@since_option
@click.option("--trash", "trashed", is_flag=True, help="List the sweeps in the root's trash (hpctrack rm) instead.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@root_option
@handle_errors
def ls_command(
    where: Optional[str], tags: Sequence[str], since: Optional[str], trashed: bool, fmt: str, root: Optional[str]
) -> None:
    """The sweeps under the root, newest first, with their tags and note (not those in the trash)."""
    from ..config import resolve_root
    from ..sweep import sweep_rows

    rows, skipped = sweep_rows(root, where=where, tags=tags, since=since, trashed=trashed)
    for line in skipped:
        echo(line, err=True)
    if fmt == "json":
        echo_json(rows)
        return
    if not rows:
        selected = where is not None or bool(tags) or since is not None
        where_ = f"{resolve_root(root)}/trash" if trashed else str(resolve_root(root))
        echo(f"no sweep under {where_} matches" if selected else f"no sweeps under {where_}")
        return
    print_sweeps(rows)


@cli.command()
@click.argument("sweep", default="latest")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@click.option("--watch", "-w", is_flag=True, help="Refresh in place until every job has ended.")
@click.option(
    "--interval",
    type=click.FloatRange(min=0.1),
    default=5.0,
    show_default=True,
    help="Seconds between refreshes (--watch).",
)
@click.option(
    "--stalled",
    "only_stalled",
    is_flag=True,
    help="Only jobs that stalled: running, but no run.log call for far longer than their step cadence.",
)
@root_option
@handle_errors
def status(sweep: str, fmt: str, watch: bool, interval: float, only_stalled: bool, root: Optional[str]) -> None:
    """Every job of SWEEP (default: latest) with state, progress, runtime and error."""
    from ..sweep import load_sweep

    sw = load_sweep(sweep, root=root)
    if fmt == "json":
        from ..runinfo import describe_status

        echo_json(describe_status(sw, only_stalled=only_stalled))
        return
    if not watch:
        print_wide(status_view(sw, only_stalled)[0])
        return
    if not sys.stdout.isatty():
        watch_into_file(sw, only_stalled, interval)
        return
    from rich.console import Console
    from rich.live import Live

    from ..watch import StatusWatch

    refresher = StatusWatch(sw.path)
    console = Console()
    with Live(console=console, auto_refresh=False) as live:
        while True:
            # Title, header, summary and a few notes below the jobs stay on the screen.
            view, done, _ = status_view(sw, only_stalled, refresher, max_rows=max(5, console.size.height - 9))
            live.update(view, refresh=True)
            if done:
                break
            time.sleep(interval)


@cli.command()
@click.argument("run")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--packages", is_flag=True, help="List every installed package (text format).")
@root_option
@handle_errors
def show(run: str, fmt: str, packages: bool, root: Optional[str]) -> None:
    """Everything about RUN (SWEEP/JOB, e.g. latest/3, a run id, or a run directory); a SWEEP alone: the sweep.

    Config, overrides, command, code version, environment, host, SLURM ids, attempts,
    timings, outcome, artifacts with hashes, the sweep's tags and note.
    """
    from ..runinfo import describe_run, describe_sweep, is_run_ref, resolve_run

    if not is_run_ref(run):
        from ..errors import ConfigError, SweepNotFoundError
        from ..sweep import load_sweep

        try:
            sweep_obj = load_sweep(run, root=root)
        except SweepNotFoundError:
            head, sep, job = run.rstrip("/").rpartition("/")
            try:  # `digits/x`, `latest/-1`: the sweep exists, the job part is wrong
                owner = load_sweep(head, root=root) if sep and head else None
            except SweepNotFoundError:
                owner = None
            if owner is None:
                raise
            n = len(owner.manifest.jobs)
            raise ConfigError(f"sweep {owner.id} has jobs 0-{n - 1}; no job {job!r} (a job is its index: "
                              f"{head}/0)") from None  # fmt: skip
        data = describe_sweep(sweep_obj)
        if fmt == "json":
            click.echo(json.dumps(data, indent=1, default=str))
        else:
            print_sweep(data)
        return
    data = describe_run(*resolve_run(run, root))
    if fmt == "json":
        click.echo(json.dumps(data, indent=1, default=str))  # JSON escapes control characters itself
        return
    print_run(data, packages)


@cli.command("diff")
@click.argument("run_a")
@click.argument("run_b")
@click.option("--code", "full_code", is_flag=True, help="Print the unified diff of every file of code that differs.")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@root_option
@handle_errors
def diff_command(run_a: str, run_b: str, full_code: bool, fmt: str, root: Optional[str]) -> None:
    """What differs between RUN_A and RUN_B: config keys, code (file by file), packages, host and resources."""
    from ..runinfo import describe_run, diff_runs, resolve_run

    result = diff_runs(describe_run(*resolve_run(run_a, root)), describe_run(*resolve_run(run_b, root)))
    if fmt == "json":
        click.echo(json.dumps(result, indent=1, default=str))
        return
    print_diff(result, full_code)
