"""HpctrackLogger's calls on a real run, as Lightning makes them: hyper-parameters logged again or
changed, metrics at Lightning's step, a store that fails under it, and how each finalize ends the run."""

from __future__ import annotations

import pytest

import hpctrack

pytest.importorskip("lightning")

from hpctrack.integrations.lightning import HpctrackLogger, HpctrackLoggerWarning


@pytest.fixture
def run(hpctrack_root, monkeypatch):
    # A plain run exports its identity into this process's environment; it must not outlive the test.
    for name in ("HPCTRACK_RUN_DIR", "HPCTRACK_RUN_ID", "HPCTRACK_ATTEMPT"):
        monkeypatch.setenv(name, "")
    run = hpctrack.start_run({"lr": 0.1, "model": {"depth": 2}}, name="lit")
    yield run
    try:
        run.finish()
    except hpctrack.HpctrackError:
        pass  # the test made its store fail


def _record(run):
    return hpctrack.load_sweep("lit").run(0)


def test_hyperparameters_beside_the_config_a_changed_value_is_kept_for_the_attempt(run, capfd):
    logger = HpctrackLogger(run=run)
    assert logger.save_dir == str(run.run_dir) and logger.run_id == run.run_id
    logger.log_hyperparams({"lr": 0.1, "arch": "mlp", "model": {"depth": 2}})
    logger.log_hyperparams({"lr": 0.1, "arch": "mlp"})  # Lightning logs them again for test(): nothing changes
    assert _record(run).params == {"lr": 0.1, "model.depth": 2, "arch": "mlp"}
    assert "params_changed" not in _record(run).status["attempts"][-1]

    logger.log_hyperparams({"lr": 0.2, "model": {"depth": 3}})  # never raises
    record = _record(run)
    assert record.params == {"lr": 0.1, "model.depth": 2, "arch": "mlp"}  # what the run was recorded with
    assert record.status["attempts"][-1]["params_changed"] == {
        "lr": {"recorded": 0.1, "logged": 0.2}, "model.depth": {"recorded": 2, "logged": 3}}  # fmt: skip
    assert "hyper-parameters lr, model.depth differ" in capfd.readouterr().err


def test_metrics_at_lightnings_step_and_its_repeated_epoch_once(run):
    import torch

    logger = HpctrackLogger(run=run)
    logger.log_metrics({"loss": torch.tensor(1.0), "epoch": 0}, step=0)
    logger.log_metrics({"val/loss": 0.5, "epoch": 0}, step=0)  # the same step again: `epoch` is not repeated
    logger.log_metrics({"loss": 0.25, "epoch": 1}, step=7)
    logger.log_metrics({"loss": 0.125})  # no step: the run's next one, not step 0
    run.flush()
    sweep = hpctrack.load_sweep("lit")
    assert sweep.history("loss").step.tolist() == [0, 7, 8]
    assert sweep.history("loss").value.tolist() == [1.0, 0.25, 0.125]
    assert sweep.history("epoch").step.tolist() == [0, 7]
    assert sweep.history("val/loss").step.tolist() == [0]


def test_a_logging_failure_is_a_warning_and_the_next_calls_go_on(run):
    import torch

    logger = HpctrackLogger(run=run)
    with pytest.warns(HpctrackLoggerWarning, match="log_metrics\\('bad'\\) failed"):
        logger.log_metrics({"bad": torch.ones(3), "good": 1.0}, step=0)
    run.flush()
    assert hpctrack.load_sweep("lit").history("good").step.tolist() == [0]

    for store_file in run.run_dir.glob("run*.h5"):  # the store is deleted under the running job
        store_file.unlink()
    with pytest.warns(HpctrackLoggerWarning, match="log_hyperparams failed, training goes on: run store .* changed"):
        logger.log_hyperparams({"arch": "mlp"})
    with pytest.warns(HpctrackLoggerWarning, match="log_metrics failed"):
        logger.log_metrics({"good": 2.0}, step=1)
    logger.log_metrics({"good": 3.0}, step=2)  # said once; every later step fails the same way, silently


def test_finalize_failed_ends_the_run_failed_with_the_error(run):
    logger = HpctrackLogger(run=run)
    try:
        raise RuntimeError("loss is NaN")
    except RuntimeError:
        logger.finalize("failed")  # as Lightning's _interrupt calls it, inside its except block
    status = _record(run).status
    assert status["state"] == "failed" and status["error"]["message"] == "loss is NaN"
    assert run.finished


def test_finalize_failed_after_ctrl_c_is_interrupted(run):
    logger = HpctrackLogger(run=run)
    try:
        raise KeyboardInterrupt
    except KeyboardInterrupt:
        logger.finalize("failed")
    assert _record(run).status["state"] == "interrupted"


def test_finalize_finished_closes_the_attempt_as_requeued_never_completed(run):
    logger = HpctrackLogger(run=run)
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.finalize("finished")  # Lightning's SLURM requeue handler
    status = _record(run).status
    assert status["state"] == "requeued"
    assert status["attempts"][-1]["outcome"] == "requeued: Lightning's SLURM auto-requeue"
    try:
        raise SystemExit(-1)
    except SystemExit:
        logger.finalize("failed")  # the job's exit that follows is not a failure
    run.finish()  # the job's entry point ends the run as it exits
    assert _record(run).status["state"] == "requeued"


def test_finalize_success_leaves_the_run_to_complete(run):
    logger = HpctrackLogger(run=run)
    logger.log_metrics({"loss": 1.0}, step=0)
    logger.finalize("success")
    assert not run.finished
    record = _record(run)
    assert record.status["state"] == "running" and record.metrics["loss"].count == 1  # stored already
    logger.log_metrics({"loss": 0.5}, step=1)  # trainer.test() after fit logs on
    run.finish()
    assert _record(run).status["state"] == "completed" and _record(run).metrics["loss"].count == 2


def test_a_held_signal_never_reaches_a_default_action_when_lightnings_handler_goes_first(tmp_path):
    # A requeue signal held until Lightning's handler is installed: if Lightning restores the default
    # action (its fit ended) between the look and the delivery, the process must not die of the signal.
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent("""
        import signal
        from hpctrack.integrations import lightning as lit

        class Run:
            def signal_handler_below(self, signum):
                return signal.SIG_DFL
            def handle_signal(self, signum, frame):
                pass

        held = lit._RequeueSignal(Run())
        held.held = True
        signal.signal(signal.SIGUSR1, signal.SIG_DFL)  # the default action back: Lightning's fit ended
        seen = iter([lambda signum, frame: None])  # ...just after its handler was seen installed
        lit.signal.getsignal = lambda signum: next(seen, signal.SIG_DFL)
        held._deliver(signal.SIGUSR1)
        print("alive")
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "alive", (proc.returncode, proc.stderr[-2000:])
