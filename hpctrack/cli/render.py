"""Rendering for the terminal: tables, the status view, a run's description, a diff, a report.

Every name and value shown comes from a store or a manifest, so text goes through
:func:`hpctrack._terminal.printable` (controls shown, not obeyed) and rich cells through
``markup`` (never read as markup). Nothing here decides an outcome or an exit code.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import click

from .._terminal import markup, printable, printable_block
from .._types import JobState, state_summary
from ..manifest import sweep_ref
from ._base import echo


def fmt_duration(seconds: Optional[float]) -> str:
    if seconds is None:
        return ""
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def cell(value: Any) -> str:
    """A value in a rich table: formatted, controls escaped, and never read as markup."""
    if type(value) is float:  # most cells: a number needs no escaping
        return "" if value != value else f"{value:.4g}"
    if type(value) is int:
        return str(value)
    return markup(fmt_value(value))


def fmt_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if value != value:  # NaN
            return ""
        return f"{value:.4g}"
    return str(value)


STATE_STYLE = {
    JobState.COMPLETED: "green",
    JobState.RUNNING: "cyan",
    JobState.PENDING: "dim",
    JobState.FAILED: "red",
    JobState.CANCELLED: "yellow",
    JobState.TIMEOUT: "red",
    JobState.OUT_OF_MEMORY: "red",
    JobState.NODE_FAIL: "red",
    JobState.PREEMPTED: "yellow",
    JobState.LOST: "bold red",
    JobState.PRUNED: "magenta",
}


STATES = {s.value for s in JobState}


def print_wide(renderable: Any) -> None:
    """Print a table at its natural width: cells are never cut to fit a narrow terminal or pipe.

    Box-less tables (and the tables of a ``Group``) are laid out by :func:`._plaintable.plain_lines`:
    the same lines as rich's, without its per-cell cost (seconds for a thousand rows).
    """
    from rich.console import Console, Group
    from rich.table import Table

    from ._plaintable import plain_lines

    console = Console()
    parts = list(renderable.renderables) if isinstance(renderable, Group) else [renderable]
    laid = [plain_lines(part, console) if isinstance(part, Table) else None for part in parts]
    if any(text is not None for text in laid):
        from rich.cells import cell_len

        wide = console.options.update_width(100_000)
        needed = max(max(cell_len(line) for line in text.plain.split("\n")) if text is not None
                     else console.measure(part, options=wide).maximum for part, text in zip(parts, laid))  # fmt: skip
        if needed > console.width:
            console = Console(width=needed)
        for part, text in zip(parts, laid):
            if text is None:
                console.print(part)
            else:  # laid out already, each line within the width: printed as it is, without wrapping
                console.print(text, soft_wrap=True)
        return
    needed = console.measure(renderable, options=console.options.update_width(100_000)).maximum
    if needed > console.width:
        console = Console(width=needed)
    console.print(renderable)


def watch_into_file(sw: Any, only_stalled: bool, interval: float) -> None:
    """``status --watch`` into a pipe or file: each view at its natural width, printed when something changed."""
    from ..watch import StatusWatch

    last = None
    watch = StatusWatch(sw.path)
    try:
        while True:
            view, done, signature = status_view(sw, only_stalled, watch)
            if signature != last:  # states, errors, flags; not every tick of the runtimes
                print_wide(view)
                sys.stdout.flush()
                last = signature
            if done:
                return
            time.sleep(interval)
    except KeyboardInterrupt:
        return


def _fit(jobs: List[Any], max_rows: Optional[int]) -> "tuple[List[Any], List[Any]]":
    """At most ``max_rows`` of ``jobs``, and the ones left out.

    Kept first: running jobs, then the ones that ended without completing (they need eyes), then
    the other unfinished ones (queued), then the newest completed ones; shown in job order.
    """
    if max_rows is None or len(jobs) <= max_rows:
        return jobs, []
    # the newest completed first among the completed
    order = sorted(jobs, key=lambda s: (_screen_rank(s), -s.index if s.state == JobState.COMPLETED else s.index))
    keep = order[:max_rows]
    kept = {s.index for s in keep}
    return sorted(keep, key=lambda s: s.index), [s for s in jobs if s.index not in kept]


def _screen_rank(s: Any) -> int:
    """Which jobs a short screen keeps first: running, ended without completing, other unfinished, completed."""
    if s.state == JobState.RUNNING:
        return 0
    if s.state != JobState.COMPLETED and s.state.is_final:
        return 1
    return 2 if s.state != JobState.COMPLETED else 3


def _hidden_line(hidden: List[Any], ref: str) -> str:
    """``40 jobs not shown (38 PENDING, 2 COMPLETED) ...``: what the screen could not hold, by state."""
    counts: Dict[str, int] = {}
    for s in sorted(hidden, key=_screen_rank):
        counts[s.state.value] = counts.get(s.state.value, 0) + 1
    by_state = ", ".join(f"{n} {state}" for state, n in counts.items())
    return (f"{len(hidden)} job{'s' if len(hidden) != 1 else ''} not shown ({by_state}; the screen is too short; "
            f"`hpctrack status {ref}` lists every job)")  # fmt: skip


def status_view(
    sw: Any, only_stalled: bool = False, watch: Any = None, max_rows: Optional[int] = None
) -> "tuple[Any, bool, Any]":
    """The status table of a sweep as a rich renderable, whether every job has ended, and what it shows
    (states, errors, notes, flags; not runtimes), to tell whether it changed. ``watch``: a
    :class:`hpctrack.watch.StatusWatch` that refreshes it (``--watch``). ``max_rows``: a screen's
    worth of jobs at most (the unfinished ones first), so the summary below stays in sight."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    manifest = sw.manifest
    st = watch.refresh(manifest) if watch is not None else sw.sweep_status()
    ref = sweep_ref(manifest)
    title = f"sweep {manifest.id}" + (f" ({manifest.name})" if manifest.name else "") + f" · {manifest.backend}"
    table = Table(title=markup(title), title_justify="left", box=None, header_style="bold")
    for column in ("job", "state", "overrides", "step", "attempt", "runtime", "job id", "node", "error / note"):
        table.add_column(column, no_wrap=column != "error / note")
    shown = [s for s in st.jobs if s.stalled] if only_stalled else st.jobs
    shown, hidden = _fit(shown, max_rows)
    for s in shown:
        flag = " [red](hung?)" if s.possibly_hung else (" [yellow](stalled)" if s.stalled else "")
        state = f"[{STATE_STYLE.get(s.state, '')}]{s.state.value}" + flag
        said = markup(s.error) if s.error else (f"[dim]{markup(s.note)}" if s.note else "")
        if s.error and s.note:
            said += f" [dim]({markup(s.note)})"
        table.add_row(
            str(s.index),
            state,
            markup(" ".join(s.overrides)),
            "" if s.last_step is None else str(s.last_step),
            "" if s.attempt is None else str(s.attempt),
            fmt_duration(s.runtime_s),
            markup(s.job_id or ""),
            markup(s.node or ""),
            said,
        )
    # Text is never markup; printable() keeps its controls from the terminal.
    parts: List[Any] = [table] if shown or not only_stalled else [Text("no job has stalled")]
    if hidden:
        parts.append(Text(_hidden_line(hidden, printable(ref)), style="dim"))
    parts.append(Text(state_summary(s.state for s in st.jobs)))
    from ..launch.registry import can_submit
    from ..requeue import incomplete_jobs

    study = None
    if manifest.study:  # its driver, not resume, decides which trials run: no gap to fill
        from ..optimize.view import study_summary

        study = study_summary(manifest, st.jobs)
    if study is not None:
        parts.extend(Text(printable(line), style="bold" if i == 0 else "") for i, line in enumerate(study.lines(ref)))
    gap = {} if study is not None else \
        {i: why for i, why in incomplete_jobs(manifest, st.jobs).items() if i not in st.lost}  # fmt: skip
    if gap:
        items = [f"{i} ({why})" for i, why in sorted(gap.items())]
        if max_rows is not None and len(items) > 10:  # a screen, not a report: the count says the rest
            items = items[:10] + [f"... {len(items) - 10} more"]
        listing = ", ".join(items)
        parts.append(
            Text(
                printable(
                    f"without a completed run: {len(gap)} of {len(st.jobs)} configs: {listing}; "
                    + (
                        f"`hpctrack resume {ref}` submits them"
                        if can_submit(manifest.backend)
                        else "a plain script run: run the script again"
                    )  # fmt: skip
                ),
                style="yellow",
            )
        )
    if st.lost:
        listing = "; ".join(f"job {i} ({why})" for i, why in sorted(st.lost.items()))
        parts.append(Text(printable(f"lost: {listing}. Their run data is gone or unreadable: `hpctrack verify {ref}` "
                                    f"says more and `--repair` restores what it can; `hpctrack resume {ref} "
                                    "--include-lost` reruns them"), style="red"))  # fmt: skip
    stalled = [s.index for s in st.jobs if s.stalled]
    if stalled:
        parts.append(
            Text(
                f"stalled: job {', '.join(map(str, stalled))}: no run.log call for far longer than the "
                "job's own step interval (a blocked collective or data loader?)",
                style="yellow",
            )
        )
    if st.note:
        parts.append(Text(printable(f"note: {st.note}"), style="yellow"))
    signature = [(s.index, s.state, s.error, s.note, s.stalled, s.possibly_hung) for s in shown] + [st.note]
    if study is not None:
        signature.append(study.lines(ref))
    done = all(s.state.is_final for s in st.jobs) and (study is None or not study.driver.alive)
    return Group(*parts), done, signature


