"""SEALS vs the global ("-All") baselines on rare binary concepts, side by side in one run.

Synthetic part: a pool of ``--n`` x ``--dim`` skewed, clustered unit-norm embeddings with
``--concepts`` rare concepts; MaxEnt, MLP and ID on all of U and on the SEALS pool (one row per
``--k``); mAP and recall at the end of the budget, candidate pool share, time per round split
into selection, k-NN search and training; the index build, reported once; the cost of the
paper's pairwise ID first round (measured on a slice of rows, extrapolated to U); the latent
structure of the concepts; peak RSS. ``select speedup`` is the measured ratio of selection
seconds, ``pool bound`` the ratio of candidates scored per round (what the speed-up would be if
selection cost were exactly proportional to the candidates).

Real-data part (``--real``): ``fashion`` (each Fashion-MNIST class as a concept cut to 1 % of
the pool, PCA embeddings), ``reuters`` (corn and grain, all-MiniLM-L6-v2 story embeddings) or
``wordnet`` (the lexicographer categories at <= 1 % of 94,127 glosses, all-MiniLM-L6-v2).
The text embeddings are computed once and cached (raresift.embed; WordNet takes ~25 min).

Commands behind docs/results/seals.md (single-threaded BLAS/OpenMP so that timings do not depend
on what else runs):
    export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 PYTHONPATH=src
    python -u benchmarks/seals.py --n 1000000 --dim 256 --concepts 20 --k 100,50 \
        --pairwise-slice 500 --progress                                  # ~30 min
    python -u benchmarks/seals.py --n 10000000 --dim 256 --concepts 5 --test-size 0.01 \
        --strategies entropy,mlp --index IVF4096,SQ8 --memmap /tmp/syn10m.npy \
        --pairwise-slice 100 --progress                                  # ~25 min, 15 GB
    python -u benchmarks/seals.py --real wordnet --real-only --real-budget 2000 --k 100,50
    python -u benchmarks/seals.py --real fashion --real-only --real-budget 1000 --k 100,50
    python -u benchmarks/seals.py --real reuters --real-only --real-budget 500 \
        --real-batch 50 --seeds 3 --k 20,10
Quick run:
    PYTHONPATH=src python benchmarks/seals.py --n 50000 --dim 64 --concepts 5 --budget 600
"""

from __future__ import annotations

import argparse
import logging
import resource
import sys
import time
from collections import defaultdict

import numpy as np

from raresift.index import NeighborIndex, build_sharded_index, ivf_nlist, normalize_rows
from raresift.simulate.concepts import Method, class_tasks, label_tasks, summarize, synthetic_tasks
from raresift.simulate.runner import run_concept_study
from raresift.simulate.synthetic import make_synthetic_concepts
from raresift.structure import concept_structure


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def table(rows: list[dict], columns: list[tuple[str, str, str]]) -> str:
    """Plain-text table: columns are (key, header, format)."""
    cells = [[h for _, h, _ in columns]]
    for r in rows:
        cells.append(
            [format(r[k], f) if isinstance(r[k], float) else str(r[k]) for k, _, f in columns]
        )
    widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def run_settings(args, budget: int, batch_size: int) -> dict:
    """The settings of :func:`~raresift.simulate.runner.run_concept_study` shared by every part."""
    return dict(
        budget=budget,
        batch_size=batch_size,
        n_seed_positives=args.seed_pos,
        n_seed_negatives=args.seed_neg,
        C=args.C,
        class_weight=args.class_weight,
    )


def methods_for(args) -> list[Method]:
    out = []
    for strategy in args.strategies.split(","):
        out.append(Method(strategy, "all"))
        out += [Method(strategy, "seals", k=k, expand=args.expand) for k in args.ks]
    return out


def _ratio(x: float) -> str:
    return f"{x:.1f}x" if x < 10 else f"{x:.0f}x"


