"""How far a session has come, how much is left, and whether to stop.

Estimates of the positives still unlabeled
    *audit* (``positives_left``, ``recall``, ``certify``): from the latest random sample (an
    audit batch, ``next --audit N``, or a random cold-start batch): exact intervals, a recall
    lower bound and the audit size that would certify the target (raresift.session.audit,
    raresift.stopping). The only figures that claim a confidence level.
    *model*: the current model's probabilities summed over the unlabeled items (a uniform sample
    of at most 200,000 of them on large pools). A heuristic: actively chosen labels bias the
    model, so its spread (Poisson-binomial plus sampling variance) claims no confidence.

Stopping rules (each says whether it is a heuristic; verdict stop, continue or cannot judge)
    *audit certificate*: stop once the audit's recall lower bound reaches the target (valid).
    *hypergeometric test* (Callaghan & Müller-Hansen 2020) on the answers in screening order:
    valid when the last items screened were drawn at random; the session's last items are the
    model's picks, so here a heuristic.
    *stabilizing predictions* (Bloodgood & Vijay-Shanker, CoNLL 2009): Cohen's kappa between
    the predictions of successive rounds' models on a fixed stop set; stop once the mean kappa
    over the last ``KAPPA_WINDOW`` round pairs reaches ``KAPPA_THRESHOLD``.
    *knee method* (Cormack & Grossman, SIGIR 2016): on the gain curve (positives found against
    labels spent) find the knee (the point farthest above the chord from the origin); the slope
    ratio ``rho = (r_knee / s_knee) / ((r - r_knee + 1) / (s - s_knee))``; stop once
    ``rho >= 156 - min(r, 150)`` and at least 150 labels are spent.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from raresift.session.audit import certificate, latest_sample, summary
from raresift.session.probe import index_recall_status
from raresift.session.rounds import fitted_model
from raresift.stopping import CONFIDENCE, TARGET_RECALL

if TYPE_CHECKING:
    # typed by the floor below the facade: these functions read and write a Project
    from raresift.session.project import Project as Session

MIN_STOP_SET_POSITIVES = 5  # fewer predicted positives on the stop set: kappa is degenerate
HYPERGEOMETRIC_MAX_URN = 5_000
KAPPA_THRESHOLD = 0.99
KAPPA_WINDOW = 3
KNEE_RHO = 156
KNEE_MIN_LABELS = 150
ESTIMATE_SAMPLE = 200_000


def _curve(session: Session, rows: list[dict]) -> list[dict[str, Any]]:
    """Cumulative labels spent and positives found at the end of each round (answers in force,
    grouped by the round they arrived in)."""
    by_round: dict[int, list[str]] = {}
    for r in rows:
        by_round.setdefault(int(r["round"]), []).append(r["value"])
    points, spent, found = [], 0, 0
    for rnd in sorted(by_round):
        values = by_round[rnd]
        spent += len(values)
        new = sum(session.is_positive(v) for v in values)
        found += new
        points.append(
            {
                "round": rnd,
                "labels_spent": spent,
                "positives_found": found,
                "new_positives": new,
                "answers": len(values),
            }
        )
    return points


def cohen_kappa(a: np.ndarray, b: np.ndarray) -> float:
    """Cohen's kappa of two label vectors (1.0 when both are constant and equal).

    >>> cohen_kappa(np.array([0, 1, 1, 0]), np.array([0, 1, 0, 0]))
    0.5
    """
    observed = float(np.mean(a == b))
    classes = np.union1d(a, b)
    expected = float(sum(np.mean(a == c) * np.mean(b == c) for c in classes))
    if expected >= 1.0:
        return 1.0 if observed == 1.0 else 0.0
    return (observed - expected) / (1.0 - expected)


def stabilizing_predictions(
    predictions: list[np.ndarray], positive_classes: list[int] | None = None
) -> dict[str, Any]:
    """Bloodgood & Vijay-Shanker's rule over the stop-set predictions of successive rounds.

    A heuristic. With ``positive_classes``, it cannot judge while any model of the window
    predicts fewer than ``MIN_STOP_SET_POSITIVES`` positives on the stop set (kappa between
    models that predict no positive is a trivial 1.0)."""
    kappas = [cohen_kappa(a, b) for a, b in zip(predictions, predictions[1:], strict=False)]
    rule = {
        "rule": "stabilizing predictions (Bloodgood & Vijay-Shanker 2009)",
        "heuristic": True,
        "threshold": f"mean kappa of the last {KAPPA_WINDOW} round pairs >= {KAPPA_THRESHOLD}",
        "kappas": [round(k, 4) for k in kappas],
    }
    if len(kappas) < KAPPA_WINDOW:
        rule["verdict"] = "continue"
        rule["why"] = (
            f"{len(kappas)} round pair(s) with a fitted model so far; the rule needs {KAPPA_WINDOW}"
        )
        return rule
    if positive_classes is not None:
        window = predictions[-(KAPPA_WINDOW + 1) :]
        counts = [int(np.isin(p, positive_classes).sum()) for p in window]
        rule["predicted_positives"] = counts
        if min(counts) < MIN_STOP_SET_POSITIVES:
            rule["verdict"] = "cannot judge"
            rule["why"] = (
                f"the models predict {min(counts)} positive(s) on the stop set (fewer than "
                f"{MIN_STOP_SET_POSITIVES}), so their agreement says nothing about the positives"
            )
            return rule
    mean = float(np.mean(kappas[-KAPPA_WINDOW:]))
    rule["value"] = round(mean, 4)
    rule["verdict"] = "stop" if mean >= KAPPA_THRESHOLD else "continue"
    rule["why"] = f"mean kappa {mean:.4f} over the last {KAPPA_WINDOW} pairs"
    return rule


def knee_rule(gains: np.ndarray) -> dict[str, Any]:
    """Cormack & Grossman's knee method on a 0/1 sequence of answers (1 = positive found)."""
    rule = {
        "rule": "knee method (Cormack & Grossman 2016)",
        "heuristic": True,
        "threshold": f"slope ratio >= {KNEE_RHO} - min(positives, 150), "
        f">= {KNEE_MIN_LABELS} labels",
    }
    s = int(gains.size)
    r = int(gains.sum())
    if s == 0:
        rule.update(verdict="continue", why="no answers yet")
        return rule
    if r == 0:
        rule.update(verdict="cannot judge", why="no positive found yet: the curve has no knee")
        return rule
    found = np.cumsum(gains)
    x = np.arange(1, s + 1)
    # distance above the chord from (0, 0) to (s, r), up to a constant factor
    distance = found * s - x * r
    knee = int(distance.argmax())
    s_knee, r_knee = int(x[knee]), int(found[knee])
    if s_knee >= s or r_knee == 0:
        rho = 0.0
    else:
        rho = (r_knee / s_knee) / ((r - r_knee + 1) / (s - s_knee))
    needed = KNEE_RHO - min(r, 150)
    rule.update(value=round(rho, 3), knee_at_labels=s_knee, needed=needed)
    if s < KNEE_MIN_LABELS:
        rule.update(verdict="continue", why=f"{s} labels spent; the rule needs {KNEE_MIN_LABELS}")
    elif rho >= needed:
        rule.update(
            verdict="stop", why=f"slope ratio {rho:.1f} >= {needed} (knee at {s_knee} labels)"
        )
    else:
        rule.update(verdict="continue", why=f"slope ratio {rho:.1f} < {needed}")
    return rule


