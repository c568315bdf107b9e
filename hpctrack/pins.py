"""Pinned runs: runs that must outlive a tidy-up (``hpctrack pin``/``unpin``), kept in ``pins.json``.

A pin names one run of a sweep and why it is kept ("figure 3 of the paper", "model
resnet v4"); a run may hold several pins, one per reason. ``hpctrack rm`` refuses a
sweep while any of its runs is pinned and names them, so a result that a paper or a
registered model depends on is never trashed by a clean-up of old sweeps.

The file lives beside ``sweep.json`` and, like ``labels.json``, is replaced atomically
(temporary file, ``os.replace``) while holding the manifest's lock ``sweep.json.lock``:
two ``pin`` calls never lose each other's pin. A ``pins.json`` that is a symlink is
refused, never read through; a damaged one is an error that names it, and ``rm``
refuses rather than guess that nothing is pinned.
"""

from __future__ import annotations

import errno
import getpass
import json
import os
import socket
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence

from ._names import check_name
from .errors import ConfigError, FormatVersionError, StoreError, UnsafePathError
from .locking import atomic_write, lock
from .manifest import MANIFEST_FILE

__all__ = ["PINS_FILE", "PINS_VERSION", "DEFAULT_REASON", "Pin", "read_pins", "pin_runs", "unpin_runs",
           "pinned_runs", "describe_pinned"]  # fmt: skip

PINS_FILE = "pins.json"
#: Version of ``pins.json`` this hpctrack writes (and the newest it reads).
PINS_VERSION = 1
DEFAULT_REASON = "pinned by hand"


@dataclass(frozen=True)
class Pin:
    """One reason to keep run ``run`` of a sweep: who pinned it, where and when."""

    run: int
    reason: str
    by: str
    host: str
    at: float  # epoch seconds


def _path(sweep_dir: Path) -> Path:
    return Path(sweep_dir) / PINS_FILE


def read_pins(sweep_dir: Path) -> List[Pin]:
    """The pins of the sweep in ``sweep_dir``, by run then time; empty when it has none.

    Raises
    ------
    UnsafePathError
        ``pins.json`` is a symlink (it is never read through).
    StoreError
        ``pins.json`` is damaged (one line naming it).
    FormatVersionError
        It was written by a newer hpctrack.
    """
    path = _path(sweep_dir)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return []
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise UnsafePathError(f"refusing to read {path}: it is a symlink (to {os.readlink(path)}), not the "
                                  "pins file hpctrack writes; remove the link") from None  # fmt: skip
        raise StoreError(f"cannot read {path}: {err.strerror}") from err
    try:
        with open(fd, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError) as err:
        raise StoreError(f"cannot read {path}: {' '.join(str(err).split())}; fix or delete it") from err
    if not isinstance(data, dict) or not isinstance(data.get("pins", []), list):
        raise StoreError(f"damaged {path}: expected an object with a list 'pins'; fix it (it holds the sweep's "
                         "pinned runs)")  # fmt: skip
    version = data.get("format_version", 1)
    if isinstance(version, int) and version > PINS_VERSION:
        raise FormatVersionError(f"{path} has format_version {version}, newer than this hpctrack reads "
                                 f"({PINS_VERSION}); upgrade with `pip install -U hpctrack`")  # fmt: skip
    pins: List[Pin] = []
    for entry in data.get("pins", []):
        try:
            pins.append(Pin(int(entry["run"]), str(entry["reason"]), str(entry.get("by", "?")),
                            str(entry.get("host", "?")), float(entry.get("at", 0.0))))  # fmt: skip
        except (KeyError, TypeError, ValueError):
            raise StoreError(f"damaged {path}: a pin without a run index or reason: {entry!r:.80}; fix it") from None
    return sorted(pins, key=lambda p: (p.run, p.at))


