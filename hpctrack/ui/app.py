"""The dashboard's Starlette app: the page, its static files, the JSON API, all behind the gate."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from .api import ROUTES, error_response
from .histories import HistoryCache
from .security import Gate, GateConfig

__all__ = ["create_app", "STATIC_DIR"]

#: The page: ``index.html`` and what it loads, shipped inside the package.
STATIC_DIR = Path(__file__).resolve().parent / "static"


def create_app(
    root: Path,
    *,
    token: str,
    allowed_hosts: Iterable[str] = (),
    root_path: str = "",
    cookie_name: str = "hpctrack_ui",
) -> Starlette:
    """The dashboard of the sweeps under ``root``, readable only with ``token``.

    Parameters
    ----------
    root:
        The storage root served (nothing outside it is ever read).
    token:
        The access token: ``?token=`` once (then a cookie) or ``Authorization: Bearer``.
    allowed_hosts:
        ``Host`` header names accepted besides the loopback names.
    root_path:
        The prefix the app is served under behind a proxy (``/node/host/8765``), or ``""``.
    cookie_name:
        The cookie that holds the token (``hpctrack ui`` names it after its port).

    Returns
    -------
    Starlette
        The ASGI app, to be run by uvicorn.
    """
    prefix = root_path.rstrip("/")
    config = GateConfig(token=token, allowed_hosts=frozenset(allowed_hosts), cookie_name=cookie_name,
                        root_path=prefix)  # fmt: skip
    routes = [
        Route("/", _index),
        Route("/favicon.ico", _favicon),
        Mount("/static", app=_Static()),
        *ROUTES,
    ]
    app = Starlette(routes=routes, middleware=[Middleware(Gate, config=config)],
                    exception_handlers={404: _not_found})  # fmt: skip
    app.router.redirect_slashes = False  # a redirect would name this host's URL, not the proxy's
    app.state.root = Path(root)
    app.state.histories = HistoryCache()  # the curves' histories, read again only where a run wrote
    return app


async def _index(request: Request) -> Response:
    page = STATIC_DIR / "index.html"
    if not page.is_file():
        return PlainTextResponse("the dashboard's page is not installed (hpctrack/ui/static/index.html is missing); "
                                 "the JSON API under api/ works\n", status_code=404)  # fmt: skip
    return FileResponse(page, media_type="text/html; charset=utf-8", headers={"cache-control": "no-cache"})


async def _favicon(request: Request) -> Response:
    return Response(status_code=204)


async def _not_found(request: Request, exc: Any) -> Response:
    path = request.url.path[len(request.scope.get("root_path", "")) :]
    if path.startswith("/api/"):
        return error_response(404, f"no such endpoint: {path} (see docs/ui.md)")
    return PlainTextResponse("not found\n", status_code=404)


class _Static:
    """``static/``: the page's files, revalidated on each load (``no-cache``), never a path outside them."""

    def __init__(self) -> None:
        self._files = StaticFiles(directory=STATIC_DIR, check_dir=False)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if not STATIC_DIR.is_dir():  # the page is not installed: every file is missing
            await PlainTextResponse("not found\n", status_code=404)(scope, receive, send)
            return

        async def sender(message: Any) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), (b"cache-control", b"no-cache")]
            await send(message)

        await self._files(scope, receive, sender)
