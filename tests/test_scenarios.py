import numpy as np
import pytest

from raresift.errors import ValidationError
from raresift.simulate.scenarios import (
    out_of_distribution_scenario,
    rare_classes_scenario,
    redundancy_scenario,
    standard_scenario,
    take_per_class,
)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(1)
    y = np.repeat(np.arange(10), 150)
    X = (rng.normal(size=(y.size, 6)) + y[:, None]).astype(np.float32)
    test_y = np.repeat(np.arange(10), 20)
    test_X = (rng.normal(size=(test_y.size, 6)) + test_y[:, None]).astype(np.float32)
    return X, y, test_X, test_y


def test_rare_classes_sizes_and_roles(data):
    X, y, tX, ty = data
    s = rare_classes_scenario(
        X, y, tX, ty, rare_classes=[5, 6, 7, 8, 9], labeled_per_class=22,
        labeled_per_rare_class=3, unlabeled_per_class=100, imbalance=20,
        query_per_rare_class=5, seed=3,
    )  # fmt: skip
    training = s.labels.ids[~np.isin(s.labels.ids, s.validation_ids)]
    assert np.bincount(s.oracle(training), minlength=10).tolist() == [22] * 5 + [3] * 5
    assert s.unlabeled_class_counts().tolist() == [100] * 5 + [5] * 5
    assert np.array_equal(s.query_ids, s.validation_ids)
    assert np.bincount(s.oracle(s.query_ids), minlength=10).tolist() == [0] * 5 + [5] * 5
    # query items are labeled; unlabeled items are not; roles are disjoint and cover the pool
    assert s.labels.mask(s.query_ids).all() and not s.labels.mask(s.unlabeled_ids).any()
    assert len(s.labels) + s.n_unlabeled == len(s.pool)
    # every pool item is a distinct data item with its own features and true label
    assert np.unique(s.origin).size == len(s.pool)
    assert np.array_equal(s.pool.embeddings, X[s.origin])
    assert np.array_equal(s.oracle.labels, y[s.origin])
    assert s.rare_classes.tolist() == [5, 6, 7, 8, 9]
    assert s.info["query_set"] == 25 and s.info["unlabeled"] == 525


def test_rare_classes_default_rare_half_and_errors(data):
    X, y, tX, ty = data
    s = rare_classes_scenario(X, y, tX, ty, unlabeled_per_class=40, imbalance=4, seed=0)
    assert s.rare_classes.tolist() == [5, 6, 7, 8, 9]
    with pytest.raises(ValidationError, match="no unlabeled rare"):
        rare_classes_scenario(X, y, tX, ty, unlabeled_per_class=10, imbalance=20)
    with pytest.raises(ValidationError, match="class 0 has"):
        rare_classes_scenario(X, y, tX, ty, unlabeled_per_class=500, imbalance=20)
    with pytest.raises(ValidationError, match="rare_classes"):
        rare_classes_scenario(X, y, tX, ty, rare_classes=[11])


def test_scenarios_are_deterministic_per_seed(data):
    X, y, tX, ty = data
    kwargs = dict(unlabeled_per_class=60, imbalance=6)
    a = rare_classes_scenario(X, y, tX, ty, seed=5, **kwargs)
    b = rare_classes_scenario(X, y, tX, ty, seed=5, **kwargs)
    c = rare_classes_scenario(X, y, tX, ty, seed=6, **kwargs)
    assert np.array_equal(a.origin, b.origin) and np.array_equal(a.query_ids, b.query_ids)
    assert np.array_equal(a.labels.ids, b.labels.ids)
    assert not np.array_equal(a.origin, c.origin)


