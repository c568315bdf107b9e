"""The JSON API under ``api/`` (documented in ``docs/ui.md``): each endpoint makes the library call
the matching CLI command makes, in a worker thread, so one slow read does not hold the others up.

Errors are ``{"error": "<one line>"}``: 404 for a sweep, run, file or log that is not there,
400 for a bad parameter (with the CLI's own message for a bad filter or an unknown metric).
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Union
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from .._types import finite_json
from ..errors import HpctrackError, RunNotFoundError, SweepNotFoundError

__all__ = ["ROUTES", "json_response", "error_response", "BadRequest", "NotFound"]

#: The most points a history may be asked to keep per run (``points``).
MAX_POINTS = 10_000
#: The most bytes of a log's tail (``tail``).
MAX_TAIL_BYTES = 16 * 1024 * 1024


class BadRequest(ValueError):
    """A parameter the API cannot use: answered 400 with this one line."""


class NotFound(LookupError):
    """Answered 404 with this one line."""


def json_response(data: Any, status: int = 200) -> Response:
    """Strict JSON (NaN and infinities as null), as the CLI's ``--format json`` prints it."""
    try:  # most answers (curves especially) have no NaN: encoded as they are, without a walk over every value
        body = json.dumps(data, default=_plain_json, allow_nan=False)
    except ValueError:
        body = json.dumps(finite_json(data), default=str, allow_nan=False)
    return Response(body, status_code=status, media_type="application/json", headers={"cache-control": "no-store"})


def _plain_json(value: Any) -> Any:
    """A numpy scalar as the Python value it holds; anything else json cannot encode as its text."""
    if hasattr(value, "item") and callable(value.item) and not isinstance(value, (str, bytes)):
        try:
            return value.item()
        except (TypeError, ValueError):
            pass
    return str(value)


def error_response(status: int, message: str) -> Response:
    return json_response({"error": " ".join(str(message).split())}, status)


async def _answer(fn: Callable[..., Response], *args: Any) -> Response:
    """``fn(*args)`` in a worker thread; expected failures as one-line JSON errors."""
    try:
        return await run_in_threadpool(fn, *args)
    except (NotFound, SweepNotFoundError, RunNotFoundError) as err:
        return error_response(404, str(err))
    except (BadRequest, HpctrackError) as err:
        return error_response(400, str(err))
    except Exception as err:  # a bug or an unexpected state: one line for the page, the traceback for the log
        traceback.print_exc(file=sys.stderr)
        return error_response(500, f"internal error: {type(err).__name__}: {err}")


# -- parameters ---------------------------------------------------------------------------------


def _root(request: Request) -> Path:
    root: Path = request.app.state.root
    return root


def _list(request: Request, name: str) -> List[str]:
    """``a,b`` (or the parameter repeated) -> ``["a", "b"]``."""
    return [part.strip() for value in request.query_params.getlist(name) for part in value.split(",") if part.strip()]


def _flag(request: Request, name: str) -> bool:
    value = request.query_params.get(name, "0").strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise BadRequest(f"{name}={value!r}: give 1 or 0")


def _number(
    request: Request, name: str, default: Optional[float], low: float, high: float, cast: Callable[[str], Any] = int
) -> Any:
    text = request.query_params.get(name)
    if text is None or text == "":
        return default
    try:
        value = cast(text)
    except ValueError:
        raise BadRequest(f"{name}={text!r}: expected a number from {low:g} to {high:g}") from None
    if not low <= value <= high:
        raise BadRequest(f"{name}={text!r}: expected a number from {low:g} to {high:g}")
    return value


def _choice(request: Request, name: str, choices: List[str]) -> str:
    value = request.query_params.get(name) or choices[0]
    if value not in choices:
        raise BadRequest(f"{name}={value!r}: choose one of {', '.join(choices)}")
    return value


def _sweep(request: Request) -> Any:
    from .overview import find_sweep_under

    return find_sweep_under(_root(request), request.path_params["ref"])


