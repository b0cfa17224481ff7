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


@pytest.mark.parametrize("metric", ["dot", "euclidean"])
def test_dot_and_euclidean_search_a_plain_matrix_exactly_and_survive_reload(rng, metric, tmp_path):
    x = (rng.standard_normal((300, 5)) * rng.uniform(0.5, 3, (300, 1))).astype(np.float32)
    index = NeighborIndex(metric=metric, progress=False).fit(x)
    x64 = x.astype(np.float64)
    truth = x64 @ x64.T if metric == "dot" else -((x64[:, None] - x64[None]) ** 2).sum(axis=2)
    ids, scores = index.search(x[:20], 4)
    np.testing.assert_array_equal(ids, np.argsort(-truth[:20], axis=1, kind="stable")[:, :4])
    np.testing.assert_allclose(scores, np.sort(truth[:20], axis=1)[:, ::-1][:, :4], atol=1e-3)
    index.save(tmp_path / "i.faiss")
    again = NeighborIndex.load(tmp_path / "i.faiss")
    assert again.metric == metric
    np.testing.assert_array_equal(again.search(x[:20], 4)[0], ids)


def test_an_index_saved_before_metrics_loads_as_cosine_and_dot_refuses_lsh(pool, tmp_path):
    import json

    NeighborIndex(progress=False).fit(pool).save(tmp_path / "old.faiss")
    meta = json.loads((tmp_path / "old.faiss.json").read_text())
    del meta["metric"]
    (tmp_path / "old.faiss.json").write_text(json.dumps(meta))
    assert NeighborIndex.load(tmp_path / "old.faiss", pool=pool).metric == "cosine"
    with pytest.raises(ConfigError, match="'LSH'.*dot metric"):
        NeighborIndex("LSH", metric="dot", progress=False).fit(pool)
    with pytest.raises(ConfigError, match="NeighborIndex: metric='l1' is invalid"):
        NeighborIndex(metric="l1")


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


# ---------------------------------------------------------------- parameters by pool size
def test_ivf_nlist_follows_four_root_n_and_respects_training_rows():
    from raresift.index import ivf_nlist

    assert ivf_nlist(10**6) == 4000 and ivf_nlist(10**8) == 40_000
    assert ivf_nlist(1000) == 1000 // 39  # 4 sqrt(n) = 126 lists would each train on 8 rows
    with pytest.raises(ValidationError):
        ivf_nlist(0)


def test_exact_search_matches_brute_force_across_blocks(pool, monkeypatch):
    import raresift.exact
    import raresift.index as index_module

    monkeypatch.setattr(raresift.exact, "ROW_BLOCK", 97)  # several blocks, a ragged last one
    unit = normalize_rows(pool.embeddings)
    q = unit[[3, 50, 400]]
    pos, scores = index_module.exact_search(pool.embeddings, q, 7)
    expected = np.argsort(-(q @ unit.T), axis=1, kind="stable")[:, :7]
    np.testing.assert_array_equal(pos, expected)
    np.testing.assert_allclose(scores, np.take_along_axis(q @ unit.T, expected, 1), atol=1e-5)


def test_calibration_reaches_the_recall_target_with_the_smallest_nprobe(rng):
    centers = rng.standard_normal((30, 16)).astype(np.float32) * 3
    x = centers[rng.integers(0, 30, 3000)] + rng.standard_normal((3000, 16)).astype(np.float32)
    pool = Pool(x)
    index = NeighborIndex(
        "IVF64,Flat", recall_target=0.9, calibration_queries=100, progress=False
    ).fit(pool)
    nprobe = int(index.search_params.split("=")[1])
    assert index.recall_ >= 0.9 and 1 < nprobe < 64
    # the measured recall is what the chosen setting gives, and half of it falls short
    assert index.measure_recall(k=10, n_queries=100) == pytest.approx(index.recall_)
    faiss_params = f"nprobe={nprobe // 2}"
    index.search_params = faiss_params
    index._apply_search_params()
    assert index.measure_recall(k=10, n_queries=100) < 0.9
    exact = NeighborIndex("Flat", recall_target=0.99, progress=False).fit(pool)
    assert exact.recall_ == 1.0 and exact.search_params == ""
    with pytest.raises(ConfigError):
        NeighborIndex("Flat", recall_target=1.5, progress=False).fit(pool)


