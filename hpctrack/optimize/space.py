"""A study's search space, written in Hydra's override grammar, as Optuna distributions.

``optimizer.lr=tag(log,interval(1e-4,1e-1))`` is a log-uniform float,
``model.width=choice(64,128,256)`` (or ``64,128,256``) a categorical choice,
``layers=range(1,9)`` an integer range and ``dropout=interval(0,0.5)`` a uniform
float, as hydra-optuna-sweeper reads them. Overrides without sweep syntax are
fixed: every trial gets them as they are. Parsing is pure (no Optuna needed),
so a bad space is refused before anything is written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

from ..errors import ConfigError

__all__ = ["Param", "SearchSpace", "parse_space", "format_value"]

_PLAIN = re.compile(r"^[A-Za-z0-9_.\-/]+$")


@dataclass(frozen=True)
class Param:
    """One searched parameter.

    ``kind`` is ``float``, ``int`` or ``categorical``; ``low``/``high`` bound the
    numeric kinds (inclusive), ``log`` samples them on a log scale, ``step`` makes
    an integer range step, and ``choices`` lists a categorical's values.
    """

    key: str  # the override's key element as typed (``+new.key`` keeps its ``+``)
    kind: str
    low: Optional[float] = None
    high: Optional[float] = None
    log: bool = False
    step: Optional[int] = None
    choices: Tuple[Any, ...] = ()

    @property
    def name(self) -> str:
        """The config key the parameter sets (without ``+``/``++``/``~``)."""
        return self.key.lstrip("+~")

    def distribution(self) -> Any:
        """The Optuna distribution (needs optuna)."""
        from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

        if self.kind == "categorical":
            return CategoricalDistribution(list(self.choices))
        if self.kind == "int":
            return IntDistribution(int(self.low or 0), int(self.high or 0), log=self.log, step=self.step or 1)
        return FloatDistribution(float(self.low or 0.0), float(self.high or 0.0), log=self.log)

    def override(self, value: Any) -> str:
        """The Hydra override that sets this parameter to ``value``."""
        return f"{self.key}={format_value(value)}"

    def to_json(self) -> Dict[str, Any]:
        """As recorded in the manifest's ``study.space``."""
        out: Dict[str, Any] = {"key": self.key, "kind": self.kind}
        if self.kind == "categorical":
            out["choices"] = list(self.choices)
        else:
            out.update(low=self.low, high=self.high, log=self.log)
            if self.step is not None:
                out["step"] = self.step
        return out


@dataclass
class SearchSpace:
    """The searched parameters and the fixed overrides every trial gets."""

    params: List[Param] = field(default_factory=list)
    fixed: List[str] = field(default_factory=list)

    def distributions(self) -> Dict[str, Any]:
        """``{config key: optuna distribution}``."""
        return {p.name: p.distribution() for p in self.params}

    def trial_overrides(self, values: Dict[str, Any]) -> List[str]:
        """The overrides of one trial: the fixed ones, then each parameter set to its value."""
        return [*self.fixed, *(p.override(values[p.name]) for p in self.params)]


def format_value(value: Any) -> str:
    """A value as Hydra's override grammar reads it back unchanged."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value)
    if _PLAIN.match(text):
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _param(override: Any, text: str) -> Param:
    """The parameter of one sweep override (hydra-optuna-sweeper's reading of the grammar)."""
    from hydra.core.override_parser.types import ChoiceSweep, IntervalSweep, RangeSweep

    key = override.get_key_element()
    value = override.value()
    if isinstance(value, IntervalSweep):
        low, high = value.start, value.end
        if low is None or high is None or not low < high:
            raise ConfigError(f"search space {text!r}: interval(LOW,HIGH) needs LOW < HIGH")
        unknown = set(value.tags) - {"log"}
        if unknown:
            raise ConfigError(f"search space {text!r}: unknown tag {sorted(unknown)[0]!r}; the only tag is log "
                              "(tag(log,interval(LOW,HIGH)))")  # fmt: skip
        log = "log" in value.tags
        if log and low <= 0:
            raise ConfigError(f"search space {text!r}: a log interval needs LOW > 0")
        if isinstance(low, int) and isinstance(high, int):  # int(interval(...))
            return Param(key, "int", low=low, high=high, log=log)
        return Param(key, "float", low=float(low), high=float(high), log=log)
    if isinstance(value, RangeSweep):
        if value.shuffle:
            raise ConfigError(f"search space {text!r}: shuffle() means nothing to a sampler; drop it")
        values = list(override.sweep_iterator())
        if not values:
            raise ConfigError(f"search space {text!r}: the range is empty")
        if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            step = values[1] - values[0] if len(values) > 1 else 1
            if step < 0:
                values, step = values[::-1], -step
            return Param(key, "int", low=values[0], high=values[-1], step=step)
        return Param(key, "categorical", choices=tuple(values))
    if isinstance(value, ChoiceSweep):
        if value.shuffle:
            raise ConfigError(f"search space {text!r}: shuffle() means nothing to a sampler; drop it")
        values = list(override.sweep_iterator())
        if len(set(map(repr, values))) != len(values):
            raise ConfigError(f"search space {text!r}: a choice lists a value twice")
        bad = [v for v in values if not isinstance(v, (str, int, float, bool, type(None)))]
        if bad:
            raise ConfigError(f"search space {text!r}: a choice must list plain values (numbers, strings, "
                              f"true/false, null), not {bad[0]!r}")  # fmt: skip
        return Param(key, "categorical", choices=tuple(values))
    raise ConfigError(f"search space {text!r}: {type(value).__name__} cannot be searched; use interval(LOW,HIGH), "
                      "tag(log,interval(LOW,HIGH)), choice(A,B,...) or range(START,STOP[,STEP])")  # fmt: skip


def parse_space(overrides: Sequence[str]) -> SearchSpace:
    """Split ``overrides`` (as typed) into searched parameters and fixed overrides.

    Hydra's own flags (``--config-name X``) must already be removed.

    Raises
    ------
    ConfigError
        A malformed override, a sweep that cannot be searched (``glob``,
        ``shuffle``, an empty range, ``interval`` with LOW >= HIGH), a key
        searched twice, or no searched parameter at all; in one line.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException

    parser = OverridesParser.create()
    space = SearchSpace()
    seen: Dict[str, str] = {}
    for text in overrides:
        try:
            override = parser.parse_override(text)
        except HydraException as err:
            lines = [line.strip() for line in str(err).splitlines() if line.strip()]
            raise ConfigError(f"malformed override {text!r}: {lines[-1] if lines else type(err).__name__}") from None
        if not override.is_sweep_override():
            space.fixed.append(text)
            continue
        key = override.key_or_group
        if key.startswith("hydra.") or key == "hydra":
            raise ConfigError(f"search space {text!r}: Hydra's own settings cannot be searched; give it one value")
        if key in seen:
            raise ConfigError(f"search space: {key!r} is searched twice ({seen[key]!r} and {text!r}); keep one")
        seen[key] = text
        space.params.append(_param(override, text))
    if not space.params:
        raise ConfigError("--optimize needs a search space: give at least one override such as "
                          "'x=interval(0,1)', 'lr=tag(log,interval(1e-4,1e-1))' or 'width=choice(64,128)'")  # fmt: skip
    return space