def unlabeled_scores(session: Session, model, unlabeled_mask: np.ndarray) -> np.ndarray:
    """The model's positive probabilities on the unlabeled items (a uniform sample of at most
    ``ESTIMATE_SAMPLE`` of them on large pools)."""
    from raresift.session.audit import positive_scores

    free = np.flatnonzero(unlabeled_mask)
    rng = np.random.default_rng(session.config["seed"])
    sample = (
        free
        if free.size <= ESTIMATE_SAMPLE
        else np.sort(rng.choice(free, ESTIMATE_SAMPLE, replace=False))
    )
    return positive_scores(session, model, sample)


def model_estimate(
    session: Session, model, unlabeled_mask: np.ndarray, p: np.ndarray | None = None
) -> dict[str, Any]:
    """Expected positives among the unlabeled items under ``model`` (a heuristic: its spread,
    ``low``-``high``, claims no confidence). ``p``: :func:`unlabeled_scores` if computed."""
    n_free = int(np.count_nonzero(unlabeled_mask))
    if n_free == 0:
        return {
            "method": "model heuristic",
            "heuristic": True,
            "confidence": None,
            "positives_left": 0.0,
            "low": 0.0,
            "high": 0.0,
        }
    if p is None:
        p = unlabeled_scores(session, model, unlabeled_mask)
    sample = p
    scale = n_free / sample.size
    mean = float(p.sum() * scale)
    variance = float((p * (1 - p)).sum() * scale)
    if sample.size < n_free:
        variance += n_free**2 * float(p.var(ddof=1)) / sample.size * (1 - sample.size / n_free)
    half = 1.96 * math.sqrt(variance)
    return {
        "method": (
            "model heuristic (sum of predicted probabilities; biased by active picks; the "
            "spread is 1.96 standard deviations of that sum, with no confidence claim)"
        ),
        "heuristic": True,
        "confidence": None,
        "positives_left": round(mean, 2),
        "low": round(max(0.0, mean - half), 2),
        "high": round(mean + half, 2),
        "sampled": int(sample.size),
    }


