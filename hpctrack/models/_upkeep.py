"""``models verify`` and ``models gc``: what a killed process can leave, found and put right.

A registration killed while staging leaves ``.staging/<unique>/`` (abandoned once its process is
provably gone on this host, or older than ``HPCTRACK_REGISTRY_STAGING_TTL_S`` from another host);
one killed right after its claim leaves a version whose top directory is still writable and
whose register event is missing; an alias move killed after its replace leaves the alias file
without its event, and one killed before it a temporary file. ``gc`` removes the first and the
last, and writes what is missing from the record each state file carries; nothing committed is
ever removed except a deleted version's payload with ``--purge``.
"""

from __future__ import annotations

import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from ..errors import HpctrackError
from ..locking import owner_is_gone
from ..safefs import rmtree
from ._layout import OWNER_FILE, PAYLOAD_DIR, VERSION_FILE, Layout, link_problem, read_json
from ._payload import make_read_only, make_writable, payload_problems
from ._state import (
    EVENTS_DIR,
    alias_contradiction,
    model_lock,
    new_event,
    read_alias,
    read_events,
    read_tags,
    record_event,
    tombstone,
)

__all__ = ["GcResult", "verify_registry", "collect"]

_STATE_DIRS = ("aliases", "versions", "events", "tags", "deleted", ".staging")


@dataclass
class GcResult:
    """What ``models gc`` did."""

    staging_removed: List[str] = field(default_factory=list)
    repaired: List[str] = field(default_factory=list)
    purged: List[str] = field(default_factory=list)
    temp_files_removed: int = 0


def _abandoned(folder: Path, layout: Layout) -> Optional[str]:
    """Why the staging directory ``folder`` is abandoned, or None while its registration may still run."""
    from .. import settings

    try:
        owner: Any = read_json(folder / OWNER_FILE, layout.base, "staging owner")
    except HpctrackError:
        owner = None
    if owner is None:  # killed before it wrote its owner: its name says host and pid (time-host-pid-rand)
        parts = folder.name.split("-")  # a host name may hold '-' itself
        owner = {"host": "-".join(parts[1:-2]) or "?", "pid": parts[-2] if len(parts) >= 4 else -1}
    if owner_is_gone(owner):
        return f"its process (pid {owner.get('pid')} on {owner.get('host')}) is gone"
    ttl = float(settings.get("HPCTRACK_REGISTRY_STAGING_TTL_S"))
    try:
        age = time.time() - os.lstat(folder).st_mtime
    except OSError:
        return None
    if age > ttl:
        return f"untouched for {age / 3600:.1f} h (more than HPCTRACK_REGISTRY_STAGING_TTL_S={ttl:g} s)"
    return None


def _staging(layout: Layout, name: str) -> List[Path]:
    folder = layout.base / name / ".staging"
    if not folder.is_dir() or folder.is_symlink():
        return []
    return [folder / e for e in sorted(os.listdir(folder))
            if not (folder / e).is_symlink() and (folder / e).is_dir()]  # fmt: skip


def _missing_events(layout: Layout, name: str, numbers: List[int]) -> List[Dict[str, Any]]:
    """The events that state files carry but that were never written (their writer was killed)."""
    have = {e["id"] for e in read_events(layout, name)}
    owed: List[Dict[str, Any]] = []
    for number in numbers:
        data = read_json(layout.sub(name, "versions", str(number), VERSION_FILE), layout.base, "version record")
        if data is not None and isinstance(data.get("event"), dict):
            owed.append({**data["event"], "version": number, "new": number})
        for record in (read_tags(layout, name, number), tombstone(layout, name, number)):
            if record is not None and isinstance(record.get("event"), dict):
                owed.append(record["event"])
    folder = layout.base / name / "aliases"
    for alias in sorted(os.listdir(folder)) if folder.is_dir() and not folder.is_symlink() else []:
        record = read_alias(layout, name, alias) if not alias.startswith(".") else None
        if record is not None and isinstance(record.get("event"), dict):
            owed.append(record["event"])
    return [e for e in owed if e.get("id") not in have]


