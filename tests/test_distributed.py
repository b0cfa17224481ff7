"""The Ray path (raresift.distributed) against the single-machine one, on a local Ray.

Ray starts once for the module (``ray.init(num_cpus=2)``) and stops after it. Skipped with the
install command when the ``ray`` extra is missing.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

ray = pytest.importorskip(
    "ray", reason="the ray extra is not installed: pip install 'raresift[ray]'"
)

from sklearn.linear_model import LogisticRegression  # noqa: E402

from raresift import ActiveLearner, AllCandidates, Labels, Pool, SklearnModel  # noqa: E402
from raresift.density import ROW_BLOCK  # noqa: E402
from raresift.distributed import RayStrategy  # noqa: E402
from raresift.distributed.embed import TextEmbedder  # noqa: E402
from raresift.errors import ConfigError  # noqa: E402
from raresift.strategies import make_strategy  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def local_ray():
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False)
    yield
    ray.shutdown()


def _concept_pool(n: int, dim: int = 8, seed: int = 0):
    """A pool with a rare binary concept and a few seed labels of both classes."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dim)).astype(np.float32)
    y = (x[:, 0] + 0.5 * x[:, 1] > 2.0).astype(int)
    seed_ids = np.concatenate([np.flatnonzero(y == 1)[:5], np.flatnonzero(y == 0)[:20]])
    return Pool(x, ids=np.arange(n) * 3 + 7), y, seed_ids


def _on_ray(name, **params):
    return RayStrategy(make_strategy(name, **params), shard_size=1, progress=False)


def _learner(pool, y, seed_ids, strategy, candidates=None, seed=0):
    ids = pool.ids[seed_ids]
    return ActiveLearner(
        pool,
        SklearnModel(LogisticRegression(max_iter=200), n_classes=2),
        strategy,
        candidates=candidates,
        labels=Labels(ids, y[seed_ids]),
        seed=seed,
    )


@pytest.mark.parametrize("strategy", ["entropy", "margin", "mlp", "information-density"])
def test_distributed_scoring_picks_what_local_scoring_picks(strategy):
    n = 2 * ROW_BLOCK + 5_000  # three shards, the last one short
    pool, y, seed_ids = _concept_pool(n)
    local = _learner(pool, y, seed_ids, strategy, AllCandidates())
    remote = _learner(pool, y, seed_ids, _on_ray(strategy), AllCandidates())
    for _ in range(2):  # two rounds: the candidate set shrinks between them
        a, b = local.query(40), remote.query(40)
        np.testing.assert_array_equal(a.ids, b.ids)
        np.testing.assert_array_equal(a.scores, b.scores)
        local.teach(a.ids, y[pool.positions(a.ids)])
        remote.teach(b.ids, y[pool.positions(b.ids)])


def test_distributed_scoring_breaks_ties_like_local_scoring():
    """A model that gives every item the same probability: the picks are pure tie-breaking."""
    n = ROW_BLOCK + 3_000
    pool, y, seed_ids = _concept_pool(n)
    pool.embeddings[:] = 1.0  # every item identical, so every score ties
    for seed in (0, 1):
        local = _learner(pool, y, seed_ids, "entropy", AllCandidates(), seed=seed).query(25)
        remote = _learner(pool, y, seed_ids, _on_ray("entropy"), seed=seed).query(25)
        np.testing.assert_array_equal(local.ids, remote.ids)
    assert not np.array_equal(
        _learner(pool, y, seed_ids, "entropy", AllCandidates(), seed=0).query(25).ids,
        _learner(pool, y, seed_ids, "entropy", AllCandidates(), seed=1).query(25).ids,
    ), "ties must be broken by the seed, or this test checks nothing"