def result_table(records: list[dict]) -> str:
    """Final-round figures per method, each SEALS row beside its -All baseline.

    ``pool bound`` is the -All rounds' mean number of candidates over this method's: the
    speed-up selection would have if its cost were exactly proportional to the candidates
    scored. ``select speedup`` is the measured ratio of selection seconds.
    """
    final = summarize(records, final_only=True)
    by_label = {r["method"]: r for r in final}
    scored = defaultdict(list)
    for rec in records:
        if rec["round"] > 0:  # rounds that selected: candidates eligible at selection time
            scored[rec["method"]].append(rec["n_candidates"])
    for r in final:
        rounds = max(1, r["rounds"])
        r["recall_pct"] = 100 * r["recall"]
        r["pool_pct"] = 100 * r["pool_fraction"]
        r["sel_round"] = r["total_selection"] / rounds
        r["knn_round"] = r["total_knn"] / rounds
        r["train_round"] = r["total_training"] / rounds
        r["whole_round"] = r["sel_round"] + r["knn_round"] + r["train_round"]
        base = by_label.get(r["method"].split("-")[0] + "-All")
        r["round_speedup"] = (
            "-"
            if base is None or base is r
            else _ratio(
                (base["total_selection"] + base["total_knn"] + base["total_training"])
                / max(r["total_selection"] + r["total_knn"] + r["total_training"], 1e-9)
            )
        )
        r["speedup"] = (
            "-"
            if base is None or base is r
            else _ratio(base["total_selection"] / max(r["total_selection"], 1e-9))
        )
        r["bound"] = (
            "-"
            if base is None or base is r
            else _ratio(np.mean(scored[base["method"]]) / np.mean(scored[r["method"]]))
        )
        r["d_map"] = "-" if base is None or base is r else f"{r['map'] - base['map']:+.3f}"
        r["d_recall"] = (
            "-" if base is None or base is r else f"{100 * (r['recall'] - base['recall']):+.1f}"
        )
    cols = [
        ("method", "method", ""),
        ("n_labeled", "labels", ""),
        ("map", "mAP", ".3f"),
        ("d_map", "dmAP", ""),
        ("recall_pct", "recall%", ".1f"),
        ("d_recall", "drecall", ""),
        ("pool_pct", "pool%U", ".2f"),
        ("sel_round", "select s/rd", ".4f"),
        ("knn_round", "kNN s/rd", ".4f"),
        ("train_round", "train s/rd", ".4f"),
        ("whole_round", "round s", ".4f"),
        ("round_speedup", "round speedup", ""),
        ("speedup", "select speedup", ""),
        ("bound", "pool bound", ""),
        ("runs", "runs", ""),
    ]
    return table(final, cols)


def pairwise_first_round_seconds(x: np.ndarray, slice_rows: int, block: int = 8192) -> float:
    """Time of the paper's ID-All first round (sum of cosine similarities of every item to all of
    U, blockwise), measured on ``slice_rows`` rows and extrapolated linearly to all rows."""
    n = x.shape[0]
    rows = normalize_rows(x[:slice_rows])
    start = time.perf_counter()
    total = np.zeros(rows.shape[0], dtype=np.float64)
    for lo in range(0, n, block):
        total += (rows @ normalize_rows(x[lo : lo + block]).T).sum(axis=1)
    return (time.perf_counter() - start) * n / rows.shape[0]


def synthetic(args) -> None:
    start = time.perf_counter()
    data = make_synthetic_concepts(
        n=args.n,
        dim=args.dim,
        n_concepts=args.concepts,
        prevalence=(args.prevalence_min, args.prevalence_max),
        path=args.memmap,
        dtype=args.dtype,
        seed=args.data_seed,
        min_train_positives=args.min_positives,
        test_size=args.test_size,
        progress=args.progress,
    )
    gen_s = time.perf_counter() - start
    factory = args.index.replace("auto", str(ivf_nlist(args.n)))
    if args.sharded:
        index = build_sharded_index(
            data.train,
            factory,
            args.sharded,
            shard_size=args.shard_size,
            search_params=args.search_params,
            progress=args.progress,
        )
        index.recall_target, index.calibration_k = args.recall_target, args.k
        if args.recall_target is not None:
            index.calibrate(args.recall_target)
    else:
        index = NeighborIndex(
            factory,
            search_params=args.search_params,
            recall_target=args.recall_target,
            calibration_k=args.k,
            progress=args.progress,
        ).fit(data.train)
    if args.recall_target is None:
        index.measure_recall(k=args.k)
    tasks = synthetic_tasks(data, index=index)  # one pool for every task, attached to the index
    graph_note = ""
    if args.graph:
        graph = index.build_graph(max(args.ks), args.graph)
        graph_note = f"; {graph.k}-NN graph built in {graph.build_seconds:.1f} s (int32 memmap)"
    counts = data.train_counts
    print(
        f"# synthetic pool {args.n:,} x {args.dim}: {args.concepts} concepts, "
        f"{100 * counts.min() / args.n:.4f}-{100 * counts.max() / args.n:.4f} % prevalence "
        f"({counts.min()}-{counts.max()} positives), {(data.fragments > 1).sum()} fragmented; "
        f"test {len(data.test):,} rows; generated in {gen_s:.1f} s"
    )
    print(
        f"# index {factory!r} ({index.search_params or 'default search params'}) built once in "
        f"{index.build_seconds:.1f} s; neighbours' recall@{index.calibration_k} against exact "
        f"search {index.recall_:.3f}"
        + (
            f" (nprobe calibrated to >= {args.recall_target} in {index.calibration_seconds:.1f} s)"
            if args.recall_target is not None
            else ""
        )
        + graph_note
    )
    print(
        f"# k = {args.ks}, expand = {args.expand}; seed "
        f"{args.seed_pos}+{args.seed_neg}, batch {args.batch}, budget {args.budget}, "
        f"LR C={args.C} class_weight={args.class_weight}; seeds {args.seeds}"
    )
    settings = run_settings(args, args.budget, args.batch)
    start = time.perf_counter()
    records = run_concept_study(
        tasks, methods_for(args), seeds=range(args.seeds), progress=args.progress, **settings
    )
    print(f"# runs took {time.perf_counter() - start:.0f} s\n")
    print(result_table(records))
    slice_rows = min(args.n, args.pairwise_slice)
    est = pairwise_first_round_seconds(data.train, slice_rows)
    print(
        f"\nID-All with the paper's pairwise similarity sums (the first round, quadratic in |U|): "
        f"{est:.0f} s, extrapolated from {slice_rows} rows x {args.n:,}. raresift computes the "
        "same means as z . (sum of unit vectors) / |P|, linear in |U| (the ID-All row above)."
    )
    structures = [
        concept_structure(index, np.flatnonzero(data.labels(c)), k=args.k, pool=tasks[0].pool)
        for c in range(data.n_concepts)
    ]
    share = np.array([s.largest_share for s in structures])
    path = np.array([s.avg_shortest_path for s in structures])
    print(
        f"latent structure (k = {args.k}, {structures[0].edges} edges): largest component holds "
        f"{100 * share.mean():.1f} % of a concept's positives on average (min "
        f"{100 * share.min():.1f} %); average shortest path in it {np.nanmean(path):.2f} hops"
    )
    print(f"peak RSS {peak_rss_gb():.2f} GB")


