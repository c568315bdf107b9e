"""The digits data as float32 tensors: the same splits as examples/digits (seeded permutation,
features standardized with the training split's statistics)."""

from typing import Tuple

import numpy as np


def load_splits(val_fraction: float, test_fraction: float, seed: int) -> Tuple[tuple, tuple, tuple]:
    import torch
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = np.asarray(digits.data, dtype=np.float64)
    y = np.asarray(digits.target, dtype=np.int64)
    perm = np.random.default_rng(seed).permutation(len(x))
    n_test, n_val = int(round(len(x) * test_fraction)), int(round(len(x) * val_fraction))
    parts = perm[:n_test], perm[n_test : n_test + n_val], perm[n_test + n_val :]
    mean, std = x[parts[2]].mean(axis=0), x[parts[2]].std(axis=0)
    std[std == 0] = 1.0

    def split(idx: np.ndarray) -> tuple:
        return (torch.from_numpy(((x[idx] - mean) / std).astype(np.float32)), torch.from_numpy(y[idx]))

    test, val, train = (split(p) for p in parts)
    return train, val, test
