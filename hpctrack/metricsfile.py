"""Following a metrics file a program appends rows to (``hpctrack launch --exec ... --metrics-file F``).

Two formats, by the file's suffix:

- ``.csv``: a header line naming the columns, then one row per line;
- ``.jsonl``: one JSON object per line.

Each row is logged at the step of its ``step`` column (a whole number), else at its row
number (0 for the first row after the header). Every other column is a metric: numbers
(``nan`` and ``inf`` too) are logged; a value that is not a number (text, ``true``, a
list) and an empty cell are skipped, and each column skipped for that reason is named
once on the job's stderr. A row is read once it is complete (its newline written); the
last row, written without a newline, is read when the program has ended. A row that
cannot be read (a CSV row with another number of fields than the header, a line that is
not a JSON object, a step that is not a whole number) is skipped and named on stderr.

Requeue and resume: an attempt after the first starts after the rows already in the file
(an earlier attempt read them) and numbers rows on from there. A file that gets shorter or
is replaced (a program that rewrites it whole, or truncates it when it resumes) is read
again from its first row, skipping as many rows as this attempt has read from it already; so
is one rewritten in place (told by the last bytes read no longer being where they were).
"""

from __future__ import annotations

import csv
import json
import math
import os
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Set, Tuple

from .errors import ConfigError

__all__ = ["METRICS_SUFFIXES", "MetricsFileFollower", "check_metrics_file"]

METRICS_SUFFIXES = (".csv", ".jsonl")
STEP_COLUMN = "step"
#: The last bytes read, compared at each look to tell a file rewritten in place from one appended to.
SEEN_BYTES = 64


def check_metrics_file(path: str) -> str:
    """``path`` when hpctrack can follow it (a ``.csv`` or ``.jsonl`` file); else a one-line ConfigError."""
    if not path or not path.strip():
        raise ConfigError("--metrics-file needs a file name, e.g. metrics.csv or metrics.jsonl")
    if not path.lower().endswith(METRICS_SUFFIXES):
        raise ConfigError(f"--metrics-file {path!r}: name a .csv file (a header line, then rows) or a .jsonl file "
                          "(one JSON object per line)")  # fmt: skip
    return path


def _number(value: Any) -> Optional[float]:
    """A metric value from a CSV cell or a JSON value; None for text, booleans, lists, nulls and empty cells."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and value.strip():
        try:
            return float(value)
        except ValueError:
            return None
    return None


def _whole(value: Any) -> Optional[int]:
    """A step from a cell (``3``, ``3.0``) or a JSON number; None when it is not a whole number >= 0."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    number = _number(value)
    if number is None or not math.isfinite(number) or not number.is_integer() or number < 0:
        return None
    return int(number)


class MetricsFileFollower:
    """Reads the rows a program appends to ``path`` and logs them into ``run``.

    Call :meth:`poll` now and then while the program runs, and ``poll(final=True)`` once
    it has ended.

    Parameters
    ----------
    path:
        The metrics file (``.csv`` or ``.jsonl``); it may not exist yet.
    run:
        The run to log into (``run.log(values, step=...)``).
    resume:
        This is not the run's first attempt: the rows in the file when the follower is made
        (before the command starts) are an earlier attempt's.
    """

    def __init__(self, path: Path, run: Any, *, resume: bool = False) -> None:
        self.path = Path(path)
        self.run = run
        self.csv = self.path.suffix.lower() == ".csv"
        self.rows_logged = 0  # rows this attempt logged
        self._skip_existing = resume
        self._identity: Optional[Tuple[int, int]] = None
        self._offset = 0
        self._seen = b""  # the last bytes read, which a later look finds where they were unless the file was rewritten
        self._header: Optional[List[str]] = None
        self._row = 0  # the next row's number in the file
        self._skip = 0  # rows still to pass over after the file was rewritten
        self._warned: Set[str] = set()
        if resume:
            # Passed over now, before the command starts: a row it appends before the first
            # poll is this attempt's (a row unended by the earlier attempt stays the earlier's).
            self.poll(final=True)

    def _warn(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            print(f"hpctrack: {self.path.name}: {message}", file=sys.stderr, flush=True)

    def poll(self, *, final: bool = False) -> int:
        """Log the rows completed since the last look (with ``final``, a last row without its newline too).

        Returns how many rows were logged.
        """
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return 0
        with open(fd, "rb") as fh:
            st = os.fstat(fd)
            identity = (st.st_dev, st.st_ino)
            fh.seek(self._offset - len(self._seen))
            data = fh.read()
            if self._identity is not None and (identity != self._identity or not data.startswith(self._seen)):
                # Replaced, truncated, or rewritten in place (what was read last is not where it was):
                # read from its first row, past the rows this attempt logged.
                self._offset, self._header, self._row, self._skip = 0, None, 0, self.rows_logged
                fh.seek(0)
                data = fh.read()
            else:
                data = data[len(self._seen) :]
            self._identity = identity
        end = len(data) if final else data.rfind(b"\n") + 1
        if end <= 0:
            return 0
        self._offset += end
        self._seen = data[max(0, end - SEEN_BYTES) : end]
        lines = data[:end].decode("utf-8", errors="replace").splitlines()
        if self._skip_existing:
            # The rows an earlier attempt wrote (and read): counted for the row numbers, not logged again.
            self._skip_existing = False
            for line in lines:
                if line.strip():
                    if self.csv and self._header is None:
                        self._header = next(csv.reader([line]))
                    else:
                        self._row += 1
            return 0
        logged = 0
        for line in lines:
            if line.strip():
                logged += self._line(line)
        return logged

    def _line(self, line: str) -> int:
        if self.csv and self._header is None:
            self._header = [name.strip() for name in next(csv.reader([line]))]
            return 0
        number = self._row
        self._row += 1
        row = self._parse(line, number)
        if row is None:
            return 0
        if self._skip > 0:
            self._skip -= 1
            return 0
        step, values = row
        if not values:
            return 0
        try:
            self.run.log(values, step=step)
        except (TypeError, ValueError, OverflowError, ConfigError) as err:
            self._warn(f"row {number}", f"row {number} not logged: {err}")
            return 0
        self.rows_logged += 1
        return 1

    def _parse(self, line: str, number: int) -> Optional[Tuple[int, Dict[str, float]]]:
        """(step, values) of one row; None (said on stderr) when it cannot be read."""
        if self.csv:
            cells = next(csv.reader([line]))
            assert self._header is not None
            if len(cells) != len(self._header):
                self._warn(f"row {number}", f"row {number} skipped: {len(cells)} fields, the header has "
                                            f"{len(self._header)}")  # fmt: skip
                return None
            fields: Dict[str, Any] = dict(zip(self._header, cells))
        else:
            try:
                parsed = json.loads(line)
            except ValueError:
                self._warn(f"row {number}", f"row {number} skipped: not a JSON object")
                return None
            if not isinstance(parsed, dict):
                self._warn(f"row {number}", f"row {number} skipped: not a JSON object")
                return None
            fields = parsed
        step = number
        if STEP_COLUMN in fields:
            found = _whole(fields.pop(STEP_COLUMN))
            if found is None:
                self._warn(f"step {number}", f"row {number} skipped: its step is not a whole number")
                return None
            step = found
        values: Dict[str, float] = {}
        for key, raw in fields.items():
            value = _number(raw)
            if value is None:
                if not (isinstance(raw, str) and not raw.strip()):  # an empty cell is only a missing value
                    self._warn(f"column {key}", f"column {key!r} skipped where it is not a number ({raw!r})")
                continue
            values[str(key)] = value
        return step, values