def fashion_tasks(args) -> tuple[list, str]:
    from sklearn.decomposition import PCA

    from raresift.datasets import load_fashion_mnist

    train, test = load_fashion_mnist("train"), load_fashion_mnist("test")
    pca = PCA(args.pca, random_state=0).fit(train.X[::4].astype(np.float32) / 255)
    tx = normalize_rows(pca.transform(train.X.astype(np.float32) / 255))
    vx = normalize_rows(pca.transform(test.X.astype(np.float32) / 255))
    tasks = class_tasks(tx, train.y, vx, test.y, share=args.real_share, index_factory="Flat")
    return tasks, (
        f"Fashion-MNIST, PCA-{args.pca} embeddings, each class a concept at "
        f"{100 * args.real_share:g} % of the pool ({len(tasks[0].pool):,} items, "
        f"{int(tasks[0].y.sum())} positives)"
    )


def reuters_tasks(args) -> tuple[list, str]:
    from raresift.datasets import load_reuters
    from raresift.embed import embed_dataset

    tasks = []
    for topic in ("corn", "grain"):
        train, test = load_reuters(topic, "train"), load_reuters(topic, "test")
        x, tx = embed_dataset(train, args.progress), embed_dataset(test, args.progress)
        tasks += label_tasks(x, train.y, tx, test.y, [1], [f"reuters-{topic}"])
    counts = ", ".join(f"{t.name} {int(t.y.sum())}" for t in tasks)
    return tasks, (
        f"Reuters-21578 stories, all-MiniLM-L6-v2 embeddings ({len(tasks[0].pool):,} items; "
        f"positives {counts})"
    )


def wordnet_tasks(args) -> tuple[list, str]:
    from raresift.datasets import load_wordnet
    from raresift.embed import embed_dataset

    data = load_wordnet()
    x = embed_dataset(data, args.progress)
    rng = np.random.default_rng(args.data_seed)
    test = np.zeros(len(data.y), dtype=bool)
    for c in np.unique(data.y):  # stratified: a fifth of every category is held out
        rows = np.flatnonzero(data.y == c)
        test[rng.choice(rows, max(1, round(0.2 * rows.size)), replace=False)] = True
    counts = np.bincount(data.y[~test], minlength=data.y.max() + 1)
    rare = np.flatnonzero(counts <= args.real_max_share * (~test).sum())
    names = [data.class_names[c] for c in rare]
    tasks = label_tasks(
        np.asarray(x[~test]),
        data.y[~test],
        np.asarray(x[test]),
        data.y[test],
        rare,
        names,
        index_factory=args.real_index,
        search_params=args.real_search_params,
    )
    shares = counts[rare] / (~test).sum()
    return tasks, (
        f"WordNet 3.0 glosses, all-MiniLM-L6-v2 embeddings ({len(tasks[0].pool):,} items; the "
        f"{rare.size} lexicographer categories at <= {100 * args.real_max_share:g} %, "
        f"{100 * shares.min():.3f}-{100 * shares.max():.2f} %)"
    )


