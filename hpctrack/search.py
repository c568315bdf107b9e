"""``hpctrack runs``: the runs of every sweep of the root that match a filter, as one table.

The sweeps are selected as ``hpctrack ls`` selects them (``--since``, ``--tag``, plus a glob on
their id or name); their runs come from the catalog (:mod:`hpctrack.catalog`), kept current
with the sweeps; the filter is ``table --filter``'s language (:mod:`hpctrack.query`).
"""

from __future__ import annotations

import fnmatch
import threading
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

from .aggregate import DEFAULT_STATS, METRIC_STATS, MetricSelector, parse_selector, sort_frame
from .catalog import BASE_COLUMNS, MERGED_FILE, Catalog, CatalogFile, SweepEntry, live_rows, read_sweep, sweep_key
from .config import resolve_root
from .errors import ConfigError, HpctrackError
from .index import SEP
from .manifest import iter_sweep_dirs, load_manifest
from .query import FilterError, parse
from .sweep import has_tag, tag_condition

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

__all__ = ["runs", "RUN_FIELDS"]

#: The columns every ``runs`` row has before its params and metrics.
RUN_FIELDS = ("sweep", "sweep_name", "tags", "note", "job", "state", "runtime_s")
#: Columns a filter can name besides params, metric selectors, summary values and ``tags.KEY``.
_FILTER_FIELDS = ("sweep", "sweep_name", "note", "created", "job", "state", "runtime_s")
#: Metric statistics the catalog holds (``KEY:at=STEP`` needs the run's history).
_STATS = tuple(s for s in METRIC_STATS)


def _as_list(value: Union[str, Sequence[str]]) -> List[str]:
    """A single string as a list of one (never its characters); a sequence as a list."""
    return [value] if isinstance(value, str) else list(value)


def _check_glob(pattern: str) -> str:
    if not isinstance(pattern, str) or not pattern or "/" in pattern or any(ord(c) < 32 for c in pattern):
        raise ConfigError(
            f"--sweeps {pattern!r}: give a glob over sweep ids or names without '/', e.g. '2026*' or 'vit-*'"
        )
    depth = 0
    for ch in pattern:  # an unclosed [ would silently match itself: say so instead
        depth = 1 if ch == "[" else (0 if ch == "]" else depth)
    if depth:
        raise ConfigError(f"--sweeps {pattern!r}: unclosed '[' in the glob; close it with ']' (or write [[] for '[')")
    return pattern


def _shown(where: str) -> str:
    return where if len(where) <= 120 else where[:100] + f"... ({len(where)} characters)"


def _bad_where(where: str, err: Exception) -> FilterError:
    return FilterError(f"bad --where {_shown(where)!r}: {err}")


class _Columns:
    """The filter's names for the catalog's columns: params, summary values and ``KEY:STAT`` per metric."""

    def __init__(self, physical: Sequence[str], tag_keys: Sequence[str]) -> None:
        self.params: Dict[str, None] = {}
        self.summary: Dict[str, None] = {}
        self.metrics: Dict[str, None] = {}
        for name in physical:
            kind, _, rest = name.partition(SEP)
            if kind == "p":
                self.params[rest] = None
            elif kind == "s":
                self.summary[rest] = None
            elif kind == "m":
                self.metrics[rest.rsplit(SEP, 1)[0]] = None
        self.tag_keys = list(tag_keys)

    def names(self) -> List[str]:
        out = dict.fromkeys(_FILTER_FIELDS)
        out.update(self.params)
        out.update((k, None) for k in self.summary if k not in self.params)
        out.update((f"{k}:{s}", None) for k in self.metrics for s in _STATS)
        out.update((f"tags.{k}", None) for k in self.tag_keys)
        return list(out)

    def physical(self, name: str) -> List[str]:
        """The catalog columns a filter/output column is computed from ([] for the sweep's own fields)."""
        if name in self.params:
            return [f"p{SEP}{name}"]
        if name in self.summary:
            return [f"s{SEP}{name}"]
        key, _, stat = name.rpartition(":")
        if key in self.metrics and stat in _STATS:
            fields = ("sum", "finite") if stat == "mean" else (stat,)
            return [f"m{SEP}{key}{SEP}{f}" for f in fields]
        return []


