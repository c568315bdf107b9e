"""The ``hpctrack`` command line: each command parses, makes one library call, renders.

Expected failures (errors from hpctrack, and OS errors such as an unwritable
output file) become ``Error: <one line>`` and exit code 1; usage errors (a bad option
value, a missing argument) are one line too, naming ``--help``, and exit 2;
Ctrl-C exits 130. ``--debug`` (or ``HPCTRACK_DEBUG=1``) shows the full
traceback instead. Every ``HPCTRACK_*`` variable is checked before a command
runs, so a bad value is one line naming it. JSON outputs are strict JSON: NaN
and infinities become null.

The commands are grouped by verb family: :mod:`.jobs` (launch, requeue, resume,
cancel, rerun), :mod:`.views` (status, ls, show, diff), :mod:`.tidy` (tag, note, rm, pin, unpin), :mod:`.results` (table,
compare, plot) and :mod:`.upkeep` (verify, reindex, gc); `runs` (search across sweeps) sits with the results, `ui` (the dashboard) in :mod:`.ui`, `models` (the model registry) in :mod:`.models`, and :mod:`.inside` has
the commands a job's own program calls (log, summary, artifact); what they print is
rendered in :mod:`.render`. Nothing in the library imports this package.
"""

from __future__ import annotations

import gc
import os
import sys
from typing import List, Optional

import click

from .._terminal import printable

# Each family's module registers its commands on the group when one of them is wanted (COMMAND_MODULES).
from ._base import COMMAND_MODULES, cli

__all__ = ["main", "run", "cli"]


def main(argv: Optional[List[str]] = None) -> None:
    """Entry point of the ``hpctrack`` console script."""
    try:
        code = cli.main(args=argv, prog_name="hpctrack", standalone_mode=False)
    except click.UsageError as err:
        # click's own form is three lines (usage, a hint, the error); hpctrack's errors are one.
        where = err.ctx.command_path if err.ctx is not None else "hpctrack"
        if where == "hpctrack":  # an option's missing value is laid at the group's door: name the command's help
            given = sys.argv[1:] if argv is None else argv
            command = next((a for a in given if a in COMMAND_MODULES), None)
            where = f"hpctrack {command}" if command else where
        click.echo(f"Error: {printable(' '.join(err.format_message().split()))} (see `{where} --help`)", err=True)
        sys.exit(err.exit_code)
    except click.ClickException as err:
        click.echo(f"Error: {printable(' '.join(err.format_message().split()))}", err=True)
        sys.exit(err.exit_code)
    except click.Abort:
        click.echo("Aborted!", err=True)
        sys.exit(1)
    if isinstance(code, int) and code:  # click.exceptions.Exit's code (e.g. from ctx.exit)
        sys.exit(code)


def run() -> None:
    """The console script: :func:`main`, then exit without tearing the interpreter down.

    Freeing every module and object of pandas, numpy and pyarrow one by one at exit costs
    60-80 ms, a sixth of `hpctrack table` on a thousand runs. After a command returned, its
    output is flushed and the process ends at once, unless something still runs that
    expects the usual exit (another thread, a child process); errors exit as usual.
    """
    # A command's life is short and its imports (pandas, pyarrow) allocate a lot: with Python's default
    # threshold the cycle collector runs hundreds of times while they load (30-50 ms of a 0.5 s table).
    # Rarer collections still collect cycles in the long-lived commands (a local launch waiting).
    gc.set_threshold(50_000, 20, 20)
    main()
    if _quiet_exit_is_safe():
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except (OSError, ValueError):
            return  # a closed pipe or stream: the usual exit reports it as Python does
        os._exit(0)


def _quiet_exit_is_safe() -> bool:
    """No other thread and no child process that an exit handler would still wait for."""
    threading = sys.modules.get("threading")
    if threading is not None and threading.active_count() > 1:
        return False
    mp = sys.modules.get("multiprocessing")
    return not (mp is not None and mp.active_children())


if __name__ == "__main__":  # pragma: no cover
    run()
