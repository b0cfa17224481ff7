"""How far a session has come, how much is left, and whether to stop.

Estimates of the positives still unlabeled
    *model*: the current model's probabilities summed over the unlabeled items (a uniform sample
    of at most 200,000 of them on large pools), with a 95 % normal interval from the
    Poisson-binomial variance plus the sampling variance. It assumes calibrated probabilities;
    actively chosen labels bias them, so read it as a guide.
    *random picks*: where batches were drawn at random (cold start), the positive rate among
    them estimates the prevalence without that bias; Clopper-Pearson 95 % interval.

Stopping rules (both published, both reported with their verdict)
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

from raresift.session.rounds import split_answers

if TYPE_CHECKING:
    # typed by the floor below the facade: these functions read and write a Project
    from raresift.session.project import Project as Session

KAPPA_THRESHOLD = 0.99
KAPPA_WINDOW = 3
KNEE_RHO = 156
KNEE_MIN_LABELS = 150
ESTIMATE_SAMPLE = 200_000


def fitted_model(session: Session, current: dict | None = None):
    """The session's model fitted on the answers in force, or None with fewer than 2 classes."""
    from raresift.session.rounds import _model

    if current is None:
        with session.store.reading() as db:
            current = db.current()
    sets = split_answers(session, current)
    if sets.n_classes_seen < 2:
        return None
    model = _model(session)
    model.fit(session.pool().embeddings_of(sets.train_iids), sets.train_labels)
    return model


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


def stabilizing_predictions(predictions: list[np.ndarray]) -> dict[str, Any]:
    """Bloodgood & Vijay-Shanker's rule over the stop-set predictions of successive rounds."""
    kappas = [cohen_kappa(a, b) for a, b in zip(predictions, predictions[1:], strict=False)]
    rule = {
        "rule": "stabilizing predictions (Bloodgood & Vijay-Shanker 2009)",
        "threshold": f"mean kappa of the last {KAPPA_WINDOW} round pairs >= {KAPPA_THRESHOLD}",
        "kappas": [round(k, 4) for k in kappas],
    }
    if len(kappas) < KAPPA_WINDOW:
        rule["verdict"] = "continue"
        rule["why"] = (
            f"{len(kappas)} round pair(s) with a fitted model so far; the rule needs {KAPPA_WINDOW}"
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
        "threshold": f"slope ratio >= {KNEE_RHO} - min(positives, 150), "
        f">= {KNEE_MIN_LABELS} labels",
    }
    s = int(gains.size)
    r = int(gains.sum())
    if s == 0:
        rule.update(verdict="continue", why="no answers yet")
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


def model_estimate(session: Session, model, unlabeled_mask: np.ndarray) -> dict[str, Any]:
    """Expected positives among the unlabeled items under ``model``, with a 95 % interval."""
    pool = session.pool()
    free = np.flatnonzero(unlabeled_mask)
    n_free = free.size
    if n_free == 0:
        return {"method": "model", "positives_left": 0.0, "low": 0.0, "high": 0.0}
    rng = np.random.default_rng(session.config["seed"])
    sample = (
        free
        if n_free <= ESTIMATE_SAMPLE
        else np.sort(rng.choice(free, ESTIMATE_SAMPLE, replace=False))
    )
    positive = [session.label_index(c) for c in session.rare_classes]
    p = np.concatenate(
        [
            model.predict_proba(pool.embeddings_of(sample[lo : lo + 65_536]))[:, positive].sum(
                axis=1
            )
            for lo in range(0, sample.size, 65_536)
        ]
    )
    scale = n_free / sample.size
    mean = float(p.sum() * scale)
    variance = float((p * (1 - p)).sum() * scale)
    if sample.size < n_free:
        variance += n_free**2 * float(p.var(ddof=1)) / sample.size * (1 - sample.size / n_free)
    half = 1.96 * math.sqrt(variance)
    return {
        "method": "model (sum of predicted probabilities; biased by active picks)",
        "positives_left": round(mean, 2),
        "low": round(max(0.0, mean - half), 2),
        "high": round(mean + half, 2),
        "sampled": int(sample.size),
    }


def _positives(k: int) -> str:
    return "positive" if k == 1 else "positives"


def random_pick_estimate(
    session: Session,
    rounds: list[dict],
    picks: list[tuple],
    found: int,
) -> dict | None:
    """Positives left from a batch drawn uniformly at random from the unlabeled items.

    For such a round t with m answered picks of which k are positive, the unlabeled pool then
    held about ``k / m * U_t`` positives (U_t unlabeled items when it was drawn), so the pool
    holds ``found_t + k / m * U_t`` in all (``found_t`` positives answered before); minus those
    found by now is what is left. Clopper-Pearson 95 % interval on ``k / m``. Uses the random
    round with the most answered picks.
    """
    from scipy.stats import beta

    by_round: dict[int, list[str]] = {}
    for round_index, value in picks:
        by_round.setdefault(round_index, []).append(value)
    if not by_round:
        return None
    best = max(by_round, key=lambda r: (len(by_round[r]), r))
    info = next(r for r in rounds if r["round"] == best)
    values = by_round[best]
    m, k = len(values), sum(session.is_positive(v) for v in values)
    unlabeled = session.n_items - info["n_labeled"]
    low = 0.0 if k == 0 else float(beta.ppf(0.025, k, m - k + 1))
    high = 1.0 if k == m else float(beta.ppf(0.975, k + 1, m - k))

    def left(rate: float) -> float:
        return round(max(0.0, info["n_positive"] + rate * unlabeled - found), 2)

    return {
        "method": f"random picks of round {best} ({k} {_positives(k)} of {m} answered)",
        "positives_left": left(k / m),
        "low": left(low),
        "high": left(high),
    }


def session_status(session: Session, estimate: bool = True) -> dict[str, Any]:
    with session.store.reading() as db:
        current = db.current()
        in_force = db.answers_in_force()
        rounds = [dict(r) for r in db.rounds()]
        random_picks = db.random_pick_answers()
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
    }
    estimates = []
    if estimate:
        model = fitted_model(session, current)
        if model is not None:
            mask = np.ones(session.n_items, dtype=bool)
            mask[np.fromiter(current, dtype=np.int64, count=len(current))] = False
            estimates.append(model_estimate(session, model, mask))
    rand = random_pick_estimate(session, rounds, [tuple(r) for r in random_picks], n_pos)
    if rand is not None:
        estimates.append(rand)
    status["estimates"] = estimates
    status["stopping"] = [stabilizing_predictions(predictions), knee_rule(gains)]
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