def _value_column(phys: "pd.DataFrame", cols: _Columns, name: str) -> Any:
    import numpy as np
    import pandas as pd

    sources = cols.physical(name)
    if not sources:
        return pd.Series([None] * len(phys), index=phys.index, dtype=object)
    if len(sources) == 2:  # KEY:mean from the running sum and count of finite values
        total = pd.to_numeric(phys.get(sources[0]), errors="coerce")
        finite = pd.to_numeric(phys.get(sources[1]), errors="coerce")
        with np.errstate(all="ignore"):
            return total / finite
    column = phys.get(sources[0])
    return pd.Series([None] * len(phys), index=phys.index, dtype=object) if column is None else column


def _sweep_fields(frame: "pd.DataFrame", phys: "pd.DataFrame", entries: Dict[str, SweepEntry], names: Sequence[str]
                  ) -> None:  # fmt: skip
    by_sweep = phys["sweep"]
    for name in names:
        if name == "sweep":
            frame[name] = by_sweep.to_numpy(dtype=object)
        elif name == "sweep_name":
            frame[name] = by_sweep.map({k: e.name for k, e in entries.items()}).to_numpy(dtype=object)
        elif name == "note":
            frame[name] = by_sweep.map({k: e.note for k, e in entries.items()}).to_numpy(dtype=object)
        elif name == "tags":
            frame[name] = by_sweep.map({k: dict(e.tags) for k, e in entries.items()}).to_numpy(dtype=object)
        elif name == "created":
            shown = {k: time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e.created)) for k, e in entries.items()}
            frame[name] = by_sweep.map(shown).to_numpy(dtype=object)
        elif name.startswith("tags."):
            key = name[len("tags.") :]
            frame[name] = by_sweep.map({k: e.tags.get(key) for k, e in entries.items()}).to_numpy(dtype=object)


def _output_columns(cols: _Columns, entries: Sequence[SweepEntry], selectors: Sequence[MetricSelector],
                    where_columns: Sequence[str], all_params: bool) -> List[str]:  # fmt: skip
    params: Dict[str, None] = {}
    for entry in entries:
        params.update((k, None) for k in entry.swept_keys if k in cols.params)
    params.update((c, None) for c in where_columns if c in cols.params)
    if all_params:
        params.update(cols.params)
    values: Dict[str, None] = {}
    if not selectors:
        values.update((f"{k}:{s}", None) for k in sorted(cols.metrics) for s in DEFAULT_STATS)
        values.update((k, None) for k in sorted(cols.summary) if k not in params)
    for sel in selectors:
        if sel.stat is None and sel.key in cols.summary and sel.key not in cols.metrics:
            values[sel.key] = None
        elif sel.key not in cols.metrics and sel.key not in cols.summary and entries:  # no sweep: no run to blame
            known = list(cols.metrics) + [k for k in cols.summary if k not in cols.metrics]
            raise ConfigError(f"no selected run logged metric {sel.key!r}; logged: {', '.join(known) or 'none'}")
        elif sel.stat is None:
            values.update((f"{sel.key}:{s}", None) for s in DEFAULT_STATS)
        else:
            values[sel.column] = None
    values.update((c, None) for c in where_columns if c in values or cols.physical(c) and c not in params)
    return [*RUN_FIELDS, *params, *values]


def _selectors(metrics: Optional[Sequence[str]]) -> List[MetricSelector]:
    out = []
    for text in metrics or []:
        sel = parse_selector(text)
        if sel.stat == "at":
            raise ConfigError(f"-m {text!r}: runs reads each run's summary stats, not its history; "
                              f"`hpctrack table SWEEP -m {text}` shows a step's value")  # fmt: skip
        out.append(sel)
    return out