def test_memmapped_pool_is_read_by_path(tmp_path):
    n = ROW_BLOCK + 100
    pool, y, seed_ids = _concept_pool(n)
    path = tmp_path / "emb.npy"
    np.save(path, pool.embeddings)
    mapped = Pool(np.load(path, mmap_mode="r"), ids=pool.ids)
    strategy = _on_ray("entropy")
    remote = _learner(mapped, y, seed_ids, strategy).query(30)
    local = _learner(pool, y, seed_ids, "entropy").query(30)
    np.testing.assert_array_equal(local.ids, remote.ids)
    rows = strategy.rows(mapped)
    assert rows.path == os.fspath(path) and rows.ref is None


@pytest.mark.parametrize(
    ("objective", "optimizer"), [("flqmi", "lazy"), ("logdetmi", "lazy"), ("fl", "stochastic")]
)
def test_partitioned_similar_on_workers_picks_what_the_local_partition_trick_picks(
    objective, optimizer
):
    pool, y, seed_ids = _concept_pool(3_000, dim=6, seed=1)
    rare = pool.ids[seed_ids[:5]]
    picks = []
    params = {"representation": "embedding", "partitions": 4, "optimizer": optimizer}
    for strategy in (make_strategy(objective, **params), _on_ray(objective, **params)):
        learner = _learner(pool, y, seed_ids, strategy, seed=3)
        learner.query_ids = rare
        picks.append(learner.query(20))
    np.testing.assert_array_equal(picks[0].ids, picks[1].ids)
    np.testing.assert_allclose(picks[0].scores, picks[1].scores)


def test_partitioned_similar_uses_gradient_embeddings_on_workers():
    pool, y, seed_ids = _concept_pool(2_000, dim=6, seed=2)
    picks = []
    for strategy in (make_strategy("flcg", partitions=2), _on_ray("flcg", partitions=2)):
        learner = _learner(pool, y, seed_ids, strategy)
        learner.conditioning_ids = pool.ids[seed_ids]
        picks.append(learner.query(10).ids)
    np.testing.assert_array_equal(picks[0], picks[1])


def test_a_strategy_that_draws_random_scores_is_refused():
    pool, y, seed_ids = _concept_pool(ROW_BLOCK + 10)
    learner = _learner(pool, y, seed_ids, _on_ray("random"))
    with pytest.raises(ConfigError, match="draws random numbers"):
        learner.query(5)