def hypergeometric_rule(
    gains: np.ndarray, n_items: int, target: float = TARGET_RECALL, confidence: float = CONFIDENCE
) -> dict[str, Any]:
    """Callaghan & Müller-Hansen's test on the answers in screening order (a heuristic here:
    the test holds when the last items screened were drawn at random, and a session's last
    items are mostly the model's picks)."""
    from raresift.stopping import hypergeometric_p

    rule: dict[str, Any] = {
        "rule": "hypergeometric test (Callaghan & Müller-Hansen 2020)",
        "heuristic": True,
        "threshold": f"p < {1 - confidence:.2f} for H0 'recall < {target:.0%}'",
        "assumption": "the last items screened are at least as likely positive as random ones",
    }
    r = int(gains.sum())
    if r == 0:
        rule.update(verdict="cannot judge", why="no positive found yet: recall is undefined")
        return rule
    p = hypergeometric_p(gains, n_items, target, max_urn=HYPERGEOMETRIC_MAX_URN)
    rule["value"] = round(p, 4)
    if p < 1 - confidence:
        rule.update(verdict="stop", why=f"p = {p:.3g}: H0 'recall < {target:.0%}' rejected")
    else:
        rule.update(verdict="continue", why=f"p = {p:.3g}: H0 'recall < {target:.0%}' stands")
    return rule


def certificate_rule(cert: dict[str, Any]) -> dict[str, Any]:
    """Stop once a random sample's recall lower bound reaches the target (not a heuristic)."""
    plan = cert["certify"]
    rule: dict[str, Any] = {
        "rule": "audit certificate (stratified random sample, exact bounds)",
        "heuristic": False,
        "threshold": f"recall lower bound >= {plan['target']:.0%} at {plan['confidence']:.0%}",
    }
    recall = cert.get("recall")
    if recall is None:
        rule.update(
            verdict="cannot judge",
            why="no random sample yet: ask for an audit (raresift next PROJECT --audit 200)",
        )
        return rule
    bound = recall["lower_bound"]
    rule["value"] = bound
    if bound >= plan["target"]:
        rule.update(verdict="stop", why=f"recall >= {bound:.1%} with {recall['confidence']:.0%}")
    else:
        more = plan["extra_labels"]
        tail = f"; a new audit of about {more} would certify it" if more else ""
        rule.update(
            verdict="continue",
            why=f"recall >= {bound:.1%} only, below {plan['target']:.0%}{tail}",
        )
    return rule