class _Built:
    """The rows of the sweeps read now: pyarrow Tables (``tables``, joined in ``table``) or DataFrames."""

    def __init__(self, results: Dict[str, Any]) -> None:
        import pyarrow as pa

        self.frames: Dict[str, "pd.DataFrame"] = {s: r for s, r in results.items() if not isinstance(r, pa.Table)}
        self.tables: Dict[str, "pa.Table"] = {s: r for s, r in results.items() if isinstance(r, pa.Table)}
        self.table: "Optional[pa.Table]" = None
        if self.tables:
            try:  # one table for all: a column's type may widen (int and float), never change kind
                self.table = _plain(pa.concat_tables(list(self.tables.values()), promote_options="permissive"))
            except (pa.ArrowException, ValueError):  # a param text in one sweep and a number in another
                self.frames.update((s, _plain(t).to_pandas()) for s, t in self.tables.items())
                self.tables = {}

    def __contains__(self, sweep_id: str) -> bool:
        return sweep_id in self.frames or sweep_id in self.tables

    def __len__(self) -> int:
        return len(self.frames) + len(self.tables)

    def ids(self) -> List[str]:
        return [*self.frames, *self.tables]

    def columns(self, sweep_id: str) -> List[str]:
        if sweep_id in self.tables:
            return list(self.tables[sweep_id].column_names)
        return list(map(str, self.frames[sweep_id].columns))

    def read(self, columns: Sequence[str], sweeps: Sequence[str]) -> "List[pd.DataFrame]":
        """Those of ``columns`` (and the base ones) for the rows of ``sweeps``."""
        import pyarrow as pa
        import pyarrow.compute as pc

        out = []
        for sid in sweeps:
            if sid in self.frames:
                frame = self.frames[sid]
                out.append(frame[[c for c in frame.columns if c in BASE_COLUMNS or c in columns]])
        arrow = [sid for sid in sweeps if sid in self.tables]
        if arrow and self.table is not None:
            table = self.table.select([c for c in self.table.column_names if c in BASE_COLUMNS or c in columns])
            if len(arrow) < len(self.tables):
                table = table.filter(pc.is_in(table["sweep"], value_set=pa.array(arrow, type=pa.string())))
            out.append(table.to_pandas())
        return out

    def frame(self) -> "pd.DataFrame":
        """All rows in one DataFrame."""
        import pandas as pd

        frames = [*self.frames.values(), *([self.table.to_pandas()] if self.table is not None else [])]
        return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def _plain(table: "pa.Table") -> "pa.Table":
    """Columns without any value as float (NaN), as the DataFrame path makes them: they join any other kind."""
    import pyarrow as pa

    for i, name in enumerate(table.column_names):
        if pa.types.is_null(table.schema.field(i).type):
            table = table.set_column(i, name, pa.nulls(table.num_rows, pa.float64()))
    return table


def _scan(base: Path, catalog: Catalog, notes: List[str]
          ) -> "Tuple[Dict[str, SweepEntry], Dict[str, Path], Optional[CatalogFile], Dict[str, CatalogFile], _Built]":  # fmt: skip
    """Every sweep of the root with where its rows are: the merged file, a part file, or read now."""
    merged = catalog.merged()
    entries: Dict[str, SweepEntry] = {}
    paths: Dict[str, Path] = {}
    parts: Dict[str, CatalogFile] = {}
    built: Dict[str, Any] = {}
    todo: List[Path] = []
    present = catalog.part_files()  # one listing, not a failed open per sweep without a part
    for path in iter_sweep_dirs(base):
        sid, key = path.name, sweep_key(path)
        paths[sid] = path
        entries[sid] = None  # type: ignore[assignment]  # keeps the order of ls: filled below
        if merged is not None and sid in merged.entries and merged.entries[sid].key == key:
            entries[sid] = merged.entries[sid]
            continue
        part = catalog.part(sid) if catalog.part_path(sid).name in present else None
        if part is not None and sid in part.entries and part.entries[sid].key == key:
            entries[sid], parts[sid] = part.entries[sid], part
            continue
        if part is not None:
            part.close()
        todo.append(path)
    for path, result in zip(todo, _build_all(todo)):
        sid = path.name
        if isinstance(result, HpctrackError):  # one damaged sweep is named and skipped, as ls does
            notes.append(f"skipped {path}: {' '.join(str(result).split())}")
            paths.pop(sid)
            entries.pop(sid)
            continue
        entries[sid], built[sid] = result
        if entries[sid].problem:
            notes.append(f"tags of {path} not shown: {entries[sid].problem}")
    return entries, paths, merged, parts, _Built(built)