def test_redundancy_duplicates_map_to_their_original(data):
    X, y, tX, ty = data
    s = redundancy_scenario(
        X, y, tX, ty, labeled=50, unique_unlabeled=200, duplicate_fraction=0.2, redundancy=10,
        seed=2,
    )  # fmt: skip
    # the paper's arithmetic: 200 * 0.8 originals + 200 * 0.2 * 10 copies
    assert s.n_unlabeled == 160 + 400 == s.info["unlabeled"]
    origins, counts = np.unique(s.origin[s.pool.positions(s.unlabeled_ids)], return_counts=True)
    assert origins.size == 200
    assert sorted(np.unique(counts).tolist()) == [1, 10] and (counts == 10).sum() == 40
    # copies share features and labels with their original, but have their own ids
    dup_origin = origins[counts == 10][0]
    copies = s.pool.ids[s.origin == dup_origin]
    assert copies.size == 10 and np.unique(copies).size == 10
    assert np.all(s.pool.embeddings_of(copies) == X[dup_origin])
    assert np.all(s.oracle(copies) == y[dup_origin])
    # labeled and unlabeled items come from disjoint data items
    labeled_origin = s.origin[s.pool.positions(s.labels.ids)]
    assert not np.isin(labeled_origin, origins).any()
    # SCG recipe: conditioning set = the labeled set, and every new label joins it
    assert np.array_equal(np.sort(s.conditioning_ids), np.sort(s.labels.ids))
    to_query, to_cond = s.growth(s.unlabeled_ids[:5], s.oracle(s.unlabeled_ids[:5]))
    assert to_query.size == 0 and np.array_equal(to_cond, s.unlabeled_ids[:5])


def test_out_of_distribution_split(data):
    X, y, tX, ty = data
    s = out_of_distribution_scenario(
        X, y, tX, ty, n_in_distribution=8, labeled_per_class=5, validation_per_class=2,
        unlabeled_per_class=10, unlabeled_per_ood_class=100, seed=0,
    )  # fmt: skip
    assert s.n_classes == 9 and s.class_names[-1] == "OOD"
    assert s.eval_classes.tolist() == list(range(8))
    training = s.labels.ids[~np.isin(s.labels.ids, s.validation_ids)]
    assert np.bincount(s.oracle(training), minlength=9).tolist() == [5] * 8 + [0]
    assert s.unlabeled_class_counts().tolist() == [10] * 8 + [200]
    # original classes 8 and 9 both became the OOD class
    ood = s.unlabeled_ids[s.oracle(s.unlabeled_ids) == 8]
    assert set(y[s.origin[s.pool.positions(ood)]].tolist()) == {8, 9}
    # the test set keeps in-distribution items only
    assert s.test_y.size == 160 and s.test_y.max() == 7
    # query set I = validation set (held out), conditioning set O starts empty
    assert np.array_equal(s.query_ids, s.validation_ids) and s.query_ids.size == 16
    assert s.conditioning_ids is not None and s.conditioning_ids.size == 0
    ids = s.unlabeled_ids[:40]
    labels = s.oracle(ids)
    to_query, to_cond = s.growth(ids, labels)
    assert np.array_equal(to_query, ids[labels < 8]) and np.array_equal(to_cond, ids[labels == 8])
    with pytest.raises(ValidationError, match="no OOD class"):
        out_of_distribution_scenario(X, y, tX, ty, n_in_distribution=10)


def test_standard_scenario_balanced(data):
    X, y, tX, ty = data
    s = standard_scenario(X, y, tX, ty, labeled_per_class=3, unlabeled_per_class=30, seed=0)
    assert s.unlabeled_class_counts().tolist() == [30] * 10
    assert len(s.labels) == 30 and s.query_ids is None and s.conditioning_ids is None
    assert s.validation_ids is None


def test_take_per_class_respects_availability():
    y = np.array([0, 0, 0, 1, 1, 1])
    available = np.array([True, False, True, True, True, False])
    picked = take_per_class(y, np.array([2, 2]), np.random.default_rng(0), available)
    assert sorted(picked.tolist()) == [0, 2, 3, 4]
    with pytest.raises(ValidationError, match="class 1 has 2 items left but the scenario needs 3"):
        take_per_class(y, np.array([0, 3]), np.random.default_rng(0), available)
