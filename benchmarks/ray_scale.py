"""The Ray path against the single-process path at the same size, side by side in one run.

Parts, each timed both ways on this machine (a local Ray of ``--workers`` CPUs against one
process; BLAS, OpenMP and torch pinned to one thread in both, Ray workers included):

1. Embedding rate: ``--embed-sample`` real texts (WordNet glosses; Reuters stories when WordNet
   is absent) through all-MiniLM-L6-v2: ``raresift.embed.embed_texts`` against
   ``raresift.distributed.embed_parquet`` (Ray Data, ``--embed-actors`` actors sharing the CPU
   that Ray Data's read and write tasks leave), each job also timed on one batch (its start-up,
   paid once per job of ``shards_per_job`` shards). Embedding 10^7 real texts is out of reach
   of 2 cores (~10^2 texts/s), so the index and round parts use synthetic vectors.
2. Index build: ``--n`` x ``--dim`` synthetic embeddings (raresift.simulate.synthetic, memmapped
   under ``--scratch``), ``build_sharded_index(factory, shard_size)`` with the local loop against
   ``map_shards=ray_map_shards``; bytes per vector of the merged on-disk index.
3. k-NN latency: ``--queries`` single-query searches and one batched search, against the
   on-disk index loaded locally and through ``RemoteNeighborIndex`` actors.
4. One SEALS round (``--budget`` picks, per-item expansion, ``--k`` neighbours): local index
   against the index actors (2, and 1: Ray's cost without parallel searches), each with and
   without searching ahead (``search_ahead``: k-NN calls and queries counted); and one -All
   scoring round over all ``--n`` items (entropy of a logistic regression) locally against
   ``RayStrategy`` shards: scoring bandwidth. Each the median of ``--repeats`` rounds from a
   fresh learner.

``--parts`` runs some of them (``--parts embed`` is part 1 alone; ``knn`` and ``rounds`` need
the index, which is then built on Ray without being timed when ``index`` is not among them).
Everything written under ``--scratch`` is deleted at the end (``--keep`` keeps it).

The command behind docs/scale.md (about 15 minutes and 6 GB on 2 cores):
    flock /tmp/raresift-bench.lock env PYTHONPATH=src OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \\
        python -u benchmarks/ray_scale.py --n 10000000 --dim 64 \\
        --scratch /work/scratch/ray-scale | tee benchmarks/results/ray-scale-10M.txt
Quick run:
    PYTHONPATH=src python benchmarks/ray_scale.py --n 200000 --embed-sample 200 --scratch /tmp/rs
The embedding rate alone:
    PYTHONPATH=src python benchmarks/ray_scale.py --parts embed --embed-sample 1000 \\
        --scratch /tmp/rs
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import shutil
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before numpy loads; Ray workers inherit it

import numpy as np  # noqa: E402
import torch  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

from raresift.candidates import AllCandidates, SEALSCandidates  # noqa: E402
from raresift.errors import DatasetNotInstalledError  # noqa: E402
from raresift.index import NeighborIndex, build_sharded_index  # noqa: E402
from raresift.loop import ActiveLearner  # noqa: E402
from raresift.models import SklearnModel  # noqa: E402
from raresift.pool import Labels, Pool  # noqa: E402
from raresift.simulate.synthetic import make_synthetic_concepts  # noqa: E402
from raresift.strategies import make_strategy  # noqa: E402


def rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def table(title: str, header: list[str], rows: list[list]) -> None:
    print(f"\n{title}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        print("| " + " | ".join(str(c) for c in row) + " |")


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def real_texts(count: int) -> tuple[list[str], str]:
    from raresift.datasets import load_reuters, load_wordnet

    for name, loader in (("WordNet glosses", load_wordnet), ("Reuters stories", load_reuters)):
        try:
            texts = list(loader().X)
        except DatasetNotInstalledError:
            continue
        rng = np.random.default_rng(0)
        pick = rng.choice(len(texts), size=min(count, len(texts)), replace=False)
        return [texts[i] for i in pick], name
    raise SystemExit("no real texts installed: run `make data` (WordNet, Reuters)")


def part_embedding(args, scratch: Path) -> list:
    """Rows of table 1: the single-process rate, then per actor count a Ray Data job of one
    batch (its start-up) and one of ``--embed-sample`` texts in two shards; the rate past the
    start-up is the difference of the two. Each is the fastest of ``--embed-repeats`` runs, as
    a job's start-up varies by seconds on a shared machine."""
    from raresift.distributed import embed_parquet, read_embedding_shards, write_text_shards
    from raresift.embed import embed_texts, load_model

    texts, source = real_texts(args.embed_sample)
    batch = 64
    load_model()  # the model's load is not part of the rate
    embed_texts(texts[:batch], batch_size=batch, progress=False)  # warm

    def fastest(fn):
        runs = [timed(fn) for _ in range(args.embed_repeats)]
        return min(runs, key=lambda run: run[1])

    local, t_local = fastest(lambda: embed_texts(texts, batch_size=batch, progress=False))
    local_rate = len(texts) / t_local
    rows = [["local (1 process, 1 thread)", len(texts), f"{t_local:.1f}", f"{local_rate:.0f}", ""]]
    torch.set_num_threads(args.workers)
    _, t_threads = fastest(lambda: embed_texts(texts, batch_size=batch, progress=False))
    torch.set_num_threads(1)
    rows.append(
        [
            f"local (1 process, {args.workers} threads)",
            len(texts),
            f"{t_threads:.1f}",
            f"{len(texts) / t_threads:.0f}",
            "",
        ]
    )
    worst = 0.0
    for actors in args.embed_actors:
        # the actors share the CPUs Ray Data's read and write tasks leave (one)
        cpus = min(1.0, (args.workers - 1) / actors)
        runs = []
        for size in (batch, len(texts)):
            name = f"{actors}-{size}"
            write_text_shards(texts[:size], scratch / f"texts-{name}", shard_size=-(-size // 2))

            def job(name=name, actors=actors, cpus=cpus):
                shutil.rmtree(scratch / f"embedded-{name}", ignore_errors=True)  # no skipping
                embed_parquet(
                    scratch / f"texts-{name}",
                    scratch / f"embedded-{name}",
                    batch_size=batch,
                    concurrency=actors,
                    num_cpus=cpus,
                    progress=False,
                )

            _, seconds = fastest(job)
            runs.append((size, seconds))
        (n1, t1), (n2, t2) = runs
        rate = (n2 - n1) / (t2 - t1)
        _, vectors = read_embedding_shards(scratch / f"embedded-{actors}-{n2}")
        worst = max(worst, float(np.abs(vectors - local).max()))
        label = f"Ray Data, {actors} actor(s) of {cpus:g} CPU"
        rows += [
            [f"{label}: one batch (the job's start-up)", n1, f"{t1:.1f}", f"{n1 / t1:.0f}", ""],
            [f"{label}: the sample", n2, f"{t2:.1f}", f"{n2 / t2:.0f}", ""],
            [
                f"{label}: rate past the start-up ({t1 - n1 / rate:.1f} s a job)",
                n2 - n1,
                f"{t2 - t1:.1f}",
                f"{rate:.0f}",
                f"{local_rate / rate:.2f}",
            ],
        ]
    rows.append([f"source: {source}; max abs difference Ray vs local {worst:.1e}", "", "", "", ""])
    return rows


PARTS = ("embed", "index", "knn", "rounds")


def parts_option(text: str) -> set[str]:
    """``--parts embed,index``: a comma-separated subset of :data:`PARTS`."""
    chosen = {p.strip() for p in text.split(",") if p.strip()}
    unknown = sorted(chosen - set(PARTS))
    if unknown or not chosen:
        raise argparse.ArgumentTypeError(
            f"unknown part(s) {unknown or [text]}; choose from {','.join(PARTS)}"
        )
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--parts",
        type=parts_option,
        default=set(PARTS),
        help=f"comma-separated parts to run (default all: {','.join(PARTS)})",
    )
    parser.add_argument("--n", type=int, default=10_000_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2, help="CPUs of the local Ray")
    parser.add_argument("--factory", default="IVF1024,PQ16")
    parser.add_argument("--search", default="nprobe=16")
    parser.add_argument("--shard-size", type=int, default=1_000_000)
    parser.add_argument("--embed-sample", type=int, default=1_000)
    parser.add_argument(
        "--embed-repeats",
        type=int,
        default=2,
        help="runs of each embedding job; the fastest counts",
    )
    parser.add_argument(
        "--serial-build", action="store_true", help="also build with one Ray task at a time"
    )
    parser.add_argument(
        "--embed-actors",
        type=lambda text: [int(a) for a in text.split(",")],
        default=[1, 2],
        help="embedder actor counts to time, comma-separated",
    )
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--budget", type=int, default=100)
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=50, help="seed labels of the rounds")
    parser.add_argument("--repeats", type=int, default=3, help="rounds timed per path (median)")
    parser.add_argument("--scratch", type=Path, required=True)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(1)
    import faiss
    import ray

    faiss.omp_set_num_threads(1)
    args.scratch.mkdir(parents=True, exist_ok=True)
    print(
        f"# Ray path vs single process: n={args.n:,} x {args.dim}, {args.factory} "
        f"({args.search}), shards of {args.shard_size:,}, local Ray of {args.workers} CPUs\n"
        f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"ray {ray.__version__}, faiss {faiss.__version__}, 1 BLAS/OpenMP/torch thread per process"
    )
    ray.init(num_cpus=args.workers, include_dashboard=False, configure_logging=False)
    try:
        run(args)
    finally:
        ray.shutdown()
        if not args.keep:
            shutil.rmtree(args.scratch, ignore_errors=True)


