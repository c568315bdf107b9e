"""A Hydra app whose task returns a quadratic's value, logging it with hpctrack: a sweeper's objective."""

import time

import hydra

import hpctrack


@hydra.main(config_path="conf", config_name="config", version_base=None)
def main(cfg) -> float:
    with hpctrack.start_run(cfg) as run:
        time.sleep(cfg.get("sleep_s", 0))
        if cfg.get("fail_above") is not None and cfg.x > cfg.fail_above:
            raise ValueError(f"x={cfg.x} is above {cfg.fail_above}")
        loss = (cfg.x - 2.0) ** 2 + (cfg.y + 1.0) ** 2
        run.log({"loss": loss}, step=0)
        run.summary["loss"] = loss
    return loss


if __name__ == "__main__":
    main()
