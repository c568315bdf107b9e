"""The job's run, for a Python program the job started: ``start_run()`` inside an ``--exec`` job.

The job's own process holds the run's writer lease, so another process of the job (a
Python program that an ``--exec`` command runs, or one a launched script starts) must not
open the store. When ``start_run`` finds no run in its process but the job's environment
names a run whose relay is open (:mod:`hpctrack.relay`), it returns a :class:`RelayRun`:
the same run id, directory and attempt, whose ``log``, ``summary``, ``tags``,
``log_params`` and ``log_artifact`` go through the relay to the job's writer. Ending it
records nothing: the run ends with its job, from the command's exit code. Checkpoints and
``on_requeue`` belong to the job's process, and are not available here.
"""

from __future__ import annotations

import operator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, Mapping, Optional, Union

from .errors import HpctrackError

if TYPE_CHECKING:
    import os

    from .identity import RunIdentity

__all__ = ["RelayRun", "relayed_run"]


class _RelayedDict(dict):
    """``run.summary`` / ``run.tags`` of a :class:`RelayRun`: each value set is sent at once."""

    def __init__(self, run: "RelayRun", kind: str) -> None:
        super().__init__()
        self._run, self._kind = run, kind

    def __setitem__(self, key: str, value: Any) -> None:
        self.update({key: value})

    def update(self, *args: Any, **kwargs: Any) -> None:
        from ._names import check_name
        from ._values import jsonable

        values = {}
        for key, value in dict(*args, **kwargs).items():
            if not isinstance(key, str):
                raise TypeError(f"keys must be strings, got {type(key).__name__}")
            values[check_name("key", key)] = jsonable(value)
        self._run._send({"kind": self._kind, "values": values})
        super().update(values)


class RelayRun:
    """The job's run, recorded through its relay by another process of the job (see the module's notes).

    Attributes
    ----------
    run_id, dir, run_dir, attempt:
        The job's run, as its writer has them.
    summary, tags:
        As :class:`hpctrack.Run`'s; each value set is sent to the writer at once.
    """

    def __init__(self, identity: "RunIdentity") -> None:
        self._identity = identity
        self._finished = False
        self.summary = _RelayedDict(self, "summary")
        self.tags = _RelayedDict(self, "tags")

    @property
    def run_id(self) -> str:
        """``<sweep id>/<job>``, the same as the writer's."""
        return self._identity.run_id

    @property
    def dir(self) -> Path:
        """The run's directory."""
        return self._identity.run_dir

    @property
    def run_dir(self) -> Path:
        """The same as :attr:`dir`."""
        return self._identity.run_dir

    @property
    def attempt(self) -> int:
        """The job's attempt (1, 2, ... after each requeue or resume)."""
        return self._identity.attempt

    @property
    def finished(self) -> bool:
        """:meth:`finish` was called (or the ``with`` block left)."""
        return self._finished

    def _send(self, entry: Mapping[str, Any]) -> None:
        from .relay import send

        if self._finished:
            raise HpctrackError(
                f"run {self.run_id} has ended in this process; log inside the `with start_run(...)` block"
            )
        send(self._identity, entry)

    def log(self, values: Mapping[str, Any], step: Optional[int] = None) -> None:
        """Log one point per metric at ``step`` (default: the run's previous step + 1, as the writer has it).

        One append to the relay per call (about a millisecond): log per step or per epoch.

        Raises
        ------
        TypeError
            A key that is not a non-empty string, or a value that is not a number; nothing is sent.
        RelayClosedError
            The job's writer no longer records the run.
        """
        from ._buffer import as_number
        from ._names import check_name

        at = None if step is None else operator.index(step)
        numbers: Dict[str, float] = {}
        for key, value in values.items():
            if type(key) is not str or not key:
                raise TypeError(f"run.log: metric names must be non-empty strings, got {key!r}")
            numbers[check_name("run.log: metric name", key)] = as_number(key, value)
        self._send({"kind": "log", "values": numbers, "step": at})

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Record extra params (merged into the job's flattened config)."""
        from ._values import flatten_config

        flat = flatten_config(dict(params))
        if flat:
            self._send({"kind": "params", "values": flat})

    def log_artifact(self, path: Union[str, "os.PathLike[str]"], name: Optional[str] = None) -> Path:
        """Copy a file or directory into the run's ``artifacts/``; returns the copy's path."""
        from ._artifacts import artifact_target, copy_artifact
        from .relay import check_relay

        target, named = artifact_target(self.run_dir, path, name)
        check_relay(self._identity)
        target, entry = copy_artifact(self.run_dir, path, named)
        self._send({"kind": "artifact", "name": named, "entry": entry})
        return target

    def flush(self) -> None:
        """Nothing to do: every call was sent as it was made."""

    def finish(self, status: Any = None, *, error: Any = None, wait_s: Optional[float] = None) -> None:
        """Stop recording from this process; the run itself ends with its job (from the command's exit code)."""
        self._finished = True

    def __enter__(self) -> "RelayRun":
        return self

    def __exit__(self, exc_type: Any, exc: Optional[BaseException], tb: Any) -> None:
        self.finish()


def relayed_run() -> Optional[RelayRun]:
    """The job's run through its relay, when this process is another process of a job whose relay is open.

    None when the environment names no run, on a rank other than 0, or when nothing follows
    the relay of the attempt it names (its job ended): ``start_run`` then starts as it always did.
    """
    from ._rank import global_rank
    from .identity import identity_from_env
    from .relay import RelayClosedError, check_relay

    identity = identity_from_env()
    if identity is None or global_rank() != 0:
        return None
    try:
        check_relay(identity)
    except (RelayClosedError, OSError):
        return None
    return RelayRun(identity)
