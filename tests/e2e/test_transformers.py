"""A Hugging Face Trainer with HpctrackCallback, through the CLI: a tiny BERT built from a config (nothing
downloaded) trains, checkpoints, is killed, and resumes into the same run with every step once; a plain
script makes its own one-run sweep and trains on when its store's disk fills up."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import SCRIPTS, run_cli

pytestmark = pytest.mark.e2e
SCRIPT = SCRIPTS / "hf_trainer.py"


@pytest.fixture(autouse=True)
def _framework():
    # Here, not at import: every pytest-xdist worker collects this module.
    pytest.importorskip("transformers", reason="pip install -e '.[test]' installs transformers")


def _steps(sweep, key):
    return sweep.history(key).step.tolist()


def test_a_killed_trainer_resumes_from_its_checkpoint_into_the_same_run(hpctrack_root, tmp_path):
    import hpctrack
    from hpctrack.store import open_store

    # Attempt 1 checkpoints at steps 5 and 10, logs steps 11-13 (flushed: they are on disk), then is
    # killed (SIGKILL); `resume` starts attempt 2, which the Trainer resumes from checkpoint-10.
    # No start_run(cfg) in the script: the callback records the job's Hydra config itself. After
    # training, evaluate() runs twice more at the last step: the history keeps one value per step.
    proc = run_cli("launch", str(SCRIPT), "kill_at=13", "record_config=false", "evaluate_after=true", "--name", "hf",
                   "--no-progress", cwd=tmp_path)  # fmt: skip
    assert proc.returncode != 0, proc.stdout + proc.stderr
    assert hpctrack.load_sweep("hf").status()[0].state == "FAILED"
    proc = run_cli("resume", "hf", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr

    sweep = hpctrack.load_sweep("hf")
    run_dir = sweep.manifest.run_path(0)
    record = sweep.run(0)
    assert record.status["state"] == "completed"
    first, second = record.status["attempts"]
    assert "ended without recording its end" in first["outcome"]
    assert second["restart_step"] == 11 and second["restored_from"]["step"] == 10
    # Every step once: attempt 2's replay of steps 11-13 replaced attempt 1's.
    assert _steps(sweep, "train/loss") == list(range(1, 21))
    assert sweep.history("train/loss").attempt.tolist() == [1] * 10 + [2] * 10
    raw = open_store(run_dir, sweep.manifest.store).read_history("train/loss", raw=True)
    assert sorted(s for s, a in zip(raw.step.tolist(), raw.attempt.tolist()) if a == 1) == list(range(1, 14))
    assert _steps(sweep, "train/epoch") == list(range(1, 21))  # not again for the evaluations' logs
    assert _steps(sweep, "eval/loss") == [5, 10, 15, 20]
    for key in ("eval/loss", "eval/runtime"):  # the evaluations after training: not stored twice at step 20
        raw = open_store(run_dir, sweep.manifest.store).read_history(key, raw=True)
        assert sorted(s for s, a in zip(raw.step.tolist(), raw.attempt.tolist()) if a == 2) == [15, 20], key
    assert {"eval/loss", "eval/runtime"} <= set(record.summary)  # the later evaluations' values
    table = json.loads(run_cli("table", "hf", "-m", "eval/runtime:count", "--format", "json", check=True).stdout)
    assert table[0]["eval/runtime:count"] == 4
    assert _steps(sweep, "train/custom") == [20]
    assert "note" not in " ".join(record.metrics)
    assert {"train_runtime", "train_loss", "total_flos"} <= set(record.summary)

    # The params: the Hydra config, and beside it the TrainingArguments and the model config, whole.
    params = record.params
    assert params["max_steps"] == 20 and params["hf.args.max_steps"] == 20
    assert record.info["config_yaml"]  # the Hydra job's config, recorded by the callback
    assert params["hf.args.learning_rate"] == 5e-5 and params["hf.model.hidden_size"] == 16
    assert params["hf.model.notes"] == "n" * 5000

    # The run's checkpoints name the Trainer's directories (in the run's directory, where the job ran),
    # which hold the model; the run's own hold nothing but the reference.
    for checkpoint in sweep_checkpoints(run_dir):
        ref = json.loads((checkpoint / "transformers.json").read_text())
        assert ref["in_run"] == f"out/checkpoint-{ref['global_step']}"
        assert (run_dir / ref["in_run"] / "trainer_state.json").is_file()
        assert sorted(p.name for p in checkpoint.iterdir()) == ["checkpoint.json", "transformers.json"]
    assert [json.loads((c / "transformers.json").read_text())["global_step"] for c in sweep_checkpoints(run_dir)] \
        == [15, 20]  # fmt: skip

    show = run_cli("show", "hf/0", check=True).stdout
    assert "restarted at step 11" in show and "checkpoint: checkpoints/" in show and "(step 20, attempt 2)" in show
    table = json.loads(run_cli("table", "hf", "--format", "json", check=True).stdout)
    assert table[0]["state"] == "COMPLETED" and table[0]["train/custom:last"] == 1.5
    logs = "".join(p.read_text() for p in (run_dir / "logs").glob("*.err"))
    assert "HpctrackCallbackWarning" in logs and "'note' is not logged: a str" in logs
    assert "eval/runtime logged again at step 20" in logs


def sweep_checkpoints(run_dir):
    return sorted((run_dir / "checkpoints").iterdir())


def test_a_plain_script_makes_a_one_run_sweep_and_trains_on_when_the_disk_fills(hpctrack_root, tmp_path, small_tmpfs):
    import hpctrack

    # The storage root on a 12 MB filesystem that the script fills at step 12; the Trainer's own
    # output directory (the working directory) is elsewhere.
    root = small_tmpfs / "root"
    env = {**os.environ, "HPCTRACK_ROOT": str(root), "HPCTRACK_FLUSH_INTERVAL_S": "0.2"}
    proc = subprocess.run([sys.executable, str(SCRIPT), "fill_at=12", "record_config=false"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=240)  # fmt: skip
    assert "TRAINED 20" in proc.stdout, proc.stdout + proc.stderr  # the training went on to its end
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [f"checkpoint-{s}" for s in (10, 15, 20, 5)]
    warnings = [line for line in proc.stderr.splitlines() if "HpctrackCallbackWarning" in line]
    # Each event's first failure is said, at the script's line that runs the Trainer; the rest are counted.
    failed = [line for line in warnings if "on_log could not record: DiskFullError: no space left" in line]
    assert len(failed) == 1 and failed[0].startswith(f"{SCRIPT}:"), warnings or proc.stderr[-3000:]
    assert len([line for line in warnings if "could not record" in line]) <= 4, warnings  # log, evaluate, save, end
    assert any("more failures of on_log were not shown" in line for line in warnings), proc.stderr
    # The run could not record its end as completed: its store's disk is full (said, and the exit code).
    assert proc.returncode == 1 and "no space left" in proc.stderr

    sweep = hpctrack.load_sweep("latest", root=str(root))
    assert sweep.manifest.backend == "direct" and len(sweep.manifest.jobs) == 1  # the callback's one-run sweep
    job = json.loads(run_cli("status", "latest", "--root", str(root), "--format", "json", check=True).stdout)["jobs"][0]
    assert job["state"] == "FAILED" and "no space left" in job["error"], job  # from its end record
    record = sweep.run(0)
    assert record.params["hf.args.max_steps"] == 20 and record.params["max_steps"] == 20  # the Hydra config too
    steps = _steps(sweep, "train/loss")
    assert steps == list(range(1, len(steps) + 1)) and 5 <= len(steps) < 20  # what was stored before the disk filled
