import numpy as np
import pytest

from raresift.density import normalize_rows
from raresift.errors import ConfigError, CorruptFileError, ValidationError
from raresift.index import NeighborIndex
from raresift.pool import Pool


@pytest.fixture
def pool(rng):
    x = rng.standard_normal((600, 16)).astype(np.float32) * rng.uniform(0.5, 3, (600, 1))
    return Pool(x, ids=np.arange(600) * 7 + 100)


def exact_neighbors(pool, query_ids, k):
    unit = normalize_rows(pool.embeddings)
    sims = unit[pool.positions(query_ids)] @ unit.T
    sims[np.arange(len(query_ids)), pool.positions(query_ids)] = -np.inf
    return pool.ids[np.argsort(-sims, axis=1, kind="stable")[:, :k]]


def test_flat_matches_exact_cosine_search_and_maps_ids(pool):
    index = NeighborIndex("Flat", chunk_size=100, progress=False).fit(pool)
    assert len(index) == 600 and index.dim == 16
    q = pool.ids[[0, 5, 99]]
    np.testing.assert_array_equal(index.neighbors(q, 10), exact_neighbors(pool, q, 10))
    ids, scores = index.search(pool.embeddings_of(q), 3)
    assert ids[:, 0].tolist() == q.tolist()
    np.testing.assert_allclose(scores[:, 0], 1.0, atol=1e-5)
    assert np.all(np.diff(scores, axis=1) <= 1e-6)


@pytest.mark.parametrize(
    "factory,params",
    [("HNSW16", "efSearch=64"), ("IVF8,Flat", "nprobe=8"), ("LSH", ""), ("IVF4,PQ4x4", "nprobe=4")],
)
def test_factory_strings_build_and_find_mostly_true_neighbors(pool, factory, params):
    index = NeighborIndex(factory, search_params=params, train_size=600, progress=False).fit(pool)
    q = pool.ids[:20]
    found = index.neighbors(q, 10)
    assert found.shape == (20, 10)
    assert np.all(np.isin(found, pool.ids))
    assert not np.any(found == q[:, None])
    exact = exact_neighbors(pool, q, 10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(found, exact, strict=True)])
    assert recall > (0.15 if factory in ("LSH", "IVF4,PQ4x4") else 0.9)


def test_exclude_drops_ids_and_still_returns_k(pool):
    index = NeighborIndex(progress=False).fit(pool)
    q = pool.embeddings_of(pool.ids[:4])
    plain, _ = index.search(q, 5)
    excluded = np.unique(plain[:, :3])
    ids, scores = index.search(q, 5, exclude=excluded)
    assert not np.isin(ids, excluded).any()
    assert (ids >= 0).all() and ids.shape == (4, 5)
    # the survivors keep their order
    for row_plain, row in zip(plain, ids, strict=True):
        kept = [i for i in row_plain if i not in excluded]
        assert list(row[: len(kept)]) == kept


def test_fewer_items_than_k_pads_with_minus_one(rng):
    p = Pool(rng.standard_normal((4, 3)).astype(np.float32))
    ids, scores = NeighborIndex(progress=False).fit(p).search(p.embeddings[:1], 6)
    assert (ids[0, 4:] == -1).all() and np.isneginf(scores[0, 4:]).all()
    assert sorted(ids[0, :4].tolist()) == [0, 1, 2, 3]


def test_memmap_input_is_indexed_in_chunks(tmp_path, rng):
    x = rng.standard_normal((300, 8)).astype(np.float32)
    mm = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", dtype=np.float32, shape=x.shape)
    mm[:] = x
    mm.flush()
    a = NeighborIndex(chunk_size=64, progress=False).fit(
        Pool(np.load(tmp_path / "x.npy", mmap_mode="r"))
    )
    b = NeighborIndex(progress=False).fit(Pool(x))
    np.testing.assert_array_equal(a.neighbors([0, 1], 5), b.neighbors([0, 1], 5))


@pytest.mark.parametrize("factory,params", [("Flat", ""), ("IVF8,Flat", "nprobe=3")])
def test_save_load_round_trip(pool, tmp_path, factory, params):
    index = NeighborIndex(factory, search_params=params, train_size=600, progress=False).fit(pool)
    path = tmp_path / "idx.faiss"
    index.save(path)
    loaded = NeighborIndex.load(path, pool=pool, progress=False)
    assert (loaded.factory, loaded.search_params, len(loaded)) == (factory, params, 600)
    q = pool.ids[:30]
    np.testing.assert_array_equal(loaded.neighbors(q, 8), index.neighbors(q, 8))


def test_bad_factory_missing_and_corrupt_files_and_dim_mismatch(pool, tmp_path):
    with pytest.raises(ConfigError, match="factory"):
        NeighborIndex("NotAnIndex42", progress=False).fit(pool)
    with pytest.raises(ValidationError, match="no saved index"):
        NeighborIndex.load(tmp_path / "missing.faiss")
    index = NeighborIndex(progress=False).fit(pool)
    path = tmp_path / "idx.faiss"
    index.save(path)
    path.write_bytes(b"not a faiss index at all")
    with pytest.raises(CorruptFileError, match="rebuild"):
        NeighborIndex.load(path)
    with pytest.raises(ValidationError, match="features"):
        index.search(np.ones((2, 5), np.float32), 3)
    with pytest.raises(ValidationError, match="-d"):
        index.attach(Pool(np.ones((3, 5), np.float32)))
    with pytest.raises(ValidationError, match="k must"):
        index.search(np.ones((1, 16), np.float32), 0)
