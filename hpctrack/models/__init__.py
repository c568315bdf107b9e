"""The model registry: named models, immutable numbered versions, atomic aliases, an audit trail.

Files only, no server, under ``ROOT/registry/`` (layout and format: ``docs/registry.md``)::

    import hpctrack.models as hm
    v = hm.register("latest/3", artifact="artifacts/model.npz", name="resnet-cifar", aliases=["staging"])
    hm.set_alias("resnet-cifar", v.version, "production", reason="beats v2 on val")
    path = hm.get_path("resnet-cifar@production")      # sha256-verified, read-only
    df = hm.versions("resnet-cifar", where="val/acc:max > 0.9")

A reference names a version as ``NAME`` (the newest version not deleted, also ``NAME@latest``),
``NAME/3`` (also ``NAME@v3``) or ``NAME@ALIAS``. Every function takes ``root`` (default: as the CLI,
``--root`` > ``HPCTRACK_ROOT`` > config > default) and raises a one-line
:class:`~hpctrack.errors.HpctrackError` subclass on bad input, before anything is written.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Sequence, Union

from ..errors import ConfigError, StoreError
from ._layout import REGISTRY_DIR, REGISTRY_VERSION, Layout, check_alias_name, check_model_name, parse_ref
from ._read import ModelVersion

if TYPE_CHECKING:
    import pandas as pd

    from ._upkeep import GcResult

__all__ = ["register", "set_alias", "remove_alias", "unalias", "get_version", "show", "get_path", "versions",
           "history", "aliases_at", "list_versions", "download", "verify", "delete", "gc", "list_models", "set_tag",
           "registered_from_run", "parse_moment", "ModelVersion", "REGISTRY_DIR", "REGISTRY_VERSION"]  # fmt: skip


def _layout(root: Optional[Union[str, Path]]) -> Layout:
    from ..config import resolve_root

    return Layout(resolve_root(str(root) if root is not None else None))


def _checked_tags(tags: Optional[Mapping[str, str]]) -> Dict[str, str]:
    from ..labels import parse_tag_args

    given = dict(tags or {})
    for key, value in given.items():
        if not isinstance(key, str) or not key or "=" in key:
            raise ConfigError(f"tag key {key!r}: a key is non-empty text without '=' (key=value)")
        if not isinstance(value, str) or not value:
            raise ConfigError(f"tag {key!r}: a value is non-empty text (key=value)")
    values, _ = parse_tag_args([f"{k}={v}" for k, v in given.items()])
    return values


def register(
    run: str,
    *,
    name: str,
    artifact: Optional[str] = None,
    checkpoint: Optional[str] = None,
    aliases: Sequence[str] = (),
    tags: Optional[Mapping[str, str]] = None,
    parents: Sequence[str] = (),
    description: Optional[str] = None,
    root: Optional[Union[str, Path]] = None,
) -> ModelVersion:
    """Register a file or directory of a run as the next version of model ``name``.

    The payload is copied (read completely, sha256 per file) into a staging directory without
    holding any lock, made read-only, and claimed as ``versions/<n>`` by one atomic rename; the
    source run is pinned (``hpctrack rm`` refuses its sweep) and the run's lineage is recorded.

    Parameters
    ----------
    run:
        The run: ``SWEEP/JOB`` (``latest/3``), a run id, or a run directory.
    name:
        The model's name (path-safe: letters, digits, ``.``, ``_``, ``-``).
    artifact:
        A path relative to the run directory (``checkpoints/best.ckpt``), or an artifact the run logged.
    checkpoint:
        ``latest`` (the run's newest checkpoint) or a checkpoint number, instead of ``artifact``.
    aliases:
        Aliases to point at the new version (``staging``).
    tags:
        ``{"task": "cls"}``.
    parents:
        References of the versions this one was fine-tuned from (``resnet-cifar/2``).
    description:
        One line about the version.
    root:
        The storage root.

    Returns
    -------
    ModelVersion
        The committed version; ``notes`` says when the run could not be pinned.

    Raises
    ------
    ConfigError
        A bad name, alias, tag or parent, a run or file that does not exist, a symlink leading out
        of the run directory; nothing is written.
    """
    from ..runinfo import resolve_run
    from ._lineage import find_source, lineage_of
    from ._payload import check_source, claim, stage
    from ._state import model_lock, record_event

    check_model_name(name)
    wanted = [check_alias_name(a) for a in aliases]
    tag_values = _checked_tags(tags)
    if description is not None and (len(description) > 1000 or any(ord(c) < 32 for c in description)):
        raise ConfigError("a description is one line of text of at most 1000 characters")
    layout = _layout(root)
    parent_refs = [_parent(layout, p) for p in parents]
    sweep, index = resolve_run(run, str(layout.root))
    lineage, info = lineage_of(sweep, index)
    source, ckpt = find_source(sweep.manifest.run_path(index), info, artifact, checkpoint)
    check_source(source)
    layout.ensure()
    _ensure_model(layout, name)
    record = {"format_version": REGISTRY_VERSION, "model": name, "description": description, "tags": tag_values,
              "parents": parent_refs, "lineage": lineage,
              "source": {"run": lineage["run"]["run_id"], "artifact": artifact, "checkpoint": ckpt,
                         "path": str(source.path)}}  # fmt: skip
    staged, event = stage(layout, name, source, record)
    try:
        number = claim(layout, name, staged)
    except BaseException:
        from ..safefs import rmtree
        from ._payload import make_writable

        make_writable(staged)
        rmtree(staged, layout.base)
        raise
    with model_lock(layout, name):
        record_event(layout, {**event, "version": number, "new": number})
    notes = _pin(sweep, index, pin_reason(name, number))
    for alias in wanted:
        set_alias(name, number, alias, reason=f"set when {name}/{number} was registered", root=layout.root)
    return dataclasses.replace(get_version(f"{name}/{number}", root=layout.root), notes=notes)


def _ensure_model(layout: Layout, name: str) -> None:
    from ._layout import MODEL_FILE, json_bytes, write_once
    from ._state import model_lock

    if (layout.base / name / MODEL_FILE).is_file():
        return
    with model_lock(layout, name):
        data = {"format_version": REGISTRY_VERSION, "name": name, "created": time.time()}
        write_once(layout.sub(name, MODEL_FILE), json_bytes(data), layout.base)


def _parent(layout: Layout, ref: str) -> str:
    from ._read import resolve

    found = resolve(layout, ref)
    return f"{found.name}/{found.version}"


def pin_reason(name: str, number: int) -> str:
    """The reason a version pins its source run: ``registered as NAME/N``.

    A pin reason holds at most 255 characters and a model name may too: a name longer than 200
    characters is cut there and followed by ``…`` and 8 hex digits of its sha256, so the reason
    fits and still differs between two long names that share their first 200 characters.
    """
    import hashlib

    if len(name) > 200:
        name = f"{name[:200]}…{hashlib.sha256(name.encode()).hexdigest()[:8]}"
    return f"registered as {name}/{number}"


def _pin(sweep: Any, index: int, reason: str) -> List[str]:
    """Pin the source run; a sweep this user cannot write (a colleague's) is said, not fatal: the version
    holds its own copy of the payload and its lineage."""
    from ..errors import HpctrackError
    from ..pins import pin_runs

    try:
        pin_runs(sweep.path, [index], reason=reason)
    except (HpctrackError, OSError) as err:
        return [f"the source run {sweep.id}/{index} was not pinned: {' '.join(str(err).split())}"]
    return []


def get_version(ref: str, *, root: Optional[Union[str, Path]] = None) -> ModelVersion:
    """The version ``ref`` names (``NAME``, ``NAME/3``, ``NAME@v3``, ``NAME@ALIAS``), deleted ones included.

    Raises
    ------
    ConfigError
        No such model, version or alias (the message lists what exists).
    """
    from ._read import load_version, resolve

    layout = _layout(root)
    found = resolve(layout, ref)
    assert found.version is not None  # resolve always fills it in
    return load_version(layout, found.name, found.version)


#: ``show(ref)`` is :func:`get_version` (the CLI's ``models show``).
show = get_version


def get_path(ref: str, *, root: Optional[Union[str, Path]] = None) -> Path:
    """The read-only path of the payload of ``ref``, after checking every file's size and sha256.

    Raises
    ------
    StoreError
        A file differs from when it was registered (one line naming it); the path is not given.
    ConfigError
        The version is deleted, or no such model, version or alias.
    """
    from ._payload import payload_problems

    version = get_version(ref, root=root)
    if version.deleted is not None:
        raise ConfigError(f"{version.ref} is deleted ({version.deleted.get('reason') or 'no reason given'}); "
                          f"use another version (`hpctrack models versions {version.name}`)")  # fmt: skip
    problems = payload_problems(version.path, version.files, modes=False)
    if problems:
        raise StoreError(f"{version.ref} is damaged, refusing its path: {problems[0]}"
                         + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")
                         + "; see `hpctrack models verify`")  # fmt: skip
    return version.payload_path


def download(ref: str, dest: Union[str, Path], *, root: Optional[Union[str, Path]] = None) -> Path:
    """Copy the payload of ``ref`` into directory ``dest`` (made if missing), verifying every byte.

    Returns ``dest/<payload>``; an existing one is never overwritten.
    """
    from ._payload import copy_verified

    version = get_version(ref, root=root)
    if version.deleted is not None:
        raise ConfigError(f"{version.ref} is deleted; download another version")
    return copy_verified(version.path, version.files, version.payload, Path(dest))


def set_alias(
    name: str,
    version: Union[int, str],
    alias: str,
    *,
    reason: Optional[str] = None,
    root: Optional[Union[str, Path]] = None,
) -> Optional[int]:
    """Point ``alias`` of model ``name`` at ``version`` (a number, ``"v3"`` or ``"latest"``) atomically; returns the
    version it held before.

    Raises
    ------
    ConfigError
        A reserved or unsafe alias, a version that does not exist or is deleted, or an alias
        directory protected by a group this user is not in.
    """
    from ._state import change_alias, tombstone

    check_model_name(name)
    check_alias_name(alias)
    _check_reason(reason)
    layout = _layout(root)
    number = _version_number(layout, name, version)

    def check(old: Optional[int]) -> None:
        if tombstone(layout, name, number) is not None:
            raise ConfigError(f"{name}/{number} is deleted; point {alias!r} at a version that is not")

    return change_alias(layout, name, alias, number, reason, check)


def _version_number(layout: Layout, name: str, version: Any) -> int:
    import re

    from ._read import resolve

    text = str(version).strip()
    if re.fullmatch(r"[vV]\d+", text):  # v3, as in NAME@v3
        text = text[1:]
    if isinstance(version, bool) or not (isinstance(version, int) or text.isdigit() or text.lower() == "latest"):
        raise ConfigError(f"version {version!r}: give a version number (e.g. 3 or v3) or latest")
    found = resolve(layout, f"{name}/{text}" if text.isdigit() else name)
    assert found.version is not None
    return found.version


def _check_reason(reason: Optional[str]) -> None:
    if reason is not None and (len(reason) > 1000 or any(ord(c) < 32 for c in reason)):
        raise ConfigError("a reason is one line of text of at most 1000 characters")


def remove_alias(
    name: str, alias: str, *, reason: Optional[str] = None, root: Optional[Union[str, Path]] = None
) -> int:
    """Remove ``alias`` from model ``name``; returns the version it held.

    Raises
    ------
    ConfigError
        The alias does not exist.
    """
    from ._read import require_model
    from ._state import change_alias

    check_model_name(name)
    check_alias_name(alias)
    _check_reason(reason)
    layout = _layout(root)
    require_model(layout, name)

    def check(old: Optional[int]) -> None:
        if old is None:
            raise ConfigError(f"model {name!r} has no alias {alias!r}; nothing to remove")

    old = change_alias(layout, name, alias, None, reason, check)
    assert old is not None
    return old


#: ``unalias`` is :func:`remove_alias` (the CLI's ``models unalias``).
unalias = remove_alias


def set_tag(ref: str, key: str, value: Optional[str], *, root: Optional[Union[str, Path]] = None) -> Dict[str, str]:
    """Set tag ``key`` of version ``ref`` to ``value`` (None removes it); returns its tags after (an event)."""
    from ._state import change_tags

    version = get_version(ref, root=root)
    if value is None:
        _checked_tags({key: "x"})
        return change_tags(_layout(root), version.name, version.version, version.tags, {}, [key])
    return change_tags(_layout(root), version.name, version.version, version.tags, _checked_tags({key: value}), [])


def delete(ref: str, *, reason: Optional[str] = None, root: Optional[Union[str, Path]] = None) -> ModelVersion:
    """Delete version ``ref``: a tombstone and an event; its files stay until ``gc(purge=True)``.

    The pin its registration put on the source run (``registered as NAME/N``) is removed, so
    ``hpctrack rm`` no longer refuses the run for it; other pins stay. ``notes`` says when it could
    not be removed.

    Raises
    ------
    ConfigError
        An alias still holds the version (move it first), or it is already deleted.
    """
    from ._state import write_tombstone

    parsed = parse_ref(ref)
    if parsed.version is None:
        raise ConfigError(f"name the version to delete by its number: {parsed.name}/N (an alias or latest moves)")
    _check_reason(reason)
    version = get_version(ref, root=root)
    write_tombstone(_layout(root), version.name, version.version, reason)
    notes = _unpin(version)
    return dataclasses.replace(get_version(version.ref, root=root), notes=notes)


def _unpin(version: ModelVersion) -> List[str]:
    """Remove the pin the registration of ``version`` put on its run (that reason only: other versions'
    pins and the user's own stay); a run that is gone or cannot be written is said, not fatal."""
    from ..errors import HpctrackError
    from ..pins import unpin_runs

    run = version.lineage.get("run") or {}
    if not run.get("sweep_path") or not isinstance(run.get("job"), int):
        return []
    if not Path(run["sweep_path"]).is_dir():
        return []  # the run's sweep is gone: nothing pins it any more
    try:
        unpin_runs(Path(run["sweep_path"]), [run["job"]], reason=pin_reason(version.name, version.version))
    except (HpctrackError, OSError) as err:
        return [f"the source run {run.get('run_id')} keeps its pin: {' '.join(str(err).split())}"]
    return []


def versions(
    name: str,
    *,
    where: Optional[str] = None,
    sort: Optional[Sequence[str]] = None,
    deleted: bool = False,
    root: Optional[Union[str, Path]] = None,
) -> "pd.DataFrame":
    """The versions of model ``name`` as a table: ``version``, ``aliases``, ``run``, ``tags.KEY``, metrics.

    ``where`` is ``table --filter``'s language over these columns (``val/acc:max > 0.9 and
    tags.task == 'cls'``); ``sort`` names columns, ``-COLUMN`` descending. ``deleted`` includes
    deleted versions.
    """
    from ._read import versions_frame

    check_model_name(name)
    return versions_frame(_layout(root), name, where, sort, deleted)


def history(name: str, *, alias: Optional[str] = None, root: Optional[Union[str, Path]] = None) -> List[Dict[str, Any]]:
    """Every event of model ``name`` (only those of ``alias`` when given), oldest first.

    An event holds ``kind`` (register, alias, unalias, tag, delete, purge), ``version``, ``alias``,
    ``old``, ``new``, ``reason``, ``by``, ``host``, ``job`` and ``time`` (epoch seconds).
    """
    from ._read import require_model
    from ._state import read_events

    check_model_name(name)
    if alias is not None:
        check_alias_name(alias)
    layout = _layout(root)
    require_model(layout, name)
    found = read_events(layout, name)
    if alias is not None:
        _check_alias_in_history(name, alias, found)
    return [e for e in found if alias is None or e.get("alias") == alias]


def _check_alias_in_history(name: str, alias: str, events: List[Dict[str, Any]]) -> None:
    """A one-line ConfigError when no event of ``events`` concerns ``alias`` (a typo gives no empty answer)."""
    known = sorted({str(e["alias"]) for e in events if e.get("alias")})
    if alias not in known:
        raise ConfigError(f"model {name} has no alias {alias} in its history (aliases it had: "
                          f"{', '.join(known) or 'none'})")  # fmt: skip


def aliases_at(
    name: str, when: Union[float, str], *, alias: Optional[str] = None, root: Optional[Union[str, Path]] = None
) -> Dict[str, Optional[Dict[str, Any]]]:
    """Which version each alias (or ``alias``) of model ``name`` held at ``when``.

    ``when`` is epoch seconds or a local date and time (``2026-12-01T12:00``). Returns alias ->
    the event that set the version it held then (its ``new`` is the version), or None.
    """
    from ._read import aliases_at as replay
    from ._read import require_model
    from ._state import read_events

    check_model_name(name)
    if alias is not None:
        check_alias_name(alias)
    moment = parse_moment(when)
    layout = _layout(root)
    require_model(layout, name)
    found = read_events(layout, name)  # one read of the events for the check and the replay
    if alias is not None:
        _check_alias_in_history(name, alias, found)
    return replay(found, moment, alias)


def parse_moment(when: Union[float, str]) -> float:
    """``when`` as epoch seconds: epoch seconds, a local ISO date and time, or a duration back from now (``30d``)."""
    from datetime import datetime

    from .._since import parse_since

    if isinstance(when, (int, float)) and not isinstance(when, bool):
        return float(when)
    try:  # ISO 8601, to the microsecond, with or without an offset (without: local time)
        return datetime.fromisoformat(str(when).strip()).timestamp()
    except ValueError:
        pass
    try:
        return parse_since(str(when))
    except ConfigError:
        raise ConfigError(f"--at {when!r}: give a local date and time (2026-12-01T12:00, 2026-12-01) or a "
                          "duration back from now (30d, 12h)") from None  # fmt: skip


def verify(ref: Optional[str] = None, *, root: Optional[Union[str, Path]] = None) -> List[str]:
    """Every problem of the registry, of model ``ref``, or of version ``ref`` (``NAME/3``); empty when whole.

    Each payload file is read in full and checked against its size and sha256; abandoned staging
    directories, events never written and writable versions are reported too (``gc`` fixes those).
    """
    from ._upkeep import verify_registry

    layout = _layout(root)
    if ref is None:
        return verify_registry(layout, None, None)
    parsed = parse_ref(ref)
    number = None
    if parsed.version is not None or parsed.alias is not None:
        number = get_version(ref, root=layout.root).version
    elif not (layout.base / parsed.name).is_dir():
        get_version(ref, root=layout.root)  # says which models exist
    return verify_registry(layout, parsed.name, number)


def gc(*, purge: bool = False, root: Optional[Union[str, Path]] = None) -> "GcResult":
    """Remove abandoned staging directories and temporary files, write events a killed process owed,
    make versions read-only again; ``purge`` also removes deleted versions' payloads."""
    from ._upkeep import collect

    layout = _layout(root)
    return collect(layout, purge)


def list_versions(name: str, *, root: Optional[Union[str, Path]] = None) -> List[ModelVersion]:
    """Every version of model ``name``, deleted ones included, by number (the dashboard's model page)."""
    from ._read import load_version, require_model
    from ._state import aliases_of

    check_model_name(name)
    layout = _layout(root)
    require_model(layout, name)
    problems: List[str] = []
    held = aliases_of(layout, name, problems)
    return [load_version(layout, name, n, held, problems) for n in layout.version_numbers(name)]


def list_models(*, root: Optional[Union[str, Path]] = None) -> List[Dict[str, Any]]:
    """One entry per model: ``name``, ``versions`` (not deleted), ``deleted``, ``latest``, ``aliases``, ``problems``
    (one line each: a model that cannot be read is listed with why, the others are unaffected)."""
    from ._read import model_rows

    return model_rows(_layout(root))


def registered_from_run(run_id: str, *, root: Optional[Union[str, Path]] = None) -> List[Dict[str, Any]]:
    """The versions registered from run ``run_id`` (``<sweep id>/<job>``): ref, aliases, deleted.

    A scan of every ``version.json`` rather than a reverse index: a registry holds tens to hundreds
    of versions, read in a fraction of a second, and a scan cannot go stale the way an index written
    beside the claim could (a registration killed between the two, a purge). Only ``show RUN`` pays.
    """
    from ._read import load_version
    from ._state import aliases_of

    layout = _layout(root)
    out = []
    for name in layout.models():
        try:
            held = aliases_of(layout, name)
        except (ConfigError, StoreError):
            held = {}
        for number in layout.version_numbers(name):
            try:
                v = load_version(layout, name, number, held)
            except (ConfigError, StoreError):
                continue  # a damaged version: `models verify` reports it
            if (v.lineage.get("run") or {}).get("run_id") == run_id:
                out.append({"ref": v.ref, "aliases": v.aliases, "deleted": v.deleted is not None,
                            "created": v.created})  # fmt: skip
    return out
