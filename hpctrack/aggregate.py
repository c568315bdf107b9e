"""A sweep as a results table (pandas), and the table's export formats.

The table reads each run's record (sections and per-metric running stats),
never its full metric histories.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence, Tuple

from .errors import ConfigError
from .manifest import Manifest
from .status import JobStatus, job_statuses

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["METRIC_STATS", "DEFAULT_STATS", "sweep_table", "parse_metric", "export_table", "FORMATS"]

#: Per-metric statistics a column can show, read from the run's running stats.
METRIC_STATS = ("last", "min", "max", "count", "last_step")
DEFAULT_STATS = ("last", "min", "max")
FORMATS = ("csv", "json", "parquet", "markdown")


def parse_metric(selector: str) -> Tuple[str, Optional[str]]:
    """``"val/acc:max"`` -> ``("val/acc", "max")``; ``"val/acc"`` -> ``("val/acc", None)``."""
    key, sep, stat = selector.rpartition(":")
    if not sep:
        return selector, None
    if stat not in METRIC_STATS:
        raise ConfigError(f"unknown metric statistic {stat!r} in {selector!r}; use one of: {', '.join(METRIC_STATS)}")
    if not key:
        raise ConfigError(f"metric selector {selector!r} has no metric name; write KEY or KEY:STAT")
    return key, stat


def _typed(text: str) -> Any:
    """An override's value as the type Hydra would give it (int, float, bool, null, str)."""
    lowered = text.strip().lower()
    if lowered in ("null", "none", "~"):
        return None
    if lowered in ("true", "false"):
        return lowered == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text.strip("'\"")


def _override_values(overrides: Sequence[str]) -> Dict[str, Any]:
    out = {}
    for override in overrides:
        key, _, value = override.partition("=")
        out[key.lstrip("+~")] = _typed(value)
    return out


def _columns(statuses: List[JobStatus], selectors: Optional[Sequence[str]]) -> List[Tuple[str, str]]:
    logged: Dict[str, None] = {}
    for st in statuses:
        if st.record is not None:
            logged.update(dict.fromkeys(sorted(st.record.metrics)))
    if not selectors:
        return [(key, stat) for key in logged for stat in DEFAULT_STATS]
    columns = []
    for selector in selectors:
        key, stat = parse_metric(selector)
        if logged and key not in logged:
            raise ConfigError(f"no run of this sweep logged metric {key!r}; logged: {', '.join(logged)}")
        columns.extend((key, s) for s in ((stat,) if stat else DEFAULT_STATS))
    return columns


def sweep_table(manifest: Manifest, *, metrics: Optional[Sequence[str]] = None,
                all_params: bool = False) -> "pd.DataFrame":
    """One row per run: job, swept params, state, runtime, metric stats, summary values.

    Parameters
    ----------
    manifest:
        The sweep.
    metrics:
        Metric selectors ``KEY`` (last, min and max) or ``KEY:STAT`` with STAT
        one of :data:`METRIC_STATS`; default every logged metric.
    all_params:
        Every param of the resolved config, not only the keys the sweep varies.
    """
    import pandas as pd

    statuses = job_statuses(manifest)
    metric_columns = _columns(statuses, metrics)
    param_keys: Dict[str, None] = dict.fromkeys(manifest.swept_keys)
    if all_params:
        for st in statuses:
            if st.record is not None:
                param_keys.update(dict.fromkeys(st.record.params))
    summary_set = set()
    for st in statuses:
        if st.record is not None:
            summary_set.update(st.record.summary)
    summary_keys = dict.fromkeys(sorted(summary_set))
    rows = []
    for st in statuses:
        record = st.record
        from_overrides = _override_values(st.overrides)
        row: Dict[str, Any] = {"job": st.index}
        for key in param_keys:
            if record is not None and key in record.params:
                row[key] = record.params[key]
            else:
                row[key] = from_overrides.get(key)
        row["state"] = st.state.value
        row["runtime_s"] = st.runtime_s
        for key, stat in metric_columns:
            stats = record.metrics.get(key) if record is not None else None
            row[f"{key}:{stat}"] = getattr(stats, stat) if stats is not None else math.nan
        for key in summary_keys:
            row[key] = record.summary.get(key) if record is not None else None
        rows.append(row)
    columns = ["job", *param_keys, "state", "runtime_s", *(f"{k}:{s}" for k, s in metric_columns), *summary_keys]
    frame = pd.DataFrame(rows, columns=columns)
    for column in frame.columns:
        if frame[column].dtype == object:
            frame[column] = frame[column].map(lambda v: str(v) if isinstance(v, (list, dict)) else v)
    return frame


def _plain(value: Any) -> Any:
    # numpy scalars that pandas leaves in object columns
    return value.item() if hasattr(value, "item") else str(value)


def export_table(frame: "pd.DataFrame", fmt: str, path: Optional[Path] = None) -> Optional[str]:
    """Render ``frame`` as csv, json (one object per run), parquet or markdown.

    Returns the text when ``path`` is None; parquet, being binary, needs ``path``.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"unknown format {fmt!r}; choose one of: {', '.join(FORMATS)}")
    if fmt == "parquet":
        if path is None:
            raise ConfigError("parquet is binary: give an output file with -o FILE")
        frame.to_parquet(path, index=False)
        return None
    if fmt == "csv":
        text = frame.to_csv(index=False)
    elif fmt == "json":
        records = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
        text = json.dumps(records, indent=1, default=_plain) + "\n"
    else:
        text = frame.to_markdown(index=False, floatfmt=".4g") + "\n"
    if path is not None:
        Path(path).write_text(text)
        return None
    return text
