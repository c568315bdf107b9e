"""The ``Store`` interface: the persistent record of one run.

A store is one file (or directory) per run with exactly one writer process, the
run itself. Readers (``status``, ``table``) are other processes that may read
while the run is still writing. Each backend documents how it keeps readers from
seeing a half-written update without taking the writer's lock, and how a writer
killed at any instruction leaves a readable store; see ``docs/store-format.md``.
"""

from __future__ import annotations

import abc
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Dict, List, Literal, Mapping, Optional, Sequence, Tuple

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "Section",
    "SECTIONS",
    "MetricBatch",
    "MetricStats",
    "MetricHistory",
    "RunRecord",
    "Store",
]

#: Named JSON sections of a run record. Writes merge keys into a section.
Section = Literal["params", "summary", "tags", "status", "info"]
SECTIONS: Tuple[Section, ...] = ("params", "summary", "tags", "status", "info")


@dataclass
class MetricBatch:
    """Metric points buffered by ``Run.log`` and written in one store update.

    ``points[key]`` holds three equally long lists: steps, values, wall times
    (seconds since the epoch).
    """

    points: Dict[str, Tuple[List[int], List[float], List[float]]] = field(default_factory=dict)

    def add(self, key: str, step: int, value: float, time_s: float) -> None:
        cols = self.points.get(key)
        if cols is None:
            cols = self.points[key] = ([], [], [])
        cols[0].append(step)
        cols[1].append(value)
        cols[2].append(time_s)

    def __len__(self) -> int:
        return sum(len(cols[0]) for cols in self.points.values())

    def __bool__(self) -> bool:
        return bool(self.points)


@dataclass(frozen=True)
class MetricStats:
    """Running statistics of one metric, kept up to date on every append.

    ``min``/``max`` ignore NaN; they are NaN when every value was NaN.
    """

    count: int
    last: float
    last_step: int
    min: float
    max: float

    def merged(self, steps: "Sequence[int] | np.ndarray", values: "Sequence[float] | np.ndarray") -> "MetricStats":
        """Stats after appending ``steps``/``values`` (non-empty) to this metric."""
        import numpy as np

        vals = np.asarray(values, dtype=np.float64)
        finite = vals[~np.isnan(vals)]  # inf counts: it is a value, NaN is not
        lo = float(finite.min()) if finite.size else math.nan
        hi = float(finite.max()) if finite.size else math.nan
        return MetricStats(
            count=self.count + len(vals),
            last=float(vals[-1]),
            last_step=int(steps[-1]),
            min=_nan_op(min, self.min, lo),
            max=_nan_op(max, self.max, hi),
        )

    @staticmethod
    def empty() -> "MetricStats":
        return MetricStats(count=0, last=math.nan, last_step=-1, min=math.nan, max=math.nan)


def _nan_op(op: Any, a: float, b: float) -> float:
    if math.isnan(a):
        return b
    if math.isnan(b):
        return a
    return float(op(a, b))


@dataclass(frozen=True)
class MetricHistory:
    """Every point of one metric, in the order they were logged."""

    key: str
    step: "np.ndarray"
    value: "np.ndarray"
    time: "np.ndarray"

    def __len__(self) -> int:
        return len(self.step)


@dataclass(frozen=True)
class RunRecord:
    """Everything about a run except its metric histories."""

    path: Path
    format_version: int
    params: Dict[str, Any]
    summary: Dict[str, Any]
    tags: Dict[str, Any]
    status: Dict[str, Any]
    info: Dict[str, Any]
    metrics: Dict[str, MetricStats]


class Store(abc.ABC):
    """Persistent record of one run.

    One writer process per run (the run itself); any number of reader
    processes. Implementations hold the run's lock (``hpctrack.locking``) for
    the duration of each update only; readers never take it, yet see every
    update completely or not at all. Neither relies on the file format's own
    locking. A writer killed at any point loses at most the update in flight.

    Parameters
    ----------
    path:
        The store's file or directory. It need not exist for :meth:`write`.
    """

    #: Version of the on-disk layout this class writes; readers refuse newer ones.
    format_version: ClassVar[int]
    #: File-name suffix that selects this backend in ``open_store``.
    suffix: ClassVar[str]
    #: Short name used in configs and manifests (``store: hdf5``).
    name: ClassVar[str]

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @abc.abstractmethod
    def write(
        self,
        *,
        metrics: Optional[MetricBatch] = None,
        sections: Optional[Mapping[Section, Mapping[str, Any]]] = None,
    ) -> None:
        """Apply one update: append metric points and merge keys into sections.

        Creates the store on first use. The whole update is one critical
        section under the run lock and one atomic commit: readers see all of
        it or none of it. Values in ``sections`` must be JSON-serialisable.
        """

    @abc.abstractmethod
    def read(self) -> RunRecord:
        """Read sections and per-metric stats without reading full histories.

        Raises
        ------
        RunNotFoundError
            The store does not exist (the run has not started).
        FormatVersionError
            The store was written by a newer hpctrack.
        """

    @abc.abstractmethod
    def read_history(self, key: str) -> MetricHistory:
        """Every logged point of metric ``key``.

        Raises
        ------
        KeyError
            The run never logged ``key``.
        """

    def exists(self) -> bool:
        return self.path.exists()


# -- helpers shared by the backends ----------------------------------------------


def check_key(key: Any) -> str:
    """``key`` if it is a valid metric key: any non-empty string (keys are data, never paths)."""
    if not isinstance(key, str) or not key:
        raise ValueError(f"metric key must be a non-empty string, got {key!r}")
    return key


def json_default(obj: Any) -> Any:
    """``json.dumps`` fallback: numpy scalars and arrays become Python values."""
    import numpy as np

    if isinstance(obj, np.generic):  # np.int64, np.float32, np.bool_ ... -> Python
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} {obj!r} is not JSON-serialisable")


def prepare_sections(
    path: Path, sections: Optional[Mapping[Section, Mapping[str, Any]]]
) -> Dict[str, Dict[str, Any]]:
    """Validate section updates and round-trip them through JSON.

    Done before a store is touched: an error half-way through an update would
    leave half of it on disk. The round trip turns numpy scalars into Python
    values and makes a bad value fail here, naming the section.
    """
    updates: Dict[str, Dict[str, Any]] = {}
    for name, values in (sections or {}).items():
        if name not in SECTIONS:
            raise ValueError(f"unknown section {name!r}; choose one of: {', '.join(SECTIONS)}")
        try:
            updates[name] = json.loads(json.dumps(dict(values), default=json_default))
        except (TypeError, ValueError) as err:
            raise TypeError(f"section {name!r} of {path}: {err}") from err
    return updates


def one_line(err: BaseException) -> str:
    """An exception as one line, for messages the CLI prints on one line."""
    return " ".join(str(err).split()) or type(err).__name__
