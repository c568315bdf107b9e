"""Composing each job's config where one process runs many jobs (a packed array task).

Every job composes its own full config, as under Hydra's own launchers: its
overrides, the defaults tree, every config file merged. What is the same for
every job of the process is not done again per job:

- Hydra gives each composition a deep copy of the loader's config sources
  (``CachingConfigRepository``); here a composition uses the process's sources
  of its search path (one repository per search path, also for a search path
  the primary config extends with ``hydra.searchpath``);
- a config file is read and parsed once per process while it stays the same
  file: each load opens it and compares its identity (device, inode, size,
  modification and change times) with what was parsed; another file, or one
  modified since, is read again. Each composition still gets a config object of
  its own, built from what was parsed. So a job reads the files as they are
  when it starts, as before: those inside the code from the sweep's snapshot,
  the others (a ``hydra.searchpath`` outside the code) where they are;
- an override's text is parsed once per process (most are the launch's
  ``hydra.*`` overrides, the same for every job); each composition gets copies;
- a config built for the composition is embedded under its package as it is,
  not deep-copied there first (see ``_ProcessConfigLoader._embed_result_config``).

Configs registered in Hydra's ``ConfigStore`` (structured configs) are
in memory already: they are loaded as Hydra loads them.
"""

from __future__ import annotations

import collections
import copy
import dataclasses
import os
import pathlib
import time
from typing import Any, Dict, List, Optional, Set, Tuple

from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra._internal.config_repository import CachingConfigRepository, ConfigRepository, IConfigRepository
from hydra._internal.core_plugins.file_config_source import FileConfigSource
from hydra._internal.core_plugins.importlib_resources_config_source import ImportlibResourcesConfigSource
from hydra.core.config_search_path import ConfigSearchPath
from hydra.core.default_element import ResultDefault
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.plugins.config_source import ConfigLoadError, ConfigResult, ConfigSource
from hydra.types import HydraContext
from omegaconf import DictConfig, OmegaConf, flag_override

__all__ = ["job_context", "search_path_in"]

_Identity = Tuple[int, int, int, int, int]


@dataclasses.dataclass(frozen=True)
class _Parsed:
    """One config file as parsed: its identity when read, its header, and the YAML's plain objects."""

    identity: _Identity
    header: Dict[str, Optional[str]]
    obj: Any

    def config(self) -> Any:
        """A config of its own for one composition (composing moves and changes the nodes it merges)."""
        # As OmegaConf.load builds it from the same YAML; the plain objects stay untouched for the next job.
        return OmegaConf.create() if self.obj is None else OmegaConf.create(copy.deepcopy(self.obj))


#: The config files this process read, by real path.
_PARSED: Dict[str, _Parsed] = {}
#: Seconds since its last modification after which a file read is kept for the next loads.
SETTLE_S = 2.0


def _identity(st: os.stat_result) -> _Identity:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _parsed(path: str, missing: str) -> _Parsed:
    """The file at ``path`` parsed, read again unless it is the very file read last time.

    The file is opened for every load, as Hydra opens it: on a shared filesystem the open
    revalidates what the client caches (close-to-open consistency), so the identity taken
    from the open file is as fresh as a read would be. A file modified in the last
    :data:`SETTLE_S` seconds is not kept: two writes within one tick of the filesystem's
    clock (coarse on some) would leave it the same identity for different contents.
    """
    import yaml
    from omegaconf._utils import get_yaml_loader

    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        raise ConfigLoadError(f"Config not found : {missing}") from None
    with open(fd, encoding="utf-8") as f:
        st = os.fstat(fd)
        found = _PARSED.get(path)
        if found is not None and found.identity == _identity(st):
            return found
        text = f.read()
        settled = time.time() - st.st_mtime > SETTLE_S and _identity(os.fstat(fd)) == _identity(st)
    obj = yaml.load(text, Loader=get_yaml_loader())
    if obj is not None and not isinstance(obj, (list, dict, str)):
        raise IOError(f"Invalid loaded object type: {type(obj).__name__}")  # as OmegaConf.load says it
    parsed = _Parsed(_identity(st), ConfigSource._get_header_dict(text[:512]), obj)  # Hydra reads the first 512
    if settled:
        _PARSED[path] = parsed
    else:
        _PARSED.pop(path, None)
    return parsed