def _model_problems(layout: Layout, name: str, only: Optional[int]) -> List[str]:
    out: List[str] = []
    top = layout.base / name
    for sub in _STATE_DIRS:
        if (top / sub).is_symlink():
            return [f"{top / sub}: a symlink (to {os.readlink(top / sub)}) planted in the registry; remove it"]
    numbers = layout.version_numbers(name)
    for number in numbers if only is None else [only]:
        folder = top / "versions" / str(number)
        try:
            data = read_json(folder / VERSION_FILE, layout.base, "version record")
        except HpctrackError as err:
            out.append(str(err))
            continue
        if data is None:
            out.append(f"{folder / VERSION_FILE}: missing")
            continue
        dead = tombstone(layout, name, number)
        if dead is not None and not os.path.lexists(folder / PAYLOAD_DIR):
            continue  # purged: nothing left to check
        out += payload_problems(folder, data.get("files") or {})
    if only is None:
        for event in _missing_events(layout, name, numbers):
            out.append(f"{name}: the {event.get('kind')} event {event.get('id')} was never written (its process was "
                       "killed); `hpctrack models gc` writes it")  # fmt: skip
        for alias, record in _alias_records(layout, name).items():
            version = record.get("version")
            if isinstance(version, int) and version not in numbers:
                out.append(f"{name}@{alias} holds version {version}, which does not exist")
            contradiction = alias_contradiction(name, alias, record)
            if contradiction is not None:
                out.append(contradiction)
        for folder in _staging(layout, name):
            why = _abandoned(folder, layout)
            if why:
                out.append(f"{folder}: an abandoned registration ({why}); `hpctrack models gc` removes it")
    return out


def _alias_records(layout: Layout, name: str) -> Dict[str, Dict[str, Any]]:
    folder = layout.base / name / "aliases"
    out: Dict[str, Dict[str, Any]] = {}
    if folder.is_dir() and not folder.is_symlink():
        for alias in sorted(os.listdir(folder)):
            record = read_alias(layout, name, alias) if not alias.startswith(".") else None
            if record is not None:
                out[alias] = record
    return out


def verify_registry(layout: Layout, name: Optional[str], version: Optional[int]) -> List[str]:
    """Every problem of the registry (or of one model, or one version), one line each; empty when whole."""
    out: List[str] = [link_problem(p) for p in layout.planted()] if name is None else []
    for model in [name] if name is not None else layout.models():
        try:
            if version is None:
                out += [link_problem(p) for p in layout.planted(model)]
            out += _model_problems(layout, model, version)
        except HpctrackError as err:
            out.append(str(err))
    return out


def _remove_temp_files(top: Path) -> int:
    """Temporary files of writes killed half-way (``.*.tmp``): every write there holds the model lock."""
    count = 0
    for sub in ("", EVENTS_DIR, "tags", "deleted", *[f"aliases/{a}" for a in _names(top / "aliases")]):
        folder = top / sub
        if folder.is_dir() and not folder.is_symlink():
            for entry in os.listdir(folder):
                if entry.startswith(".") and entry.endswith(".tmp") and (folder / entry).is_file():
                    os.unlink(folder / entry)
                    count += 1
    return count


def _names(folder: Path) -> List[str]:
    return sorted(os.listdir(folder)) if folder.is_dir() and not folder.is_symlink() else []


def _writable(path: Path) -> bool:
    for folder, dirs, names in os.walk(path):
        for entry in ["", *dirs, *names]:
            st = os.lstat(os.path.join(folder, entry) if entry else folder)
            if not stat.S_ISLNK(st.st_mode) and st.st_mode & 0o222:
                return True
    return False


def collect(layout: Layout, purge: bool) -> GcResult:
    """Remove abandoned staging directories and temporary files, write missing events, make versions
    read-only again; with ``purge``, remove deleted versions' payloads (their ``version.json`` stays)."""
    result = GcResult()
    for name in layout.models():
        for folder in _staging(layout, name):
            why = _abandoned(folder, layout)
            if why:
                make_writable(folder)
                rmtree(folder, layout.base)
                result.staging_removed.append(f"{folder} ({why})")
        top = layout.model(name)
        with model_lock(layout, name):
            result.temp_files_removed += _remove_temp_files(top)
            numbers = layout.version_numbers(name)
            for event in _missing_events(layout, name, numbers):
                record_event(layout, event)
                result.repaired.append(f"{name}: wrote the {event.get('kind')} event {event.get('id')}")
            for number in numbers:
                folder = layout.sub(name, "versions", str(number))
                dead = tombstone(layout, name, number)
                if purge and dead is not None and os.path.lexists(folder / PAYLOAD_DIR):
                    make_writable(folder)
                    rmtree(folder / PAYLOAD_DIR, layout.base)
                    make_read_only(folder)
                    record_event(layout, new_event(name, "purge", version=number, old=number))
                    result.purged.append(f"{name}/{number}")
                elif _writable(folder):
                    make_read_only(folder)
                    result.repaired.append(f"{name}/{number}: made read-only again")
    return result
