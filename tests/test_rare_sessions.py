"""Class sessions hunt the rare classes (issue 22): concept strategies score any rare class
named at init and say so, SIMILAR falls back when its gains cannot tell items apart, and the
cold start covers unexplored regions before any rare item is known."""

from __future__ import annotations

import numpy as np
import pytest

from raresift.pool import Labels, Pool
from raresift.session import Session
from raresift.strategies import Batch, SelectionState, Strategy, make_strategy
from raresift.strategies.rare import EqualGainFallback, coverage_picks, session_strategy


class TableModel:
    """predict_proba from a fixed table indexed by the first embedding column (the item id)."""

    provides = frozenset({"probabilities"})

    def __init__(self, proba):
        self.proba = np.asarray(proba, dtype=np.float64)
        self.n_classes = self.proba.shape[1]

    def fit(self, X, y):
        return self

    def predict_proba(self, X):
        return self.proba[np.asarray(X)[:, 0].astype(int)]


def _state(proba, labeled=(), values=(), dim=3, seed=0):
    n = len(proba)
    x = np.zeros((n, dim), np.float32)
    x[:, 0] = np.arange(n)
    x[:, 1:] = np.random.default_rng(seed).normal(size=(n, dim - 1))
    labels = Labels(list(labeled), list(values)) if len(labeled) else Labels()
    return SelectionState(Pool(x), labels, TableModel(proba), np.random.default_rng(seed))


# ------------------------------------------------------------------ mlp over the rare classes
def test_mlp_scores_the_probability_of_any_rare_class():
    # classes: 0 common, 1 common (column 1, which mlp used to hunt), 2 and 3 rare
    proba = [
        [0.05, 0.90, 0.03, 0.02],  # most likely class 1: not rare
        [0.40, 0.10, 0.30, 0.20],  # p(any rare) = 0.5
        [0.10, 0.10, 0.05, 0.75],  # p(any rare) = 0.8
        [0.70, 0.10, 0.10, 0.10],
    ]
    state = _state(proba)
    batch = make_strategy("mlp", positive=[2, 3]).select(state, np.arange(4), 2)
    assert batch.ids.tolist() == [2, 1]
    assert np.allclose(batch.scores, [0.8, 0.5])
    assert make_strategy("mlp").select(state, np.arange(4), 1).ids.tolist() == [0]  # column 1


def test_information_density_over_rare_classes_uses_their_binary_entropy():
    proba = [[0.5, 0.0, 0.5], [0.34, 0.33, 0.33], [0.05, 0.0, 0.95]]
    state = _state(proba)
    s = make_strategy("information-density", positive=[2], beta=0.0)
    assert s.select(state, np.arange(3), 1).ids.tolist() == [0]  # p(rare) = 0.5


def test_bad_positive_lists_are_refused():
    from raresift.errors import ConfigError

    with pytest.raises(ConfigError, match="positive"):
        make_strategy("mlp", positive=[])
    with pytest.raises(ConfigError, match="positive"):
        make_strategy("mlp", positive=[1, 1])


# ------------------------------------------------------------------ SIMILAR's equal gains
class Flat(Strategy):
    name = "flat"

    def select(self, state, candidates, budget):
        ids = np.asarray(candidates)[:budget]
        return Batch(ids, np.full(budget, 0.531), self.name, state.round)


def test_equal_gains_say_so_and_fall_back():
    proba = [[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]]
    state = _state(proba, labeled=[0], values=[1])
    wrapped = EqualGainFallback(Flat(), make_strategy("mlp", positive=[1]))
    batch = wrapped.select(state, np.arange(1, 4), 2)
    assert batch.ids.tolist() == [1, 3] and batch.strategy == "mlp"
    assert all("every flat gain of this batch is 0.531" in r for r in batch.reasons)