def _build_all(todo: Sequence[Path]) -> "List[Any]":
    """:func:`~hpctrack.catalog.read_sweep` of each sweep (or the error that skips it), two at a time.

    Most of a sweep's read is parsing its manifest and index in pyarrow, which releases the GIL,
    so a second thread overlaps one sweep's parse (and its file reads) with another's Python.
    """
    from concurrent.futures import ThreadPoolExecutor

    def build(path: Path) -> Any:
        try:
            return read_sweep(path)
        except HpctrackError as err:
            return err

    if len(todo) < 2:
        return [build(p) for p in todo]
    with ThreadPoolExecutor(max_workers=2) as pool:
        return list(pool.map(build, todo))


def _store(catalog: Catalog, entries: Dict[str, SweepEntry], merged: Optional[CatalogFile], parts: Dict[str, CatalogFile],
           built: _Built) -> "Optional[threading.Thread]":  # fmt: skip
    """Keep what was read: a part file per sweep read now, or one merged file once many sweeps are outside it.

    A merged file made only of sweeps read now (a cold query) is written by a thread, returned:
    pyarrow encodes it without the GIL while the query is answered; the caller joins it. It
    reads only that table, never a file the query reads.
    """
    import pandas as pd

    outside = len(parts) + len(built)
    gone = merged is not None and any(sid not in entries for sid in merged.entries)
    if outside <= max(catalog.MERGE_AFTER, catalog.MERGE_SHARE * len(entries)) and not (gone and outside):
        for sid, frame in built.frames.items():
            catalog.write(catalog.part_path(sid), [entries[sid]], frame)
        for sid, table in built.tables.items():
            catalog.write_table(catalog.part_path(sid), [entries[sid]], _plain(table))
        return None
    kept = [] if merged is None else [sid for sid in merged.entries if sid in entries and sid not in parts
                                      and sid not in built]  # fmt: skip
    target, ids, listed = catalog.path / MERGED_FILE, [*parts, *built.ids()], list(entries.values())
    if not kept and not parts and not built.frames and built.table is not None:
        table = built.table
        writer = threading.Thread(target=lambda: _write_merged(catalog, lambda: catalog.write_table(target, listed, table),
                                                               ids), name="hpctrack-catalog")  # fmt: skip
        writer.start()
        return writer
    frames = []
    if merged is not None and kept:
        frames.append(merged.read(merged.reader.schema_arrow.names, kept))
    frames += [part.read(part.reader.schema_arrow.names) for part in parts.values()]
    if len(built):
        frames.append(built.frame())
    frame = pd.concat([f for f in frames if len(f)], ignore_index=True) if any(len(f) for f in frames) \
        else frames[0]  # fmt: skip
    _write_merged(catalog, lambda: catalog.write(target, listed, frame), ids)
    return None


def _write_merged(catalog: Catalog, write: Callable[[], bool], ids: Sequence[str]) -> None:
    """``write()`` the merged file; once written, the part files of the sweeps it now holds are removed."""
    if write():
        present = catalog.part_files()
        for sid in ids:
            if catalog.part_path(sid).name in present:
                catalog.remove_part(sid)


