"""Commands that turn sweeps into results: ``table``, ``compare``, ``plot``."""

from __future__ import annotations

from typing import Any, Optional, Sequence

import click

from ..aggregate import AGGREGATIONS
from ._base import (
    cli,
    echo,
    fail,
    handle_errors,
    results_format_option,
    root_option,
    since_option,
    split_keys,
    sweep_tag_option,
)
from .render import emit_frame, print_comparison, print_frame

_SELECTOR_HELP = (
    "Metric column(s): KEY (last, min, max; or a summary value), "
    "KEY:last|min|max|mean|argmin|argmax|count|last_step, or KEY:at=STEP. Repeatable."
)


@cli.command()
@click.argument("sweep", default="latest")
@click.option("--metric", "-m", "metrics", multiple=True, metavar="KEY[:STAT]", help=_SELECTOR_HELP)
@click.option(
    "--group-by",
    "-g",
    "group_by",
    multiple=True,
    metavar="KEY",
    help="Group runs by these params: mean ± std (and n) over the rest, e.g. the seeds. Repeatable.",
)
@click.option("--grouped", is_flag=True, help="Group by every swept key except the seed keys.")
@click.option(
    "--seed-keys",
    default="seed",
    show_default=True,
    metavar="K1,K2",
    help="Swept keys that are repetitions, left out of --grouped.",
)
@click.option(
    "--agg",
    "aggs",
    multiple=True,
    type=click.Choice(list(AGGREGATIONS)),
    help="Aggregations per group (default: mean, std, count). Repeatable.",
)
@click.option(
    "--filter",
    "where",
    default=None,
    metavar="EXPR",
    help="Keep runs matching EXPR on params, metrics and state, e.g. \"optimizer.lr < 0.1 and state == 'COMPLETED'\".",
)
@click.option("--sort", "sort", multiple=True, metavar="[-]COLUMN", help="Sort by COLUMN (-COLUMN: descending).")
@click.option("--top", type=click.IntRange(min=1), default=None, metavar="N", help="Only the first N rows.")
@click.option("--include-incomplete", is_flag=True, help="Aggregate runs that did not complete too.")
@click.option("--all-params", is_flag=True, help="Every config key, not only the swept ones.")
@results_format_option
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True),
    default=None,
    help="Write to this file instead of the terminal.",
)
@root_option
@handle_errors
def table(
    sweep: str,
    metrics: Sequence[str],
    group_by: Sequence[str],
    grouped: bool,
    seed_keys: str,
    aggs: Sequence[str],
    where: Optional[str],
    sort: Sequence[str],
    top: Optional[int],
    include_incomplete: bool,
    all_params: bool,
    fmt: str,
    output: Optional[str],
    root: Optional[str],
) -> None:
    """One row per run of SWEEP (default: latest), or per group with --group-by / --grouped.

    Per run: swept params, state, runtime, metric stats, summary. Grouped: n and, for each
    metric, mean ± std over the group's completed runs (the best group marked with *).
    """
    from ..sweep import load_sweep

    groups: Any = list(group_by) if group_by else (True if grouped else None)
    frame = load_sweep(sweep, root=root).table(
        metrics=list(metrics) or None,
        all_params=all_params,
        group_by=groups,
        agg=list(aggs) or None,
        where=where,
        sort=list(sort) or None,
        top=top,
        include_incomplete=include_incomplete,
        seed_keys=split_keys(seed_keys),
    )
    emit_frame(frame, fmt, output, print_frame)
    if frame.attrs.get("note"):
        echo(f"note: {frame.attrs['note']}", err=True)


@cli.command()
@click.argument("sweeps", nargs=-1, required=True)
@click.option("--metric", "-m", "metrics", multiple=True, required=True, metavar="KEY[:STAT]", help=_SELECTOR_HELP)
@click.option(
    "--group-by",
    "-g",
    "group_by",
    multiple=True,
    metavar="KEY",
    help="Align on these params (default: the swept keys the sweeps share, but the seeds).",
)
@click.option("--seed-keys", default="seed", show_default=True, metavar="K1,K2")
@click.option("--filter", "where", default=None, metavar="EXPR", help="Keep runs matching EXPR (as in table).")
@results_format_option
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), default=None)
@root_option
@handle_errors
def compare(
    sweeps: Sequence[str],
    metrics: Sequence[str],
    group_by: Sequence[str],
    seed_keys: str,
    where: Optional[str],
    fmt: str,
    output: Optional[str],
    root: Optional[str],
) -> None:
    """SWEEPS side by side on their common params: mean ± std and n of each metric, with deltas.

    Each sweep after the first gets, per metric, its delta against the first and whether the
    delta is beyond the seed-to-seed spread (larger than both sweeps' std).
    """
    from ..compare import compare_sweeps
    from ..sweep import load_sweep

    frame = compare_sweeps([load_sweep(ref, root=root) for ref in sweeps], list(metrics),
                           group_by=list(group_by) or None, where=where,
                           seed_keys=split_keys(seed_keys))  # fmt: skip
    emit_frame(frame, fmt, output, print_comparison)
    if frame.attrs.get("note"):
        echo(f"note: {frame.attrs['note']}", err=True)


