"""Commands that check and tidy what is stored: ``verify``, ``reindex``, ``gc``."""

from __future__ import annotations

import sys
from typing import Optional, Sequence

import click

from ._base import cli, echo, echo_json, handle_errors, root_option
from .render import print_verify


@cli.command()
@click.argument("sweeps", nargs=-1)
@click.option("--all", "all_sweeps", is_flag=True, help="Every sweep under the root.")
@click.option("--dry-run", is_flag=True, help="Only list what would be removed.")
@root_option
@handle_errors
def gc(sweeps: Sequence[str], all_sweeps: bool, dry_run: bool, root: Optional[str]) -> None:
    """Remove submitit's per-job pickles and scripts of ended jobs (never logs or run data)."""
    from ..gc import GcReport, collect_sweep
    from ..sweep import list_sweeps, load_sweep

    if not sweeps and not all_sweeps:
        raise click.UsageError("name the sweeps to clean, or pass --all")
    targets = list(list_sweeps(root)) if all_sweeps else [load_sweep(ref, root=root) for ref in sweeps]
    total = GcReport()
    for sw in targets:
        total.add(collect_sweep(sw.manifest, dry_run=dry_run))
    verb = "would remove" if dry_run else "removed"
    echo(
        f"{verb} {len(total.files)} files ({total.bytes / 1024:.1f} KiB) from {len(targets)} "
        f"sweep{'s' if len(targets) != 1 else ''}"
        + (f"; {total.skipped_jobs} jobs still pending or running were left alone" if total.skipped_jobs else "")
    )
    if dry_run:
        for path in total.files:
            echo(f"  {path}")


@cli.command()
@click.argument("sweeps", nargs=-1)
@click.option("--all", "all_sweeps", is_flag=True, help="Every sweep under the root.")
@root_option
@handle_errors
def reindex(sweeps: Sequence[str], all_sweeps: bool, root: Optional[str]) -> None:
    """Rebuild the summary index of SWEEPS from their runs (what `table` reads for ended runs)."""
    from ..sweep import list_sweeps, load_sweep

    if not sweeps and not all_sweeps:
        raise click.UsageError("name the sweeps to reindex, or pass --all")
    targets = list(list_sweeps(root)) if all_sweeps else [load_sweep(ref, root=root) for ref in sweeps]
    for sw in targets:
        count, lost = sw.reindex()
        echo(f"sweep {sw.id}: indexed {count} ended run{'s' if count != 1 else ''}"
                   + (f"; kept {len(lost)} unreadable run{'s' if len(lost) != 1 else ''} in the index, marked LOST:"
                      if lost else ""))  # fmt: skip
        for index, reason in sorted(lost.items()):
            echo(f"  job {index}: {reason}")


@cli.command()
@click.argument("sweeps", nargs=-1)
@click.option("--all", "all_sweeps", is_flag=True, help="Every sweep under the root.")
@click.option(
    "--repair",
    is_flag=True,
    help="Restore what can be restored: the HDF5 store's intact spare copy, a damaged checkpoint moved "
    "aside, the index rebuilt from the stores. Nothing is deleted.",
)
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@root_option
@handle_errors
def verify(sweeps: Sequence[str], all_sweeps: bool, repair: bool, fmt: str, root: Optional[str]) -> None:
    """Check every run of SWEEPS (default: latest): store, points, index, checkpoints. One line per problem.

    Exits 1 when any problem remains. See the README, "When verify reports a problem".
    """
    from ..sweep import list_sweeps, load_sweep
    from ..verify import check_sweeps

    targets = list(list_sweeps(root)) if all_sweeps else [load_sweep(ref, root=root) for ref in sweeps or ["latest"]]
    report = check_sweeps(targets, repair=repair)
    if fmt == "json":
        echo_json(report)
    else:
        print_verify(report)
    if report["problems"]:
        sys.exit(1)
