"""Helpers of the dashboard tests: a real ``python -m hpctrack ui`` subprocess, asked over HTTP (http.client).

Not a conftest.py: tests/conftest.py is imported as ``conftest`` already. Test modules import
what they use from here (fixtures included).
"""

from __future__ import annotations

import contextlib
import http.client
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Tuple

TOKEN = "test-token-0123456789abcdef"


def env_for(root: Path) -> Dict[str, str]:
    """The environment of a process using ``root`` (and no user config)."""
    return {**os.environ, "HPCTRACK_ROOT": str(root), "XDG_CONFIG_HOME": str(root.parent / "xdg-config"),
            "HPCTRACK_FLUSH_INTERVAL_S": "0.5"}  # fmt: skip


def cli(root: Path, *args: str, cwd: Optional[Path] = None, timeout: float = 240) -> subprocess.CompletedProcess:
    """``python -m hpctrack ARGS`` on ``root``, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "hpctrack", *args], capture_output=True, text=True,
                          timeout=timeout, env=env_for(root), cwd=cwd)  # fmt: skip


@dataclass
class Reply:
    status: int
    headers: Dict[str, str]
    body: bytes

    def json(self):
        import json

        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode()


@dataclass
class UIServer:
    """A running ``hpctrack ui`` and how to ask it."""

    proc: subprocess.Popen
    url: str  # as printed, with the token
    lines: List[str] = field(default_factory=list)
    uds: Optional[str] = None

    @property
    def port(self) -> int:
        return int(self.url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])

    def request(self, path: str, *, method: str = "GET", headers: Optional[Dict[str, str]] = None,
                token: Optional[str] = TOKEN, host: Optional[str] = None) -> Reply:  # fmt: skip
        """``method path`` (relative to the server's root, no leading ``/`` needed), with the token as Bearer."""
        if self.uds is not None:
            conn: http.client.HTTPConnection = _UnixConnection(self.uds)
        else:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        sent = dict(headers or {})
        if token is not None:
            sent.setdefault("Authorization", f"Bearer {token}")
        conn.putrequest(method, "/" + path.lstrip("/"), skip_host=True, skip_accept_encoding=True)
        conn.putheader("Host", host if host is not None else f"127.0.0.1:{self.port if self.uds is None else 8765}")
        for key, value in sent.items():
            conn.putheader(key, value)
        conn.endheaders()
        resp = conn.getresponse()
        body = resp.read()
        reply = Reply(resp.status, {k.lower(): v for k, v in resp.getheaders()}, body)
        conn.close()
        return reply

    def stop(self, sig: int = signal.SIGTERM) -> Tuple[int, str]:
        """Send ``sig``; the exit code and stderr."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"hpctrack ui did not stop on signal {sig} within 60 s") from None
        err = self.proc.stderr.read() if self.proc.stderr else ""
        return self.proc.returncode, err


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=120)
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


def _pump(out, into: "queue.Queue[Optional[str]]") -> None:
    """Every line the server prints, then None at its end (read in a thread: no pipe fills up)."""
    for line in out:
        into.put(line)
    into.put(None)


def start_ui(root: Path, *args: str, token: Optional[str] = TOKEN, env: Optional[Dict[str, str]] = None) -> UIServer:
    """``python -m hpctrack ui --port 0 ARGS`` on ``root``, once it printed its URL (``env``: its environment)."""
    extra = ["--token", token] if token is not None else []
    port = [] if "--uds" in args else ["--port", "0"]
    proc = subprocess.Popen([sys.executable, "-m", "hpctrack", "ui", *port, *extra, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env if env is not None else env_for(root))  # fmt: skip
    lines: List[str] = []
    got: "queue.Queue[Optional[str]]" = queue.Queue()
    assert proc.stdout is not None
    threading.Thread(target=_pump, args=(proc.stdout, got), daemon=True).start()
    while True:
        try:
            line = got.get(timeout=120)
        except queue.Empty:
            proc.kill()
            raise AssertionError(f"hpctrack ui printed no URL within 120 s: {lines}") from None
        if line is None:
            proc.wait(timeout=60)
            err = proc.stderr.read() if proc.stderr else ""
            raise AssertionError(f"hpctrack ui exited {proc.returncode} before printing its URL: {lines} {err}")
        lines.append(line.rstrip("\n"))
        if line.strip().startswith("http://"):
            break
    uds = args[args.index("--uds") + 1] if "--uds" in args else None
    return UIServer(proc, lines[-1].strip(), lines, uds)


@contextlib.contextmanager
def running_servers() -> Iterator[Callable[..., UIServer]]:
    """``start(root, *args)`` starts a server with :func:`start_ui`; every one is stopped on exit."""
    started: List[UIServer] = []

    def start(root: Path, *args: str, **kwargs) -> UIServer:
        server = start_ui(root, *args, **kwargs)
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()
