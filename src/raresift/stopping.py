"""When to stop: audit samples, positives-left intervals, a recall lower bound and its price.

Only samples drawn at random, independently of the ranking, give a confidence level
(technology-assisted review: Cormack & Grossman 2016; Callaghan & Müller-Hansen 2020;
Lewis et al. 2021). This module holds the statistics, with no session in sight:

*Audit design* (:func:`draw_audit`)
    The unlabeled items are sorted by the model's score and cut into ``H`` strata of equal
    ``sum sqrt(q (1 - q))`` (``q`` the score clipped to [0.01, 0.99]); each stratum gets the
    same number of random picks, which is Neyman's allocation for strata of equal standard
    deviation mass. Each pick's inclusion probability is ``n_h / N_h``. The design depends on
    the scores only, never on the answers, so the sample is a stratified random sample.

*Exact intervals* (:func:`stratified_interval`)
    For stratum ``h`` with ``N_h`` items, ``n_h`` drawn and ``k_h`` positive among them, the
    hypergeometric distribution gives exact one-sided bounds on the stratum's positives ``T_h``
    (the finite-population Clopper-Pearson bound). The strata's bounds are added up with a
    Bonferroni split of the error rate, ``alpha_h`` proportional to ``N_h / n_h`` (which
    minimises the width where the sample is thin), so the sum's bound holds with at least the
    stated confidence whatever the strata hold. Sampled items without an answer (skipped or
    not yet answered) count as positive for the upper bound and negative for the lower bound.

*Recall lower bound* (:func:`recall_lower_bound`)
    Over the frame (the items unlabeled when the audit was drawn plus those labeled before):
    ``found / (found_before + upper(T))`` with the one-sided upper bound at the confidence level.

*Planner* (:func:`plan_audit`)
    The size of a new stratified audit whose expected counts would certify the target recall.

*Hypergeometric stopping test* (:func:`hypergeometric_p`)
    Callaghan & Müller-Hansen (2020): the p-value of H0 "recall < target" from the order in
    which items were screened, as buscarpy's ``calculate_h0`` computes it;
    :func:`random_labels_to_certify` is the number of random labels the test needs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from raresift.errors import ValidationError

CONFIDENCE = 0.95
TARGET_RECALL = 0.9
MAX_STRATA = 5
MIN_PER_STRATUM = 20
_SCORE_CLIP = 0.01


# ---------------------------------------------------------------------- exact hypergeometric bounds
def _check_counts(N: int, n: int, k: int) -> None:
    if not (0 <= k <= n <= N):
        raise ValidationError(
            f"counts must satisfy 0 <= positives ({k}) <= sampled ({n}) <= stratum size ({N})"
        )


def _check_level(alpha: float) -> None:
    if not (0.0 < alpha < 1.0):
        raise ValidationError(f"error rate must lie strictly between 0 and 1, got {alpha}")


def _log_choose(a, b):
    from scipy.special import gammaln

    return gammaln(a + 1.0) - gammaln(b + 1.0) - gammaln(a - b + 1.0)


def _hypergeom_cdf(k: int, N: int, K: np.ndarray, n: int) -> np.ndarray:
    """``P(X <= k)`` for ``X ~ Hypergeometric(N, K, n)`` at each ``K`` (log-space sum of the
    probabilities, vectorised; scipy's ``hypergeom.cdf`` gives the same to about 1e-9)."""
    K = np.asarray(K, dtype=np.float64)[None, :]
    j = np.arange(k + 1, dtype=np.float64)[:, None]
    valid = (j <= K) & (n - j <= N - K)
    with np.errstate(invalid="ignore"):
        logp = _log_choose(K, j) + _log_choose(N - K, n - j) - _log_choose(float(N), float(n))
    logp = np.where(valid, logp, -np.inf)
    top = logp.max(axis=0)  # K >= k always has a valid j, so top is finite
    return np.minimum(1.0, np.exp(top) * np.exp(logp - top).sum(axis=0))


def hypergeom_upper(N: int, n: int, k: int, alpha: float) -> int:
    """Exact one-sided upper confidence bound (level ``1 - alpha``) on the number of positives
    ``K`` in a population of ``N`` items, from ``k`` positives in a random sample of ``n``
    drawn without replacement: the largest ``K`` with ``P(X <= k | N, K, n) > alpha``.

    >>> hypergeom_upper(100, 100, 7, 0.05), hypergeom_upper(1000, 0, 0, 0.05)
    (7, 1000)
    >>> hypergeom_upper(1000, 50, 0, 0.05)
    56
    """
    _check_counts(N, n, k)
    _check_level(alpha)
    lo, hi = k, N - (n - k)  # K = lo is never rejected (cdf = 1); find the last K not rejected
    if _hypergeom_cdf(k, N, np.array([hi]), n)[0] > alpha:
        return int(hi)
    while hi - lo > 1:  # invariant: lo not rejected, hi rejected; 64 probes a step
        probes = np.unique(np.linspace(lo, hi, 66).round().astype(np.int64)[1:-1])
        probes = probes[(probes > lo) & (probes < hi)]
        if probes.size == 0:
            break
        kept = _hypergeom_cdf(k, N, probes, n) > alpha
        if kept.any():
            lo = int(probes[np.flatnonzero(kept)[-1]])
        rejected = probes[~kept & (probes > lo)]
        if rejected.size:
            hi = int(rejected[0])
    return int(lo)


def hypergeom_lower(N: int, n: int, k: int, alpha: float) -> int:
    """Exact one-sided lower confidence bound (level ``1 - alpha``) on ``K``: the smallest
    ``K`` with ``P(X >= k | N, K, n) > alpha``.

    >>> hypergeom_lower(1000, 50, 0, 0.05), hypergeom_lower(100, 100, 7, 0.05)
    (0, 7)
    """
    _check_counts(N, n, k)
    # by symmetry: the negatives' upper bound
    return int(N - hypergeom_upper(N, n, n - k, alpha))


# ---------------------------------------------------------------------- stratified estimates
@dataclass
class Stratum:
    """One stratum of an audit: ``size`` items, ``drawn`` of them sampled, ``positive`` of the
    drawn answered positive and ``unknown`` of the drawn without a usable answer."""

    size: int
    drawn: int
    positive: int = 0
    unknown: int = 0

    def check(self) -> None:
        if self.size < 0 or self.drawn < 0 or self.positive < 0 or self.unknown < 0:
            raise ValidationError(f"stratum counts must not be negative: {self}")
        if self.positive + self.unknown > self.drawn or self.drawn > self.size:
            raise ValidationError(
                f"stratum counts must satisfy positive + unknown <= drawn <= size: {self}"
            )


def _alphas(strata: list[Stratum], alpha: float) -> list[float]:
    """Bonferroni split of ``alpha`` over the strata in proportion to ``N_h / n_h`` (strata
    drawn in full or empty need none)."""
    weights = [s.size / s.drawn if 0 < s.drawn < s.size else 0.0 for s in strata]
    total = sum(weights)
    return [alpha * w / total if w else 0.0 for w in weights]


_LAMBDAS = 10.0 ** np.linspace(-3.0, 1.7, 24)  # Chernoff parameters, times the largest weight


def _worst_case_log_p(ts: np.ndarray, s: float, strata: list[Stratum]) -> np.ndarray:
    """log of an upper bound on ``max P(S <= s)`` over every split of ``t`` positives among the
    strata (for each ``t`` of ``ts``), ``S = sum_h (N_h / n_h) X_h`` the stratified
    (Horvitz-Thompson) estimate.

    Chernoff: ``P(S <= s) <= exp(lambda s) prod_h E exp(-lambda w_h X_h)``, and each factor is
    at most its binomial value ``(1 - T_h a_h / N_h)^n_h``, ``a_h = 1 - exp(-lambda w_h)``
    (Hoeffding 1963: sampling without replacement is dominated in convex order). Each log factor
    is concave in ``T_h``, so the worst split is a water-filling whose Lagrange dual, at the
    multiplier a bisection finds, bounds it from above; the minimum over a fixed grid of
    ``lambda`` is still a bound.
    """
    N = np.array([st.size for st in strata], dtype=np.float64)
    n = np.array([st.drawn for st in strata], dtype=np.float64)
    low = np.array([st.positive for st in strata], dtype=np.float64)
    high = N - (n - low - np.array([st.unknown for st in strata], dtype=np.float64))
    ts = np.asarray(ts, dtype=np.float64)[:, None]  # (M, 1)
    w = np.where(n > 0, N / np.maximum(n, 1.0), 0.0)
    lam = _LAMBDAS[:, None] / max(float(w.max()), 1e-300)  # (L, 1)
    a = np.where(n > 0, -np.expm1(-lam * w), 1.0)  # (L, H)
    lo_nu = np.full((ts.shape[0], lam.shape[0]), -60.0)  # bisection on log(nu): (M, L)
    hi_nu = np.full_like(lo_nu, 60.0)

    def split(log_nu):  # (M, L, H)
        return np.clip(N / a - n / np.exp(log_nu)[..., None], low, high)

    for _ in range(40):
        mid = (lo_nu + hi_nu) / 2
        more = split(mid).sum(axis=2) < ts
        lo_nu = np.where(more, mid, lo_nu)
        hi_nu = np.where(more, hi_nu, mid)
    # Lagrange dual: for any multiplier mu >= 0, sum_h f_h(T_h(mu)) + mu (sum_h T_h(mu) - t)
    # bounds the worst split from above (f_h decreasing and concave), and it is tight at the
    # bisection's limit; hi_nu keeps sum_h T_h >= t.
    mu = np.exp(hi_nu)
    T = split(hi_nu)
    with np.errstate(divide="ignore", invalid="ignore"):
        factors = np.where(n > 0, n * np.log1p(-a * T / np.maximum(N, 1.0)), 0.0)
    dual = factors.sum(axis=2) + mu * (T.sum(axis=2) - ts)
    logs = lam[:, 0] * s + dual  # (M, L)
    out = logs.min(axis=1)
    return np.where(ts[:, 0] > high.sum(), -np.inf, out)


def stratified_upper(strata: list[Stratum], alpha: float) -> int:
    """Upper bound on the positives of all strata together, holding with probability at least
    ``1 - alpha``.

    One stratum: the exact hypergeometric bound. Several: the largest total ``t`` whose worst
    split among the strata (see :func:`_worst_case_log_p`) still makes the observed stratified
    estimate at least ``alpha`` likely. Unlike a sum of per-stratum bounds, this does not grow
    with the number of strata (with no positive sampled, it is about the thinnest stratum's
    own bound).
    """
    _check_level(alpha)
    for st in strata:
        st.check()
    if len(strata) == 1:
        st = strata[0]
        if st.drawn == 0:
            return st.size
        return hypergeom_upper(st.size, st.drawn, st.positive + st.unknown, alpha)
    w = [st.size / st.drawn if st.drawn else 0.0 for st in strata]
    s = sum(wh * (st.positive + st.unknown) for wh, st in zip(w, strata, strict=True))
    lo = sum(st.positive + st.unknown for st in strata)  # never rejected: P(S <= s) = 1 there
    hi = sum(st.size - (st.drawn - st.positive - st.unknown) for st in strata)
    log_alpha = math.log(alpha)
    if _worst_case_log_p(np.array([hi]), s, strata)[0] > log_alpha:
        return int(hi)
    while hi - lo > 1:  # lo not rejected, hi rejected; 32 probes a step
        probes = np.unique(np.linspace(lo, hi, 34).round().astype(np.int64)[1:-1])
        probes = probes[(probes > lo) & (probes < hi)]
        if probes.size == 0:
            break
        kept = _worst_case_log_p(probes, s, strata) > log_alpha
        if kept.any():
            lo = int(probes[np.flatnonzero(kept)[-1]])
        rejected = probes[~kept & (probes > lo)]
        if rejected.size:
            hi = int(rejected[0])
    return int(lo)


def bonferroni_upper(strata: list[Stratum], alpha: float) -> int:
    """The sum of per-stratum exact upper bounds at a Bonferroni split of ``alpha``: valid, but
    it grows with the number of strata (kept to compare with :func:`stratified_upper`)."""
    _check_level(alpha)
    bound = 0
    for s, a in zip(strata, _alphas(strata, alpha), strict=True):
        s.check()
        k = s.positive + s.unknown  # unknown answers taken as positive
        if s.drawn == 0:
            bound += s.size
        elif s.drawn == s.size or a == 0.0:
            bound += s.size - (s.drawn - k)
        else:
            bound += hypergeom_upper(s.size, s.drawn, k, a)
    return bound


def stratified_lower(strata: list[Stratum], alpha: float) -> int:
    """Lower bound on the positives of all strata together, holding with probability at least
    ``1 - alpha``."""
    _check_level(alpha)
    bound = 0
    for s, a in zip(strata, _alphas(strata, alpha), strict=True):
        s.check()
        if s.drawn == 0:
            continue
        if s.drawn == s.size or a == 0.0:
            bound += s.positive
        else:
            bound += hypergeom_lower(s.size, s.drawn, s.positive, a)
    return bound


def stratified_estimate(strata: list[Stratum]) -> float:
    """Horvitz-Thompson (stratified expansion) estimate of the positives: each answered pick
    stands for ``N_h / answered_h`` items of its stratum."""
    total = 0.0
    for s in strata:
        s.check()
        answered = s.drawn - s.unknown
        if answered > 0:
            total += s.size * s.positive / answered
    return total


@dataclass
class Interval:
    """A point estimate with an interval at ``confidence`` and the name of the method."""

    estimate: float
    low: float
    high: float
    confidence: float
    method: str

    def as_dict(self) -> dict:
        return {
            "estimate": round(float(self.estimate), 2),
            "low": round(float(self.low), 2),
            "high": round(float(self.high), 2),
            "confidence": self.confidence,
            "method": self.method,
        }


def _check_confidence(confidence: float) -> None:
    if not (0.5 <= confidence < 1.0):
        raise ValidationError(f"confidence must lie in [0.5, 1), got {confidence}")


def stratified_interval(strata: list[Stratum], confidence: float = CONFIDENCE) -> Interval:
    """Two-sided interval (``(1 - confidence) / 2`` on each side) on the positives in the
    population the strata cover."""
    _check_confidence(confidence)
    if not strata:
        raise ValidationError("an audit needs at least one stratum")
    alpha = (1.0 - confidence) / 2.0
    return Interval(
        stratified_estimate(strata),
        stratified_lower(strata, alpha),
        stratified_upper(strata, alpha),
        confidence,
        (
            f"stratified audit ({len(strata)} strata): upper bound from the worst split of the"
            " positives among strata (Chernoff), lower bound exact per stratum (Bonferroni)"
            if len(strata) > 1
            else "random sample: exact hypergeometric bounds"
        ),
    )


def positives_left(
    strata: list[Stratum],
    found_before: int,
    found_now: int,
    confidence: float = CONFIDENCE,
) -> Interval:
    """Positives still unlabeled, from an audit of the items unlabeled when it was drawn.

    The pool holds ``found_before + T`` positives (``found_before`` labeled before the audit,
    ``T`` in the audited population); ``found_now`` are labeled by now, so ``found_before + T -
    found_now`` are left. The interval on ``T`` carries over exactly.
    """
    if found_now < 0 or found_before < 0:
        raise ValidationError("positive counts must not be negative")
    interval = stratified_interval(strata, confidence)

    def left(t: float) -> float:
        return max(0.0, found_before + t - found_now)

    return Interval(
        left(interval.estimate),
        left(interval.low),
        left(interval.high),
        confidence,
        interval.method,
    )


def recall_lower_bound(
    strata: list[Stratum],
    found_before: int,
    found_now: int,
    confidence: float = CONFIDENCE,
) -> float:
    """One-sided lower bound (at ``confidence``) on the recall ``found_now / (found_before +
    T)``; 1.0 when nothing can be missing, 0.0 when nothing is found."""
    _check_confidence(confidence)
    if found_now < 0 or found_before < 0:
        raise ValidationError("positive counts must not be negative")
    upper = stratified_upper(strata, 1.0 - confidence)
    total = max(found_before + upper, found_now)
    if total == 0:
        return 1.0
    return found_now / total


# ---------------------------------------------------------------------- audit design
@dataclass
class AuditDraw:
    """A stratified random sample: the picked ids, the stratum of each pick and its inclusion
    probability, and per stratum its size, the number drawn and its score range."""

    ids: np.ndarray
    stratum: np.ndarray
    inclusion: np.ndarray
    sizes: list[int]
    drawn: list[int]
    score_low: list[float] = field(default_factory=list)
    score_high: list[float] = field(default_factory=list)

    def design(self) -> dict:
        """The design as JSON-ready data (what a session stores with the batch)."""
        return {
            "strata": [
                {"size": n, "drawn": d, "score_low": round(lo, 6), "score_high": round(hi, 6)}
                for n, d, lo, hi in zip(
                    self.sizes, self.drawn, self.score_low, self.score_high, strict=True
                )
            ],
            "stratum_of": [int(h) for h in self.stratum],
        }


def n_strata(n: int, N: int, max_strata: int, min_per_stratum: int) -> int:
    return max(1, min(max_strata, n // max(1, min_per_stratum), N))


def stratify(sorted_scores: np.ndarray, n: int, n_strata: int) -> tuple[np.ndarray, np.ndarray]:
    """Cut ascending ``sorted_scores`` into at most ``n_strata`` runs of equal
    ``sum sqrt(q (1 - q))`` and allocate ``n`` picks equally (never more than a stratum holds,
    the remainder to the highest strata with room). Returns the run edges (``H + 1`` positions)
    and the picks per stratum."""
    N = sorted_scores.size
    q = np.clip(sorted_scores, _SCORE_CLIP, 1.0 - _SCORE_CLIP)
    mass = np.cumsum(np.sqrt(q * (1.0 - q)))
    cuts = np.searchsorted(mass, mass[-1] * np.arange(1, n_strata) / n_strata, side="right")
    edges = np.unique(np.concatenate([[0], np.clip(cuts, 1, N - 1), [N]]))
    return edges, _allocate(np.diff(edges), n)


def _allocate(sizes: np.ndarray, n: int) -> np.ndarray:
    sizes = np.asarray(sizes, dtype=np.int64)
    if n > int(sizes.sum()):
        raise ValidationError(f"{n} picks exceed the {int(sizes.sum())} items of the strata")
    drawn = np.minimum(sizes, n // sizes.size)
    left = n - int(drawn.sum())
    while left > 0:
        for h in range(sizes.size - 1, -1, -1):
            if left and drawn[h] < sizes[h]:
                drawn[h] += 1
                left -= 1
    return drawn


def draw_audit(
    ids: np.ndarray,
    scores: np.ndarray | None,
    n: int,
    seed: int | np.random.Generator | None = 0,
    max_strata: int = MAX_STRATA,
    min_per_stratum: int = MIN_PER_STRATUM,
) -> AuditDraw:
    """A stratified random sample of ``n`` of ``ids`` (the unlabeled items), strata by
    ``scores`` (probability of a positive; None: one stratum, a simple random sample).

    Strata 0..H-1 run from the lowest scores to the highest (ties broken by id); each holds the
    same ``sum sqrt(q (1 - q))`` and gets the same number of picks (the remainder to the
    highest strata), never more than it holds.

    >>> d = draw_audit(np.arange(1000), np.linspace(0, 1, 1000), 100, seed=1)
    >>> len(d.ids), sum(d.drawn), sum(d.sizes), len(d.sizes)
    (100, 100, 1000, 5)
    """
    ids = np.asarray(ids, dtype=np.int64)
    N = ids.size
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValidationError(f"an audit needs a positive number of items, got {n!r}")
    if n > N:
        raise ValidationError(
            f"an audit of {n} items exceeds the {N} unlabeled items; ask for at most {N}"
        )
    if np.unique(ids).size != N:
        raise ValidationError("audit ids must be distinct")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    if scores is None:
        scores = np.zeros(N)
        H = 1
    else:
        scores = np.asarray(scores, dtype=np.float64)
        if scores.shape != (N,) or not np.all(np.isfinite(scores)):
            raise ValidationError(f"audit scores must be {N} finite numbers, one per id")
        H = n_strata(n, N, max_strata, min_per_stratum)
    order = np.lexsort((ids, scores))  # ascending score, ties by id
    edges, drawn = stratify(scores[order], n, H)
    sizes = np.diff(edges)
    H = sizes.size
    picks, stratum, inclusion, lows, highs = [], [], [], [], []
    for h in range(H):
        members = order[edges[h] : edges[h + 1]]
        chosen = np.sort(rng.choice(members, int(drawn[h]), replace=False))
        picks.append(ids[chosen])
        stratum.append(np.full(chosen.size, h, dtype=np.int64))
        inclusion.append(np.full(chosen.size, drawn[h] / sizes[h]))
        lows.append(float(scores[members[0]]))
        highs.append(float(scores[members[-1]]))
    return AuditDraw(
        np.concatenate(picks),
        np.concatenate(stratum),
        np.concatenate(inclusion),
        [int(s) for s in sizes],
        [int(d) for d in drawn],
        lows,
        highs,
    )


def strata_from_answers(
    sizes: list[int], stratum_of: np.ndarray, answers: np.ndarray
) -> list[Stratum]:
    """Per-stratum counts of an audit: ``answers`` per pick is 1 (positive), 0 (negative) or
    -1 (no usable answer: skipped or not answered yet)."""
    stratum_of = np.asarray(stratum_of, dtype=np.int64)
    answers = np.asarray(answers, dtype=np.int64)
    if stratum_of.shape != answers.shape:
        raise ValidationError("one answer per audit pick is needed")
    if stratum_of.size and (stratum_of.min() < 0 or stratum_of.max() >= len(sizes)):
        raise ValidationError("an audit pick names a stratum the design does not have")
    H = len(sizes)
    drawn = np.bincount(stratum_of, minlength=H)
    pos = np.bincount(stratum_of[answers == 1], minlength=H)
    unk = np.bincount(stratum_of[answers < 0], minlength=H)
    return [Stratum(int(sizes[h]), int(drawn[h]), int(pos[h]), int(unk[h])) for h in range(H)]


# ---------------------------------------------------------------------- planner
def _expected_strata(sizes, rates, n: int) -> list[Stratum]:
    drawn = _allocate(np.asarray(sizes), n)
    return [
        Stratum(int(sizes[h]), int(drawn[h]), int(round(rates[h] * drawn[h])))
        for h in range(len(sizes))
    ]


def plan_audit(
    sizes: list[int],
    rates: list[float],
    found_before: int,
    found_now: int,
    target: float = TARGET_RECALL,
    confidence: float = CONFIDENCE,
) -> int | None:
    """Smallest size of a stratified audit (strata ``sizes``, equal allocation) whose expected
    counts (``rates`` of positives per stratum) give a recall lower bound of at least ``target``
    at ``confidence``; None if even a census would not (the pool then holds too many positives
    not yet found).

    >>> plan_audit([10_000], [0.0], 900, 900) > 0
    True
    """
    _check_confidence(confidence)
    if not (0.0 < target <= 1.0):
        raise ValidationError(f"target recall must lie in (0, 1], got {target}")
    if len(sizes) != len(rates) or not sizes:
        raise ValidationError("one rate per stratum is needed")
    total = int(sum(sizes))

    def ok(m: int) -> bool:
        strata = _expected_strata(list(sizes), rates, m)
        return recall_lower_bound(strata, found_before, found_now, confidence) >= target

    if total == 0 or ok(0):
        return 0
    if not ok(total):
        return None
    lo, hi = 0, 1  # ok(lo) false (or lo == 0), ok(hi) searched by doubling
    while hi < total and not ok(hi):
        lo, hi = hi, min(total, hi * 2)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if ok(mid):
            hi = mid
        else:
            lo = mid
    return int(hi)


# ---------------------------------------------------------------------- Callaghan & Müller-Hansen
def hypergeometric_p(
    labels, N: int, recall_target: float = 0.95, max_urn: int | None = None
) -> float:
    """p-value of H0 "the recall of the items screened so far is below ``recall_target``"
    (Callaghan & Müller-Hansen 2020), from ``labels`` (1 relevant, 0 not) in screening order
    among ``N`` items: for each urn of the last ``j`` screened items, treated as a random draw
    from themselves and the unscreened items, the hypergeometric probability of seeing so few
    relevant ones if ``floor(r / target + 1 - r_before)`` were relevant; the minimum over urns.
    Reject H0 (stop) when it is below ``1 - confidence``. Equals buscarpy's ``calculate_h0``
    where that is defined; where an urn's population cannot hold ``floor(...)`` relevant items
    H0 is impossible, and this gives 0 where buscarpy gives NaN. ``max_urn`` limits the urns
    to the last ``max_urn`` items (fewer urns: a p-value at least as large, still valid).
    """
    from scipy.stats import hypergeom

    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.size == 0:
        raise ValidationError("labels must be a non-empty sequence of 0/1 answers")
    if not np.all((labels == 0) | (labels == 1)):
        raise ValidationError("labels must hold 0 and 1 only")
    if labels.size > N:
        raise ValidationError(f"{labels.size} labels exceed the N={N} items")
    if not (0.0 < recall_target < 1.0):
        raise ValidationError(f"recall target must lie in (0, 1), got {recall_target}")
    labels = labels.astype(np.int64)
    r_seen = int(labels.sum())
    urns = labels[::-1]
    seen_in_urn = np.cumsum(urns)
    sizes = np.arange(1, urns.size + 1)
    k_hat = np.floor(r_seen / recall_target + 1 - (r_seen - seen_in_urn))
    population = N - (urns.size - sizes)
    if max_urn is not None:
        urns, seen_in_urn, sizes = urns[:max_urn], seen_in_urn[:max_urn], sizes[:max_urn]
        k_hat, population = k_hat[:max_urn], population[:max_urn]
    possible = k_hat <= population  # else H0 cannot hold in this urn: p = 0 (buscarpy: NaN)
    p = np.zeros(urns.size)
    p[possible] = hypergeom.cdf(
        seen_in_urn[possible], population[possible], k_hat[possible], sizes[possible]
    )
    return float(np.min(p))


def random_labels_to_certify(
    found: int, remainder: int, target: float = TARGET_RECALL, confidence: float = CONFIDENCE
) -> int | None:
    """Random labels (all negative, the best case) the hypergeometric test needs over a
    remainder of ``remainder`` unscreened items before it certifies ``target`` recall of
    ``found`` positives; None if a census of the remainder would not.

    >>> random_labels_to_certify(900, 10**5)
    2922
    """
    from scipy.stats import hypergeom

    if found < 0 or remainder < 0:
        raise ValidationError("counts must not be negative")
    k_hat = math.floor(found / target + 1 - found)
    alpha = 1.0 - confidence
    if k_hat > remainder:
        return 0  # the remainder cannot hold enough positives to miss the target
    if hypergeom.cdf(0, remainder, k_hat, remainder) > alpha:
        return None

    def p(n: int) -> float:
        return float(hypergeom.cdf(0, remainder, k_hat, n))

    lo, hi = 0, remainder
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if p(mid) <= alpha:
            hi = mid
        else:
            lo = mid
    return int(hi)
