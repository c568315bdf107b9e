"""Search spaces (Hydra's override grammar -> Optuna distributions) and objective selectors."""

from __future__ import annotations

import pytest

from hpctrack.errors import ConfigError
from hpctrack.optimize.objective import parse_objective
from hpctrack.optimize.space import format_value, parse_space


def test_space_reads_hydra_sweeps_as_hydra_optuna_sweeper_does():
    space = parse_space(["optimizer.lr=tag(log,interval(1e-4,1e-1))", "model.width=choice(64,128,256)",
                         "layers=range(1,9,2)", "dropout=interval(0,0.5)", "act=relu,gelu", "steps=int(interval(1,5))",
                         "epochs=3", "+extra=x"])  # fmt: skip
    by_name = {p.name: p for p in space.params}
    lr = by_name["optimizer.lr"]
    assert (lr.kind, lr.low, lr.high, lr.log) == ("float", 1e-4, 1e-1, True)
    assert by_name["model.width"].choices == (64, 128, 256) and by_name["model.width"].kind == "categorical"
    assert (by_name["layers"].kind, by_name["layers"].low, by_name["layers"].high, by_name["layers"].step) == \
        ("int", 1, 7, 2)  # fmt: skip
    assert (by_name["dropout"].kind, by_name["dropout"].log) == ("float", False)
    assert by_name["act"].choices == ("relu", "gelu")
    assert (by_name["steps"].kind, by_name["steps"].low, by_name["steps"].high) == ("int", 1, 5)
    assert space.fixed == ["epochs=3", "+extra=x"]
    dists = space.distributions()
    assert dists["optimizer.lr"].log and dists["layers"].step == 2 and list(dists["act"].choices) == ["relu", "gelu"]


def test_trial_overrides_read_back_as_the_same_values():
    from hydra.core.override_parser.overrides_parser import OverridesParser

    space = parse_space(["a=interval(0,1)", "b=choice(x,'with space',3,true)", "+c=range(3)"])
    values = {"a": 0.1234567890123, "b": "with space", "c": 2}
    overrides = space.trial_overrides(values)
    assert overrides[-1] == "+c=2"
    parser = OverridesParser.create()
    parsed = {o.key_or_group: o.value() for o in parser.parse_overrides(overrides)}
    assert parsed == values
    for value in ("plain", "it's", True, None, 1e-5, -3):
        (back,) = parser.parse_overrides([f"k={format_value(value)}"])
        assert back.value() == value


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["x=interval(1,0)"], "LOW < HIGH"),
        (["x=tag(log,interval(0,1))"], "LOW > 0"),
        (["x=tag(grid,interval(0,1))"], "unknown tag 'grid'"),
        (["x=glob(*)"], "cannot be searched"),
        (["x=shuffle(1,2)"], "shuffle"),
        (["x=range(3,3)"], "empty"),
        (["x=interval(0,1)", "x=choice(1,2)"], "searched twice"),
        (["hydra.job.chdir=true,false"], "Hydra's own settings"),
        (["x=1"], "needs a search space"),
        (["x=choice(1,1)"], "twice"),
        (["x=interval(0,"], "malformed override"),
    ],
)
def test_bad_space_is_one_line(overrides, message):
    with pytest.raises(ConfigError) as err:
        parse_space(overrides)
    assert message in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    "text, direction, expected",
    [
        ("val/loss:min", None, ("val/loss", None, "minimize")),
        ("val/loss:last:min", None, ("val/loss", "last", "minimize")),
        ("val/loss:min:min", None, ("val/loss", "min", "minimize")),
        ("val/acc:max:max", None, ("val/acc", "max", "maximize")),
        ("score:max", None, ("score", None, "maximize")),
        ("val/loss:min", "minimize", ("val/loss", "min", "minimize")),
        ("val/acc", "maximize", ("val/acc", None, "maximize")),
    ],
)
def test_objective_selector_and_direction(text, direction, expected):
    objective = parse_objective(text, direction)
    assert (objective.key, objective.stat, objective.direction) == expected


@pytest.mark.parametrize(
    "text, direction, message",
    [
        ("val/loss", None, "says no direction"),
        ("val/loss:avg:min", None, "unknown statistic 'avg'"),
        (":min", None, "names no metric"),
        ("val/loss", "down", "--direction must be minimize or maximize"),
    ],
)
def test_bad_objective_is_one_line(text, direction, message):
    with pytest.raises(ConfigError) as err:
        parse_objective(text, direction)
    assert message in str(err.value)


def test_intermediate_values_are_the_selector_so_far():
    steps, values = [0, 1, 2, 3], [3.0, 1.0, float("nan"), 2.0]
    assert parse_objective("l:last:min").intermediate(steps, values) == [(0, 3.0), (1, 1.0), (3, 2.0)]
    assert parse_objective("l:min:min").intermediate(steps, values) == [(0, 3.0), (1, 1.0), (3, 1.0)]
    assert parse_objective("l:max:max").intermediate(steps, values) == [(0, 3.0), (1, 3.0), (3, 3.0)]


def test_manifest_keeps_a_study_and_its_pruned_jobs_and_checks_their_shape(tmp_path):
    import json

    from hpctrack.manifest import JobRecord, Manifest, create_sweep, load_manifest, manifest_problem

    study = {"name": "s", "objective": {"key": "loss", "stat": None, "direction": "minimize"}, "trials": 4,
             "parallel": 2, "space": [{"key": "x", "kind": "float", "low": 0, "high": 1, "log": False}]}  # fmt: skip
    m = Manifest(id="20260101-000000-aaaa", created=0.0, backend="local", store="hdf5", study=study,
                 jobs=[JobRecord(index=0, overrides=["x=0.5"], run_dir="runs/0", pruned={"step": 3, "trial": 0})])  # fmt: skip
    create_sweep(tmp_path, m)
    data = json.loads((m.path / "sweep.json").read_text())
    assert data["format_version"] == 2 and data["study"] == study and data["jobs"][0]["pruned"]["step"] == 3
    assert load_manifest(m.path) == m
    assert (
        manifest_problem({**data, "study": {**study, "trials": "4"}})
        == 'study.trials must be an integer, got a string "4"'
    )
    assert "study" not in json.loads(json.dumps(Manifest(id="x", created=0.0, backend="local", store="hdf5").to_json()))
