"""A test job whose config has config groups (opt, data) and a typed (structured) node, train."""

from dataclasses import dataclass

import hydra
from hydra.core.config_store import ConfigStore

import hpctrack


@dataclass
class TrainConf:
    epochs: int = 2
    scale: float = 1.0


ConfigStore.instance().store(group="train", name="schema", node=TrainConf)


@hydra.main(config_path="conf", config_name="grouped", version_base=None)
def main(cfg):
    with hpctrack.start_run(cfg) as run:
        run.log({"lr": float(cfg.opt.lr)}, step=0)


if __name__ == "__main__":
    main()
