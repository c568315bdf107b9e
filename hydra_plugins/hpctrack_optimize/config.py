"""``hydra/sweeper=hpctrack_optimize``: the sweeper config, registered in Hydra's ConfigStore."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from hydra.core.config_store import ConfigStore


@dataclass
class OptimizeSweeperConf:
    """A study run by ``hpctrack launch --optimize``; the CLI sets these, the manifest keeps them."""

    _target_: str = "hydra_plugins.hpctrack_optimize.sweeper.OptimizeSweeper"
    # the objective: KEY[:last|min|max][:min|max] (see hpctrack.optimize.objective)
    objective: Optional[str] = None
    # minimize or maximize; None: the objective's :min/:max suffix says it
    direction: Optional[str] = None
    # trials in all, ended (completed, failed or pruned)
    trials: int = 0
    # most trials running at once
    parallel: int = 1
    # tpe or random
    sampler: str = "tpe"
    # median, percentile, hyperband; None: no pruning
    prune: Optional[str] = None
    # seconds between two looks at the running trials
    poll_s: float = 2.0
    # the sampler's random seed (hydra.sweeper.seed=N on the launch line): the same trials in the same order
    seed: Optional[int] = None
    # true: check the space and create the sweep, submit nothing (the launching process); false: drive it
    prepare: bool = False


ConfigStore.instance().store(group="hydra/sweeper", name="hpctrack_optimize", node=OptimizeSweeperConf,
                             provider="hpctrack")  # fmt: skip
