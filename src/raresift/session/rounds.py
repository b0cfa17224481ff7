"""One round of a session: rebuild the learner from the stored answers, select, explain.

Nothing is pickled: every ``next`` reconstructs :class:`~raresift.loop.ActiveLearner` from the
answers in force, with

* training labels = class answers (``1``/``0`` for a concept, class names otherwise);
* SIMILAR's query set Q = the labeled positives (the concept's ``1`` answers, or items of the
  rare classes named at init; by default every class but the most answered one);
* the conditioning set P = items answered ``junk`` or ``duplicate``. They are never trained on;
  where a strategy needs P they join the learner's labels with a placeholder label 0 (their
  gradient embedding's label) and are held out of training as validation items;
* ``skip``, ``junk`` and ``duplicate`` items leave the candidates (never asked again);
* the round's generator seeded by ``(seed, round - 1)``, exactly as a simulation's round.

Cold start: while the answers hold fewer than two classes no model can rank items, so the
batch is random (and says so), unless a text query (``--query``) or example items (``--like``)
give a direction; then the items most similar to them are picked.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from raresift.errors import ConfigError, ValidationError
from raresift.index import exact_search, normalize_rows
from raresift.session.probe import neighbor_rows, new_probe

if TYPE_CHECKING:
    # typed by the floor below the facade: these functions read and write a Project
    from raresift.session.project import Project as Session

log = logging.getLogger("raresift")

# strategies that seek the positives; in a class session, any rare class named at init
SEEKERS = {"mlp", "information-density", "rare-search", "ens"}
# strategies with their own cold start (they pick before any model or positive exists)
SELF_STARTING = {"rare-search", "coverage"}
_COVERAGE_SAMPLE = 20_000  # candidates sampled to say how much of the pool a pick represents


@dataclass
class Picks:
    """A computed batch before it is stored."""

    iids: np.ndarray
    scores: np.ndarray
    reasons: list[str]
    strategy: str
    candidates: str
    note: str
    seconds: dict[str, float] = field(default_factory=dict)
    stop_predictions: bytes | None = None
    design: dict | None = None  # an audit batch's strata (stored with the round's options)
    neighbor_rows: tuple[np.ndarray, np.ndarray] | None = None  # SEALS' new rows (ids, rows)
    probe: dict | None = None  # a new recall probe of the index (session.probe)


@dataclass
class AnswerSets:
    """The answers in force, split the way the learner needs them."""

    train_iids: np.ndarray
    train_labels: np.ndarray
    positive_iids: np.ndarray
    avoid_iids: np.ndarray  # junk / duplicate (SIMILAR's P)
    skip_iids: np.ndarray
    answered_iids: np.ndarray

    @property
    def n_classes_seen(self) -> int:
        return int(np.unique(self.train_labels).size)


def split_answers(session: Session, current: dict[int, tuple[str, int]]) -> AnswerSets:
    """Group the current answers into training labels, positives, P and skipped items."""
    train, labels, avoid, skip, positive = [], [], [], [], []
    for iid, (value, _) in sorted(current.items(), key=lambda kv: kv[1][1]):  # answer order
        if value in ("junk", "duplicate"):
            avoid.append(iid)
        elif value == "skip":
            skip.append(iid)
        else:
            train.append(iid)
            labels.append(session.label_index(value))
            if session.is_positive(value):
                positive.append(iid)

    def arr(x):
        return np.asarray(x, dtype=np.int64)

    return AnswerSets(
        arr(train), arr(labels), arr(positive), arr(avoid), arr(skip), arr(sorted(current))
    )


def _model(session: Session):
    from sklearn.linear_model import LogisticRegression

    from raresift.models import SklearnModel

    spec = session.config["model"]
    estimator = LogisticRegression(C=spec["C"], max_iter=spec["max_iter"])
    return SklearnModel(estimator, session.n_classes)


def _needs(strategy_name: str) -> tuple[bool, bool]:
    """Whether a strategy needs a query set and a conditioning set."""
    from raresift.submodular.objectives import OBJECTIVES

    spec = OBJECTIVES.get(strategy_name)
    return (False, False) if spec is None else (spec.query, spec.conditioning)


def _candidates(session: Session, name: str, progress: bool):
    from raresift.candidates import AllCandidates, RandomCandidates, SEALSCandidates

    if name == "all":
        return AllCandidates()
    if name == "random":
        return RandomCandidates(session.config["random_fraction"], seed=session.config["seed"])
    if name == "seals":
        index = session.engine.index(session, session.index(progress=progress))
        return SEALSCandidates(index, k=session.config["seals_k"], graph=neighbor_rows(session))
    raise ConfigError(f"unknown candidates {name!r}; choose all, seals or random")


def rare_indices(session: Session) -> list[int]:
    """Class indices of the rare classes (a class session), or [1] (a concept)."""
    if session.kind == "concept":
        return [1]
    return [session.label_index(c) for c in session.rare_classes]


def _strategy(session: Session, name: str, progress: bool):
    """The round's strategy (:func:`raresift.strategies.rare.session_strategy`: concept
    strategies seek the rare classes); the session's engine may run its selection elsewhere
    (on Ray workers)."""
    from raresift.strategies.rare import session_strategy

    strategy = session_strategy(
        name,
        kind=session.kind,
        positive=rare_indices(session),
        params=session.config.get("strategy_params", {}).get(name),
        n_classes=session.n_classes,
    )
    return session.engine.strategy(strategy, progress)


def build_learner(
    session: Session,
    sets: AnswerSets,
    strategy_name: str,
    candidates_name: str,
    round_index: int,
    progress: bool = False,
):
    """The learner for round ``round_index`` (1-based) from the answers in ``sets``."""
    from raresift.loop import ActiveLearner
    from raresift.pool import Labels
    from raresift.submodular.objectives import objective_without

    needs_q, needs_p = _needs(strategy_name)
    name, note = strategy_name, ""
    if needs_p and not needs_q and sets.avoid_iids.size == 0:
        name = objective_without(strategy_name, "conditioning")
        note = f"{strategy_name} needs junk/duplicate answers to condition on; none yet, so {name}"
    labels = Labels(sets.train_iids, sets.train_labels)
    conditioning = validation = None
    if needs_p and sets.avoid_iids.size:
        labels.add(sets.avoid_iids, np.zeros(sets.avoid_iids.size, dtype=np.int64))
        conditioning = validation = sets.avoid_iids
    query = sets.positive_iids if needs_q and sets.positive_iids.size else None
    learner = ActiveLearner(
        session.pool(),
        _model(session),
        _strategy(session, name, progress),
        candidates=_candidates(session, candidates_name, progress),
        labels=labels,
        query_ids=query,
        conditioning_ids=conditioning,
        validation_ids=validation,
        seed=session.config["seed"],
    )
    learner.round = round_index - 1
    leave = np.setdiff1d(np.concatenate([sets.skip_iids, sets.avoid_iids]), labels.ids)
    if leave.size:
        learner.candidates.update(leave)
    return learner, note


def fitted_model(session: Session, current: dict | None = None):
    """The session's model fitted on the answers in force, or None with fewer than 2 classes."""
    if current is None:
        with session.store.reading() as db:
            current = db.current()
    sets = split_answers(session, current)
    if sets.n_classes_seen < 2:
        return None
    model = _model(session)
    model.fit(session.pool().embeddings_of(sets.train_iids), sets.train_labels)
    return model


