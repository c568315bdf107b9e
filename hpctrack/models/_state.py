"""What changes after a version is committed (aliases, tags, tombstones) and the events that record it.

Every change is made under the model's short lock (``<model>/.lock``): read the current state,
check, replace one small file atomically (temporary file, fsync, ``os.replace``), then write
the change's event. The state file carries its event whole, so a process killed between the
two leaves a state whose event is missing but known: the next change of that state, and
``models gc``, write it (same name, same content). An event file is created by hard-linking
a complete temporary file to its name, so it is never replaced and never seen half-written.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import socket
import time
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional

from .._faults import pause_point
from ..errors import ConfigError
from ..locking import LockGuard, atomic_write, lock
from ..settings import scheduler_job_id
from ._layout import ALIAS_FILE, REGISTRY_VERSION, Layout, json_bytes, read_json, safe_host, write_once

__all__ = ["new_event", "record_event", "model_lock", "read_alias", "aliases_of", "change_alias", "read_tags",
           "change_tags", "tombstone", "write_tombstone", "read_events", "events_dir", "alias_contradiction",
           "EVENTS_DIR"]  # fmt: skip

EVENTS_DIR = "events"
#: The per-model lock is held for one small update: a few file operations.
LOCK_TIMEOUT_S = 60.0


def new_event(model: str, kind: str, **fields: Any) -> Dict[str, Any]:
    """An event of ``kind`` (register, alias, unalias, tag, delete, purge): who, host, job, when, and ``fields``."""
    import uuid

    now = time.time_ns()
    host = socket.gethostname()
    stem = f"{now:020d}-{safe_host(host)}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    return {"format_version": REGISTRY_VERSION, "id": stem, "model": model, "kind": kind, "by": getpass.getuser(),
            "host": host, "job": scheduler_job_id(), "pid": os.getpid(), "time": now / 1e9,
            "version": None, "alias": None, "old": None, "new": None, "reason": None, **fields}  # fmt: skip


def events_dir(layout: Layout, model: str) -> Path:
    """``model``'s events directory, made if missing; a one-line UnsafePathError when a link is planted there.

    Every change calls it before writing its state file, so a change whose event could not be
    written is refused with nothing written, never left half-made.
    """
    return layout.mkdir(model, EVENTS_DIR)


def record_event(layout: Layout, event: Dict[str, Any]) -> bool:
    """Write ``event`` as ``events/<id>.json`` unless it exists; True when this call wrote it."""
    folder = events_dir(layout, event["model"])
    return write_once(folder / f"{event['id']}.json", json_bytes(event), layout.base)


def read_events(layout: Layout, model: str) -> List[Dict[str, Any]]:
    """Every event of ``model``, oldest first (their names sort by time)."""
    folder = layout.base / model / EVENTS_DIR
    if not folder.is_dir():
        return []
    layout.inside(folder, "read")
    out = []
    for name in sorted(os.listdir(folder)):
        if name.endswith(".json") and not name.startswith("."):
            event = read_json(folder / name, layout.base, "registry event")
            if event is not None:
                out.append(event)
    return out


@contextlib.contextmanager
def model_lock(layout: Layout, model: str) -> Iterator[LockGuard]:
    """Hold ``model``'s short lock (aliases, tags, tombstones and events are written under it)."""
    layout.mkdir(model)
    path = layout.sub(model, ".lock")
    with lock(path, LOCK_TIMEOUT_S) as guard:
        yield guard


def _alias_path(layout: Layout, model: str, alias: str) -> Path:
    return layout.sub(model, "aliases", alias, ALIAS_FILE)


def read_alias(layout: Layout, model: str, alias: str) -> Optional[Dict[str, Any]]:
    """The alias file of ``alias`` (its ``version`` is None once removed); None when never set."""
    return read_json(_alias_path(layout, model, alias), layout.base, "alias file")


def alias_contradiction(model: str, alias: str, data: Dict[str, Any]) -> Optional[str]:
    """One line when the alias file's version is not the one its own embedded event set (the file was
    edited by hand: it cannot be trusted); None when they agree."""
    event = data.get("event")
    if not isinstance(event, dict) or event.get("new") == data.get("version"):
        return None
    return (f"{model}@{alias}: alias.json says version {data.get('version')} but its own event "
            f"{event.get('id')} set version {event.get('new')}: the file was edited by hand and contradicts its "
            f"event; set the alias again (`hpctrack models alias {model} N {alias}`)")  # fmt: skip


def aliases_of(layout: Layout, model: str, problems: Optional[List[str]] = None) -> Dict[str, int]:
    """Alias -> version, for every alias of ``model`` that holds a version.

    With ``problems`` (a list), an alias that cannot be read (a planted link, a damaged file) is
    added to it as one line and left out, so one bad alias does not hide the others; without it,
    it raises (what changes the registry must know every alias).
    """
    from ..errors import HpctrackError

    folder = layout.base / model / "aliases"
    try:
        if not folder.is_dir():
            return {}
        layout.inside(folder, "read")
        names = sorted(os.listdir(folder))
    except HpctrackError as err:
        if problems is None:
            raise
        problems.append(str(err))
        return {}
    out: Dict[str, int] = {}
    for name in names:
        if name.startswith("."):
            continue
        try:
            data = read_alias(layout, model, name)
        except HpctrackError as err:
            if problems is None:
                raise
            problems.append(f"alias {name!r} of model {model!r} is unreadable: {err}")
            continue
        if data is not None and isinstance(data.get("version"), int):
            out[name] = int(data["version"])
    return out


