"""Audit batches of a session and what they certify (the statistics live in raresift.stopping).

An audit batch (``raresift next PROJECT --audit N``) is a stratified random sample of the items
unlabeled when it is drawn, strata by the current model's score (one stratum before a model
exists). The round stores its design in its options (``design``: per stratum its size, the
number drawn and its score range; ``stratum_of``: the stratum of each pick, in batch order);
each pick's score is its inclusion probability and its reason says so. Audit answers are
ordinary answers: they train the next model too.

Estimates claim a confidence level only from such random samples: the latest audit whose
items are all answered (else the latest audit), or before any audit the largest random
cold-start batch (one stratum). Sampled items answered ``skip``/``junk``/``duplicate`` count as
unknown (positive for the upper bound, negative for the lower); unanswered ones are left out,
which assumes the person answers the audit without regard to what the items are.

Each audit certifies on its own (audits do not pool): decide its size before drawing it (the
``certify`` plan is a good choice); drawing audit after audit until one certifies would spend
the 5 % error rate again on each.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from raresift import stopping
from raresift.session.rounds import Picks

if TYPE_CHECKING:
    # typed by the floor below the facade: these functions read a Project
    from raresift.session.project import Project as Session

_BLOCK = 65_536


def positive_scores(session: Session, model, iids: np.ndarray) -> np.ndarray:
    """The model's probability that each item is a positive (the concept, or any rare class)."""
    pool = session.pool()
    positive = [session.label_index(c) for c in session.rare_classes]
    out = np.empty(iids.size, dtype=np.float64)
    for lo in range(0, iids.size, _BLOCK):
        proba = model.predict_proba(pool.embeddings_of(iids[lo : lo + _BLOCK]))
        out[lo : lo + _BLOCK] = proba[:, positive].sum(axis=1)
    return np.clip(out, 0.0, 1.0)


def audit_options(session: Session, n, budget, strategy, candidates, query, like) -> dict:
    """The round options of ``next --audit n`` (checked: a positive size, at most the
    unlabeled items, no other selection option)."""
    from raresift.errors import ValidationError

    others = {
        "--budget": budget,
        "--strategy": strategy,
        "--candidates": candidates,
        "--query": query,
        "--like": like,
    }
    given = [k for k, v in others.items() if v is not None]
    if given:
        raise ValidationError(
            f"--audit N draws N items at random; it does not combine with {', '.join(given)}"
        )
    with session.store.reading() as db:
        n_labeled = len(db.current())
    free = session.n_items - n_labeled
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValidationError(f"an audit needs a positive number of items, got {n!r}")
    if n > free:
        raise ValidationError(
            f"an audit of {n} items exceeds the {free} unlabeled items; ask for at most {free}"
        )
    n = int(n)
    return {
        "budget": n,
        "strategy": "audit",
        "candidates": "all",
        "query": None,
        "like": None,
        "audit": n,
    }


def audit_picks(
    session: Session, current: dict[int, tuple[str, int]], round_index: int, n: int
) -> Picks:
    """Draw the stratified audit of ``n`` unlabeled items for round ``round_index``."""
    import time

    from raresift.session.rounds import fitted_model

    start = time.perf_counter()
    labeled = np.fromiter(current, dtype=np.int64, count=len(current))
    free = np.setdiff1d(np.arange(session.n_items, dtype=np.int64), labeled)
    model = fitted_model(session, current)
    scores = None if model is None else positive_scores(session, model, free)
    rng = np.random.default_rng([int(session.config["seed"]), round_index, 23])
    draw = stopping.draw_audit(free, scores, n, seed=rng)
    H = len(draw.sizes)
    reasons = []
    for h in draw.stratum:
        lo, hi = draw.score_low[h], draw.score_high[h]
        where = (
            f"stratum {h + 1} of {H} (model score {lo:.3g}-{hi:.3g})"
            if scores is not None
            else "one stratum (no model yet)"
        )
        reasons.append(
            f"audit: random pick from {where}, {draw.drawn[h]} of its {draw.sizes[h]} items "
            f"drawn; not chosen by the model"
        )
    note = (
        f"stratified random audit of {n} ({H} strata by model score)"
        if scores is not None
        else f"random audit of {n} (no model yet: one stratum)"
    )
    picks = Picks(
        draw.ids,
        draw.inclusion,
        reasons,
        "audit",
        "all",
        note,
        {"audit": time.perf_counter() - start},
    )
    picks.design = draw.design()
    return picks


