"""Model and alias names are path-safe; ``latest``, ``v<N>`` and numbers are reserved; references parse."""

from __future__ import annotations

import pytest
from registry_fixtures import sweep_with_artifacts

import hpctrack.models as hm
from hpctrack.errors import ConfigError
from hpctrack.models._layout import Ref, check_alias_name, check_model_name, parse_ref

HOSTILE = ["../x", "a/b", "..", ".", ".hidden", "a\nb", "a\x1bb", "tab\tname", "sp ace", "a@b", "", "-lead",
           "x" * 256, "é"]  # fmt: skip


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_model_and_alias_names_are_refused_in_one_line(name):
    for check in (check_model_name, check_alias_name):
        with pytest.raises(ConfigError) as info:
            check(name)
        assert "\n" not in str(info.value)


@pytest.mark.parametrize("alias", ["latest", "LATEST", "v3", "V12", "3", "007"])
def test_reserved_aliases_are_refused(alias):
    with pytest.raises(ConfigError, match="reserved"):
        check_alias_name(alias)


@pytest.mark.parametrize("name", ["resnet-cifar", "a", "m.v2_final", "3d-unet", "x" * 255])
def test_safe_names_pass(name):
    assert check_model_name(name) == name


@pytest.mark.parametrize(
    "text, ref",
    [
        ("resnet", Ref("resnet")),
        ("resnet@latest", Ref("resnet")),
        ("resnet/3", Ref("resnet", version=3)),
        ("resnet@v3", Ref("resnet", version=3)),
        ("resnet@3", Ref("resnet", version=3)),
        ("resnet@production", Ref("resnet", alias="production")),
    ],
)
def test_references(text, ref):
    assert parse_ref(text) == ref


@pytest.mark.parametrize("text", ["resnet/x", "resnet/../3", "../resnet", "resnet@../p", "resnet@", "a/b/3", "@x"])
def test_bad_references_are_one_line(text):
    with pytest.raises(ConfigError) as info:
        parse_ref(text)
    assert "\n" not in str(info.value)


def test_register_with_a_hostile_name_or_alias_writes_nothing(hpctrack_root):
    sweep_with_artifacts(hpctrack_root, 1)
    for kwargs in ({"name": "../x"}, {"name": "a/b"}, {"name": "ok", "aliases": ["latest"]},
                   {"name": "ok", "aliases": ["v3"]}, {"name": "ok", "tags": {"a=b": "c"}},
                   {"name": "ok", "tags": {"k": ""}}, {"name": "ok", "parents": ["nosuch/1"]}):  # fmt: skip
        with pytest.raises(ConfigError):
            hm.register("src/0", artifact="artifacts/model.bin", **kwargs)
    assert not (hpctrack_root / "registry").exists()
