"""The config files a packed task's jobs compose from: parsed once while a file stays the same file,
read again as soon as it is another (edited, replaced, or modified too recently to tell)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from hydra.plugins.config_source import ConfigLoadError
from omegaconf import OmegaConf

from hydra_plugins.hpctrack_launcher import _compose


def _write(path: Path, text: str, age_s: float = 3600) -> None:
    path.write_text(text)
    then = time.time() - age_s
    os.utime(path, (then, then))


@pytest.fixture(autouse=True)
def _fresh_reads():
    _compose._PARSED.clear()
    yield
    _compose._PARSED.clear()


def test_a_settled_file_is_parsed_once_and_each_load_gets_a_config_of_its_own(tmp_path):
    path = tmp_path / "a.yaml"
    _write(path, "# @package _global_\nlr: 0.1\nnested: {k: [1, 2]}\n")
    first, second = _compose._parsed(str(path), str(path)), _compose._parsed(str(path), str(path))
    assert second is first  # not read again
    assert first.header["package"] == "_global_"
    one, two = first.config(), second.config()
    one.nested.k.append(3)  # composing changes what it merges: never the next job's
    assert OmegaConf.to_container(two) == {"lr": 0.1, "nested": {"k": [1, 2]}}


def test_an_edit_of_the_same_size_with_an_old_modification_time_is_read_again(tmp_path):
    path = tmp_path / "a.yaml"
    _write(path, "v: 1\n")
    assert _compose._parsed(str(path), str(path)).config().v == 1
    _write(path, "v: 2\n")  # same size, and the same kind of old mtime: the change time still differs
    assert _compose._parsed(str(path), str(path)).config().v == 2


def test_a_file_replaced_by_another_is_read_again(tmp_path):
    path, other = tmp_path / "a.yaml", tmp_path / "b.yaml"
    _write(path, "v: 1\n")
    _write(other, "v: 3\n")
    first = _compose._parsed(str(path), str(path))
    st = os.stat(path)
    os.replace(other, path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # even with the old file's times
    assert _compose._parsed(str(path), str(path)).config().v == 3 and first.config().v == 1


def test_a_file_modified_moments_ago_is_never_kept(tmp_path):
    path = tmp_path / "a.yaml"
    _write(path, "v: 1\n", age_s=0)
    first = _compose._parsed(str(path), str(path))
    assert _compose._parsed(str(path), str(path)) is not first  # a second write in the same clock tick could hide
    assert str(path) not in _compose._PARSED


def test_a_missing_file_fails_as_hydra_says_it(tmp_path):
    with pytest.raises(ConfigLoadError, match="Config not found : .*missing.yaml"):
        _compose._parsed(str(tmp_path / "missing.yaml"), str(tmp_path / "missing.yaml"))


def test_a_jobs_hydra_record_is_hydras_own_rendering_with_only_secret_values_masked():
    from hydra_plugins.hpctrack_launcher._job import _masked_yaml

    plain = OmegaConf.create({"lr": 0.1, "name": "on", "n": "1", "sweep": {"dir": "${now:%H}", "items": [1, "x"]}})
    assert _masked_yaml(plain) == OmegaConf.to_yaml(plain)
    # Written by libyaml's emitter when all is ASCII, by PyYAML's otherwise: Hydra's text either way.
    tricky = {"long": "x" * 200, "words": "many words " * 20, "lines": "a\nb\n", "empty": "", "none": None,
              "list": [{"x": 1}, {"y": [1, 2]}, []], "yes": "yes", "float": "1.0", "lead": " a", "colon": "a: b",
              "hash": "#c", "tab": "a\tb", "bell": "\x07", "quotes": "'q' \"d\"", "star": "*s", "dash": "-",
              "tiny": 1e-10, "inf": float("inf"), "missing": "???", "unicode": "é ü 中文 🚀"}  # fmt: skip
    for data in (tricky, {k: v for k, v in tricky.items() if k != "unicode"}):
        cfg = OmegaConf.create(data)
        assert _masked_yaml(cfg) == OmegaConf.to_yaml(cfg)
    secret = OmegaConf.create({"db": {"password": "hunter2", "host": "h", "env": "${oc.env:PW}"}, "lr": 0.1})
    text = _masked_yaml(secret)
    assert "hunter2" not in text
    assert OmegaConf.to_container(OmegaConf.create(text)) == {"db": {"password": "***", "host": "h",
                                                                     "env": "${oc.env:PW}"}, "lr": 0.1}  # fmt: skip


def _conf_dir(folder: Path) -> Path:
    (folder / "db").mkdir(parents=True)
    (folder / "log").mkdir()
    _write(folder / "config.yaml", "defaults:\n  - db@src: mysql\n  - db@dst: mysql\n  - log: short\n  - _self_\n"
                                   "name: ${src.host}-${dst.host}\nx: 0\n")  # fmt: skip
    _write(folder / "db" / "mysql.yaml", "host: localhost\nport: 3306\nopts: {pool: 4}\n")
    _write(folder / "log" / "short.yaml", "# @package _global_\nlogging: {level: info, handlers: [a, b]}\n")
    return folder


def test_packed_jobs_compose_what_hydra_composes_one_config_under_two_packages_included(tmp_path):
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra._internal.utils import create_config_search_path
    from hydra.types import RunMode

    search_path = create_config_search_path(str(_conf_dir(tmp_path / "conf")))
    ours = _compose._ProcessConfigLoader(search_path)
    jobs = [["x=1", "src.port=1"], ["x=2", "dst.opts.pool=8", "+dst.extra=1"], ["x=3", "log=short"]]
    for overrides in jobs * 2:  # each job twice: nothing of one composition reaches the next
        theirs = ConfigLoaderImpl(search_path).load_configuration("config", overrides, RunMode.RUN)
        mine = ours.load_configuration("config", overrides, RunMode.RUN)
        assert OmegaConf.to_yaml(mine) == OmegaConf.to_yaml(theirs)
        assert mine.src is not mine.dst and mine.src.opts is not mine.dst.opts
    assert mine.src.port == 3306 and mine.dst.opts.pool == 4 and mine.name == "localhost-localhost"
