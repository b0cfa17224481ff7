"""The whole round against the pool size, SEALS beside -All, in one run: 10^5 .. 10^8 items.

Pools are prefixes of the 10^8 x 64 float16 pool of :mod:`scale_pool` (its rows come in random
order, so a prefix is a uniform sample); the held-out test split (mAP) is 200,000 rows of the
same mixture, regenerated from the generator's test stream. At each size both methods run the
same seeds of the same concepts (5 positives + 95 negatives, batches of ``--batch`` up to
``--budget`` labels, logistic regression) through :func:`raresift.simulate.runner.
run_concept_study`; a round is warm (one process, the learner and its candidate pool kept) and
its time is the whole round: the model's fit, the k-NN searches (SEALS) and the selection.
SEALS searches the index a session of that size builds by default (``raresift init``: the
factory string, search parameters and calibration of :meth:`raresift.session.config.
SessionConfig.index_plan`), built once per size and cached under ``--scratch``; at 10^8 it is
the 10^8 session's own index (``benchmarks/scale_session.py init``).

Run (heavy: an hour or more on 2 cores, 20 GB of page cache at 10^8)::

    flock /tmp/raresift-heavy.lock python benchmarks/scale_table.py \\
        --sizes 100000,200000,1000000,2000000,10000000,100000000 --scratch /work/scratch/scale
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from raresift.index import NeighborIndex, build_sharded_index  # noqa: E402
from raresift.simulate.concepts import Method, summarize, synthetic_tasks  # noqa: E402
from raresift.simulate.runner import run_concept_study  # noqa: E402
from raresift.simulate.synthetic import SyntheticConcepts, make_synthetic_concepts  # noqa: E402
from scale_pool import N_CONCEPTS, PREVALENCE, pool_paths  # noqa: E402

TEST_ROWS = 200_000


def test_split() -> tuple[np.ndarray, np.ndarray]:
    """Held-out rows of the pool's mixture: the generator's test stream depends on the number
    of test rows only, not on the pool size, so a small call regenerates it."""
    data = make_synthetic_concepts(
        n=TEST_ROWS,
        dim=64,
        n_concepts=N_CONCEPTS,
        prevalence=PREVALENCE,
        test_size=1.0,
        min_test_positives=1,
        seed=0,
        progress=False,
    )
    return data.test, data.test_concept


def session_index(x: np.ndarray, n: int, scratch: Path) -> tuple[NeighborIndex, str]:
    """The index ``raresift init`` builds for ``n`` items (cached); at the 10^8 session's size
    its own index."""
    from raresift.session.config import RECALL_TARGET, SessionConfig

    plan = SessionConfig().index_plan(n, x.shape[1])
    session = scratch / f"project-{n}" / "index" / "index.faiss"
    if plan.on_disk and session.exists():
        return NeighborIndex.load(session, progress=False), "the 10^8 session's index"
    cache = scratch / "table-indexes" / f"{n}"
    path = cache / "index.faiss"
    if path.exists():
        return NeighborIndex.load(path, progress=False), "cached"
    cache.mkdir(parents=True, exist_ok=True)
    train_size = min(n, max(100_000, 40 * plan.nlist))
    if plan.on_disk:
        index = build_sharded_index(
            x, plan.factory, cache, shard_size=10_000_000, train_size=train_size, progress=False
        )
    else:
        index = NeighborIndex(
            plan.factory, plan.search_params, train_size=train_size, progress=False
        ).fit(x)
    if plan.calibrate:
        index.calibrate(RECALL_TARGET, max_scan=plan.max_scan)
    index.save(path)
    return index, f"built in {index.build_seconds:.0f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="100000,200000,1000000,2000000,10000000,100000000")
    parser.add_argument("--scratch", default="/work/scratch/scale")
    parser.add_argument("--pool-size", type=int, default=100_000_000)
    parser.add_argument("--concepts", default="15,3,7", help="concept numbers (median first)")
    parser.add_argument("--strategy", default="mlp")
    parser.add_argument("--budget", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--k", type=int, default=100)
    args = parser.parse_args()
    scratch = Path(args.scratch)
    emb, labels = pool_paths(scratch, args.pool_size, 64)
    full = np.load(emb, mmap_mode="r")
    concept_of = np.load(labels, mmap_mode="r")
    test_x, test_c = test_split()
    concepts = [int(c) for c in args.concepts.split(",")]
    methods = [Method(args.strategy, "all"), Method(args.strategy, "seals", k=args.k)]
    print(f"$ {' '.join(sys.argv)}")
    print(
        f"# {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC, {os.cpu_count()} cores, "
        f"OMP/BLAS threads {os.environ['OMP_NUM_THREADS']}; load before: "
        f"{os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} {os.getloadavg()[2]:.2f}"
    )
    print(
        f"# concepts {concepts} of the pool {emb}; seed 5+95, batch {args.batch}, budget "
        f"{args.budget}, strategy {args.strategy}, SEALS k={args.k}; test {TEST_ROWS:,} rows"
    )
    rows = []
    sizes = [int(s) for s in args.sizes.split(",")]
    for run, n in enumerate([sizes[0]] + sizes):  # the first size twice: a warm-up first
        x = full[:n]
        index, how = session_index(x, n, scratch)
        data = SyntheticConcepts(
            x,
            np.asarray(concept_of[:n]),
            test_x,
            test_c,
            np.zeros(N_CONCEPTS),
            np.ones(N_CONCEPTS),
            0,
        )
        tasks = synthetic_tasks(data, concepts=concepts, index=index)
        start = time.perf_counter()
        records = run_concept_study(
            tasks,
            methods,
            budget=args.budget,
            batch_size=args.batch,
            progress=False,
        )
        final = {r["method"]: r for r in summarize(records, final_only=True)}
        every, seals = final[methods[0].label], final[methods[1].label]

        def per_round(r, key=None):
            rounds = max(1, r["rounds"])
            if key is not None:
                return r[key] / rounds
            return (r["total_selection"] + r["total_knn"] + r["total_training"]) / rounds

        row = {
            "n": n,
            "all": per_round(every),
            "seals": per_round(seals),
            "knn": per_round(seals, "total_knn"),
            "fit_all": per_round(every, "total_training"),
            "fit_seals": per_round(seals, "total_training"),
            "map_all": every["map"],
            "map_seals": seals["map"],
            "recall_all": every["recall"],
            "recall_seals": seals["recall"],
            "pool": seals["pool_fraction"],
        }
        row["ratio"] = row["all"] / row["seals"]
        if run == 0:
            continue
        rows.append(row)
        print(
            f"# {n:,}: index {index.factory!r} ({index.search_params}; {how}); "
            f"runs {time.perf_counter() - start:.0f} s",
            flush=True,
        )
    header = (
        "| items | -All round s | SEALS round s | ratio | SEALS k-NN s | fit s (All / SEALS) "
        "| mAP All / SEALS | recall % All / SEALS | SEALS pool % |"
    )
    print("\n" + header + "\n|" + "---|" * 9)
    for r in rows:
        print(
            f"| {r['n']:,} | {r['all']:.4f} | {r['seals']:.4f} | {r['ratio']:.1f}x | "
            f"{r['knn']:.4f} | {r['fit_all']:.4f} / {r['fit_seals']:.4f} | "
            f"{r['map_all']:.3f} / {r['map_seals']:.3f} | "
            f"{100 * r['recall_all']:.1f} / {100 * r['recall_seals']:.1f} | "
            f"{100 * r['pool']:.3f} |"
        )
    print(f"\n# load after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