def pinned_runs(sweep_dir: Path) -> Dict[int, List[Pin]]:
    """Run index -> its pins, for the runs of the sweep that hold at least one."""
    out: Dict[int, List[Pin]] = {}
    for p in read_pins(sweep_dir):
        out.setdefault(p.run, []).append(p)
    return out


def describe_pinned(pinned: Dict[int, List[Pin]], limit: int = 5) -> str:
    """``run 1 (paper fig 3), run 4 (model a v2; model a v3)``: one line, the first ``limit`` runs."""
    parts = [f"run {run} ({'; '.join(p.reason for p in pins)})" for run, pins in sorted(pinned.items())]
    return ", ".join(parts[:limit]) + (f" and {len(parts) - limit} more" if len(parts) > limit else "")


def _check_reason(reason: str) -> str:
    if not isinstance(reason, str) or not reason.strip():
        raise ConfigError("a pin's reason is non-empty text (--reason 'figure 3 of the paper')")
    if any(ord(c) < 32 or 127 <= ord(c) < 160 for c in reason):
        raise ConfigError("a pin's reason is one line of text: it holds a control character (newline, tab, escape)")
    return check_name("pin reason", reason)


def _check_runs(sweep_dir: Path, runs: Sequence[int]) -> List[int]:
    from .manifest import load_manifest

    n = len(load_manifest(Path(sweep_dir)).jobs)
    for run in runs:
        if isinstance(run, bool) or not isinstance(run, int):
            raise ConfigError(f"run {run!r}: a run is a job index of the sweep (0-{n - 1})")
        if not 0 <= run < n:
            raise ConfigError(f"sweep {Path(sweep_dir).name} has jobs 0-{n - 1}; no job {run}")
    if not runs:
        raise ConfigError("name at least one run (a job index of the sweep)")
    return sorted(set(runs))


def _update(sweep_dir: Path, change: Callable[[List[Pin]], List[Pin]]) -> List[Pin]:
    sweep_dir = Path(sweep_dir)
    if not (sweep_dir / MANIFEST_FILE).is_file():
        raise StoreError(f"no sweep manifest at {sweep_dir / MANIFEST_FILE}")
    with lock(sweep_dir / f"{MANIFEST_FILE}.lock") as guard:
        new = change(read_pins(sweep_dir))
        data: Dict[str, Any] = {"format_version": PINS_VERSION, "pins": [asdict(p) for p in new]}
        atomic_write(_path(sweep_dir), json.dumps(data, indent=1), guard=guard)
    return new


def pin_runs(sweep_dir: Path, runs: Sequence[int], reason: str = DEFAULT_REASON) -> List[Pin]:
    """Pin ``runs`` (job indices) of the sweep for ``reason``; a run already pinned for it keeps its pin.

    Everything is checked before the file is touched.

    Returns
    -------
    list of Pin
        Every pin of the sweep after the change.

    Raises
    ------
    ConfigError
        A run that is not a job of the sweep, or a reason that is empty, longer than 255
        characters or holds a control character.
    """
    reason = _check_reason(reason)
    runs = _check_runs(sweep_dir, runs)
    who, host, now = getpass.getuser(), socket.gethostname(), time.time()

    def change(old: List[Pin]) -> List[Pin]:
        have = {(p.run, p.reason) for p in old}
        return old + [Pin(r, reason, who, host, now) for r in runs if (r, reason) not in have]

    return _update(sweep_dir, change)


def unpin_runs(sweep_dir: Path, runs: Sequence[int], reason: Optional[str] = None) -> List[Pin]:
    """Remove the pins of ``runs`` (only those for ``reason`` when given); absent pins are fine.

    Returns
    -------
    list of Pin
        Every pin of the sweep after the change.
    """
    if reason is not None:
        reason = _check_reason(reason)
    runs = _check_runs(sweep_dir, runs)
    return _update(sweep_dir, lambda old: [p for p in old if not (p.run in runs and reason in (None, p.reason))])
