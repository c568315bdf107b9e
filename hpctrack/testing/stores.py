"""``StoreTests``: the contract every run store backend meets, as an importable pytest class.

A new backend subclasses it once, names its class, and supplies the few helpers
that bypass the store (they depend on its files). pytest collects the subclass
like any ``Test*`` class; every test then runs on the backend::

    from hpctrack.testing import StoreTests

    class TestMyStore(StoreTests):
        store_class = MyStore
        commit_file = "record.json"
        files_per_run = 4

        def set_format_version(self, store, version): ...
        def corrupt_record(self, store): ...
        def damage_committed(self, store): ...
        def fail_directory_fsync(self, monkeypatch): ...

The contract: sections merge and round-trip through JSON; bad input fails
before anything is written; metric keys are data (any string, never a path);
stats and histories agree with what was logged, NaN and infinities included,
and match the reference backend's exactly; restarts supersede later steps;
errors are the documented ones (``RunNotFoundError``, ``KeyError``,
``FormatVersionError``, ``StoreError``, ``DiskFullError``,
``StoreReplacedError``) on one line; readers take no lock and see whole
updates only while several writer processes commit; a writer killed with
SIGKILL at random moments never loses or changes an acknowledged update;
``commits`` tells a caller whether its update is stored, even when the write
raised after the commit; a full disk is a prompt one-line error and the stored
prefix stays readable; and the migrations table covers every older format
version. The store class must be importable by its module path: the process
tests run writers in fresh interpreters.
"""

from __future__ import annotations

import abc
import contextlib
import json
import math
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any, Callable, ClassVar, Dict, Iterator, List, Optional, Tuple, Type

import pytest

from ..errors import FormatVersionError, RunNotFoundError, StoreError
from ..locking import lock
from ..store import BACKENDS, MetricBatch, MetricStats, Store, open_store

__all__ = ["StoreTests", "mounted_tmpfs", "batch", "files_of"]

#: Metric keys that would be trouble as file or dataset names: a store must take them as data.
ODD_KEYS = ["train/loss", "acc%top1", "a/%2F/b", ".", "..", "a/../b", "%", "/x", "../../escape", "ünï/ß", "sp ace",
            "nul\0byte"]  # fmt: skip


def batch(key: str, steps: List[int], values: List[float], attempt: int = 1) -> MetricBatch:
    """A batch of ``key``'s points at ``steps`` (logged at wall time ``1000 + step``)."""
    b = MetricBatch(attempt=attempt)
    for s, v in zip(steps, values):
        b.add(key, s, v, 1000.0 + s)
    return b


def files_of(store: Store) -> List[str]:
    """Every file and directory of one run's store, relative to the run directory, lock files left out."""
    run_dir = store.path.parent
    out = []
    for root, dirs, files in os.walk(run_dir):
        for name in dirs + files:
            rel = os.path.relpath(os.path.join(root, name), run_dir)
            if not rel.endswith(".lock"):
                out.append(rel)
    return sorted(out)


@contextlib.contextmanager
def mounted_tmpfs(mount_point: Path, size: str = "12m") -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``mount_point`` (created; needs root), unmounted afterwards."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount_point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mount_point)], check=True)
    try:
        yield mount_point
    finally:
        for _ in range(50):  # a process that is still exiting may hold a file open for a moment
            if subprocess.run(["umount", str(mount_point)], capture_output=True).returncode == 0:
                break
            time.sleep(0.2)
        else:
            subprocess.run(["umount", "-l", str(mount_point)], check=False)


def _child_env() -> Dict[str, str]:
    """The environment of a writer process: it imports what this process imports."""
    return dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))


def _spawn(code: str, *args: str) -> "subprocess.Popen[str]":
    """A fresh interpreter running ``code`` (dedented)."""
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args], env=_child_env(),
                            stdout=subprocess.PIPE, text=True)  # fmt: skip


# The process tests' writers: batch i is a pure function of i, so a reader can tell every row that
# should be there from every row that should not. Shared as source with the writer processes.
BATCH_CODE = """
def batch_content(i):
    keys = ["loss", "acc/top1", "layer.%d/grad" % (i % 5), "\\u00fcn\\u00ef"]
    out = {}
    for k, key in enumerate(keys):
        pts = []
        for j in range(1 + (i + k) % 4):
            v = i + k / 10 + j / 100
            if (i + j + k) % 11 == 0:
                v = float("nan")
            elif (i + j + k) % 13 == 0:
                v = float("inf")
            pts.append((i * 4 + j, v, 1e9 + i + j / 10))
        out[key] = pts
    return out

def batch_sections(i):
    return {"status": {"batch": i}, "summary": {"s%d" % (i % 3): i}}
"""
_ns: Dict[str, Any] = {}
exec(BATCH_CODE, _ns)
batch_content: Callable[[int], Dict[str, List[Tuple[int, float, float]]]] = _ns["batch_content"]
batch_sections: Callable[[int], Dict[str, Dict[str, Any]]] = _ns["batch_sections"]