def compute_round(
    session: Session,
    current: dict[int, tuple[str, int]],
    round_index: int,
    options: dict[str, Any],
    progress: bool = False,
) -> Picks:
    """Select the batch of round ``round_index`` with ``options`` (budget, strategy,
    candidates, query, like)."""
    start = time.perf_counter()
    sets = split_answers(session, current)
    budget, strategy, cand = options["budget"], options["strategy"], options["candidates"]
    if options.get("query") or options.get("like"):
        return _similar_picks(session, sets, options, budget, start)
    needs_q, _ = _needs(strategy)
    seeks = needs_q or (session.kind == "classes" and strategy in SEEKERS)
    cold = None
    if sets.train_iids.size == 0:
        cold = "no answers yet, so no model can rank items"
    elif sets.n_classes_seen < 2:
        only = session.label_name(int(sets.train_labels[0]))
        cold = (
            f"every answer so far is {only!r}; a model needs two classes to rank "
            "items (give --query TEXT or --like ID to aim instead)"
        )
    elif seeks and sets.positive_iids.size == 0:
        cold = f"no positives yet, and {strategy} needs labeled positives"
    elif seeks and sets.positive_iids.size == sets.train_iids.size:
        cold = "every answer so far is a rare class; a model needs other answers to rank items"
    own = cold is not None and strategy in SELF_STARTING  # the strategy starts cold itself
    if cold is not None and not own:
        # a class session starts with rare-search's cold start (coverage, or similarity to the
        # known rare items), a concept session at random (its first batch is the status page's
        # unbiased sample); `--strategy random` stays random
        search = session.kind == "classes" and strategy != "random"
        cold = f"{'cold start' if search else 'random'}: {cold}"
        strategy, cand = ("rare-search" if search else "random"), "all"
    elif own and cand == "seals" and sets.answered_iids.size == 0:
        cand = "all"
    session.pool()  # memory-maps the embeddings
    seconds = {"pool": time.perf_counter() - start}
    if cand == "seals":
        t0 = time.perf_counter()
        session.index(progress=progress)
        seconds["index"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    learner, note = build_learner(session, sets, strategy, cand, round_index, progress)
    seconds["start"] = time.perf_counter() - t0  # the candidate pool's first k-NN searches
    knn_before = getattr(learner.candidates, "knn_seconds", 0.0)
    batch = learner.query(budget)
    seconds.update(learner.last_query_seconds)
    knn = getattr(learner.candidates, "knn_seconds", 0.0) - knn_before
    if knn:
        seconds["knn"] = knn
        seconds["selection"] = max(0.0, seconds["selection"] - knn)
    scores = batch.scores
    if learner.strategy.name == "random":
        # a random pick's own "score" is a draw and ranks nothing: show the chance each
        # eligible item had of being drawn instead (the same for every pick)
        eligible = max(1, len(learner.candidates.candidates()))
        scores = np.full(len(batch), len(batch) / eligible)
    t0 = time.perf_counter()
    if cold is not None:
        if strategy == "random":
            reasons = [f"{cold}; score = chance of being drawn"] * len(batch)
        elif own:
            reasons = explain(session, learner, batch, sets, cand, fitted=learner.is_fitted)
        else:
            reasons = [f"{cold}; {r}" for r in batch.reasons]
        stop = None
    else:
        reasons = explain(session, learner, batch, sets, cand)
        if learner.strategy.name == "random":
            reasons = [f"{r}; score = chance of being drawn" for r in reasons]
        stop = stop_set_predictions(session, learner)
    seconds["reasons"] = time.perf_counter() - t0
    rows = probe = None
    if cand == "seals":
        probe = new_probe(session, learner.candidates, round_index)
        rows = learner.candidates.graph.take_new()
    return Picks(
        batch.ids,
        scores,
        reasons,
        learner.strategy.name,
        cand,
        note or (cold or ""),
        seconds,
        stop,
        neighbor_rows=rows,
        probe=probe,
    )


# ---------------------------------------------------------------------- explanations
def _probabilities(learner, ids: np.ndarray) -> np.ndarray:
    return learner.model.predict_proba(learner.pool.embeddings_of(ids))


def rare_odds(session: Session, p: np.ndarray) -> str:
    """A class session's probabilities for a pick, naming the rare classes first: the most
    likely rare class, p(any rare class) when there are several, then the most likely class."""
    rare = rare_indices(session)
    best = max(rare, key=lambda c: p[c])
    parts = [f"p({session.label_name(best)})={p[best]:.2f}"]
    if len(rare) > 1:
        parts.append(f"p(any rare)={p[rare].sum():.2f}")
    top = int(np.argmax(p))
    if top not in rare:
        parts.append(f"most likely {session.label_name(top)} ({p[top]:.2f})")
    return ", ".join(parts)


def explain(
    session: Session, learner, batch, sets: AnswerSets, candidates: str, fitted: bool = True
) -> list[str]:
    """One reason per pick, specific to the strategy that chose it (the batch names it: a
    strategy that fell back names its fallback)."""
    name = batch.strategy
    if name in SELF_STARTING:  # its own reasons say how it picked; the odds follow
        if not fitted:
            return list(batch.reasons)
        proba = _probabilities(learner, batch.ids)
        odds = [
            rare_odds(session, p) if session.kind == "classes" else f"p(positive)={p[1]:.2f}"
            for p in proba
        ]
        reasons = [f"{r}; {o}" for r, o in zip(batch.reasons, odds, strict=True)]
        return _explain_seals(session, learner, batch, sets, reasons) if candidates == "seals" \
            else reasons  # fmt: skip
    proba = _probabilities(learner, batch.ids)
    reasons = []
    for reason, p in zip(batch.reasons, proba, strict=True):  # the strategy's words, the odds
        if session.kind == "concept":
            odds = f"p({session.config['concept']})={p[1]:.2f}"
        elif name in SEEKERS:
            odds = rare_odds(session, p)
        else:
            top = np.argsort(-p)[:2]
            odds = ", ".join(f"p({session.label_name(int(c))})={p[c]:.2f}" for c in top)
        reasons.append(f"{reason}: {odds}")
    needs_q, needs_p = _needs(name)
    if needs_q or needs_p or name in {"fl", "gc", "logdet"}:
        reasons = _explain_submodular(session, learner, batch, reasons, needs_q, needs_p)
    if candidates == "seals":
        reasons = _explain_seals(session, learner, batch, sets, reasons)
    return reasons


def _nearest(session: Session, unit_rows: np.ndarray, ref_ids: np.ndarray):
    """For each row, the closest of ``ref_ids`` (by cosine) and the similarity."""
    ref = np.asarray(ref_ids, dtype=np.int64)
    positions, sims = exact_search(session.pool().embeddings_of(ref), unit_rows, 1)
    return ref[positions[:, 0]], sims[:, 0]


def _explain_submodular(session, learner, batch, reasons, needs_q, needs_p) -> list[str]:
    pool = session.pool()
    picks = normalize_rows(pool.embeddings_of(batch.ids))
    cands = learner.candidates.candidates()
    rng = np.random.default_rng(0)
    sample = (
        cands
        if cands.size <= _COVERAGE_SAMPLE
        else rng.choice(cands, _COVERAGE_SAMPLE, replace=False)
    )
    nearest_pick, _ = exact_search(picks, normalize_rows(pool.embeddings_of(sample)), 1)
    share = np.bincount(nearest_pick[:, 0], minlength=batch.ids.size) / max(1, sample.size)
    out = []
    q, p = learner.query_ids, learner.conditioning_ids
    near_q = _nearest(session, picks, q) if needs_q and q is not None and len(q) else None
    near_p = _nearest(session, picks, p) if needs_p and p is not None and len(p) else None
    for i, (reason, gain) in enumerate(zip(reasons, batch.scores, strict=True)):
        parts = [f"{learner.strategy.name} gain {gain:.3g}"]
        if near_q is not None:
            parts.append(
                f"closest positive {session.uid(int(near_q[0][i]))} (cosine {near_q[1][i]:.2f})"
            )
        if near_p is not None:
            parts.append(
                f"nearest junk/duplicate {session.uid(int(near_p[0][i]))} "
                f"(cosine {near_p[1][i]:.2f})"
            )
        parts.append(f"represents {share[i]:.1%} of the candidates")
        out.append("; ".join(parts) + "; " + reason.split(": ", 1)[-1])
    return out


def _explain_seals(session, learner, batch, sets: AnswerSets, reasons) -> list[str]:
    """Which labeled item's (or earlier pick's) neighbourhood each pick came from."""
    pool = session.pool()
    picks = normalize_rows(pool.embeddings_of(batch.ids))
    seeds = sets.answered_iids
    seed_units = normalize_rows(pool.embeddings_of(seeds)) if seeds.size else picks[:0]
    out = []
    for i, reason in enumerate(reasons):
        sims = seed_units @ picks[i] if seeds.size else np.empty(0)
        best_seed = int(sims.argmax()) if sims.size else -1
        best = (
            (sims[best_seed], f"labeled item {session.uid(int(seeds[best_seed]))}")
            if sims.size
            else (-2.0, "")
        )
        if i:
            earlier = picks[:i] @ picks[i]
            j = int(earlier.argmax())
            if earlier[j] > best[0]:
                best = (earlier[j], f"pick {session.uid(int(batch.ids[j]))} of this batch")
        where = f"; SEALS: neighbour of {best[1]} (cosine {best[0]:.2f})" if best[1] else ""
        out.append(reason + where)
    return out


def stop_set_predictions(session: Session, learner) -> bytes | None:
    """The model's predicted classes on the fixed stop set (for the stabilising-predictions
    stopping rule), as int16 bytes."""
    stop = np.asarray(session.config["stop_set"], dtype=np.int64)
    if stop.size == 0:
        return None
    proba = learner.model.predict_proba(learner.pool.embeddings_of(stop))
    return proba.argmax(axis=1).astype(np.int16).tobytes()


# ---------------------------------------------------------------------- aimed cold start
def _similar_picks(session: Session, sets: AnswerSets, options, budget: int, start: float) -> Picks:
    """The unanswered items most similar to a text query or to example items."""
    if options.get("query"):
        targets = session.embed_query(options["query"])
        labels = [f"query {options['query']!r}"]
    else:
        like = [session.iid(u) for u in options["like"]]
        targets = normalize_rows(session.pool().embeddings_of(np.asarray(like, dtype=np.int64)))
        labels = [f"example {session.uid(i)}" for i in like]
    exclude = sets.answered_iids
    if options.get("like"):  # the examples themselves are not news to the person who gave them
        exclude = np.union1d(exclude, np.asarray(like, dtype=np.int64))
    ids, sims, which = top_similar(session, targets, budget, exclude=exclude)
    reasons = [f"closest to {labels[w]} (cosine {s:.2f})" for s, w in zip(sims, which, strict=True)]
    kind = "query" if options.get("query") else "like"
    return Picks(
        ids,
        sims,
        reasons,
        kind,
        "all",
        f"aimed by --{kind}",
        {"selection": time.perf_counter() - start},
    )


def top_similar(session: Session, targets: np.ndarray, k: int, exclude: np.ndarray):
    """The ``k`` items (not in ``exclude``) with the highest cosine to any of ``targets``
    (unit rows): ids, similarities and which target, best first (ties by id).

    Through :func:`raresift.index.exact_search`, the one exact k-NN path: an item in the top
    ``k`` by its best target is among that target's top ``k + len(exclude)``, so the union of
    the targets' lists holds the answer.
    """
    pool = session.pool()
    excluded = np.unique(exclude)
    n_free = len(pool) - excluded.size
    if k > n_free:
        raise ValidationError(f"budget {k} exceeds the {n_free} unanswered items")
    targets = np.asarray(targets, dtype=np.float32)
    positions, sims = exact_search(pool.embeddings, targets, k + excluded.size)
    which = np.repeat(np.arange(targets.shape[0]), positions.shape[1])
    ids, sims = pool.ids[positions.ravel()], sims.ravel()
    keep = ~np.isin(ids, excluded)
    ids, sims, which = ids[keep], sims[keep], which[keep]
    order = np.lexsort((which, ids, -sims))  # each item once, at its best target
    ids, sims, which = ids[order], sims[order], which[order]
    _, first = np.unique(ids, return_index=True)
    first = np.sort(first)[:k]
    return ids[first], sims[first].astype(np.float64), which[first]
