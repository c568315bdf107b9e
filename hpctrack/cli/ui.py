"""``hpctrack ui``: serve the read-only dashboard of the root (:mod:`hpctrack.ui`)."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import os
import secrets
import signal
import socket
import stat
import sys
import threading
from pathlib import Path
from typing import Any, Optional, Sequence

import click

from ._base import cli, echo, fail, handle_errors, root_option

#: Shortest ``--token`` taken: a token is all that stands between the dashboard and the network.
MIN_TOKEN_LENGTH = 16
#: Seconds a stop waits for requests in flight before it drops them. Every request is a read:
#: dropping one loses nothing, and a page that polls always has one in flight.
GRACEFUL_STOP_S = 1


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (``127.0.0.1``, ``::1``, ``localhost``)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _check_options(ctx: click.Context, host: str, token: Optional[str], root_path: str, uds: Optional[str]) -> str:
    """Usage errors before anything is bound (exit 2); returns the normalised root path."""
    if uds is not None:
        for name in ("host", "port"):
            if ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE:
                raise click.UsageError(f"--uds serves on a Unix socket: drop --{name}")
    if not is_loopback(host) and uds is None and token is None:
        raise click.UsageError(f"--host {host} is not a loopback address: anyone who can reach it could read "
                               "the root, so give --token TOKEN (a long random text) as well")  # fmt: skip
    if token is not None and (len(token) < MIN_TOKEN_LENGTH or not token.isascii() or not token.isprintable()
                              or " " in token or ";" in token):  # fmt: skip
        raise click.UsageError(f"--token must be at least {MIN_TOKEN_LENGTH} printable ASCII characters without "
                               "spaces or ';' (e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')")  # fmt: skip
    prefix = root_path.strip().rstrip("/")
    if prefix and (not prefix.startswith("/") or any(c in prefix for c in "?# \t\n\\")):
        raise click.UsageError(f"--root-path {root_path!r}: give the URL prefix the proxy serves under, "
                               "e.g. /node/host/8765")  # fmt: skip
    return prefix


def _bind_tcp(host: str, port: int) -> socket.socket:
    try:
        return socket.create_server((host.strip("[]"), port), family=_family(host), backlog=128)
    except OSError as err:
        if err.errno in (98, 48):  # EADDRINUSE (Linux, macOS)
            fail(f"port {port} on {host} is in use (another hpctrack ui?): pick another with --port, "
                 "or --port 0 for a free one")  # fmt: skip
        fail(f"cannot listen on {host}:{port}: {err.strerror or err}")
        raise  # not reached: fail exits


def _family(host: str) -> socket.AddressFamily:
    try:
        return socket.AF_INET6 if ipaddress.ip_address(host.strip("[]")).version == 6 else socket.AF_INET
    except ValueError:  # a name: its first address decides
        try:
            return socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)[0][0]
        except OSError:
            fail(f"--host {host}: no such host name on this machine")
            raise


def _bind_unix(path: Path) -> socket.socket:
    """A Unix socket at ``path`` that only this user can connect to (mode 0600)."""
    if path.exists() or path.is_symlink():
        if not stat.S_ISSOCK(path.lstat().st_mode):
            fail(f"--uds {path}: a file that is not a socket is there; give another path")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(path))
        except OSError:
            path.unlink()  # a socket nobody listens on: left by a dashboard that was killed
        else:
            probe.close()
            fail(f"--uds {path} is in use by a running server; give another path")
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old = os.umask(0o177)
    try:
        sock.bind(str(path))
    except OSError as err:
        sock.close()
        fail(f"cannot listen on {path}: {err.strerror or err}")
    finally:
        os.umask(old)
    os.chmod(path, 0o600)
    sock.listen(128)
    return sock


class _Stopped(Exception):
    """SIGTERM: the server has shut down, the command ends."""


def _stop(signum: int, frame: Any) -> None:
    raise _Stopped()


class _DroppedReads(logging.Filter):
    """uvicorn's lines about the requests a stop cancels (an error and a traceback each), counted instead.

    They are reads: dropping them at a stop is expected and loses nothing.
    """

    def __init__(self) -> None:
        super().__init__()
        self.dropped = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if str(record.msg).startswith("Cancel %s running task"):
            count = record.args[0] if isinstance(record.args, tuple) and record.args else 1
            self.dropped = count if isinstance(count, int) else 1
            return False
        return not (record.exc_info and isinstance(record.exc_info[1], asyncio.CancelledError))


def _reads_still_running() -> bool:
    """Whether a request's worker thread outlived the server (a read stuck on a hung file server)."""
    main = threading.main_thread()
    return any(t.is_alive() and not t.daemon and t is not main for t in threading.enumerate())


