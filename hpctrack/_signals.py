"""Signals around a run's writes: Ctrl-C deferred while a write runs, and signals that arrive
before the run exists kept for it.

A KeyboardInterrupt raised in the middle of a store write leaves the caller
unable to tell whether its batch was committed, and one raised inside a
callback of h5py's object registry is printed and swallowed ("Exception
ignored in ..."). So while the main thread writes, SIGINT is only noted, and
it is raised (or handed to the handler that was there) as soon as the write
has ended: committed once or not at all, and never lost.
"""

from __future__ import annotations

import signal
import threading
from typing import Any, Callable, Dict, List, Optional

__all__ = ["DeferredSigint", "EarlySignals", "signal_name"]


def signal_name(signum: int) -> str:
    """``"SIGTERM"`` for ``signal.SIGTERM``; the number for a signal Python has no name for."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return str(signum)


class DeferredSigint:
    """While active (main thread only), SIGINT is noted instead of raised; :meth:`end` delivers it.

    Nested uses in one thread are fine: an inner one sees the outer one's
    handler installed and leaves delivery to it.
    """

    def __init__(self) -> None:
        self.pending = False
        self._previous: Any = None
        self._active = False

    def _note(self, signum: int, frame: Any) -> None:
        self.pending = True

    def begin(self) -> "DeferredSigint":
        if threading.current_thread() is not threading.main_thread():
            return self
        current = signal.getsignal(signal.SIGINT)
        if getattr(current, "__self__", None).__class__ is DeferredSigint:
            return self  # an outer write already defers it
        try:
            self._previous = signal.signal(signal.SIGINT, self._note)
            self._active = True
        except (OSError, ValueError):  # not the main interpreter, or signals unavailable
            pass
        return self

    def end(self) -> None:
        """Put the previous handler back, then deliver a SIGINT that arrived meanwhile."""
        if not self._active:
            return
        self._active = False
        previous = self._previous
        signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)
        if not self.pending:
            return
        self.pending = False
        deliver(signal.SIGINT, previous)


def deliver(signum: int, handler: Any) -> None:
    """Do what ``handler`` (a signal's disposition) does with ``signum``, now, in this thread."""
    import os

    if handler is signal.default_int_handler or handler is None:
        raise KeyboardInterrupt
    if callable(handler):
        handler(signum, None)
    elif handler == signal.SIG_DFL:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)


class EarlySignals:
    """Signals that arrive while a job starts, before its run has installed its own handlers.

    :func:`hpctrack.launch._entrypoint.run_job` installs this first thing, so a
    SIGTERM (a cancel) or SLURM's time-limit signal that lands during imports or
    the run's provenance capture is kept and replayed to the run once it can
    record it, instead of killing the job with nothing recorded.
    """

    def __init__(self, signums: List[int]) -> None:
        self.pending: List[int] = []
        self._previous: Dict[int, Any] = {}
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in signums:
            try:
                self._previous[signum] = signal.signal(signum, self._note)
            except (OSError, ValueError):
                pass

    def _note(self, signum: int, frame: Any) -> None:
        self.pending.append(signum)

    def set_previous(self, signum: int, handler: Any) -> None:
        """Make ``handler`` the one :meth:`restore` puts back for ``signum`` (and the run chains to)."""
        if signum in self._previous:
            self._previous[signum] = handler
        elif threading.current_thread() is threading.main_thread():
            signal.signal(signum, handler)

    def restore(self) -> None:
        """Put back the handlers that were there before (the run then chains to them)."""
        for signum, handler in self._previous.items():
            try:
                signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
            except (OSError, ValueError):
                pass
        self._previous.clear()

    def replay(self, to: Optional[Callable[[int, Any], None]]) -> None:
        """Hand the kept signals to ``to`` (the run's handler), or to the restored handlers."""
        pending, self.pending = self.pending, []
        for signum in pending:
            if to is not None:
                to(signum, None)
            else:
                deliver(signum, signal.getsignal(signum))
