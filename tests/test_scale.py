"""The pieces behind 10^8-item sessions, at small sizes: the index default chosen by pool size,
two-level training, calibration of any factory string, memory-mapped loads and the resumable
on-disk build a large session runs at init."""

import numpy as np
import pytest

import raresift.index as index_module
from raresift.index import NeighborIndex, build_sharded_index
from raresift.pool import Pool
from raresift.session import Session
from raresift.session import config as session_config


@pytest.fixture
def clustered(rng):
    centres = rng.standard_normal((12, 8))
    rows = centres[rng.integers(12, size=3000)] + 0.4 * rng.standard_normal((3000, 8))
    return Pool(rows.astype(np.float32))


def test_the_default_index_follows_the_pool_size():
    plan = session_config.SessionConfig().index_plan
    assert plan(10_000, 8).factory == "Flat"
    assert plan(500_000, 8).factory.endswith(",Flat") and not plan(500_000, 8).on_disk
    assert plan(10**7, 8).factory == "IVF4096,SQ8" and not plan(10**7, 8).calibrate
    large = plan(10**8, 64)
    assert large.factory == "IVF65536_HNSW32,SQ8" and large.on_disk and large.calibrate
    assert large.max_scan == session_config.MAX_SCAN
    user = session_config.SessionConfig(index="IVF256,Flat").index_plan(10**8, 64)
    assert user.factory == "IVF256,Flat" and user.on_disk and user.max_scan is None


def test_two_level_training_gives_every_list_a_centroid(clustered, monkeypatch):
    monkeypatch.setattr(index_module, "TWO_LEVEL_LISTS", 16)
    index = NeighborIndex("IVF64,Flat", "nprobe=64", train_size=3000, progress=False)
    index.fit(clustered)
    ivf = index_module.faiss.extract_index_ivf(index.index)
    assert ivf.quantizer.ntotal == 64
    centroids = ivf.quantizer.reconstruct_n(0, 64)
    np.testing.assert_allclose(np.linalg.norm(centroids, axis=1), 1.0, atol=1e-4)
    assert index.measure_recall(10, 50) == 1.0  # every list probed: exact


@pytest.mark.parametrize("factory", ["IVF32_HNSW8,Flat", "IVF32,SQ8", "HNSW8"])
def test_calibration_of_any_factory_takes_the_cheapest_setting_reaching_the_target(
    clustered, factory
):
    index = NeighborIndex(factory, train_size=3000, calibration_queries=60, progress=False)
    index.fit(clustered)
    chosen = index.calibrate(0.9)
    settings = index_module._search_settings(index.index, factory, len(index), None)
    assert chosen in settings and index.recall_ >= 0.9
    position = settings.index(chosen)
    if position:  # the setting before it falls short of the target
        index.search_params = settings[position - 1]
        index._apply_search_params()
        assert index.measure_recall(10, 60) < 0.9


def test_calibration_stops_at_the_scan_cap(clustered):
    index = NeighborIndex("IVF32_HNSW8,Flat", train_size=3000, progress=False).fit(clustered)
    # at most 400 of 3000 codes a query: nprobe <= 400 * 32 / 3000 = 4
    assert index.calibrate(1.0, max_scan=400) == "nprobe=4,quantizer_efSearch=16"


def test_a_loaded_ivf_index_maps_its_lists_and_answers_alike(clustered, tmp_path):
    built = NeighborIndex("IVF16,SQ8", "nprobe=4", progress=False).fit(clustered)
    built.save(tmp_path / "i.faiss")
    loaded = NeighborIndex.load(tmp_path / "i.faiss", pool=clustered, verify=False)
    lists = index_module.faiss.extract_index_ivf(loaded.index).invlists
    assert isinstance(
        index_module.faiss.downcast_InvertedLists(lists), index_module.faiss.OnDiskInvertedLists
    )
    q = clustered.ids[:30]
    np.testing.assert_array_equal(loaded.neighbors(q, 10), built.neighbors(q, 10))