def _result(source: ConfigSource, parsed: _Parsed) -> ConfigResult:
    return ConfigResult(config=parsed.config(), path=f"{source.scheme()}://{source.path}", provider=source.provider,
                        header=dict(parsed.header))  # fmt: skip


def _name(cls: type) -> Tuple[str, str]:
    return cls.__module__, cls.__qualname__


class _FileSource(FileConfigSource):
    """Hydra's config directory source, with the files parsed once per process (:func:`_parsed`)."""

    def load_config(self, config_path: str) -> ConfigResult:
        path = os.path.realpath(os.path.join(self.path, self._normalize_file_name(config_path)))
        return _result(self, _parsed(path, path))


class _PackageSource(ImportlibResourcesConfigSource):
    """Hydra's ``pkg://`` source, with files of installed packages parsed once per process (:func:`_parsed`)."""

    def load_config(self, config_path: str) -> ConfigResult:
        from importlib import resources

        name = self._normalize_file_name(config_path)
        found = resources.files(self.path).joinpath(name)
        if not isinstance(found, pathlib.Path):  # in a zip file: read as Hydra reads it
            return super().load_config(config_path)
        return _result(self, _parsed(str(found), name))


#: Hydra's sources whose files are parsed once per process, and the class that does it. By name: Hydra's
#: plugin discovery executes its plugin modules again, which makes new classes of the same names.
_PARSING = {_name(FileConfigSource): _FileSource, _name(ImportlibResourcesConfigSource): _PackageSource}


class _ProcessRepository(ConfigRepository):
    """Hydra's repository of a search path, over sources that parse each file once per process."""

    def initialize_sources(self, config_search_path: ConfigSearchPath) -> None:
        super().initialize_sources(config_search_path)
        self.sources = [_PARSING[_name(type(s))](s.provider, f"{s.scheme()}://{s.path}")
                        if _name(type(s)) in _PARSING else s for s in self.sources]  # fmt: skip


class _CompositionRepository(CachingConfigRepository):
    """Hydra's repository of one composition (what it loaded, by path), over the process's sources.

    Hydra's own deep-copies the loader's repository for every composition, only so that
    a search path extended by the primary config does not change the loader's.
    """

    def __init__(self, shared: ConfigRepository) -> None:  # not super().__init__: that is the deep copy
        self.delegate = shared
        self.cache: Dict[str, Optional[ConfigResult]] = {}

    def initialize_sources(self, config_search_path: ConfigSearchPath) -> None:
        # The process's sources of the extended search path; like Hydra's, it keeps the primary config loaded.
        self.delegate = _repository(config_search_path)


def _key(search_path: ConfigSearchPath) -> Tuple[Tuple[str, str], ...]:
    return tuple((str(e.provider), str(e.path)) for e in search_path.get_path())


#: This process's repositories, by search path. Hydra's sources keep nothing of a composition.
_REPOSITORIES: Dict[Tuple[Tuple[str, str], ...], _ProcessRepository] = {}


def _repository(search_path: ConfigSearchPath) -> _ProcessRepository:
    key = _key(search_path)
    found = _REPOSITORIES.get(key)
    if found is None:
        found = _REPOSITORIES[key] = _ProcessRepository(search_path)
    return found


