"""Representer points: the refit, the decomposition of the logits, and the IBAL importance."""

import numpy as np
import pytest

from raresift.errors import ConfigError, ValidationError
from raresift.models.representer import RepresenterPoints


def _data(n=60, d=5, c=3, seed=0):
    rng = np.random.default_rng(seed)
    f = np.maximum(rng.normal(size=(n, d)), 0)  # post-ReLU-like features
    logits = f @ rng.normal(size=(d, c)) + rng.normal(size=c)
    p = np.exp(logits - logits.max(1, keepdims=True))
    return f, p / p.sum(1, keepdims=True), rng


@pytest.mark.parametrize("bias_feature", [True, False])
def test_decomposition_reproduces_refitted_logits(bias_feature):
    f, p, rng = _data()
    rep = RepresenterPoints(lam=0.003, bias_feature=bias_feature).fit(f, p)
    targets = np.maximum(rng.normal(size=(25, 5)), 0)
    np.testing.assert_allclose(rep.representer_logits(targets), rep.logits(targets), atol=1e-4)
    np.testing.assert_allclose(rep.representer_values(targets).sum(1), rep.logits(targets),
                               atol=1e-4)  # fmt: skip
    # alpha follows the formula -(softmax(f W) - p) / (2 lambda n), and W = sum_i f_i alpha_i^T
    s = rep.proba(f)
    np.testing.assert_allclose(rep.alpha_, -(s - p) / (2 * 0.003 * 60), atol=1e-12)
    np.testing.assert_allclose(rep.features_.T @ rep.alpha_, rep.weight_,
                               atol=1e-4)  # fmt: skip


def test_refit_follows_the_targets_and_lambda():
    f, p, _ = _data(n=200)
    loose = RepresenterPoints(lam=1e-4).fit(f, p)
    tight = RepresenterPoints(lam=1.0).fit(f, p)
    err_loose = np.abs(loose.proba(f) - p).mean()
    err_tight = np.abs(tight.proba(f) - p).mean()
    assert err_loose < 0.05 < err_tight  # strong L2 pulls towards uniform predictions
    assert np.abs(tight.weight_).max() < np.abs(loose.weight_).max()


def test_importance_equals_the_double_sum():
    f, p, rng = _data(n=40)
    rep = RepresenterPoints().fit(f, p)
    cand = np.maximum(rng.normal(size=(7, 5)), 0)
    cand_p = rng.dirichlet(np.ones(3), size=7)
    labeled = f[:10]
    got = rep.importance(cand, cand_p, labeled)
    aug = np.hstack([cand, np.ones((7, 1))])
    aug_t = np.hstack([labeled, np.ones((10, 1))])
    s = rep.proba(cand)
    n, lam = 40, 0.003
    expected = np.zeros(7)
    for i in range(7):
        for t in range(10):
            for y in range(3):
                alpha_given_y = -(s[i] - np.eye(3)[y]) / (2 * lam * n)  # alpha_i | y
                expected[i] += cand_p[i, y] * alpha_given_y[y] * (aug[i] @ aug_t[t])
    np.testing.assert_allclose(got, expected, rtol=1e-10)


def test_representer_validation():
    f, p, _ = _data()
    with pytest.raises(ConfigError):
        RepresenterPoints(lam=0).fit(f, p)
    with pytest.raises(ValidationError, match="one row per item"):
        RepresenterPoints().fit(f, p[:5])
    with pytest.raises(ValidationError, match="not fitted"):
        RepresenterPoints().logits(f)
    rep = RepresenterPoints().fit(f, p)
    with pytest.raises(ValidationError, match="proba"):
        rep.importance(f[:3], p[:2], f)