def _protected(err: PermissionError, folder: Path, what: str) -> ConfigError:
    import grp
    import stat

    try:
        st = os.stat(folder)
        group = grp.getgrgid(st.st_gid).gr_name
        mode = stat.filemode(st.st_mode)
    except (OSError, KeyError):
        group, mode = "?", "?"
    return ConfigError(f"{what} is protected: {folder} (group {group}, {mode}) is not writable by you; ask a member "
                       f"of group {group} to make the change")  # fmt: skip


def change_alias(
    layout: Layout, model: str, alias: str, version: Optional[int], reason: Optional[str],
    check: Callable[[Optional[int]], None],
) -> Optional[int]:  # fmt: skip
    """Point ``alias`` at ``version`` (None removes it); returns the version it held before.

    ``check(old)`` runs under the lock before anything is written and raises to refuse the change.
    """
    with model_lock(layout, model) as guard:
        events_dir(layout, model)
        current = read_alias(layout, model, alias)
        if current is not None and isinstance(current.get("event"), dict):
            record_event(layout, current["event"])  # a holder killed after the replace left it unwritten
        old = current.get("version") if current is not None else None
        check(old)
        if old == version:
            return old
        seq = int(current.get("seq", 0)) + 1 if current is not None else 1
        event = new_event(model, "alias" if version is not None else "unalias", alias=alias, version=version,
                          old=old, new=version, reason=reason, seq=seq)  # fmt: skip
        data = {"format_version": REGISTRY_VERSION, "alias": alias, "version": version, "seq": seq, "event": event}
        folder = layout.mkdir(model, "aliases", alias)
        pause_point("alias:replace")
        try:
            atomic_write(folder / ALIAS_FILE, json_bytes(data), guard=guard)
        except PermissionError as err:
            raise _protected(err, folder, f"alias {alias!r} of model {model!r}") from None
        pause_point("alias:replaced")
        record_event(layout, event)
    return old


def read_tags(layout: Layout, model: str, version: int) -> Optional[Dict[str, Any]]:
    """The tags file of a version (None when its tags never changed after registration)."""
    return read_json(layout.sub(model, "tags", f"{version}.json"), layout.base, "tags file")


def change_tags(
    layout: Layout, model: str, version: int, initial: Dict[str, str], set_: Dict[str, str], remove: List[str]
) -> Dict[str, str]:
    """Set and remove tags of a version (``initial``: its tags at registration); returns its tags after."""
    with model_lock(layout, model) as guard:
        events_dir(layout, model)
        current = read_tags(layout, model, version)
        if current is not None and isinstance(current.get("event"), dict):
            record_event(layout, current["event"])
        old = dict(current["tags"]) if current is not None else dict(initial)
        new = {k: v for k, v in {**old, **set_}.items() if k not in remove}
        if new == old:
            return old
        event = new_event(model, "tag", version=version, old=old, new=new)
        data = {"format_version": REGISTRY_VERSION, "version": version, "tags": new, "event": event}
        folder = layout.mkdir(model, "tags")
        atomic_write(folder / f"{version}.json", json_bytes(data), guard=guard)
        record_event(layout, event)
    return new


def tombstone(layout: Layout, model: str, version: int) -> Optional[Dict[str, Any]]:
    """The tombstone of a deleted version; None when it is not deleted."""
    return read_json(layout.sub(model, "deleted", f"{version}.json"), layout.base, "tombstone")


def write_tombstone(layout: Layout, model: str, version: int, reason: Optional[str]) -> Dict[str, Any]:
    """Delete ``version`` (a tombstone and its event); refused while an alias holds it or when already deleted."""
    with model_lock(layout, model):
        events_dir(layout, model)
        if tombstone(layout, model, version) is not None:
            raise ConfigError(f"{model}/{version} is already deleted; `hpctrack models gc --purge` removes its files")
        holders = sorted(a for a, v in aliases_of(layout, model).items() if v == version)
        if holders:
            raise ConfigError(f"{model}/{version} is held by alias {', '.join(holders)}; move it first "
                              f"(`hpctrack models alias {model} N {holders[0]}` or `hpctrack models unalias "
                              f"{model} {holders[0]}`); nothing was deleted")  # fmt: skip
        event = new_event(model, "delete", version=version, old=version, reason=reason)
        data = {"format_version": REGISTRY_VERSION, "version": version, "event": event}
        write_once(layout.mkdir(model, "deleted") / f"{version}.json", json_bytes(data), layout.base)
        record_event(layout, event)
    return data
