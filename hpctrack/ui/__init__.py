"""``hpctrack ui``: a read-only web dashboard over the sweeps of a root (``pip install 'hpctrack[ui]'``).

The server is a Starlette app (:func:`create_app`) run by uvicorn from ``hpctrack ui``
(:mod:`hpctrack.cli.ui`); the page is the static files in ``hpctrack/ui/static/`` and reads
nothing but the JSON API under ``api/`` (documented in ``docs/ui.md``). Every request is
checked by :mod:`.security` (token, Host header, GET/HEAD only); every answer is built by
the library call the matching CLI command makes. Nothing but the CLI imports this package,
and importing it imports neither Starlette nor uvicorn: :func:`create_app` is loaded when asked for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import create_app as create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from .app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