def real(args, name: str) -> None:
    builders = {"fashion": fashion_tasks, "reuters": reuters_tasks, "wordnet": wordnet_tasks}
    tasks, about = builders[name](args)
    budget = args.real_budget
    index = tasks[0].index
    print(
        f"\n# {about}; index {index.factory!r} ({index.search_params or 'default search'}); "
        f"seed {args.seed_pos}+{args.seed_neg}, batch {args.real_batch}, budget {budget}\n"
    )
    settings = run_settings(args, budget, args.real_batch)
    records = run_concept_study(
        tasks, methods_for(args), seeds=range(args.seeds), progress=args.progress, **settings
    )
    print(result_table(records))
    structures = [
        concept_structure(t.index, t.pool.ids[t.y == 1], k=args.k, pool=t.pool) for t in tasks
    ]
    print(
        "latent structure per concept (largest component %, avg path): "
        + ", ".join(
            f"{t.name}: {100 * s.largest_share:.0f}/{s.avg_shortest_path:.1f}"
            for t, s in zip(tasks, structures, strict=True)
        )
    )
    print(f"peak RSS {peak_rss_gb():.2f} GB")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--n", type=int, default=1_000_000)
    p.add_argument("--dim", type=int, default=256)
    p.add_argument("--concepts", type=int, default=20)
    p.add_argument("--prevalence-min", type=float, default=5e-5)
    p.add_argument("--prevalence-max", type=float, default=1e-3)
    p.add_argument("--min-positives", type=int, default=20, help="per concept in the pool")
    p.add_argument("--data-seed", type=int, default=0)
    p.add_argument("--test-size", type=float, default=0.1, help="test rows as a share of --n")
    p.add_argument("--memmap", default=None, help="write the train embeddings to this .npy")
    p.add_argument("--index", default="IVF1024,Flat", help="'auto' in it: 4 sqrt(n) lists")
    p.add_argument("--search-params", default="nprobe=32")
    p.add_argument(
        "--recall-target",
        type=float,
        default=None,
        help="calibrate nprobe at build time to this recall@k against exact search",
    )
    p.add_argument("--graph", default=None, help="precompute a k-NN graph into this .npy")
    p.add_argument("--dtype", default="float32", choices=["float32", "float16"])
    p.add_argument("--sharded", default=None, help="build an on-disk sharded index in this folder")
    p.add_argument("--shard-size", type=int, default=1_000_000)
    p.add_argument("--strategies", default="entropy,mlp,information-density")
    p.add_argument("--k", default="100", help="neighbours per labeled item; a list runs each")
    p.add_argument("--expand", default="item", choices=["item", "batch"])
    p.add_argument("--budget", type=int, default=2000)
    p.add_argument("--batch", type=int, default=100)
    p.add_argument("--seed-pos", type=int, default=5)
    p.add_argument("--seed-neg", type=int, default=95)
    p.add_argument("--C", type=float, default=1.0)
    p.add_argument("--class-weight", default="balanced", help="'none' for unweighted")
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--pairwise-slice", type=int, default=2000)
    p.add_argument("--real", choices=["none", "fashion", "reuters", "wordnet"], default="none")
    p.add_argument("--real-only", action="store_true")
    p.add_argument("--real-share", type=float, default=0.01)
    p.add_argument("--real-budget", type=int, default=1000)
    p.add_argument("--real-batch", type=int, default=100)
    p.add_argument("--real-max-share", type=float, default=0.01, help="WordNet categories")
    p.add_argument("--real-index", default="IVF256,Flat", help="WordNet index factory")
    p.add_argument("--real-search-params", default="nprobe=16")
    p.add_argument("--pca", type=int, default=64)
    p.add_argument("--progress", action="store_true")
    args = p.parse_args(argv)
    args.class_weight = None if args.class_weight == "none" else args.class_weight
    args.ks = [int(k) for k in args.k.split(",")]
    args.k = args.ks[0]  # the k of the latent-structure analysis
    logging.basicConfig(level=logging.WARNING)
    print("$ " + " ".join(sys.argv))
    if not args.real_only:
        synthetic(args)
    if args.real != "none":
        real(args, args.real)
    return 0


if __name__ == "__main__":
    sys.exit(main())
