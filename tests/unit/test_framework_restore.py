"""What a framework that keeps its own checkpoints needs of a run: ``run.restored_from(step)``
(a restart after a checkpoint hpctrack did not choose) and ``run.log_params(..., flatten=False)``."""

from __future__ import annotations

import atexit
import time

import hpctrack
from hpctrack.manifest import JobRecord, Manifest, create_sweep, new_sweep_id
from hpctrack.run import open_job_run


def _die(run) -> None:
    """What a process killed outright leaves: no end recorded, its lease free, no exit handler run."""
    run.flush()
    run._flusher.stop()
    run._release_lease()
    atexit.unregister(run._at_exit)
    hpctrack.run._current = None


def test_an_older_checkpoint_restored_by_the_framework_supersedes_from_its_step(hpctrack_root):
    manifest = create_sweep(hpctrack_root, Manifest(id=new_sweep_id(), created=time.time(), backend="local",
                                                    store="hdf5", jobs=[JobRecord(0, [], "runs/0")]))  # fmt: skip
    run = open_job_run(manifest.path, 0)
    for step in range(1, 9):
        run.log({"loss": float(step)}, step=step)
        if step in (4, 6):
            run.save_checkpoint(step=step)
    _die(run)

    again = open_job_run(manifest.path, 0)
    older = [c for c in again._checkpoints.all() if c.step == 4][0]
    # The framework resumed from step 4 although the newest checkpoint is step 6 (say, the files of
    # step 6 were lost): what attempt 1 logged at steps 5..8 is superseded, none of it kept twice.
    again.restored_from(4, checkpoint=older)
    for step in range(5, 8):
        again.log({"loss": 10.0 + step}, step=step)
    again.finish()
    record = again._store.read()
    assert record.status["attempts"][1]["restart_step"] == 5
    assert record.status["attempts"][1]["restored_from"]["path"] == f"checkpoints/{older.path.name}"
    history = again._store.read_history("loss")
    assert history.step.tolist() == [1, 2, 3, 4, 5, 6, 7]
    assert history.attempt.tolist() == [1, 1, 1, 1, 2, 2, 2]


def test_a_checkpoint_the_run_never_recorded_is_named_by_its_path(hpctrack_root):
    manifest = create_sweep(hpctrack_root, Manifest(id=new_sweep_id(), created=time.time(), backend="local",
                                                    store="zarr", jobs=[JobRecord(0, [], "runs/0")]))  # fmt: skip
    run = open_job_run(manifest.path, 0)
    for step in range(1, 6):
        run.log({"loss": float(step)}, step=step)
    _die(run)

    again = open_job_run(manifest.path, 0)
    again.restored_from(3, path="/scratch/out/checkpoint-3")
    again.log({"loss": 40.0}, step=4)
    again.finish()
    record = again._store.read()
    assert record.status["attempts"][1]["restored_from"] == {"step": 3, "path": "/scratch/out/checkpoint-3"}
    history = again._store.read_history("loss")
    assert history.step.tolist() == [1, 2, 3, 4] and history.value.tolist() == [1.0, 2.0, 3.0, 40.0]


def test_log_params_unflattened_keeps_nested_and_long_values_whole_and_masks_secrets(hpctrack_root):
    labels = {str(i): f"label-{i}" for i in range(2000)}
    with hpctrack.start_run({"lr": 0.1}) as run:
        run.log_params({"hf.model.id2label": labels, "hf.args.run_name": "r" * 10_000,
                        "hf.args.hub_token": "hf_secret", "hf.args.fsdp_config": {"min_num_params": 0}},
                       flatten=False)  # fmt: skip
        run.log_params({"extra": {"nested": 1}})  # the default still flattens
    params = run._store.read().params
    assert params["lr"] == 0.1 and params["extra.nested"] == 1
    assert params["hf.model.id2label"] == labels  # one param, not one per label
    assert params["hf.args.run_name"] == "r" * 10_000
    assert params["hf.args.fsdp_config"] == {"min_num_params": 0}
    assert params["hf.args.hub_token"] == "***"
