"""Run stores: one store per run behind the :class:`Store` interface (``hdf5`` or ``zarr``)."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Dict, Type

from ..errors import ConfigError
from ._hdf5 import HDF5Store
from ._zarr import ZarrStore
from .base import SECTIONS, MetricBatch, MetricHistory, MetricStats, RunRecord, Section, Store

__all__ = [
    "Store",
    "HDF5Store",
    "ZarrStore",
    "MetricBatch",
    "MetricHistory",
    "MetricStats",
    "RunRecord",
    "Section",
    "SECTIONS",
    "BACKENDS",
    "open_store",
    "store_class",
]

#: Store backends by the name used in configs and manifests.
BACKENDS: Dict[str, Type[Store]] = {HDF5Store.name: HDF5Store, ZarrStore.name: ZarrStore}


def store_class(name: str) -> Type[Store]:
    """The store backend called ``name`` (``hdf5`` or ``zarr``).

    Raises
    ------
    ConfigError
        The name is unknown, or the backend's package is not installed (the Zarr backend
        is the ``hpctrack[zarr]`` extra).
    """
    try:
        cls = BACKENDS[name]
    except KeyError:
        raise ConfigError(f"unknown store {name!r}; choose one of: {', '.join(sorted(BACKENDS))}") from None
    for module in cls.requires:
        try:
            importlib.import_module(module)
        except ImportError as err:
            raise ConfigError(f"the {name} store needs the {module} package: {cls.install_hint}") from err
    return cls


def open_store(run_dir: Path, name: str) -> Store:
    """The store of the run in ``run_dir`` for backend ``name`` (need not exist yet)."""
    cls = store_class(name)
    return cls(Path(run_dir) / f"run{cls.suffix}")