def runs(
    where: Optional[str] = None,
    *,
    sweeps: Union[str, Sequence[str], None] = None,
    since: Optional[str] = None,
    tags: Union[str, Sequence[str]] = (),
    metrics: Union[str, Sequence[str], None] = None,
    all_params: bool = False,
    sort: Union[str, Sequence[str], None] = None,
    limit: Optional[int] = None,
    root: Optional[str] = None,
) -> "pd.DataFrame":
    """The runs of every sweep of the root matching ``where``, one row per run.

    Parameters
    ----------
    where:
        A filter in the language of ``table --filter`` (:mod:`hpctrack.query`) over params,
        metric selectors (``val/acc:max``), summary values, ``state``, ``runtime_s``, ``job``,
        ``sweep`` (id), ``sweep_name``, ``note``, ``created`` and ``tags.KEY``.
    sweeps:
        A glob on the sweep's id or name (``'2026-10*'``, ``'vit-*'``), or a list of them (any may match).
    since:
        Only sweeps created since then: ``30d``, ``12h``, ``2026-10-01`` (as ``hpctrack ls``).
    tags:
        ``key=value`` or ``key`` (as ``hpctrack ls --tag``), or a list of them; all must hold.
    metrics:
        Metric columns: ``KEY`` (last, min, max; or a summary value) or ``KEY:STAT``.
        Default: every metric's last, min and max, and every summary value.
    all_params:
        Every param, not only the keys the sweeps vary and those ``where`` names.
    sort:
        Columns to sort by, ``-COLUMN`` for descending. Default: newest sweep first, then job.
    limit:
        Keep the first N rows.
    root:
        The storage root (default: as every command resolves it).

    Returns
    -------
    pandas.DataFrame
        Columns ``sweep``, ``sweep_name``, ``tags`` (dict), ``note``, ``job``, ``state``,
        ``runtime_s``, the params, the metric columns. ``attrs["note"]``: sweeps skipped, a
        catalog not used, or None.

    Raises
    ------
    ConfigError
        A malformed ``where`` (:class:`~hpctrack.query.FilterError`), glob, ``since``, tag,
        metric or sort column (one line, before anything is read).
    """
    import numpy as np
    import pandas as pd

    from ._since import parse_since

    cutoff = parse_since(since) if since is not None else None
    wanted = [tag_condition(t) for t in _as_list(tags)]
    patterns = [_check_glob(p) for p in _as_list(sweeps)] if sweeps is not None else None
    selectors = _selectors(_as_list(metrics) if metrics is not None else None)
    sort = _as_list(sort) if sort is not None else None
    if limit is not None and limit < 0:
        raise ConfigError(f"--limit {limit}: give a number of rows >= 0")
    expr = None
    if where is not None:
        try:
            expr = parse(where)  # the syntax, before anything is read
        except FilterError as err:
            raise _bad_where(where, err) from None
        at = next((c for c in expr.columns if ":at=" in c), None)
        if at is not None:
            raise _bad_where(where, FilterError(f"{at}: runs reads each run's summary stats, not its history; "
                                                f"`hpctrack table SWEEP --filter` can use {at}"))  # fmt: skip
    base = resolve_root(root)
    catalog = Catalog(base)
    notes: List[str] = [catalog.note] if catalog.note else []
    entries, paths, merged, parts, built = _scan(base, catalog, notes)
    writer = None
    try:
        writer = _store(catalog, entries, merged, parts, built)
        order = {sid: i for i, sid in enumerate(entries)}
        chosen = [e for e in entries.values()
                  if (cutoff is None or e.created >= cutoff) and all(has_tag(e.tags, k, v) for k, v in wanted)
                  and (patterns is None or any(fnmatch.fnmatchcase(e.id, p)
                                               or (e.name is not None and fnmatch.fnmatchcase(e.name, p))
                                               for p in patterns))]  # fmt: skip
        ids = [e.id for e in chosen]
        physical: Dict[str, None] = {}
        if merged is not None and any(sid in merged.entries and sid not in parts and sid not in built for sid in ids):
            physical.update(dict.fromkeys(merged.reader.schema_arrow.names))
        for sid in ids:
            if sid in parts:
                physical.update(dict.fromkeys(parts[sid].reader.schema_arrow.names))
            elif sid in built:
                physical.update(dict.fromkeys(built.columns(sid)))
        live = {e.id: live_rows(load_manifest(paths[e.id]), e.live) for e in chosen if e.live}
        for frame in live.values():
            physical.update(dict.fromkeys(map(str, frame.columns)))
        cols = _Columns(list(physical), sorted({k for e in chosen for k in e.tags}))
        known = cols.names()
        if expr is not None and chosen:  # no sweep selected: the syntax was checked, no column is unknown
            assert where is not None
            try:
                expr = parse(where, known)
            except FilterError as err:
                retry = parse(where)  # a tag no selected sweep has is no error: it selects nothing, as in ls
                if not all(c in known or c.startswith("tags.") for c in retry.columns):
                    raise _bad_where(where, err) from None
                expr = retry
        where_columns = expr.columns if expr is not None else []
        output = _output_columns(cols, chosen, selectors, where_columns, all_params)
        need = list(dict.fromkeys(p for c in [*where_columns, *output] for p in cols.physical(c)))
        pieces = []
        in_merged = [sid for sid in ids if merged is not None and sid in merged.entries and sid not in parts
                     and sid not in built]  # fmt: skip
        if in_merged and merged is not None:
            pieces.append(merged.read(need, in_merged))
        pieces += built.read(need, [sid for sid in ids if sid in built])
        for sid in ids:
            if sid in parts:
                pieces.append(parts[sid].read(need))
            if sid in live:
                frame = live[sid]
                pieces.append(frame[[c for c in frame.columns if c in BASE_COLUMNS or c in need]])
    except BaseException:
        if writer is not None:
            writer.join()
        raise
    finally:
        for part in parts.values():
            part.close()
        if merged is not None:
            merged.close()
    try:
        pieces = [p for p in pieces if len(p)]
        with warnings.catch_warnings():
            # pandas 2 warns that all-NA columns will stop taking part in the result's dtype: a sweep
            # without a param has NaN there, and that must not turn another sweep's numbers into objects.
            warnings.simplefilter("ignore", FutureWarning)
            phys = pd.concat(pieces, ignore_index=True) if pieces else pd.DataFrame({c: [] for c in BASE_COLUMNS})
        if expr is not None and len(phys):
            view = pd.DataFrame(index=phys.index)
            for name in where_columns:
                if cols.physical(name):
                    view[name] = _value_column(phys, cols, name)
                elif name in ("job", "state", "runtime_s"):
                    view[name] = phys[name]
            _sweep_fields(view, phys, entries, [c for c in where_columns if c not in view.columns])
            try:
                mask = expr.evaluate(view).to_numpy()
            except FilterError as err:
                raise _bad_where(str(where), err) from None
            phys = phys[mask].reset_index(drop=True)
        # Newest sweep first (the order of ls), then by job.
        rank = phys["sweep"].map(order).to_numpy(dtype=np.int64) if len(phys) else np.array([], dtype=np.int64)
        phys = phys.iloc[np.lexsort((phys["job"].to_numpy(dtype=np.int64), rank))].reset_index(drop=True)
        out = pd.DataFrame(index=phys.index)
        _sweep_fields(out, phys, entries, ["sweep", "sweep_name", "tags", "note"])
        out["job"] = phys["job"].to_numpy(dtype=np.int64)
        out["state"] = phys["state"].to_numpy(dtype=object)
        out["runtime_s"] = pd.to_numeric(phys["runtime_s"], errors="coerce").to_numpy(dtype=np.float64)
        for name in output[len(RUN_FIELDS) :]:
            values = _value_column(phys, cols, name)
            out[name] = values.to_numpy() if hasattr(values, "to_numpy") else values
        for column in out.columns:
            if out[column].dtype == object and column != "tags":
                out[column] = out[column].infer_objects()
        if sort:
            out = sort_frame(out, sort)
        if limit is not None:
            out = out.head(limit).reset_index(drop=True)
        out.attrs["note"] = "; ".join(notes) or None
        out.attrs["sweeps"] = len(chosen)
        return out
    finally:
        if writer is not None:
            writer.join()  # the catalog file is whole (or absent) before the answer is returned
