"""The run's log buffer keeps each call whole, even when Ctrl-C lands between its columns."""

from __future__ import annotations

import pytest

from hpctrack._buffer import Buffer


class _InterruptedColumn:
    """A step column whose append is where Ctrl-C lands (after the values went in)."""

    def __init__(self, column):
        self.column = column

    def append(self, value):
        raise KeyboardInterrupt

    def __len__(self):
        return len(self.column)

    def __delitem__(self, index):
        del self.column[index]


def test_a_call_interrupted_between_its_columns_is_undone_whole():
    buffer = Buffer()
    buffer.add(0, 1.0, {"a": 1.0, "b": 2.0})
    group = buffer._last
    steps = group.steps
    group.steps = _InterruptedColumn(steps)
    with pytest.raises(KeyboardInterrupt):
        buffer.add(1, 2.0, {"a": 3.0, "b": 4.0})
    group.steps = steps
    assert (len(group.values), len(group.steps), len(group.times), buffer.n_points) == (2, 1, 1, 2)
    buffer.add(1, 2.0, {"a": 3.0, "b": 4.0})  # the same call again, after the interrupt was handled
    batch = buffer.batch()  # readable: as many rows of values as steps
    assert batch.points["a"][1].tolist() == [1.0, 3.0] and batch.points["b"][0].tolist() == [0, 1]
