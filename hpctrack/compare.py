"""Two or more sweeps side by side: grouped on their common params, with deltas against the first."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, List, Optional, Sequence

from .aggregate import DEFAULT_SEED_KEYS, lower_is_better
from .errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

    from .sweep import Sweep

__all__ = ["compare_sweeps"]


def compare_sweeps(
    sweeps: Sequence["Sweep"],
    metrics: Sequence[str],
    *,
    group_by: Optional[Sequence[str]] = None,
    where: Optional[str] = None,
    seed_keys: Sequence[str] = DEFAULT_SEED_KEYS,
    labels: Optional[Sequence[str]] = None,
) -> "pd.DataFrame":
    """One row per setting of the common params; per sweep mean, std and n of each metric.

    For every sweep after the first: ``METRIC delta LABEL`` (its mean minus the
    first sweep's) and ``METRIC beyond spread LABEL``: whether the delta is
    larger than the seed-to-seed spread (the larger of the two stds). A setting
    only one sweep ran is kept, with NaN for the other. When the runs of a sweep ran
    different code, its ``code LABEL`` column says which, and ``frame.attrs["note"]`` names it.

    Parameters
    ----------
    group_by:
        The params to align on; default: the swept keys (but ``seed_keys``)
        that every sweep has. No common key gives one row per sweep overall.
    """
    import pandas as pd

    if len(sweeps) < 2:
        raise ConfigError("compare needs two or more sweeps")
    if not metrics:
        raise ConfigError("compare needs at least one --metric, e.g. --metric val/acc:max")
    labels = list(labels or [s.manifest.name or s.id for s in sweeps])
    if len(set(labels)) != len(labels):
        labels = [s.id for s in sweeps]
    if len(set(labels)) != len(labels):  # the same sweep twice
        labels = [f"{label}#{i + 1}" for i, label in enumerate(labels)]
    manifests = [s.manifest for s in sweeps]
    if group_by is None:
        common = [k for k in manifests[0].swept_keys if k not in seed_keys
                  and all(k in m.swept_keys for m in manifests[1:])]  # fmt: skip
    else:
        common = list(group_by)
    tables: List["pd.DataFrame"] = []
    metric_columns: List[str] = []
    notes: List[str] = []
    for sweep, label in zip(sweeps, labels):
        frame = sweep.table(metrics=list(metrics), group_by=common, agg=["mean", "std", "count"], where=where,
                            all_params=bool(group_by), seed_keys=seed_keys)  # fmt: skip
        metric_columns = frame.attrs.get("metrics", metric_columns)
        if frame.attrs.get("code_note"):  # its column "code LABEL" is in the frame; the terminal shows the note
            notes.append(f"{label}: {frame.attrs['code_note']}")
        renamed = {c: f"{c} {label}" for c in frame.columns if c not in common}
        tables.append(frame.rename(columns=renamed))
    if common:
        merged = tables[0]
        for other in tables[1:]:
            merged = merged.merge(other, on=common, how="outer", sort=True)
    else:
        merged = pd.concat(tables, axis=1)
    first = labels[0]
    for metric in metric_columns:
        for label in labels[1:]:
            delta = merged[f"{metric} mean {label}"] - merged[f"{metric} mean {first}"]
            spread = pd.concat([merged[f"{metric} std {first}"], merged[f"{metric} std {label}"]], axis=1).max(axis=1)
            merged[f"{metric} delta {label}"] = delta
            merged[f"{metric} beyond spread {label}"] = [
                None if math.isnan(d) or math.isnan(s) else bool(abs(d) > s) for d, s in zip(delta, spread)
            ]
    differing = _fixed_settings_that_differ(sweeps, labels, metrics, common, seed_keys, where)
    if differing:
        notes.append(differing)
    merged.attrs.update({"group_by": common, "labels": labels, "metrics": metric_columns,
                         "lower_is_better": {m: lower_is_better(m) for m in metric_columns},
                         "note": "; ".join(notes) or None})  # fmt: skip
    return merged


def _fixed_settings(frame: "pd.DataFrame") -> dict:
    """The params every run of a table shares, with their one value (a table's params stand between job and state)."""
    columns = list(frame.columns)
    params = columns[1 : columns.index("state")] if "state" in columns else []
    out = {}
    for key in params:
        if key == "trial":
            continue
        values = frame[key].dropna().unique()
        if len(values) == 1 and frame[key].notna().all():
            out[key] = values[0]
    return out


def _fixed_settings_that_differ(sweeps: Sequence["Sweep"], labels: Sequence[str], metrics: Sequence[str],
                                common: Sequence[str], seed_keys: Sequence[str], where: Optional[str]) -> Optional[str]:  # fmt: skip
    """Settings each sweep held fixed but at different values (``epochs``: 3 in one, 2 in the other), in a line.

    Their deltas mix those differences in with the aligned params': the comparison says so.
    """
    fixed = [_fixed_settings(s.table(metrics=list(metrics), all_params=True, where=where)) for s in sweeps]
    keys = [k for k in fixed[0] if k not in common and k not in seed_keys and all(k in f for f in fixed[1:])]
    differ = [k for k in keys if any(f[k] != fixed[0][k] for f in fixed[1:])]
    if not differ:
        return None
    shown = "; ".join(f"{k} (" + ", ".join(f"{label}: {f[k]}" for label, f in zip(labels, fixed)) + ")"
                      for k in differ[:5])  # fmt: skip
    more = f"; ... {len(differ) - 5} more" if len(differ) > 5 else ""
    return f"the sweeps also differ in settings each held fixed: {shown}{more}; the deltas include their effect"
