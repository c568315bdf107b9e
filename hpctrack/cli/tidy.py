"""Commands that keep a root tidy: ``tag``, ``note``, ``rm``."""

from __future__ import annotations

import time
from typing import Optional, Sequence

import click

from ._base import cli, echo, handle_errors, root_option


def _tags_line(tags: "dict[str, str]") -> str:
    return " ".join(f"{k}={v}" for k, v in sorted(tags.items())) or "-"


@cli.command()
@click.argument("sweep")
@click.argument("tags", nargs=-1)
@click.option("--remove", "-r", "remove", multiple=True, metavar="KEY", help="Remove tag KEY (repeatable); KEY= too.")
@root_option
@handle_errors
def tag(sweep: str, tags: Sequence[str], remove: Sequence[str], root: Optional[str]) -> None:
    """Set tags of SWEEP: key=value ...; key= (or --remove key) removes one. Without TAGS, prints them."""
    from ..labels import parse_tag_args
    from ..sweep import load_sweep

    sw = load_sweep(sweep, root=root)
    if not tags and not remove:
        echo(_tags_line(sw.labels.tags))
        return
    values, gone = parse_tag_args(tags)  # every argument checked before anything is written
    labels = sw.tag(values, remove=[*gone, *remove])
    echo(f"sweep {sw.id}: {_tags_line(labels.tags)}")


@cli.command()
@click.argument("sweep")
@click.argument("text", required=False)
@click.option("--clear", is_flag=True, help="Remove the note.")
@root_option
@handle_errors
def note(sweep: str, text: Optional[str], clear: bool, root: Optional[str]) -> None:
    """Set the note of SWEEP to TEXT (replacing it); --clear removes it. Without TEXT, prints it."""
    from ..sweep import load_sweep

    sw = load_sweep(sweep, root=root)
    if text is not None and clear:
        raise click.UsageError("give TEXT or --clear, not both")
    if text is None and not clear:
        echo(sw.labels.note or "-")
        return
    labels = sw.note(None if clear else text)
    echo(f"sweep {sw.id}: " + ("note removed" if labels.note is None else f"note: {labels.note}"))


@cli.command("rm")
@click.argument("sweeps", nargs=-1, required=True)
@click.option(
    "--purge", is_flag=True, help="Delete for good instead of moving to ROOT/trash (also for trashed sweeps)."
)
@root_option
@handle_errors
def rm_command(sweeps: Sequence[str], purge: bool, root: Optional[str]) -> None:
    """Move SWEEPS to the root's trash (ROOT/trash/<id>); --purge deletes them for good.

    Refused while any job of a sweep is pending or running; every sweep is checked before any moves.
    """
    from ..config import resolve_root
    from ..trash import remove_sweeps

    base = resolve_root(root)
    for done in remove_sweeps(sweeps, root=base, purge=purge):
        label = f"{done.id}" + (f" ({done.name})" if done.name else "")
        runs = f"{done.jobs} run{'s' if done.jobs != 1 else ''}"
        if done.purged:
            echo(f"deleted sweep {label} for good: {runs}")
        else:
            echo(f"moved sweep {label} to {done.path}: {runs}; `hpctrack rm --purge {done.id}` deletes it for good, "
                 f"`mv {done.path} {base}/sweeps/` brings it back")  # fmt: skip


def _run_indices(runs: Sequence[str]) -> "list[int]":
    out = []
    for run in runs:
        if not run.isdigit():
            raise click.UsageError(f"run {run!r}: a run is a job index of the sweep (0, 1, ...)")
        out.append(int(run))
    return out


@cli.command()
@click.argument("sweep")
@click.argument("runs", nargs=-1)
@click.option("--reason", default=None, help="Why the runs are kept (one line; default: 'pinned by hand').")
@root_option
@handle_errors
def pin(sweep: str, runs: Sequence[str], reason: Optional[str], root: Optional[str]) -> None:
    """Pin RUNS (job indices) of SWEEP: `rm` refuses the sweep while any is pinned. Without RUNS, lists pins."""
    from ..sweep import load_sweep

    sw = load_sweep(sweep, root=root)
    if not runs:
        pins = sw.pins
        for p in pins:
            when = time.strftime("%Y-%m-%d %H:%M", time.localtime(p.at))
            echo(f"{p.run}  {p.reason}  ({p.by}@{p.host}, {when})")
        if not pins:
            echo("no pinned runs")
        return
    indices = _run_indices(runs)
    sw.pin(indices, reason)
    echo(f"sweep {sw.id}: pinned run{'s' if len(indices) != 1 else ''} {', '.join(map(str, sorted(set(indices))))}")


@cli.command()
@click.argument("sweep")
@click.argument("runs", nargs=-1, required=True)
@click.option("--reason", default=None, help="Remove only the pins with this reason (default: all of the runs').")
@root_option
@handle_errors
def unpin(sweep: str, runs: Sequence[str], reason: Optional[str], root: Optional[str]) -> None:
    """Remove the pins of RUNS (job indices) of SWEEP (only those for --reason when given)."""
    from ..sweep import load_sweep

    sw = load_sweep(sweep, root=root)
    indices = _run_indices(runs)
    before = sw.pins
    left = sw.unpin(indices, reason)
    for run in sorted(set(indices)):  # nothing to remove is not an error, but it is said
        if not any(p.run == run and reason in (None, p.reason) for p in before):
            echo(f"run {run} had no pin" + (f" {reason!r}" if reason is not None else ""))
    still = sorted({p.run for p in left})
    echo(f"sweep {sw.id}: " + (f"runs still pinned: {', '.join(map(str, still))}" if still else "no pinned runs"))
