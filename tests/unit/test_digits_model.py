"""Unit tests for the shipped example's numpy model (examples/digits/model.py)."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

MODEL_PATH = Path(__file__).resolve().parents[2] / "examples" / "digits" / "model.py"


def _load_module():
    spec = importlib.util.spec_from_file_location("digits_example_model", MODEL_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


m = _load_module()


def _train(seed=0, optimizer="sgd", lr=0.1, epochs=15, hidden=64, batch_size=64):
    """Train like train.py does; return per-epoch (train_loss, val_loss, val_acc)
    plus test metrics and the final params."""
    (X_tr, y_tr), (X_val, y_val), (X_te, y_te) = m.load_data(0.2, 0.2, seed)
    rng = np.random.default_rng(seed)
    params = m.init_params(X_tr.shape[1], hidden, 10, rng)
    state = m.init_optimizer_state(params)
    history = []
    for _ in range(epochs):
        train_loss = m.train_epoch(
            params,
            state,
            X_tr,
            y_tr,
            rng,
            batch_size=batch_size,
            optimizer=optimizer,
            lr=lr,
            momentum=0.9,
        )
        history.append((train_loss, *m.evaluate(params, X_val, y_val)))
    return np.array(history), m.evaluate(params, X_te, y_te), params


@pytest.fixture(scope="module")
def sgd_run():
    return _train(seed=0, optimizer="sgd", lr=0.1)


def _row_set(X):
    return {row.tobytes() for row in X}


def test_splits_are_deterministic_per_seed():
    a = m.load_data(0.2, 0.2, 0)
    b = m.load_data(0.2, 0.2, 0)
    for (Xa, ya), (Xb, yb) in zip(a, b):
        assert np.array_equal(Xa, Xb) and np.array_equal(ya, yb)
    c = m.load_data(0.2, 0.2, 1)
    assert not np.array_equal(a[0][1], c[0][1])


def test_splits_sizes_dtypes_and_standardization():
    (X_tr, y_tr), (X_val, y_val), (X_te, y_te) = m.load_data(0.2, 0.2, 0)
    assert len(y_tr) + len(y_val) + len(y_te) == 1797
    assert len(y_val) == round(1797 * 0.2) and len(y_te) == round(1797 * 0.2)
    for X, y in [(X_tr, y_tr), (X_val, y_val), (X_te, y_te)]:
        assert X.dtype == np.float64 and X.shape == (len(y), 64)
        assert set(np.unique(y)) == set(range(10))
    np.testing.assert_allclose(X_tr.mean(axis=0), 0.0, atol=1e-12)
    std = X_tr.std(axis=0)
    assert np.all((np.abs(std - 1.0) < 1e-9) | (std == 0.0))


@pytest.mark.parametrize("seed", [0, 1])
def test_splits_are_disjoint_and_cover_the_data(seed):
    # The 1797 digits images are all distinct, so compare rows directly.
    (X_tr, _), (X_val, _), (X_te, _) = m.load_data(0.2, 0.2, seed)
    tr, val, te = _row_set(X_tr), _row_set(X_val), _row_set(X_te)
    assert len(tr) == len(X_tr) and len(val) == len(X_val) and len(te) == len(X_te)
    assert not (tr & val or tr & te or val & te)
    assert len(tr | val | te) == 1797


def test_sgd_learns(sgd_run):
    history, (test_loss, test_acc), _ = sgd_run
    train_loss, val_loss, val_acc = history.T
    assert val_acc[-1] > 0.9
    assert test_acc > 0.9
    assert train_loss[-1] < 0.5 * train_loss[0]
    assert val_loss[-1] < val_loss[0]
    assert np.all(np.diff(train_loss[:5]) < 0)  # steady decrease early on
    assert np.all(np.isfinite(history))


def test_same_seed_bit_identical(sgd_run):
    history, test_metrics, params = sgd_run
    history2, test_metrics2, params2 = _train(seed=0, optimizer="sgd", lr=0.1)
    assert history.tobytes() == history2.tobytes()
    assert test_metrics == test_metrics2
    for k in params:
        assert params[k].tobytes() == params2[k].tobytes()


def test_different_seed_differs(sgd_run):
    history, _, _ = sgd_run
    other, _, _ = _train(seed=1, optimizer="sgd", lr=0.1)
    assert not np.array_equal(history, other)


def test_adam_learns():
    history, (_, test_acc), _ = _train(seed=0, optimizer="adam", lr=0.001)
    train_loss, _, val_acc = history.T
    assert val_acc[-1] > 0.9
    assert test_acc > 0.9
    assert train_loss[-1] < 0.5 * train_loss[0]


def test_unknown_optimizer_rejected():
    (X_tr, y_tr), _, _ = m.load_data(0.2, 0.2, 0)
    rng = np.random.default_rng(0)
    params = m.init_params(64, 8, 10, rng)
    with pytest.raises(ValueError, match="unknown optimizer"):
        m.train_epoch(params, m.init_optimizer_state(params), X_tr, y_tr, rng, optimizer="rmsprop", lr=0.1)


def test_save_model_roundtrip(tmp_path, sgd_run):
    _, _, params = sgd_run
    path = m.save_model(tmp_path / "model.npz", params)
    assert path.suffix == ".npz" and path.is_file()
    with np.load(path) as f:
        assert set(f.files) == {"W1", "b1", "W2", "b2"}
        for k in params:
            assert np.array_equal(f[k], params[k])
