"""Where the registry keeps what, which names are allowed, and how its JSON files are read and written.

Layout (``docs/registry.md``)::

    ROOT/registry/<model>/
        model.json                  written once, at the first registration
        .lock                       the per-model lock (aliases, tags, deletions; never held while copying)
        .staging/<unique>/          a registration being staged: owner.json, version.json, files/
        versions/<n>/               a committed version, read-only: version.json, files/<payload>
        aliases/<alias>/alias.json  the version an alias holds (version null: removed), replaced atomically
        tags/<n>.json               the version's tags when changed after registration
        deleted/<n>.json            the version's tombstone
        events/<time>-<host>-<pid>-<rand>.json   one immutable file per change

Every path is checked to resolve inside the registry before it is read or written, so a symlink
planted anywhere in it (``aliases -> /elsewhere``) is refused, never followed.
"""

from __future__ import annotations

import errno
import json
import os
import re
import stat
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

from ..errors import ConfigError, FormatVersionError, StoreError, UnsafePathError
from ..safefs import check_inside, is_inside

__all__ = ["REGISTRY_DIR", "REGISTRY_VERSION", "Layout", "Ref", "check_model_name", "check_alias_name",
           "parse_ref", "read_json", "first_link", "check_no_link", "link_problem", "write_once", "json_bytes", "safe_host", "unique_stem"]  # fmt: skip

REGISTRY_DIR = "registry"
#: Version of every JSON file of the registry (model.json, version.json, alias.json, tags, tombstones, events).
REGISTRY_VERSION = 1
MODEL_FILE = "model.json"
VERSION_FILE = "version.json"
ALIAS_FILE = "alias.json"
OWNER_FILE = "owner.json"
PAYLOAD_DIR = "files"

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_RESERVED_ALIAS = re.compile(r"(latest|v\d+|\d+)", re.IGNORECASE)
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def _check(kind: str, name: Any, fix: str) -> str:
    from .._names import check_name

    if not isinstance(name, str) or not name:
        raise ConfigError(f"a {kind} is non-empty text ({fix})")
    if not _NAME.fullmatch(name) or ".." in name:  # repr shows controls as escapes once; the CLI keeps the rest
        raise ConfigError(f"{kind} {name!r} is not path-safe: use letters, digits, '.', '_' and '-' only, starting "
                          f"with a letter or digit (no '/', '..', '@', spaces or control characters); {fix}")  # fmt: skip
    return check_name(kind, name, fix)


def check_model_name(name: Any) -> str:
    """``name`` if it can name a model, else a one-line :class:`ConfigError` saying what is allowed."""
    return _check("model name", name, "e.g. --name resnet-cifar")


def check_alias_name(name: Any) -> str:
    """``name`` if it can name an alias: path-safe, and not ``latest``, ``v<N>`` or a number (reserved)."""
    _check("alias", name, "e.g. production")
    if _RESERVED_ALIAS.fullmatch(name):
        raise ConfigError(f"alias {name!r} is reserved: 'latest' means the newest version and 'v<N>' or a number "
                          "names version N; choose another alias, e.g. production")  # fmt: skip
    return name


@dataclass(frozen=True)
class Ref:
    """A parsed model reference: ``name`` (= latest), ``name/3``, ``name@v3``, ``name@alias``, ``name@latest``."""

    name: str
    version: Optional[int] = None
    alias: Optional[str] = None  # None with version None: latest

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}/{self.version}"
        return f"{self.name}@{self.alias}" if self.alias else self.name


def parse_ref(text: Any) -> Ref:
    """A :class:`Ref` for ``text``, or a one-line :class:`ConfigError` showing the accepted forms."""
    forms = "write NAME, NAME/3, NAME@v3, NAME@latest or NAME@ALIAS (e.g. resnet-cifar@production)"
    if not isinstance(text, str) or not text:
        raise ConfigError(f"a model reference is non-empty text: {forms}")
    name, sep, rest = text.partition("@")
    if not sep:
        name, sep, rest = text.partition("/")
        if sep and not rest.isdigit():
            raise ConfigError(f"model reference {text!r}: after '/' comes a version number; {forms}")
    check_model_name(name)
    if not sep or rest.lower() == "latest":
        return Ref(name)
    if rest.isdigit():
        return Ref(name, version=int(rest))
    if re.fullmatch(r"[vV]\d+", rest):
        return Ref(name, version=int(rest[1:]))
    return Ref(name, alias=check_alias_name(rest))


def safe_host(host: str) -> str:
    """``host`` reduced to what a file name may safely hold."""
    return re.sub(r"[^A-Za-z0-9.-]", "_", host)[:64] or "host"


def unique_stem() -> str:
    """A name that sorts by creation time and is unique across hosts and processes."""
    import socket
    import time

    return f"{time.time_ns():020d}-{safe_host(socket.gethostname())}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


def json_bytes(data: Dict[str, Any]) -> bytes:
    return (json.dumps(data, indent=1, sort_keys=True, allow_nan=False) + "\n").encode()


