"""A labeling session over a 10^7 x 64 float16 memmap: ``init`` with its index, then SEALS rounds.

Generates a synthetic pool with rare concepts (:func:`raresift.simulate.synthetic.
make_synthetic_concepts`, written in chunks and converted to float16), seeds the session with 5
positives and 95 negatives of one rare concept, and then runs ``--rounds`` rounds the way a
user does: each ``next`` is a fresh process (``Session.open`` + ``next``, as ``raresift next``
runs it), the answers come from the true labels and are recorded with ``answer_many``.
Prints the time split of ``init`` and of every round, and each process's peak resident memory.

Run (heavy: about 3 GB of scratch files, deleted afterwards unless --keep)::

    flock /tmp/raresift-heavy.lock python benchmarks/session_scale.py \\
        --n 10000000 --dim 64 --rounds 4 --budget 100 --scratch /work/scratch/wt14
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

PEAK = """
def peak_mib():
    with open("/proc/self/status") as fh:  # this process's own high-water mark (VmHWM)
        return next(int(line.split()[1]) for line in fh if line.startswith("VmHWM")) / 1024
"""
INIT = (
    PEAK
    + """
import json, sys, time
from raresift.session import Session
t0 = time.perf_counter()
s = Session.create(sys.argv[1], embeddings=sys.argv[2], concept="rare", seed_labels=sys.argv[3],
                   strategy=sys.argv[4], progress=False)
index = s.index()
print(json.dumps({"init": time.perf_counter() - t0, "factory": index.factory,
                  "search": index.search_params, "build": index.build_seconds,
                  "defaults": s.describe_defaults(), "peak_mib": peak_mib()}))
"""
)
ROUND = (
    PEAK
    + """
import json, sys, time
t0 = time.perf_counter()
from raresift.session import Session
import raresift.candidates, raresift.loop, raresift.models.sklearn_model, raresift.strategies.binary
import raresift.submodular.objectives, sklearn.linear_model  # what next imports, timed apart
t1 = time.perf_counter()
s = Session.open(sys.argv[1])
t2 = time.perf_counter()
batch = s.next(budget=int(sys.argv[2]), strategy=sys.argv[3], candidates="seals", progress=False)
t3 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "open": t2 - t1, "next": t3 - t2,
                  "split": s.round_info()["seconds"], "ids": [b.id for b in batch],
                  "reason": batch[0].reason,
                  "peak_mib": peak_mib()}))
"""
)


def make_pool(args, folder: Path) -> tuple[Path, np.ndarray]:
    """The float16 embeddings file and the concept membership of every row."""
    from raresift.simulate.synthetic import make_synthetic_concepts

    f16 = folder / f"pool-{args.n}x{args.dim}-f16.npy"
    labels = folder / f"pool-{args.n}x{args.dim}-concept.npy"
    if f16.exists() and labels.exists():
        return f16, np.load(labels)
    f32 = folder / "pool-f32.npy"
    data = make_synthetic_concepts(
        n=args.n,
        dim=args.dim,
        n_concepts=20,
        prevalence=(1e-4, 1e-3),
        test_size=0.001,
        min_test_positives=1,
        path=f32,
        seed=0,
        progress=True,
    )
    out = np.lib.format.open_memmap(f16, mode="w+", dtype=np.float16, shape=data.train.shape)
    for lo in range(0, args.n, 1 << 20):
        out[lo : lo + (1 << 20)] = data.train[lo : lo + (1 << 20)]
    out.flush()
    del out
    np.save(labels, data.train_concept)
    del data
    f32.unlink()
    return f16, np.load(labels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=10_000_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--budget", type=int, default=100)
    parser.add_argument("--strategy", default="mlp")
    parser.add_argument("--scratch", default="/work/scratch/wt14")
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    args = parser.parse_args()
    from raresift.session import Session

    scratch = Path(args.scratch)
    scratch.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    emb, concept_of = make_pool(args, scratch)
    generate = time.perf_counter() - start
    counts = np.bincount(concept_of[concept_of >= 0])
    concept = int(np.argsort(counts)[len(counts) // 2])  # a median-prevalence concept
    truth = concept_of == concept
    rng = np.random.default_rng(0)
    seed_pos = rng.choice(np.flatnonzero(truth), 5, replace=False)
    seed_neg = rng.choice(np.flatnonzero(~truth), 95, replace=False)
    seed_csv = scratch / "seed.csv"
    seed_csv.write_text(
        "id,label\n" + "".join(f"{i},{int(truth[i])}\n" for i in np.r_[seed_pos, seed_neg])
    )
    project = scratch / "project"
    shutil.rmtree(project, ignore_errors=True)
    print(
        f"# session over {args.n:,} x {args.dim} float16 ({emb.stat().st_size / 2**30:.2f} GiB "
        f"memmap); concept {concept}: {int(truth.sum()):,} positives "
        f"({truth.mean():.4%}); data generated in {generate:.0f} s"
    )

    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")

    def child(code: str, *argv) -> dict:
        proc = subprocess.run(
            [sys.executable, "-c", code, *map(str, argv)], env=env, capture_output=True, text=True
        )
        if proc.returncode != 0:
            raise SystemExit(proc.stderr)
        return json.loads(proc.stdout.strip().splitlines()[-1])

    init = child(INIT, project, emb, seed_csv, args.strategy)
    print(
        f"\ninit (a fresh process, as `raresift init`): {init['init']:.1f} s in all, of which "
        f"index {init['factory']!r} ({init['search']}) built in {init['build']:.1f} s; "
        f"peak memory {init['peak_mib']:.0f} MiB; next runs {init['defaults']}"
    )
    keys = ["pool", "index", "start", "training", "features", "knn", "selection", "reasons"]
    header = ["round", "process", "import", "open", "next"] + keys + ["answer", "peak MiB", "pos"]
    print("\nseconds per round (each next a fresh process, as `raresift next` runs it)")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    found = 5
    for r in range(1, args.rounds + 1):
        t = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", ROUND, str(project), str(args.budget), args.strategy],
            env=env,
            capture_output=True,
            text=True,
        )
        wall = time.perf_counter() - t
        if proc.returncode != 0:
            raise SystemExit(proc.stderr)
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        t = time.perf_counter()
        s = Session.open(project)
        new = int(truth[out["ids"]].sum())
        s.answer_many([(i, int(truth[i])) for i in out["ids"]], who="oracle")
        s.close()
        answer_s = time.perf_counter() - t
        found += new
        split = out["split"]
        cells = [r, wall, out["import"], out["open"], out["next"]]
        cells += [split.get(k, 0.0) for k in keys] + [answer_s, out["peak_mib"], found]
        print(
            "| " + " | ".join(f"{c:.2f}" if isinstance(c, float) else str(c) for c in cells) + " |"
        )
    print(f"\nfirst pick's reason: {out['reason']}")
    if not args.keep:
        shutil.rmtree(scratch)
        print(f"deleted {scratch}")


if __name__ == "__main__":
    main()
