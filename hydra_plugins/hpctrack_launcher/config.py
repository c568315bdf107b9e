"""Registers hpctrack's launcher configs in Hydra's ConfigStore."""

from __future__ import annotations

from hydra.core.config_store import ConfigStore

from hpctrack.config import LocalLauncherConf

ConfigStore.instance().store(group="hydra/launcher", name="hpctrack_local", node=LocalLauncherConf, provider="hpctrack")