def report_resubmission(sw: Any, plan: Any, verb: str, dry_run: bool) -> bool:
    """Say what a requeue or resume skipped, moved and submitted; whether it submitted anything (not a dry run)."""
    for index, why in sorted(plan.skipped.items()):
        echo(f"job {index} skipped: {why}")
    unlisted = {i: why for i, why in plan.lost.items() if i not in plan.skipped}
    if unlisted:
        ref = sweep_ref(sw.manifest)
        echo(
            f"not {verb}d: {len(unlisted)} LOST job{'s' if len(unlisted) != 1 else ''} whose run data is gone: "
            + "; ".join(f"{i} ({why})" for i, why in sorted(unlisted.items()))
            + f". `hpctrack verify {ref}` says why; add --include-lost to rerun them from scratch"
        )
    for index, where in sorted(plan.moved.items()):
        echo(f"job {index}: its damaged run data was moved aside to {where}")
    if not plan.selected:
        echo(f"nothing to {verb}")
        return False
    if plan.code_warning:
        echo(f"warning: {plan.code_warning}", err=True)
    listing = ", ".join(f"{i} ({plan.reasons.get(i, '?')})" for i in plan.selected)
    changes = "".join(f" {k}={v}" for k, v in plan.resources.items())
    listing += (f" with{changes}" if changes else "") + (
        f", running the code as it is now (snapshot {plan.code_snapshot.get('digest')})" if plan.code == "current"
        else "")  # fmt: skip
    if dry_run:
        echo(f"would {verb} {len(plan.selected)} job{'s' if len(plan.selected) != 1 else ''}: {listing}")
        return False
    manifest = sw.manifest
    echo(f"{verb}d {len(plan.selected)} job{'s' if len(plan.selected) != 1 else ''} of sweep {manifest.id}: {listing}")
    return True