@cli.command()
@click.argument("sweep")
@click.argument("metric", required=False)
@click.option(
    "--optimization",
    is_flag=True,
    help="A study (launch --optimize): its objective against the trial number, with the best-so-far line.",
)
@click.option(
    "--group-by",
    "-g",
    "group_by",
    multiple=True,
    metavar="KEY",
    help="One curve per value of these params (default: every swept key but the seeds).",
)
@click.option("--x", "x", type=click.Choice(["step", "time"]), default="step", show_default=True)
@click.option(
    "--band",
    type=click.Choice(["std", "ci", "none"]),
    default="std",
    show_default=True,
    help="Shade mean ± std, or the 95% confidence interval of the mean.",
)
@click.option("--seed-keys", default="seed", show_default=True, metavar="K1,K2")
@click.option("--completed-only", is_flag=True, help="Leave out runs that did not complete (partial curves).")
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False, writable=True),
    help="Image file: .png, .svg or .pdf.",
)
@root_option
@handle_errors
def plot(
    sweep: str,
    metric: Optional[str],
    optimization: bool,
    group_by: Sequence[str],
    x: str,
    band: str,
    seed_keys: str,
    completed_only: bool,
    output: str,
    root: Optional[str],
) -> None:
    """Plot METRIC of SWEEP: the mean curve of each group with a std or CI band (needs matplotlib).

    With --optimization (and no METRIC): a study's objective against the trial number.
    """
    from ..plot import plot_metric, plot_optimization
    from ..sweep import load_sweep

    if optimization:
        if metric is not None:
            fail(f"--optimization plots the study's objective: drop METRIC {metric!r}")
        echo(f"wrote {plot_optimization(load_sweep(sweep, root=root), output).path}")
        return
    if metric is None:
        fail("plot needs a METRIC (or --optimization for a study)")
    assert metric is not None

    result = plot_metric(load_sweep(sweep, root=root), metric, output, group_by=list(group_by) or True, x=x,
                         band=band, include_incomplete=not completed_only,
                         seed_keys=split_keys(seed_keys))  # fmt: skip
    for index, why in sorted(result.skipped.items()):
        echo(f"skipped job {index}: {why}", err=True)
    echo(f"wrote {result.path}")


@cli.command("runs")
@click.option(
    "--where",
    metavar="EXPR",
    help="Keep runs matching EXPR (the filter language of `table --filter`) over params, metric selectors "
    "(val/acc:max), summary values, state, runtime_s, job, sweep, sweep_name, note, created, tags.KEY.",
)
@click.option("--sweeps", metavar="GLOB", help="Only sweeps whose id or name matches GLOB, e.g. 'vit-*'.")
@since_option
@sweep_tag_option
@click.option("--metric", "-m", "metrics", multiple=True, metavar="KEY[:STAT]", help=_SELECTOR_HELP)
@click.option("--all-params", is_flag=True, help="Every param, not only the swept ones and those --where names.")
@click.option("--sort", "sort", multiple=True, metavar="[-]COLUMN", help="Sort by COLUMN (-COLUMN: descending).")
@click.option("--limit", type=click.IntRange(min=1), default=None, metavar="N", help="Only the first N rows.")
@results_format_option
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=True), default=None)
@root_option
@handle_errors
def runs_command(
    where: Optional[str],
    sweeps: Optional[str],
    since: Optional[str],
    tags: Sequence[str],
    metrics: Sequence[str],
    all_params: bool,
    sort: Sequence[str],
    limit: Optional[int],
    fmt: str,
    output: Optional[str],
    root: Optional[str],
) -> None:
    """The runs of every sweep of the root matching --where, one row per run, newest sweep first.

    Sweeps are selected as `ls` selects them (--since, --tag) and by --sweeps; each row shows
    the sweep's id, name, tags and note, the job, its state, params and metric columns.
    """
    from ..search import runs

    frame = runs(where, sweeps=sweeps, since=since, tags=tags, metrics=list(metrics) or None,
                 all_params=all_params, sort=list(sort) or None, limit=limit, root=root)  # fmt: skip
    if fmt != "json":  # for people and flat files: tags as text; JSON keeps them an object
        first = ~frame["sweep"].duplicated()  # tags are the sweep's: made into text once per sweep
        text = {s: " ".join(f"{k}={v}" for k, v in sorted(t.items()))
                for s, t in zip(frame["sweep"][first], frame["tags"][first])}  # fmt: skip
        frame["tags"] = frame["sweep"].map(text).to_numpy(dtype=object)
    if fmt == "table" and output is None and not frame.attrs.get("sweeps"):
        echo("no sweep matches the selection (--sweeps, --since, --tag; see `hpctrack ls`)")
    elif fmt == "table" and output is None and not len(frame):
        echo(f"no run matches in {frame.attrs.get('sweeps', 0)} sweep(s)")
    else:
        emit_frame(frame, fmt, output, print_frame)
    if frame.attrs.get("note"):
        echo(f"note: {frame.attrs['note']}", err=True)