def _job(sweep: Any, request: Request) -> int:
    job = int(request.path_params["job"])
    n = len(sweep.manifest.jobs)
    if job >= n:
        raise NotFound(f"sweep {sweep.id} has jobs 0-{n - 1}; no job {job}")
    return job


# -- sweeps ---------------------------------------------------------------------------------------


def _stamp(request: Request) -> Response:
    from .overview import change_stamp, find_sweep_under

    ref, job_text = request.query_params.get("sweep"), request.query_params.get("job")
    if not ref:
        if job_text is not None:
            raise BadRequest("job=N needs sweep=<ref> too: api/stamp?sweep=<ref>&job=N")
        return json_response({"stamp": change_stamp(_root(request))})
    sweep = find_sweep_under(_root(request), ref)
    job: Optional[int] = None
    if job_text is not None:
        if not job_text.isdigit():
            raise BadRequest(f"job={job_text!r}: give a job index (0, 1, ...)")
        job = int(job_text)
    return json_response({"stamp": change_stamp(_root(request), sweep, job)})


def _sweeps(request: Request) -> Response:
    from .overview import list_sweeps

    mode = request.query_params.get("mode") or None
    if mode not in (None, "max", "min"):
        raise BadRequest(f"mode={mode!r}: choose max or min")
    return json_response(list_sweeps(_root(request), q=request.query_params.get("q"),
                                      metric=request.query_params.get("metric") or None, mode=mode))  # fmt: skip


def _sweep_info(request: Request) -> Response:
    from .overview import sweep_overview

    return json_response(sweep_overview(_sweep(request)))


def _status(request: Request) -> Response:
    from ..runinfo import describe_status

    return json_response(describe_status(_sweep(request), only_stalled=_flag(request, "stalled")))


def _table(request: Request) -> Response:
    from ..aggregate import export_table

    sweep = _sweep(request)
    fmt = _choice(request, "format", ["json", "csv"])
    group_by = _list(request, "group_by")
    groups: Union[None, bool, List[str]] = True if group_by == ["all"] else (group_by or None)
    frame = sweep.table(metrics=_list(request, "metrics") or None, all_params=_flag(request, "all_params"),
                        group_by=groups, agg=_list(request, "agg") or None,
                        where=request.query_params.get("filter") or None, sort=_list(request, "sort") or None,
                        top=_number(request, "top", None, 1, sys.maxsize),
                        include_incomplete=_flag(request, "include_incomplete"),
                        seed_keys=_list(request, "seed_keys") or ["seed"])  # fmt: skip
    text = export_table(frame, fmt)
    assert text is not None  # csv and json are text
    headers = _note_headers(frame)
    if fmt == "csv":
        name = "".join(c if c.isalnum() or c in "-_." else "_" for c in (sweep.manifest.name or sweep.id))
        grouped = "-grouped" if groups else ""  # the two views of a sweep download side by side
        headers["content-disposition"] = f'attachment; filename="{name}-table{grouped}.csv"'
        return Response(text, media_type="text/csv; charset=utf-8", headers=headers)
    return Response(text, media_type="application/json", headers=headers)


def _note_headers(frame: Any) -> Dict[str, str]:
    """``no-store``; the ``note: ...`` the command prints on stderr as ``X-Hpctrack-Note``; for a
    grouped table, the row the CLI marks ``* best`` (``X-Hpctrack-Best-Row``, its position in the
    answer) and why (``X-Hpctrack-Best-By``: ``highest mean of val/acc:max``).

    Percent-encoded: header values are latin-1, a note may name any param value.
    """
    headers = {"cache-control": "no-store"}
    if frame.attrs.get("note"):
        headers["x-hpctrack-note"] = quote(" ".join(str(frame.attrs["note"]).split()))
    best, best_by = frame.attrs.get("best"), frame.attrs.get("best_by")
    if "group_by" in frame.attrs and best is not None and best_by and len(frame) > 1:  # the CLI's "* best"
        headers["x-hpctrack-best-row"] = str(int(best))
        headers["x-hpctrack-best-by"] = quote(f"{best_by['direction']} mean of {best_by['column']}")
    return headers


