"""A test job that logs as fast as it can (random values: nothing to compress), to fill a disk."""

import random
import time

import hydra

import hpctrack


@hydra.main(config_path="conf", config_name="filler", version_base=None)
def main(cfg):
    rng = random.Random(0)
    with hpctrack.start_run(cfg, store=cfg.store) as run:
        for step in range(cfg.steps):
            run.log({"a": rng.random(), "b": rng.random(), "c": rng.random()}, step=step)
            if cfg.sleep_s:
                time.sleep(cfg.sleep_s)
        run.summary["done"] = True


if __name__ == "__main__":
    main()