def emit_frame(frame: Any, fmt: str, output: Optional[str], show: Callable[[Any], None]) -> None:
    """``show`` the frame in the terminal, or export it (``fmt``) to stdout or ``output``."""
    from ..aggregate import export_table

    if fmt == "table" and output is None:
        show(frame)
        return
    text = export_table(frame, "markdown" if fmt == "table" else fmt, Path(output) if output else None)
    if text is not None:
        if sys.stdout.isatty():  # a person reads it: no control sequence reaches the terminal
            click.echo(printable_block(text), nl=False)
        else:  # piped or redirected: the exact values (click.echo would strip ANSI sequences)
            sys.stdout.write(text)
            sys.stdout.flush()
    else:
        echo(f"wrote {len(frame)} rows to {output}", err=True)


def print_code_files(files: Dict[str, Any], runs: List[str], full: bool) -> bool:
    """Print the files of code that differ (``full``: their unified diffs); whether the code is the same."""
    notes = [f"{run}: {files['notes'][side]}" for side, run in zip("ab", runs) if files["notes"].get(side)]
    if not files["comparable"]:
        echo(f"code files: cannot compare the code ({'; '.join(notes)})")
        return False
    for note in notes:
        echo(f"code files: {note}")
    changed = files["files"]
    if not changed:
        return True
    echo(f"code files: {files['a']} -> {files['b']}: {len(changed)} file{'s' if len(changed) != 1 else ''} "
               f"differ{'s' if len(changed) == 1 else ''}")  # fmt: skip
    for f in changed:
        counts = f"(+{f['added_lines']} -{f['removed_lines']})" if f["added_lines"] is not None else "(binary or large)"
        echo(f"  {f['change']}  {f['path']}  {counts}")
    if full:
        click.echo(printable_block("".join(f["text"] for f in changed)), nl=False)
    else:
        echo("  (--code prints the unified diff)")
    return False


