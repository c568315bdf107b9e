"""What runs in each job of an ``hpctrack launch --exec`` sweep: its config, then its command.

:class:`CommandJob` is the sweep's job function (pickled once per sweep into ``job.pkl``,
as a Hydra sweep's is). In the job, after the entry point opened the run, it composes the
job's config from the sweep's YAML and the job's overrides (Hydra's override rules, without
a Hydra app), records it as the run's params, fills the command's ``${...}`` from it, and
runs the command with ``/bin/sh -c`` in the run's directory:

- each ``${...}`` becomes its value as (part of) one shell word, quoted for the shell
  whatever it holds (spaces, ``;``, quotes, ``$(...)``): a value reaches the program as text
  and is never run. The rest of the command is the shell's (pipes, ``&&``, redirections,
  ``$VARS``); ``\\${`` is a literal ``${``;
- the command runs in its own process group. SIGINT or SIGTERM to the job (a cancel,
  ``scancel``, a stopped local sweep) reaches the group as SIGTERM; SIGUSR1 and SIGUSR2
  (SLURM's time-limit or preemption signal) reach it as they are. The command then has
  :data:`TERM_GRACE_S` (SIGTERM), :data:`INTERRUPT_GRACE_S` (SIGINT: a local cancel, after
  which submitit kills the job's process) or :data:`REQUEUE_GRACE_S` (SIGUSR1/2: time to save
  its state) to end before the group is killed; the run's own handling of the signal (its
  flush; a requeue) comes after. What the command leaves running in its group when it ends
  is ended with it;
- its stdout goes to the job's stdout; its stderr to the job's stderr, and its last lines
  are the run's error when it fails: exit code 0 completes the run, any other fails it
  (:class:`CommandFailed`, with the exit code), and a command ended by a cancel is
  interrupted (:class:`CommandInterrupted`);
- ``--metrics-file`` is followed while it runs and read once more when it has ended
  (:mod:`hpctrack.metricsfile`); ``hpctrack log`` calls reach the run through its relay.
"""

from __future__ import annotations

import copy
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Dict, List, Optional

from ..errors import ConfigError

if TYPE_CHECKING:
    from omegaconf import DictConfig

__all__ = ["CommandJob", "CommandFailed", "CommandInterrupted", "check_command", "check_template", "compose_config",
           "render_command", "CODE_DIR_ENV", "SHELL"]  # fmt: skip

SHELL = "/bin/sh"
#: The job's code directory, for the command: the sweep's code snapshot of the launch directory, or that directory.
CODE_DIR_ENV = "HPCTRACK_CODE_DIR"
#: Seconds between two looks at the command (and its metrics file) while it runs.
POLL_S = 0.2
#: After a cancel was passed on (SIGTERM), how long the command has to end before its group is killed.
TERM_GRACE_S = 10.0
#: The same after SIGINT: a local cancel, which kills the job's own process a second later (submitit).
INTERRUPT_GRACE_S = 0.5
#: After SLURM's time-limit or preemption signal was passed on, how long the command has to save its
#: state and end before its group is killed and the job requeues (SLURM's warning comes signal_delay_s,
#: default 120 s, before the limit).
REQUEUE_GRACE_S = 60.0
#: The end of the command's stderr kept for the run's error.
STDERR_TAIL_BYTES = 8192
STDERR_TAIL_LINES = 20


class CommandFailed(RuntimeError):
    """The command of an ``--exec`` job exited with another code than 0 (the message has its stderr's end)."""


class CommandInterrupted(KeyboardInterrupt):
    """The command of an ``--exec`` job was ended by a cancel passed on to it."""


# -- the job's config --------------------------------------------------------------------------------