def _history_options(request: Request) -> Dict[str, Any]:
    return {"x": _choice(request, "x", ["step", "time"]), "points": _number(request, "points", 1000, 2, MAX_POINTS),
            "full": _flag(request, "full")}  # fmt: skip


def _sweep_history(request: Request) -> Response:
    from . import series

    sweep = _sweep(request)
    metric = request.query_params.get("metric")
    if not metric:
        raise BadRequest("metric=KEY is needed (one of the sweep's metrics: see api/sweeps/<ref>)")
    runs_text = request.query_params.get("runs", "all")
    runs: Optional[List[int]] = None
    if runs_text not in ("", "all"):
        try:
            runs = [int(part) for part in runs_text.split(",") if part.strip()]
        except ValueError:
            raise BadRequest(f"runs={runs_text!r}: give job indices like 0,3,7, or all") from None
    where = request.query_params.get("filter") or None
    if where:  # the runs the table shows with this filter (its columns: metrics, all_params), by the table's code
        n = len(sweep.manifest.jobs)
        wrong = [job for job in runs or [] if not 0 <= job < n]
        if wrong:
            raise BadRequest(f"sweep {sweep.id} has jobs 0-{n - 1}; no job {wrong[0]}")
        passing = sweep.table(metrics=_list(request, "metrics") or None, all_params=_flag(request, "all_params"),
                              where=where, seed_keys=_list(request, "seed_keys") or ["seed"])["job"]  # fmt: skip
        kept = {int(job) for job in passing}
        runs = [job for job in (runs if runs is not None else range(n)) if job in kept]
    group_by: Optional[List[str]] = _list(request, "group_by") or None
    if group_by == ["all"]:  # the table's --grouped: every swept key but the seeds (none: one group of all runs)
        seeds = _list(request, "seed_keys") or ["seed"]
        group_by = [k for k in sweep.manifest.swept_keys if k not in seeds]
    curves = series.sweep_curves(sweep, metric, runs=runs, group_by=group_by,
                                 band=_choice(request, "band", ["std", "ci"]),
                                 smooth=_number(request, "smooth", 0.0, 0.0, 0.99, float),
                                 read_history=request.app.state.histories.read,
                                 **_history_options(request))  # fmt: skip
    return json_response(curves)


def _run_history(request: Request) -> Response:
    from . import series

    sweep = _sweep(request)
    metric = request.query_params.get("metric")
    curves = series.run_curves(sweep, _job(sweep, request), [metric] if metric else None, **_history_options(request))
    return json_response(curves)


def _compare(request: Request) -> Response:
    from ..aggregate import export_table
    from ..compare import compare_sweeps
    from .overview import find_sweep_under

    refs, metrics = _list(request, "sweeps"), _list(request, "metrics")
    if not refs:
        raise BadRequest("sweeps=A,B is needed: the sweeps to compare")
    if not metrics:
        raise BadRequest("metrics=SEL is needed: the metrics to compare (e.g. val/acc:max)")
    frame = compare_sweeps([find_sweep_under(_root(request), ref) for ref in refs], metrics,
                           group_by=_list(request, "group_by") or None, where=request.query_params.get("filter") or None,
                           seed_keys=_list(request, "seed_keys") or ["seed"])  # fmt: skip
    text = export_table(frame, "json")
    assert text is not None
    return Response(text, media_type="application/json", headers=_note_headers(frame))


# -- runs -------------------------------------------------------------------------------------------


def _run(request: Request) -> Response:
    from ..runinfo import describe_run

    sweep = _sweep(request)
    return json_response(describe_run(sweep, _job(sweep, request)))


def _artifacts(request: Request) -> Response:
    from .files import list_run_files

    sweep = _sweep(request)
    return json_response(list_run_files(sweep.manifest.run_path(_job(sweep, request)), _root(request)))


def _file(request: Request) -> Response:
    from .files import run_file

    sweep = _sweep(request)
    run_dir = sweep.manifest.run_path(_job(sweep, request))
    served = run_file(
        run_dir, _root(request), request.query_params.get("path", ""), download=_flag(request, "download")
    )
    return FileResponse(served.path, media_type=served.media_type, filename=served.filename,
                        content_disposition_type="attachment" if served.attachment else "inline",
                        headers={"cache-control": "no-store"})  # fmt: skip