def test_session_similar_uses_embeddings_and_a_fallback():
    s = session_strategy("flqmi", kind="classes", positive=[2])
    assert isinstance(s, EqualGainFallback) and s.strategy.representation == "embedding"
    assert s.fallback.positive == [2]
    assert session_strategy("mlp", kind="classes", positive=[2, 3]).positive == [2, 3]
    assert session_strategy("mlp", kind="concept", positive=[1]).positive == 1
    kept = session_strategy("flqmi", kind="classes", positive=[2],
                            params={"representation": "gradient"})  # fmt: skip
    assert kept.strategy.representation == "gradient"


# ------------------------------------------------------------------ coverage and rare-search
def _clusters(n_big=200, n_small=12, seed=0):
    """Three tight clusters: two large (common classes), one small (a rare class)."""
    rng = np.random.default_rng(seed)
    centers = np.eye(3, 8, dtype=np.float32) * 5
    sizes = [n_big, n_big, n_small]
    x = np.concatenate(
        [c + 0.3 * rng.normal(size=(m, 8)) for c, m in zip(centers, sizes, strict=True)]
    )
    y = np.repeat([0, 1, 2], sizes)
    return x.astype(np.float32), y


def test_coverage_reaches_the_region_no_answer_covers():
    x, y = _clusters()
    labeled = np.concatenate([np.flatnonzero(y == 0)[:5], np.flatnonzero(y == 1)[:5]])
    state = SelectionState(Pool(x), Labels(labeled, y[labeled]), None, np.random.default_rng(0))
    free = np.setdiff1d(np.arange(y.size), labeled)
    ids, gains, reasons = coverage_picks(state, free, 3, clusters=3)
    assert y[ids[0]] == 2  # the small cluster is the largest mass no answer covers
    assert gains[0] >= gains[-1] and reasons[0].startswith("covers ")


def test_rare_search_explores_then_exploits():
    x, y = _clusters()
    rng = np.random.default_rng(1)
    strategy = make_strategy("rare-search", positive=[2], explore=0.25)
    # one rare item known, no other class: similarity to it
    state = SelectionState(Pool(x), Labels([400], [2]), None, rng)
    batch = strategy.select(state, np.setdiff1d(np.arange(y.size), [400]), 8)
    assert np.all(y[batch.ids[:6]] == 2)
    assert all("cosine" in r for r in batch.reasons[:6])
    # with a model: p(any rare class), and no exploration once every rare class has an item
    proba = np.full((y.size, 3), 0.45)
    proba[:, 2] = 0.1
    proba[y == 2] = [0.1, 0.1, 0.8]
    labeled = [0, 1, 250, 400]
    x_ids = np.column_stack([np.arange(y.size), x]).astype(np.float32)
    state = SelectionState(
        Pool(x_ids), Labels(labeled, y[labeled]), TableModel(proba), np.random.default_rng(0)
    )
    batch = make_strategy("rare-search", positive=[2]).select(
        state, np.setdiff1d(np.arange(y.size), labeled), 5
    )
    assert np.all(y[batch.ids] == 2) and all("p(any rare class)" in r for r in batch.reasons)


# ------------------------------------------------------------------ in a session
def _class_session(tmp_path, strategy=None, seed_rows=None):
    x, y = _clusters(n_big=150, n_small=10)
    np.save(tmp_path / "emb.npy", x)
    names = np.array(["cat", "dog", "owl"])[y]
    seed = None
    if seed_rows:
        seed = tmp_path / "seed.csv"
        seed.write_text("id,label\n" + "".join(f"{i},{names[i]}\n" for i in seed_rows))
    s = Session.create(tmp_path / "p", embeddings=tmp_path / "emb.npy",
                       classes=["dog", "cat", "owl"], rare_classes=["owl"], strategy=strategy,
                       seed_labels=seed, progress=False)  # fmt: skip
    return s, names


