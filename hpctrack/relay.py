"""The relay: how the processes of a job record into its run without opening the run's store.

A run has one writer, the job's first process (it holds the run's writer lease). A
program that process starts (the command of an ``hpctrack launch --exec`` job, a shell
script a Python job calls) records through ``hpctrack log``, ``hpctrack summary`` and
``hpctrack artifact``, which append to the relay of the run's current attempt; the writer
follows the relay and writes what it reads through ``run.log``, ``run.summary`` and the
run's artifacts.

On disk, in the run directory, one set per attempt ``A``::

    relay/A.jsonl   append-only: one JSON object per line (key ``v``: its format), one line per command call
    relay/A.json    the relay's state (key ``format_version``): who follows it (host, pid, process start),
                    open or closed
    relay/A.lock    the lock (hpctrack.locking.lock) every append and the close take

The writer opens the relay when the attempt starts (``relay/A.json`` says ``open``), reads
the new complete lines a few times a second, and at the attempt's end reads the rest and
closes it (``closed``), both under the lock. A command appends under the same lock, and
only to an open relay whose follower is alive: after the close, after the writer died, or
before it opened, the command fails with one line and nothing is written. So each line is
read once, by the attempt it was written for; a requeued attempt follows its own file and
never reads an earlier attempt's again. A line appended in the moment between a writer's
death and the command's check is kept in the file, unread (the writer lost it as it loses
what it held in memory).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Mapping, Optional, Sequence, Union

from .errors import ConfigError, HpctrackError

if TYPE_CHECKING:
    from .identity import RunIdentity

__all__ = ["RELAY_DIR", "RelayClosedError", "RelayFollower", "RelayPaths", "check_relay", "follow_relay",
           "parse_values", "relay_paths", "relay_state", "send"]  # fmt: skip

RELAY_DIR = "relay"
RELAY_FORMAT_VERSION = 1
#: Seconds between two looks of the follower at its relay.
POLL_S = 0.2
#: How long a command waits for the relay's lock (another command's append, the writer's close).
SEND_LOCK_TIMEOUT_S = 30.0
#: How long the writer's last read waits for the lock before it reads and closes without it.
CLOSE_LOCK_TIMEOUT_S = 10.0

Value = Union[int, float, str]


class RelayClosedError(HpctrackError, RuntimeError):
    """No live process follows the relay of this attempt: it ended, it died, or it never opened one."""


@dataclass(frozen=True)
class RelayPaths:
    """The files of one attempt's relay."""

    lines: Path
    state: Path
    lock: Path


def relay_paths(run_dir: Path, attempt: int) -> RelayPaths:
    """The relay files of attempt ``attempt`` of the run in ``run_dir``."""
    folder = Path(run_dir) / RELAY_DIR
    return RelayPaths(
        lines=folder / f"{attempt}.jsonl", state=folder / f"{attempt}.json", lock=folder / f"{attempt}.lock"
    )