def _log(request: Request) -> Response:
    from .files import DEFAULT_TAIL_BYTES, log_tail

    sweep = _sweep(request)
    job = sweep.manifest.jobs[_job(sweep, request)]
    stream = _choice(request, "stream", ["stdout", "stderr"])
    tail = _number(request, "tail", DEFAULT_TAIL_BYTES, 1, MAX_TAIL_BYTES)
    return json_response({"stream": stream, **log_tail(getattr(job, stream), _root(request), tail)})


# -- the model registry (read-only) -------------------------------------------------------------


def _models(request: Request) -> Response:
    from ..models import list_models

    return json_response({"models": list_models(root=_root(request))})


def _registry_endpoint(fn: Callable[[Request], Response]) -> Callable[[Request], Response]:
    """``fn``, with damaged stored data (a planted link, a damaged file) answered as the server's
    problem (500, one line), never as a bad request: a model's own problems are in its data."""
    from ..errors import StoreError, UnsafePathError

    def answer(request: Request) -> Response:
        try:
            return fn(request)
        except (StoreError, UnsafePathError) as err:
            return error_response(500, f"damaged registry data: {err}")

    answer.__name__ = fn.__name__
    return answer


def _model_name(request: Request) -> str:
    from ..models import list_models

    name = request.path_params["name"]
    if name not in {m["name"] for m in list_models(root=_root(request))}:
        raise NotFound(f"no model {name!r} in the registry")
    return str(name)


def _model(request: Request) -> Response:
    from ..models import history, list_models, list_versions

    root = _root(request)
    name = _model_name(request)
    listed = next(m for m in list_models(root=root) if m["name"] == name)
    versions = []
    for version in list_versions(name, root=root):
        v = version.to_json()
        lineage = v.pop("lineage")
        versions.append({**v, "run": (lineage.get("run") or {}).get("run_id"), "metrics": lineage.get("metrics") or {}})
    return json_response({**listed, "versions": versions, "history": history(name, root=root)})


def _model_version(request: Request) -> Response:
    from ..errors import ConfigError
    from ..models import get_version

    name = _model_name(request)
    try:  # the name exists: what is left to refuse is the number
        version = get_version(f"{name}/{int(request.path_params['version'])}", root=_root(request))
    except ConfigError as err:
        raise NotFound(str(err)) from None
    return json_response(version.to_json())


def _endpoint(fn: Callable[[Request], Response]) -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> Response:
        return await _answer(fn, request)

    endpoint.__name__ = fn.__name__.lstrip("_")
    return endpoint


#: Every route of the API (paths relative to the app's root).
ROUTES = [
    Route("/api/stamp", _endpoint(_stamp)),
    Route("/api/sweeps", _endpoint(_sweeps)),
    Route("/api/sweeps/{ref}", _endpoint(_sweep_info)),
    Route("/api/sweeps/{ref}/status", _endpoint(_status)),
    Route("/api/sweeps/{ref}/table", _endpoint(_table)),
    Route("/api/sweeps/{ref}/history", _endpoint(_sweep_history)),
    Route("/api/compare", _endpoint(_compare)),
    Route("/api/runs/{ref}/{job:int}", _endpoint(_run)),
    Route("/api/runs/{ref}/{job:int}/history", _endpoint(_run_history)),
    Route("/api/runs/{ref}/{job:int}/artifacts", _endpoint(_artifacts)),
    Route("/api/runs/{ref}/{job:int}/file", _endpoint(_file)),
    Route("/api/runs/{ref}/{job:int}/log", _endpoint(_log)),
    Route("/api/models", _endpoint(_registry_endpoint(_models))),
    Route("/api/models/{name}", _endpoint(_registry_endpoint(_model))),
    Route("/api/models/{name}/{version:int}", _endpoint(_registry_endpoint(_model_version))),
]
