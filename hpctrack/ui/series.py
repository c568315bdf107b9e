"""Metric curves for the dashboard: histories cut down to what a chart can show, spikes kept.

:func:`sweep_curves` builds the JSON of ``api/sweeps/<ref>/history`` (every run's curve, or
one mean curve per group with a std or CI band), :func:`run_curves` that of
``api/runs/<ref>/<job>/history``. Both read resolved histories (after a requeue, the points
a later attempt replaced are not drawn) through :meth:`hpctrack.sweep.Sweep.history` and
:meth:`hpctrack.store.Store.read_history`, and work on all runs' points at once in numpy:
one pass over the concatenated columns, no Python loop per point.

Downsampling (:func:`minmax_downsample`) splits a curve's x range into buckets of equal
width and keeps, in each bucket, the point with the smallest and the one with the largest
value, plus the curve's first and last points: a spike one step wide is still drawn, which
averaging or taking every n-th point would hide.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Callable, Dict, List, Optional, Sequence, Tuple

from ..errors import ConfigError

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from ..manifest import Manifest
    from ..sweep import Sweep

__all__ = [
    "sweep_curves",
    "run_curves",
    "minmax_downsample",
    "X_AXES",
    "BANDS",
    "DEFAULT_POINTS",
    "MAX_POINTS",
    "DEFAULT_BUDGET",
]

#: What a curve's x can be: the step, or seconds since the run's first point of the metric.
X_AXES = ("step", "time")
#: The band around a group's mean: ± one standard deviation, or the 95 % t-interval of the mean.
BANDS = ("std", "ci")
#: Points per curve by default: about a chart's width in pixels.
DEFAULT_POINTS = 1000
#: The most points per curve a request may ask for (``full`` returns every point instead).
MAX_POINTS = 10_000
#: Fewer points than this cannot keep a curve's first and last points.
MIN_POINTS = 2
#: Points of all curves of one answer together, by default: 1,000 runs of 1,000 steps come as 100
#: points each (49 min/max buckets and the ends), 2.6 MB of JSON instead of 26 MB. Chromium draws
#: 1,000 such curves in about 0.25 s, 200 points each in 0.35 s.
DEFAULT_BUDGET = 100_000
#: Per curve, the budget never leaves fewer points than this (10,000 runs: 50 points each).
MIN_BUDGET_POINTS = 50
#: The strongest smoothing: at 1 the average would never move from the first point.
MAX_SMOOTH = 0.99


# -- downsampling ------------------------------------------------------------------------------


def minmax_downsample(x: "np.ndarray", y: "np.ndarray", buckets: int) -> "Tuple[np.ndarray, np.ndarray]":
    """The points of one curve that keep its shape: min and max of ``y`` per x bucket, first and last.

    Parameters
    ----------
    x:
        The curve's x values, ascending (steps or seconds).
    y:
        Its values, as long as ``x``. NaN counts as missing: a bucket of NaN only keeps
        one of them (the chart shows a gap there); elsewhere NaN points are dropped.
    buckets:
        Number of buckets of equal width over ``[x[0], x[-1]]``.

    Returns
    -------
    (x, y)
        At most ``2 * buckets + 2`` points, in their original order (the first and last
        always among them); the curve unchanged when it has no more points than that.
    """
    import numpy as np

    x, y = np.asarray(x), np.asarray(y, dtype=np.float64)
    if len(x) != len(y):
        raise ConfigError(f"x and y differ in length ({len(x)} and {len(y)})")
    if buckets < 0:
        raise ConfigError(f"buckets must be 0 or more, got {buckets}")
    keep = _keep(np.zeros(1, dtype=np.int64), x, y, 2 * buckets + 2) if len(x) else np.zeros(0, dtype=bool)
    return x[keep], y[keep]


def _keep(starts: "np.ndarray", x: "np.ndarray", y: "np.ndarray", points: int) -> "np.ndarray":
    """Mask of the points to draw of curves laid end to end (curve i from ``starts[i]``; none empty).

    Each curve's x must ascend. A curve of at most ``points`` points is kept whole; a longer
    one keeps its first and last points and the min and max of each of ``(points - 2) // 2``
    equal-width x buckets, so at most ``points`` points.
    """
    import numpy as np

    n = len(x)
    lengths = np.diff(np.append(starts, n))
    long = lengths > points
    keep = np.ones(n, dtype=bool)
    if not long.any():
        return keep
    in_long = np.repeat(long, lengths)
    rows = np.flatnonzero(in_long)  # the long curves' points, in order
    keep[rows] = False
    first = starts[long]
    last = first + lengths[long] - 1
    keep[first] = keep[last] = True
    buckets = (points - 2) // 2
    if buckets == 0:
        return keep
    # Bucket of each point: its curve's bucket count times the curve's number, plus its place in x.
    curve = np.repeat(np.arange(int(long.sum())), lengths[long])
    lo = np.repeat(x[first].astype(np.float64), lengths[long])
    width = np.repeat((x[last] - x[first]).astype(np.float64), lengths[long])
    with np.errstate(invalid="ignore", divide="ignore"):
        place = np.where(width > 0, (x[rows] - lo) / width, 0.0)
    bucket = curve * buckets + np.clip((place * buckets).astype(np.int64), 0, buckets - 1)
    bounds = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
    which = np.cumsum(np.r_[True, bucket[1:] != bucket[:-1]]) - 1  # each point's bucket, 0..len(bounds)-1
    values = y[rows]
    nan = np.isnan(values)
    for_min = np.where(nan, np.inf, values)
    for_max = np.where(nan, -np.inf, values)
    for extreme, ufunc in ((for_min, np.minimum), (for_max, np.maximum)):
        hits = np.flatnonzero(extreme == ufunc.reduceat(extreme, bounds)[which])
        # The first hit of each bucket (every bucket has one: its own extreme).
        keep[rows[hits[np.r_[True, which[hits][1:] != which[hits][:-1]]]]] = True
    return keep


def _sorted_by_x(starts: "np.ndarray", x: "np.ndarray") -> "Optional[np.ndarray]":
    """The order that sorts each curve by x (stable), or None when every curve already ascends."""
    import numpy as np

    if len(x) < 2:
        return None
    down = np.diff(x) < 0
    down[starts[1:] - 1] = False  # where a curve starts, x may fall
    if not down.any():
        return None
    curve = np.repeat(np.arange(len(starts)), np.diff(np.append(starts, len(x))))
    return np.lexsort((x, curve))


def _smooth(starts: "np.ndarray", y: "np.ndarray", weight: float) -> "np.ndarray":
    """TensorBoard's smoothing of each curve: a debiased exponential moving average of its finite points.

    Point t of a curve (its k-th finite value) becomes ``s_t / (1 - weight**k)`` with
    ``s_t = weight * s_(t-1) + (1 - weight) * y_t`` and ``s = 0`` before the curve: the
    average of the values so far with weights ``weight**age``. NaN and inf stay where they are
    and do not count. All curves go through one running average: each curve subtracts
    what the curves before it left in it, which has decayed by ``weight**k`` by then.
    """
    import numpy as np
    import pandas as pd

    out = y.astype(np.float64, copy=True)
    finite = np.isfinite(out)
    values = out[finite]
    if not len(values):
        return out
    curve = np.repeat(np.arange(len(starts)), np.diff(np.append(starts, len(y))))[finite]
    # The running average over every curve's finite values in a row, from 0 before the first one.
    running = pd.Series(np.r_[0.0, values]).ewm(alpha=1.0 - weight, adjust=False).mean().to_numpy()
    head = np.flatnonzero(np.r_[True, curve[1:] != curve[:-1]])  # each curve's first finite value
    k = np.arange(len(values)) - np.repeat(head, np.diff(np.append(head, len(values)))) + 1
    before = np.repeat(running[head], np.diff(np.append(head, len(values))))  # running[i] precedes value i
    decay = weight ** k.astype(np.float64)
    out[finite] = (running[1:] - decay * before) / (1.0 - decay)
    return out


# -- JSON --------------------------------------------------------------------------------------


def _floats(values: "np.ndarray") -> List[Any]:
    """Floats for JSON: NaN and inf become None (JSON has neither)."""
    import numpy as np

    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    if finite.all():
        return values.tolist()
    out = values.astype(object)
    out[~finite] = None
    return out.tolist()


def _xs(values: "np.ndarray", axis: str) -> List[Any]:
    """x values for JSON: steps as ints, seconds as floats."""
    import numpy as np

    if axis == "step" and np.issubdtype(np.asarray(values).dtype, np.integer):
        return np.asarray(values).tolist()
    return _floats(values)


def _plain(value: Any) -> Any:
    """A param value as JSON takes it: numpy scalars unwrapped, NaN (no value) as None."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


