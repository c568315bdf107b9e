"""Fixtures of the browser tests: a real ``hpctrack ui`` on a real sweep, driven by Debian's Chromium.

One storage root, one server and one browser per module (they are slow to start); each test gets
a fresh page whose console errors and Content-Security-Policy violations fail the test. A test
module imports the fixtures it uses from here (not a conftest.py: the suite's own ``conftest``
module is imported by name from the tests).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List

import pytest
from conftest import EXAMPLE

#: Debian's package; Playwright's own browser download is never used (no internet on a cluster node).
CHROMIUM = "/usr/bin/chromium"
SETUP = "bash tests/browser/setup.sh"


def fmt(value: Any) -> str:
    """A value as the page shows it, which is as ``hpctrack table`` prints it (``.4g`` floats)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value:
            return ""
        if value.is_integer() and abs(value) < 1e16:
            return str(int(value))  # JSON does not tell 2.0 from 2; the page shows both as "2"
        return f"{value:.4g}"
    return str(value)


def fmt_duration(seconds: float | None) -> str:
    """``hpctrack table``'s runtime column (m:ss or h:mm:ss)."""
    if seconds is None:
        return ""
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


@pytest.fixture(scope="session")
def chromium() -> str:
    """Chromium and Playwright, or a skip (a failure under CI=true, as a missing SLURM cluster is)."""
    problem = None
    if not os.access(CHROMIUM, os.X_OK):
        problem = f"{CHROMIUM} not found; install it with `{SETUP}` as root"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            problem = "playwright is not installed; `pip install -e '.[test]'`"
    if problem:
        if os.environ.get("CI") == "true":
            pytest.fail(problem)
        pytest.skip(problem)
    return CHROMIUM


def _cli_env(root: Path) -> Dict[str, str]:
    env = dict(os.environ)
    env["HPCTRACK_ROOT"] = str(root)
    env["XDG_CONFIG_HOME"] = str(root.parent / "xdg-config")
    env["HPCTRACK_FLUSH_INTERVAL_S"] = "0.5"
    return env


def cli_json(root: Path, *args: str) -> Any:
    """``hpctrack ARGS --format json`` on ``root``, parsed."""
    proc = subprocess.run([sys.executable, "-m", "hpctrack", *args, "--format", "json"], capture_output=True,
                          text=True, env=_cli_env(root), timeout=240)  # fmt: skip
    assert proc.returncode == 0, f"hpctrack {' '.join(args)}: {proc.stderr}"
    return json.loads(proc.stdout)


def cli(root: Path, *args: str, cwd: Path | None = None, timeout: float = 400,
        code: int = 0) -> subprocess.CompletedProcess:  # fmt: skip
    """``hpctrack ARGS`` on ``root`` (a real subprocess), checked to exit with ``code``."""
    proc = subprocess.run([sys.executable, "-m", "hpctrack", *args], capture_output=True, text=True,
                          env=_cli_env(root), cwd=cwd, timeout=timeout)  # fmt: skip
    assert proc.returncode == code, f"hpctrack {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    return proc


@dataclass
class Sweeps:
    """The module's storage root and the sweeps made in it (ids)."""

    root: Path
    work: Path
    digits: str = ""
    adam: str = ""
    #: a sweep with a failed job: optimizer.lr=-1 is refused by the example's own validation
    broken: str = ""
    #: two sweeps that vary only the seed (their group mean is one curve of all runs)
    seeds: str = ""
    seeds_b: str = ""
    extra: Dict[str, str] = field(default_factory=dict)