def run(args) -> None:
    from raresift.distributed import RemoteNeighborIndex, ray_map_shards

    scratch = args.scratch
    if "embed" in args.parts:
        table(
            "1. Embedding rate (all-MiniLM-L6-v2, real texts)",
            ["path", "texts", "seconds", "texts / s", "time per text, Ray / local 1 thread"],
            part_embedding(args, scratch),
        )
    if not args.parts & {"index", "knn", "rounds"}:
        return

    data, t_gen = timed(
        lambda: make_synthetic_concepts(
            n=args.n,
            dim=args.dim,
            n_concepts=5,
            prevalence=(1e-4, 1e-3),
            test_size=0.001,
            min_test_positives=5,
            path=scratch / "emb.npy",
            seed=0,
            progress=False,
        )
    )
    pool = Pool(data.train)
    print(f"\n(synthetic {args.n:,} x {args.dim} generated in {t_gen:.0f} s, not timed below)")

    def build(name, map_shards):
        return timed(
            lambda: build_sharded_index(
                pool,
                args.factory,
                scratch / name,
                shard_size=args.shard_size,
                search_params=args.search,
                map_shards=map_shards,
                progress=False,
            )
        )

    folder = scratch / "ray"
    if "index" not in args.parts:  # knn and rounds need it
        build("ray", lambda fn, tasks: ray_map_shards(fn, tasks, progress=False))
    else:
        local_index, t_local = build("local", None)
        serial = []
        if args.serial_build:
            _, t_serial = build(
                "serial", lambda fn, t: ray_map_shards(fn, t, num_cpus=args.workers, progress=False)
            )
            shutil.rmtree(scratch / "serial")
            overhead = f"{t_serial / t_local:.2f}"
            serial = [
                [
                    "Ray tasks, one at a time",
                    f"{t_serial:.1f}",
                    f"{args.n / t_serial:,.0f}",
                    overhead,
                ]
            ]
        _, t_ray = build("ray", lambda fn, tasks: ray_map_shards(fn, tasks, progress=False))
        size = sum(f.stat().st_size for f in folder.iterdir())
        shards = -(-args.n // args.shard_size)
        table(
            f"2. Index build ({args.factory}, {shards} shards, train once + add + merge on disk)",
            ["path", "seconds", "vectors / s", "ratio to local"],
            [
                ["local loop", f"{t_local:.1f}", f"{args.n / t_local:,.0f}", "1.00"],
                *serial,
                [
                    f"Ray tasks ({args.workers} CPUs)",
                    f"{t_ray:.1f}",
                    f"{args.n / t_ray:,.0f}",
                    f"{t_ray / t_local:.2f}",
                ],
                [
                    f"on-disk index: {size / args.n:.1f} bytes / vector ({size / 2**20:.0f} MiB)",
                    "",
                    "",
                    "",
                ],
            ],
        )

    index = NeighborIndex.load(folder / "index.faiss", pool=pool, progress=False)
    remote = RemoteNeighborIndex(folder / "index.faiss", workers=args.workers, pool=pool)
    rng = np.random.default_rng(1)
    q = np.sort(rng.choice(pool.ids, size=args.queries, replace=False))
    if "knn" in args.parts:
        index.neighbors(q[:5], args.k)
        remote.neighbors(q[:5], args.k, pool=pool)  # warm both
        _, t_one_local = timed(
            lambda: [index.neighbors(q[i : i + 1], args.k) for i in range(q.size)]
        )
        _, t_one_ray = timed(
            lambda: [remote.neighbors(q[i : i + 1], args.k, pool=pool) for i in range(q.size)]
        )
        _, t_batch_local = timed(lambda: index.neighbors(q, args.k))
        _, t_batch_ray = timed(lambda: remote.neighbors(q, args.k, pool=pool))
        table(
            f"3. k-NN latency (k={args.k}, {args.search}, on-disk lists)",
            ["path", "1 query, ms", f"{q.size} queries batched, ms / query"],
            [
                [
                    "local index",
                    f"{1e3 * t_one_local / q.size:.2f}",
                    f"{1e3 * t_batch_local / q.size:.2f}",
                ],
                [
                    f"index actors ({args.workers}, batches split over them)",
                    f"{1e3 * t_one_ray / q.size:.2f}",
                    f"{1e3 * t_batch_ray / q.size:.2f}",
                ],
            ],
        )

    if "rounds" in args.parts:
        part_rounds(args, data, pool, index, remote, rng)
    remote.close()  # a no-op when the rounds closed it
    print(f"\npeak RSS of the driver: {rss_gb():.1f} GB")


def part_rounds(args, data, pool, index, remote, rng) -> None:
    """Part 4: SEALS rounds (local index against index actors, with and without searching
    ahead) and -All rounds (local against RayStrategy); each the median of ``--repeats``."""
    from raresift.distributed import RayStrategy, RemoteNeighborIndex

    concept = data.labels(0)
    positives = np.flatnonzero(concept)[: max(1, args.seeds // 10)]
    negatives = rng.choice(
        np.flatnonzero(~concept), size=args.seeds - positives.size, replace=False
    )
    seed_ids = np.concatenate([positives, negatives])
    seed_labels = Labels(pool.ids[seed_ids], concept[seed_ids].astype(int))

    def round_with(strategy, make_candidates):
        """The first round's batch and its SEALS pool's k-NN calls and queries, and the median
        seconds of ``--repeats`` rounds, each from a fresh learner and pool (a pool keeps the
        rows it searched until the next labels, so asking it again would search nothing)."""
        seconds = []
        for repeat in range(args.repeats):
            candidates = make_candidates()
            learner = ActiveLearner(
                pool,
                SklearnModel(LogisticRegression(max_iter=200), n_classes=2),
                strategy,
                candidates=candidates,
                labels=seed_labels,
                seed=0,
            )
            learner.fit()
            before = [getattr(candidates, f, 0) for f in ("knn_calls", "knn_queries")]
            out, elapsed = timed(lambda learner=learner: learner.query(args.budget))
            seconds.append(elapsed)
            if repeat == 0:
                batch = out
                after = [getattr(candidates, f, 0) for f in ("knn_calls", "knn_queries")]
                counts = (after[0] - before[0], after[1] - before[1])
        return batch, float(np.median(seconds)), counts

    actors = f"index actors ({args.workers})"
    defaults = {"local index": SEALSCandidates(index).search_ahead, actors: remote.search_ahead}
    seals = {}
    for name, knn in (("local index", index), (actors, remote)):
        for ahead in sorted(set(defaults.values()) | {0}):
            knn.search_ahead = ahead
            seals[name, ahead] = round_with("mlp", lambda knn=knn: SEALSCandidates(knn, k=args.k))
    del index.search_ahead  # back to the default
    remote.close()
    one = RemoteNeighborIndex(remote.path, workers=1, pool=pool)  # Ray's cost, no parallel search
    defaults["index actor (1)"] = one.search_ahead
    seals["index actor (1)", one.search_ahead] = round_with(
        "mlp", lambda: SEALSCandidates(one, k=args.k)
    )
    one.close()  # the actors hold the CPUs the scoring tasks need
    reference = seals["local index", 0][0].ids
    rows = []
    for (name, ahead), (batch, seconds, (calls, queries)) in seals.items():
        rows.append(
            [
                name,
                f"{ahead} (default)" if ahead == defaults[name] else str(ahead),
                calls,
                queries,
                f"{seconds:.3f}",
                f"{seconds / seals['local index', ahead][1]:.2f}",
                str(bool(np.array_equal(reference, batch.ids))),
            ]
        )
    table(
        f"4a. One SEALS round: mlp, per-item expansion, budget {args.budget}, k={args.k}, "
        f"{args.seeds} seed labels (median of {args.repeats}; model fitted before the clock)",
        [
            "k-NN path",
            "search ahead",
            "k-NN calls",
            "queries",
            "seconds",
            "ratio to local index, same search ahead",
            "same picks as local, none ahead",
        ],
        rows,
    )

    all_local, t_all_local, _ = round_with("entropy", AllCandidates)
    serial = RayStrategy(make_strategy("entropy"), num_cpus=args.workers, progress=False)
    round_with(serial, AllCandidates)  # warm: the pool's rows are located once per pool
    all_serial, t_all_serial, _ = round_with(serial, AllCandidates)
    ray_strategy = RayStrategy(make_strategy("entropy"), progress=False)
    round_with(ray_strategy, AllCandidates)
    all_ray, t_all_ray, _ = round_with(ray_strategy, AllCandidates)
    gb = args.n * args.dim * 4 / 1e9
    rows = []
    for path, (batch, seconds) in (
        ("local, 1 thread", (all_local, t_all_local)),
        ("RayStrategy, one task at a time (overhead)", (all_serial, t_all_serial)),
        (f"RayStrategy, {args.workers} CPUs", (all_ray, t_all_ray)),
    ):
        rows.append(
            [
                path,
                f"{seconds:.2f}",
                f"{args.n / seconds:,.0f}",
                f"{gb / seconds:.2f}",
                f"{seconds / t_all_local:.2f}",
                str(bool(np.array_equal(all_local.ids, batch.ids))),
            ]
        )
    table(
        f"4b. One -All round: entropy of a logistic regression over all {args.n:,} items, "
        f"budget {args.budget} (median of {args.repeats})",
        ["path", "seconds", "candidates / s", "GB / s read", "ratio to local", "same picks"],
        rows,
    )


if __name__ == "__main__":
    main()
