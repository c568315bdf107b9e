"""What a table of a sweep reads besides its manifest, started before the manifest is parsed.

A cold table of 100,000 runs spends seconds in each of three reads: parsing the manifest
(``json.loads`` of tens of MB, holding the GIL), parsing the index (pyarrow, without the GIL)
and checking every run store's fingerprint (a ``readlink`` and a ``stat`` each, seconds of the
kernel's time when the metadata is not cached). :func:`start` begins the last two before the
manifest is read, so the three share the cores instead of following each other: the index in
a thread, the fingerprints of a large sweep in a child process (``python -m hpctrack._prefetch
SWEEP_DIR STORE``: a thread would wait for the GIL while ``json.loads`` holds it).

The child lists ``runs/`` itself (the manifest is not parsed yet) and prints each entry's store
fingerprint; the table takes them for the jobs whose run directory is ``runs/<entry>`` and
checks the others itself. Fingerprints taken a moment before the index is read are as good as
ones taken after (see :func:`hpctrack.aggregate._fingerprints`).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["TableInputs", "start", "EARLY_PRINTS_MIN_MANIFEST_BYTES", "main"]

#: A manifest this large (about 14,000 jobs) gets its runs' fingerprints from a child process.
EARLY_PRINTS_MIN_MANIFEST_BYTES = 8 << 20
#: Threads of the child: cold, each ``stat`` waits on the disk; many at once keep it busy.
CHILD_THREADS = 16
_STORE = re.compile(rb'\n\s*"store":\s*"([A-Za-z0-9_]+)"')


@dataclass
class TableInputs:
    """Reads begun for the table of the sweep at ``sweep_dir`` (:func:`start`); :meth:`close` when done."""

    sweep_dir: Path
    #: :func:`hpctrack.index.index_frame` of the sweep, read by a thread.
    index: "Future[pd.DataFrame]"
    #: The store kind the child's fingerprints are of, and the child; None: no child.
    store: Optional[str] = None
    child: Optional[subprocess.Popen] = None
    _pool: Optional[ThreadPoolExecutor] = field(default=None, repr=False)
    _prints: Optional[Dict[str, Optional[str]]] = field(default=None, repr=False)

    def early_prints(self, store: str) -> Optional[Dict[str, Optional[str]]]:
        """Entry of ``runs/`` -> its store's fingerprint (None: no store), from the child; None without one.

        None too when the child guessed another store kind than ``store`` or failed.
        """
        if self.child is None or store != self.store:
            return None
        if self._prints is None:
            out, _ = self.child.communicate()
            try:
                answer = json.loads(out) if self.child.returncode == 0 else None
                self._prints = dict(zip(answer["names"], answer["prints"])) if answer else {}
            except (ValueError, KeyError, TypeError):
                self._prints = {}
        return self._prints or None

    def close(self) -> None:
        """Stop the child if its answer was not taken; let the index thread finish (it may write the cache)."""
        if self.child is not None and self.child.returncode is None and self._prints is None:
            self.child.kill()
            self.child.communicate()
        if self._pool is not None:
            self._pool.shutdown(wait=False)


def start(sweep_dir: Path) -> TableInputs:
    """Begin reading the index of the sweep at ``sweep_dir``, and the fingerprints of a large sweep's runs."""
    from .index import index_frame

    sweep_dir = Path(sweep_dir)
    pool = ThreadPoolExecutor(1, thread_name_prefix="hpctrack-index")
    inputs = TableInputs(sweep_dir=sweep_dir, index=pool.submit(index_frame, sweep_dir), _pool=pool)
    store = _large_sweep_store(sweep_dir)
    if store is not None:
        try:
            inputs.child = subprocess.Popen([sys.executable, "-m", "hpctrack._prefetch", os.fspath(sweep_dir), store],
                                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                            stderr=subprocess.DEVNULL)  # fmt: skip
            inputs.store = store
        except OSError:  # no process to spare: the table checks them itself
            inputs.child = None
    return inputs


def _large_sweep_store(sweep_dir: Path) -> Optional[str]:
    """The store kind of a sweep whose manifest is large (read from its first KiB), else None."""
    from .manifest import MANIFEST_FILE
    from .store import BACKENDS

    try:
        with open(sweep_dir / MANIFEST_FILE, "rb") as fh:
            if os.fstat(fh.fileno()).st_size < EARLY_PRINTS_MIN_MANIFEST_BYTES:
                return None
            head = fh.read(4096)
    except OSError:
        return None
    found = _STORE.search(head)  # the manifest is written with its top-level keys first, "store" among them
    kind = found.group(1).decode() if found else None
    return kind if kind in BACKENDS else None


def fingerprints_under(sweep_dir: Path, store: str) -> Dict[str, List[Any]]:
    """Every entry of ``sweep_dir/runs`` and its store's fingerprint (``Store.fingerprints_of``), from threads."""
    from .manifest import RUNS_DIR
    from .store import store_class

    cls = store_class(store)
    base = os.path.join(os.fspath(sweep_dir), RUNS_DIR)
    try:
        names = os.listdir(base)
    except OSError:
        return {"names": [], "prints": []}
    size = -(-len(names) // (4 * CHILD_THREADS)) or 1
    chunks = [names[i : i + size] for i in range(0, len(names), size)]
    with ThreadPoolExecutor(CHILD_THREADS) as pool:
        parts = pool.map(lambda chunk: cls.fingerprints_of(base, [f"{n}{os.sep}run{cls.suffix}" for n in chunk]),
                         chunks)  # fmt: skip
        prints = [p for part in parts for p in part]
    return {"names": names, "prints": prints}


def main(argv: Optional[List[str]] = None) -> int:
    """``python -m hpctrack._prefetch SWEEP_DIR STORE``: print :func:`fingerprints_under` as JSON."""
    sweep_dir, store = (argv if argv is not None else sys.argv[1:])[:2]
    sys.stdout.write(json.dumps(fingerprints_under(Path(sweep_dir), store)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