@pytest.fixture(scope="session")
def sweeps(tmp_path_factory: pytest.TempPathFactory, chromium: str) -> Sweeps:
    """The README's quick-start sweep (2 learning rates x 3 seeds), a smaller Adam sweep to compare, a
    sweep of two jobs of which one fails, and two sweeps of two seeds each."""
    base = tmp_path_factory.mktemp("browser")
    out = Sweeps(root=base / "root", work=base / "work")
    out.work.mkdir()
    cli(out.root, "launch", "--parallel", "2", str(EXAMPLE), "optimizer.lr=0.01,0.1", "seed=0,1,2",
        "--name", "digits", "--no-progress", cwd=out.work)  # fmt: skip
    out.digits = cli_json(out.root, "show", "digits")["id"]
    cli(out.root, "launch", "--parallel", "2", str(EXAMPLE), "optimizer.name=adam", "optimizer.lr=0.01,0.1",
        "seed=0,1", "epochs=5", "--name", "digits-adam", "--no-progress", cwd=out.work)  # fmt: skip
    out.adam = cli_json(out.root, "show", "digits-adam")["id"]
    launched = cli(out.root, "launch", "--parallel", "2", str(EXAMPLE), "optimizer.lr=0.1,-1", "epochs=2",
                   "--name", "broken", "--no-progress", cwd=out.work, code=1)  # fmt: skip
    out.broken = cli_json(out.root, "show", "broken")["id"]
    for name, lr in (("seeds", "0.1"), ("seeds-b", "0.05")):
        cli(out.root, "launch", "--parallel", "2", str(EXAMPLE), "seed=0,1", f"optimizer.lr={lr}", "epochs=2",
            "--name", name, "--no-progress", cwd=out.work)  # fmt: skip
    out.seeds, out.seeds_b = (cli_json(out.root, "show", name)["id"] for name in ("seeds", "seeds-b"))
    assert [j["state"] for j in cli_json(out.root, "status", out.broken)["jobs"]] == ["COMPLETED", "FAILED"], launched
    return out


@dataclass
class Server:
    """A running ``hpctrack ui``: the URL it printed (with its token)."""

    url: str
    proc: subprocess.Popen
    output: List[str]

    @property
    def base(self) -> str:
        return self.url.split("?", 1)[0]


@pytest.fixture(scope="session")
def ui_server(sweeps: Sweeps) -> Iterator[Server]:
    """``python -m hpctrack ui --port 0`` on the module's root, until the module ends."""
    with serve(sweeps.root) as server:
        yield server


@contextlib.contextmanager
def serve(root: Path) -> Iterator[Server]:
    """``python -m hpctrack ui --port 0`` on ``root`` while the block runs (stopped after it, if it still runs)."""
    proc = subprocess.Popen([sys.executable, "-m", "hpctrack", "ui", "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=_cli_env(root))  # fmt: skip
    lines: "queue.Queue[str | None]" = queue.Queue()
    output: List[str] = []

    def drain() -> None:  # keeps reading, so a chatty server never blocks on a full pipe
        assert proc.stdout is not None
        for line in proc.stdout:
            output.append(line)
            lines.put(line)
        lines.put(None)

    threading.Thread(target=drain, daemon=True).start()
    url = None
    try:
        while url is None:
            try:
                line = lines.get(timeout=60)
            except queue.Empty:
                raise AssertionError(f"hpctrack ui printed no URL within 60 s: {''.join(output)}") from None
            if line is None:
                raise AssertionError(f"hpctrack ui exited {proc.wait()}: {''.join(output)}")
            found = re.search(r"http://127\.0\.0\.1:\d+/\?token=[\w-]+", line)
            url = found.group(0) if found else None
        yield Server(url=url, proc=proc, output=output)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def browser(chromium: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
        try:
            yield b
        finally:
            b.close()


@dataclass
class Console:
    """What the page said on its console: errors (CSP violations are reported there too)."""

    errors: List[str] = field(default_factory=list)
    #: the answers >= 400 the page got (the console's errors do not say which URL)
    failed: List[str] = field(default_factory=list)
    #: substrings of errors a test expects (Chromium logs every 4xx answer of a fetch as an error)
    expected: List[str] = field(default_factory=list)

    def unexpected(self) -> List[str]:
        return [e for e in self.errors if not any(x in e for x in self.expected)]


@pytest.fixture
def console() -> Console:
    return Console()


@contextlib.contextmanager
def open_page(browser: Any, console: Console) -> Iterator[Any]:
    """A fresh page (its own cookies) whose console errors, page errors and answers >= 400 go to ``console``."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, device_scale_factor=1)
    pg = context.new_page()
    pg.set_default_timeout(60_000)
    pg.on("console", lambda m: console.errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    pg.on("pageerror", lambda e: console.errors.append(f"page error: {e}"))
    pg.on("response", lambda r: console.failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    try:
        yield pg
    finally:
        context.close()


@pytest.fixture
def page(browser: Any, ui_server: Server, console: Console) -> Iterator[Any]:
    """A fresh page that has logged in with the printed URL; no console error allowed."""
    with open_page(browser, console) as pg:
        pg.goto(ui_server.url)  # the token: a cookie, then a redirect to the page without it
        assert "token=" not in pg.url, pg.url
        yield pg
    assert console.unexpected() == [], (console.errors, console.failed)