def _when(t: Any) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(t))) if t else "-"


def _job_cwd(started_in: Optional[str], hydra: Dict[str, Any]) -> str:
    """Where the job ran: Hydra's output directory when it changed into it (``hydra.job.chdir``)."""
    if hydra.get("chdir") and hydra.get("output_dir") and hydra["output_dir"] != started_in:
        return f"{hydra['output_dir']}  (hydra.job.chdir; started in {started_in or '-'})"
    return started_in or "-"


def print_run(d: Dict[str, Any], packages: bool) -> None:
    job, prov = d["job"], d.get("provenance") or {}
    out = [
        f"run {d['run_id']}  ({d['sweep']['name'] or d['sweep']['id']}, job {job['index']}, "
        f"{d['sweep']['backend']}, store {d['sweep']['store']})",
        f"  dir:        {d['run_dir']}",
        f"  state:      {job['state']}" + (f"  ({job['error']})" if job.get("error") else ""),
    ]
    sweep = d["sweep"]
    if sweep.get("tags"):
        out.append("  sweep tags: " + " ".join(f"{k}={v}" for k, v in sorted(sweep["tags"].items())))
    if sweep.get("note"):
        out.append(f"  sweep note: {' '.join(sweep['note'].split())}")
    if sweep.get("labels_error"):
        out.append(f"  sweep tags: not shown: {sweep['labels_error']}")
    for pin in d.get("pins") or []:
        out.append(f"  pinned:     {pin['reason']}  ({pin['by']}@{pin['host']}, {_when(pin['at'])})")
    if d.get("pins_error"):
        out.append(f"  pinned:     not shown: {d['pins_error']}")
    for m in d.get("models") or []:
        out.append(f"  model:      {m['ref']}" + (f"  ({', '.join(m['aliases'])})" if m["aliases"] else "")
                   + ("  (deleted)" if m["deleted"] else ""))  # fmt: skip
    if d.get("models_error"):
        out.append(f"  model:      not shown: {d['models_error']}")
    hydra = d.get("hydra") or {}
    if hydra.get("output_dir") and hydra["output_dir"] != d["run_dir"]:
        out.insert(
            2,
            f"  hydra dir:  {hydra['output_dir']}"
            + (f"  (now {hydra['reused_by']}'s)" if hydra.get("reused_by") else ""),
        )
    if d.get("record") is None and "status" not in d:
        left = d.get("left_behind") or {}
        end = d.get("end_record")
        if d.get("data_lost") or end or left.get("checkpoints") or left.get("recovery"):
            out.append(f"  store:      {d.get('data_lost') or 'missing: the run ran, but its store is gone'}")
            if end:
                out.append(
                    f"  end record: attempt {end.get('attempt')} ended {end.get('state')}"
                    + (f": {end['error']}" if end.get("error") else "")
                    + f" ({_when(end.get('time'))})"
                )
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
    last = st.get("last_step")
    out += [
        f"  started:    {_when(st.get('start_time'))}   ended: {_when(st.get('end_time'))}   "
        f"runtime: {fmt_duration(st.get('runtime_s'))}   "
        f"last step: {last if last is not None and last >= 0 else 'none (nothing logged)'}",
        f"  overrides:  {' '.join(job['overrides']) or '-'}",
        f"  command:    {' '.join(map(str, prov.get('command') or []))}",
        f"  cwd:        {_job_cwd(prov.get('cwd'), d.get('hydra') or {})}",
        f"  launched:   {' '.join(d['sweep']['launched_with'] or []) or '-'}",
    ]
    run_exec = d.get("exec") or {}
    if run_exec.get("command"):
        code = run_exec.get("exit_code")
        out.append(f"  exec:       {run_exec['command']}" + (f"  (exit code {code})" if code is not None else ""))
    git = prov.get("git") or {}
    if git.get("available"):
        dirty = f", uncommitted changes ({len((git.get('diff') or '').encode())} bytes of diff" + (
            f", {git.get('untracked_count')} untracked files" if git.get("untracked_count") else "") + ")" \
            if git.get("dirty") else ", clean"  # fmt: skip
        out.append(f"  code:       {git.get('commit')} on {git.get('branch') or '(detached)'}{dirty}")
        out.append(f"              repo {git.get('root')}" + (f", remote {git['remote']}" if git.get("remote") else ""))
    else:
        out.append(
            f"  code:       {(prov.get('not_captured') or {}).get('git') or git.get('reason') or 'not recorded'}"
        )
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
        kind, message = d["error"].get("type"), d["error"].get("message")
        text = f"{kind}" + (f": {message}" if message and message != kind else "")
        first, *more = str(text).splitlines() or [""]
        out.append(f"  error:      {first}")
        # A command's stderr tail, line by line, behind a gutter: a line of it never passes for one of show's.
        out.extend(f"            | {line}" for line in more)
    if d.get("summary"):
        out.append("  summary:    " + ", ".join(f"{k}={fmt_value(v)}" for k, v in d["summary"].items()))
    if d.get("tags"):
        out.append("  tags:       " + ", ".join(f"{k}={fmt_value(v)}" for k, v in d["tags"].items()))
    if d.get("metrics"):
        out.append(
            "  metrics:    "
            + ", ".join(
                f"{k} (last {fmt_value(v['last'])} at step {v['last_step']}, {v['count']} points)"
                for k, v in d["metrics"].items()
            )
        )
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


