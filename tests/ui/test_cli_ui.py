"""``hpctrack ui`` as a command: its options, its one-line errors, stopping, a Unix socket, a proxy's prefix.

Each case runs the real ``python -m hpctrack ui`` on a small sweep written with the library's
own writers (``tests/synthetic.py``).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from synthetic import ended_sweep
from uiserver import TOKEN, cli, env_for, running_servers, start_ui

from hpctrack.index import INDEX_FILE
from hpctrack.manifest import update_manifest
from hpctrack.ui.app import STATIC_DIR

pytestmark = pytest.mark.ui


@pytest.fixture
def ui_factory():
    with running_servers() as start:
        yield start


@pytest.fixture
def root(tmp_path) -> Path:
    root = tmp_path / "root"
    ended_sweep(root, 3, name="small")
    return root


def _one_error_line(proc: subprocess.CompletedProcess) -> str:
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), proc.stderr
    return lines[0]


@pytest.mark.parametrize("host", ["0.0.0.0", "192.0.2.1", "example.org", "::"])
def test_a_non_loopback_host_without_a_token_is_refused_before_binding(root, host):
    proc = cli(root, "ui", "--host", host, "--port", "0", timeout=60)
    assert proc.returncode == 2 and proc.stdout == ""
    line = _one_error_line(proc)
    assert "--token" in line and host in line


@pytest.mark.parametrize("token", ["short", "has a space in it 0123", "x" * 15])
def test_a_weak_token_is_a_usage_error(root, token):
    proc = cli(root, "ui", "--token", token, "--port", "0", timeout=60)
    assert proc.returncode == 2 and "--token" in _one_error_line(proc)


def test_a_port_in_use_is_one_line(root):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    try:
        port = taken.getsockname()[1]
        proc = cli(root, "ui", "--port", str(port), timeout=60)
    finally:
        taken.close()
    assert proc.returncode == 1
    line = _one_error_line(proc)
    assert f"port {port}" in line and "in use" in line and "--port 0" in line


def test_without_the_ui_extra_it_says_what_to_install(root):
    code = "import sys; sys.modules['starlette'] = None; from hpctrack.cli import main; main(['ui', '--port', '0'])"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env_for(root), timeout=60)
    assert proc.returncode == 1
    assert "pip install 'hpctrack[ui]'" in _one_error_line(proc)


def test_port_0_prints_the_real_url_with_its_token_and_it_works(root, ui_factory):
    ui = ui_factory(root, token=None)
    assert ui.port != 0 and ui.url.startswith(f"http://127.0.0.1:{ui.port}/?token=")
    token = ui.url.split("token=", 1)[1]
    assert len(token) >= 32
    entered = ui.request(f"?token={token}", token=None)
    assert entered.status == 303
    data = ui.request("api/sweeps", token=token).json()
    assert [s["name"] for s in data["sweeps"]] == ["small"]


def test_open_without_a_browser_says_so(root, ui_factory):
    """No display and no console browser (a login node): --open cannot open anything, and says so once."""
    env = {k: v for k, v in env_for(root).items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "BROWSER")}
    env["PATH"] = os.path.dirname(sys.executable)  # no lynx, w3m, www-browser... to fall back on
    ui = ui_factory(root, "--open", env=env)
    assert ui.url.startswith(f"http://127.0.0.1:{ui.port}/?token=")
    assert ui.request("api/stamp").status == 200  # it serves all the same
    returncode, err = ui.stop()
    said = [line for line in err.splitlines() if "browser" in line]
    assert returncode == 0 and len(said) == 1, err
    assert "could not open a browser" in said[0] and "open the URL above" in said[0]


def test_two_dashboards_keep_their_own_cookies(root, ui_factory):
    a, b = ui_factory(root), ui_factory(root)
    names = {ui.request(f"?token={TOKEN}", token=None).headers["set-cookie"].split("=", 1)[0] for ui in (a, b)}
    assert names == {f"hpctrack_ui_{a.port}", f"hpctrack_ui_{b.port}"}


@pytest.mark.parametrize("sig, code, said", [(signal.SIGTERM, 0, "stopped"), (signal.SIGINT, 130, "interrupted")])
def test_a_signal_stops_it_cleanly(root, sig, code, said):
    ui = start_ui(root)
    assert ui.request("api/sweeps").status == 200
    returncode, err = ui.stop(sig)
    assert returncode == code and said in err and "Traceback" not in err, err
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", ui.port), timeout=5).close()


def test_a_log_that_is_not_a_regular_file_is_404_at_once(tmp_path):
    """A job's log path naming a FIFO (or a device) must not hold a reader until someone writes to it."""
    root = tmp_path / "root"
    manifest = ended_sweep(root, 2, name="small")
    fifo = manifest.run_path(0) / "stdout.fifo"
    os.mkfifo(fifo)

    def log_to_fifo(m):
        m.jobs[0].stdout = str(fifo)

    update_manifest(manifest.path, log_to_fifo)
    ui = start_ui(root)
    try:
        reply = ui.request(f"api/runs/{manifest.id}/0/log?stream=stdout")
        assert reply.status == 404 and "not a regular file" in reply.json()["error"], reply.body
    finally:
        returncode, err = ui.stop()
    assert returncode == 0, err


