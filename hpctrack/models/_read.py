"""Reading the registry: a version by reference, a model's versions as a table, its history."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Sequence

from ..errors import ConfigError, HpctrackError, StoreError
from ._layout import MODEL_FILE, PAYLOAD_DIR, VERSION_FILE, Layout, Ref, parse_ref, read_json
from ._state import alias_contradiction, aliases_of, read_alias, read_tags, tombstone

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ModelVersion", "require_model", "resolve", "load_version", "versions_frame", "aliases_at", "model_rows"]


@dataclass(frozen=True)
class ModelVersion:
    """One committed version of a model, as the registry holds it now."""

    #: The model's name.
    name: str
    #: Its number: 1, 2, ... in the order versions were claimed.
    version: int
    #: The version's directory, ``ROOT/registry/<name>/versions/<version>`` (read-only).
    path: Path
    #: The payload's name under ``files/`` (the artifact's file or directory name).
    payload: str
    #: When it was registered (epoch seconds), by whom, where.
    created: float
    by: str
    host: str
    #: The aliases that hold it now.
    aliases: List[str]
    #: Its tags now (those given at registration, changed since by ``set_tag``).
    tags: Dict[str, str]
    #: Its lineage: run, config, code, packages hash, metrics at registration.
    lineage: Dict[str, Any]
    #: Where in the run the payload came from (artifact path, checkpoint seq and step).
    source: Dict[str, Any]
    #: ``name/N`` of the versions it was fine-tuned from.
    parents: List[str]
    #: relative path -> size and sha256 of every payload file.
    files: Dict[str, Dict[str, Any]]
    #: The tombstone's event when deleted, else None.
    deleted: Optional[Dict[str, Any]] = None
    #: Its payload was removed by ``gc --purge`` (only for a deleted version).
    purged: bool = False
    description: Optional[str] = None
    #: Things to know about the registration itself (e.g. the run could not be pinned).
    notes: List[str] = field(default_factory=list)
    #: What is wrong around it that does not stop it being read (an alias of its model that cannot
    #: be read: a planted link, a damaged file), one line each.
    problems: List[str] = field(default_factory=list)

    @property
    def ref(self) -> str:
        """``name/version``."""
        return f"{self.name}/{self.version}"

    @property
    def payload_path(self) -> Path:
        """The payload in the registry (unverified: :func:`hpctrack.models.get_path` verifies it)."""
        return self.path / PAYLOAD_DIR / self.payload

    def quick_problems(self) -> List[str]:
        """What a look at the payload without reading it finds (missing files, planted links, other
        sizes), one line each; a changed byte needs :func:`hpctrack.models.verify`."""
        from ._payload import payload_problems

        return payload_problems(self.path, self.files, contents=False, modes=False)

    def to_json(self) -> Dict[str, Any]:
        """Plain JSON data with stable keys (``models show --format json``)."""
        return {"name": self.name, "version": self.version, "ref": self.ref, "path": str(self.payload_path),
                "created": self.created, "by": self.by, "host": self.host, "aliases": self.aliases,
                "tags": self.tags, "description": self.description, "parents": self.parents, "source": self.source,
                "lineage": self.lineage, "files": self.files, "deleted": self.deleted, "purged": self.purged,
                "notes": self.notes, "problems": self.problems}  # fmt: skip


def _no_model(layout: Layout, name: str) -> ConfigError:
    known = ", ".join(layout.models()[:10]) or "none yet"
    return ConfigError(f"no model {name!r} in {layout.base} (models: {known}); register one with "
                       "`hpctrack models register RUN --artifact PATH --name NAME`")  # fmt: skip


def require_model(layout: Layout, name: str) -> None:
    """A one-line ConfigError naming the models that exist, when model ``name`` does not."""
    if not (layout.base / name / MODEL_FILE).is_file() and not layout.version_numbers(name):
        raise _no_model(layout, name)


def resolve(layout: Layout, ref: "str | Ref") -> Ref:
    """``ref`` with its version number filled in (from the alias, or ``latest``), or a one-line ConfigError."""
    parsed = parse_ref(ref) if isinstance(ref, str) else ref
    name = parsed.name
    require_model(layout, name)
    numbers = layout.version_numbers(name)
    if parsed.version is not None:
        if parsed.version not in numbers:
            layout.sub(name, "versions", str(parsed.version))  # a symlink planted there: named, not "no version"
            raise ConfigError(f"model {name!r} has no version {parsed.version} (versions: "
                              f"{', '.join(map(str, numbers)) or 'none'})")  # fmt: skip
        return parsed
    if parsed.alias is not None:
        data = read_alias(layout, name, parsed.alias)
        if data is None or not isinstance(data.get("version"), int):
            held = ", ".join(sorted(aliases_of(layout, name))) or "none"
            raise ConfigError(f"model {name!r} has no alias {parsed.alias!r} (aliases: {held}); set one with "
                              f"`hpctrack models alias {name} N {parsed.alias}`")  # fmt: skip
        contradiction = alias_contradiction(name, parsed.alias, data)
        if contradiction is not None:
            raise StoreError(f"refusing {name}@{parsed.alias}: {contradiction}")
        return Ref(name, version=int(data["version"]), alias=parsed.alias)
    live = [n for n in numbers if tombstone(layout, name, n) is None]
    if not live:
        raise ConfigError(f"model {name!r} has no version that is not deleted; register one")
    return Ref(name, version=live[-1])


def load_version(
    layout: Layout, name: str, number: int, aliases: Optional[Dict[str, int]] = None, problems: Sequence[str] = ()
) -> ModelVersion:
    """The :class:`ModelVersion` ``name/number`` from its ``version.json`` and its mutable state.

    ``aliases``: the model's aliases, read once for many versions, with ``problems`` the lines
    :func:`aliases_of` gave for those it could not read.
    """
    folder = layout.sub(name, "versions", str(number))
    data = read_json(folder / VERSION_FILE, layout.base, "version record")
    if data is None:
        raise StoreError(f"{folder / VERSION_FILE} is missing: the version is damaged; see `hpctrack models verify`")
    tags_file = read_tags(layout, name, number)
    tags = dict(tags_file["tags"]) if tags_file is not None else dict(data.get("tags") or {})
    found: List[str] = list(problems)
    held = aliases_of(layout, name, found) if aliases is None else aliases
    dead = tombstone(layout, name, number)
    return ModelVersion(
        name=name, version=number, path=folder, payload=str(data.get("payload", "")),
        created=float(data.get("created", 0.0)), by=str(data.get("by", "?")), host=str(data.get("host", "?")),
        aliases=sorted(a for a, v in held.items() if v == number), tags=tags, lineage=data.get("lineage") or {},
        source=data.get("source") or {}, parents=list(data.get("parents") or []), files=data.get("files") or {},
        deleted=dead.get("event") if dead is not None else None,
        purged=dead is not None and not os.path.lexists(folder / PAYLOAD_DIR),
        description=data.get("description"), problems=found,
    )  # fmt: skip


def versions_frame(
    layout: Layout, name: str, where: Optional[str], sort: Optional[Sequence[str]], deleted: bool
) -> "pd.DataFrame":
    """One row per version of ``name``: version, aliases, run, tags as ``tags.KEY``, metrics as ``table`` names them."""
    import time

    import pandas as pd

    from ..aggregate import sort_frame
    from ..query import FilterError, filter_frame

    require_model(layout, name)
    held = aliases_of(layout, name, [])  # an unreadable alias: `models verify` and `show` name it
    rows: List[Dict[str, Any]] = []
    for number in layout.version_numbers(name):
        v = load_version(layout, name, number, held)
        if v.deleted is not None and not deleted:
            continue
        run = v.lineage.get("run") or {}
        row = {"version": v.version, "aliases": ",".join(v.aliases),
               "created": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(v.created)), "by": v.by,
               "run": run.get("run_id"), "deleted": v.deleted is not None,
               "checkpoint_step": (v.source.get("checkpoint") or {}).get("step"),
               **{f"tags.{k}": t for k, t in v.tags.items()}, **(v.lineage.get("metrics") or {})}  # fmt: skip
        for key, value in (v.lineage.get("config") or {}).items():  # the params, bare as `table` names them
            if isinstance(value, (int, float, str, bool)) or value is None:
                row.setdefault(str(key), value)  # a metric or summary value of the same name keeps its column
        rows.append(row)
    frame = pd.DataFrame(rows, columns=None if rows else ["version", "aliases", "created", "by", "run", "deleted"])
    if "checkpoint_step" in frame.columns:  # a step is an integer, also beside versions that have none
        frame["checkpoint_step"] = frame["checkpoint_step"].astype("Int64")
    if where:
        try:
            frame = filter_frame(frame, where)
        except FilterError as err:
            shown = where if len(where) <= 120 else where[:100] + f"... ({len(where)} characters)"
            raise FilterError(f"bad --where {shown!r}: {_own_example(str(err), frame)}") from None
    if sort:
        frame = sort_frame(frame, list(sort))
    return frame


def _own_example(message: str, frame: "pd.DataFrame") -> str:
    """``message`` with the filter language's example (a sweep's columns) swapped for one on the versions'."""
    from ..query import SYNTAX_EXAMPLE

    metric = next((str(c) for c in frame.columns if str(c).endswith(":max")), None)
    example = f"{metric} > 0.9 and version >= 2" if metric else "version >= 2 and deleted == false"
    return message.replace(SYNTAX_EXAMPLE, example)


