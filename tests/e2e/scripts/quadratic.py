"""A study's test objective: ``loss`` = (x - 0.3)^2 + (y + 0.2)^2 plus a term that shrinks with the step.

Logs `steps` points `sleep_s` apart, so a pruner sees a trial's quality from its first steps on. Told to
stop (pruned, cancelled: SIGTERM), it takes `stop_s` to do so, as a job saving a checkpoint on its way out does.
"""

import signal
import time

import hydra

import hpctrack


@hydra.main(config_path="conf", config_name="quadratic", version_base=None)
def main(cfg):
    distance = (cfg.x - 0.3) ** 2 + (cfg.y + 0.2) ** 2
    if cfg.stop_s:

        def slow_stop(signum, frame):
            time.sleep(cfg.stop_s)
            raise SystemExit(128 + signum)

        signal.signal(signal.SIGTERM, slow_stop)
    with hpctrack.start_run(cfg) as run:
        for step in range(cfg.steps):
            run.log({"loss": distance + 0.1 / (step + 1)}, step=step)
            time.sleep(cfg.sleep_s)
        run.summary["distance"] = distance


if __name__ == "__main__":
    main()