class Layout:
    """The paths of one registry (``ROOT/registry``), each checked to stay inside it."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.base = self.root / REGISTRY_DIR

    def ensure(self) -> None:
        """Create ``ROOT/registry`` (never through a link planted in its place)."""
        if os.path.islink(self.base):
            raise UnsafePathError(f"refusing to use {self.base}: it is a symlink (to {os.readlink(self.base)}); "
                                  "remove the link")  # fmt: skip
        self.base.mkdir(parents=True, exist_ok=True)

    def inside(self, path: Path, action: str = "write") -> Path:
        """``path`` when it resolves inside the registry and no component of it from ``ROOT/registry``
        down is a symlink (one planted inside the registry is refused too), else :class:`UnsafePathError`."""
        check_no_link(path, self.base, action)
        return check_inside(path, self.base, action)

    def model(self, name: str) -> Path:
        return self.inside(self.base / name, "use")

    def sub(self, name: str, *parts: str) -> Path:
        """A path inside model ``name``'s directory, checked (every link on the way resolved)."""
        path = self.base.joinpath(name, *parts)
        return self.inside(path, "use")

    def mkdir(self, name: str, *parts: str) -> Path:
        path = self.base.joinpath(name, *parts)
        self.inside(path.parent, "write into")
        try:
            path.mkdir(parents=True)
        except FileExistsError:
            pass
        return self.inside(path, "write into")

    def models(self) -> List[str]:
        if not self.base.is_dir() or self.base.is_symlink():
            return []
        return sorted(e.name for e in os.scandir(self.base)
                      if _NAME.fullmatch(e.name) and e.is_dir(follow_symlinks=False))  # fmt: skip

    def planted(self, name: Optional[str] = None) -> List[Path]:
        """The symlinks planted where a model directory (``name`` None) or a version of model ``name``
        belongs: never followed, so never listed as one, but reported (:func:`link_problem`)."""
        folder = self.base if name is None else self.base / name / "versions"
        if not folder.is_dir() or folder.is_symlink():
            return []
        wanted = _NAME.fullmatch if name is None else str.isdigit
        return [Path(e.path) for e in sorted(os.scandir(folder), key=lambda e: e.name)
                if wanted(e.name) and e.is_symlink()]  # fmt: skip

    def version_numbers(self, name: str) -> List[int]:
        """The committed version numbers of model ``name`` (links and strays ignored), ascending."""
        folder = self.base / name / "versions"
        if not folder.is_dir():
            return []
        self.inside(folder, "read")
        return sorted(int(e.name) for e in os.scandir(folder)
                      if e.name.isdigit() and e.is_dir(follow_symlinks=False))  # fmt: skip


def link_problem(path: Path) -> str:
    """The one line ``verify`` and ``ls`` give for a symlink planted at ``path`` in the registry."""
    try:
        target = os.readlink(path)
    except OSError:
        target = "?"
    return f"{path}: a symlink (to {target}) planted in the registry; hpctrack never follows it; remove the link"


def first_link(path: Path, base: Path) -> Optional[Path]:
    """The first component of ``path``, from ``base`` down, that is a symlink (``lstat``); None when none is.

    Components that do not exist end the walk: nothing under them can be a link.
    """
    path, base = Path(path), Path(base)
    try:
        parts = path.relative_to(base).parts
    except ValueError:
        return None  # not under base: check_inside decides
    current = base
    for part in ("", *parts):
        current = current / part if part else current
        try:
            if stat.S_ISLNK(os.lstat(current).st_mode):
                return current
        except OSError:
            return None
    return None


def check_no_link(path: Path, base: Path, action: str = "use") -> None:
    """A one-line :class:`UnsafePathError` naming the symlink when a component of ``path`` under ``base`` is one."""
    link = first_link(path, base)
    if link is not None:
        raise UnsafePathError(f"refusing to {action} {path}: {link_problem(link)}")


def read_json(path: Path, base: Path, what: str) -> Optional[Dict[str, Any]]:
    """The JSON object in ``path`` (None when absent); never read through a symlink; version checked.

    Raises
    ------
    UnsafePathError
        ``path`` (or its directory) is a link leading out of ``base``, or is a symlink itself.
    StoreError
        The file is not a JSON object (one line naming it).
    FormatVersionError
        Written by a newer hpctrack.
    """
    check_no_link(path.parent, base, "read")
    if not is_inside(path.parent, base):
        check_inside(path.parent, base, "read")
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW)
    except FileNotFoundError:
        return None
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise UnsafePathError(f"refusing to read {path}: it is a symlink, not the {what} hpctrack writes; "
                                  "remove the link") from None  # fmt: skip
        raise StoreError(f"cannot read {path}: {err.strerror}") from err
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise StoreError(f"{path} is not a regular file; it should hold the {what}")
        with os.fdopen(os.dup(fd), "rb") as fh:
            data = json.loads(fh.read().decode("utf-8"))
    except (OSError, ValueError) as err:
        raise StoreError(f"damaged {what} {path}: {' '.join(str(err).split())}") from err
    finally:
        os.close(fd)
    if not isinstance(data, dict):
        raise StoreError(f"damaged {what} {path}: not a JSON object")
    version = data.get("format_version", 1)
    if isinstance(version, int) and version > REGISTRY_VERSION:
        raise FormatVersionError(f"{path} has format_version {version}, newer than this hpctrack reads "
                                 f"({REGISTRY_VERSION}); upgrade with `pip install -U hpctrack`")  # fmt: skip
    return data


def write_once(path: Path, data: bytes, base: Path, *, mode: int = 0o444) -> bool:
    """Create ``path`` with ``data`` whole, or leave an existing one alone; True when this call created it.

    The bytes go to a temporary file that is fsynced and then hard-linked to ``path``: ``link``
    fails when the name exists, so a file is never replaced and never seen half-written.
    """
    from ..locking import fsync_dir

    check_inside(path.parent, base, "write")
    tmp = path.with_name(f".{path.name}.{safe_host(_hostname())}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW, 0o600)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fchmod(fd, mode)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        fsync_dir(path.parent)
        return True
    finally:
        try:
            os.unlink(tmp)
        except OSError:
            pass


def _hostname() -> str:
    import socket

    return socket.gethostname()
