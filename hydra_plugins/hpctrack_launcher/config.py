"""Registers hpctrack's launcher configs in Hydra's ConfigStore."""

from __future__ import annotations

from hydra.core.config_store import ConfigStore

from hpctrack.config import LocalLauncherConf, SlurmLauncherConf

_store = ConfigStore.instance()
_store.store(group="hydra/launcher", name="hpctrack_local", node=LocalLauncherConf, provider="hpctrack")
_store.store(group="hydra/launcher", name="hpctrack_slurm", node=SlurmLauncherConf, provider="hpctrack")