# -- checks ------------------------------------------------------------------------------------


def _per_curve(points: int, budget: Optional[int], curves: int) -> int:
    """Points per curve: ``points``, fewer when ``curves`` of them would exceed ``budget`` together."""
    if budget is None or curves <= 0:
        return points
    return max(min(points, budget // curves), min(points, MIN_BUDGET_POINTS))


def _check_options(x: str, points: int, smooth: float = 0.0, band: str = "std") -> None:
    if x not in X_AXES:
        raise ConfigError(f"x must be 'step' or 'time', got {x!r}")
    if band not in BANDS:
        raise ConfigError(f"band must be 'std' or 'ci', got {band!r}")
    if isinstance(points, bool) or not isinstance(points, int) or not MIN_POINTS <= points <= MAX_POINTS:
        raise ConfigError(f"points must be a whole number from {MIN_POINTS} to {MAX_POINTS:,}, got {points!r} "
                          "(full=1 returns every point)")  # fmt: skip
    if not isinstance(smooth, (int, float)) or isinstance(smooth, bool) or not 0.0 <= smooth <= MAX_SMOOTH:
        raise ConfigError(f"smooth must be a number from 0 to {MAX_SMOOTH}, got {smooth!r}")


def _indexed_metrics(sweep_dir: Any) -> List[str]:
    """The metric keys the sweep's index lists (the ended runs' metrics), sorted."""
    from ..index import SEP, index_frame

    prefix = f"m{SEP}"
    keys = {c[len(prefix) :].split(SEP, 1)[0] for c in index_frame(sweep_dir, write_cache=False).columns
            if isinstance(c, str) and c.startswith(prefix)}  # fmt: skip
    return sorted(keys)


def _unknown_metric(manifest: "Manifest", key: str) -> ConfigError:
    known = _indexed_metrics(manifest.path)
    logged = f"logged: {', '.join(known)}" if known else "no ended run has logged a metric yet"
    return ConfigError(f"no run of sweep {manifest.id} logged metric {key!r}; {logged}")


def _anyone_logged(sweep: "Sweep", key: str) -> bool:
    """Whether any run of the sweep logged ``key``: the index first, every run's store when it does not say."""
    if key in _indexed_metrics(sweep.manifest.path):
        return True
    history = sweep.history(key)  # running runs are not in the index yet
    return not history.empty or bool(history.attrs.get("skipped"))


# -- sweeps ------------------------------------------------------------------------------------


def sweep_curves(
    sweep: "Sweep",
    metric: str,
    *,
    runs: Optional[Sequence[int]] = None,
    x: str = "step",
    points: int = DEFAULT_POINTS,
    group_by: Optional[Sequence[str]] = None,
    band: str = "std",
    smooth: float = 0.0,
    full: bool = False,
    budget: Optional[int] = DEFAULT_BUDGET,
    read_history: "Optional[Callable[[Sweep, str, Optional[Sequence[int]]], pd.DataFrame]]" = None,
) -> Dict[str, Any]:
    """Curves of metric ``metric`` over the sweep's runs, per run or per group, ready for JSON.

    Parameters
    ----------
    sweep:
        The sweep (:func:`hpctrack.load_sweep`).
    metric:
        The metric key.
    runs:
        Job indices to draw; None: every run that logged ``metric``.
    x:
        ``step``, or ``time``: seconds since the run's first point of ``metric``
        (``elapsed_s`` of :meth:`~hpctrack.sweep.Sweep.history`).
    points:
        At most this many points per curve (2 to 10,000): see :func:`minmax_downsample`.
        A curve with no more points is returned whole.
    group_by:
        Swept keys: one curve per combination of their values, the mean over its runs
        at each step, with a band. An empty sequence: one group of all runs. None: one
        curve per run.
    band:
        ``std``: mean ± the standard deviation over the runs at the step; ``ci``: the 95 %
        t-interval of the mean. Where one run has the step, no band (None).
    smooth:
        0 to 0.99: each run is smoothed with a debiased exponential moving average of this
        weight (TensorBoard's slider) before grouping and downsampling.
    full:
        Every point, no downsampling.
    budget:
        At most about this many points in all curves together: with many curves, each keeps
        ``budget // curves`` points (never fewer than 50) instead of ``points``. None: no
        budget.
    read_history:
        What reads the runs' histories, called as ``read_history(sweep, metric, runs)``;
        None: :meth:`~hpctrack.sweep.Sweep.history` (the dashboard passes
        :meth:`hpctrack.ui.histories.HistoryCache.read`).

    Returns
    -------
    dict
        ``metric``, ``x``, ``points`` (per curve, after the budget; None with ``full``), ``downsampled`` (whether any curve lost points),
        ``n_runs`` (runs drawn), ``skipped`` (job as a string -> why its data could not be
        read), then ``runs`` (``job``, ``run``, ``params``, ``x``, ``y``) or, with ``group_by``,
        ``groups`` (``key``, ``label``, ``n`` runs, ``jobs``, ``x``, ``mean``, ``lo``, ``hi``,
        and ``count``: runs with a point at each x). NaN and inf values are None.
        With ``x="time"``, a group's x is the mean of its runs' times at each step.

    Raises
    ------
    ConfigError
        A bad option, a job the sweep does not have, a ``group_by`` key the sweep does not
        vary, or a metric no run logged (the message lists the metrics of the sweep's index).
    """
    import numpy as np

    _check_options(x, points, smooth, band)
    manifest = sweep.manifest
    keys = list(group_by) if group_by is not None else None
    unknown = [k for k in keys or [] if k not in manifest.swept_keys]
    if unknown:
        raise ConfigError(
            f"cannot group by {unknown[0]!r}: the sweep varies {', '.join(manifest.swept_keys) or 'nothing'}"
        )
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int) or budget < MIN_POINTS):
        raise ConfigError(f"budget must be a whole number of {MIN_POINTS} points or more, got {budget!r}")
    if read_history is None:
        history = sweep.history(metric, jobs=runs)
    else:
        history = read_history(sweep, metric, runs)
    skipped: Dict[int, str] = dict(history.attrs.get("skipped") or {})
    if history.empty and not skipped and (runs is None or not _anyone_logged(sweep, metric)):
        raise _unknown_metric(manifest, metric)
    jobs_col = history["job"].to_numpy()
    xs = history["step" if x == "step" else "elapsed_s"].to_numpy()
    ys = history["value"].to_numpy(dtype=np.float64)
    steps = history["step"].to_numpy()
    starts = np.flatnonzero(np.r_[True, jobs_col[1:] != jobs_col[:-1]]) if len(jobs_col) else np.zeros(0, np.int64)
    order = _sorted_by_x(starts, xs)
    if order is not None:
        jobs_col, xs, ys, steps = jobs_col[order], xs[order], ys[order], steps[order]
        starts = np.flatnonzero(np.r_[True, jobs_col[1:] != jobs_col[:-1]])
    if smooth > 0 and len(ys):
        ys = _smooth(starts, ys, float(smooth))
    jobs = jobs_col[starts].tolist()
    # The swept params of each run, from its first row (history repeats them on every row).
    first_rows = history.iloc[order[starts] if order is not None else starts] if len(starts) else history.iloc[:0]
    params = first_rows[[k for k in manifest.swept_keys if k in history.columns]]
    # The budget is shared by the curves drawn: runs, or groups (counted before they are built).
    if keys is None:
        curves = len(jobs)
    else:
        curves = (len(params.drop_duplicates(keys)) if keys else 1) if len(jobs) else 0
    points = _per_curve(points, budget, curves)
    # full: every point, so no per-curve count (None)
    out: Dict[str, Any] = {"metric": metric, "x": x, "points": None if full else points, "downsampled": False,
                           "n_runs": len(jobs),
                           "skipped": {str(j): why for j, why in sorted(skipped.items())}}  # fmt: skip
    if keys is None:
        keep = np.ones(len(xs), dtype=bool) if full else _keep(starts, xs, ys, points)
        out["downsampled"] = not bool(keep.all())
        lengths = np.add.reduceat(keep.astype(np.int64), starts) if len(starts) else np.zeros(0, np.int64)
        ends = np.cumsum(lengths)
        x_list, y_list = _xs(xs[keep], x), _floats(ys[keep])
        # A sweep that varies nothing has no param column, and to_dict gives no record at all then.
        records = params.to_dict("records") if len(params.columns) else [{} for _ in jobs]
        out["runs"] = [{"job": job, "run": f"{manifest.id}/{job}", "params": {k: _plain(v) for k, v in p.items()},
                        "x": x_list[end - n : end], "y": y_list[end - n : end]}
                       for job, p, n, end in zip(jobs, records, lengths.tolist(), ends.tolist())]  # fmt: skip
        return out
    groups, downsampled = _group_curves(
        params, keys, starts, steps, xs if x == "time" else None, ys, band, None if full else points
    )
    out["downsampled"] = downsampled
    out["groups"] = [{**g, "jobs": [jobs[i] for i in g["jobs"]], "x": _xs(g["x"], x)} for g in groups]
    return out