@dataclass
class AuditCounts:
    """What one random sample says: its strata counts and the positives known before it."""

    strata: list[stopping.Stratum]
    found_before: int
    n_labeled_before: int
    round: int
    drawn: int
    answered: int
    kind: str  # "audit" or "random picks"

    @property
    def frame(self) -> int:
        return self.n_labeled_before + sum(s.size for s in self.strata)

    def describe(self) -> str:
        what = (
            f"stratified audit of {self.drawn} (round {self.round}, {len(self.strata)} strata)"
            if self.kind == "audit"
            else f"random picks of round {self.round} ({self.drawn} drawn)"
        )
        if self.answered < self.drawn:
            what += f", {self.drawn - self.answered} unanswered left out"
        return what


def latest_sample(session: Session, db, current: dict[int, tuple[str, int]]) -> AuditCounts | None:
    """The random sample the estimates use (see the module docstring), or None."""
    rounds = [dict(r) for r in db.rounds()]
    audits = [r for r in rounds if r["strategy"] == "audit"]
    candidates = []
    for r in audits:
        rows = db.batch_rows(int(r["round"]))
        design = json.loads(r["options"]).get("design")
        if design is None or len(design["stratum_of"]) != len(rows):
            continue
        candidates.append((r, rows, design))
    if candidates:
        complete = [c for c in candidates if all(row["iid"] in current for row in c[1])]
        r, rows, design = (complete or candidates)[-1]
        sizes = [s["size"] for s in design["strata"]]
        stratum_of = np.asarray(design["stratum_of"], dtype=np.int64)
        kind = "audit"
    else:  # random cold-start rounds: a uniform sample of the unlabeled items, one stratum
        random_rounds = [
            r for r in rounds if r["candidates"] in ("all", "random") and r["strategy"] == "random"
        ]
        best = None
        for r in random_rounds:
            rows = [
                row
                for row in db.batch_rows(int(r["round"]))
                if str(row["reason"]).startswith("random")
            ]
            if not rows:
                continue
            answered = sum(row["iid"] in current for row in rows)
            if best is None or answered >= best[2]:
                best = (r, rows, answered)
        if best is None:
            return None
        r, rows, _ = best
        sizes = [session.n_items - int(r["n_labeled"])]
        stratum_of = np.zeros(len(rows), dtype=np.int64)
        kind = "random picks"
    answers = np.full(len(rows), -2, dtype=np.int64)  # -2 unanswered, -1 unknown, 0/1
    for i, row in enumerate(rows):
        value = current.get(row["iid"], (None,))[0]
        if value is None:
            continue
        if value in ("skip", "junk", "duplicate"):
            answers[i] = -1
        else:
            answers[i] = int(session.is_positive(value))
    keep = answers > -2
    strata = stopping.strata_from_answers(sizes, stratum_of[keep], answers[keep])
    return AuditCounts(
        strata,
        int(r["n_positive"]),
        int(r["n_labeled"]),
        int(r["round"]),
        len(rows),
        int(keep.sum()),
        kind,
    )


