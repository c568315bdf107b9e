"""A test job that checkpoints every step and resumes from its checkpoint.

Logs `steps` points `sleep_s` apart and saves a checkpoint after each. Fails at
step `fail_at` while the file `fail_flag` exists (remove it to let a requeue
succeed). A restarted attempt continues after its last checkpoint.
"""

import os
import time

import hydra

import hpctrack


@hydra.main(config_path="conf", config_name="resumable", version_base=None)
def main(cfg):
    with hpctrack.start_run(cfg) as run:
        saved = run.restore_checkpoint()
        start = saved["step"] + 1 if saved else 0
        for step in range(start, cfg.steps):
            if cfg.fail_flag and step == cfg.fail_at and os.path.exists(cfg.fail_flag):
                raise RuntimeError(f"failing on purpose at step {step}: {cfg.fail_flag} exists")
            time.sleep(cfg.sleep_s)
            run.log({"loss": 1.0 / (step + 1), "x": float(cfg.x)}, step=step)
            run.save_checkpoint({"step": step})
        run.summary["final"] = float(cfg.x) * 10


if __name__ == "__main__":
    main()