def _group_curves(
    params: "pd.DataFrame",
    keys: List[str],
    starts: "np.ndarray",
    steps: "np.ndarray",
    times: "Optional[np.ndarray]",
    ys: "np.ndarray",
    band: str,
    points: Optional[int],
) -> "Tuple[List[Dict[str, Any]], bool]":
    """One mean curve per group of runs: mean, band and count of the runs' finite values at each step.

    ``params`` holds one row per curve (run) with its swept values; ``times`` (x=time) makes each
    group's x the mean of its runs' times at the step. Returns the groups (``jobs`` as positions in
    ``params``, ``x`` as an array) and whether any lost points to downsampling.
    """
    import numpy as np
    import pandas as pd

    from ..aggregate import t_critical_975

    lengths = np.diff(np.append(starts, len(ys)))
    if keys:
        by = params[keys].reset_index(drop=True)
        try:
            code = by.groupby(keys, sort=True, dropna=False).ngroup().to_numpy()
        except TypeError:  # values of mixed types that do not sort: in order of first appearance
            code = by.groupby(keys, sort=False, dropna=False).ngroup().to_numpy()
    else:
        by = params.iloc[:, :0].reset_index(drop=True)
        code = np.zeros(len(params), dtype=np.int64)
    value = np.where(np.isfinite(ys), ys, np.nan)  # inf is no mean: left out like NaN
    frame = pd.DataFrame({"g": np.repeat(code, lengths), "step": steps, "value": value})
    if times is not None:
        frame["time"] = times
    stats = frame.groupby(["g", "step"], sort=True).agg(
        mean=("value", "mean"), std=("value", "std"), count=("value", "count"),
        **({"time": ("time", "mean")} if times is not None else {}),
    )  # fmt: skip
    g = stats.index.get_level_values("g").to_numpy()
    gx = stats["time"].to_numpy() if times is not None else stats.index.get_level_values("step").to_numpy()
    mean, std, count = stats["mean"].to_numpy(), stats["std"].to_numpy(), stats["count"].to_numpy()
    if band == "ci":
        # The half-width t(n-1) * std / sqrt(n), with t looked up once per distinct n.
        ns = np.unique(count)
        factor = np.array([t_critical_975(int(c) - 1) / math.sqrt(c) if c > 1 else math.nan for c in ns])
        std = std * factor[np.searchsorted(ns, count)]
    gstarts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]]) if len(g) else np.zeros(0, np.int64)
    order = _sorted_by_x(gstarts, gx)
    if order is not None:
        g, gx, mean, std, count = g[order], gx[order], mean[order], std[order], count[order]
    keep = np.ones(len(gx), dtype=bool) if points is None else _keep(gstarts, gx, mean, points)
    ends = np.append(gstarts[1:], len(gx))
    groups = []
    for a, b in zip(gstarts.tolist(), ends.tolist()):
        members = np.flatnonzero(code == g[a]).tolist()
        row = by.iloc[members[0]].to_dict() if keys else {}
        kept = np.flatnonzero(keep[a:b]) + a
        groups.append({
            "key": {k: _plain(row[k]) for k in keys},
            "label": ", ".join(f"{k}={_plain(row[k])}" for k in keys) or "all runs",
            "n": len(members), "jobs": members, "x": gx[kept],
            "mean": _floats(mean[kept]), "lo": _floats(mean[kept] - std[kept]), "hi": _floats(mean[kept] + std[kept]),
            "count": count[kept].tolist(),
        })  # fmt: skip
    return groups, not bool(keep.all())


