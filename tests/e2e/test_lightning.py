"""Lightning through `logger=HpctrackLogger()`: a plain `python train.py` and a launched job on two DDP
ranks (gloo, CPU), each read back through the CLI and the run's store."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import SCRIPTS, run_cli

import hpctrack
from hpctrack.store import open_store

pytest.importorskip("lightning")
pytestmark = pytest.mark.e2e
SCRIPT = str(SCRIPTS / "lightning_train.py")


def _steps(sweep, key: str) -> list:
    """Every point the run's store holds for ``key``, superseded or not: each step must be there once."""
    run_dir = sweep.path / "runs" / "0"
    return [int(s) for s in open_store(run_dir, sweep.manifest.store).read_history(key, raw=True).step]


def test_a_two_epoch_model_logs_into_its_run(hpctrack_root, tmp_path):
    proc = subprocess.run([sys.executable, SCRIPT], cwd=tmp_path, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    sweep = hpctrack.load_sweep("latest")
    record = sweep.run(0)
    assert record.status["state"] == "completed"
    # The Hydra config (read from the job's .hydra/config.yaml) and the module's own hparam beside it;
    # the hparams that repeat config keys with the same values changed nothing.
    assert record.params["lr"] == 0.05 and record.params["epochs"] == 2 and record.params["arch"] == "mlp-2"
    assert "params_changed" not in record.status["attempts"][-1]
    # 64 samples, batches of 8: 8 steps an epoch, logged at Lightning's steps from 0, each once.
    assert _steps(sweep, "train/loss") == list(range(16))
    assert _steps(sweep, "epoch") == list(range(16))  # Lightning repeats `epoch` with the validation metrics
    assert _steps(sweep, "val/loss") == [7, 15]

    # ModelCheckpoint wrote into the run, and each file it saved is a checkpoint of the run: a hard link.
    run_dir = sweep.path / "runs" / "0"
    lightning_file = run_dir / "checkpoints" / "epoch=1-step=16.ckpt"
    assert lightning_file.is_file()
    metas = [json.loads(p.read_text()) for p in sorted((run_dir / "checkpoints").glob("0*/lightning.json"))]
    assert [m["path"] for m in metas] == ["checkpoints/epoch=0-step=8.ckpt", "checkpoints/epoch=1-step=16.ckpt"]
    assert all(m["monitor"] == "val/loss" and isinstance(m["score"], float) for m in metas)
    latest = run_dir / "checkpoints" / "000002"
    assert os.stat(latest / "epoch=1-step=16.ckpt").st_ino == lightning_file.stat().st_ino
    assert json.loads((latest / "checkpoint.json").read_text())["step"] == 15  # the last step it holds

    table = run_cli("table", "latest", "--all-params", "-m", "val/loss:last", "-m", "train/loss:min", check=True)
    assert "arch" in table.stdout and "mlp-2" in table.stdout and "COMPLETED" in table.stdout
    assert f"{metas[-1]['score']:.4g}" in table.stdout
    shown = run_cli("show", f"{sweep.id}/0", check=True).stdout
    assert "checkpoint: checkpoints/000002 (step 15, attempt 1)" in shown
    assert "train/loss (last" in shown and "16 points" in shown
    assert "1: job - on" in shown and "completed" in shown


def test_ddp_on_two_processes_is_one_run_with_every_step_once(hpctrack_root, tmp_path):
    # Lightning starts rank 1 by running the main module again: under `hpctrack launch` that is the job's
    # entry point, never submitit's (which would refuse Hydra's overrides and fail the job).
    proc = run_cli("launch", SCRIPT, "strategy=ddp", "devices=2", "--name", "ddp", "--no-progress", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    sweep = hpctrack.load_sweep("ddp")
    assert [s.name for s in (hpctrack_root / "sweeps").iterdir()] == [sweep.id]  # one run
    assert sweep.run(0).status["state"] == "completed"
    # Each rank takes half of the 64 samples: 4 steps an epoch, every one stored once (rank 0's).
    assert _steps(sweep, "train/loss") == list(range(8))
    assert _steps(sweep, "val/loss") == [3, 7]
    assert sweep.run(0).params["strategy"] == "ddp" and sweep.run(0).params["arch"] == "mlp-2"


def test_a_requeue_signal_before_fitting_goes_to_lightnings_handler(hpctrack_root, tmp_path):
    # On SLURM the time-limit (or preemption) signal may come before Lightning has installed its requeue
    # handler; the run's own handler would end the process. It is held, then handed to Lightning's handler.
    # SLURM's identity is given by hand here (the SLURM test runs the real thing), `scontrol` records its call.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text(f'#!/bin/sh\necho "$@" >> {tmp_path}/scontrol.calls\n')
    (bin_dir / "scontrol").chmod(0o755)
    slurm = {"SLURM_NTASKS": "1", "SLURM_NTASKS_PER_NODE": "1", "SLURM_JOB_NAME": "lit", "SLURM_JOB_ID": "999999",
             "SLURM_PROCID": "0", "SLURM_LOCALID": "0", "SLURM_NODEID": "0", "SLURM_NODELIST": "localhost"}  # fmt: skip
    env = {**os.environ, **slurm, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    proc = subprocess.run([sys.executable, SCRIPT, "slurm_requeue=true", "signal_before_fit=true", "epochs=1"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "SIGUSR1 kept for Lightning's SLURM requeue handler" in proc.stderr
    assert (tmp_path / "scontrol.calls").read_text().split() == ["requeue", "999999"]
    assert (tmp_path / "hpc_ckpt_1.ckpt").is_file()  # Lightning's, in its default_root_dir
    status = hpctrack.load_sweep("latest").run(0).status
    assert status["state"] == "requeued"  # the job is to start again: not completed, not interrupted
    assert status["attempts"][-1]["outcome"] == "requeued: Lightning's SLURM auto-requeue"