#: argv: store module, store class, run dir, first batch, end batch.
KILL_WRITER = (
    BATCH_CODE
    + """
import importlib, sys
from pathlib import Path
from hpctrack.store import MetricBatch
for name in sys.argv[6:]:
    importlib.import_module(name)  # imported up front: a kill should land in the I/O, not in an import
cls = getattr(importlib.import_module(sys.argv[1]), sys.argv[2])
st = cls(Path(sys.argv[3]) / ("run" + cls.suffix))
for i in range(int(sys.argv[4]), int(sys.argv[5])):
    b = MetricBatch()
    for key, pts in batch_content(i).items():
        for s, v, t in pts:
            b.add(key, s, v, t)
    print("begin", i, flush=True)
    st.write(metrics=b, sections=batch_sections(i))
    print("end", i, flush=True)
"""
)

#: argv: store module, store class, run dir, flushes, pause in seconds.
STEADY_WRITER = """
import importlib, sys, time
from pathlib import Path
from hpctrack.store import MetricBatch
cls = getattr(importlib.import_module(sys.argv[1]), sys.argv[2])
st = cls(Path(sys.argv[3]) / ("run" + cls.suffix))
step = 0
for i in range(int(sys.argv[4])):
    b = MetricBatch()
    for _ in range(1 + i % 3):          # 1..3 points of each key per flush
        b.add("train/loss", step, float(step), time.time())
        b.add("acc%", step, float(step), time.time())
        step += 1
    st.write(metrics=b, sections={"status": {"flushes": i + 1, "points": step}})
    print(i + 1, flush=True)
    time.sleep(float(sys.argv[5]))
"""

#: argv: store module, store class, run dir (created). Fills the disk, then writes on.
FILL_WRITER = """
import importlib, sys, numpy as np
from pathlib import Path
from hpctrack.errors import DiskFullError
from hpctrack.store import MetricBatch
cls = getattr(importlib.import_module(sys.argv[1]), sys.argv[2])
run_dir = Path(sys.argv[3]); run_dir.mkdir()
st = cls(run_dir / ("run" + cls.suffix))
committed = 0
for i in range(100000):
    b = MetricBatch()
    steps = np.arange(committed, committed + 20000)
    b.points["x"] = (steps, steps.astype(float), steps.astype(float))
    before = st.commits
    try:
        st.write(metrics=b, sections={"status": {"batch": i}})
    except DiskFullError as err:
        print("full", committed, str(err), flush=True)
        break
    committed += 20000 if st.commits > before else 0
# The disk stays full: the next writes fail the same way, promptly, and nothing is torn.
for _ in range(3):
    try:
        st.write(metrics=b)
    except DiskFullError as err:
        print("again", str(err), flush=True)
print("exit", flush=True)
"""

#: Flushes of each steady writer, and the point counts a whole number of them makes.
FLUSHES = 60
BOUNDARIES = {sum(1 + i % 3 for i in range(n)) for n in range(FLUSHES + 1)}


