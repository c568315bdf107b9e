"""Commands a job's own program calls to record into the job's run: ``log``, ``summary``, ``artifact``.

They find the run from the job's environment (:func:`hpctrack.identity.identity_from_env`)
and never open its store (the job's process holds it): they hand what they record to the
run's writer through its relay (:mod:`hpctrack.relay`). Everything is checked before
anything is written. On a rank other than 0 of a job of several tasks they record nothing,
as ``run.log`` does there.
"""

from __future__ import annotations

import os
from typing import Any, Optional, Sequence

import click

from ._base import cli, fail, handle_errors


def _identity(command: str) -> Any:
    """The run this process works for; a one-line error outside a job."""
    from ..identity import RUN_ID_ENV, identity_from_env

    identity = identity_from_env()
    if identity is None:
        fail(f"hpctrack {command} records into the run of the job it is called from, and this process is in no "
             f"job ({RUN_ID_ENV} is not set): call it from the program of an `hpctrack launch --exec` job, or from "
             "any process a launched job or a started run starts")  # fmt: skip
    return identity


def _rank_zero() -> bool:
    from .._rank import global_rank

    return global_rank() == 0


def _step(text: Optional[str]) -> Optional[int]:
    if text is None:
        return None
    stripped = text.strip()
    if not stripped.isdigit():
        fail(f"--step must be a whole number (0, 1, 2, ...), got {text!r}")
    return int(stripped)


@cli.command()
@click.argument("pairs", nargs=-1, type=click.UNPROCESSED, metavar="KEY=VALUE...")
@click.option("--step", default=None, metavar="N", help="The step of these values (default: the run's next step).")
@handle_errors
def log(pairs: Sequence[str], step: Optional[str]) -> None:
    """Log metrics (numbers) into the run of the job this is called from, at step N.

    Without --step the values go to the step after the run's previous one, as run.log does.
    """
    from ..relay import parse_values, send

    identity = _identity("log")
    values = parse_values(list(pairs), text=False, command="log")
    at = _step(step)
    if _rank_zero():
        send(identity, {"kind": "log", "values": values, "step": at})


@cli.command()
@click.argument("pairs", nargs=-1, type=click.UNPROCESSED, metavar="KEY=VALUE...")
@handle_errors
def summary(pairs: Sequence[str]) -> None:
    """Set summary values (numbers or text) of the run of the job this is called from."""
    from ..relay import parse_values, send

    identity = _identity("summary")
    values = parse_values(list(pairs), text=True, command="summary")
    if _rank_zero():
        send(identity, {"kind": "summary", "values": values})


@cli.command()
@click.argument("path", type=click.Path(exists=False))
@click.option("--name", default=None, help="Its name under the run's artifacts/ (default: the file's name).")
@handle_errors
def artifact(path: str, name: Optional[str]) -> None:
    """Copy the file or directory PATH into the artifacts of the run of the job this is called from."""
    from .._artifacts import artifact_target, copy_artifact
    from ..relay import RelayClosedError, check_relay, send

    identity = _identity("artifact")
    source = os.path.abspath(path)
    try:
        target, named = artifact_target(identity.run_dir, source, name)
    except FileNotFoundError:
        fail(f"no such file or directory: {path}")
    except ValueError:
        fail(f"--name {name!r} must be a relative path inside the run's artifacts/ (no '..', not absolute)")
    if not _rank_zero():
        return
    check_relay(identity)  # said before anything is copied
    existed = target.exists()
    target, entry = copy_artifact(identity.run_dir, source, named)
    try:
        send(identity, {"kind": "artifact", "name": named, "entry": entry})
    except RelayClosedError:
        if not existed:  # the attempt ended meanwhile: leave nothing it never recorded
            _remove(target)
        raise


def _remove(target: Any) -> None:
    import shutil

    try:
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        else:
            target.unlink()
    except OSError:
        pass