def _write_state(paths: RelayPaths, state: Mapping[str, Any]) -> None:
    """Replace the relay's state whole (a reader sees the old or the new one). Not fsynced: it
    matters only while the job's process lives, and a node that goes down takes that with it."""
    tmp = paths.state.with_name(f".{paths.state.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), 0o644)
    try:
        with open(fd, "w") as fh:
            fh.write(json.dumps(state))
        os.replace(tmp, paths.state)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def relay_state(paths: RelayPaths) -> Optional[Dict[str, Any]]:
    """The relay's state as its follower wrote it; None when there is none (or it cannot be read)."""
    try:
        state = json.loads(paths.state.read_text())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


# -- the commands' side ----------------------------------------------------------------------------

_INT = re.compile(r"^[+-]?\d+$")


def _number(text: str) -> Optional[Union[int, float]]:
    """``text`` as a number (``3``, ``-1.5e-3``, ``nan``, ``inf``), or None."""
    stripped = text.strip()
    if _INT.match(stripped):
        return int(stripped)
    try:
        value = float(stripped)
    except ValueError:
        return None
    if "_" in stripped:  # float() takes "1_000"; a metric written so is more likely a mistake
        return None
    return value


def parse_values(pairs: Sequence[str], *, text: bool, command: str) -> Dict[str, Value]:
    """``["loss=0.25", "acc=0.9"]`` -> ``{"loss": 0.25, "acc": 0.9}``; every pair checked first.

    Parameters
    ----------
    pairs:
        ``KEY=VALUE`` strings, as given on the command line.
    text:
        Whether a value that is not a number is kept as text (``summary``) or refused (``log``).
    command:
        The command's name, for the messages.

    Raises
    ------
    ConfigError
        No pair, one that is not ``KEY=VALUE``, a key given twice or too long, or a value that is
        not a number where one is needed; the message names it.
    """
    from ._names import check_name

    if not pairs:
        raise ConfigError(f"hpctrack {command} needs at least one KEY=VALUE (e.g. loss=0.25)")
    values: Dict[str, Value] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{pair!r} is not KEY=VALUE (e.g. loss=0.25)")
        if not raw.strip() and not text:  # an empty text value is a value (a shell variable that is empty)
            raise ConfigError(f"{pair!r}: no value; hpctrack {command} takes numbers such as 0.25, 3, nan")
        if key != key.strip():
            raise ConfigError(f"{pair!r}: the key has spaces around it; write {key.strip()}={raw}")
        check_name(f"hpctrack {command}: key", key, "shorten it")
        if key in values:
            raise ConfigError(f"{key!r} is given twice; give each key once")
        number = _number(raw)
        if number is None and not text:
            raise ConfigError(f"{pair!r}: {raw!r} is not a number (hpctrack {command} takes numbers such as 0.25, "
                              "3, nan; text goes to hpctrack summary)")  # fmt: skip
        values[key] = number if number is not None else raw
    return values


def _json_line(entry: Mapping[str, Any]) -> bytes:
    # NaN and infinities stay what they are (json writes them as NaN/Infinity and reads them back)
    return (json.dumps(entry, separators=(",", ":"), allow_nan=True) + "\n").encode("utf-8")


def _gone(state: Mapping[str, Any], run_dir: Path) -> Optional[str]:
    """Why the follower named by ``state`` no longer follows the relay; None when it (presumably) does."""
    from ._process import pid_alive, process_identity
    from .locking import writer_state

    pid = int(state.get("pid") or 0)
    if state.get("host") == socket.gethostname():
        now = process_identity(pid) if pid else {}
        if not now or not pid_alive(pid) or (state.get("start") is not None and now.get("start") != state["start"]):
            return f"the process that records it (pid {pid}) is gone"
        return None
    # Another node: only the writer lease's heartbeat tells whether the writer lives.
    writer = writer_state(run_dir)
    if writer is None or (writer.host, writer.pid) != (state.get("host"), pid) or not writer.presumed_alive:
        return f"the process that records it (pid {pid} on {state.get('host')}) is gone"
    return None


def _check_open(paths: RelayPaths, identity: "RunIdentity") -> None:
    where = f"run {identity.run_id}, attempt {identity.attempt}"
    state = relay_state(paths)
    if state is None:
        raise RelayClosedError(f"{where}: nothing records it ({paths.state} is missing): the job's own process "
                               "opens the relay when its run starts; nothing was recorded")  # fmt: skip
    if int(state.get("format_version", 1)) > RELAY_FORMAT_VERSION:
        raise RelayClosedError(f"{where}: its relay ({paths.state}) was opened by a newer hpctrack (format "
                               f"{state['format_version']}); run the same hpctrack as the job: pip install -U hpctrack")  # fmt: skip
    if not state.get("open"):
        raise RelayClosedError(f"{where} has ended (its job's process closed the relay); nothing was recorded")
    why = _gone(state, identity.run_dir)
    if why is not None:
        raise RelayClosedError(f"{where}: {why}; nothing was recorded")


def check_relay(identity: "RunIdentity") -> RelayPaths:
    """The relay of ``identity``'s attempt, when a live process follows it.

    Raises
    ------
    RelayClosedError
        The attempt has ended, its writer is gone, or it never opened a relay.
    """
    paths = relay_paths(identity.run_dir, identity.attempt)
    _check_open(paths, identity)
    return paths


def send(identity: "RunIdentity", entry: Mapping[str, Any], *, timeout_s: float = SEND_LOCK_TIMEOUT_S) -> None:
    """Append ``entry`` (``{"kind": "log", ...}``) to the relay of ``identity``'s attempt, for its writer.

    Under the relay's lock: the relay must be open and its follower alive, else nothing is
    written. One line per call, written with one ``write``.

    Raises
    ------
    RelayClosedError
        The attempt has ended, its writer is gone, or it never opened a relay.
    LockTimeout
        The relay's lock was not had within ``timeout_s``.
    """
    from .locking import lock
    from .safefs import check_inside

    paths = relay_paths(identity.run_dir, identity.attempt)
    if not paths.state.parent.is_dir():
        _check_open(paths, identity)  # says why, in the same words
    check_inside(paths.state.parent, identity.run_dir, "write the relay in")
    line = _json_line({"v": RELAY_FORMAT_VERSION, **entry, "time": time.time(), "pid": os.getpid()})
    with lock(paths.lock, timeout_s=timeout_s):
        _check_open(paths, identity)
        fd = os.open(paths.lines, os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600)
        try:
            view = memoryview(line)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)


# -- the writer's side -------------------------------------------------------------------------------