def test_import_raresift_and_the_cli_import_no_ray():
    code = (
        "import sys, raresift, raresift.cli\n"
        "from raresift import ActiveLearner, SEALSCandidates, NeighborIndex\n"
        "import raresift.strategies, raresift.simulate\n"
        "bad = sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.'))\n"
        "print(bad)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "[]", out.stdout
    timing = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "raresift.cli", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert timing.returncode == 0, timing.stderr[-2000:]
    imported = [line.rsplit("|", 1)[-1].strip() for line in timing.stderr.splitlines()]
    assert "ray" not in imported


TEXTS = [
    "corn exports rose sharply in the third quarter",
    "wheat prices fell after the harvest report",
    "the central bank left interest rates unchanged",
    "oil output from the gulf increased",
    "a new vaccine trial reported strong results",
    "shares of the mining company jumped",
    "heavy rain delayed the soybean planting",
]


class _DiesInFirstBatch(TextEmbedder):
    """The text embedder, but its first batch kills its actor while the file ``marker`` (set
    on a subclass, which Ray pickles by value) does not exist."""

    marker = ""

    def __call__(self, batch):
        if not os.path.exists(self.marker):
            open(self.marker, "w").close()
            os._exit(1)  # the actor's process dies mid-batch, as if killed
        return super().__call__(batch)


@pytest.mark.slow
def test_distributed_embedding_equals_local_embedding_and_resumes(tmp_path, monkeypatch):
    from raresift.distributed import embed_parquet, read_embedding_shards, write_text_shards

    try:
        from raresift.embed import embed_texts

        local = embed_texts(TEXTS, progress=False)
    except Exception as exc:  # the model is part of the dev extra; say so if it is absent
        pytest.skip(f"the sentence-embedding model is unavailable: {exc}")
    ids = np.arange(len(TEXTS)) * 10 + 5
    write_text_shards(TEXTS, tmp_path / "in", ids=ids, shard_size=3)
    out = embed_parquet(
        tmp_path / "in",
        tmp_path / "out",
        batch_size=2,
        concurrency=2,
        num_cpus=0.5,
        shards_per_job=3,
        progress=False,
    )
    assert [p.name for p in out] == ["shard-00000", "shard-00001", "shard-00002"]
    got_ids, got = read_embedding_shards(tmp_path / "out", out=tmp_path / "emb.npy")
    np.testing.assert_array_equal(got_ids, ids)
    np.testing.assert_allclose(got, local, atol=1e-5)
    assert isinstance(got, np.memmap)

    # resumable: finished shards are skipped, a missing one is redone, even when the embedder
    # actor redoing it dies in its first batch (Ray Data restarts it and retries the batch)
    stamp = {p.name: p.stat().st_mtime_ns for p in out}
    import shutil

    import raresift.distributed.embed as distributed_embed

    shutil.rmtree(out[1])
    marker = tmp_path / "died"
    dying = type("DyingTextEmbedder", (_DiesInFirstBatch,), {"marker": str(marker)})
    monkeypatch.setitem(distributed_embed.EMBEDDERS, "text", dying)
    embed_parquet(tmp_path / "in", tmp_path / "out", concurrency=1, progress=False)
    assert marker.exists(), "the embedder never died, so the retry was not checked"

    with pytest.raises(ConfigError, match="no CPU"):
        embed_parquet(tmp_path / "in", tmp_path / "x", concurrency=2, progress=False)
    assert out[0].stat().st_mtime_ns == stamp["shard-00000"]
    assert out[2].stat().st_mtime_ns == stamp["shard-00002"]
    again_ids, again = read_embedding_shards(tmp_path / "out")
    np.testing.assert_array_equal(again_ids, ids)
    np.testing.assert_allclose(again, local, atol=1e-5)
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".job")]


def test_shards_reach_the_embedders_longest_text_first_in_blocks(tmp_path):
    import pyarrow as pa

    from raresift.distributed.embed import _read_shards, write_text_shards

    ids = np.arange(len(TEXTS)) * 10 + 5
    (path,) = write_text_shards(TEXTS, tmp_path, ids=ids, shard_size=len(TEXTS))
    paths = pa.table({"path": [str(path)]})
    blocks = list(_read_shards(paths, ["id", "text"], "text", rows_per_block=3))
    assert [b.num_rows for b in blocks] == [3, 3, 1]
    rows = pa.concat_tables(blocks).to_pylist()
    lengths = [len(r["text"]) for r in rows]
    assert lengths == sorted(lengths, reverse=True)  # batches pad little
    assert sorted((r["id"], r["text"]) for r in rows) == list(zip(ids.tolist(), TEXTS, strict=True))
    assert {r["__shard"] for r in rows} == {"shard-00000"}
    unsorted = pa.concat_tables(_read_shards(paths, ["id", "text"], None, rows_per_block=3))
    assert unsorted.column("id").to_pylist() == ids.tolist()  # images keep the file's order


def test_embedding_a_folder_without_shards_says_so(tmp_path):
    from raresift.distributed import embed_parquet
    from raresift.errors import ValidationError

    with pytest.raises(ValidationError, match="no \\*.parquet shards"):
        embed_parquet(tmp_path, tmp_path / "out", progress=False)


class _DiesOnce:
    """Runs ``fn``, but the first attempt at task ``victim`` kills its own worker process."""

    def __init__(self, fn, victim, marker):
        self.fn, self.victim, self.marker = fn, victim, str(marker)

    def __call__(self, task):
        key = getattr(task, "shard_path", task)  # a ShardTask is known by its file
        if key == self.victim and not os.path.exists(self.marker):
            open(self.marker, "w").close()
            os._exit(1)  # the worker dies mid-task, as if killed
        return self.fn(task)


