import numpy as np
import pytest

from raresift.errors import ConfigError
from raresift.simulate.synthetic import make_synthetic_concepts


def small(**kw):
    params = dict(n=30_000, dim=24, n_concepts=12, prevalence=(2e-4, 2e-3), latent_dim=8)
    params.update(kw)
    return make_synthetic_concepts(progress=False, chunk_size=4096, **params)


def test_shapes_unit_norm_and_prevalence():
    data = small()
    assert data.train.shape == (30_000, 24) and data.train.dtype == np.float32
    assert data.test.shape == (3_000, 24)
    np.testing.assert_allclose(np.linalg.norm(data.train, axis=1), 1.0, atol=1e-5)
    counts = data.train_counts
    assert counts.sum() == (data.train_concept >= 0).sum()
    assert np.all(counts >= round(2e-4 * 30_000) - 1) and np.all(counts <= round(2e-3 * 30_000))
    np.testing.assert_allclose(data.prevalence, counts / 30_000)
    test_counts = np.bincount(data.test_concept[data.test_concept >= 0], minlength=12)
    assert np.all(test_counts >= 20)
    assert data.labels(3).sum() == counts[3] and data.labels(3, "test").sum() == test_counts[3]
    # skewed background: the largest background cluster dwarfs the rare concepts
    assert (data.train_concept == -1).mean() > 0.9


def test_some_concepts_are_fragmented_and_form_tight_clusters():
    data = small(fragmented_share=0.5, max_fragments=3)
    assert (data.fragments > 1).any() and (data.fragments == 1).any()
    assert data.fragments.max() <= 3
    # positives of a single-cluster concept are more similar to each other than to the pool
    c = int(np.flatnonzero(data.fragments == 1)[0])
    pos = data.train[data.labels(c)]
    within = (pos @ pos.T).mean()
    overall = (pos @ data.train[:2000].T).mean()
    assert within > overall + 0.2


def test_same_seed_same_data_other_seed_differs(tmp_path):
    a, b, c = small(seed=5), small(seed=5), small(seed=6)
    np.testing.assert_array_equal(a.train, b.train)
    np.testing.assert_array_equal(a.test_concept, b.test_concept)
    assert not np.array_equal(a.train_concept, c.train_concept)
    mapped = small(seed=5, path=tmp_path / "train.npy")
    assert isinstance(mapped.train, np.memmap)
    np.testing.assert_array_equal(np.asarray(mapped.train), a.train)


def test_bad_settings_raise():
    with pytest.raises(ConfigError):
        small(prevalence=(0.01, 0.001))
    with pytest.raises(ConfigError):
        small(n_concepts=400, prevalence=(1e-3, 2e-3))
    with pytest.raises(ConfigError):
        small(latent_dim=64)
    with pytest.raises(ConfigError):
        small().labels(99)


def test_float16_pool_is_written_in_chunks_to_a_npy_and_equals_float32_rounded(tmp_path):
    a = small(seed=2)
    half = small(seed=2, path=tmp_path / "half.npy", dtype="float16")
    assert isinstance(half.train, np.memmap) and half.train.dtype == np.float16
    assert not (tmp_path / "half.npy.part").exists()
    np.testing.assert_array_equal(np.asarray(half.train), a.train.astype(np.float16))
    np.testing.assert_array_equal(half.train_concept, a.train_concept)
    assert np.load(tmp_path / "half.npy").shape == (30_000, 24)
    in_memory = small(seed=2, dtype=np.float16)
    np.testing.assert_array_equal(in_memory.train, np.asarray(half.train))
    with pytest.raises(ConfigError):
        small(dtype="int8")
