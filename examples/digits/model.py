"""A small, deterministic numpy MLP on scikit-learn's bundled digits data set.

One hidden layer (ReLU), softmax cross-entropy, trained with mini-batch SGD
with momentum or Adam. Everything is float64 and every bit of randomness comes
from ``numpy.random.default_rng(seed)``, so identical configs give
bit-identical metrics. The data set (1797 8x8 images, 10 classes) ships with
scikit-learn; nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Tuple

import numpy as np

Params = Dict[str, np.ndarray]
Split = Tuple[np.ndarray, np.ndarray]

OPTIMIZERS = ("sgd", "adam")


# --------------------------------------------------------------------- data


def load_data(val_fraction: float = 0.2, test_fraction: float = 0.2, seed: int = 0) -> Tuple[Split, Split, Split]:
    """Return standardized ``(train, val, test)`` splits, each ``(X, y)``.

    The permutation depends only on ``seed``. Features are standardized with
    the mean/std of the training split only (constant pixels get std 1).
    """
    from sklearn.datasets import load_digits

    if not 0.0 < val_fraction < 1.0 or not 0.0 < test_fraction < 1.0:
        raise ValueError("val_fraction and test_fraction must be in (0, 1)")
    if val_fraction + test_fraction >= 1.0:
        raise ValueError("val_fraction + test_fraction must be < 1")

    digits = load_digits()
    X = np.asarray(digits.data, dtype=np.float64)
    y = np.asarray(digits.target, dtype=np.int64)
    n = X.shape[0]

    perm = np.random.default_rng(seed).permutation(n)
    n_test = int(round(n * test_fraction))
    n_val = int(round(n * val_fraction))
    test_idx = perm[:n_test]
    val_idx = perm[n_test : n_test + n_val]
    train_idx = perm[n_test + n_val :]

    mean = X[train_idx].mean(axis=0)
    std = X[train_idx].std(axis=0)
    std[std == 0.0] = 1.0

    def split(idx: np.ndarray) -> Split:
        return (X[idx] - mean) / std, y[idx]

    return split(train_idx), split(val_idx), split(test_idx)


# -------------------------------------------------------------------- model


def init_params(n_in: int, hidden: int, n_out: int, rng: np.random.Generator) -> Params:
    """He-initialised weights, zero biases."""
    return {
        "W1": rng.standard_normal((n_in, hidden)) * np.sqrt(2.0 / n_in),
        "b1": np.zeros(hidden),
        "W2": rng.standard_normal((hidden, n_out)) * np.sqrt(2.0 / hidden),
        "b2": np.zeros(n_out),
    }


def _forward(params: Params, X: np.ndarray) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (hidden pre-activation, hidden activation, softmax probabilities)."""
    z1 = X @ params["W1"] + params["b1"]
    h = np.maximum(z1, 0.0)
    logits = h @ params["W2"] + params["b2"]
    logits = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    probs = e / e.sum(axis=1, keepdims=True)
    return z1, h, probs


def _cross_entropy(probs: np.ndarray, y: np.ndarray) -> float:
    p = probs[np.arange(y.shape[0]), y]
    return float(-np.mean(np.log(np.maximum(p, 1e-300))))


def _loss_and_grads(params: Params, X: np.ndarray, y: np.ndarray) -> Tuple[float, Params]:
    z1, h, probs = _forward(params, X)
    loss = _cross_entropy(probs, y)
    m = X.shape[0]
    d_logits = probs.copy()
    d_logits[np.arange(m), y] -= 1.0
    d_logits /= m
    d_h = d_logits @ params["W2"].T
    d_h[z1 <= 0.0] = 0.0
    grads = {
        "W1": X.T @ d_h,
        "b1": d_h.sum(axis=0),
        "W2": h.T @ d_logits,
        "b2": d_logits.sum(axis=0),
    }
    return loss, grads


def predict(params: Params, X: np.ndarray) -> np.ndarray:
    return _forward(params, X)[2].argmax(axis=1)


def evaluate(params: Params, X: np.ndarray, y: np.ndarray) -> Tuple[float, float]:
    """Return ``(mean cross-entropy loss, accuracy)`` on ``(X, y)``."""
    _, _, probs = _forward(params, X)
    loss = _cross_entropy(probs, y)
    acc = float(np.mean(probs.argmax(axis=1) == y))
    return loss, acc


# ---------------------------------------------------------------- optimizer


def init_optimizer_state(params: Params) -> Dict[str, object]:
    """Zeroed state usable by both optimizers (velocity / Adam moments)."""
    return {
        "t": 0,
        "m": {k: np.zeros_like(v) for k, v in params.items()},
        "v": {k: np.zeros_like(v) for k, v in params.items()},
    }


def _step(
    params: Params,
    grads: Params,
    state: Dict[str, object],
    optimizer: str,
    lr: float,
    momentum: float,
    beta1: float,
    beta2: float,
    eps: float,
) -> None:
    state["t"] = int(state["t"]) + 1  # type: ignore[call-overload]
    t = state["t"]
    m: Params = state["m"]  # type: ignore[assignment]
    v: Params = state["v"]  # type: ignore[assignment]
    if optimizer == "sgd":
        for k in params:
            m[k] *= momentum
            m[k] -= lr * grads[k]
            params[k] += m[k]
    elif optimizer == "adam":
        c1 = 1.0 - beta1**t
        c2 = 1.0 - beta2**t
        for k in params:
            g = grads[k]
            m[k] *= beta1
            m[k] += (1.0 - beta1) * g
            v[k] *= beta2
            v[k] += (1.0 - beta2) * (g * g)
            params[k] -= lr * (m[k] / c1) / (np.sqrt(v[k] / c2) + eps)
    else:
        raise ValueError(f"unknown optimizer {optimizer!r}, expected one of {OPTIMIZERS}")


def train_epoch(
    params: Params,
    state: Dict[str, object],
    X: np.ndarray,
    y: np.ndarray,
    rng: np.random.Generator,
    *,
    batch_size: int = 64,
    optimizer: str = "sgd",
    lr: float = 0.1,
    momentum: float = 0.9,
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-8,
) -> float:
    """One pass over ``(X, y)`` in shuffled mini-batches; updates ``params``
    and ``state`` in place. Returns the sample-weighted mean training loss."""
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {optimizer!r}, expected one of {OPTIMIZERS}")
    n = X.shape[0]
    order = rng.permutation(n)
    total = 0.0
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        loss, grads = _loss_and_grads(params, X[idx], y[idx])
        total += loss * idx.shape[0]
        _step(params, grads, state, optimizer, lr, momentum, beta1, beta2, eps)
    return total / n


# -------------------------------------------------------------------- saving


def save_model(path: str | Path, params: Params) -> Path:
    """Write ``params`` to an uncompressed ``.npz`` and return its path."""
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_suffix(".npz")
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **params)
    return path


def load_model(path: str | Path) -> Params:
    with np.load(path) as f:
        return {k: f[k] for k in f.files}
