"""Names over 255 characters are refused where they enter the Python API, before anything is written."""

from __future__ import annotations

import pytest

import hpctrack
from hpctrack._names import MAX_NAME_LENGTH, check_name
from hpctrack.errors import ConfigError

LONG = "k" * (MAX_NAME_LENGTH + 1)


def _nothing_under(root):
    return not root.exists() or not any(root.rglob("sweep.json"))


def test_check_name_says_what_and_how_long():
    assert check_name("param key", "k" * MAX_NAME_LENGTH) == "k" * MAX_NAME_LENGTH
    with pytest.raises(ConfigError) as info:
        check_name("param key", LONG, "shorten it")
    assert str(info.value) == (
        f"param key '{'k' * 40}...' is 256 characters long; at most 255 are allowed (shorten it)"
    )


def test_long_sweep_name_or_config_key_creates_no_sweep(hpctrack_root):
    with pytest.raises(ConfigError, match="sweep name .* is 256 characters long"):
        hpctrack.start_run({"x": 1}, name=LONG)
    with pytest.raises(ConfigError, match="param key .* is 258 characters long"):
        hpctrack.start_run({"a": {LONG: 1}})
    assert _nothing_under(hpctrack_root)


def test_long_metric_summary_tag_and_param_keys_are_refused_in_a_run(hpctrack_root):
    with hpctrack.start_run({"x": 1}, name="ok") as run:
        with pytest.raises(ConfigError, match="run.log: metric name"):
            run.log({LONG: 1.0})
        run.log({"loss": 1.0})  # the refused call buffered nothing; the run goes on
        with pytest.raises(ConfigError, match="key .* is 256 characters long"):
            run.summary[LONG] = 1.0
        with pytest.raises(ConfigError, match="key .* is 256 characters long"):
            run.tags[LONG] = "x"
        with pytest.raises(ConfigError, match="param key"):
            run.log_params({LONG: 1})
    record = hpctrack.load_sweep("ok").run(0)
    assert LONG not in record.params and LONG not in record.summary and "loss" in record.metrics
