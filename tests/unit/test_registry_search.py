"""``versions(where=, sort=)``: ``table --filter``'s language over the versions' tags and metrics."""

from __future__ import annotations

import pytest
from registry_fixtures import sweep_with_artifacts

import hpctrack.models as hm
from hpctrack.query import FilterError


@pytest.fixture
def three_versions(hpctrack_root):
    sweep_with_artifacts(hpctrack_root, 3)  # summary final = 10 * job
    for i, task in enumerate(["cls", "det", "cls"]):
        hm.register(f"src/{i}", artifact="artifacts/model.bin", name="m", tags={"task": task})
    return hpctrack_root


def test_where_over_metrics_and_tags_and_sort_descending(three_versions):
    df = hm.versions("m", where="final >= 10 and tags.task == 'cls'", sort=["-final"])
    assert list(df["version"]) == [3]
    df = hm.versions("m", where="loss:min < 1", sort=["-final"])
    assert list(df["version"]) == [3, 2, 1]
    assert list(hm.versions("m", where="tags.task in ['det']")["run"]) == ["20260101-000000-rgst/1"]


@pytest.mark.parametrize(
    "where, message",
    [("__import__('os')", "bad --where"), ("nosuch > 1", "bad --where"), ("final >", "bad --where")],
)
def test_a_bad_filter_is_one_line_naming_the_option(three_versions, where, message):
    with pytest.raises(FilterError) as info:
        hm.versions("m", where=where)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_deleted_versions_are_left_out_unless_asked(three_versions):
    hm.delete("m/2")
    assert list(hm.versions("m")["version"]) == [1, 3]
    assert list(hm.versions("m", deleted=True)["deleted"]) == [False, True, False]