class RelayFollower:
    """Follows one attempt's relay for its run (the run's writer process), from a thread.

    Parameters
    ----------
    run:
        The run that writes what the relay says (an open :class:`hpctrack.Run` of rank 0).
    poll_s:
        Seconds between two looks at the relay.
    """

    def __init__(self, run: Any, *, poll_s: float = POLL_S) -> None:
        self.run = run
        self.paths = relay_paths(run.run_dir, run.attempt)
        self.poll_s = poll_s
        self.applied = 0  # lines written through the run
        self._offset = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._closed = False

    def open(self) -> "RelayFollower":
        """Say the relay is followed (by this process) and start the thread that reads it."""
        from ._process import process_identity
        from .locking import lock
        from .safefs import check_inside

        folder = self.paths.state.parent
        folder.mkdir(exist_ok=True)
        check_inside(folder, self.run.run_dir, "write the relay in")
        me = process_identity(os.getpid())
        state = {"format_version": RELAY_FORMAT_VERSION, "run_id": self.run.run_id, "attempt": self.run.attempt,
                 "host": socket.gethostname(), "pid": os.getpid(), "start": me.get("start"), "open": True,
                 "opened": time.time()}  # fmt: skip
        with lock(self.paths.lock, timeout_s=SEND_LOCK_TIMEOUT_S):
            # Lines already there were sent to an earlier process of this attempt number (one whose start
            # failed before it recorded anything): not this one's to replay.
            try:
                self._offset = self.paths.lines.stat().st_size
            except FileNotFoundError:
                self._offset = 0
            _write_state(self.paths, state)
        self._thread = threading.Thread(target=self._follow, name="hpctrack-relay", daemon=True)
        self._thread.start()
        return self

    def _follow(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.poll()
            except Exception as err:  # reading failed this time (a filesystem hiccup); the next look retries
                print(f"hpctrack: run {self.run.run_id}: reading its relay failed: {err}", file=sys.stderr, flush=True)

    def poll(self) -> int:
        """Write through the run every complete line appended since the last look; returns how many."""
        with self._lock:
            try:
                with open(self.paths.lines, "rb") as fh:
                    fh.seek(self._offset)
                    data = fh.read()
            except FileNotFoundError:
                return 0
            end = data.rfind(b"\n")
            if end < 0:
                return 0  # a line still being written (another node's write, seen in part)
            self._offset += end + 1
            count = 0
            for raw in data[: end + 1].splitlines():
                if raw.strip():
                    self._apply(raw)
                    count += 1
            self.applied += count
            return count

    def _apply(self, raw: bytes) -> None:
        try:
            entry = json.loads(raw)
            if int(entry.get("v", 1)) > RELAY_FORMAT_VERSION:
                raise ValueError(f"written by a newer hpctrack (relay format {entry['v']}); upgrade hpctrack")
            kind = entry["kind"]
            if kind == "log":
                self.run.log(entry["values"], step=entry.get("step"))
            elif kind == "summary":
                self.run.summary.update(entry["values"])
            elif kind == "tags":
                self.run.tags.update(entry["values"])
            elif kind == "params":
                self.run.log_params(entry["values"])
            elif kind == "artifact":
                self.run._record_artifact(str(entry["name"]), dict(entry["entry"]))
            else:
                raise ValueError(f"unknown kind {kind!r}")
        except Exception as err:  # one bad line must not stop the others (or the job)
            text = raw[:200].decode("utf-8", errors="replace")
            print(f"hpctrack: run {self.run.run_id}: relay line not recorded ({type(err).__name__}: {err}): {text}",
                  file=sys.stderr, flush=True)  # fmt: skip

    def close(self) -> None:
        """Read the rest, then close the relay: a command from now on fails, and nothing is left unread.

        Waits at most :data:`CLOSE_LOCK_TIMEOUT_S` for the lock (a command killed while
        appending holds it until its holder is found dead); then it reads and closes without it.
        """
        from .errors import LockTimeout
        from .locking import lock

        if self._closed:
            return
        self._closed = True
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=CLOSE_LOCK_TIMEOUT_S)
        state = {**(relay_state(self.paths) or {}), "open": False, "closed": time.time(), "applied": self.applied}
        try:
            with lock(self.paths.lock, timeout_s=CLOSE_LOCK_TIMEOUT_S):
                self.poll()
                _write_state(self.paths, {**state, "applied": self.applied})
        except LockTimeout:
            self.poll()
            _write_state(self.paths, {**state, "applied": self.applied})


def follow_relay(run: Any) -> Optional[RelayFollower]:
    """Follow the relay of ``run``'s attempt until the run ends (its last read comes first in ``finish``).

    For the run's writer only (rank 0); None elsewhere, or when the relay cannot be opened
    (said on stderr: the job runs on, and a command inside it says it cannot record).
    """
    if not getattr(run, "_writes", False) or run.run_id is None:
        return None
    follower = RelayFollower(run)
    try:
        follower.open()
    except (OSError, HpctrackError) as err:
        print(f"hpctrack: run {run.run_id}: its relay could not be opened ({err}); `hpctrack log` cannot record "
              "into it", file=sys.stderr, flush=True)  # fmt: skip
        return None
    run._before_finish.append(follower.close)
    return follower