def test_sigterm_stops_it_while_a_read_is_still_in_flight(tmp_path):
    """A read that does not end (a sweep's index on a file server that hangs; here a FIFO no one
    writes to) must not keep a stopped dashboard alive: it exits while the read still waits."""
    root = tmp_path / "root"
    manifest = ended_sweep(root, 2, name="small")
    path = manifest.path / INDEX_FILE
    path.unlink()
    os.mkfifo(path)
    fifo = path
    ui = start_ui(root)
    held = socket.create_connection(("127.0.0.1", ui.port), timeout=120)
    try:
        held.sendall(f"GET /api/sweeps/{manifest.id} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     f"Authorization: Bearer {TOKEN}\r\n\r\n".encode())  # fmt: skip
        assert ui.request("api/stamp").status == 200  # served beside it: the read sits in a worker thread
        returncode, err = ui.stop(signal.SIGTERM)  # fails if it is still alive after 60 s
        assert ui.proc.poll() is not None, "the server exited"
        answer = held.recv(65536)
        # closed without an answer, or uvicorn's 500 for the dropped request: never the log, still unread
        assert answer == b"" or answer.startswith(b"HTTP/1.1 500 "), answer
    finally:
        held.close()
        with contextlib.suppress(OSError):  # let a reader that is still waiting go (there is none if it exited)
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    assert returncode == 0 and err.strip().splitlines()[-1].startswith("hpctrack ui: stopped"), err
    assert "Traceback" not in err and "CancelledError" not in err, err


def test_a_unix_socket_only_its_owner_can_use(root, tmp_path):
    path = tmp_path / "ui.sock"
    ui = start_ui(root, "--uds", str(path))
    try:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600 and stat.S_ISSOCK(os.stat(path).st_mode)
        assert any(f"ssh -L 8765:{path}" in line for line in ui.lines)
        assert ui.url.startswith("http://localhost:8765/?token=")
        assert ui.request("api/sweeps").json()["sweeps"][0]["name"] == "small"
        assert ui.request("api/sweeps", token=None).status == 401
    finally:
        returncode, err = ui.stop()
    assert returncode == 0, err
    assert not path.exists(), "the socket file is removed when the dashboard stops"


def test_a_stale_socket_file_is_replaced_and_a_live_one_refused(root, tmp_path, ui_factory):
    path = tmp_path / "ui.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()  # a socket file nobody listens on: what a killed dashboard leaves
    ui = ui_factory(root, "--uds", str(path))
    assert ui.request("api/stamp").status == 200
    second = cli(root, "ui", "--uds", str(path), timeout=60)
    assert second.returncode == 1 and "in use" in _one_error_line(second)
    assert cli(root, "ui", "--uds", str(path), "--port", "9", timeout=60).returncode == 2


PREFIX = "/node/c042/8765"


def test_behind_a_prefix_stripping_proxy(root, ui_factory):
    """Open OnDemand's ``rnode`` (and jupyter-server-proxy) strip the prefix before passing a request on."""
    ui = ui_factory(root, "--root-path", PREFIX)
    assert ui.url.endswith(f"{PREFIX}/?token={TOKEN}")
    sweeps = ui.request("api/sweeps")  # what the proxy sends for PREFIX/api/sweeps
    assert sweeps.status == 200 and sweeps.json()["sweeps"][0]["name"] == "small"
    entered = ui.request(f"api/sweeps?token={TOKEN}", token=None)
    assert entered.status == 303 and entered.headers["location"] == "./sweeps"  # the browser stays under PREFIX
    assert f"Path={PREFIX}" in entered.headers["set-cookie"].replace("; ", ";").split(";")
    run = ui.request(f"api/runs/{sweeps.json()['sweeps'][0]['id']}/1")
    assert run.status == 200 and run.json()["job"]["index"] == 1
    assert ui.request("api/nope").status == 404


def test_behind_a_proxy_that_passes_the_prefix_on(root, ui_factory):
    """Open OnDemand's ``node`` passes the whole path: the same routes answer."""
    ui = ui_factory(root, "--root-path", PREFIX + "/")
    sweeps = ui.request(f"{PREFIX}/api/sweeps")
    assert sweeps.status == 200 and sweeps.json()["sweeps"][0]["name"] == "small"
    assert ui.request(f"{PREFIX}/api/stamp").json() == ui.request("api/stamp").json()
    page = ui.request(f"{PREFIX}/")
    if (STATIC_DIR / "index.html").is_file():
        assert page.status == 200 and 'src="/' not in page.text and 'href="/' not in page.text
    else:
        assert page.status == 404 and "index.html" in page.text


def test_the_prefix_without_its_slash_signs_in_to_the_page_under_it(root, ui_factory):
    """``http://host:port/node/c042/8765?token=T`` (no slash after the prefix): the redirect must keep
    the browser under the prefix (``./`` would resolve to ``/node/c042/``, out of it)."""
    ui = ui_factory(root, "--root-path", PREFIX)
    entered = ui.request(f"{PREFIX}?token={TOKEN}", token=None)
    assert entered.status == 303 and entered.headers["location"] == "8765/", entered.headers
    assert ui.request(f"{PREFIX}/?token={TOKEN}", token=None).headers["location"] == "./"
    assert ui.request(f"{PREFIX}/?token={TOKEN}&x=1", token=None).headers["location"] == "./?x=1"


def test_the_favicon_needs_no_token_under_a_prefix(root, ui_factory):
    """The browser asks for /favicon.ico at the host's root, where the cookie (Path=PREFIX) is not sent."""
    ui = ui_factory(root, "--root-path", PREFIX)
    for path in ("favicon.ico", f"{PREFIX}/favicon.ico"):
        icon = ui.request(path, token=None)
        assert icon.status == 204 and icon.body == b"", (path, icon.status)
        assert icon.headers["x-content-type-options"] == "nosniff"
    # it is the only path let through without the token; the Host and method checks still apply
    for path in ("favicon.ico/x", "favicon.icox", "api/stamp", f"{PREFIX}/", "static/app.js"):
        assert ui.request(path, token=None).status == 401, path
    assert ui.request("favicon.ico", token=None, host="evil.example").status == 400
    assert ui.request("favicon.ico", token=None, method="POST").status == 405


@pytest.mark.parametrize("prefix", ["node/x", "/a b", "/x?y"])
def test_a_malformed_root_path_is_a_usage_error(root, prefix):
    proc = cli(root, "ui", "--root-path", prefix, "--port", "0", timeout=60)
    assert proc.returncode == 2 and "--root-path" in _one_error_line(proc)


def test_a_wildcard_host_with_a_token_warns_and_accepts_the_machines_name(root, ui_factory):
    ui = ui_factory(root, "--host", "0.0.0.0", "--allow-host", "dash.example.org")
    assert ui.request("api/stamp", host=f"{socket.gethostname()}:{ui.port}").status == 200
    assert ui.request("api/stamp", host="dash.example.org").status == 200
    assert ui.request("api/stamp", host="evil.example").status == 400
    returncode, err = ui.stop()  # the warning is on stderr, read once it stopped
    assert returncode == 0 and "warning: listening on 0.0.0.0" in err


def test_help_lists_the_command():
    proc = subprocess.run([sys.executable, "-m", "hpctrack", "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and any(line.split()[:1] == ["ui"] for line in proc.stdout.splitlines())
