"""SIMILAR's rare-class mechanism on real data (papers/000 Fig. 3c): SMI functions with a query set
of rare examples select far more rare-class items than uncertainty or random sampling."""

import numpy as np
import pytest

from raresift.datasets import load_fashion_mnist
from raresift.loop import ActiveLearner
from raresift.models import MLP, TorchModel
from raresift.simulate.scenarios import rare_classes_scenario

from .conftest import load_or_skip

pytestmark = [pytest.mark.realdata, pytest.mark.slow]


def rare_items_selected(strategy, scenario, seed=0, rounds=3, budget=125):
    model = TorchModel(MLP(784, 64, n_classes=10), epochs=150, lr=0.05, batch_size=32, seed=seed)
    learner = ActiveLearner(
        scenario.pool, model, strategy, labels=scenario.labels, query_ids=scenario.query_ids,
        validation_ids=scenario.validation_ids, seed=seed,
    )  # fmt: skip
    records = learner.run(scenario.oracle, rounds=rounds, budget=budget)
    picked = np.concatenate([r["batch_ids"] for r in records])
    return int(np.isin(scenario.oracle(picked), scenario.rare_classes).sum())


def test_smi_selects_twice_the_rare_items_of_entropy_and_random():
    train = load_or_skip(load_fashion_mnist, "train")
    test = load_fashion_mnist("test")
    scenario = rare_classes_scenario(
        train.X.astype(np.float32) / 255, train.y, test.X[:500].astype(np.float32) / 255,
        test.y[:500], rare_classes=[5, 6, 7, 8, 9], labeled_per_class=20,
        labeled_per_rare_class=2, unlabeled_per_class=500, imbalance=10, query_per_rare_class=5,
        seed=0,
    )  # fmt: skip
    assert scenario.query_ids.size == 25
    counts = {
        name: rare_items_selected(name, scenario)
        for name in ("random", "entropy", "flqmi", "logdetmi")
    }
    baseline = max(counts["random"], counts["entropy"])
    assert counts["flqmi"] >= 2 * baseline, counts
    assert counts["logdetmi"] >= 2 * baseline, counts