def test_an_interrupted_sharded_build_resumes_without_rebuilding_finished_shards(
    clustered, tmp_path
):
    class Interrupted(Exception):
        pass

    def stop_after_first(fn, tasks):
        fn(tasks[0])
        raise Interrupted

    kwargs = dict(shard_size=1000, train_size=3000, search_params="nprobe=4", progress=False)
    with pytest.raises(Interrupted):
        build_sharded_index(
            clustered, "IVF16,Flat", tmp_path, map_shards=stop_after_first, **kwargs
        )
    first = tmp_path / "shard-00000.faiss"
    stamp = first.stat().st_mtime_ns
    seen = []

    def recording(fn, tasks):
        seen.append([(tmp_path / t.shard_path).exists() for t in tasks])
        assert first.stat().st_mtime_ns == stamp  # kept, with the trained quantiser
        return [fn(t) for t in tasks]

    resumed = build_sharded_index(clustered, "IVF16,Flat", tmp_path, map_shards=recording, **kwargs)
    assert seen == [[True, False, False]]
    whole = NeighborIndex("IVF16,Flat", "nprobe=4", train_size=3000, progress=False)
    whole.fit(clustered)
    q = clustered.ids[:25]
    np.testing.assert_array_equal(resumed.neighbors(q, 10), whole.neighbors(q, 10))
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "index.faiss",
        "index.faiss.json",
        "index.ivfdata",
    ]


def test_a_large_session_builds_its_lists_on_disk_calibrated_and_reopens_them(
    clustered, tmp_path, monkeypatch
):
    monkeypatch.setattr(session_config, "SMALL_POOL", 1000)
    monkeypatch.setattr(session_config, "LARGE_POOL", 2000)
    monkeypatch.setattr(session_config, "LARGE_LISTS", 32)
    monkeypatch.setattr(session_config, "MAX_SCAN", 1500)
    np.save(tmp_path / "emb.npy", clustered.embeddings.astype(np.float16))
    s = Session.create(
        tmp_path / "p", embeddings=tmp_path / "emb.npy", candidates="seals", progress=False
    )
    spec = s.config["index"]
    assert spec["factory"] == "IVF32_HNSW32,SQ8" and spec["path"] == "index/index.faiss"
    assert (tmp_path / "p" / "index" / "index.ivfdata").exists()
    assert spec["search_params"].startswith("nprobe=")  # calibrated, within 1500 codes
    assert int(spec["search_params"].split(",")[0].split("=")[1]) <= 1500 * 32 // 3000
    q = np.arange(20)
    expected = s.index().neighbors(q, 10)
    s.close()
    again = Session.open(tmp_path / "p")
    np.testing.assert_array_equal(again.index().neighbors(q, 10), expected)
    again.close()


def _seals_session(tmp_path, monkeypatch, clustered):
    monkeypatch.setattr(session_config, "SMALL_POOL", 1000)
    y = np.zeros(3000, dtype=int)
    y[np.linalg.norm(clustered.embeddings - clustered.embeddings[0], axis=1) < 1.2] = 1
    np.save(tmp_path / "emb.npy", clustered.embeddings)
    seeds = np.r_[np.flatnonzero(y)[:3], np.flatnonzero(y == 0)[:20]]
    (tmp_path / "seed.csv").write_text("id,label\n" + "".join(f"{i},{y[i]}\n" for i in seeds))
    s = Session.create(
        tmp_path / "p",
        embeddings=tmp_path / "emb.npy",
        concept="rare",
        seed_labels=tmp_path / "seed.csv",
        candidates="seals",
        budget=10,
        progress=False,
    )
    return s, y


def test_seals_reads_earlier_rows_instead_of_searching_and_picks_alike(clustered):
    from raresift.candidates import NeighborRows, SEALSCandidates
    from raresift.pool import Labels

    index = NeighborIndex("IVF16,Flat", "nprobe=2", progress=False).fit(clustered)
    labels = Labels(np.arange(5), np.array([1, 0, 0, 0, 0]))
    graph = NeighborRows(k=20)
    first = SEALSCandidates(index, k=20, graph=graph)
    first.start(clustered, labels)
    first.update([100, 200])
    assert first.knn_queries == 7 and len(graph) == 7
    again = SEALSCandidates(index, k=20, graph=graph)  # a later round, another process
    again.start(clustered, Labels(np.arange(5), np.array([1, 0, 0, 0, 0])))
    again.update([100, 200, 300])
    assert again.knn_queries == 1  # only the new item is searched
    fresh = SEALSCandidates(index, k=20)
    fresh.start(clustered, Labels(np.arange(5), np.array([1, 0, 0, 0, 0])))
    fresh.update([100, 200, 300])
    np.testing.assert_array_equal(again.candidates(), fresh.candidates())
    for i in [0, 100, 300]:  # a stored row is what a fresh search gives
        np.testing.assert_array_equal(graph.get(i), index.neighbors([i], 20)[0])
    with pytest.raises(Exception, match="k=30"):
        SEALSCandidates(index, k=30, graph=graph).start(clustered, labels)


