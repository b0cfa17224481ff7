"""Active learning and search of rare binary concepts, one task per concept (papers/002-003).

A :class:`BinaryConcept` is a pool, its 0/1 answers and a test split; :meth:`BinaryConcept.scenario`
makes it a runner scenario: a seed of ``n_seed_positives`` positives and ``n_seed_negatives``
negatives drawn at random (or the task's own ``seed_ids``). A :class:`Method` is a strategy on a
candidate pool ("all", "seals", "random"). :func:`raresift.simulate.runner.run_concept_study` runs
every task x method x seed as a job of the one simulation harness, logistic regression on the
embeddings refitted every round; after every fit :func:`concept_metrics` records test average
precision, positives found, recall of positives (labeled positives / positives in the pool),
candidate pool size / pool size and the round's wall-clock split into selection, k-NN search and
training. :func:`summarize` averages the rows over concepts and seeds.

Example
-------
>>> from raresift.simulate.runner import run_concept_study
>>> from raresift.simulate.synthetic import make_synthetic_concepts
>>> data = make_synthetic_concepts(n=5_000, dim=16, n_concepts=2, prevalence=(0.005, 0.01),
...                                progress=False)
>>> tasks = synthetic_tasks(data, index_factory="Flat")
>>> rows = run_concept_study(tasks, [Method("mlp", "seals", k=10)], budget=140, batch_size=20,
...                          n_seed_positives=2, n_seed_negatives=18, progress=False)
>>> [r["n_labeled"] for r in rows if r["concept"] == "concept-0"]
[20, 40, 60, 80, 100, 120, 140]
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from raresift.errors import ConfigError, ValidationError
from raresift.index import NeighborIndex
from raresift.loop import ArrayOracle
from raresift.models.base import check_labels
from raresift.pool import Labels, Pool, as_ids
from raresift.simulate.metrics import binary_average_precision, positive_recall
from raresift.simulate.scenarios import Scenario

log = logging.getLogger("raresift")

STRATEGY_LABELS = {
    "entropy": "MaxEnt",
    "mlp": "MLP",
    "information-density": "ID",
    "random": "Random",
}
POOL_LABELS = {"all": "All", "seals": "SEALS", "random": "RandPool"}


@dataclass
class BinaryConcept:
    """One binary task: a pool, its 0/1 labels (aligned with ``pool.ids``) and a test split.

    ``index`` (over ``pool``) serves SEALS; tasks sharing a pool share one index. ``seed_ids``
    fixes the seed labels (else each run draws them); ``description`` says what the concept is.
    """

    name: str
    pool: Pool
    y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    index: NeighborIndex | None = None
    seed_ids: np.ndarray | None = None
    description: str = ""

    def __post_init__(self):
        self.y = _binary(self.y, len(self.pool), f"concept {self.name!r}: y (per pool item)")
        self.test_y = _binary(
            self.test_y, len(self.test_x), f"concept {self.name!r}: test_y (per test row)"
        )
        if self.seed_ids is not None:
            self.seed_ids = as_ids(self.seed_ids, "seed_ids")
            self.pool.positions(self.seed_ids)  # unknown ids raise

    @property
    def oracle(self) -> ArrayOracle:
        """The hidden answers: ``task.oracle(ids)`` are the 0/1 labels of pool items ``ids``."""
        return ArrayOracle(self.y, ids=self.pool.ids)

    def scenario(
        self, seed: int, n_seed_positives: int = 5, n_seed_negatives: int = 95
    ) -> Scenario:
        """The task as a runner scenario for run ``seed``: its seed labels are ``seed_ids``, or
        ``n_seed_positives`` positives and ``n_seed_negatives`` negatives drawn with a generator
        of (``seed``, the task's name), so that every method of a run starts from one seed."""
        ids = self.pool.ids
        if self.seed_ids is None:
            rng = np.random.default_rng(np.random.SeedSequence([seed, _stable_hash(self.name)]))
            labels = seed_labels(self.y, ids, n_seed_positives, n_seed_negatives, rng)
        else:
            labels = Labels(self.seed_ids, self.y[self.pool.positions(self.seed_ids)])
        n_positive = int(self.y.sum())
        return Scenario(
            kind="binary-concept",
            pool=self.pool,
            oracle=self.oracle,
            labels=labels,
            unlabeled_ids=ids[~labels.mask(ids)],
            test_X=self.test_x,
            test_y=self.test_y,
            n_classes=2,
            class_names=["other", self.name],
            eval_classes=np.arange(2),
            rare_classes=np.array([1]),
            origin=None,
            index=self.index,
            info={"concept": self.name, "positives": n_positive, "pool": len(self.pool)},
        )


def _binary(y, n: int, what: str) -> np.ndarray:
    """``y`` as 0/1 int64 labels, ``n`` of them (the models' label check)."""
    try:
        return check_labels(y, n, n_classes=2)
    except ValidationError as exc:
        raise ValidationError(f"{what}: {exc}") from None


@dataclass
class Method:
    """A strategy on a candidate pool: ``Method("entropy", "seals")`` is MaxEnt-SEALS.

    ``candidates`` is "all", "seals" (``k``, ``expand``) or "random" (``fraction`` of the pool).
    The label names k and the expansion where they differ from the paper's (100, per item):
    ``Method("mlp", "seals", k=50, expand="batch").label == "MLP-SEALS(k=50,batch)"``.
    """

    strategy: str
    candidates: str = "all"
    k: int = 100
    expand: str = "item"
    fraction: float = 0.1

    @property
    def label(self) -> str:
        name = STRATEGY_LABELS.get(self.strategy, self.strategy)
        pool = POOL_LABELS.get(self.candidates, self.candidates)
        if self.candidates == "random":
            pool += f"({100 * self.fraction:g}%)"
        elif self.candidates == "seals":
            details = [f"k={self.k}"] if self.k != 100 else []
            details += [self.expand] if self.expand != "item" else []
            pool += f"({','.join(details)})" if details else ""
        return f"{name}-{pool}"

    @property
    def candidate_spec(self) -> str | dict:
        """The candidate pool as the runner builds it (:func:`~raresift.simulate.build.
        build_candidates`): SEALS over the scenario's index."""
        if self.candidates == "random":
            return {"kind": "random", "fraction": self.fraction}
        if self.candidates == "seals":
            return {"kind": "seals", "k": self.k, "expand": self.expand}
        return self.candidates


def synthetic_tasks(
    data,
    concepts: Sequence[int] | None = None,
    index: NeighborIndex | None = None,
    index_factory: str | None = None,
    progress: bool = False,
) -> list[BinaryConcept]:
    """Binary tasks for concepts of a :class:`~raresift.simulate.synthetic.SyntheticConcepts`.

    All tasks share one pool and one index: ``index`` if given, else one built with
    ``index_factory`` (none when both are None: no SEALS).
    """
    pool = Pool(data.train)
    if index is None and index_factory is not None:
        index = NeighborIndex(index_factory, progress=progress).fit(pool)
    elif index is not None:
        index.attach(pool)
    concepts = range(data.n_concepts) if concepts is None else concepts
    return [
        BinaryConcept(
            f"concept-{c}", pool, data.labels(c), data.test, data.labels(c, "test"), index
        )
        for c in concepts
    ]


def class_tasks(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    classes: Sequence[int] | None = None,
    share: float = 0.01,
    index_factory: str | None = "Flat",
    seed: int = 0,
    progress: bool = False,
) -> list[BinaryConcept]:
    """Each class of a labeled data set as a rare binary concept.

    For class ``c`` the pool is every train item of the other classes plus a seeded random
    subset of class ``c`` sized so that it makes up ``share`` of the pool; the test split is cut
    the same way. Each task gets its own pool (ids are the original row numbers) and index.
    """
    if not 0 < share < 1:
        raise ConfigError(f"share must be in (0, 1), got {share}")
    train_y, test_y = np.asarray(train_y), np.asarray(test_y)
    classes = np.unique(train_y) if classes is None else classes
    rng = np.random.default_rng(seed)
    tasks = []
    for c in classes:
        rows, test_rows = cut_to_share(train_y, c, share, rng), cut_to_share(test_y, c, share, rng)
        pool = Pool(train_x[rows], ids=rows)
        index = None
        if index_factory is not None:
            index = NeighborIndex(index_factory, progress=progress).fit(pool)
        tasks.append(
            BinaryConcept(
                f"class-{c}",
                pool,
                train_y[rows] == c,
                test_x[test_rows],
                test_y[test_rows] == c,
                index,
            )
        )
    return tasks


def cut_to_share(y: np.ndarray, c: int, share: float, rng: np.random.Generator) -> np.ndarray:
    """Sorted rows of ``y``: every row of the other classes plus a random subset of class ``c``
    sized so that it makes up ``share`` of the rows (at least one).

    >>> y = np.array([0, 1, 1, 0, 1, 0, 0, 0, 0, 0])
    >>> cut_to_share(y, 1, share=0.125, rng=np.random.default_rng(0)).size
    8
    """
    others = np.flatnonzero(y != c)
    positives = np.flatnonzero(y == c)
    n_pos = max(1, round(share * others.size / (1 - share)))
    if n_pos > positives.size:
        raise ValidationError(f"class {c} has only {positives.size} items, {n_pos} needed")
    return np.sort(np.concatenate([others, rng.choice(positives, n_pos, replace=False)]))


def label_tasks(
    train_x: np.ndarray,
    train_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
    classes: Sequence[int],
    names: Sequence[str] | None = None,
    index_factory: str | None = "Flat",
    search_params: str = "",
    progress: bool = False,
) -> list[BinaryConcept]:
    """Classes of a labeled data set as binary concepts at their natural prevalence.

    Unlike :func:`class_tasks` nothing is cut: every task shares one pool (ids are the train row
    numbers) and one index (``index_factory`` with ``search_params``); concept ``c`` is
    ``train_y == c``.
    """
    train_y, test_y = np.asarray(train_y), np.asarray(test_y)
    pool = Pool(train_x)
    index = None
    if index_factory is not None:
        index = NeighborIndex(index_factory, search_params=search_params, progress=progress)
        index.fit(pool)
    names = [f"class-{c}" for c in classes] if names is None else list(names)
    return [
        BinaryConcept(name, pool, train_y == c, test_x, test_y == c, index)
        for c, name in zip(classes, names, strict=True)
    ]


def seed_labels(y: np.ndarray, ids: np.ndarray, n_pos: int, n_neg: int, rng) -> Labels:
    """``n_pos`` positives and ``n_neg`` negatives drawn at random."""
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    if pos.size < n_pos or neg.size < n_neg:
        raise ValidationError(
            f"the seed needs {n_pos} positives and {n_neg} negatives, the pool has "
            f"{pos.size} and {neg.size}"
        )
    chosen = np.concatenate(
        [rng.choice(pos, n_pos, replace=False), rng.choice(neg, n_neg, replace=False)]
    )
    return Labels(ids[chosen], y[chosen])


def concept_metrics(learner, scenario: Scenario, selected: np.ndarray, facts: dict) -> dict:
    """One round's row of a concept run (the runner's ``measure``).

    ``average_precision`` on the test split, ``positives_found`` (labeled positives, the seed's
    included), ``recall`` (of the pool's positives), ``n_candidates`` (eligible at selection),
    ``pool_fraction`` (eligible after the round / pool size) and seconds: ``training``,
    ``knn`` (searches of the candidate pool, growing it included) and ``selection`` (strategy
    and model calls inside it, minus those searches).
    """
    proba = learner.model.predict_proba(scenario.test_X)
    found = int((learner.labels.values == 1).sum())
    selection = facts["seconds_features"] + facts["seconds_selection"]
    knn = facts["seconds_knn"]
    return {
        "n_candidates": facts["n_candidates"],
        "average_precision": binary_average_precision(proba, scenario.test_y),
        "positives_found": found,
        "recall": positive_recall(found, scenario.info["positives"]),
        "pool_fraction": len(learner.candidates) / len(scenario.pool),
        "seconds_training": facts["seconds_training"],
        "seconds_selection": selection - min(knn, selection),
        "seconds_knn": knn,
    }


def _stable_hash(name: str) -> int:
    return int.from_bytes(name.encode("utf-8")[:8].ljust(8, b"\0"), "little") % (2**32)


def summarize(records: Sequence[dict], final_only: bool = False) -> list[dict]:
    """Means over concepts and seeds per method and number of labels.

    Returns rows with ``method``, ``n_labeled``, ``map`` (mean AP), ``recall``,
    ``pool_fraction``, per-round seconds (``selection``, ``knn``, ``training``; means over
    concepts and seeds of each round's time) and ``runs``. With ``final_only``, one row per
    method at its largest ``n_labeled``, with total seconds summed over the rounds that
    selected (mean per run; the seed's fit is setup) and their number, ``rounds``.
    """
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for r in records:
        groups[(r["method"], r["n_labeled"])].append(r)
    rows = []
    for (method, n_labeled), rs in groups.items():
        rows.append(
            {
                "method": method,
                "n_labeled": n_labeled,
                "map": float(np.mean([r["average_precision"] for r in rs])),
                "recall": float(np.mean([r["recall"] for r in rs])),
                "pool_fraction": float(np.mean([r["pool_fraction"] for r in rs])),
                "selection": float(np.mean([r["seconds_selection"] for r in rs])),
                "knn": float(np.mean([r["seconds_knn"] for r in rs])),
                "training": float(np.mean([r["seconds_training"] for r in rs])),
                "runs": len(rs),
            }
        )
    rows.sort(key=lambda r: (r["method"], r["n_labeled"]))
    if not final_only:
        return rows
    final = []
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]
        last = dict(mine[-1])
        for key in ("selection", "knn", "training"):
            last[f"total_{key}"] = float(sum(r[key] for r in mine[1:]))
        last["rounds"] = len(mine) - 1
        final.append(last)
    return final