def test_class_session_default_and_cold_start_reasons(tmp_path):
    s, names = _class_session(tmp_path)
    assert s.config["defaults"]["strategy"] == "rare-search"
    batch = s.next(budget=10)
    assert all(b.reason.startswith("no rare item known yet: ") for b in batch)
    kinds = [b.reason.split(": ")[1].split(" ")[0] for b in batch]
    assert kinds.count("covers") == 5 and kinds.count("uniformly") == 5  # half of each
    s.answer_many([(b.id, names[b.id]) for b in batch])
    found = []
    for _ in range(3):
        batch = s.next(budget=10)
        s.answer_many([(b.id, names[b.id]) for b in batch])
        found += [names[b.id] == "owl" for b in batch]
    assert sum(found) >= 8  # of the 10 owls
    assert any("p(owl)=" in b.reason for b in batch)


def test_mlp_in_a_class_session_hunts_the_rare_class_and_names_it(tmp_path):
    s, names = _class_session(tmp_path, strategy="mlp", seed_rows=[0, 1, 150, 151, 300])
    batch = s.next(budget=8)
    assert sum(names[b.id] == "owl" for b in batch) >= 7
    assert all(b.reason.startswith("most likely rare class: p(owl)=") for b in batch)


def test_flqmi_in_a_class_session_cold_start_says_so(tmp_path):
    s, names = _class_session(tmp_path, strategy="flqmi", seed_rows=[0, 150])
    batch = s.next(budget=5)  # two common classes answered, no owl yet
    assert all(b.reason.startswith("cold start: no positives yet") for b in batch)
    assert s.round_info()["strategy"] == "rare-search"


# ------------------------------------------------------------------ GALAXY and DIRECT
def _line_state(labeled, values, n=11, seed=0):
    """Items 0..n-1 whose class-1 probability rises with the id: each margin order is the id
    order (class 1) or its reverse (class 0)."""
    p1 = np.linspace(0.0, 1.0, n)
    return _state(np.column_stack([1 - p1, p1]), labeled=labeled, values=values, seed=seed)


def test_galaxy_bisects_the_path_between_opposite_labels():
    state = _line_state([0, 10], [0, 1])
    batch = make_strategy("galaxy").select(state, np.arange(1, 10), 3)
    assert batch.ids[0] == 5  # the middle of the 9 unlabeled items between the two labels
    # the other class's path (reversed order) meets the same middle; then the halves' middles
    assert set(batch.ids[1:].tolist()) <= {2, 3, 7, 8}
    assert batch.reasons[0].startswith("galaxy: middle of a path of 9 unlabeled items")


def test_galaxy_fills_with_small_margins_when_no_path_is_left():
    state = _line_state([0, 1], [0, 0])  # one class labeled: no path between opposite labels
    batch = make_strategy("galaxy").select(state, np.arange(2, 11), 2)
    assert batch.ids[0] == 5 and batch.ids[1] in (4, 6)  # margins nearest 0
    assert batch.reasons[0].startswith("nearest a class boundary")


def test_direct_picks_around_the_best_threshold_rare_class_first():
    # labeled: 0, 1, 2 are class 0; 8 is class 1 (and 3 is a noisy class-1 label)
    state = _line_state([0, 1, 2, 3, 8], [0, 0, 0, 1, 0])
    state.labels = Labels([0, 1, 2, 3, 8], [0, 0, 0, 1, 1])
    batch = make_strategy("direct").select(state, np.array([4, 5, 6, 7, 9, 10]), 2)
    # threshold of class 1 between 3 and 8 (one error at most); nearest unlabeled items there
    assert set(batch.ids.tolist()) <= {4, 5, 6, 7}
    assert "threshold" in batch.reasons[0]


def test_best_threshold_is_robust_to_one_noisy_label():
    from raresift.strategies.imbalance import best_thresholds

    labels = np.array([0, 0, 1, 0, 0, -1, 1, 1, 0, 1])  # one 1 low, one 0 high
    t, errors = best_thresholds(labels, 1)
    assert errors == 2 and 5 <= t <= 6
