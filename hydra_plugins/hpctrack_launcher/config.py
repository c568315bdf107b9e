"""Registers hpctrack's Hydra configs in Hydra's ConfigStore.

``hydra/launcher=hpctrack_<name>`` for each backend that launches sweeps
(:func:`hpctrack.launch.registry.backend_names`), with the backend's ``conf``;
``hydra/sweeper=hpctrack_basic``, Hydra's basic sweeper with hpctrack's launch-time
validation (:mod:`hydra_plugins.hpctrack_launcher.sweeper`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional

from hydra.core.config_store import ConfigStore

from hpctrack.launch.registry import backend_class, backend_names


@dataclass
class HpctrackBasicSweeperConf:
    """Hydra's ``BasicSweeperConf``, with hpctrack's sweeper as the target."""

    _target_: str = "hydra_plugins.hpctrack_launcher.sweeper.HpctrackBasicSweeper"
    # jobs per launch() call; None: the whole sweep at once (one sweep, one job array)
    max_batch_size: Optional[int] = None
    # sweep overrides kept in the config, as Hydra's basic sweeper's params
    params: Optional[Dict[str, str]] = None
    # true (`hpctrack launch` sets it): when the script's own config chooses another sweeper, stand aside
    # (raise SweeperChosenByConfig before anything is launched) so that the launch runs with that one
    yield_to_config: bool = False


_store = ConfigStore.instance()
for _name in backend_names():
    _store.store(group="hydra/launcher", name=f"hpctrack_{_name}", node=backend_class(_name).conf,
                 provider="hpctrack")  # fmt: skip
_store.store(group="hydra/sweeper", name="hpctrack_basic", node=HpctrackBasicSweeperConf, provider="hpctrack")