def test_a_session_stores_neighbour_rows_and_measures_and_shows_its_index_recall(
    clustered, tmp_path, monkeypatch
):
    from raresift.index import exact_search, prepare_rows
    from raresift.session import probe as probe_module
    from raresift.session.views import status_text

    monkeypatch.setattr(probe_module, "PROBE_SLICE", 1000)  # three slices, progress stored
    s, y = _seals_session(tmp_path, monkeypatch, clustered)
    batch = s.next()
    s._probe_thread.join()
    status = s.status(estimate=False)
    last = status["index_recall"]["last"]
    assert status["index_recall"]["pending"] is None and last["round"] == 1
    k = s.config["seals_k"]
    queries = np.array(last["query_ids"])
    found = s.index().neighbors(queries, k)
    exact, _ = exact_search(
        clustered.embeddings, prepare_rows(clustered.embeddings[queries]), k + 1
    )
    exact = [[i for i in row if i != q][:k] for row, q in zip(exact, queries, strict=True)]
    expected = np.mean([np.isin(e, f).mean() for e, f in zip(exact, found, strict=True)])
    assert last["recall"] == pytest.approx(expected) and last["k"] == k and last["items"] == 3000
    assert f"recall@{k} {expected:.2f} against exact search" in status_text(status)
    # the rows of round 1 are stored: a new process searches only what is new
    key = probe_module.rows_key(s)
    with s.store.reading() as db:
        stored = db.neighbor_rows(key)
    assert set(stored) >= set(queries.tolist())
    for i, row in list(stored.items())[:5]:
        np.testing.assert_array_equal(np.frombuffer(row, np.int64), s.index().neighbors([i], k)[0])
    s.answer_many([(b.id, int(y[b.id])) for b in batch], who="oracle")
    s.close()
    again = Session.open(tmp_path / "p")
    rows = probe_module.neighbor_rows(again)
    assert len(rows) == len(stored)
    again.next()
    again.close()  # stops the new round's probe; a later process resumes it
    with Session.open(tmp_path / "p") as third:
        state = third.status(estimate=False)["index_recall"]
        assert state["last"]["round"] == 1
        assert state["pending"] is None or state["pending"]["round"] == 2


def test_a_recall_probe_stops_between_blocks_and_resumes_to_the_same_recall(rng, monkeypatch):
    from raresift.index import RecallProbe

    monkeypatch.setattr(index_module, "ROW_BLOCK", 100)
    x = rng.standard_normal((1000, 6)).astype(np.float32)
    found = rng.integers(1, 1000, size=(3, 5))
    whole = RecallProbe(np.array([0, 1, 2]), found)
    assert whole.advance(x, 1000)
    calls = []
    part = RecallProbe(np.array([0, 1, 2]), found)
    assert not part.advance(x, 1000, stop=lambda: calls.append(1) or len(calls) > 3)
    assert part.cursor == 300 and part.recall is None  # three blocks, then stopped
    again = RecallProbe.from_dict(part.as_dict())
    assert again.advance(x, 1000) and again.recall == whole.recall
    np.testing.assert_array_equal(again.top_ids, whole.top_ids)


def test_an_index_checks_a_pool_once_and_a_different_pool_again(clustered, monkeypatch):
    from raresift.errors import ValidationError

    index = NeighborIndex("IVF16,Flat", progress=False).fit(clustered)
    calls = []
    same = Pool(clustered.embeddings)
    real = same.fingerprint
    monkeypatch.setattr(same, "fingerprint", lambda: calls.append(1) or real())
    index.check_pool(same)
    index.check_pool(same)
    assert len(calls) == 1
    other = Pool(clustered.embeddings[::-1].copy())
    with pytest.raises(ValidationError, match="another pool"):
        index.check_pool(other)


def test_a_memory_mapped_pool_keeps_rows_read_by_id_and_answers_alike(tmp_path, rng, monkeypatch):
    import pickle

    import raresift.pool as pool_module

    monkeypatch.setattr(pool_module, "ROW_CACHE", 40)
    x = rng.standard_normal((100, 4)).astype(np.float16)
    np.save(tmp_path / "x.npy", x)
    pool = Pool(np.load(tmp_path / "x.npy", mmap_mode="r"), values_checked=True)
    pool._rows = pool_module.RowCache(40)
    for ids in ([5, 3, 5], [3, 7, 9], list(range(0, 100, 3))[:10], [99, 0]):
        np.testing.assert_array_equal(pool.embeddings_of(ids), x[ids])
    assert len(pool._rows) == 13  # 5, 3; 7, 9; eight more of the third call; 99
    np.testing.assert_array_equal(pool.embeddings_of(np.arange(100)), x)  # a scan: not kept
    again = pickle.loads(pickle.dumps(pool))
    assert len(again._rows) == 0
    np.testing.assert_array_equal(again.embeddings_of([7, 8]), x[[7, 8]])
