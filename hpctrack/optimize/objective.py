"""The objective of a study: a selector of the kind ``hpctrack table`` takes, and a direction.

``val/loss:min`` minimises the metric ``val/loss`` (its last value); ``val/loss:min:min``
minimises its minimum over the steps; ``val/acc:max:max`` maximises its maximum;
``score:max`` maximises the summary value ``score`` (or, for a run without such a
summary value, the last value of the metric ``score``). With ``--direction`` the whole
text is the selector: ``--optimize val/loss:min --direction minimize`` minimises
the minimum of ``val/loss``.

The intermediate values a pruner sees are the selector's value after each step:
the value at the step (``last``), or the running minimum or maximum.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

from ..errors import ConfigError

__all__ = ["Objective", "parse_objective", "STATS", "DIRECTIONS"]

#: What a selector may take of a metric: its last value, or its minimum or maximum over the steps.
STATS = ("last", "min", "max")
#: ``--direction`` values, and the ``:min``/``:max`` suffix of the objective that stands for them.
DIRECTIONS = {"minimize": "min", "maximize": "max"}


@dataclass(frozen=True)
class Objective:
    """What a trial's run is scored by.

    Attributes
    ----------
    key : str
        The metric or summary key.
    stat : str or None
        ``last``, ``min`` or ``max`` of the metric; None: the summary value, else the metric's last value.
    direction : str
        ``minimize`` or ``maximize``.
    """

    key: str
    stat: Optional[str]
    direction: str

    @property
    def selector(self) -> str:
        """The selector as ``hpctrack table -m`` takes it (its column name)."""
        return f"{self.key}:{self.stat}" if self.stat else self.key

    @property
    def minimize(self) -> bool:
        """True when lower is better."""
        return self.direction == "minimize"

    def value(self, record: Any) -> Optional[float]:
        """The objective of a run record (:class:`hpctrack.store.RunRecord`); None when it has none."""
        if self.stat is None and self.key in record.summary:
            return _finite(record.summary[self.key])
        stats = record.metrics.get(self.key)
        if stats is None:
            return None
        return _finite(getattr(stats, self.stat or "last"))

    def intermediate(self, steps: Any, values: Any) -> List[Tuple[int, float]]:
        """``(step, value so far)`` for each step of a metric's history, as a pruner is told them."""
        out: List[Tuple[int, float]] = []
        best: Optional[float] = None
        for step, value in zip(steps, values):
            value = float(value)
            if math.isnan(value):
                continue
            if self.stat in ("min", "max"):
                best = value if best is None else (min(best, value) if self.stat == "min" else max(best, value))
                value = best
            out.append((int(step), value))
        return out

    def better(self, a: float, b: float) -> bool:
        """Whether ``a`` beats ``b``."""
        return a < b if self.minimize else a > b

    def to_json(self) -> Dict[str, Any]:
        """As recorded in the manifest's ``study.objective``."""
        return {"key": self.key, "stat": self.stat, "direction": self.direction, "selector": self.selector}

    @classmethod
    def from_json(cls, data: Dict[str, Any]) -> "Objective":
        return cls(key=str(data["key"]), stat=data.get("stat"), direction=str(data["direction"]))


def _finite(value: Any) -> Optional[float]:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def parse_objective(text: str, direction: Optional[str] = None) -> Objective:
    """``KEY[:last|min|max][:min|max]`` (or ``KEY[:last|min|max]`` with ``direction``) as an :class:`Objective`.

    Raises
    ------
    ConfigError
        No key, an unknown statistic or direction, or no direction at all; one line saying what to write.
    """
    if direction is not None and direction not in DIRECTIONS:
        raise ConfigError(f"--direction must be minimize or maximize, not {direction!r}")
    text = text.strip()
    parts = text.split(":")
    if direction is None:
        if len(parts) < 2 or parts[-1] not in ("min", "max"):
            example = ":".join(parts[:-1]) if len(parts) > 1 and parts[-1] not in STATS else text
            raise ConfigError(f"--optimize {text!r} says no direction: end it with :min or :max "
                              f"(e.g. --optimize {example or 'val/loss'}:min), or add --direction minimize|maximize")  # fmt: skip
        direction = "minimize" if parts.pop() == "min" else "maximize"
    stat: Optional[str] = None
    if len(parts) > 1:
        stat = parts.pop()
        if stat not in STATS:
            raise ConfigError(f"--optimize {text!r}: unknown statistic {stat!r}; write KEY, KEY:last, KEY:min or "
                              "KEY:max, then :min or :max for the direction (val/loss:min, val/acc:max:max)")  # fmt: skip
    key = ":".join(parts)
    if key.rsplit(":", 1)[-1] in STATS and ":" in key:
        raise ConfigError(f"--optimize {text!r}: one statistic at most; write KEY, KEY:last, KEY:min or KEY:max, "
                          "then :min or :max for the direction (val/loss:min, val/loss:min:min)")  # fmt: skip
    if not key:
        raise ConfigError(f"--optimize {text!r} names no metric; write e.g. --optimize val/loss:min")
    return Objective(key=key, stat=stat, direction=direction)