def print_frame(frame: Any) -> None:
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
            cells = [cell(row[c]) for c in shown]
            for metric in metrics:
                cells.append(_mean_pm(row[f"{metric} mean"], row[f"{metric} std"] if "std" in aggs else None))
                cells.extend(cell(row[f"{metric} {agg}"]) for agg in aggs if agg not in ("mean", "std", "count"))
            cells.append("[bold green]* best[/]" if pos == best and len(frame) > 1 else "")
            grid.add_row(*cells)
        print_wide(grid)
        best_by = frame.attrs.get("best_by")
        if best is not None and best_by and len(frame) > 1:  # which metric ranked the groups, and which way
            echo(f"* best: {best_by['direction']} mean of {best_by['column']}")
        return
    for position, column in enumerate(frame.columns):  # by position: a param and a summary key may share a name
        grid.add_column(markup(column), justify="right" if frame.iloc[:, position].dtype.kind in "iuf" else "left")
    for row in frame.itertuples(index=False):
        cells = []
        for column, value in zip(frame.columns, row):
            if column == "runtime_s":
                cells.append(fmt_duration(value if value == value else None) if value is not None else "")
            elif column == "state":
                cells.append(f"[{STATE_STYLE.get(JobState(value), '')}]{value}" if value in STATES else markup(value))
            else:
                cells.append(cell(value))
        grid.add_row(*cells)
    print_wide(grid)


def _mean_pm(mean: Any, std: Any) -> str:
    """``mean ± std``; the mean alone when there is no spread (one run), nothing when there is no mean."""
    m, sd = cell(mean), cell(std)
    return "" if not m else f"{m} ± {sd}" if sd else m


def print_comparison(frame: Any) -> None:
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
        cells = [cell(row[k]) for k in keys]
        for metric in metrics:
            for label in labels:
                shown = _mean_pm(row[f"{metric} mean {label}"], row[f"{metric} std {label}"])
                cells.append(f"{shown} (n={cell(row[f'{metric} count {label}'])})" if shown else "")
            for label in labels[1:]:
                beyond = row[f"{metric} beyond spread {label}"]
                mark = " [bold]beyond spread[/]" if beyond else ""
                cells.append(f"{cell(row[f'{metric} delta {label}'])}{mark}")
        grid.add_row(*cells)
    print_wide(grid)


