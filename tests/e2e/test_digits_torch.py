"""The PyTorch example (checkpoint = model + optimizer state dicts): kill -9, resume, same numbers."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest
from conftest import REPO, run_cli

pytestmark = pytest.mark.e2e
pytest.importorskip("torch", reason="torch is not installed: pip install -e '.[test]' installs torch==2.13.0 "
                                    "(its CPU build where the index has it)")  # fmt: skip
EXAMPLE = REPO / "examples" / "digits_torch" / "train.py"


def _history(ref: str, key: str):
    import hpctrack

    return hpctrack.load_sweep(ref).history(key)


def test_torch_example_resumes_from_its_state_dicts(hpctrack_root, tmp_path):
    common = ["epochs=6", "seed=1"]
    ref = run_cli("launch", str(EXAMPLE), *common, "--name", "ref", "--no-progress", cwd=tmp_path)
    assert ref.returncode == 0, ref.stdout + ref.stderr
    proc = run_cli("launch", str(EXAMPLE), *common, "epoch_sleep_s=1", "--name", "victim", "--detach", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    import hpctrack
    from hpctrack.run import Checkpoints

    sweep = hpctrack.load_sweep("victim")
    checkpoints = Checkpoints(sweep.manifest.run_path(0) / "checkpoints")
    deadline = time.time() + 120
    # Order of events: kill once the checkpoint of epoch 2 is committed (the metrics of epoch 2 reach the
    # store before it, so waiting for them alone could kill the job with the checkpoint still at epoch 1).
    while (latest := checkpoints.latest()) is None or latest.step < 2:
        assert time.time() < deadline, "the victim never checkpointed epoch 2"
        time.sleep(0.2)
    record = sweep.run(0)
    os.kill(int(record.info["pid"]), signal.SIGKILL)
    deadline = time.time() + 60
    while json.loads(run_cli("status", "victim", "--format", "json", check=True).stdout)["jobs"][0]["state"] \
            == "RUNNING":  # fmt: skip
        assert time.time() < deadline
        time.sleep(0.3)
    proc = run_cli("resume", "victim")
    assert proc.returncode == 0, proc.stdout + proc.stderr

    record = sweep.run(0)
    assert record.status["state"] == "completed" and len(record.status["attempts"]) == 2
    assert record.status["attempts"][1]["restored_from"]["step"] >= 2
    for key in ("train/loss", "val/loss", "val/acc"):
        got, want = _history("victim", key), _history("ref", key)
        assert got.step.tolist() == list(range(6)), key
        assert got.value.tolist() == want.value.tolist(), key
    assert record.summary["test/acc"] == hpctrack.load_sweep("ref").run(0).summary["test/acc"]
    checkpoints = sorted(p.name for p in (sweep.manifest.run_path(0) / "checkpoints").iterdir())
    assert checkpoints == ["000005", "000006"]  # the newest 2 kept, numbered across attempts
