"""Pure parsing of SLURM's outputs and time formats (the cluster itself is tested in tests/slurm)."""

from __future__ import annotations

import pytest

from hpctrack._types import JobState
from hpctrack.errors import ConfigError
from hpctrack.launch.slurm import parse_sacct, parse_squeue, parse_time_min


def test_parse_sacct_maps_states_and_expands_pending_array_ranges():
    text = "\n".join(
        [
            "41_0|COMPLETED|0:0|vm|None",
            "41_1|FAILED|1:0|vm|None",
            "41_2|CANCELLED by 0|0:15|vm|None",
            "41_3|TIMEOUT|0:0|vm|None",
            "41_[4-6,8%2]|PENDING|0:0|None assigned|JobArrayTaskLimit",
            "42|OUT_OF_MEMORY|0:125|vm|None",
            "43_0|NODE_FAIL|0:0|vm|None",
            "43_1|REQUEUED|0:0|vm|None",
            "43_2|WEIRD_NEW_STATE|0:0|vm|None",
        ]
    )
    rows = parse_sacct(text)
    assert rows["41_0"].state == JobState.COMPLETED and rows["41_0"].node == "vm"
    assert rows["41_1"].state == JobState.FAILED and rows["41_1"].exit_code == "1:0"
    assert rows["41_2"].state == JobState.CANCELLED
    assert rows["41_3"].state == JobState.TIMEOUT
    assert [k for k in rows if k.startswith("41_")][4:] == ["41_4", "41_5", "41_6", "41_8"]
    assert rows["41_5"].state == JobState.PENDING and rows["41_5"].reason == "JobArrayTaskLimit"
    assert rows["41_5"].node is None
    assert rows["42"].state == JobState.OUT_OF_MEMORY
    assert rows["43_0"].state == JobState.NODE_FAIL and rows["43_1"].state == JobState.PENDING
    assert "43_2" not in rows  # unknown words are left to the runs' own records


def test_parse_squeue_expanded_rows():
    rows = parse_squeue("50_0|RUNNING|vm|None\n50_1|PENDING||Priority\n")
    assert rows["50_0"].state == JobState.RUNNING and rows["50_1"].reason == "Priority"


@pytest.mark.parametrize(
    "text, minutes",
    [
        ("30", 30),
        ("1", 1),
        ("0:30", 1),
        ("90:00", 90),
        ("04:00:00", 240),
        ("1-00:00:00", 1440),
        ("2-12", 3600),
        ("1-01:30", 1530),
        ("00:00:01", 1),
    ],
)
def test_parse_time_min(text, minutes):
    assert parse_time_min(text) == minutes


@pytest.mark.parametrize("text", ["", "soon", "1:2:3:4", "-5", "1-"])
def test_bad_time_is_a_config_error(text):
    with pytest.raises(ConfigError, match="SLURM's --time format"):
        parse_time_min(text)