class _ProcessConfigLoader(ConfigLoaderImpl):
    """Hydra's config loader, with one repository for all the compositions of this process."""

    def __init__(self, config_search_path: ConfigSearchPath) -> None:
        self.config_search_path = config_search_path
        self.repository = _repository(config_search_path)
        self._parser = OverridesParser.create()
        self._parsed: Dict[str, Override] = {}  # each override as parsed, by its text

    def _parse_overrides(self, overrides: List[str]) -> List[Override]:
        """Hydra's parse of ``overrides``, each text parsed once per process (most are the launch's own
        ``hydra.*`` overrides, the same for every job); each composition gets copies of its own."""
        for text in overrides:  # in order: a bad one raises Hydra's error as a parse of the whole list would
            if text not in self._parsed:
                self._parsed[text] = self._parser.parse_overrides([text])[0]
        return [copy.deepcopy(self._parsed[text]) for text in overrides]

    def _parse_overrides_and_create_caching_repo(
        self, config_name: Optional[str], overrides: List[str]
    ) -> Tuple[List[Override], CachingConfigRepository]:
        parsed_overrides = self._parse_overrides(overrides)
        repo = _CompositionRepository(self.repository)
        self._process_config_searchpath(config_name, parsed_overrides, repo)
        return parsed_overrides, repo

    # Hydra embeds each config loaded for the composition under its package (``hydra/job_logging``
    # under ``hydra.job_logging``) in a new container, deep-copying it there, then merges that
    # container into the composed config without copying. The loaded config is this composition's
    # own (built for it, see _Parsed.config; ConfigStore.load copies too), so when its path is
    # composed once it is embedded as it is; a path composed twice (one config under two packages)
    # is copied as Hydra copies it: its first embedding must not change what the second one gets.
    _composed_once: Set[str] = set()
    _loading: Optional[str] = None

    def _compose_config_from_defaults_list(self, defaults: List[ResultDefault], repo: IConfigRepository) -> DictConfig:
        counts = collections.Counter(d.config_path for d in defaults)
        self._composed_once = {path for path, n in counts.items() if n == 1 and path is not None}
        try:
            return super()._compose_config_from_defaults_list(defaults, repo)
        finally:
            self._composed_once = set()

    def _load_single_config(self, default: ResultDefault, repo: IConfigRepository) -> ConfigResult:
        self._loading = default.config_path
        try:
            return super()._load_single_config(default, repo)
        finally:
            self._loading = None

    def _embed_result_config(self, ret: ConfigResult, package_override: Optional[str]) -> ConfigResult:  # type: ignore[override]
        package = ret.header["package"] if package_override is None else package_override
        if not package or self._loading not in self._composed_once:
            return ConfigLoaderImpl._embed_result_config(ret, package_override)
        cfg = OmegaConf.create()
        with flag_override(cfg, "no_deepcopy_set_nodes", True):
            OmegaConf.update(cfg, package, ret.config, merge=False)
        ret = copy.copy(ret)
        ret.config = cfg
        return ret


#: This process's config loaders, by search path.
_LOADERS: Dict[Tuple[Tuple[str, str], ...], _ProcessConfigLoader] = {}


def search_path_in(search_path: ConfigSearchPath, code: Dict[str, Any]) -> Optional[ConfigSearchPath]:
    """``search_path`` with the config directories that lie inside the code read from its snapshot;
    None when none does."""
    root = pathlib.Path(code["root"]).resolve()
    moved_path = copy.deepcopy(search_path)
    moved = False
    for element in moved_path.get_path():
        path = str(element.path or "")
        scheme = "file://" if path.startswith("file://") else ""
        if "://" in path and not scheme:  # pkg://, structured://: not files of the code
            continue
        try:
            inside = pathlib.Path(path[len(scheme) :]).resolve().relative_to(root)
        except ValueError:  # a config directory outside the code: read where it is
            continue
        target = pathlib.Path(code["path"]) / inside
        if target.is_dir():  # not, e.g., for configs git does not track
            element.path, moved = f"{scheme}{target}", True
    return moved_path if moved else None


def job_context(context: HydraContext, code: Optional[Dict[str, Any]]) -> HydraContext:
    """Hydra's context for one job of this process: the config directories inside the code read from
    its snapshot (``code``), through this process's loader of that search path."""
    search_path = getattr(context.config_loader, "config_search_path", None)
    if search_path is None or not isinstance(context.config_loader, ConfigLoaderImpl):
        return context  # a loader of another kind: used as it is
    if code and code.get("root") and code.get("path"):
        search_path = search_path_in(search_path, code) or search_path
    key = _key(search_path)
    loader = _LOADERS.get(key)
    if loader is None:
        loader = _LOADERS[key] = _ProcessConfigLoader(search_path)
    return dataclasses.replace(context, config_loader=loader)