# ---------------------------------------------------------------- k-NN graph
def test_knn_graph_answers_like_the_index_and_survives_reload(pool, tmp_path):
    index = NeighborIndex("HNSW16", search_params="efSearch=64", progress=False).fit(pool)
    q = pool.ids[[0, 17, 599, 4]]
    searched = index.neighbors(q, 6)
    graph = index.build_graph(8, tmp_path / "graph.npy")
    assert graph.positions.dtype == np.int32 and graph.positions.shape == (600, 8)
    assert graph.build_seconds > 0
    np.testing.assert_array_equal(index.neighbors(q, 6), searched)
    # excluded ids or a deeper k fall back to a real search
    np.testing.assert_array_equal(index.neighbors(q, 9), index.neighbors(q, 9, exclude=[-5]))
    index.graph = None
    index.attach_graph(tmp_path / "graph.npy")
    np.testing.assert_array_equal(index.neighbors(q, 6), searched)
    other = Pool(pool.embeddings, ids=np.arange(600))  # the index would answer with other ids
    with pytest.raises(ValidationError, match="another pool.*other ids"):
        index.attach(other)
    (tmp_path / "bad.npy").write_bytes(b"junk")
    index.attach(pool)
    with pytest.raises(CorruptFileError):
        index.attach_graph(tmp_path / "bad.npy")


# ---------------------------------------------------------------- sharded on-disk build
@pytest.mark.parametrize("factory", ["IVF16,Flat", "IVF16,PQ4x4"])
def test_sharded_build_equals_one_shot_build(pool, tmp_path, factory):
    from raresift.index import build_sharded_index

    whole = NeighborIndex(factory, "nprobe=4", train_size=600, progress=False).fit(pool)
    calls = []

    def recording_map(fn, tasks):
        calls.append(len(tasks))
        return [fn(t) for t in tasks]

    sharded = build_sharded_index(
        pool,
        factory,
        tmp_path / "idx",
        shard_size=250,
        train_size=600,
        search_params="nprobe=4",
        map_shards=recording_map,
        progress=False,
    )
    assert calls == [3] and len(sharded) == 600
    assert sorted(p.name for p in (tmp_path / "idx").iterdir()) == [
        "index.faiss",
        "index.faiss.json",
        "index.ivfdata",
    ]
    q = pool.ids[:25]
    np.testing.assert_array_equal(sharded.neighbors(q, 10), whole.neighbors(q, 10))
    loaded = NeighborIndex.load(tmp_path / "idx" / "index.faiss", pool=pool, progress=False)
    np.testing.assert_array_equal(loaded.neighbors(q, 10), whole.neighbors(q, 10))
    _, scores = loaded.search(pool.embeddings_of(q[:3]), 2)
    assert np.all(scores <= 1.0 + 1e-4)


def test_sharded_build_reopens_a_memmap_in_each_task(tmp_path, rng):
    from raresift.index import MemmapSource, build_sharded_index

    x = rng.standard_normal((500, 8)).astype(np.float16)
    np.save(tmp_path / "x.npy", x)
    mm = np.load(tmp_path / "x.npy", mmap_mode="r")
    seen = []

    def checking_map(fn, tasks):
        seen.extend(isinstance(t.source, MemmapSource) for t in tasks)
        return [fn(t) for t in tasks]

    ids = np.arange(500) * 3
    index = build_sharded_index(
        mm,
        "IVF8,Flat",
        tmp_path / "i",
        ids=ids,
        shard_size=128,
        map_shards=checking_map,
        search_params="nprobe=8",
        progress=False,
    )
    assert seen == [True] * 4
    exact = NeighborIndex(progress=False).fit(Pool(x.astype(np.float32), ids=ids))
    q = Pool(x.astype(np.float32), ids=ids)
    np.testing.assert_array_equal(
        index.neighbors(ids[:10], 5, pool=q), exact.neighbors(ids[:10], 5)
    )


def test_sharded_build_rejects_non_ivf_and_bad_shards(pool, tmp_path):
    from raresift.index import build_sharded_index

    with pytest.raises(ConfigError, match="IVF"):
        build_sharded_index(pool, "HNSW16", tmp_path / "a", progress=False)
    with pytest.raises(ConfigError):
        build_sharded_index(pool, "IVF4,Flat", tmp_path / "b", shard_size=0, progress=False)
    with pytest.raises(CorruptFileError):
        build_sharded_index(
            pool,
            "IVF4,Flat",
            tmp_path / "c",
            shard_size=200,
            progress=False,
            map_shards=lambda fn, tasks: [fn(t) for t in tasks[:-1]],
        )
