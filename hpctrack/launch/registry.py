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

import dataclasses
import importlib
from typing import Dict, List, Set, Type, Union

from ..errors import ConfigError
from .base import Backend

__all__ = [
    "BACKENDS",
    "backend_class",
    "backend_names",
    "launcher_fields",
    "backends_with_setting",
    "check_launcher_setting",
]

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


def launcher_fields(name: str) -> Set[str]:
    """The fields of backend ``name``'s launcher config (none when it has no config)."""
    conf = backend_class(name).conf
    return {f.name for f in dataclasses.fields(conf)} if conf is not None else set()


def backends_with_setting(field: str) -> List[str]:
    """The launchable backends whose launcher config has the setting ``field``."""
    return [name for name in backend_names() if field in launcher_fields(name)]


def check_launcher_setting(backend: str, key: str, shown: str) -> None:
    """Refuse ``hydra.launcher.<key>`` (``shown``: the override as written) when ``backend``'s launcher lacks it.

    One line naming the backend that takes it (``hydra.launcher.runs_per_task=2: a SLURM
    launcher setting; add --backend slurm``), else the settings ``backend``'s launcher has.

    Raises
    ------
    ConfigError
        ``backend``'s launcher has no setting ``key`` (its first dotted part).
    """
    field = key.split(".")[0]
    fields = launcher_fields(backend)
    if field in fields:
        return
    owners = [name for name in backends_with_setting(field) if name != backend]
    if owners:
        raise ConfigError(f"{shown}: a {' or '.join(backend_class(n).label for n in owners)} launcher setting; "
                          f"add --backend {owners[0]}")  # fmt: skip
    raise ConfigError(f"{shown}: the {backend} launcher has no setting {field!r} "
                      f"(it has: {', '.join(sorted(f for f in fields if not f.startswith('_')))})")  # fmt: skip


def can_submit(name: str) -> bool:
    """Whether ``hpctrack resume``/``requeue`` can submit jobs of a sweep of backend ``name``.

    False for a plain script run (``python train.py``); True for a backend this installation
    does not know, for which ``resume`` gives its own error.
    """
    try:
        return backend_class(name).launches
    except Exception:
        return True