def _square_rows(task):
    lo, hi = task
    return (np.arange(lo, hi) ** 2).sum()


def test_a_killed_workers_shard_is_redone_and_the_result_unchanged(tmp_path):
    from raresift.distributed import ray_map_shards

    tasks = [(lo, lo + 100) for lo in range(0, 500, 100)]
    marker = tmp_path / "died"
    got = ray_map_shards(_DiesOnce(_square_rows, tasks[2], marker), tasks, progress=False)
    assert marker.exists(), "the worker never died, so this test checked nothing"
    assert got == [_square_rows(t) for t in tasks]


def _saved_index(tmp_path, factory="Flat", n=3_000, dim=8):
    from raresift.index import NeighborIndex

    pool, y, seed_ids = _concept_pool(n, dim)
    index = NeighborIndex(factory, progress=False).fit(pool)
    index.save(tmp_path / "index.faiss")
    return pool, y, seed_ids, index


def test_remote_index_workers_return_the_local_neighbours(tmp_path):
    from raresift.distributed import RemoteNeighborIndex

    pool, _, _, index = _saved_index(tmp_path)
    remote = RemoteNeighborIndex(tmp_path / "index.faiss", workers=2, min_batch=100, pool=pool)
    queries = pool.ids[::7]
    exclude = pool.ids[1::5]
    np.testing.assert_array_equal(
        remote.neighbors(queries, 10, exclude=exclude, pool=pool),
        index.neighbors(queries, 10, exclude=exclude),
    )
    remote.close()


def test_seals_round_with_searches_on_index_workers_picks_what_the_local_round_picks(tmp_path):
    from raresift.candidates import SEALSCandidates
    from raresift.distributed import RemoteNeighborIndex

    pool, y, seed_ids, index = _saved_index(tmp_path)
    remote = RemoteNeighborIndex(tmp_path / "index.faiss", workers=2, min_batch=1)
    runs = []
    for knn in (index, remote):
        learner = _learner(pool, y, seed_ids, "entropy", SEALSCandidates(knn, k=10), seed=4)
        batches = []
        for _ in range(2):
            batch = learner.query(15)
            learner.teach(batch.ids, y[pool.positions(batch.ids)])
            batches.append(batch.ids)
        runs.append(np.concatenate(batches))
    np.testing.assert_array_equal(runs[0], runs[1])
    remote.close()


@pytest.mark.parametrize("strategy", ["mlp", "information-density"])
def test_searching_ahead_on_index_workers_saves_calls_and_keeps_the_picks(tmp_path, strategy):
    """Local index without searching ahead (one search per pick), local with it, and index
    actors without and with it (calls split over both actors): the same rounds."""
    from raresift.candidates import SEALSCandidates
    from raresift.distributed import RemoteNeighborIndex

    pool, y, seed_ids, index = _saved_index(tmp_path, n=4_000)
    remote = RemoteNeighborIndex(tmp_path / "index.faiss", workers=2)
    assert remote.search_ahead == 7  # 4 queries a call per actor
    runs = []
    for knn, ahead in ((index, 0), (index, 7), (remote, 0), (remote, 7)):
        knn.search_ahead = ahead
        candidates = SEALSCandidates(knn, k=10)
        learner = _learner(pool, y, seed_ids, strategy, candidates, seed=4)
        calls, batches = candidates.knn_calls, []
        for _ in range(2):
            batch = learner.query(20)
            learner.teach(batch.ids, y[pool.positions(batch.ids)])
            batches.append(batch.ids)
        runs.append((np.concatenate(batches), candidates.knn_calls - calls))
    for picks, _ in runs[1:]:
        np.testing.assert_array_equal(runs[0][0], picks)
    assert runs[0][1] > runs[1][1] and runs[2][1] > runs[3][1], [c for _, c in runs]
    remote.close()


