"""-All at the bandwidth: scoring the whole pool beside the byte bound measured in the same run.

For each ``--sizes`` n and each of ``--dtypes``, a ``n x --dim`` memmap (random rows; float16
the case the issue asks about, float32 beside it: the same scoring where no widening is needed)
and ``--labeled`` labeled items (labels from a planted direction); the model is the session's
(logistic regression), the strategy ``mlp``. Printed side by side, each the best of ``--repeats``:

- ``bound``: the byte bound, one numpy pass over the same memmap's bytes (a chunked integer
  sum of its 8-byte words: reads every byte, computes next to nothing);
- ``astype``: numpy's own float16 -> float32 cast of every row (a chunked ``astype`` into a
  reused buffer), for reference (float16 only);
- ``z``: the pool's decisions ``X @ w`` by :class:`LinearScorer` (torch-free), and ``z torch``
  by torch's half-to-float copy (the widening before) + the same row-by-row products; ``same
  z``: bit for bit equal;
- ``scoring``: the strategy's selection over every unlabeled item, streamed (a boolean mask,
  :func:`raresift.strategies.base.stream_top_scores`) and by scoring every candidate id (the
  path before: candidate ids, (n, 2) probabilities, top-B over them);
- ``round``: the whole -All round as :class:`ActiveLearner` runs it (candidate pool start,
  fit, selection, checks), streamed and scored.

``x bound`` is each time over the bound. Both ways must pick the same ids (checked).

Run (heavy at 10^7: a 1.3 GB scratch file, deleted afterwards)::

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONPATH=src \\
        flock /tmp/raresift-heavy.lock python benchmarks/all_bandwidth.py \\
        --sizes 1000000 10000000 --scratch /work/scratch/fresh/bw
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
import warnings
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

CHUNK = 1 << 16  # rows per step of the reference passes


def best_of(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), out


def byte_pass(x: np.ndarray) -> int:
    """Every byte of ``x`` read once: a wrapping integer sum of its 8-byte words per chunk."""
    total = 0
    for lo in range(0, x.shape[0], CHUNK):
        total += int(np.add.reduce(x[lo : lo + CHUNK].reshape(-1).view(np.uint64)))
    return total


def astype_pass(x: np.ndarray) -> None:
    buffer = np.empty((CHUNK, x.shape[1]), dtype=np.float32)
    for lo in range(0, x.shape[0], CHUNK):
        block = x[lo : lo + CHUNK]
        np.copyto(buffer[: block.shape[0]], block)


def torch_decisions(x: np.ndarray, w: np.ndarray) -> np.ndarray | None:
    """The previous widening, torch's half-to-float copy into a 1024-row buffer, then the
    products :class:`LinearScorer` takes (``np.einsum``)."""
    try:
        import torch
    except ImportError:
        return None
    step = 1024
    buffer = np.empty((step, x.shape[1]), dtype=np.float32)
    target = torch.from_numpy(buffer)
    z = np.empty(x.shape[0], dtype=np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a read-only memmap handed to torch, only read
        for lo in range(0, x.shape[0], step):
            rows = x[lo : lo + step]
            target[: rows.shape[0]].copy_(torch.from_numpy(np.ascontiguousarray(rows)))
            np.einsum("ij,j->i", buffer[: rows.shape[0]], w, out=z[lo : lo + rows.shape[0]])
    return z


def make_pool(path: Path, n: int, dim: int, dtype: str, seed: int = 0) -> np.ndarray:
    if not path.exists():
        rng = np.random.default_rng(seed)
        out = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=(n, dim))
        for lo in range(0, n, 1 << 20):
            out[lo : lo + (1 << 20)] = rng.standard_normal((min(1 << 20, n - lo), dim))
        out.flush()
        del out
    return np.load(path, mmap_mode="r")


def measure(n: int, dtype: str, args) -> dict:
    from sklearn.linear_model import LogisticRegression

    from raresift.candidates import AllCandidates
    from raresift.loop import ActiveLearner
    from raresift.models import SklearnModel
    from raresift.pool import Labels, Pool
    from raresift.strategies import make_strategy
    from raresift.strategies.base import SelectionState

    class ScoredAllCandidates(AllCandidates):
        """-All as before: no mask offered, so every candidate id is scored."""

        def eligible_mask(self):
            return None

    x = make_pool(Path(args.scratch) / f"pool-{n}x{args.dim}-{dtype}.npy", n, args.dim, dtype)
    pool = Pool(x, values_checked=True)
    rng = np.random.default_rng(1)
    labeled = np.sort(rng.choice(n, args.labeled, replace=False))
    rows = np.asarray(x[labeled], dtype=np.float32)
    y = (rows[:, 0] + 0.5 * rows[:, 1] > 1.6).astype(np.int64)
    labels = Labels(labeled, y)
    model = SklearnModel(LogisticRegression(max_iter=1000), n_classes=2).fit(rows, y)
    scorer = model.linear_scorer()
    strategy = make_strategy("mlp")
    out = {"n": n, "GB": x.nbytes / 1e9}
    out["bound"], _ = best_of(lambda: byte_pass(x), args.repeats)
    half = x.dtype == np.float16
    out["astype"], _ = best_of(lambda: astype_pass(x), args.repeats) if half else (None, None)
    out["z"], z = best_of(lambda: scorer.decide(x), args.repeats)
    out["z torch"], z_torch = (
        best_of(lambda: torch_decisions(x, scorer.w), args.repeats) if half else (None, None)
    )
    out["same decisions"] = z_torch is None or bool(np.array_equal(z, z_torch))
    picks = {}
    for name, kind in (("streamed", AllCandidates), ("scored", ScoredAllCandidates)):
        cands = kind()
        cands.start(pool, labels)

        def scoring(cands=cands):
            state = SelectionState(pool, labels, model, rng=np.random.default_rng(0))
            return strategy.select(state, cands.view(), args.budget)

        out[f"scoring {name}"], batch = best_of(scoring, args.repeats)
        picks[name] = batch.ids

        def whole_round(kind=kind):
            learner = ActiveLearner(
                pool,
                SklearnModel(LogisticRegression(max_iter=1000), n_classes=2),
                strategy,
                candidates=kind(),
                labels=labels,
            )
            return learner.query(args.budget)

        out[f"round {name}"], batch = best_of(whole_round, args.repeats)
        picks[f"round {name}"] = batch.ids
    out["same picks"] = bool(
        np.array_equal(picks["streamed"], picks["scored"])
        and np.array_equal(picks["round streamed"], picks["round scored"])
    )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--labeled", type=int, default=1000)
    parser.add_argument("--budget", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dtypes", nargs="+", default=["float16", "float32"])
    parser.add_argument("--scratch", default="/work/scratch/fresh/bw")
    parser.add_argument("--keep", action="store_true", help="keep the generated pools")
    args = parser.parse_args()
    Path(args.scratch).mkdir(parents=True, exist_ok=True)
    print(f"# load before: {os.getloadavg()}; threads pinned to {os.environ['OMP_NUM_THREADS']}")
    print(
        f"# {args.dim}-d memmaps, {args.labeled} labeled, budget {args.budget}, mlp over "
        f"logistic regression; seconds, best of {args.repeats}; (x) = over the byte bound\n"
    )
    cols = ["z", "z torch", "scoring streamed", "scoring scored"]
    cols += ["round streamed", "round scored"]
    header = ["n", "dtype", "GB", "bound s (GB/s)", "astype"] + cols + ["same picks", "same z"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for n in args.sizes:
        for dtype in args.dtypes:
            r = measure(n, dtype, args)
            bound = r["bound"]
            cells = [f"{n:,}", dtype, f"{r['GB']:.2f}", f"{bound:.4f} ({r['GB'] / bound:.1f})"]
            cells += [
                "-" if r[c] is None else f"{r[c]:.4f} ({r[c] / bound:.2f}x)"
                for c in ["astype"] + cols
            ]
            cells += [str(r["same picks"]), str(r["same decisions"])]
            print("| " + " | ".join(cells) + " |", flush=True)
    print(f"\n# load after: {os.getloadavg()}")
    if not args.keep:
        shutil.rmtree(args.scratch)


if __name__ == "__main__":
    main()
