"""Hydra override strings (``key=value``, ``+key=value``, ``~key``): the one place they are split."""

from __future__ import annotations

from typing import Any, Dict, Sequence, Tuple

__all__ = ["split_override", "typed_value", "override_values"]


def split_override(override: str) -> Tuple[str, str]:
    """An override's key, without Hydra's ``+``/``++``/``~`` prefix, and its value text."""
    key, _, value = override.partition("=")
    return key.lstrip("+~"), value


def typed_value(text: str) -> Any:
    """An override's value as the type Hydra would give it (int, float, bool, null, str)."""
    lowered = text.strip().lower()
    if lowered in ("null", "none", "~"):
        return None
    if lowered in ("true", "false"):
        return lowered == "true"
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text.strip("'\"")


def override_values(overrides: Sequence[str]) -> Dict[str, Any]:
    """A job's overrides as ``{key: typed value}``; a later override of a key wins."""
    out = {}
    for override in overrides:
        key, value = split_override(override)
        out[key] = typed_value(value)
    return out