def print_verify(report: Dict[str, Any]) -> None:
    """``hpctrack verify`` as text: one line per problem, what was repaired, and a line per sweep."""
    for entry in report["sweeps"]:
        for p in entry["problems"]:
            echo(f"{entry['sweep']}/{p['job']}: {p['what']}" if p["job"] is not None
                 else f"{entry['sweep']}: {p['what']}")  # fmt: skip
        for line in entry.get("repaired", []):
            echo(f"repaired {line}")
        for line in entry.get("cannot", []):
            echo(f"cannot repair {line}")
        left = entry.get("remaining", entry["problems"])
        echo(f"sweep {entry['sweep']}: " + (f"{len(left)} problem{'s' if len(left) != 1 else ''}"
                                            + (" left" if "remaining" in entry else "")
                                            if left else "no problem found"))  # fmt: skip


#: ``hpctrack ls`` shows this much of a note; ``--format json`` and ``show`` have all of it.
NOTE_WIDTH = 40


def trimmed(text: Optional[str], width: int = NOTE_WIDTH) -> str:
    """``text`` on one line, cut to ``width`` characters with an ellipsis."""
    if not text:
        return ""
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "\u2026"


def print_sweeps(rows: List[Dict[str, Any]]) -> None:
    """``hpctrack ls`` as a table: a tags column and the note, trimmed."""
    from rich.table import Table

    table = Table(box=None, header_style="bold")
    for column in ("name", "id", "created", "backend", "script", "jobs", "tags", "note"):
        table.add_column(column)
    for row in rows:
        tags = " ".join(f"{k}={v}" for k, v in sorted((row.get("tags") or {}).items()))
        cells = [row[c] or "" for c in ("name", "id", "created", "backend", "script", "jobs")]
        table.add_row(*(markup(c) for c in [*cells, tags, trimmed(row.get("note"))]))
    print_wide(table)


def print_sweep(d: Dict[str, Any]) -> None:
    """``hpctrack show SWEEP``: the sweep's fields, jobs by state, tags and note (all of it)."""
    lines = [
        f"sweep {d['id']}" + (f"  ({d['name']})" if d.get("name") else ""),
        f"  dir:        {d['path']}",
        f"  created:    {d['created']}   backend: {d['backend']}   store: {d['store']}",
        f"  script:     {d.get('script') or '-'}",
        f"  jobs:       {d['jobs']}"
        + (
            f" ({d['unconfirmed']} unconfirmed: `hpctrack status` asks the scheduler)" if d.get("unconfirmed") else ""
        ),  # fmt: skip
        "  tags:       " + (" ".join(f"{k}={v}" for k, v in sorted(d["tags"].items())) or "-"),
        f"  note:       {' '.join((d.get('note') or '-').split())}",
    ]
    if d.get("labels_error"):
        lines.append(f"  tags and note not shown: {d['labels_error']}")
    pinned = sorted({p["run"] for p in d.get("pins") or []})
    if pinned:
        lines.append(f"  pinned:     run{'s' if len(pinned) != 1 else ''} {', '.join(map(str, pinned))} "
                     f"(`hpctrack pin {d['id']}` says why)")  # fmt: skip
    if d.get("pins_error"):
        lines.append(f"  pinned:     not shown: {d['pins_error']}")
    lines.append(f"  (`hpctrack show {d['id']}/JOB` for a run)")
    click.echo("\n".join(printable(line) for line in lines))


def print_diff(result: Dict[str, Any], full_code: bool) -> None:
    """``hpctrack diff`` as text: the differing config keys, code, packages, host and resources."""
    echo(f"--- {result['runs'][0]}")
    echo(f"+++ {result['runs'][1]}")
    same = True
    for section in ("config", "code", "packages", "host_and_resources"):
        changes = result[section]
        if not changes:
            continue
        same = False
        echo(f"{section.replace('_', ' ')}:")
        for key, (a, b) in changes.items():
            echo(
                f"  {key}: {fmt_value(a) if a is not None else '(none)'} -> "
                f"{fmt_value(b) if b is not None else '(none)'}"
            )
    files = result["code_files"]
    same = print_code_files(files, result["runs"], full_code) and same
    if result["code_diff_differs"] and not files["comparable"]:
        same = False
        echo("code: the uncommitted changes differ (hpctrack show RUN --format json has both diffs)")
    if same:
        echo("no difference in config, code, packages, host or resources")
