"""HpctrackCallback's events called as the Trainer calls them (its state and arguments, no model trained):
which process records, the names and steps of what it logs, and failures that stay warnings."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

import hpctrack

# Imported by the tests, not here: every pytest-xdist worker collects this module, and only the one that
# runs these tests should pay for importing transformers.
transformers: Any = None
HpctrackCallback: Any = None
HpctrackCallbackWarning: Any = None


@pytest.fixture(autouse=True)
def _framework():
    global transformers, HpctrackCallback, HpctrackCallbackWarning
    transformers = pytest.importorskip("transformers", reason="pip install -e '.[test]' installs transformers")
    from hpctrack.integrations import transformers as integration

    HpctrackCallback, HpctrackCallbackWarning = integration.HpctrackCallback, integration.HpctrackCallbackWarning


def _args(tmp_path, **kw):
    return transformers.TrainingArguments(output_dir=str(tmp_path / "out"), report_to="none", use_cpu=True, **kw)


def _state(step: int, zero: bool = True):
    return transformers.TrainerState(global_step=step, is_world_process_zero=zero, is_local_process_zero=zero)


def test_importing_hpctrack_or_its_integrations_package_imports_no_framework():
    code = ("import sys, hpctrack, hpctrack.integrations; "
            "print([m for m in ('transformers', 'torch', 'lightning') if m in sys.modules])")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_metric_names_follow_the_peers():
    from hpctrack.integrations.transformers import metric_name

    assert metric_name("eval_loss") == "eval/loss"
    assert metric_name("test_accuracy") == "test/accuracy"
    assert metric_name("loss") == "train/loss" and metric_name("learning_rate") == "train/learning_rate"
    assert metric_name("evaluation") == "train/evaluation"  # only the prefix with its underscore
    assert metric_name("val/acc") == "val/acc"  # already named by the user: kept


def test_only_the_world_process_zero_records(hpctrack_root, tmp_path):
    callback = HpctrackCallback()
    args, state, control = _args(tmp_path), _state(5, zero=False), transformers.TrainerControl()
    (tmp_path / "out" / "checkpoint-5").mkdir(parents=True)
    callback.on_train_begin(args, state, control, model=None)
    callback.on_log(args, state, control, logs={"loss": 0.5})
    callback.on_evaluate(args, state, control, metrics={"eval_loss": 0.4})
    callback.on_save(args, state, control)
    callback.on_train_end(args, state, control)
    # No run was looked for or made: a second process making its own one-run sweep would split the run.
    assert callback.run is None and not hpctrack_root.exists()


def test_what_is_logged_where_and_once_per_step(hpctrack_root, tmp_path):
    import torch

    args, control = _args(tmp_path, learning_rate=0.25), transformers.TrainerControl()
    with hpctrack.start_run({"seed": 3}) as run:
        callback = HpctrackCallback()
        callback.on_train_begin(args, _state(0), control, model=None)
        assert callback.run is run  # the run open in this process, not a new sweep
        callback.on_log(args, _state(1), control, logs={"loss": torch.tensor(0.5), "epoch": 0.1})
        state = _state(2)
        callback.on_log(args, state, control, logs={"loss": 0.25, "grad_norm": 1.0, "epoch": 0.2})
        # Trainer.evaluate: log() first (the epoch again), then on_evaluate with the same metrics.
        metrics = {"eval_loss": 0.3, "eval_runtime": 0.01, "epoch": 0.2}
        callback.on_log(args, state, control, logs=metrics)
        callback.on_evaluate(args, state, control, metrics=metrics)
        callback.on_predict(args, state, control, metrics={"test_loss": 0.35})
        with pytest.warns(HpctrackCallbackWarning) as warned:
            callback.on_log(args, state, control, logs={"note": "text", "pair": [1, 2], "custom": 7})
        assert [str(w.message).split(": ", 2)[2] for w in warned] == [
            "'note' is not logged: a str, not a number (the Trainer keeps it in state.log_history)",
            "'pair' is not logged: a list, not a number (the Trainer keeps it in state.log_history)",
        ]
        callback.on_log(args, state, control, logs={"note": "again"})  # warned once per key
        callback.on_log(args, state, control, logs={"train_runtime": 1.5, "train_loss": 0.3, "total_flos": 9.0})
        run.flush()
        record = run._store.read()
        histories = {key: run._store.read_history(key) for key in record.metrics}
    assert {key: h.step.tolist() for key, h in histories.items()} == {
        "train/loss": [1, 2], "train/epoch": [1, 2], "train/grad_norm": [2], "eval/loss": [2],
        "eval/runtime": [2], "test/loss": [2], "train/custom": [2],
    }  # fmt: skip
    assert histories["train/loss"].value.tolist() == [0.5, 0.25]
    assert record.summary == {"train_runtime": 1.5, "train_loss": 0.3, "total_flos": 9.0}
    assert record.params["seed"] == 3 and record.params["hf.args.learning_rate"] == 0.25  # beside the config


def test_a_recording_failure_is_a_warning_and_training_goes_on(hpctrack_root, tmp_path):
    args, control = _args(tmp_path), transformers.TrainerControl()
    with hpctrack.start_run({}) as run:
        callback = HpctrackCallback()
        callback.on_log(args, _state(1), control, logs={"loss": 1.0})
    # The run has ended (its `with` block is over) while the Trainer goes on logging.
    with pytest.warns(HpctrackCallbackWarning, match=r"on_log could not record: HpctrackError: run .* has ended"):
        callback.on_log(args, _state(2), control, logs={"loss": 0.5})
    for step in (3, 4):
        callback.on_log(args, _state(step), control, logs={"loss": 0.5})  # counted, not repeated
    with pytest.warns(HpctrackCallbackWarning, match="2 more failures of on_log were not shown"):
        callback.on_train_end(args, _state(4), control)
    assert callback.run is run and run._store.read_history("train/loss").step.tolist() == [1]


def test_the_params_are_whole_and_prefixed(hpctrack_root, tmp_path):
    config = transformers.BertConfig(num_labels=300, hidden_size=16, notes="n" * 20_000)
    model = type("Model", (), {"config": config})()
    args = _args(tmp_path, run_name="r" * 1000)
    with hpctrack.start_run({}) as run:
        HpctrackCallback().on_train_begin(args, _state(0), transformers.TrainerControl(), model=model)
        params = run._store.read().params
    assert params["hf.model.notes"] == "n" * 20_000 and params["hf.args.run_name"] == "r" * 1000
    assert params["hf.model.hidden_size"] == 16
    assert json.loads(json.dumps(params["hf.model.id2label"])) == {str(i): f"LABEL_{i}" for i in range(300)}
    assert not [k for k in params if k.startswith("hf.model.id2label.")]  # one param, not 300