def aliases_at(
    model_events: Sequence[Dict[str, Any]], when: float, alias: Optional[str]
) -> Dict[str, Optional[Dict[str, Any]]]:
    """Alias -> the event that set the version it held at ``when`` (None: it held none then).

    ``model_events``: the model's events (:func:`read_events`).

    The alias events are replayed in the order they were made (their per-alias sequence number,
    given under the model's lock, so a clock that differs between hosts cannot reorder them).
    """
    events = [e for e in model_events if e.get("kind") in ("alias", "unalias")]
    names = sorted({str(e["alias"]) for e in events}) if alias is None else [alias]
    out: Dict[str, Optional[Dict[str, Any]]] = {}
    for a in names:
        held: Optional[Dict[str, Any]] = None
        for event in sorted((e for e in events if e.get("alias") == a), key=lambda e: (e.get("seq", 0), e["id"])):
            if float(event["time"]) <= when:
                held = event if event.get("new") is not None else None
        out[a] = held
    return out


def model_rows(layout: Layout) -> List[Dict[str, Any]]:
    """One row per model: name, versions, latest, aliases, problems (``models ls``; a link planted as a
    model directory is a row with its problem, never followed)."""
    from ._layout import link_problem

    rows: List[Dict[str, Any]] = [{"name": p.name, "versions": 0, "deleted": 0, "latest": None, "aliases": {},
                                   "problems": [link_problem(p)]} for p in layout.planted()]  # fmt: skip
    for name in layout.models():
        problems: List[str] = []
        row: Dict[str, Any] = {"name": name, "versions": 0, "deleted": 0, "latest": None, "aliases": {}}
        try:
            numbers = layout.version_numbers(name)
            live = [n for n in numbers if tombstone(layout, name, n) is None]
            row.update(versions=len(live), deleted=len(numbers) - len(live), latest=live[-1] if live else None,
                       aliases=aliases_of(layout, name, problems))  # fmt: skip
        except HpctrackError as err:  # this model's damage is this model's row, never the whole list's
            problems.append(str(err))
        rows.append({**row, "problems": problems})
    return sorted(rows, key=lambda r: r["name"])
