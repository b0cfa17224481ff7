"""The contract every registered strategy keeps with every candidate pool.

For each name ``raresift strategies`` lists and each pool (all, SEALS per item, SEALS per batch,
a random subset), through :class:`~raresift.loop.ActiveLearner`: the strategy is constructible
with its defaults (plus a cheaper autoencoder for the distance strategies); ``query`` returns
``budget`` distinct, unlabeled pool ids; asking again returns the same batch and leaves the
candidate pool as it was; a second learner with the same seed picks the same items; and after
teaching, the next round works and no labeled item stays a candidate.
"""

import numpy as np
import pytest

from raresift.candidates import AllCandidates, RandomCandidates, SEALSCandidates
from raresift.index import NeighborIndex
from raresift.loop import ActiveLearner
from raresift.models import MLP, TorchModel
from raresift.pool import Labels, Pool
from raresift.strategies import make_strategy, strategy_names

N, DIM, CLASSES, BUDGET = 240, 6, 3, 6
CHEAP = {"ae_epochs": 2, "max_fit_items": 200}  # the distance strategies' autoencoder
POOLS = ("all", "seals-item", "seals-batch", "random")


@pytest.fixture(scope="module")
def world():
    rng = np.random.default_rng(7)
    centers = rng.standard_normal((CLASSES, DIM)) * 2
    y = rng.integers(0, CLASSES, N)
    x = (centers[y] + rng.standard_normal((N, DIM))).astype(np.float32)
    pool = Pool(x, ids=np.arange(N) * 3 + 11)  # ids are not positions
    seed = np.concatenate([np.flatnonzero(y == c)[:6] for c in range(CLASSES)])
    return pool, y, pool.ids[seed], NeighborIndex(progress=False).fit(pool)


def make_pool(kind, index):
    if kind == "all":
        return AllCandidates()
    if kind == "random":
        return RandomCandidates(0.5, seed=1)
    return SEALSCandidates(index, k=8, expand=kind.split("-")[1])


def make_learner(name, kind, world, seed=3):
    pool, y, seed_ids, index = world
    labels = Labels(seed_ids, y[pool.positions(seed_ids)])
    params = CHEAP if name in ("ibal-d", "entropy-d") else {}
    model = TorchModel(MLP(DIM, hidden=16, n_classes=CLASSES, dropout=0.3), CLASSES,
                       epochs=5, device="cpu", seed=seed)  # fmt: skip
    return ActiveLearner(
        pool,
        model,
        make_strategy(name, **params),
        make_pool(kind, index),
        labels,
        query_ids=seed_ids[:3],
        conditioning_ids=seed_ids[6:9],
        validation_ids=seed_ids[-3:],
        seed=seed,
    )


def test_the_contract_covers_every_name_the_cli_lists(capsys):
    from raresift.cli import main

    assert main(["strategies", "--names"]) == 0
    listed = set(capsys.readouterr().out.split())
    assert listed == set(strategy_names())  # the contract below is parametrized by these


@pytest.mark.parametrize("kind", POOLS)
@pytest.mark.parametrize("name", strategy_names())
def test_strategy_keeps_the_contract_on_every_candidate_pool(name, kind, world):
    pool = world[0]
    learner = make_learner(name, kind, world)
    before = learner.candidates.candidates().copy()
    first = learner.query(BUDGET)
    again = learner.query(BUDGET)
    # the requested size, distinct, unlabeled, from the pool
    assert len(first) == BUDGET and np.unique(first.ids).size == BUDGET
    assert not learner.labels.mask(first.ids).any()
    pool.positions(first.ids)
    # pure: the same batch again, the candidate pool unchanged
    np.testing.assert_array_equal(first.ids, again.ids)
    np.testing.assert_array_equal(first.scores, again.scores)
    np.testing.assert_array_equal(learner.candidates.candidates(), before)
    # same seed, same picks (a fresh learner, model and pool)
    np.testing.assert_array_equal(make_learner(name, kind, world).query(BUDGET).ids, first.ids)
    # teaching is the only writer: labeled items leave the pool, the next round works
    y = world[1]
    learner.teach(first.ids, y[pool.positions(first.ids)])
    assert not np.isin(learner.candidates.candidates(), learner.labels.ids).any()
    second = learner.query(BUDGET)
    assert not learner.labels.mask(second.ids).any()