@cli.command("ui")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (loopback by default).")
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True, help="0: a free port.")
@click.option("--open", "open_browser", is_flag=True, help="Open the dashboard in a browser.")
@click.option("--token", default=None, metavar="TOKEN", help="The access token (default: a new random one).")
@click.option(
    "--allow-host",
    "allow_hosts",
    multiple=True,
    metavar="NAME",
    help="Accept this Host header name too (the name a proxy or a browser uses); repeatable.",
)
@click.option(
    "--root-path",
    default="",
    metavar="PREFIX",
    help="URL prefix a proxy serves the dashboard under (Open OnDemand, jupyter-server-proxy).",
)
@click.option("--uds", default=None, metavar="PATH", help="Listen on a Unix socket (mode 0600) instead of a port.")
@root_option
@handle_errors
@click.pass_context
def ui_command(
    ctx: click.Context,
    host: str,
    port: int,
    open_browser: bool,
    token: Optional[str],
    allow_hosts: Sequence[str],
    root_path: str,
    uds: Optional[str],
    root: Optional[str],
) -> None:
    """Serve a read-only web dashboard of the root's sweeps until stopped (Ctrl-C).

    Prints the URL with its access token. It listens on 127.0.0.1 only unless --host says
    otherwise (then --token is required); from a laptop: ssh -L 8765:localhost:8765 HOST.
    """
    from ..config import resolve_root

    prefix = _check_options(ctx, host, token, root_path, uds)
    try:
        import uvicorn

        from ..ui import create_app
    except ImportError as err:
        fail(f"hpctrack ui needs the dashboard's packages ({err.name or err} is missing): pip install 'hpctrack[ui]'")
        return
    root_dir = resolve_root(root)
    if not root_dir.is_dir():
        echo(f"note: no root at {root_dir} yet: the dashboard lists no sweep until one is launched", err=True)
    sock = _bind_unix(Path(uds).absolute()) if uds is not None else _bind_tcp(host, port)
    token = token or secrets.token_urlsafe(32)
    bound_port = sock.getsockname()[1] if uds is None else 8765
    hosts = [*allow_hosts] + ([] if uds is not None else [f"[{host}]" if ":" in host else host])
    if host in ("0.0.0.0", "::"):  # every address: the machine's own name is how others reach it
        hosts.append(socket.gethostname())
    app = create_app(root_dir, token=token, allowed_hosts=hosts, root_path=prefix,
                     cookie_name=f"hpctrack_ui_{bound_port if uds is None else 'uds'}")  # fmt: skip
    _announce(host, bound_port, token, prefix, uds, open_browser)
    # The first page's answers would otherwise wait for pandas, h5py and pyarrow to import (0.4 s).
    threading.Thread(target=_import_readers, name="hpctrack-ui-imports", daemon=True).start()
    config = uvicorn.Config(app, log_level="warning", access_log=False, root_path=prefix, proxy_headers=False,
                            server_header=False, lifespan="off", timeout_graceful_shutdown=GRACEFUL_STOP_S)  # fmt: skip
    dropped = _DroppedReads()
    logging.getLogger("uvicorn.error").addFilter(dropped)  # after Config: it configures uvicorn's logging
    # uvicorn stops on SIGTERM and SIGINT, then raises the signal again: SIGINT becomes Ctrl-C's
    # "interrupted" (exit 130), SIGTERM this handler's clean exit, the socket file removed either way.
    previous = signal.signal(signal.SIGTERM, _stop)
    code = 0
    try:
        uvicorn.Server(config).run(sockets=[sock])
    except _Stopped:
        said = f" ({dropped.dropped} request(s) in flight dropped)" if dropped.dropped else ""
        echo(f"hpctrack ui: stopped{said}", err=True)
    except KeyboardInterrupt:
        echo("interrupted", err=True)
        code = 130
    finally:
        signal.signal(signal.SIGTERM, previous)
        sock.close()
        if uds is not None:
            Path(uds).unlink(missing_ok=True)
    if _reads_still_running():
        # The interpreter would wait for them (worker threads are joined at exit), however long a
        # hung file server takes; they only read, so nothing is lost by leaving now.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    if code:
        sys.exit(code)


#: What the first answers need (hpctrack imports these where they are used, not at start).
WARM_IMPORTS = ("numpy", "pandas", "pyarrow", "pyarrow.compute", "h5py", "hpctrack.sweep", "hpctrack.aggregate",
                "hpctrack.index", "hpctrack.ui.series", "hpctrack.ui.overview")  # fmt: skip


def _import_readers() -> None:
    """Import what the API's answers read with, while the server waits for its first request."""
    import importlib

    for name in WARM_IMPORTS:
        try:
            importlib.import_module(name)
        except Exception:  # the request that needs it says what is missing
            pass


def _announce(host: str, port: int, token: str, prefix: str, uds: Optional[str], open_browser: bool) -> None:
    """The URL with its token (flushed at once: scripts read it), and how to reach it from elsewhere."""
    here = socket.gethostname()
    if uds is not None:
        url = f"http://localhost:{port}{prefix}/?token={token}"
        echo(f"hpctrack ui: serving on the Unix socket {Path(uds).absolute()}")
        echo(f"forward it from your laptop: ssh -L {port}:{Path(uds).absolute()} {here}   then open:")
    else:
        shown = socket.gethostname() if host in ("0.0.0.0", "::") else (f"[{host}]" if ":" in host else host)
        url = f"http://{shown}:{port}{prefix}/?token={token}"
        if not is_loopback(host):
            echo(f"warning: listening on {host}: anyone who can reach port {port} and has the token can read "
                 "the root", err=True)  # fmt: skip
        echo("hpctrack ui: open this URL (it carries the access token):")
    echo(f"  {url}")
    if uds is None and is_loopback(host) and (os.environ.get("SSH_CONNECTION") or os.environ.get("SLURM_JOB_ID")):
        echo(f"from your laptop: ssh -L {port}:localhost:{port} {here}   then open the URL above there")
    sys.stdout.flush()
    if open_browser:
        import webbrowser

        try:
            opened = webbrowser.open(url)
        except webbrowser.Error:
            opened = False
        if not opened:  # a login node: no display, no browser; the URL above is the way in
            echo("note: could not open a browser here (no display?): open the URL above yourself", err=True)
