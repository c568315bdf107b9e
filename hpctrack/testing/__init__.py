"""Conformance suites a new backend subclasses (as Hydra ships ``LauncherTestSuite``).

``StoreTests`` checks a run store backend (:mod:`hpctrack.testing.stores`),
``BackendTests`` a launch backend (:mod:`hpctrack.testing.backends`).
Imported lazily: ``import hpctrack.testing`` loads neither pytest nor a backend;
each suite imports pytest, so import them from tests only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, List

if TYPE_CHECKING:
    from .backends import BackendTests as BackendTests
    from .stores import StoreTests as StoreTests

__all__ = ["BackendTests", "StoreTests"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        import pytest

        module = "stores" if name == "StoreTests" else "backends"
        # Detailed assertion messages in the suite, as in a test module (before its first import).
        pytest.register_assert_rewrite(f"{__name__}.{module}")
        from importlib import import_module

        return getattr(import_module(f"{__name__}.{module}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> List[str]:
    return sorted(__all__)