# -- one run -----------------------------------------------------------------------------------


def run_curves(
    sweep: "Sweep",
    job: int,
    metrics: Optional[Sequence[str]] = None,
    *,
    x: str = "step",
    points: int = DEFAULT_POINTS,
    full: bool = False,
) -> Dict[str, Any]:
    """Curves of one run's metrics, ready for JSON.

    Parameters
    ----------
    sweep:
        The sweep.
    job:
        The job index of the run.
    metrics:
        Metric keys; None: every metric the run logged.
    x, points, full:
        As for :func:`sweep_curves`.

    Returns
    -------
    dict
        ``job``, ``run``, ``x``, ``points``, ``downsampled`` (whether any curve lost points),
        and ``metrics``: key -> ``{"x": [...], "y": [...], "downsampled": bool}``. The run's
        resolved histories: points a later attempt replaced are left out.

    Raises
    ------
    ConfigError
        A bad option, a job the sweep does not have, or a metric the run did not log (the
        message lists those it did).
    RunNotFoundError
        The run has not started, or its store is gone.
    """
    import numpy as np

    from ..store import open_store

    _check_options(x, points)
    manifest = sweep.manifest
    logged = list(sweep.run(job).metrics)  # (a job the sweep does not have: its ConfigError)
    store = open_store(manifest.run_path(job), manifest.store)
    keys = list(metrics) if metrics is not None else sorted(logged)
    missing = [k for k in keys if k not in logged]
    if missing:
        raise ConfigError(f"run {manifest.id}/{job} did not log metric {missing[0]!r}; "
                          f"logged: {', '.join(sorted(logged)) or 'none'}")  # fmt: skip
    curves: Dict[str, Any] = {}
    for key in keys:
        history = store.read_history(key)
        xs = np.asarray(history.step) if x == "step" else history.time - (history.time.min() if len(history) else 0)
        ys = np.asarray(history.value, dtype=np.float64)
        starts = np.zeros(1 if len(xs) else 0, dtype=np.int64)
        order = _sorted_by_x(starts, xs)
        if order is not None:
            xs, ys = xs[order], ys[order]
        keep = np.ones(len(xs), dtype=bool) if full or not len(xs) else _keep(starts, xs, ys, points)
        curves[key] = {"x": _xs(xs[keep], x), "y": _floats(ys[keep]), "downsampled": not bool(keep.all())}
    return {"job": job, "run": f"{manifest.id}/{job}", "x": x, "points": None if full else points,
            "downsampled": any(c["downsampled"] for c in curves.values()), "metrics": curves}  # fmt: skip
