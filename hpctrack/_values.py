"""Values a run records: params flattened from the config, and summary/tags coerced to plain JSON.

Coercion happens when a value is set, so a numpy or torch scalar never reaches the store, and
a key longer than a store can hold is refused at the line that set it.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping

from ._names import check_name
from .errors import ConfigError

__all__ = ["TrackedDict", "jsonable", "flatten_config", "whole_params"]


class TrackedDict(dict):
    """A dict that remembers which keys were set since the last flush."""

    def __init__(self) -> None:
        super().__init__()
        self._dirty: set = set()

    def __setitem__(self, key: str, value: Any) -> None:
        if not isinstance(key, str):
            raise TypeError(f"keys must be strings, got {type(key).__name__}")
        check_name("key", key)
        super().__setitem__(key, jsonable(value))
        self._dirty.add(key)

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, value in dict(*args, **kwargs).items():
            self[key] = value

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return self[key]

    def take_dirty(self) -> Dict[str, Any]:
        dirty, self._dirty = self._dirty, set()
        return {k: self[k] for k in dirty if k in self}


def jsonable(value: Any) -> Any:
    """Plain JSON types from numpy/torch scalars, tuples, paths and mappings."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        try:
            return jsonable(value.item())
        except (TypeError, ValueError):
            pass
    if hasattr(value, "tolist"):
        return jsonable(value.tolist())
    return str(value)


def flatten_config(cfg: Any) -> Dict[str, Any]:
    """The resolved config as ``{"optimizer.lr": 0.1, ...}``; lists stay whole values.

    Values of secret-looking keys are masked (:mod:`hpctrack.secrets`); a secret given as
    ``${oc.env:NAME}`` stays unresolved.
    """
    from .secrets import mask_config

    if cfg is None:
        return {}
    if isinstance(cfg, Mapping):  # a DictConfig too
        cfg = mask_config(cfg)
    if not isinstance(cfg, Mapping):
        raise ConfigError(f"start_run(cfg): cfg must be a mapping or DictConfig, got {type(cfg).__name__}")
    out: Dict[str, Any] = {}

    def walk(node: Mapping[str, Any], prefix: str) -> None:
        for key, value in node.items():
            name = check_name("param key", f"{prefix}{key}", "shorten the config key")
            if isinstance(value, Mapping) and value:
                walk(value, name + ".")
            else:
                out[name] = jsonable(value)

    walk(cfg, "")
    return out


def whole_params(params: Mapping[str, Any]) -> Dict[str, Any]:
    """``params`` as JSON values, one per key as given (nested mappings and lists whole), secrets masked."""
    from .secrets import mask_mapping

    out: Dict[str, Any] = {}
    for key, value in mask_mapping(dict(params)).items():
        out[check_name("param key", str(key), "shorten the key")] = jsonable(value)
    return out
