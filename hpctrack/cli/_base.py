"""What every command shares: the click group, error handling, one-line output, common options."""

from __future__ import annotations

import functools
import importlib
import json
import sys
from typing import Any, Callable, Dict, List, Optional

import click

from .._terminal import printable
from .._types import finite_json
from ..errors import HpctrackError

__all__ = ["cli", "fail", "echo", "echo_json", "handle_errors", "root_option", "parse_jobs", "split_keys"]

_DEBUG = {"on": False}


def fail(message: str) -> "None":
    click.echo(f"Error: {printable(' '.join(message.split()))}", err=True)  # one line, whatever the message held
    sys.exit(1)


def echo(text: str = "", err: bool = False) -> None:
    """One line for a person: names and values in it come from the store, so controls are shown, not obeyed."""
    click.echo(printable(text), err=err)


def _os_error_line(err: OSError) -> str:
    """An OSError as ``<what>: <path>`` (``No such file or directory: /x/y.csv``)."""
    what = err.strerror or str(err) or type(err).__name__
    path = err.filename if err.filename is not None else None
    return f"{what}: {path}" if path is not None else what


def handle_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except HpctrackError as err:
            if _DEBUG["on"]:
                raise
            fail(str(err))
        except BrokenPipeError:  # `... | head -1`: the reader has what it wanted; not an error
            _quiet_stdout()
            sys.exit(0)
        except OSError as err:  # a path that is not there or not writable: expected, one line
            if _DEBUG["on"]:
                raise
            fail(_os_error_line(err))
        except KeyboardInterrupt:
            if _DEBUG["on"]:
                raise
            echo("interrupted", err=True)
            sys.exit(130)

    return wrapper


def _quiet_stdout() -> None:
    """Point stdout at /dev/null, so that flushing at exit does not fail on the closed pipe again."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


def echo_json(data: Any) -> None:
    """Strict JSON on stdout: NaN and infinities become null (JSON has no such numbers)."""
    click.echo(json.dumps(finite_json(data), indent=1, default=str, allow_nan=False))


#: ``--format`` of the commands that print a results frame (table, compare, runs).
results_format_option = click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json", "parquet", "markdown"]),
    default="table",
    show_default=True,
)

#: ``--tag KEY[=VALUE]`` of the commands that pick sweeps by their tags (ls, runs).
sweep_tag_option = click.option(
    "--tag",
    "tags",
    multiple=True,
    metavar="KEY[=VALUE]",
    help="Only sweeps with tag KEY (equal to VALUE); repeatable, all must hold.",
)


def _checked_since(ctx: click.Context, param: click.Parameter, value: Optional[str]) -> Optional[str]:
    """A --since that names no moment is a usage error (exit 2), said before the command runs."""
    if value is not None:
        from .._since import parse_since
        from ..errors import ConfigError

        try:
            parse_since(value)
        except ConfigError as err:
            raise click.BadParameter(str(err).split(": ", 1)[-1], ctx=ctx, param=param) from None
    return value


#: ``--since WHEN`` of the commands that pick sweeps by when they were made (ls, runs).
since_option = click.option(
    "--since",
    metavar="WHEN",
    callback=_checked_since,
    help="Only sweeps created since WHEN: 30d, 12h, 90m, 2w, or a date 2026-10-01.",
)

root_option = click.option(
    "--root",
    envvar="HPCTRACK_ROOT",
    default=None,
    metavar="DIR",
    help="Storage root (default: $HPCTRACK_ROOT, `root:` in ~/.config/hpctrack/config.yaml, ~/.local/share/hpctrack).",
)


#: Which module of this package defines each command: a command's module is imported when the
#: command is run (or listed by --help), so `hpctrack table` does not import what `launch` needs.
COMMAND_MODULES: Dict[str, str] = {
    **dict.fromkeys(("launch", "requeue", "resume", "cancel", "rerun"), "jobs"),
    **dict.fromkeys(("status", "ls", "show", "diff"), "views"),
    **dict.fromkeys(("tag", "note", "rm", "pin", "unpin"), "tidy"),
    **dict.fromkeys(("table", "compare", "plot", "runs"), "results"),
    **dict.fromkeys(("verify", "reindex", "gc"), "upkeep"),
    "ui": "ui",
    **dict.fromkeys(("log", "summary", "artifact"), "inside"),
    "models": "models",
}


class _LazyGroup(click.Group):
    """The ``hpctrack`` group: each command's module is imported when the command is wanted."""

    def list_commands(self, ctx: click.Context) -> List[str]:
        return sorted(set(self.commands) | set(COMMAND_MODULES))

    def get_command(self, ctx: click.Context, cmd_name: str) -> Optional[click.Command]:
        if cmd_name not in self.commands and cmd_name in COMMAND_MODULES:
            importlib.import_module(f"{__package__}.{COMMAND_MODULES[cmd_name]}")  # registers it on this group
        return super().get_command(ctx, cmd_name)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="hpctrack")
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors (also HPCTRACK_DEBUG=1).")
def cli(debug: bool) -> None:
    """Experiment tracking for HPC clusters: launch Hydra sweeps, watch them, tabulate results."""
    from .. import settings

    try:
        _DEBUG["on"] = debug or bool(settings.get("HPCTRACK_DEBUG"))
        for name in settings.SETTINGS:  # a bad value stops here, naming itself, before anything is written
            settings.get(name)
    except HpctrackError as err:
        if _DEBUG["on"]:
            raise
        fail(str(err))


def parse_jobs(text: Optional[str]) -> Optional[List[int]]:
    if text is None:
        return None
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise click.BadParameter(f"expected comma-separated job indices like 3,7, got {text!r}") from None


def split_keys(text: str) -> List[str]:
    """``seed,rep`` -> ``["seed", "rep"]``."""
    return [k for k in text.split(",") if k]
