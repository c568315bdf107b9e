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
        import pytest

        # Detailed assertion messages in the suite, as in a test module (before its first import).
        pytest.register_assert_rewrite(f"{__name__}.stores")
        from .stores import StoreTests

        return StoreTests
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> List[str]:
    return sorted(__all__)