class StoreTests(abc.ABC):
    """The store contract; subclass it once per backend (pytest collects ``Test*`` subclasses).

    Attributes to set
    -----------------
    store_class:
        The backend's :class:`~hpctrack.store.Store` subclass, registered in
        ``hpctrack.store.BACKENDS`` under its ``name``.
    commit_file:
        Name of the file whose ``os.replace`` is the commit (``run.h5``, ``zarr.json``).
    files_per_run:
        Files and directories (lock files left out) of a store with fewer than a few
        thousand points, however many writes made it: the store does not grow a file
        per write or per key, and killed writers leave no garbage behind the next one.
    preload:
        Modules a writer process imports before it writes, so a kill lands in I/O.
    kills_per_chain, kill_seed:
        Writers killed one after another on each of 4 stores (raise it for a soak
        run), and the seed of when they are killed (None: a new one each run).
    """

    store_class: ClassVar[Type[Store]]
    files_per_run: ClassVar[int]
    commit_file: ClassVar[str]
    preload: ClassVar[Tuple[str, ...]] = ("numpy",)
    kills_per_chain: ClassVar[int] = 8
    kill_seed: ClassVar[Optional[str]] = None

    # -- helpers that bypass the store: they know the backend's files ---------------------

    @abc.abstractmethod
    def set_format_version(self, store: Store, version: int) -> None:
        """Edit the committed format version in place, as another hpctrack version would have written it."""

    @abc.abstractmethod
    def corrupt_record(self, store: Store) -> None:
        """Overwrite what a reader reads first (the committed record) with bytes that are no store."""

    @abc.abstractmethod
    def damage_committed(self, store: Store) -> Callable[[], None]:
        """Truncate a file the last commit wrote; return a check that what a repair needs is untouched."""

    @abc.abstractmethod
    def fail_directory_fsync(self, monkeypatch: pytest.MonkeyPatch) -> List[str]:
        """Make the fsync of a directory after the commit fail with EIO; return the list the calls go to."""

    def debris(self, store: Store) -> str:
        """What a killed writer left that readers must not see, for the kill test's summary ("" if unknown)."""
        return ""

    # -- fixtures ------------------------------------------------------------------------

    @pytest.fixture
    def store(self, tmp_path: Path) -> Store:
        """A store that does not exist yet, in an existing run directory."""
        return self.store_class(tmp_path / f"run{self.store_class.suffix}")

    def open(self, run_dir: Path) -> Store:
        """A new writer (or reader) object on the store in ``run_dir``."""
        return self.store_class(Path(run_dir) / f"run{self.store_class.suffix}")

    def _ref(self) -> Tuple[str, str]:
        return self.store_class.__module__, self.store_class.__qualname__

    # -- the interface ---------------------------------------------------------------------

    def test_class_declares_the_interface(self) -> None:
        cls = self.store_class
        assert isinstance(cls.name, str) and cls.name and cls.suffix.startswith(".")
        assert isinstance(cls.format_version, int) and cls.format_version >= 1
        assert isinstance(cls.keeps_spare_copy, bool)
        # Every older version has its upgrade, one version at a time.
        assert sorted(cls.migrations) == list(range(1, cls.format_version))
        assert all(callable(step) for step in cls.migrations.values())
        assert BACKENDS.get(cls.name) is cls, f"register {cls.__name__} in hpctrack.store.BACKENDS"

    def test_open_store_names(self, tmp_path: Path) -> None:
        cls = self.store_class
        st = open_store(tmp_path, cls.name)
        assert type(st) is cls
        assert st.path == tmp_path / f"run{cls.suffix}"
        assert st.lock_path == tmp_path / f"run{cls.suffix}.lock"

    def test_sections_merge_and_round_trip(self, store: Store) -> None:
        import numpy as np

        store.write(sections={"params": {"lr": 0.1, "layers": [64, 64]}, "tags": {"who": "ünï"}})
        store.write(
            sections={
                "params": {"lr": np.float32(0.5), "seed": np.int64(3), "flag": np.bool_(True)},
                "summary": {"best": math.inf, "worst": -math.inf, "bad": math.nan, "nested": {"a": [1, None]}},
            }
        )
        rec = store.read()
        assert rec.path == store.path
        assert rec.format_version == type(store).format_version
        assert rec.params == {"lr": 0.5, "layers": [64, 64], "seed": 3, "flag": True}
        assert type(rec.params["seed"]) is int and type(rec.params["flag"]) is bool
        assert rec.tags == {"who": "ünï"}
        assert rec.summary["best"] == math.inf and rec.summary["worst"] == -math.inf
        assert math.isnan(rec.summary["bad"]) and rec.summary["nested"] == {"a": [1, None]}
        assert rec.status == {} and rec.info == {} and rec.metrics == {}

    def test_bad_input_leaves_store_untouched(self, store: Store) -> None:
        store.write(metrics=batch("x", [0], [1.0]), sections={"params": {"a": 1}})
        with pytest.raises(TypeError, match="params"):
            store.write(metrics=batch("x", [1], [2.0]), sections={"params": {"b": object()}})
        with pytest.raises(ValueError, match="unknown section"):
            store.write(sections={"nope": {}})  # type: ignore[dict-item]
        with pytest.raises(ValueError, match="non-empty string"):
            store.write(metrics=batch("", [1], [2.0]))
        rec = store.read()
        assert rec.params == {"a": 1} and rec.metrics["x"].count == 1

    def test_metrics_in_batches_with_odd_keys(self, store: Store, tmp_path: Path) -> None:
        import numpy as np

        around = sorted(os.listdir(tmp_path.parent))
        for start in range(0, 30, 10):
            b = MetricBatch()
            for key in ODD_KEYS:
                for s in range(start, start + 10):
                    b.add(key, s, float(s) * 2, 1000.0 + s)
            store.write(metrics=b)
        rec = store.read()
        assert sorted(rec.metrics) == sorted(ODD_KEYS)
        for key in ODD_KEYS:
            stats = rec.metrics[key]
            assert (stats.count, stats.last, stats.last_step, stats.min, stats.max) == (30, 58.0, 29, 0.0, 58.0)
            hist = store.read_history(key)
            assert hist.key == key and len(hist) == 30
            np.testing.assert_array_equal(hist.step, np.arange(30))
            np.testing.assert_array_equal(hist.value, np.arange(30) * 2.0)
            np.testing.assert_array_equal(hist.time, 1000.0 + np.arange(30))
            assert hist.step.dtype == np.int64 and hist.value.dtype == np.float64
        # Keys are data: nothing was created outside the store, whatever the key says.
        assert sorted(os.listdir(tmp_path.parent)) == around
        assert [f for f in files_of(store) if not f.startswith("run")] == []
        assert len(files_of(store)) == self.files_per_run

    def test_history_keeps_logging_order(self, store: Store) -> None:
        store.write(metrics=batch("m", [5, 3], [1.0, 2.0]))
        store.write(metrics=batch("m", [9, 1], [3.0, 4.0]))
        hist = store.read_history("m")
        assert hist.step.tolist() == [5, 3, 9, 1]
        assert hist.value.tolist() == [1.0, 2.0, 3.0, 4.0]
        assert store.read().metrics["m"].last_step == 1

    def test_non_finite_values_and_stats(self, store: Store) -> None:
        import numpy as np

        store.write(metrics=batch("m", [0, 1, 2], [math.nan, 1.0, math.inf]))
        store.write(metrics=batch("m", [3, 4], [-math.inf, math.nan]))
        store.write(metrics=batch("allnan", [0, 1], [math.nan, math.nan]))
        rec = store.read()
        m = rec.metrics["m"]
        assert m.count == 5 and m.last_step == 4 and math.isnan(m.last)
        assert (m.min, m.max) == (-math.inf, math.inf)
        a = rec.metrics["allnan"]
        assert a.count == 2 and math.isnan(a.min) and math.isnan(a.max) and math.isnan(a.last)
        values = store.read_history("m").value
        assert np.isnan(values).tolist() == [True, False, False, False, True]
        assert values[1:4].tolist() == [1.0, math.inf, -math.inf]

    def test_points_as_numpy_arrays(self, store: Store) -> None:
        import numpy as np

        # Run.flush hands over numpy columns; plain lists (above) work too.
        b = MetricBatch(points={"m": (np.arange(3, dtype=np.int64), np.array([0.5, np.nan, 2.0]), np.full(3, 7.0))})
        store.write(metrics=b)
        hist = store.read_history("m")
        assert hist.step.tolist() == [0, 1, 2] and hist.time.tolist() == [7.0] * 3
        np.testing.assert_array_equal(hist.value, [0.5, np.nan, 2.0])
        assert store.read().metrics["m"] == MetricStats(count=3, last=2.0, last_step=2, min=0.5, max=2.0)

    def test_thousands_of_keys_are_accepted(self, store: Store) -> None:
        b = MetricBatch()
        for k in range(2000):
            b.add(f"layer{k}/grad", 0, float(k), 1.0)
            b.add(f"layer{k}/grad", 1, float(-k), 2.0)
        store.write(metrics=b)
        store.write(metrics=batch("layer7/grad", [2], [0.5]))
        rec = store.read()
        assert len(rec.metrics) == 2000
        assert rec.metrics["layer7/grad"] == MetricStats(count=3, last=0.5, last_step=2, min=-7.0, max=7.0)
        assert store.read_history("layer1999/grad").value.tolist() == [1999.0, -1999.0]
        assert store.read_history("layer7/grad").step.tolist() == [0, 1, 2]
        assert len(files_of(store)) == self.files_per_run  # not a file per key

    def test_files_per_run(self, store: Store) -> None:
        for i in range(20):
            b = MetricBatch()
            for k in range(50):
                b.add(f"m{k}", i, float(i), 1.0)
            store.write(metrics=b, sections={"status": {"i": i}})
        files = files_of(store)
        assert len(files) == self.files_per_run, files
        assert all(f == store.path.name or f.startswith(store.path.name + os.sep) or f.startswith("run")
                   for f in files), files  # fmt: skip

    def test_fingerprint_of_a_path_is_the_stores_fingerprint(self, store: Store, tmp_path: Path) -> None:
        """Tables check ended runs by path alone (``fingerprint_of``): it must say what ``fingerprint`` says."""
        path = os.fspath(store.path)
        assert type(store).fingerprint_of(path) is None and store.fingerprint() is None  # not written yet
        store.write(metrics=batch("loss", [0, 1], [1.0, 0.5]), sections={"status": {"state": "running"}})
        first = store.fingerprint()
        assert first is not None and type(store).fingerprint_of(path) == first
        store.write(metrics=batch("loss", [2], [0.25]))
        assert type(store).fingerprint_of(path) == store.fingerprint() != first  # a commit changes it
        missing = self.open(tmp_path / "elsewhere")
        assert type(store).fingerprint_of(os.fspath(missing.path)) is None

    def test_fingerprints_of_paths_under_a_directory_say_what_fingerprint_of_says(
        self, store: Store, tmp_path: Path
    ) -> None:
        """Tables check many runs at once (``fingerprints_of``): each answer is that store's ``fingerprint_of``."""
        store.write(metrics=batch("loss", [0, 1], [1.0, 0.5]), sections={"status": {"state": "running"}})
        (tmp_path / "b" / "run").mkdir(parents=True)
        other = self.open(tmp_path / "b" / "run")
        other.write(metrics=batch("loss", [0], [2.0]))
        missing = self.open(tmp_path / "c" / "run")
        base = os.fspath(tmp_path)
        paths = [os.path.relpath(os.fspath(s.path), base) for s in (store, missing, other)]
        assert type(store).fingerprints_of(base, paths) == [store.fingerprint(), None, other.fingerprint()]
        assert type(store).fingerprints_of(os.fspath(tmp_path / "nodir"), paths) == [None, None, None]

    def test_missing_run(self, tmp_path: Path) -> None:
        st = self.open(tmp_path / "nodir")
        with pytest.raises(RunNotFoundError, match=st.path.name):
            st.read()
        with pytest.raises(RunNotFoundError):
            st.read_history("x")
        assert not (tmp_path / "nodir").exists()  # reading did not create a lock or a directory
        with pytest.raises(StoreError, match="does not exist"):
            st.write(sections={"params": {}})
        (tmp_path / "nodir").mkdir()
        with pytest.raises(RunNotFoundError):
            st.read()
        assert list((tmp_path / "nodir").iterdir()) == []

    def test_unknown_metric_is_key_error(self, store: Store) -> None:
        store.write(metrics=batch("x", [0], [1.0]))
        with pytest.raises(KeyError, match="never logged"):
            store.read_history("y")

    def test_newer_format_version_is_refused(self, store: Store) -> None:
        store.write(metrics=batch("x", [0], [1.0]))
        self.set_format_version(store, type(store).format_version + 1)
        writer = type(store)(store.path)  # a new writer (this one would refuse a store changed under it anyway)
        for call in (store.read, lambda: store.read_history("x"), lambda: writer.write(sections={"info": {}})):
            with pytest.raises(FormatVersionError, match=r"pip install -U hpctrack") as info:
                call()
            assert str(store.path) in str(info.value)
        self.set_format_version(store, type(store).format_version)
        assert store.read().metrics["x"].count == 1  # the refused write changed nothing

    def test_corrupt_store_is_store_error(self, store: Store) -> None:
        store.write(metrics=batch("x", [0], [1.0]))
        self.corrupt_record(store)
        with pytest.raises(StoreError) as info:
            store.read()
        assert str(store.path) in str(info.value) and "\n" not in str(info.value)
        assert not isinstance(info.value, (RunNotFoundError, FormatVersionError))

    def test_exception_mid_update_is_invisible(self, store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
        class Boom(Exception):
            pass

        store.write(metrics=batch("m", [0, 1], [0.0, 1.0]))

        def boom(self: MetricStats, steps: List[int], values: List[float], attempt: int = 1) -> MetricStats:
            raise Boom  # in the middle of the update, before it is committed

        with monkeypatch.context() as mp:
            mp.setattr(MetricStats, "merged", boom)
            with pytest.raises(Boom):
                store.write(metrics=batch("m", [2, 3], [2.0, 3.0]), sections={"status": {"x": 1}})
        assert store.read_history("m").step.tolist() == [0, 1]
        assert store.read().status == {}
        store.write(metrics=batch("m", [2], [2.0]))
        assert store.read_history("m").step.tolist() == [0, 1, 2]
        assert store.read().metrics["m"].count == 3
        assert self.open(store.path.parent).read_history("m").step.tolist() == [0, 1, 2]

    def test_gives_the_same_records_as_the_reference_store(self, tmp_path: Path) -> None:
        """The same writes read back as identical records and histories on this store and another backend."""
        import numpy as np

        other = next(cls for name, cls in sorted(BACKENDS.items()) if cls is not self.store_class)
        stores = [self.open(tmp_path / "this"), other(tmp_path / "other" / f"run{other.suffix}")]
        rng = random.Random(7)
        for st in stores:
            st.path.parent.mkdir()
        for i in range(12):
            b = MetricBatch()
            for key in ("loss", "acc/top1", f"k{i % 4}", "ünï"):
                for _ in range(rng.randint(1, 5)):
                    b.add(key, rng.randint(-5, 1000), rng.choice([rng.random(), math.nan, math.inf]), rng.random())
            secs: Dict[str, Dict[str, Any]] = {"status": {"i": i}, "summary": {f"s{i % 3}": rng.random()}}
            if i == 3:
                secs["params"] = {"lr": 0.1, "name": "ü", "big": 2**60, "inf": -math.inf}
            for st in stores:
                st.write(metrics=b, sections=secs)  # type: ignore[arg-type]
        recs = [st.read() for st in stores]

        def comparable(rec: Any) -> str:  # NaN != NaN: compare through JSON
            return json.dumps({k: getattr(rec, k) for k in ("params", "summary", "tags", "status", "info")},
                              sort_keys=True)  # fmt: skip

        assert comparable(recs[0]) == comparable(recs[1])
        assert sorted(recs[0].metrics) == sorted(recs[1].metrics)
        for key, stats in recs[0].metrics.items():
            assert repr(stats) == repr(recs[1].metrics[key])
            hists = [st.read_history(key) for st in stores]
            for col in ("step", "value", "time"):
                a, b2 = getattr(hists[0], col), getattr(hists[1], col)
                assert a.dtype == b2.dtype
                np.testing.assert_array_equal(a, b2)

    def test_reader_needs_no_lock(self, store: Store) -> None:
        store.write(metrics=batch("m", [0], [1.0]))
        with lock(store.lock_path, timeout_s=1.0) as guard:  # a reader that took the lock would time out here
            assert store.read().metrics["m"].count == 1
            assert store.read_history("m").step.tolist() == [0]
            assert guard.held, "reading took the writer's lock away"

    # -- attempts and restarts ---------------------------------------------------------

    def test_a_restart_supersedes_the_earlier_attempts_later_steps(self, store: Store) -> None:
        # Attempt 1 logs steps 0-5 of "loss" and 0, 3 of "val"; it checkpointed after step 2 and died.
        store.write(metrics=batch("loss", [0, 1, 2, 3, 4, 5], [5.0, 4.0, 3.0, 9.0, 9.0, 9.0], 1))
        store.write(metrics=batch("val", [0, 3], [0.5, 0.9], 1))
        # Attempt 2 restarts at step 3 and logs 3-4; then attempt 3 restarts at 4 and logs 4-6.
        store.write(metrics=batch("loss", [3, 4], [2.0, 8.0], 2), restart=(2, 3))
        rec = store.read()
        assert rec.restarts == {2: 3}
        assert rec.metrics["loss"] == MetricStats(count=5, last=8.0, last_step=4, min=2.0, max=8.0)
        assert rec.metrics["val"] == MetricStats(count=1, last=0.5, last_step=0, min=0.5, max=0.5)  # step 3 superseded
        store.write(metrics=batch("loss", [4, 5, 6], [1.5, 1.0, 0.5], 3), restart=(3, 4))
        loss = store.read_history("loss")
        assert loss.step.tolist() == [0, 1, 2, 3, 4, 5, 6]
        assert loss.value.tolist() == [5.0, 4.0, 3.0, 2.0, 1.5, 1.0, 0.5]
        assert loss.attempt is not None and loss.attempt.tolist() == [1, 1, 1, 2, 3, 3, 3]
        raw = store.read_history("loss", raw=True)
        assert raw.step.tolist() == [0, 1, 2, 3, 4, 5, 3, 4, 4, 5, 6]  # the superseded points stay inspectable
        assert raw.attempt is not None and raw.attempt.tolist() == [1] * 6 + [2, 2] + [3] * 3
        rec = store.read()
        assert rec.metrics["loss"] == MetricStats(count=7, last=0.5, last_step=6, min=0.5, max=5.0)
        assert rec.metrics["loss"].rows == 11 and rec.restarts == {2: 3, 3: 4}
        assert store.read_history("val").step.tolist() == [0]

    def test_a_restart_from_scratch_supersedes_everything(self, store: Store) -> None:
        store.write(metrics=batch("loss", [0, 1], [1.0, 2.0], 1))
        store.write(metrics=batch("loss", [0], [7.0], 2), restart=(2, 0))
        assert store.read_history("loss").value.tolist() == [7.0]
        assert store.read().metrics["loss"].count == 1

    # -- faults: after the commit, a store it cannot validate, a full disk -------------------

    def test_a_failure_after_the_commit_is_not_raised_and_the_update_counts_once(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
    ) -> None:
        st = self.open(tmp_path)
        st.write(metrics=batch("x", [0, 1], [0.0, 1.0]))
        calls = self.fail_directory_fsync(monkeypatch)
        before = st.commits
        st.write(metrics=batch("x", [2, 3], [2.0, 3.0]), sections={"summary": {"a": 1}})  # committed: must not raise
        assert calls and st.commits == before + 1
        st.write(metrics=batch("x", [4], [4.0]))  # warned once, not for every write
        assert capfd.readouterr().err.count("hpctrack: warning") == 1
        monkeypatch.undo()
        st.write(metrics=batch("x", [5], [5.0]))
        again = self.open(tmp_path)
        assert again.read_history("x").step.tolist() == [0, 1, 2, 3, 4, 5]
        assert again.read().summary == {"a": 1}

    def test_commits_count_the_commit_even_when_an_interrupt_lands_right_after_it(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A KeyboardInterrupt raised just after the commit's rename returns: the caller can still tell."""
        st = self.open(tmp_path)
        st.write(metrics=batch("x", [0], [0.0]))
        real_replace = os.replace
        interrupted: List[str] = []

        def replace_then_interrupt(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
            real_replace(src, dst, *args, **kwargs)
            if Path(dst).name == self.commit_file:
                interrupted.append(str(dst))
                raise KeyboardInterrupt

        monkeypatch.setattr(os, "replace", replace_then_interrupt)
        before = st.commits
        with pytest.raises(KeyboardInterrupt):
            st.write(metrics=batch("x", [1], [1.0]))
        assert interrupted and st.commits == before + 1  # stored: a caller must not write it again
        monkeypatch.undo()
        assert self.open(tmp_path).read_history("x").step.tolist() == [0, 1]

    def test_a_new_writer_refuses_a_store_it_cannot_validate(self, tmp_path: Path) -> None:
        """A resumed attempt (a new writer) never builds on (or copies) damaged committed data."""
        st = self.open(tmp_path)
        for i in range(3):
            st.write(metrics=batch("x", [i], [float(i)]))
        still_intact = self.damage_committed(st)
        with pytest.raises(StoreError):
            self.open(tmp_path).write(metrics=batch("x", [3], [3.0]))
        still_intact()

    def test_a_full_disk_is_a_prompt_one_line_error_and_the_prefix_stays_readable(self, tmp_path: Path) -> None:
        with mounted_tmpfs(tmp_path / "full") as disk:
            proc = subprocess.run([sys.executable, "-c", textwrap.dedent(FILL_WRITER), *self._ref(), str(disk / "run")],
                                  capture_output=True, text=True, timeout=240, env=_child_env())  # fmt: skip
            assert proc.returncode == 0, proc.stderr[-3000:]  # no crash, no hang
            lines = proc.stdout.splitlines()
            full = [line for line in lines if line.startswith("full ")]
            assert full, proc.stdout
            committed = int(full[0].split()[1])
            assert committed > 0
            assert f"no space left on {disk / 'run'} (writing " in full[0]
            assert sum(line.startswith("again no space left on") for line in lines) == 3
            assert lines[-1] == "exit"
            history = self.open(disk / "run").read_history("x")
            assert history.step.tolist() == list(range(committed))  # the stored prefix, whole

    # -- real processes: concurrent readers, killed writers ------------------------------------

    def _check_consistent(self, st: Store) -> int:
        """Every read sees whole updates only; the number of points seen."""
        import numpy as np

        rec = st.read()
        points = rec.status.get("points", 0)
        for key in ("train/loss", "acc%"):
            if key not in rec.metrics:
                assert points == 0
                continue
            stats = rec.metrics[key]
            assert stats.count == points == stats.last_step + 1  # sections and metrics: one update
            hist = st.read_history(key)
            after = st.read().metrics[key].count
            # Each read is one snapshot: a whole number of flushes, between the two record reads.
            assert stats.count <= len(hist) <= after and len(hist) in BOUNDARIES
            np.testing.assert_array_equal(hist.step, np.arange(len(hist)))
            np.testing.assert_array_equal(hist.value, np.arange(len(hist), dtype=float))
        return int(points)

    def test_concurrent_writers_and_reader(self, tmp_path: Path) -> None:
        stores = [self.open(tmp_path / f"run{i}") for i in range(3)]
        for st in stores:
            st.path.parent.mkdir()
        procs = [_spawn(STEADY_WRITER, *self._ref(), str(st.path.parent), str(FLUSHES), "0.005") for st in stores]
        total = max(BOUNDARIES)
        seen = set()
        try:
            while any(p.poll() is None for p in procs):
                for st in stores:
                    try:
                        seen.add(self._check_consistent(st))
                    except RunNotFoundError:
                        continue  # that writer has not started yet
        finally:
            outs = [p.communicate(timeout=60)[0] for p in procs]
        assert [p.returncode for p in procs] == [0, 0, 0]
        assert len(seen - {0, total}) >= 5  # the reader really ran alongside the writers
        for st, out in zip(stores, outs):
            assert out.split()[-1] == str(FLUSHES)
            assert self._check_consistent(st) == total
            rec = st.read()
            assert rec.status["flushes"] == FLUSHES
            assert {k: s.count for k, s in rec.metrics.items()} == {"train/loss": total, "acc%": total}

    def _check_batches(self, st: Store, low: int, high: int) -> int:
        """The store holds exactly batches 0..k-1, for some low <= k <= high, and nothing else; k."""
        import numpy as np

        try:
            rec = st.read()
        except RunNotFoundError:
            assert low == 0, "acknowledged batches were lost with the whole store"
            return 0
        k = rec.status.get("batch", -1) + 1
        assert low <= k <= high, f"store holds {k} batches, expected {low}..{high}"
        expected: Dict[str, List[Tuple[int, float, float]]] = {}
        summary: Dict[str, int] = {}
        for i in range(k):
            for key, pts in batch_content(i).items():
                expected.setdefault(key, []).extend(pts)
            summary.update(batch_sections(i)["summary"])
        assert rec.summary == summary
        assert sorted(rec.metrics) == sorted(expected)
        for key, pts in expected.items():
            hist = st.read_history(key)
            steps, values, times = (np.array(c) for c in zip(*pts))
            np.testing.assert_array_equal(hist.step, steps)
            np.testing.assert_array_equal(hist.value, values)  # NaN == NaN here
            np.testing.assert_array_equal(hist.time, times)
            stats = rec.metrics[key]
            assert (stats.count, stats.last_step) == (len(pts), steps[-1])
            assert repr(stats.last) == repr(float(values[-1]))
        return k

    def _kill_chain(self, run_dir: Path, kills: int, rng: random.Random, log: List[Tuple[int, str]]) -> None:
        """Kill one writer after another on one store; each new writer continues the last."""
        st = self.open(run_dir)
        k = 0
        for _ in range(kills):
            proc = subprocess.Popen(
                [sys.executable, "-c", KILL_WRITER, *self._ref(), str(run_dir), str(k), str(10**9), *self.preload],
                env=_child_env(), stdout=subprocess.PIPE, text=True,
            )  # fmt: skip
            assert proc.stdout is not None
            # Kill during the first write (which resynchronises) or a later one, after 50 us .. 50 ms.
            lines = [proc.stdout.readline().split() for _ in range(1 + 2 * rng.randrange(3))]
            assert lines[0] == ["begin", str(k)], lines
            time.sleep(math.exp(rng.uniform(math.log(5e-5), math.log(0.05))))
            os.kill(proc.pid, signal.SIGKILL)
            lines += [line.split() for line in proc.stdout.read().splitlines()]
            proc.wait(timeout=30)
            acked = [int(n) for word, n in lines if word == "end"]
            in_flight = lines[-1][0] == "begin"  # killed inside write(), or right around it
            low = (acked[-1] + 1) if acked else k
            k = self._check_batches(st, low, low + int(in_flight))
            log.append((int(in_flight), ("committed " if k > low else "") + (self.debris(st) or "?")))
        # A last writer that is not killed appends to whatever the killed ones left.
        proc = _spawn(KILL_WRITER, *self._ref(), str(run_dir), str(k), str(k + 3), *self.preload)
        assert proc.wait(timeout=60) == 0
        assert self._check_batches(self.open(run_dir), k + 3, k + 3) == k + 3

    def test_writers_killed_at_random_moments_never_corrupt_the_store(self, tmp_path: Path) -> None:
        chains = 4
        rng = random.Random(self.kill_seed)
        log: List[Tuple[int, str]] = []
        errors: List[BaseException] = []
        stop = threading.Event()
        load = threading.Thread(target=_disk_load, args=(tmp_path / "load.bin", stop))
        load.start()

        def chain(i: int) -> None:
            try:
                run_dir = tmp_path / f"run{i}"
                run_dir.mkdir()
                self._kill_chain(run_dir, self.kills_per_chain, random.Random(rng.random()), log)
            except BaseException as err:  # reported below, with the others
                errors.append(err)

        threads = [threading.Thread(target=chain, args=(i,)) for i in range(chains)]
        try:
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        finally:
            stop.set()
            load.join()
        if errors:
            raise errors[0]
        kills, mid = len(log), sum(m for m, _ in log)
        left = {what: sum(1 for _, w in log if w == what) for what in sorted({w for _, w in log})}
        print(f"\n{self.store_class.name}: {kills} writers killed, {mid} inside write(), none lost or changed an "
              f"acknowledged batch; left behind: {left}")  # fmt: skip
        assert kills == self.kills_per_chain * chains
        assert mid >= kills // 4, f"only {mid} of {kills} kills landed inside write()"
        for i in range(chains):  # killed writers left no garbage behind the last writer
            assert len(files_of(self.open(tmp_path / f"run{i}"))) == self.files_per_run


def _disk_load(path: Path, stop: threading.Event) -> None:
    """fsync-heavy writes beside the stores, to widen every window a kill can land in."""
    data = os.urandom(1 << 20)
    while not stop.is_set():
        with open(path, "wb") as fh:
            for _ in range(4):
                fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
    path.unlink()