def test_index_workers_refuse_a_pool_the_index_was_not_built_over(tmp_path):
    from raresift.candidates import SEALSCandidates
    from raresift.distributed import RemoteNeighborIndex
    from raresift.errors import CorruptFileError, ValidationError

    pool, y, seed_ids, _ = _saved_index(tmp_path)
    other = Pool(pool.embeddings.copy(), ids=pool.ids + 1)  # the same vectors, other ids
    moved = Pool(pool.embeddings[::-1].copy(), ids=pool.ids)  # the same ids, other vectors
    with pytest.raises(ValidationError, match="built over another pool .*other ids"):
        RemoteNeighborIndex(tmp_path / "index.faiss", workers=1, pool=other)
    remote = RemoteNeighborIndex(tmp_path / "index.faiss", workers=1, pool=pool)
    for wrong, why in ((other, "other ids"), (moved, "other vectors")):
        with pytest.raises(ValidationError, match=f"built over another pool .*{why}"):
            _learner(wrong, y, seed_ids, "mlp", SEALSCandidates(remote, k=10))  # starts it
    remote.close()
    garbled = bytearray((tmp_path / "index.faiss").read_bytes())
    garbled[len(garbled) // 2] ^= 0xFF
    (tmp_path / "index.faiss").write_bytes(bytes(garbled))
    with pytest.raises(CorruptFileError, match="does not match its checksum"):
        RemoteNeighborIndex(tmp_path / "index.faiss", workers=1)


@pytest.mark.parametrize(("candidates", "strategy"), [("all", "entropy"), ("seals", "mlp")])
def test_a_session_on_the_ray_engine_behaves_as_a_local_one(tmp_path, candidates, strategy):
    from raresift.session import Session

    rng = np.random.default_rng(0)
    x = rng.normal(size=(1_500, 8)).astype(np.float32)
    y = (x[:, 0] > 1.8).astype(int)
    np.save(tmp_path / "emb.npy", x)
    with open(tmp_path / "seed.csv", "w") as fh:
        fh.write("id,label\n")
        for i in list(np.flatnonzero(y)[:3]) + list(range(20)):
            fh.write(f"{i},{y[i]}\n")
    picks = []
    for engine in ("local", "ray"):
        session = Session.create(
            tmp_path / engine,
            embeddings=tmp_path / "emb.npy",
            concept="rare",
            seed_labels=tmp_path / "seed.csv",
            candidates=candidates,
            index="Flat",
            engine=engine,
            progress=False,
        )
        got = []
        for _ in range(2):
            batch = session.next(budget=8, strategy=strategy)
            got.append([b.id for b in batch])
            session.answer_many([(b.id, int(y[b.id])) for b in batch])
        picks.append(got)
        assert Session.open(session.root).config["engine"] == engine
    assert picks[0] == picks[1]


def test_cli_init_takes_the_ray_engine_and_refuses_an_address_without_it(tmp_path, capsys):
    from raresift.cli import main

    np.save(tmp_path / "emb.npy", np.random.default_rng(0).normal(size=(50, 4)).astype("f4"))
    args = ["init", str(tmp_path / "p"), "--embeddings", str(tmp_path / "emb.npy")]
    assert main([*args, "--address", "auto"]) == 2
    assert "needs engine='ray'" in capsys.readouterr().err
    assert main([*args, "--engine", "ray"]) == 0


def _recall(found: np.ndarray, exact: np.ndarray) -> float:
    return float(np.mean([np.isin(f, e).mean() for f, e in zip(found, exact, strict=True)]))


def test_sharded_index_built_on_ray_finds_the_single_process_neighbours(tmp_path):
    from raresift.distributed import ray_map_shards
    from raresift.index import NeighborIndex, build_sharded_index

    pool, _, _ = _concept_pool(6_000, dim=16, seed=5)
    queries = pool.ids[::37]
    exact = NeighborIndex("Flat", progress=False).fit(pool).neighbors(queries, 10)

    def on_ray(fn, tasks):
        return ray_map_shards(fn, tasks, progress=False)

    # IVF with flat codes, every list probed: exact search, the same neighbours as Flat
    ivf_flat = build_sharded_index(
        pool,
        "IVF16,Flat",
        tmp_path / "flat",
        shard_size=1_500,
        search_params="nprobe=16",
        map_shards=on_ray,
        progress=False,
    )
    assert len(ivf_flat) == len(pool)
    loaded = NeighborIndex.load(tmp_path / "flat" / "index.faiss", pool=pool, progress=False)
    np.testing.assert_array_equal(loaded.neighbors(queries, 10), exact)
    single = NeighborIndex("IVF16,Flat", "nprobe=16", progress=False).fit(pool)
    np.testing.assert_array_equal(single.neighbors(queries, 10), exact)

    # IVF-PQ: approximate; the merged index's recall matches the single-process index's
    pq = build_sharded_index(
        pool,
        "IVF16,PQ8x4",
        tmp_path / "pq",
        shard_size=1_500,
        search_params="nprobe=4",
        map_shards=on_ray,
        progress=False,
    )
    merged = NeighborIndex.load(tmp_path / "pq" / "index.faiss", pool=pool, progress=False)
    single = NeighborIndex("IVF16,PQ8x4", "nprobe=4", progress=False).fit(pool)
    r_merged = _recall(merged.neighbors(queries, 10), exact)
    r_single = _recall(single.neighbors(queries, 10), exact)
    assert abs(r_merged - r_single) <= 0.01, (r_merged, r_single)
    assert len(pq) == len(pool)


def test_a_shard_build_whose_worker_dies_is_redone_with_the_same_index(tmp_path):
    from raresift.distributed import ray_map_shards
    from raresift.index import NeighborIndex, build_sharded_index

    pool, _, _ = _concept_pool(4_000, dim=16, seed=6)
    queries = pool.ids[::29]
    marker = tmp_path / "died"
    victim = os.path.join(os.path.abspath(tmp_path / "killed"), "shard-00001.faiss")

    def dying(fn, tasks):
        return ray_map_shards(_DiesOnce(fn, victim, marker), tasks, progress=False)

    results = []
    for name, runner in (("calm", None), ("killed", dying)):
        build_sharded_index(
            pool,
            "IVF8,PQ4x4",
            tmp_path / name,
            shard_size=1_000,
            search_params="nprobe=8",
            map_shards=runner,
            progress=False,
        )
        index = NeighborIndex.load(tmp_path / name / "index.faiss", pool=pool, progress=False)
        results.append(index.neighbors(queries, 10))
    assert marker.exists(), "no worker died, so this test checked nothing"
    np.testing.assert_array_equal(results[0], results[1])


@pytest.mark.slow
def test_distributed_image_embedding_equals_local_embedding(tmp_path):
    pytest.importorskip("PIL", reason="the images extra is not installed")
    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image

    from raresift.distributed import embed_parquet, read_embedding_shards

    try:
        from raresift.embed_images import encode, load_image
    except Exception as exc:  # the image model is part of the dev extra
        pytest.skip(f"the image model is unavailable: {exc}")
    rng = np.random.default_rng(0)
    paths = []
    for i in range(3):
        path = tmp_path / f"img{i}.png"
        Image.fromarray(rng.integers(0, 255, (40 + 8 * i, 48, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    (tmp_path / "in").mkdir()
    pq.write_table(pa.table({"id": [7, 8, 9], "path": paths}), tmp_path / "in" / "s.parquet")
    embed_parquet(
        tmp_path / "in",
        tmp_path / "out",
        kind="image",
        column="path",
        image_size=32,
        batch_size=2,
        concurrency=1,
        progress=False,
    )
    ids, got = read_embedding_shards(tmp_path / "out")
    local = encode(np.stack([load_image(p, 32) for p in paths]))
    np.testing.assert_array_equal(ids, [7, 8, 9])
    np.testing.assert_allclose(got, local, atol=1e-5)
