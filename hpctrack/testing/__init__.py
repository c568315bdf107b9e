"""Conformance suites that a new backend subclasses, as Hydra ships ``LauncherTestSuite``.

``from hpctrack.testing import BackendTests`` imports pytest: import this
package from tests only.
"""

from __future__ import annotations

from typing import Any

__all__ = ["BackendTests"]


def __getattr__(name: str) -> Any:
    # Lazy: each suite imports pytest, and only the suite asked for is loaded.
    if name == "BackendTests":
        from .backends import BackendTests

        return BackendTests
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
