"""The backend registry: one line per scheduler.

Each entry names a backend class as ``"module:Class"``, imported only when
asked for. Listing every name (``backend_names(launchable=False)``) imports
no backend; listing those ``launch`` can submit to imports each backend's
module (cheap: their heavy dependencies, submitit, load on use). A test or a plugin may register a class itself
(``BACKENDS["toy"] = ToyBackend``). Everything that varies by backend — the
CLI's ``--backend`` choices, the Hydra launcher configs and classes, the
entry point's job environment — is read from here.
"""

from __future__ import annotations

import importlib
from typing import Dict, List, Type, Union

from ..errors import ConfigError
from .base import Backend

__all__ = ["BACKENDS", "backend_class", "backend_names"]

#: Backends by name, as in ``--backend``, in manifests, and in ``hydra/launcher=hpctrack_<name>``.
BACKENDS: Dict[str, Union[str, Type[Backend]]] = {
    "local": "hpctrack.launch.local:LocalBackend",
    "slurm": "hpctrack.launch.slurm:SlurmBackend",
    "direct": "hpctrack.launch.direct:DirectBackend",
}


def backend_class(name: str) -> Type[Backend]:
    """The backend class registered as ``name``.

    Raises
    ------
    ConfigError
        No backend has that name; the message lists those that do.
    """
    try:
        entry = BACKENDS[name]
    except KeyError:
        raise ConfigError(f"unknown backend {name!r}; choose one of: {', '.join(backend_names())}") from None
    if isinstance(entry, str):
        module, _, attr = entry.partition(":")
        cls = getattr(importlib.import_module(module), attr)
        if not (isinstance(cls, type) and issubclass(cls, Backend)):
            raise TypeError(f"backend {name!r} ({entry}) is not a hpctrack.launch.base.Backend")
        return cls
    return entry


def backend_names(*, launchable: bool = True) -> List[str]:
    """Registered backend names, sorted; with ``launchable``, only those ``hpctrack launch`` can submit to."""
    return sorted(name for name in BACKENDS if not launchable or backend_class(name).launches)


def can_submit(name: str) -> bool:
    """Whether ``hpctrack resume``/``requeue`` can submit jobs of a sweep of backend ``name``.

    False for a plain script run (``python train.py``); True for a backend this installation
    does not know, for which ``resume`` gives its own error.
    """
    try:
        return backend_class(name).launches
    except Exception:
        return True