def compose_config(base: Optional[Dict[str, Any]], overrides: List[str], *, strict: bool) -> "DictConfig":
    """The job's config: ``base`` (the ``--config`` YAML) with ``overrides`` applied by Hydra's rules.

    ``strict`` (a YAML was given): as in a Hydra app, an override of a key the YAML does not
    have needs ``+key=...``. Without a YAML every ``key=value`` adds its key.

    Raises
    ------
    ConfigError
        An override does not apply (an unknown key under ``strict``, a ``~key`` that is not
        there, a config-group override); the message names it.
    """
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException
    from omegaconf import OmegaConf

    cfg = OmegaConf.create(copy.deepcopy(base) if base else {})
    OmegaConf.set_struct(cfg, strict)
    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
        ConfigLoaderImpl._apply_overrides_to_config(parsed, cfg)
    except HydraException as err:
        raise ConfigError(_override_error(err, base, strict)) from None
    OmegaConf.set_struct(cfg, False)
    return cfg


def _override_error(err: BaseException, base: Optional[Dict[str, Any]], strict: bool) -> str:
    import difflib

    text = " ".join(str(err).split())
    if text.startswith("Could not override '"):
        key = text.split("'")[1]
        close = difflib.get_close_matches(key, _keys(base or {}), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"unknown config key {key!r}: the --config YAML has no such key{hint}; to add it write +{key}=VALUE"
    cause = err.__cause__
    detail = " ".join(str(cause).split()).split(" full_key:")[0] if cause is not None else ""
    return f"{text}{f': {detail}' if detail and detail not in text else ''}"


def _keys(data: Dict[str, Any], prefix: str = "") -> List[str]:
    out = []
    for key, value in data.items():
        out.append(f"{prefix}{key}")
        if isinstance(value, dict):
            out.extend(_keys(value, f"{prefix}{key}."))
    return out


# -- the command line ----------------------------------------------------------------------------------


def _pieces(template: str) -> List[Any]:
    """The command as literal text (str) and interpolations (``("${...}",)``), in order.

    Split with OmegaConf's own grammar, so ``${a.b}``, ``${oc.env:X,${y}}`` and the
    escapes ``\\${`` (a literal ``${``) mean what they mean in a config value.

    Raises
    ------
    ConfigError
        The command is not valid OmegaConf text (an unclosed ``${``).
    """
    from omegaconf import grammar_parser
    from omegaconf.errors import GrammarParseError
    from omegaconf.grammar.gen.OmegaConfGrammarLexer import OmegaConfGrammarLexer as Lexer

    try:
        tree = grammar_parser.parse(template, parser_rule="text", lexer_mode="DEFAULT_MODE")
    except GrammarParseError as err:
        raise ConfigError(
            f"--exec {template!r}: {' '.join(str(err).split())} (a literal ${{ is written \\${{)"
        ) from None
    pieces: List[Any] = []
    for child in tree.getChildren():
        symbol = getattr(child, "symbol", None)
        if symbol is None:  # an interpolation
            pieces.append((template[child.start.start : child.stop.stop + 1],))
            continue
        text = template[symbol.start : symbol.stop + 1]
        if symbol.type == Lexer.ESC_INTER:
            text = "${"
        elif symbol.type == Lexer.TOP_ESC:
            text = text[: len(text) // 2]
        if pieces and isinstance(pieces[-1], str):
            pieces[-1] += text
        else:
            pieces.append(text)
    return pieces


def check_template(template: str) -> None:
    """Refuse a command that is not valid OmegaConf text (an unclosed ``${``): a one-line ConfigError."""
    _pieces(template)


def _shell_context(text: str, state: Optional[str]) -> Optional[str]:
    """The shell's quoting after ``text``, starting in ``state`` (None, ``"'"`` or ``'"'``)."""
    i = 0
    while i < len(text):
        char = text[i]
        if state == "'":
            if char == "'":
                state = None
        elif state == '"':
            if char == "\\":
                i += 1
            elif char == '"':
                state = None
        elif char == "\\":
            i += 1
        elif char in ("'", '"'):
            state = char
        i += 1
    return state


def _quoted(value: str, state: Optional[str]) -> str:
    """``value`` as shell text that means exactly ``value``, where the command's quoting is ``state``."""
    word = shlex.quote(value)
    if state is None:
        return word
    return f"{state}{word}{state}"  # close the command's own quotes, add the value quoted, open them again


def render_command(template: str, cfg: "DictConfig") -> str:
    """The command with every ``${...}`` replaced by its value in ``cfg``, quoted for ``/bin/sh``.

    Raises
    ------
    omegaconf.errors.OmegaConfBaseException
        An interpolation does not resolve (an unknown key, a resolver's error).
    """
    from omegaconf import OmegaConf, open_dict

    pieces = _pieces(template)
    spans = [p[0] for p in pieces if isinstance(p, tuple)]
    if not spans:
        return "".join(pieces)
    # Each interpolation is resolved as a config value of this config would be: in a copy, under a key of its own.
    scratch = copy.deepcopy(cfg)
    OmegaConf.set_readonly(scratch, False)
    with open_dict(scratch):
        scratch["__hpctrack_exec__"] = {str(i): span for i, span in enumerate(spans)}
    values = [scratch["__hpctrack_exec__"][str(i)] for i in range(len(spans))]
    out, state, n = [], None, 0
    for piece in pieces:
        if isinstance(piece, str):
            out.append(piece)
            state = _shell_context(piece, state)
        else:
            value = values[n]
            n += 1
            text = OmegaConf.to_yaml(value).strip() if OmegaConf.is_config(value) else str(value)
            out.append(_quoted(text, state))
    return "".join(out)


def check_command(template: str, cfg: "DictConfig", job: int) -> None:
    """Refuse at launch a command that cannot be filled for job ``job``: an unknown key, a malformed ``${``.

    A resolver that fails here (``${oc.env:VAR}`` of a variable set only on the nodes)
    is left for the job to resolve.
    """
    from omegaconf.errors import (
        GrammarParseError,
        InterpolationKeyError,
        InterpolationResolutionError,
        InterpolationToMissingValueError,
    )

    try:
        render_command(template, cfg)
    except (InterpolationKeyError, GrammarParseError, InterpolationToMissingValueError) as err:
        message = " ".join(str(err).split()).split(" full_key:")[0]
        raise ConfigError(f"--exec: job {job}: {message} (the command's ${{...}} name keys of the job's config: "
                          f"{', '.join(sorted(str(k) for k in cfg.keys())) or 'none'})") from None  # fmt: skip
    except InterpolationResolutionError:
        pass


# -- running it -------------------------------------------------------------------------------------------


class _StderrTail(threading.Thread):
    """Copies the command's stderr to the job's, keeping its end for the run's error."""

    def __init__(self, pipe: Any) -> None:
        super().__init__(name="hpctrack-stderr", daemon=True)
        self.pipe = pipe
        self.tail = b""

    def run(self) -> None:
        fd = self.pipe.fileno()
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            self.tail = (self.tail + chunk)[-STDERR_TAIL_BYTES:]
            try:
                os.write(2, chunk)
            except OSError:
                pass

    def lines(self) -> List[str]:
        text = self.tail.decode("utf-8", errors="replace")
        return [line.rstrip() for line in text.splitlines() if line.strip()][-STDERR_TAIL_LINES:]


#: The job's signals passed on to the command, and what the command gets.
_PASSED_ON = {"SIGINT": "SIGTERM", "SIGTERM": "SIGTERM", "SIGUSR1": "SIGUSR1", "SIGUSR2": "SIGUSR2"}


class _Forwarder:
    """Passes the job's signals on to the command's process group, and their own handling on after it ended."""

    def __init__(self) -> None:
        self.proc: Optional[subprocess.Popen] = None
        self.received: List[int] = []
        self.previous: Dict[int, Any] = {}
        self.deadline: Optional[float] = None
        self.killed = False

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for name in _PASSED_ON:
            signum = getattr(signal, name, None)
            if signum is not None:
                self.previous[signum] = signal.signal(signum, self._on_signal)

    def restore(self) -> None:
        for signum, handler in self.previous.items():
            if signal.getsignal(signum) == self._on_signal:
                signal.signal(signum, handler if handler is not None else signal.SIG_DFL)

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.received.append(signum)
        self.pass_on(signum)

    def pass_on(self, signum: int) -> None:
        name = signal.Signals(signum).name
        grace = {"SIGUSR1": REQUEUE_GRACE_S, "SIGUSR2": REQUEUE_GRACE_S, "SIGINT": INTERRUPT_GRACE_S}.get(
            name, TERM_GRACE_S
        )
        end = time.monotonic() + grace
        self.deadline = end if self.deadline is None else min(self.deadline, end)
        if self.proc is not None:
            self.signal_group(getattr(signal, _PASSED_ON[name]))

    def signal_group(self, signum: int) -> None:
        assert self.proc is not None
        try:
            os.killpg(self.proc.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass

    def cancelled(self) -> Optional[str]:
        """The name of the cancel (SIGINT, SIGTERM) the job received, if any."""
        for signum in self.received:
            if signum in (signal.SIGINT, signal.SIGTERM):
                return signal.Signals(signum).name
        return None

    def deliver(self) -> None:
        """Each signal received, to the handler that was there before (the run's: its flush, a requeue)."""
        from .._signals import deliver

        for signum in self.received:
            handler = self.previous.get(signum, signal.SIG_DFL)
            if signum == signal.SIGINT and handler is signal.default_int_handler:
                continue  # raised below as the command's interruption, with what ended it
            deliver(signum, handler)


def run_command(
    argv: List[str],
    *,
    cwd: str,
    env: Dict[str, str],
    run: Any,
    metrics: Any = None,
    info: Optional[Dict[str, Any]] = None,
) -> int:
    """Run ``argv`` for ``run`` until it ends; 0, or raise :class:`CommandFailed`/:class:`CommandInterrupted`.

    ``metrics``: a :class:`hpctrack.metricsfile.MetricsFileFollower`, polled while it runs
    and once more at its end. ``info``: what the run records under ``info["exec"]``, to
    which the exit code is added.
    """
    forwarder = _Forwarder()
    forwarder.install()
    tail: Optional[_StderrTail] = None
    try:
        signalled = getattr(run, "_signal", None)
        if signalled in ("SIGTERM", "SIGINT") or forwarder.cancelled():
            raise CommandInterrupted(f"cancelled ({signalled or forwarder.cancelled()}) before the command started")
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                start_new_session=True)  # fmt: skip
        forwarder.proc = proc
        for signum in forwarder.received:  # what arrived while it started
            forwarder.pass_on(signum)
        tail = _StderrTail(proc.stderr)
        tail.start()
        code = _wait(proc, forwarder, metrics)
    finally:
        if forwarder.proc is not None:
            forwarder.signal_group(signal.SIGKILL if forwarder.killed else signal.SIGTERM)  # what it left running
        forwarder.restore()
    if tail is not None:
        tail.join(timeout=2.0)
    if metrics is not None:
        metrics.poll(final=True)
    run._note_info("exec", {**(info or {}), "exit_code": code})
    forwarder.deliver()
    cancel = forwarder.cancelled()
    if cancel is not None:  # even one that exits 0 on it has not done its work
        raise CommandInterrupted(f"the command ended on the cancel ({cancel}, passed on as SIGTERM): "
                                 f"{_exit_text(code)}")  # fmt: skip
    if code != 0:
        raise CommandFailed(_failure(code, tail.lines() if tail is not None else []))
    return 0


def _wait(proc: subprocess.Popen, forwarder: _Forwarder, metrics: Any) -> int:
    while True:
        try:
            return proc.wait(timeout=POLL_S)
        except subprocess.TimeoutExpired:
            pass
        if metrics is not None:
            try:
                metrics.poll()
            except OSError as err:  # read again at the next look
                print(f"hpctrack: reading the metrics file failed: {err}", file=sys.stderr, flush=True)
        if forwarder.deadline is not None and time.monotonic() > forwarder.deadline and not forwarder.killed:
            forwarder.killed = True
            print("hpctrack: the command did not end in time after the signal: killing it", file=sys.stderr,
                  flush=True)  # fmt: skip
            forwarder.signal_group(signal.SIGKILL)


def _exit_text(code: int) -> str:
    from .._signals import signal_name

    if code < 0:
        return f"killed by {signal_name(-code)}"
    if 128 < code < 160:  # the shell's exit code for a command a signal ended
        return f"exit code {code} ({signal_name(code - 128)}?)"
    return f"exit code {code}"


def _failure(code: int, lines: List[str]) -> str:
    """The run's error: one line with the exit code and stderr's last line, then stderr's last lines."""
    first = f"the command failed with {_exit_text(code)}"
    if not lines:
        return f"{first} (nothing on stderr)"
    return f"{first}: {lines[-1].strip()}\nstderr, last lines:\n" + "\n".join(lines)


def _path_with_hpctrack(path: str) -> str:
    """``PATH`` on which ``hpctrack`` (for ``hpctrack log``) is the job's own: its environment's ``bin``
    is added at the end when ``hpctrack`` is not found before it (a virtualenv used without activating it)."""
    import shutil

    here = os.path.dirname(sys.executable)
    if not os.path.exists(os.path.join(here, "hpctrack")) or shutil.which("hpctrack", path=path):
        return path
    return f"{path}{os.pathsep}{here}" if path else here


# -- the job function -------------------------------------------------------------------------------------


@dataclass
class CommandJob:
    """The job function of an ``--exec`` sweep: ``job(index)`` runs job ``index`` in its open run.

    Parameters
    ----------
    template:
        The command, with ``${...}`` naming config keys.
    jobs:
        Every job's overrides (real values), by index.
    base:
        The ``--config`` YAML's contents (unresolved), or None.
    metrics_file:
        The file the command appends rows to, relative to the run's directory; None: none.
    launch_dir:
        Where the sweep was launched: the code directory when there is no snapshot.
    """

    template: str
    jobs: List[List[str]]
    base: Optional[Dict[str, Any]] = None
    metrics_file: Optional[str] = None
    launch_dir: str = field(default_factory=os.getcwd)
    code_dir: Optional[str] = None  # set by with_code: the launch directory's copy in the snapshot

    def with_code(self, code: Dict[str, Any], *, script: bool = True) -> "CommandJob":
        """This job running in the code snapshot ``code`` (``hpctrack.snapshot``) of the launch directory."""
        job = copy.copy(self)
        job.code_dir = os.path.normpath(os.path.join(code["path"], code.get("script") or "."))
        return job

    def __call__(self, index: int) -> int:
        from ..metricsfile import MetricsFileFollower
        from ..run import start_run
        from ..secrets import mask_config

        cfg = compose_config(self.base, self.jobs[index], strict=self.base is not None)
        run = start_run(cfg)  # the job's run, opened by the entry point; the config becomes its params
        line = render_command(self.template, cfg)
        code_dir = self.code_dir or self.launch_dir
        try:
            from omegaconf import OmegaConf

            shown = render_command(self.template, OmegaConf.create(mask_config(cfg)))
        except Exception:  # a value the masked config cannot resolve: the template says enough
            shown = self.template
        info = {"command": shown, "template": self.template, "shell": SHELL, "code_dir": code_dir,
                "metrics_file": self.metrics_file}  # fmt: skip
        run._note_info("exec", info)
        env = {**os.environ, CODE_DIR_ENV: code_dir, "PATH": _path_with_hpctrack(os.environ.get("PATH", ""))}
        metrics = None
        if self.metrics_file:
            metrics = MetricsFileFollower(run.dir / self.metrics_file, run, resume=run.attempt > 1)
        return run_command([SHELL, "-c", line], cwd=str(run.dir), env=env, run=run, metrics=metrics, info=info)
