"""Conformance suites a new backend subclasses (as Hydra ships ``LauncherTestSuite``).

``StoreTests`` checks a run store backend (:mod:`hpctrack.testing.stores`).
Imported lazily: ``import hpctrack.testing`` loads neither pytest nor a backend.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, List

if TYPE_CHECKING:
    from .stores import StoreTests as StoreTests

__all__ = ["StoreTests"]


def __getattr__(name: str) -> Any:
    if name == "StoreTests":
        from .stores import StoreTests

        return StoreTests
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> List[str]:
    return sorted(list(globals()) + __all__)
