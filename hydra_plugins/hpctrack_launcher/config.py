"""Registers the launcher config of every backend in hpctrack's registry in Hydra's ConfigStore.

``hydra/launcher=hpctrack_<name>`` for each backend that launches sweeps
(:func:`hpctrack.launch.registry.backend_names`), with the backend's ``conf``.
"""

from __future__ import annotations

from hydra.core.config_store import ConfigStore

from hpctrack.launch.registry import backend_class, backend_names

_store = ConfigStore.instance()
for _name in backend_names():
    _store.store(group="hydra/launcher", name=f"hpctrack_{_name}", node=backend_class(_name).conf,
                 provider="hpctrack")  # fmt: skip
