"""Storage-root resolution: --root > HPCTRACK_ROOT > user config file > default."""

from __future__ import annotations

import pytest

from hpctrack.config import default_root, ensure_writable_root, resolve_root
from hpctrack.errors import ConfigError


def test_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.delenv("HPCTRACK_ROOT", raising=False)
    assert resolve_root() == tmp_path / "data" / "hpctrack" == default_root()
    (tmp_path / "cfg" / "hpctrack").mkdir(parents=True)
    (tmp_path / "cfg" / "hpctrack" / "config.yaml").write_text(f"root: {tmp_path / 'from-file'}\n")
    assert resolve_root() == tmp_path / "from-file"
    monkeypatch.setenv("HPCTRACK_ROOT", str(tmp_path / "from-env"))
    assert resolve_root() == tmp_path / "from-env"
    assert resolve_root(str(tmp_path / "explicit")) == tmp_path / "explicit"


def test_broken_user_config_names_itself(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    monkeypatch.delenv("HPCTRACK_ROOT", raising=False)
    (tmp_path / "hpctrack").mkdir()
    (tmp_path / "hpctrack" / "config.yaml").write_text("root: [unclosed\n")
    with pytest.raises(ConfigError, match="config.yaml"):
        resolve_root()


def test_unwritable_root_is_one_clear_line():
    with pytest.raises(ConfigError) as info:
        ensure_writable_root(resolve_root("/proc/hpctrack-root"))
    message = str(info.value)
    assert "\n" not in message and "/proc/hpctrack-root" in message and "HPCTRACK_ROOT" in message
