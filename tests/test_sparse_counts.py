"""SparseCounts against a dense numpy vector: any sequence of batches, added and taken out."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.stats import sparse_counts as sparse_module
from monitor.stats.sparse_counts import SparseCounts

SIZE = 64


def batch(draw_cells: list[int], draw_counts: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique cells with positive counts (what a window hands to ``add``)."""
    cells = np.array(sorted(set(draw_cells)), dtype=np.int64)
    counts = np.array(draw_counts[: cells.size] + [1] * (cells.size - len(draw_counts)), dtype=np.int64)
    return cells, counts


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.lists(st.integers(0, SIZE - 1), max_size=20),
                          st.lists(st.integers(1, 1000), max_size=20)), max_size=40),
       st.sampled_from([2, 16]), st.sampled_from([SIZE, 4096]))
def test_adds_equal_a_dense_vector(batches, merge_after, size):
    """(``size`` 4096: merges sort the few cells; ``SIZE``: they count into the dense vector.)"""
    c = SparseCounts(size)
    want = np.zeros(size, dtype=np.int64)
    for raw_cells, raw_counts in batches:
        cells, counts = batch(raw_cells, raw_counts)
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(sparse_module, "MERGE_AFTER", merge_after)
            c.add(cells, counts)
        np.add.at(want, cells, counts)
        assert c.dense().tolist() == want.tolist()
        assert len(c) <= np.count_nonzero(want) + merge_after * 20  # bounded by what was touched
    held = len(c)
    restored = pickle.loads(pickle.dumps(c))  # pickling merges a copy: the object itself is unchanged
    assert len(c) == held and restored.dense().tolist() == want.tolist()
    c.merge()
    # merged: sorted, unique, nothing zero, only touched cells
    assert np.all(np.diff(c.cells) > 0) and np.all(c.counts > 0)
    assert len(c) == int(np.count_nonzero(want))
    assert c.dense().tolist() == want.tolist()
    restored = pickle.loads(pickle.dumps(c))
    assert restored.dense().tolist() == want.tolist() and restored.size == size
    total = np.arange(size, dtype=np.int64)
    c.add_into(total, 1)
    assert total.tolist() == (np.arange(size) + want).tolist()
    c.add_into(total, -1)
    assert total.tolist() == np.arange(size).tolist()




def test_a_merge_does_not_change_the_callers_arrays():
    c = SparseCounts(8)
    cells, counts = np.array([1, 3]), np.array([2, 2])
    c.add(cells, counts)
    c.add(np.array([1]), np.array([5]))
    c.merge()
    assert counts.tolist() == [2, 2] and c.counts.tolist() == [7, 2]
