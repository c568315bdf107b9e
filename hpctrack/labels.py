"""A sweep's tags and note: ``hpctrack tag`` and ``hpctrack note``, kept in ``labels.json``.

They live in their own small file beside ``sweep.json`` rather than in the manifest:
the manifest of a 10,000-job sweep is large and rewritten by the runner, ``status``
and submissions, while a tag is a few bytes the owner writes. The file is replaced
atomically (temporary file, ``os.replace``) while holding the manifest's lock
``sweep.json.lock``, read-modify-write, so two ``tag`` calls never lose each
other's key; no other writer touches it, so nothing else can drop it.

Keys and values follow the rules of other names (:mod:`hpctrack._names`): at most
255 characters; a key is not empty and holds no ``=``. They are data: printed with
terminal controls escaped, never obeyed.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from ._names import check_name
from .errors import ConfigError, FormatVersionError, StoreError
from .locking import atomic_write, lock
from .manifest import MANIFEST_FILE

__all__ = ["LABELS_FILE", "LABELS_VERSION", "MAX_NOTE_LENGTH", "Labels", "read_labels", "set_tags", "set_note",
           "parse_tag_args"]  # fmt: skip

LABELS_FILE = "labels.json"
#: Version of ``labels.json`` this hpctrack writes (and the newest it reads).
LABELS_VERSION = 1
#: A note is a line or a paragraph, not a document.
MAX_NOTE_LENGTH = 4096


@dataclass(frozen=True)
class Labels:
    """A sweep's tags (key -> value) and note, as stored in ``labels.json``."""

    tags: Dict[str, str] = field(default_factory=dict)
    note: Optional[str] = None
    updated: Optional[float] = None  # epoch seconds of the last change

    def to_json(self) -> Dict[str, Any]:
        return {"format_version": LABELS_VERSION, "tags": dict(sorted(self.tags.items())), "note": self.note,
                "updated": self.updated}  # fmt: skip


def read_labels(sweep_dir: Path) -> Labels:
    """The tags and note of the sweep in ``sweep_dir``; empty when it has none.

    Raises
    ------
    StoreError
        ``labels.json`` is damaged (one line naming it and the key).
    FormatVersionError
        It was written by a newer hpctrack.
    """
    path = Path(sweep_dir) / LABELS_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return Labels()
    except (OSError, ValueError) as err:
        raise StoreError(f"cannot read {path}: {' '.join(str(err).split())}; fix or delete it") from err
    problem = _problem(data)
    if problem:
        raise StoreError(f"damaged {path}: {problem}; fix or delete it (it holds only the sweep's tags and note)")
    if data.get("format_version", 1) > LABELS_VERSION:
        raise FormatVersionError(f"{path} has format_version {data['format_version']}, newer than this hpctrack "
                                 f"reads ({LABELS_VERSION}); upgrade with `pip install -U hpctrack`")  # fmt: skip
    return Labels(dict(data.get("tags") or {}), data.get("note"), data.get("updated"))


def _problem(data: Any) -> Optional[str]:
    if not isinstance(data, dict):
        return "expected a JSON object"
    version = data.get("format_version", 1)
    if not isinstance(version, int) or isinstance(version, bool):
        return "'format_version' must be an integer"
    tags = data.get("tags", {})
    if not isinstance(tags, dict) or not all(isinstance(v, str) for v in tags.values()):
        return "'tags' must be an object of text values"
    if data.get("note") is not None and not isinstance(data["note"], str):
        return "'note' must be text or null"
    return None


def _check_key(key: str) -> str:
    if not isinstance(key, str) or not key:
        raise ConfigError("a tag key must be non-empty text: write key=value")
    if "=" in key:
        raise ConfigError(f"tag key {key!r} holds '=': write key=value")
    return check_name("tag key", key)


def _check_value(key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"tag {key!r}: a value is text, got {type(value).__name__}")
    return check_name(f"value of tag {key!r}", value)


def parse_tag_args(args: Sequence[str]) -> Tuple[Dict[str, str], List[str]]:
    """``["project=x", "stage="]`` -> (``{"project": "x"}``, ``["stage"]``): ``key=`` removes a tag.

    Raises
    ------
    ConfigError
        An argument without ``=``, an empty or too long key or value.
    """
    tags: Dict[str, str] = {}
    remove: List[str] = []
    for arg in args:
        key, sep, value = arg.partition("=")
        if not sep:
            raise ConfigError(f"tag {arg!r}: write key=value (key= removes the tag)")
        _check_key(key)
        if value:
            tags[key] = _check_value(key, value)
            if key in remove:
                remove.remove(key)
        else:
            tags.pop(key, None)
            remove.append(key)
    return tags, remove


def _update(sweep_dir: Path, change: Callable[[Labels], Labels]) -> Labels:
    """Read ``labels.json``, apply ``change`` (Labels -> Labels), write it atomically under the manifest lock."""
    sweep_dir = Path(sweep_dir)
    if not (sweep_dir / MANIFEST_FILE).is_file():
        raise StoreError(f"no sweep manifest at {sweep_dir / MANIFEST_FILE}")
    with lock(sweep_dir / f"{MANIFEST_FILE}.lock") as guard:
        new = change(read_labels(sweep_dir))
        new = Labels(new.tags, new.note, time.time())
        atomic_write(sweep_dir / LABELS_FILE, json.dumps(new.to_json(), indent=1), guard=guard)
    return new


def set_tags(sweep_dir: Path, tags: Mapping[str, str], *, remove: Sequence[str] = ()) -> Labels:
    """Set ``tags`` (key -> value) and remove the keys in ``remove`` (absent keys are fine).

    Everything is checked before the file is touched.

    Raises
    ------
    ConfigError
        An empty key, a key holding ``=``, or a key or value over 255 characters.
    """
    checked = {_check_key(k): _check_value(k, v) for k, v in tags.items()}
    gone = [_check_key(k) for k in remove]
    both = sorted(set(checked) & set(gone))
    if both:
        raise ConfigError(f"tag {both[0]!r} is both set and removed; give it once")

    def change(old: Labels) -> Labels:
        new = {k: v for k, v in old.tags.items() if k not in gone}
        new.update(checked)
        return Labels(new, old.note)

    return _update(sweep_dir, change)


def set_note(sweep_dir: Path, text: Optional[str]) -> Labels:
    """Replace the sweep's note with ``text`` (None or empty: remove it).

    Raises
    ------
    ConfigError
        ``text`` is longer than :data:`MAX_NOTE_LENGTH` characters.
    """
    if text is not None and not isinstance(text, str):
        raise ConfigError(f"a note is text, got {type(text).__name__}")
    if text and len(text) > MAX_NOTE_LENGTH:
        raise ConfigError(f"the note is {len(text)} characters long; at most {MAX_NOTE_LENGTH} are allowed "
                          "(keep longer text in a file of the sweep's code)")  # fmt: skip
    return _update(sweep_dir, lambda old: Labels(old.tags, text or None))
