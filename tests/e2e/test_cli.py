"""End to end through the `hpctrack` command, as real processes, on the shipped example."""

from __future__ import annotations

import importlib.util
import json
import signal
import subprocess
import sys
import time

import pytest
from conftest import EXAMPLE, SCRIPTS, error_lines, run_cli

pytestmark = pytest.mark.e2e
SLEEPY = SCRIPTS / "sleepy.py"


def _model():
    spec = importlib.util.spec_from_file_location("digits_model", EXAMPLE.parent / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _expected(lr: float, seed: int, epochs: int = 15) -> dict:
    """The example's metrics recomputed in this process (training is deterministic)."""
    import numpy as np

    model = _model()
    (x_tr, y_tr), (x_val, y_val), (x_te, y_te) = model.load_data(0.2, 0.2, seed)
    rng = np.random.default_rng(seed)
    params = model.init_params(x_tr.shape[1], 64, 10, rng)
    state = model.init_optimizer_state(params)
    for _ in range(epochs):
        model.train_epoch(
            params, state, x_tr, y_tr, rng, batch_size=64, optimizer="sgd", lr=lr, momentum=0.9, beta1=0.9, beta2=0.999
        )
    val_loss, val_acc = model.evaluate(params, x_val, y_val)
    test_loss, test_acc = model.evaluate(params, x_te, y_te)
    return {"val/acc:last": val_acc, "val/loss:last": val_loss, "test/acc": test_acc}


def _status(ref: str = "latest") -> dict:
    return json.loads(run_cli("status", ref, "--format", "json", check=True).stdout)


def test_example_sweep_2x3_end_to_end(hpctrack_root, tmp_path):
    proc = run_cli(
        "launch",
        "--parallel",
        "2",
        str(EXAMPLE),
        "optimizer.lr=0.01,0.1",
        "seed=0,1,2",
        "--name",
        "digits",
        cwd=tmp_path,
    )  # options may follow the overrides
    assert proc.returncode == 0, proc.stderr
    assert "6 jobs: 6 COMPLETED" in proc.stdout

    rows = json.loads(run_cli("table", "latest", "--format", "json", check=True).stdout)
    assert len(rows) == 6
    assert sorted((r["optimizer.lr"], r["seed"]) for r in rows) == [
        (lr, seed) for lr in (0.01, 0.1) for seed in (0, 1, 2)
    ]
    for row in rows:
        assert row["state"] == "COMPLETED" and row["runtime_s"] > 0
        expected = _expected(row["optimizer.lr"], row["seed"])
        for key, value in expected.items():
            assert row[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key
        assert row["val/acc:max"] >= row["val/acc:last"] >= row["val/acc:min"]

    status = _status("digits")
    assert status["summary"] == "6 jobs: 6 COMPLETED"
    assert all(j["last_step"] == 14 for j in status["jobs"])
    sweep_dir = hpctrack_root / "sweeps" / status["sweep"]
    assert all((sweep_dir / "runs" / str(i) / "artifacts" / "model.npz").is_file() for i in range(6))
    assert not (tmp_path / "outputs").exists() and not (tmp_path / "multirun").exists()

    run_cli("table", "digits", "--format", "csv", "-o", str(tmp_path / "r.csv"), check=True)
    assert len((tmp_path / "r.csv").read_text().splitlines()) == 7
    markdown = run_cli("table", "latest", "--format", "markdown", "--metric", "val/acc:max", check=True).stdout
    assert [c.strip() for c in markdown.splitlines()[0].split("|")[1:-1]] == [
        "job",
        "optimizer.lr",
        "seed",
        "state",
        "runtime_s",
        "val/acc:max",
    ]  # only what was asked for
    terminal = run_cli("table", check=True).stdout
    assert "COMPLETED" in terminal and "val/acc:last" in terminal
    listing = run_cli("ls", check=True).stdout
    assert "digits" in listing and "6 COMPLETED" in listing


def test_failing_job_is_recorded_and_the_others_run(hpctrack_root):
    proc = run_cli("launch", str(EXAMPLE), "optimizer.lr=-1,0.1", "epochs=2")
    assert proc.returncode == 1
    assert "1 COMPLETED, 1 FAILED" in proc.stdout
    jobs = {j["overrides"][0]: j for j in _status()["jobs"]}
    failed, ok = jobs["optimizer.lr=-1"], jobs["optimizer.lr=0.1"]
    assert failed["state"] == "FAILED"
    assert failed["error"] == "ValueError: optimizer.lr must be > 0, got -1.0"
    assert ok["state"] == "COMPLETED" and ok["last_step"] == 1
    human = run_cli("status", "latest").stdout
    assert "optimizer.lr must be > 0" in human and "1 COMPLETED, 1 FAILED" in human


@pytest.mark.parametrize(
    "args, message",
    [
        (["optimizer.lrr=0.1"], "unknown config key 'optimizer.lrr' for train.py (did you mean 'optimizer.lr'?)"),
        (["seed=range(0,"], "malformed override 'seed=range(0,'"),
        (["--config-name", "nothere", "seed=1"], "Cannot find primary config 'nothere'"),
    ],
)
def test_bad_input_is_one_line_and_launches_nothing(hpctrack_root, args, message):
    proc = run_cli("launch", str(EXAMPLE), *args)
    assert proc.returncode == 1
    errors = error_lines(proc.stderr)
    assert len(errors) == 1 and message in errors[0], proc.stderr
    assert "Traceback" not in proc.stderr
    assert not any(hpctrack_root.rglob("sweep.json"))
    assert not (hpctrack_root / "sweeps").exists() or not any((hpctrack_root / "sweeps").iterdir())


def test_missing_script_and_unwritable_root(hpctrack_root):
    proc = run_cli("launch", "nope/train.py", "seed=1")
    assert proc.returncode == 1 and error_lines(proc.stderr) == ["Error: script not found: nope/train.py"]
    proc = run_cli("launch", "--root", "/proc/hpctrack", str(EXAMPLE), "seed=1")
    assert proc.returncode == 1
    assert error_lines(proc.stderr)[0].startswith("Error: cannot write to the hpctrack root /proc/hpctrack")


def test_unknown_sweep_is_one_line(hpctrack_root):
    proc = run_cli("status", "nope")
    assert proc.returncode == 1
    assert error_lines(proc.stderr) == [
        f"Error: no sweep 'nope' under {hpctrack_root} (try `hpctrack ls`, or pass --root / set HPCTRACK_ROOT)"
    ]


def test_hydra_multirun_with_the_launcher_plugin(hpctrack_root, tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            str(EXAMPLE),
            "-m",
            "hydra/launcher=hpctrack_local",
            "hydra.launcher.name=plugin",
            "hydra.launcher.parallel=2",
            "seed=0,1",
            "epochs=2",
            f"hydra.sweep.dir={tmp_path / 'multirun'}",
        ],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    status = _status("plugin")
    assert status["summary"] == "2 jobs: 2 COMPLETED"
    rows = json.loads(run_cli("table", "plugin", "--format", "json", check=True).stdout)
    assert [r["seed"] for r in rows] == [0, 1]


def test_plain_script_run_is_a_one_run_sweep(hpctrack_root, tmp_path):
    subprocess.run(
        [sys.executable, str(EXAMPLE), "epochs=2", "seed=4", f"hydra.run.dir={tmp_path / 'out'}"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    rows = json.loads(run_cli("table", "latest", "--format", "json", "--all-params", check=True).stdout)
    assert len(rows) == 1 and rows[0]["state"] == "COMPLETED" and rows[0]["seed"] == 4
    assert rows[0]["epochs"] == 2 and rows[0]["val/acc:last"] > 0.5


def test_detach_then_watch_a_running_sweep(hpctrack_root):
    proc = run_cli("launch", "--detach", "--name", "bg", str(SLEEPY), "x=1,2", "steps=30", "sleep_s=0.4")
    assert proc.returncode == 0, proc.stderr
    assert "launched in the background" in proc.stdout
    seen_running = False
    deadline = time.time() + 120
    while time.time() < deadline:
        status = _status("bg")
        states = {j["state"] for j in status["jobs"]}
        # Early in the jobs (12 s each), so they are still running when the table is read.
        if not seen_running and "RUNNING" in states and any(0 < (j["last_step"] or 0) < 10 for j in status["jobs"]):
            rows = json.loads(run_cli("table", "bg", "--format", "json", check=True).stdout)
            assert len(rows) == 2 and "RUNNING" in {r["state"] for r in rows}  # partial results
            seen_running = True
        if states == {"COMPLETED"}:
            break
        time.sleep(0.3)
    assert seen_running, "never saw a running job with progress"
    assert _status("bg")["summary"] == "2 jobs: 2 COMPLETED"
    rows = json.loads(run_cli("table", "bg", "--format", "json", check=True).stdout)
    assert [r["final"] for r in rows] == [10.0, 20.0]
    assert [r["loss:last"] for r in rows] == [1 / 30, 1 / 30] and [r["x:max"] for r in rows] == [1.0, 2.0]


def test_ctrl_c_cancels_a_waiting_launch(hpctrack_root):
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hpctrack",
            "launch",
            "--parallel",
            "1",
            "--name",
            "intr",
            str(SLEEPY),
            "x=1,2,3",
            "steps=200",
            "sleep_s=0.1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if any(j["state"] == "RUNNING" and j["last_step"] for j in _status("intr")["jobs"]):
                break
        except (AssertionError, json.JSONDecodeError):
            pass
        time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode != 0
    status = _status("intr")
    assert [j["state"] for j in status["jobs"]] == ["CANCELLED"] * 3, status
    # One wording whoever stopped each job: the running one (its own KeyboardInterrupt), the pending ones.
    errors = [j["error"] for j in status["jobs"]]
    assert all(e.startswith("cancelled") for e in errors) and not any("KeyboardInterrupt" in e for e in errors), errors


def test_both_stores_give_identical_tables(hpctrack_root):
    from hpctrack.store import BACKENDS

    assert {"hdf5", "zarr"} <= set(BACKENDS)
    tables = {}
    for store in ("hdf5", "zarr"):
        proc = run_cli(
            "launch", "--store", store, "--name", f"with-{store}", str(SLEEPY), "x=1,2,3", "steps=5", "fail_at=null,3"
        )
        assert proc.returncode == 1 and "3 COMPLETED, 3 FAILED" in proc.stdout, proc.stderr
        rows = json.loads(run_cli("table", f"with-{store}", "--format", "json", "--all-params", check=True).stdout)
        for row in rows:
            row.pop("runtime_s")
        tables[store] = rows
        status = _status(f"with-{store}")
        assert [j["error"] for j in status["jobs"] if j["state"] == "FAILED"] == [
            "RuntimeError: failing on purpose at step 3"
        ] * 3
    assert tables["hdf5"] == tables["zarr"]
    assert len(tables["zarr"]) == 6
    assert sorted((r["state"], r["loss:last"]) for r in tables["zarr"]) == (
        [("COMPLETED", 1 / 5)] * 3 + [("FAILED", 1 / 3)] * 3
    )


def test_requeue_takes_no_progress_and_show_prints_tags(hpctrack_root, tmp_path):
    import hpctrack
    from hpctrack.store import open_store

    assert run_cli("launch", str(SCRIPTS / "sleepy.py"), "x=1", "steps=2", "sleep_s=0", "--name", "tg",
                   "--no-progress", cwd=tmp_path).returncode == 0  # fmt: skip
    sweep = hpctrack.load_sweep("tg")
    open_store(sweep.path / "runs" / "0", sweep.manifest.store).write(sections={"tags": {"stage": "baseline"}})
    assert "tags:       stage=baseline" in run_cli("show", "tg/0", check=True).stdout
    again = run_cli("requeue", "tg", "--state", "COMPLETED", "--no-progress")
    assert again.returncode == 0 and "1 COMPLETED of the resubmitted jobs" in again.stdout, again.stdout + again.stderr
    assert run_cli("resume", "tg", "--no-progress", "--dry-run").returncode == 0
