"""A test job: logs `steps` points `sleep_s` apart; raises at step `fail_at` if set.

With `block_after: K` its main thread blocks for good before step K (as in a collective that
never returns), while the run's background flush thread goes on.
"""

import threading
import time

import hydra

import hpctrack


@hydra.main(config_path="conf", config_name="sleepy", version_base=None)
def main(cfg):
    with hpctrack.start_run(cfg) as run:
        for step in range(cfg.steps):
            if cfg.fail_at is not None and step == cfg.fail_at:
                raise RuntimeError(f"failing on purpose at step {step}")
            if cfg.block_after is not None and step == cfg.block_after:
                threading.Event().wait()
            run.log({"loss": 1.0 / (step + 1), "x": float(cfg.x)}, step=step)
            time.sleep(cfg.sleep_s)
        run.summary["final"] = float(cfg.x) * 10


if __name__ == "__main__":
    main()
