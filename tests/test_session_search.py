"""The session's aimed picks (--query / --like) through the one exact k-NN path."""

import numpy as np

from raresift.index import normalize_rows
from raresift.session import Session
from raresift.session.rounds import top_similar


def test_top_similar_equals_a_brute_force_scan_over_several_targets(tmp_path):
    rng = np.random.default_rng(3)
    emb = rng.normal(size=(700, 8)).astype(np.float32)
    np.save(tmp_path / "emb.npy", emb)
    session = Session.create(tmp_path / "p", embeddings=tmp_path / "emb.npy", progress=False)
    targets = normalize_rows(rng.normal(size=(3, 8)).astype(np.float32))
    exclude = rng.choice(700, 40, replace=False)
    ids, sims, which = top_similar(session, targets, 25, exclude)
    best = normalize_rows(emb) @ targets.T
    score = best.max(axis=1)
    score[exclude] = -np.inf
    expected = np.lexsort((np.arange(700), -score))[:25]
    assert ids.tolist() == expected.tolist()
    np.testing.assert_allclose(sims, score[expected], rtol=1e-5)
    assert which.tolist() == best[expected].argmax(axis=1).tolist()
