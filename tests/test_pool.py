import numpy as np
import pytest

from raresift.errors import BudgetError, RaresiftError, UnknownIdError, ValidationError
from raresift.pool import Labels, Pool, as_ids, check_budget


def test_pool_default_ids_and_lookup():
    emb = np.arange(12, dtype=np.float32).reshape(4, 3)
    pool = Pool(emb)
    assert pool.ids.tolist() == [0, 1, 2, 3]
    assert len(pool) == 4 and pool.dim == 3
    np.testing.assert_array_equal(pool.embeddings_of([3, 1]), emb[[3, 1]])


def test_pool_arbitrary_ids_map_to_positions():
    emb = np.random.default_rng(0).normal(size=(5, 2)).astype(np.float32)
    pool = Pool(emb, ids=[50, 10, 40, 20, 30])
    assert pool.positions([10, 50, 30]).tolist() == [1, 0, 4]
    np.testing.assert_array_equal(pool.embeddings_of([40]), emb[[2]])
    assert pool.contains([10, 11]).tolist() == [True, False]


def test_pool_contiguous_ids_with_offset():
    pool = Pool(np.ones((3, 2)), ids=[100, 101, 102])
    assert pool.positions([102, 100]).tolist() == [2, 0]
    with pytest.raises(UnknownIdError, match="not in the pool"):
        pool.positions([103])


def test_pool_works_on_memmap(tmp_path):
    path = tmp_path / "emb.f32"
    mm = np.memmap(path, dtype=np.float32, mode="w+", shape=(1000, 8))
    mm[:] = np.random.default_rng(1).normal(size=(1000, 8))
    mm.flush()
    ro = np.memmap(path, dtype=np.float32, mode="r", shape=(1000, 8))
    pool = Pool(ro)
    assert isinstance(pool.embeddings, np.memmap)  # never copied into memory
    np.testing.assert_array_equal(pool.embeddings_of([999]), ro[[999]])


def test_pool_raw_items_accessor():
    texts = np.array(["a", "b", "c"], dtype=object)
    pool = Pool(np.zeros((3, 1)), items=lambda ids: texts[ids])
    assert pool.items([2, 0]).tolist() == ["c", "a"]
    with pytest.raises(ValidationError, match="no raw items"):
        Pool(np.zeros((3, 1))).items([0])


@pytest.mark.parametrize(
    ("emb", "ids", "message"),
    [
        (np.array([[1.0, np.nan], [0.0, 1.0]]), None, "NaN or infinite.*row 0"),
        (np.array([[1.0, 0.0], [np.inf, 1.0]]), None, "NaN or infinite.*row 1"),
        (np.ones(5), None, "must be 2-d"),
        (np.ones((2, 3, 4)), None, "must be 2-d"),
        (np.ones((0, 3)), None, "empty"),
        (np.array([["a", "b"]]), None, "numeric"),
        (np.ones((3, 2)), [1, 2, 1], "unique; id 1"),
        (np.ones((3, 2)), [1, 2], "2 entries but embeddings has 3 rows"),
        (np.ones((2, 2)), [0.5, 1.0], "integers"),
    ],
)
def test_pool_rejects_bad_input(emb, ids, message):
    with pytest.raises(ValidationError, match=message):
        Pool(emb, ids=ids)


def test_unknown_ids_are_named():
    pool = Pool(np.ones((3, 2)), ids=[5, 9, 7])
    with pytest.raises(UnknownIdError, match=r"\[8, 100\]"):
        pool.embeddings_of([5, 8, 100])


def test_as_ids_shapes():
    assert as_ids(3).tolist() == [3]
    assert as_ids(np.array([1.0, 2.0])).dtype == np.int64
    with pytest.raises(ValidationError, match="1-d"):
        as_ids(np.ones((2, 2), dtype=int))


@pytest.mark.parametrize(
    ("budget", "message"),
    [(0, "positive integer"), (-3, "positive integer"), (2.5, "positive integer"),
     (True, "positive integer"), (11, "exceeds the 10")],
)  # fmt: skip
def test_budget_validation(budget, message):
    with pytest.raises(BudgetError, match=message):
        check_budget(budget, 10)
    assert check_budget(10, 10) == 10


def test_labels_sparse_and_consistent():
    labels = Labels([3, 1], [1, 0])
    assert len(labels) == 2 and labels[3] == 1 and 2 not in labels
    labels.add([7], [2])
    assert labels.ids.tolist() == [3, 1, 7]
    assert labels.values.tolist() == [1, 0, 2]
    assert labels.of([7, 3]).tolist() == [2, 1]
    assert labels.mask([1, 2, 7]).tolist() == [True, False, True]
    labels.add([3], [1])  # same answer again is fine
    with pytest.raises(ValidationError, match="already labeled 1, not 0"):
        labels.add([3], [0])
    labels.add([3], [0], overwrite=True)
    assert labels[3] == 0
    copy = labels.copy()
    copy.add([9], [1])
    assert 9 not in labels


@pytest.mark.parametrize(
    ("ids", "values", "message"),
    [([1, 2], [0], "2 ids but 1 labels"), ([1, 1], [0, 0], "duplicates"),
     ([1], [-1], "non-negative"), ([1], [0.5], "integer class indices")],
)  # fmt: skip
def test_labels_reject_bad_input(ids, values, message):
    with pytest.raises(ValidationError, match=message):
        Labels().add(ids, values)


def test_unlabeled_lookup_raises():
    with pytest.raises(UnknownIdError, match="item 4 has no label"):
        Labels()[4]


def test_every_error_is_a_raresift_error():
    for cls in (ValidationError, UnknownIdError, BudgetError):
        assert issubclass(cls, RaresiftError)


def test_row_blocks_read_dense_ascending_ids_in_place_and_gather_the_rest(rng):
    x = rng.standard_normal((1000, 3)).astype(np.float32)
    pool = Pool(x, ids=np.arange(1000) + 50)
    dense = np.delete(pool.ids, [0, 7, 400, 999])  # all of U but a few labeled items
    scattered = rng.permutation(pool.ids)[:100]
    for ids, in_place in ((dense, True), (scattered, False)):
        got = np.empty((ids.size, 3), np.float32)
        covered = 0
        for start, stop, rows, take in pool.row_blocks(ids, 128):
            assert start == covered and rows.shape[0] <= 128
            assert np.shares_memory(rows, x) == in_place
            got[start:stop] = rows if take is None else rows[take]
            covered = stop
        assert covered == ids.size
        np.testing.assert_array_equal(got, pool.embeddings_of(ids))


def test_values_checked_skips_only_the_finiteness_scan():
    x = np.ones((4, 2), np.float32)
    x[1, 1] = np.nan
    with pytest.raises(ValidationError, match="row 1"):
        Pool(x)
    assert len(Pool(x, values_checked=True)) == 4  # the caller vouches for the values
    with pytest.raises(ValidationError, match="2-d"):
        Pool(np.ones(3, np.float32), values_checked=True)  # shapes are still checked
