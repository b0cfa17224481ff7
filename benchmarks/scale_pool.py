"""The 10^8 x 64 float16 pool behind the scale benchmarks, generated in chunks (never all in RAM).

Writes ``pool-<n>x<dim>-f16.npy`` (the embeddings, float16, written chunk by chunk by
:func:`raresift.simulate.synthetic.make_synthetic_concepts`) and ``pool-<n>x<dim>-concept.npy``
(each row's concept, -1 for background) under ``--scratch``. The rows come in a random order,
so the first ``m`` rows are a uniform sample of the pool: the size table reads pools of 10^5 ..
10^8 items as prefixes of one file. Regenerating with the same arguments gives the same bytes.

Run (heavy: 12.8 GB of disk, ~1.2 GB of RAM, a few minutes of one core)::

    flock /tmp/raresift-heavy.lock python benchmarks/scale_pool.py \\
        --n 100000000 --dim 64 --scratch /work/scratch/scale
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

N_CONCEPTS = 20
PREVALENCE = (1e-4, 1e-3)


def pool_paths(scratch: Path, n: int, dim: int) -> tuple[Path, Path]:
    """The embeddings and the concept-of-row files of the pool of ``n`` x ``dim``."""
    return scratch / f"pool-{n}x{dim}-f16.npy", scratch / f"pool-{n}x{dim}-concept.npy"


def make_pool(scratch: Path, n: int, dim: int, progress: bool = True) -> tuple[Path, Path]:
    """Generate the pool's files (kept if both exist already) and return their paths."""
    from raresift.simulate.synthetic import make_synthetic_concepts

    emb, labels = pool_paths(scratch, n, dim)
    if emb.exists() and labels.exists():
        return emb, labels
    scratch.mkdir(parents=True, exist_ok=True)
    data = make_synthetic_concepts(
        n=n,
        dim=dim,
        n_concepts=N_CONCEPTS,
        prevalence=PREVALENCE,
        test_size=0.0001,
        min_test_positives=1,
        path=emb,
        dtype="float16",
        chunk_size=1 << 18,
        seed=0,
        progress=progress,
    )
    np.save(labels.with_suffix(".part.npy"), data.train_concept)
    os.replace(labels.with_suffix(".part.npy"), labels)
    return emb, labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--scratch", default="/work/scratch/scale")
    args = parser.parse_args()
    start = time.perf_counter()
    emb, labels = make_pool(Path(args.scratch), args.n, args.dim)
    concept = np.load(labels, mmap_mode="r")
    counts = np.bincount(np.asarray(concept[concept >= 0]), minlength=N_CONCEPTS)
    print(
        f"{emb} ({emb.stat().st_size / 1e9:.1f} GB) and {labels} in "
        f"{time.perf_counter() - start:.0f} s; concept sizes {sorted(counts.tolist())}"
    )


if __name__ == "__main__":
    main()
