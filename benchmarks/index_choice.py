"""The large-pool index default against its alternatives: build time, recall@k, search time.

On a prefix of the 10^8 x 64 float16 pool (:mod:`scale_pool`), each factory string is trained
(IVF with 8,192 lists or more: two-level k-means, :data:`raresift.index.TWO_LEVEL_LISTS`) on
40 rows a list and filled with every row; then, for each ``nprobe``, recall@10 and recall@100
of ``neighbors`` against exact search (``--queries`` sampled pool items) and the search time
of a round's worth of queries (``--queries`` at k = 101, one batch). ``codes/query`` is the
mean scan per query (nprobe x n / nlist), what the session's calibration caps
(:data:`raresift.session.config.MAX_SCAN`). The add rate, extrapolated linearly, gives the
10^8 add time on this machine.

Run::

    flock /tmp/raresift-heavy.lock python benchmarks/index_choice.py --n 1000000 \\
        --factories "IVF4000,Flat;IVF4096,SQ8;IVF8192_HNSW32,SQ8" --nprobe 16,64,256
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "2")
for _var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import faiss  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from raresift.index import NeighborIndex, _make_faiss_index, _train, prepare_rows  # noqa: E402
from scale_pool import pool_paths  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--factories", default="IVF4000,Flat;IVF4096,SQ8;IVF8192_HNSW32,SQ8")
    parser.add_argument("--nprobe", default="16,64,256")
    parser.add_argument("--queries", type=int, default=150)
    parser.add_argument("--scratch", default="/work/scratch/scale")
    parser.add_argument("--pool-size", type=int, default=100_000_000)
    args = parser.parse_args()
    x = np.load(pool_paths(Path(args.scratch), args.pool_size, 64)[0], mmap_mode="r")[: args.n]
    print(f"$ {' '.join(sys.argv)}")
    print(
        f"# {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC, {os.cpu_count()} cores, "
        f"OMP threads {os.environ['OMP_NUM_THREADS']}; load before: "
        + " ".join(f"{v:.2f}" for v in os.getloadavg())
    )
    print(
        "\n| factory | train s | add s | add s projected to 10^8 | nprobe | codes/query | "
        "recall@10 | recall@100 | search ms/query |\n|" + "---|" * 9
    )
    for factory in args.factories.split(";"):
        nlist = int(factory.split(",")[0].split("_")[0][3:])
        raw = faiss.IndexIDMap2(_make_faiss_index(factory, x.shape[1]))
        start = time.perf_counter()
        _train(raw, x, factory, min(args.n, 40 * nlist), 0)
        train_s = time.perf_counter() - start
        start = time.perf_counter()
        for lo in range(0, args.n, 1 << 16):
            hi = min(args.n, lo + (1 << 16))
            raw.add_with_ids(prepare_rows(x[lo:hi]), np.arange(lo, hi))
        add_s = time.perf_counter() - start
        index = NeighborIndex(factory, progress=False)
        index._index, index._embeddings, index._ids = raw, x, np.arange(args.n)
        rng = np.random.default_rng(1)
        queries = prepare_rows(x[np.sort(rng.choice(args.n, args.queries, replace=False))])
        hnsw = "HNSW" in factory
        for nprobe in [int(p) for p in args.nprobe.split(",")]:
            index.search_params = f"nprobe={nprobe}" + (
                f",quantizer_efSearch={max(16, nprobe)}" if hnsw else ""
            )
            index._apply_search_params()
            start = time.perf_counter()
            index.search(queries, 101)
            search_ms = 1000 * (time.perf_counter() - start) / args.queries
            r10 = index.measure_recall(10, args.queries, seed=1)
            r100 = index.measure_recall(100, args.queries, seed=1)
            print(
                f"| {factory} | {train_s:.1f} | {add_s:.1f} | {add_s * 1e8 / args.n:.0f} | "
                f"{nprobe} | {nprobe * args.n // nlist:,} | {r10:.3f} | {r100:.3f} | "
                f"{search_ms:.2f} |",
                flush=True,
            )
    print("\n# load after: " + " ".join(f"{v:.2f}" for v in os.getloadavg()))


if __name__ == "__main__":
    main()
