"""Train a one-hidden-layer numpy MLP on scikit-learn's digits, tracked by hpctrack.

Run plainly:   python examples/digits/train.py optimizer.lr=0.05
Run a sweep:   hpctrack launch examples/digits/train.py 'optimizer.lr=0.01,0.1' 'seed=0,1,2'
"""

import tempfile
import time
from pathlib import Path

import hydra
import numpy as np

import hpctrack

import model  # sibling module: the script's directory is on sys.path


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _is_num(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def validate(cfg) -> None:
    """Raise ValueError with a one-line message for the first bad config value."""

    def need_int(key: str, value, minimum: int) -> None:
        if not (_is_int(value) and value >= minimum):
            raise ValueError(f"{key} must be an integer >= {minimum}, got {value!r}")

    def need_num(key: str, value, ok, rule: str) -> None:
        if not (_is_num(value) and ok(value)):
            shown = float(value) if _is_num(value) else value
            raise ValueError(f"{key} must be {rule}, got {shown!r}")

    opt = cfg.optimizer
    if opt.name not in model.OPTIMIZERS:
        raise ValueError(f"optimizer.name must be one of {', '.join(model.OPTIMIZERS)}, got {opt.name!r}")
    need_num("optimizer.lr", opt.lr, lambda v: v > 0, "> 0")
    need_num("optimizer.momentum", opt.get("momentum", 0.9), lambda v: 0 <= v < 1, "in [0, 1)")
    need_num("optimizer.beta1", opt.get("beta1", 0.9), lambda v: 0 <= v < 1, "in [0, 1)")
    need_num("optimizer.beta2", opt.get("beta2", 0.999), lambda v: 0 <= v < 1, "in [0, 1)")
    need_int("seed", cfg.seed, 0)
    need_int("epochs", cfg.epochs, 1)
    need_int("batch_size", cfg.batch_size, 1)
    need_int("model.hidden", cfg.model.hidden, 1)
    need_num("val_fraction", cfg.val_fraction, lambda v: 0 < v < 1, "in (0, 1)")
    need_num("test_fraction", cfg.test_fraction, lambda v: 0 < v < 1, "in (0, 1)")
    need_num("val_fraction + test_fraction", cfg.val_fraction + cfg.test_fraction, lambda v: v < 1, "< 1")


@hydra.main(config_path="conf", config_name="config", version_base=None)
def main(cfg):
    with hpctrack.start_run(cfg) as run:  # params = the resolved config
        # Validate first thing, inside the run, so a bad value fails the job
        # and the tracker records the failure with this one-line message.
        validate(cfg)
        (X_tr, y_tr), (X_val, y_val), (X_te, y_te) = model.load_data(cfg.val_fraction, cfg.test_fraction, cfg.seed)
        rng = np.random.default_rng(cfg.seed)
        params = model.init_params(X_tr.shape[1], cfg.model.hidden, 10, rng)
        state = model.init_optimizer_state(params)
        opt = cfg.optimizer

        # After a requeue (time limit, preemption) or `hpctrack resume`, continue from the
        # last epoch saved: weights, optimizer state and the RNG, so the numbers are the
        # same as in an uninterrupted run.
        saved = run.restore_checkpoint()
        start = 0
        if saved is not None:
            params, state, start = saved["params"], saved["optimizer"], saved["epoch"] + 1
            rng.bit_generator.state = saved["rng"]

        for epoch in range(start, cfg.epochs):
            train_loss = model.train_epoch(
                params,
                state,
                X_tr,
                y_tr,
                rng,
                batch_size=cfg.batch_size,
                optimizer=opt.name,
                lr=float(opt.lr),
                momentum=float(opt.get("momentum", 0.9)),
                beta1=float(opt.get("beta1", 0.9)),
                beta2=float(opt.get("beta2", 0.999)),
            )
            val_loss, val_acc = model.evaluate(params, X_val, y_val)
            run.log({"train/loss": train_loss, "val/loss": val_loss, "val/acc": val_acc}, step=epoch)
            run.save_checkpoint({"epoch": epoch, "params": params, "optimizer": state, "rng": rng.bit_generator.state})
            if cfg.get("epoch_sleep_s"):  # for trying requeues: make an epoch take this long
                time.sleep(cfg.epoch_sleep_s)

        with tempfile.TemporaryDirectory() as tmp:
            path = model.save_model(Path(tmp) / "model.npz", params)
            run.log_artifact(str(path))

        test_loss, test_acc = model.evaluate(params, X_te, y_te)
        run.summary["test/acc"] = test_acc
        run.summary["test/loss"] = test_loss


if __name__ == "__main__":
    main()