def session_status(session: Session, estimate: bool = True) -> dict[str, Any]:
    with session.store.reading() as db:
        current = db.current()
        in_force = db.answers_in_force()
        rounds = [dict(r) for r in db.rounds()]
        sample = latest_sample(session, db, current) if estimate else None
        version = db.version()
    counts: dict[str, int] = {}
    for value, _ in current.values():
        counts[value] = counts.get(value, 0) + 1
    n_pos = sum(session.is_positive(v) for v, _ in current.values())
    curve = _curve(session, in_force)
    predictions = [
        np.frombuffer(r["stop_predictions"], dtype=np.int16)
        for r in rounds
        if r["stop_predictions"] is not None
    ]
    gains = np.array(
        [session.is_positive(r["value"]) for r in in_force if r["value"] != "skip"], dtype=np.int64
    )
    last = rounds[-1] if rounds else None
    status: dict[str, Any] = {
        "project": str(session.root),
        "items": session.n_items,
        "task": (
            f"concept {session.config['concept']!r}"
            if session.kind == "concept"
            else f"classes {session.config['classes']} (positives: {session.rare_classes})"
        ),
        "labels_spent": len(current),
        "answers": dict(sorted(counts.items())),
        "positives_found": n_pos,
        "rounds": len(rounds),
        "version": version,
        "pending": None
        if last is None
        else {
            "round": last["round"],
            "strategy": last["strategy"],
            "candidates": last["candidates"],
            "budget": last["budget"],
            "note": last["note"],
            "up_to_date": last["version"] == version,
        },
        "curve": curve,
        "defaults": session.describe_defaults(),
        "engine": session.config["engine"],
        "index_recall": index_recall_status(session),
    }
    estimates = []
    positive_classes = [session.label_index(c) for c in session.rare_classes]
    rules = [
        stabilizing_predictions(predictions, positive_classes),
        knee_rule(gains),
    ]
    if estimate:
        scores = None
        model = fitted_model(session, current)
        if model is not None:
            mask = np.ones(session.n_items, dtype=bool)
            mask[np.fromiter(current, dtype=np.int64, count=len(current))] = False
            scores = unlabeled_scores(session, model, mask)
            estimates.append(model_estimate(session, model, mask, scores))
        cert = certificate(sample, n_pos, session.n_items - len(current), scores)
        left = cert["positives_left"]
        if left is not None and left["confidence"] is not None:
            estimates.append(
                {
                    "method": left["method"],
                    "heuristic": False,
                    "confidence": left["confidence"],
                    "positives_left": left["estimate"],
                    "low": left["low"],
                    "high": left["high"],
                }
            )
        status.update(cert)
        status["summary"] = summary(n_pos, cert, str(session.root))
        rules = [certificate_rule(cert), hypergeometric_rule(gains, session.n_items), *rules]
    status["estimates"] = estimates
    status["stop"] = rules
    return json.loads(json.dumps(status))


def plot_status(session: Session, path: Path, size: tuple[float, float] = (6, 4), dpi=110) -> Path:
    """Positives found against labels spent, one marker per round (PNG of ``size`` inches at
    ``dpi``: a small size at a high dpi keeps the text readable on a phone)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from raresift.outputs import check_output_file

    path = check_output_file(path, "--plot", session.project_files())
    status = session_status(session, estimate=False)
    curve = status["curve"]
    fig, ax = plt.subplots(figsize=size, dpi=dpi)
    xs = [0] + [p["labels_spent"] for p in curve]
    ys = [0] + [p["positives_found"] for p in curve]
    ax.plot(xs, ys, marker="o", color="#1f77b4")
    for p in curve:
        ax.annotate(
            f"r{p['round']}",
            (p["labels_spent"], p["positives_found"]),
            textcoords="offset points",
            xytext=(4, -10),
            fontsize=7,
        )
    ax.set_xlabel("labels spent")
    ax.set_ylabel("positives found")
    ax.set_title(f"{Path(status['project']).name}: {status['task']}", fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    tmp.replace(path)
    return path