def certificate(
    sample: AuditCounts | None,
    found_now: int,
    n_unlabeled: int,
    model_scores: np.ndarray | None,
    target: float = stopping.TARGET_RECALL,
    confidence: float = stopping.CONFIDENCE,
) -> dict[str, Any]:
    """The ``positives_left``, ``recall`` and ``certify`` fields of the status.

    ``model_scores``: the model's positive probabilities on (a uniform sample of) the unlabeled
    items, for a heuristic guess and a plan when no random sample exists.
    """
    out: dict[str, Any] = {}
    if sample is not None and sum(s.drawn for s in sample.strata) > 0:
        left = stopping.positives_left(sample.strata, sample.found_before, found_now, confidence)
        out["positives_left"] = {**left.as_dict(), "method": f"{sample.describe()}: {left.method}"}
        bound = stopping.recall_lower_bound(
            sample.strata, sample.found_before, found_now, confidence
        )
        out["recall"] = {
            "lower_bound": round(bound, 4),
            "confidence": confidence,
            "frame": {
                "items": sample.frame,
                "description": (
                    f"the whole pool as of round {sample.round}: "
                    f"{sample.frame - sample.n_labeled_before} items unlabeled then (sampled) "
                    f"and {sample.n_labeled_before} labeled before; nothing lies outside"
                ),
            },
            "method": (
                f"found / (found before the sample + {confidence:.0%} upper bound on the "
                f"positives the sample's population held); {sample.describe()}"
            ),
        }
        # plan a fresh audit: the sample's strata rates on the items unlabeled now
        total = sum(s.size for s in sample.strata)
        scale = n_unlabeled / total if total else 0.0
        sizes = [max(0, int(round(s.size * scale))) for s in sample.strata]
        rates = [
            s.positive / (s.drawn - s.unknown) if s.drawn > s.unknown else 0.5
            for s in sample.strata
        ]
        basis = f"the rates per stratum of the {sample.describe()}"
    else:
        out["recall"] = None
        if model_scores is not None and model_scores.size:
            guess = float(model_scores.mean() * n_unlabeled)
            out["positives_left"] = {
                "estimate": round(guess, 2),
                "low": None,
                "high": None,
                "confidence": None,
                "method": (
                    "model heuristic (sum of predicted probabilities; biased by the model's own "
                    "picks): no confidence claim; ask for an audit to get one"
                ),
            }
            ordered = np.sort(model_scores)
            H = stopping.n_strata(200, ordered.size, stopping.MAX_STRATA, stopping.MIN_PER_STRATUM)
            edges, _ = stopping.stratify(ordered, min(200, ordered.size), H)
            scale = n_unlabeled / ordered.size
            sizes = [int(round((b - a) * scale)) for a, b in zip(edges, edges[1:], strict=False)]
            rates = [float(ordered[a:b].mean()) for a, b in zip(edges, edges[1:], strict=False)]
            basis = "the model's probabilities (heuristic, until an audit)"
        else:
            out["positives_left"] = None
            sizes, rates, basis = [], [], ""
    extra = None
    why = "no answers of two classes and no random sample yet"
    if sizes and sum(sizes) > 0:
        found_before = found_now  # a fresh audit of the items unlabeled now
        extra = stopping.plan_audit(sizes, rates, found_before, found_now, target, confidence)
        if extra is None:
            why = (
                f"by {basis}, too many positives are still unlabeled for {target:.0%} recall: "
                "keep searching, then audit"
            )
        else:
            why = f"size of a new audit whose expected counts, by {basis}, certify the target"
    elif sizes:
        extra, why = 0, "nothing is unlabeled"
    out["certify"] = {
        "target": target,
        "confidence": confidence,
        "extra_labels": extra,
        "why": why,
    }
    if out.get("recall") is not None and out["recall"]["lower_bound"] >= target:
        out["certify"].update(extra_labels=0, why="the latest sample certifies the target")
    return out


def summary(found: int, cert: dict[str, Any], project: str) -> str:
    """The one sentence a person can act on."""
    recall, left, plan = cert.get("recall"), cert.get("positives_left"), cert["certify"]
    target = f"{plan['target']:.0%}"
    if recall is not None:
        text = (
            f"{found} found; with {recall['confidence']:.0%} confidence at least "
            f"{recall['lower_bound']:.0%} of the positives in the pool are found "
            f"({recall['method'].split('; ')[-1]})"
        )
        if recall["lower_bound"] >= plan["target"]:
            return text + f"; the {target} recall target is certified: you may stop"
    elif left is not None:
        text = (
            f"{found} found; the model guesses about {left['estimate']:.0f} more are unlabeled "
            "(a heuristic, no confidence claim)"
        )
    else:
        text = f"{found} found; nothing yet says how many are left"
    if plan["extra_labels"] is None:
        if left is not None and left.get("high") is not None:
            return (
                text + f"; up to {left['high']:.0f} may be left: keep searching before "
                f"certifying {target}"
            )
        return text + f"; keep labeling, then audit (raresift next {project} --audit 200)"
    return (
        text + f"; to certify {target}, label about {plan['extra_labels']} audit items "
        f"(raresift next {project} --audit {plan['extra_labels']})"
    )
