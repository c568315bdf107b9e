"""``hpctrack ui``'s JSON API and its gate, through one real ``python -m hpctrack ui`` on the shipped example.

Two example sweeps are launched for real (digits, two epochs); each answer is compared with
what the CLI command it stands for prints for the same options, as a real subprocess too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote, unquote

import pytest
from uiserver import TOKEN, cli, env_for, start_ui

from hpctrack.ui.app import STATIC_DIR

pytestmark = pytest.mark.ui

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "digits" / "train.py"
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
    "frame-ancestors 'none'",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
}


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """A root with two example sweeps, launched at once: ``digits`` (lr x seed) and ``adam`` (lr)."""
    base = tmp_path_factory.mktemp("ui-example")
    root = base / "root"
    launches = [
        ("digits", ["optimizer.lr=0.01,0.1", "seed=0,1"]),
        ("adam", ["optimizer.name=adam", "optimizer.lr=0.01,0.1"]),
    ]
    procs = [subprocess.Popen([sys.executable, "-m", "hpctrack", "launch", "--parallel", "2", "--no-progress",
                               "--name", name, str(EXAMPLE), *overrides, "epochs=2"], cwd=base, env=env_for(root),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for name, overrides in launches]  # fmt: skip
    for proc in procs:
        out, _ = proc.communicate(timeout=600)
        assert proc.returncode == 0, out
    return root


@pytest.fixture(scope="module")
def ui(root):
    server = start_ui(root)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def sweep_id(root) -> str:
    return json.loads(cli(root, "show", "digits", "--format", "json").stdout)["id"]


def _cli_stdout(root: Path, *args: str) -> str:
    proc = cli(root, *args)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


# -- the gate ---------------------------------------------------------------------------------------


def test_without_the_token_every_path_is_401(ui, sweep_id):
    api = ui.request("api/sweeps", token=None)
    assert api.status == 401 and "URL printed by hpctrack ui" in api.json()["error"]
    page = ui.request("", token=None)
    assert page.status == 401 and page.headers["content-type"].startswith("text/plain")
    for path in (
        f"api/runs/{sweep_id}/0/file?path=.hydra/config.yaml",
        "static/app.js",
        f"api/sweeps/{sweep_id}/table",
    ):
        assert ui.request(path, token=None).status == 401, path
    assert ui.request("api/sweeps", token="wrong-token-0123456789").status == 401
    assert ui.request("api/sweeps?token=wrong-token-0123456789", token=None).status == 401


def test_the_token_in_the_url_becomes_a_cookie_and_a_redirect_without_it(ui):
    first = ui.request(f"api/sweeps?q=digits&token={TOKEN}", token=None)
    assert first.status == 303
    assert first.headers["location"] == "./sweeps?q=digits"  # relative: right under any proxy prefix
    cookie = first.headers["set-cookie"]
    name = f"hpctrack_ui_{ui.port}"
    assert cookie.startswith(f"{name}={TOKEN};")
    assert {"HttpOnly", "SameSite=Strict", "Path=/"} <= {part.strip() for part in cookie.split(";")}
    page = ui.request(f"?token={TOKEN}", token=None)
    assert page.status == 303 and page.headers["location"] == "./"
    # the cookie alone lets requests through
    after = ui.request("api/sweeps?q=digits", token=None, headers={"Cookie": f"{name}={TOKEN}"})
    assert after.status == 200 and [s["name"] for s in after.json()["sweeps"]] == ["digits"]
    assert ui.request("api/sweeps", token=None, headers={"Cookie": f"{name}=nope"}).status == 401


def test_a_bearer_token_works_for_scripts(ui):
    reply = ui.request("api/sweeps", token=None, headers={"Authorization": f"Bearer {TOKEN}"})
    assert reply.status == 200 and reply.headers["content-type"] == "application/json"


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8765", "127.0.0.1.evil.example", ""])
def test_a_foreign_host_header_is_400_even_with_the_token(ui, host):
    reply = ui.request("api/sweeps", host=host)
    assert reply.status == 400 and "Host" in reply.json()["error"]
    if host:  # what to pass to accept it, an IP address too
        assert f"--allow-host {host.split(':')[0]} to accept this host name or IP address" in reply.json()["error"]


@pytest.mark.parametrize("host", ["localhost", "localhost:{port}", "127.0.0.1:{port}", "[::1]:{port}"])
def test_loopback_host_headers_are_accepted(ui, host):
    assert ui.request("api/stamp", host=host.format(port=ui.port)).status == 200


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_only_get_and_head_are_served(ui, sweep_id, method):
    reply = ui.request(f"api/sweeps/{sweep_id}", method=method)
    assert reply.status == 405 and reply.headers["allow"] == "GET, HEAD"
    assert ui.request(f"api/sweeps/{sweep_id}", method="HEAD").status == 200


def test_every_response_carries_the_security_headers(ui, sweep_id):
    for path, token, status in (("api/sweeps", TOKEN, 200), ("api/sweeps", None, 401), ("api/nope", TOKEN, 404),
                                (f"api/runs/{sweep_id}/0/file?path=.hydra/config.yaml", TOKEN, 200)):  # fmt: skip
        reply = ui.request(path, token=token)
        assert reply.status == status, (path, reply.body)
        for key, value in SECURITY_HEADERS.items():
            assert reply.headers.get(key) == value, (path, key)
    assert ui.request("api/sweeps", method="POST").headers["x-frame-options"] == "DENY"
    assert ui.request("api/sweeps", host="evil.example").headers["x-content-type-options"] == "nosniff"


# -- run files --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def planted(root, sweep_id):
    """A run directory with hostile files: an HTML page, an SVG, links out of the root; and an image."""
    run_dir = root / "sweeps" / sweep_id / "runs" / "0"
    outside = root.parent / "outside-secret.txt"
    outside.write_text("secret outside the root\n")
    (run_dir / "artifacts" / "report.html").write_text("<script>alert(document.cookie)</script>\n")
    (run_dir / "artifacts" / "drawing.svg").write_text('<svg xmlns="http://www.w3.org/2000/svg"><script/></svg>\n')
    (run_dir / "artifacts" / "plot.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 32)
    os.symlink(outside, run_dir / "artifacts" / "leak.txt")
    os.symlink(root.parent, run_dir / "artifacts" / "up")
    return run_dir


@pytest.mark.parametrize("path", ["../1/train.log", "..%2F1%2Ftrain.log", "artifacts/../../1/train.log",
                                  "/etc/passwd", quote(__file__), "artifacts/leak.txt", "artifacts/up/outside-secret.txt",
                                  "", "artifacts", "no-such-file.txt"])  # fmt: skip
def test_paths_leaving_the_run_are_404(ui, sweep_id, planted, path):
    reply = ui.request(f"api/runs/{sweep_id}/0/file?path={path}")
    assert reply.status == 404, (path, reply.body[:200])
    assert b"outside the root\n" not in reply.body and "error" in reply.json()


def test_links_out_of_the_root_are_not_listed(ui, sweep_id, planted):
    files = {f["path"]: f for f in ui.request(f"api/runs/{sweep_id}/0/artifacts").json()["files"]}
    assert "artifacts/leak.txt" not in files and not any(p.startswith("artifacts/up") for p in files)
    assert files["artifacts/report.html"]["kind"] == "binary" and files["artifacts/plot.png"]["kind"] == "image"
    assert files[".hydra/config.yaml"]["kind"] == "text" and not files[".hydra/config.yaml"]["checkpoint"]
    assert any(f["checkpoint"] for f in files.values())
    expected = sorted(p.relative_to(planted).as_posix() for p in planted.rglob("*")
                      if p.is_file() and p.resolve().is_relative_to(planted))  # run.h5 links to its newest copy  # fmt: skip
    assert sorted(p for p in files if not p.endswith("/")) == expected


def test_user_html_is_never_served_as_html(ui, sweep_id, planted):
    for name in ("report.html", "drawing.svg"):
        reply = ui.request(f"api/runs/{sweep_id}/0/file?path=artifacts/{name}")
        assert reply.status == 200
        assert reply.headers["content-type"] == "application/octet-stream"
        assert reply.headers["content-disposition"].startswith("attachment")
        assert reply.headers["x-content-type-options"] == "nosniff"
    image = ui.request(f"api/runs/{sweep_id}/0/file?path=artifacts/plot.png")
    assert image.headers["content-type"] == "image/png" and image.headers["content-disposition"].startswith("inline")
    text = ui.request(f"api/runs/{sweep_id}/0/file?path=.hydra/config.yaml")
    assert text.headers["content-type"] == "text/plain; charset=utf-8"
    assert text.body == (planted / ".hydra" / "config.yaml").read_bytes()
    download = ui.request(f"api/runs/{sweep_id}/0/file?path=.hydra/config.yaml&download=1")
    assert download.headers["content-disposition"].startswith("attachment")


def test_the_log_tail_is_the_end_of_the_jobs_log(ui, root, sweep_id):
    manifest = json.loads((root / "sweeps" / sweep_id / "sweep.json").read_text())
    for stream in ("stdout", "stderr"):
        path = manifest["jobs"][1][stream]
        whole = Path(path).read_bytes()
        reply = ui.request(f"api/runs/{sweep_id}/1/log?stream={stream}").json()
        assert reply["path"] == path and reply["text"] == whole.decode() and reply["truncated"] is False
    whole = Path(manifest["jobs"][1]["stdout"]).read_bytes()
    assert len(whole) > 200, "the job's stdout is long enough to cut"
    cut = ui.request(f"api/runs/{sweep_id}/1/log?stream=stdout&tail=200").json()
    assert cut["truncated"] is True and whole.decode().endswith(cut["text"]) and 0 < len(cut["text"]) <= 200
    assert ui.request(f"api/runs/{sweep_id}/1/log?stream=stdin").status == 400


# -- the answers are the CLI's ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query, args",
    [
        ("", []),
        ("group_by=all", ["--grouped"]),
        ("group_by=optimizer.lr&metrics=val/acc:max,val/loss:min&sort=-val/acc:max",
         ["-g", "optimizer.lr", "-m", "val/acc:max", "-m", "val/loss:min", "--sort", "-val/acc:max"]),
        (f"filter={quote('optimizer.lr > 0.05')}&all_params=1", ["--filter", "optimizer.lr > 0.05", "--all-params"]),
        ("seed_keys=seed,optimizer.lr&group_by=all", ["--seed-keys", "seed,optimizer.lr", "--grouped"]),
    ],
)  # fmt: skip
def test_the_table_is_byte_for_byte_what_hpctrack_table_prints(ui, root, sweep_id, query, args):
    reply = ui.request(f"api/sweeps/{sweep_id}/table?{query}")
    assert reply.status == 200, reply.body
    assert reply.headers["content-type"] == "application/json"
    assert reply.text == _cli_stdout(root, "table", sweep_id, "--format", "json", *args)
    rows = reply.json()
    if "group_by" not in query:  # runs keep their job and state, for links and colours
        assert all("job" in row and "state" in row for row in rows) and rows


@pytest.mark.parametrize("metric, direction", [("val/acc:max", "highest"), ("val/loss:min", "lowest")])
def test_a_grouped_table_names_the_best_group_as_the_cli_marks_it(ui, root, sweep_id, metric, direction):
    reply = ui.request(f"api/sweeps/{sweep_id}/table?group_by=optimizer.lr&metrics={metric}")
    rows = reply.json()
    best = int(reply.headers["x-hpctrack-best-row"])
    pick = min if direction == "lowest" else max
    assert rows[best][f"{metric} mean"] == pick(row[f"{metric} mean"] for row in rows)
    said = _cli_stdout(root, "table", sweep_id, "-g", "optimizer.lr", "-m", metric).splitlines()
    marked = [line for line in said if line.rstrip().endswith("* best")]
    assert len(marked) == 1 and marked[0].split()[0] == str(rows[best]["optimizer.lr"]), said
    assert "* best: " + unquote(reply.headers["x-hpctrack-best-by"]) in said
    assert f"{direction} mean of {metric}" == unquote(reply.headers["x-hpctrack-best-by"])
    ungrouped = ui.request(f"api/sweeps/{sweep_id}/table?metrics={metric}")
    assert "x-hpctrack-best-row" not in ungrouped.headers and "x-hpctrack-best-by" not in ungrouped.headers


def test_curves_take_the_tables_filter(ui, root, sweep_id):
    """The curves of the runs the table shows: the same filter, applied by the same code."""
    where = "seed >= 1 and optimizer.lr < 0.05"
    table = json.loads(_cli_stdout(root, "table", sweep_id, "--format", "json", "--filter", where))
    assert 0 < len(table) < 4
    data = ui.request(f"api/sweeps/{sweep_id}/history?metric=val/acc&filter={quote(where)}").json()
    assert sorted(r["job"] for r in data["runs"]) == sorted(row["job"] for row in table)
    assert data["n_runs"] == len(table)
    grouped = ui.request(f"api/sweeps/{sweep_id}/history?metric=val/acc&group_by=optimizer.lr&filter={quote(where)}")
    assert [g["jobs"] for g in grouped.json()["groups"]] == [sorted(row["job"] for row in table)]
    both = ui.request(f"api/sweeps/{sweep_id}/history?metric=val/acc&runs=0,1&filter={quote('seed >= 1')}").json()
    assert [r["job"] for r in both["runs"]] == [1]  # runs and filter: the runs that pass it
    bad = ui.request(f"api/sweeps/{sweep_id}/history?metric=val/acc&filter={quote('bogus < 1')}")
    proc = cli(root, "table", sweep_id, "--format", "json", "--filter", "bogus < 1")
    assert bad.status == 400 and f"Error: {bad.json()['error']}" == proc.stderr.strip()


def test_the_csv_download_is_hpctrack_table_as_csv(ui, root, sweep_id):
    reply = ui.request(f"api/sweeps/{sweep_id}/table?format=csv&group_by=all")
    assert reply.headers["content-type"] == "text/csv; charset=utf-8"
    assert reply.headers["content-disposition"] == 'attachment; filename="digits-table-grouped.csv"'
    assert reply.text == _cli_stdout(root, "table", sweep_id, "--format", "csv", "--grouped")
    runs = ui.request(f"api/sweeps/{sweep_id}/table?format=csv")  # per run: another name, not the grouped one's
    assert runs.headers["content-disposition"] == 'attachment; filename="digits-table.csv"'
    assert runs.text == _cli_stdout(root, "table", sweep_id, "--format", "csv")


def test_bad_table_options_are_400_with_the_clis_message(ui, root, sweep_id):
    for query, args in ((f"filter={quote('bogus < 1')}", ["--filter", "bogus < 1"]),
                        ("sort=nope", ["--sort", "nope"]), ("group_by=nope", ["-g", "nope"])):  # fmt: skip
        reply = ui.request(f"api/sweeps/{sweep_id}/table?{query}")
        proc = cli(root, "table", sweep_id, "--format", "json", *args)
        assert reply.status == 400 and proc.returncode == 1
        assert f"Error: {reply.json()['error']}" == proc.stderr.strip()


def test_status_is_hpctrack_status_json(ui, root, sweep_id):
    assert ui.request(f"api/sweeps/{sweep_id}/status").json() == json.loads(
        _cli_stdout(root, "status", sweep_id, "--format", "json")
    )


def test_a_run_is_hpctrack_show_json(ui, root, sweep_id):
    for job in (0, 3):
        assert ui.request(f"api/runs/{sweep_id}/{job}").json() == json.loads(
            _cli_stdout(root, "show", f"{sweep_id}/{job}", "--format", "json")
        )
    assert ui.request(f"api/runs/{sweep_id}/4").status == 404
    assert ui.request(f"api/runs/{sweep_id}/x").status == 404
    assert ui.request("api/runs/nosuchsweep/0").status == 404


def test_compare_is_hpctrack_compare_json(ui, root):
    reply = ui.request("api/compare?sweeps=digits,adam&metrics=val/acc:max,test/acc")
    assert reply.status == 200, reply.body
    assert reply.text == _cli_stdout(root, "compare", "digits", "adam", "-m", "val/acc:max", "-m", "test/acc",
                                     "--format", "json")  # fmt: skip
    assert ui.request("api/compare?sweeps=digits,adam").status == 400


def test_compare_carries_the_note_hpctrack_compare_prints(ui, root):
    """The sweeps differ in a setting each held fixed (optimizer.name): the CLI says so, and so does the API."""
    proc = cli(root, "compare", "digits", "adam", "-m", "val/acc:max", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    said = [line for line in proc.stderr.splitlines() if line.startswith("note: ")]
    assert len(said) == 1 and "optimizer.name" in said[0], proc.stderr
    reply = ui.request("api/compare?sweeps=digits,adam&metrics=val/acc:max")
    assert reply.status == 200 and reply.text == proc.stdout
    assert "note: " + unquote(reply.headers["x-hpctrack-note"]) == said[0]


def test_the_sweeps_list_is_ls_with_params_best_and_metrics(ui, root, sweep_id):
    data = ui.request("api/sweeps?metric=val/acc:max&mode=max").json()
    ls = json.loads(_cli_stdout(root, "ls", "--format", "json"))
    assert [{k: v for k, v in row.items() if k not in ("params", "best")} for row in data["sweeps"]] == ls
    digits = next(row for row in data["sweeps"] if row["id"] == sweep_id)
    assert digits["params"] == {"optimizer.lr": [0.01, 0.1], "seed": [0, 1]}
    table = json.loads(_cli_stdout(root, "table", sweep_id, "--format", "json", "-m", "val/acc:max"))
    best = max(table, key=lambda row: row["val/acc:max"])
    assert digits["best"] == {"value": best["val/acc:max"], "run": f"{sweep_id}/{best['job']}"}
    lowest = ui.request("api/sweeps?metric=val/loss&q=digits").json()  # a loss: lowest is best
    assert lowest["mode"] == "min"
    table = json.loads(_cli_stdout(root, "table", sweep_id, "--format", "json", "-m", "val/loss:min"))
    assert lowest["sweeps"][0]["best"]["value"] == min(row["val/loss:min"] for row in table)
    assert {"train/loss", "val/acc", "val/loss"} <= set(data["metrics"])
    assert [s["name"] for s in ui.request("api/sweeps?q=ADAM").json()["sweeps"]] == ["adam"]
    assert [s["name"] for s in ui.request("api/sweeps?q=seed%3D1").json()["sweeps"]] == ["digits"]
    assert ui.request("api/sweeps?q=nothing-like-this").json()["sweeps"] == []


def test_a_sweep_is_show_sweep_with_its_keys(ui, root, sweep_id):
    data = ui.request(f"api/sweeps/{sweep_id}").json()
    shown = json.loads(_cli_stdout(root, "show", sweep_id, "--format", "json"))
    assert {k: data[k] for k in shown} == shown
    assert data["swept_keys"] == ["optimizer.lr", "seed"] and data["seed_keys"] == ["seed"]
    assert {"train/loss", "val/acc", "val/loss"} <= set(data["metrics"])
    assert ui.request("api/sweeps/nosuchsweep").status == 404
    assert ui.request("api/sweeps/..").status == 404


def test_the_stamp_of_an_ended_sweep_holds_still_while_it_is_read(ui, sweep_id):
    before = (ui.request(f"api/stamp?sweep={sweep_id}").json(), ui.request("api/stamp").json())
    for path in (f"api/sweeps/{sweep_id}/table?group_by=all", f"api/sweeps/{sweep_id}/status", "api/sweeps?metric=val/acc",
                 f"api/runs/{sweep_id}/2", f"api/runs/{sweep_id}/2/artifacts"):  # fmt: skip
        assert ui.request(path).status == 200
    assert (ui.request(f"api/stamp?sweep={sweep_id}").json(), ui.request("api/stamp").json()) == before
    assert ui.request("api/stamp?sweep=nosuchsweep").status == 404


def test_the_page_is_served_at_the_root_with_relative_urls(ui):
    reply = ui.request("")
    if not (STATIC_DIR / "index.html").is_file():  # the page is not installed: said in one line
        assert reply.status == 404 and "index.html" in reply.text and len(reply.text.splitlines()) == 1
        return
    assert reply.status == 200 and reply.headers["content-type"].startswith("text/html")
    assert reply.headers["cache-control"] == "no-cache"
    html = reply.text
    for absolute in ('src="/', "src='/", 'href="/', "href='/"):
        assert absolute not in html, f"absolute URL in index.html ({absolute})"
    assert "<script>" not in html and 'style="' not in html  # the CSP runs no inline script or style


def test_favicon_and_unknown_paths(ui):
    assert ui.request("favicon.ico").status == 204
    missing = ui.request("api/no/such/endpoint")
    assert missing.status == 404 and "error" in missing.json()
    assert ui.request("static/../../pyproject.toml").status == 404


# -- curves (hpctrack.ui.series) --------------------------------------------------------------------


def test_sweep_curves_end_where_the_table_says(ui, root, sweep_id):
    data = ui.request(f"api/sweeps/{sweep_id}/history?metric=val/acc&runs=all&x=step").json()
    table = {row["job"]: row for row in json.loads(_cli_stdout(root, "table", sweep_id, "--format", "json"))}
    assert (
        data["metric"] == "val/acc" and data["n_runs"] == 4 and sorted(r["job"] for r in data["runs"]) == [0, 1, 2, 3]
    )
    for run in data["runs"]:
        assert run["run"] == f"{sweep_id}/{run['job']}" and run["x"] == [0, 1]  # two epochs
        assert run["y"][-1] == table[run["job"]]["val/acc:last"] and max(run["y"]) == table[run["job"]]["val/acc:max"]
    some = ui.request(f"api/sweeps/{sweep_id}/history?metric=val/acc&runs=1,3&x=time&points=10&full=1").json()
    assert sorted(r["job"] for r in some["runs"]) == [1, 3] and some["x"] == "time" and some["downsampled"] is False


def test_group_curves_are_means_over_the_groups_runs(ui, root, sweep_id):
    data = ui.request(f"api/sweeps/{sweep_id}/history?metric=val/acc&group_by=optimizer.lr&band=ci&smooth=0").json()
    table = json.loads(_cli_stdout(root, "table", sweep_id, "--format", "json", "-g", "optimizer.lr",
                                   "-m", "val/acc:last"))  # fmt: skip
    means = {row["optimizer.lr"]: row["val/acc:last mean"] for row in table}
    assert {g["key"]["optimizer.lr"]: g["n"] for g in data["groups"]} == {0.01: 2, 0.1: 2}
    for group in data["groups"]:
        assert group["mean"][-1] == pytest.approx(means[group["key"]["optimizer.lr"]])
        assert all(lo <= m <= hi for lo, m, hi in zip(group["lo"], group["mean"], group["hi"]))


def test_one_runs_curves_are_every_metric_it_logged(ui, root, sweep_id):
    shown = json.loads(_cli_stdout(root, "show", f"{sweep_id}/2", "--format", "json"))
    data = ui.request(f"api/runs/{sweep_id}/2/history").json()
    assert set(data["metrics"]) == set(shown["metrics"])
    for key, curve in data["metrics"].items():
        assert curve["y"][-1] == shown["metrics"][key]["last"] and len(curve["x"]) == shown["metrics"][key]["count"]
    one = ui.request(f"api/runs/{sweep_id}/2/history?metric=val/loss&points=2").json()
    assert list(one["metrics"]) == ["val/loss"]


@pytest.mark.parametrize("query", ["", "metric=nope", "metric=val/acc&points=1", "metric=val/acc&points=10001",
                                   "metric=val/acc&runs=a,b", "metric=val/acc&x=epoch", "metric=val/acc&band=iqr",
                                   "metric=val/acc&smooth=1", "metric=val/acc&runs=99"])  # fmt: skip
def test_bad_curve_options_are_400(ui, sweep_id, query):
    reply = ui.request(f"api/sweeps/{sweep_id}/history?{query}")
    assert reply.status == 400 and len(reply.json()["error"].splitlines()) == 1, reply.body
