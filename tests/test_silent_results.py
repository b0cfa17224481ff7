"""Results that used to be silently wrong: relabeling that never refit, runs past the pool's end,
picks of a model that saw one class, the margin convention."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from raresift.loop import ActiveLearner
from raresift.models import SklearnModel
from raresift.pool import Labels, Pool
from raresift.strategies.uncertainty import margin_scores


def _learner(n=60, labels=None, strategy="entropy"):
    X = np.random.default_rng(0).normal(size=(n, 3)).astype(np.float32)
    labels = Labels([0, 1, 2, 3], [0, 1, 0, 1]) if labels is None else labels
    return ActiveLearner(Pool(X), SklearnModel(LogisticRegression(), 2), strategy, labels=labels)


def test_relabeling_with_overwrite_refits_before_the_next_query():
    learner = _learner()
    learner.query(5)
    assert learner.is_fitted
    before = learner.model.predict_proba(learner.pool.embeddings[:5])
    learner.teach([1, 3], [0, 0], overwrite=True)  # same number of labels, other answers
    assert len(learner.labels) == 4 and not learner.is_fitted
    learner.query(5)
    assert learner.is_fitted
    assert learner.labels.of([1, 3]).tolist() == [0, 0]
    after = learner.model.predict_proba(learner.pool.embeddings[:5])
    assert not np.allclose(before, after)  # the refit saw the corrected labels
    with pytest.raises(ValueError, match="overwrite=True"):
        learner.teach([1], [1])


def test_relabeling_through_labels_add_also_refits():
    learner = _learner()
    learner.fit()
    learner.labels.add([0], [1], overwrite=True)
    assert not learner.is_fitted
    learner.labels.add([0], [1])  # the same answer again changes nothing
    learner.fit()
    learner.labels.add([0], [1])
    assert learner.is_fitted


@pytest.mark.parametrize("labels", [{0: 0, 1: 1, 2: 0, 3: 1}, ([0, 1, 2, 3], [0, 1, 0, 1])])
def test_labels_as_a_dict_or_a_pair(labels):
    assert _learner(labels=labels).labels.of([3, 0]).tolist() == [1, 0]


def test_a_run_past_the_pools_end_returns_the_finished_rounds(caplog):
    learner = _learner(n=60)
    y = (learner.pool.embeddings[:, 0] > 0).astype(int)
    with caplog.at_level(logging.WARNING, logger="raresift"):
        records = learner.run(y, rounds=100, budget=10)
    assert len(records) == 5  # 56 unlabeled items: 5 full batches, 6 left
    assert len(learner.labels) == 54
    assert "stopping after 5 of 100 rounds: 6 candidates left for a budget of 10" in caplog.text


@pytest.mark.parametrize("strategy", ["entropy", "mlp", "margin"])
def test_picks_of_a_model_that_saw_one_class_say_they_are_random(strategy, caplog):
    learner = _learner(labels=Labels([0, 1, 2], [0, 0, 0]), strategy=strategy)
    with caplog.at_level(logging.WARNING, logger="raresift"):
        batch = learner.query(4)
    assert all(r.startswith("uniformly random pick") for r in batch.reasons)
    assert "fitted on one class only (class 0)" in batch.reasons[0]
    assert "these 4 picks are uniformly random" in caplog.text
    informed = _learner(strategy=strategy).query(4)  # two classes: the strategy's own picks
    assert not any("random" in r for r in informed.reasons)


def test_margin_scores_follow_scikit_activeml_and_rank_like_the_negative_gap():
    proba = np.random.default_rng(1).dirichlet(np.ones(4), size=50)
    top2 = np.sort(proba, axis=1)[:, -2:]
    gap = top2[:, 1] - top2[:, 0]
    np.testing.assert_allclose(margin_scores(proba), 1 - gap)
    assert np.array_equal(np.argsort(-margin_scores(proba)), np.argsort(gap))


def test_a_failed_job_makes_simulate_exit_1_with_the_failure_atop_the_report(
    tmp_path, monkeypatch, capsys
):
    from raresift.cli import main
    from raresift.strategies.uncertainty import EntropyStrategy

    calls = []
    original = EntropyStrategy.select

    def fails_in_round_one(self, state, candidates, budget):
        calls.append(1)
        if len(calls) == 2:  # after the preflight batch
            raise RuntimeError("boom")
        return original(self, state, candidates, budget)

    monkeypatch.setattr(EntropyStrategy, "select", fails_in_round_one)
    config = tmp_path / "s.toml"
    config.write_text(
        'name = "fails"\nseeds = [0]\nrounds = 2\nbudget = 5\n'
        '[dataset]\nname = "digits"\ntest_per_class = 10\n'
        '[scenario]\nkind = "standard"\nlabeled_per_class = 2\nunlabeled_per_class = 20\n'
        '[model]\nkind = "logistic"\nmax_iter = 100\n'
        '[[strategies]]\nname = "random"\n[[strategies]]\nname = "entropy"\n'
    )
    code = main(["simulate", str(config), "--out", str(tmp_path / "out"), "--jobs", "1",
                 "--no-progress"])  # fmt: skip
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1
    assert "1 job(s) failed (first: entropy seed 0: RuntimeError: boom)" in err[0]
    report = (tmp_path / "out" / "report.md").read_text().splitlines()
    assert report[2] == "**Failed**: entropy, seed 0: RuntimeError: boom"
