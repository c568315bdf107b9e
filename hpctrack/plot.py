"""Grouped metric curves as an image: the mean of each group's runs per step, with a std or CI band.

Needs matplotlib (``pip install 'hpctrack[plot]'``); imported only here.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Dict, Optional, Sequence, Union

from .aggregate import DEFAULT_SEED_KEYS, t_critical_975
from .errors import ConfigError

if TYPE_CHECKING:
    from .sweep import Sweep

__all__ = ["plot_metric", "plot_optimization", "PLOT_FORMATS", "Plot"]

PLOT_FORMATS = (".png", ".svg", ".pdf")


@dataclass(frozen=True)
class Plot(os.PathLike):
    """The image written, and the runs left out of it (job -> why). Usable wherever a path is."""

    path: Path
    skipped: Dict[int, str] = field(default_factory=dict)

    def __fspath__(self) -> str:
        return str(self.path)

    def __str__(self) -> str:
        return str(self.path)


def plot_metric(
    sweep: "Sweep",
    key: str,
    output: Union[str, Path],
    *,
    group_by: Union[None, bool, Sequence[str]] = True,
    x: str = "step",
    band: str = "std",
    include_incomplete: bool = True,
    seed_keys: Sequence[str] = DEFAULT_SEED_KEYS,
    title: Optional[str] = None,
) -> Plot:
    """Plot metric ``key`` of the sweep's runs, one mean curve per group, into ``output``.

    Returns the image's path and the runs that could not be read (lost or
    damaged stores), which the figure also names under its axes.

    Parameters
    ----------
    group_by:
        Params to group by; ``True``: every swept key but the seeds; None or
        an empty list: all runs in one group.
    x:
        ``step`` or ``time`` (seconds since each run's first point, averaged
        over the group's runs at each step).
    band:
        ``std`` (mean ± std), ``ci`` (95 % confidence interval of the mean), or ``none``.
    include_incomplete:
        Running and failed runs are drawn too (partial curves of a running sweep).
    """
    output = Path(output)
    if output.suffix.lower() not in PLOT_FORMATS:
        raise ConfigError(f"plot output {output.name!r}: use a .png, .svg or .pdf file name")
    if x not in ("step", "time"):
        raise ConfigError(f"--x must be 'step' or 'time', got {x!r}")
    if band not in ("std", "ci", "none"):
        raise ConfigError(f"--band must be 'std', 'ci' or 'none', got {band!r}")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ConfigError("plot needs matplotlib: pip install 'hpctrack[plot]'") from None
    import numpy as np

    manifest = sweep.manifest
    keys = [k for k in manifest.swept_keys if k not in seed_keys] if group_by is True else list(group_by or [])
    unknown = [k for k in keys if k not in manifest.swept_keys]
    if unknown:
        raise ConfigError(
            f"cannot group by {unknown[0]!r}: the sweep varies {', '.join(manifest.swept_keys) or 'nothing'}"
        )
    history = sweep.history(key)
    skipped = dict(history.attrs.get("skipped") or {})
    if history.empty:
        why = f" (unreadable: {', '.join(f'job {j}' for j in sorted(skipped))})" if skipped else ""
        raise ConfigError(f"no run of sweep {manifest.id} logged metric {key!r}{why}")
    if not include_incomplete:
        done = {s.index for s in sweep.status() if s.state.value == "COMPLETED"}
        history = history[history.job.isin(done)]
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    groups = history.groupby(keys, sort=True, dropna=False) if keys else [((), history)]
    for group_key, part in groups:
        values = group_key if isinstance(group_key, tuple) else (group_key,)
        label = ", ".join(f"{k}={v}" for k, v in zip(keys, values)) or "all runs"
        by_step = part.groupby("step")
        mean = by_step["value"].mean()
        n = by_step["value"].count()
        std = by_step["value"].std(ddof=1)
        xs = by_step["elapsed_s"].mean().to_numpy() if x == "time" else mean.index.to_numpy()
        runs = part["job"].nunique()
        (line,) = ax.plot(xs, mean.to_numpy(), label=f"{label} (n={runs})", linewidth=1.6)
        if band != "none" and runs > 1:
            half = std.to_numpy()
            if band == "ci":
                half = np.array([t_critical_975(int(k) - 1) / math.sqrt(k) if k > 1 else math.nan
                                 for k in n.to_numpy()]) * half  # fmt: skip
            ax.fill_between(xs, mean.to_numpy() - half, mean.to_numpy() + half, color=line.get_color(), alpha=0.2,
                            linewidth=0)  # fmt: skip
    ax.set_xlabel("step" if x == "step" else "wall time since the run's first point (s)")
    ax.set_ylabel(key)
    shade = {"std": "mean ± std over runs", "ci": "mean and 95% CI over runs", "none": "mean over runs"}[band]
    ax.set_title(title or f"{key} · sweep {manifest.name or manifest.id} · {shade}", fontsize=10)
    ax.grid(True, alpha=0.3)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.legend(fontsize=8, frameon=False)
    if skipped:  # never a silently thinner curve: the image says which runs it lacks
        fig.text(0.01, 0.01, "not plotted (unreadable run data): " + ", ".join(f"job {j}" for j in sorted(skipped)),
                 fontsize=7, color="firebrick")  # fmt: skip
    fig.tight_layout()
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output)
    plt.close(fig)
    return Plot(output, skipped)


def plot_optimization(sweep: "Sweep", output: Union[str, Path], *, title: Optional[str] = None) -> Plot:
    """Plot a study's objective against the trial number, with the best-so-far line, into ``output``.

    Completed trials are dots; the line steps to each new best. Pruned and failed
    trials have no objective and are counted under the axes.

    Raises
    ------
    ConfigError
        The sweep is not a study (``launch --optimize``), no trial completed yet,
        a bad output name, or no matplotlib.
    """
    output = Path(output)
    if output.suffix.lower() not in PLOT_FORMATS:
        raise ConfigError(f"plot output {output.name!r}: use a .png, .svg or .pdf file name")
    manifest = sweep.manifest
    if not manifest.study:
        raise ConfigError(f"sweep {manifest.id} is not a study (launch --optimize): plot a metric instead, "
                          f"hpctrack plot {manifest.name or manifest.id} METRIC -o FILE")  # fmt: skip
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ConfigError("plot needs matplotlib: pip install 'hpctrack[plot]'") from None
    import numpy as np

    objective = manifest.study["objective"]
    frame = sweep.table(metrics=[])
    done = frame[(frame["state"] == "COMPLETED") & frame["objective"].notna() & frame["trial"].notna()]
    if done.empty:
        raise ConfigError(f"no trial of study {manifest.id} has completed yet (hpctrack status "
                          f"{manifest.name or manifest.id})")  # fmt: skip
    done = done.sort_values("trial")
    trials = done["trial"].astype(int).to_numpy()
    values = done["objective"].astype(float).to_numpy()
    minimize = objective["direction"] == "minimize"
    best = np.minimum.accumulate(values) if minimize else np.maximum.accumulate(values)
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=120)
    ax.scatter(trials, values, s=18, label="completed trial", zorder=3)
    ax.step(trials, best, where="post", color="firebrick", linewidth=1.6, label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel(f"{objective['selector']} ({objective['direction']})")
    ax.set_title(title or f"study {manifest.name or manifest.id} · {len(done)} completed trials", fontsize=10)
    ax.grid(True, alpha=0.3)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.legend(fontsize=8, frameon=False)
    others = frame["state"].value_counts().drop(labels=["COMPLETED"], errors="ignore")
    if len(others):
        fig.text(0.01, 0.01, "not plotted (no objective): " + ", ".join(f"{n} {s}" for s, n in others.items()),
                 fontsize=7, color="dimgray")  # fmt: skip
    fig.tight_layout()
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output)
    plt.close(fig)
    return Plot(output, {})
