"""A fresh ``raresift next`` process, this tree against an earlier commit, on the same session.

Builds one concept session with its index over a ``--n x --dim`` float16 memmap (random rows,
the concept a planted direction; 5 positive and 95 negative answers) with ``--old``'s code (this
tree opens what the older wrote; the older cannot read an index this tree wrote, whose pool
fingerprint names consecutive ids by their first), then runs ``next`` the way the command
does (a fresh interpreter: import, ``Session.open``, the round ``next`` computes:
:func:`~raresift.session.rounds.compute_round`, not stored, so every process does the same
round), alternating this tree's ``src`` and ``--old``'s (a folder holding an earlier commit's
``src``, e.g. from ``git archive``), ``--repeats`` times for each of ``--candidates``. Prints,
per process: wall seconds (interpreter start included), the import, open and round seconds,
the round's own split, the rest of the round (imports it makes on the way: scikit-learn, the
strategy, torch where it is imported) and whether torch was imported.

Run::

    mkdir -p /work/scratch/old && git archive 6ca8dd3 src | tar -x -C /work/scratch/old
    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 PYTHONPATH=src \\
        flock /tmp/raresift-heavy.lock python benchmarks/fresh_next.py --old /work/scratch/old
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

ROUND = """
import json, sys, time
t0 = time.perf_counter()
from raresift.session import Session
from raresift.session.rounds import compute_round
t1 = time.perf_counter()
s = Session.open(sys.argv[1])
t2 = time.perf_counter()
with s.store.reading() as db:
    current = db.current()
options = s._options(int(sys.argv[2]), None, sys.argv[3], None, None)
picks = compute_round(s, current, 1, options)
t3 = time.perf_counter()
print(json.dumps({"import": t1 - t0, "open": t2 - t1, "next": t3 - t2, "split": picks.seconds,
                  "ids": picks.iids.tolist(), "torch": "torch" in sys.modules}))
"""


CREATE = """
import json, sys, time
from raresift.session import Session
t0 = time.perf_counter()
s = Session.create(sys.argv[1], embeddings=sys.argv[2], concept="rare", progress=False)
s.answer_many([tuple(a) for a in json.loads(sys.argv[3])])
s.index()
print(f"# session and its index created by {sys.argv[4]} in {time.perf_counter() - t0:.1f} s")
"""


def make_session(args, scratch: Path, src: Path) -> Path:
    """The pool, its answers, and the session with its index, created by the tree at ``src``
    (the older one: the newer reads what the older wrote, not the other way round)."""
    rng = np.random.default_rng(0)
    emb = scratch / "pool.npy"
    x = np.lib.format.open_memmap(emb, mode="w+", dtype=np.float16, shape=(args.n, args.dim))
    direction = rng.standard_normal(args.dim).astype(np.float32)
    direction /= np.linalg.norm(direction)
    for lo in range(0, args.n, 1 << 20):
        rows = rng.standard_normal((min(1 << 20, args.n - lo), args.dim), dtype=np.float32)
        x[lo : lo + rows.shape[0]] = rows
    x.flush()
    score = np.empty(args.n, dtype=np.float32)
    for lo in range(0, args.n, 1 << 20):
        score[lo : lo + (1 << 20)] = np.asarray(x[lo : lo + (1 << 20)], np.float32) @ direction
    del x
    order = np.argsort(score)
    seeds = [(int(i), 1) for i in order[-5:]] + [(int(i), 0) for i in rng.choice(order[:-1000], 95)]
    project = scratch / "project"
    proc = subprocess.run(
        [sys.executable, "-c", CREATE, str(project), str(emb), json.dumps(seeds), str(src)],
        env={**os.environ, "PYTHONPATH": str(src)}, capture_output=True, text=True,
    )  # fmt: skip
    if proc.returncode != 0:
        raise SystemExit(proc.stderr)
    print(proc.stdout.strip())
    return project


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--budget", type=int, default=100)
    parser.add_argument("--candidates", nargs="+", default=["all", "seals"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--old", required=True, help="a folder holding an earlier commit's src")
    parser.add_argument("--scratch", default="/work/scratch/fresh/next")
    args = parser.parse_args()
    scratch = Path(args.scratch)
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    print(f"# load before: {os.getloadavg()}")
    trees = {"this tree": Path(__file__).resolve().parents[1] / "src",
             "old": Path(args.old).resolve() / "src"}  # fmt: skip
    project = make_session(args, scratch, trees["old"])
    keys = ["pool", "index", "start", "training", "features", "selection", "reasons"]
    header = ["tree", "candidates", "wall", "import", "open", "round"] + keys
    header += ["other", "torch"]  # other: the round's lazy imports (sklearn, the strategy, ...)
    print(f"\n{args.n:,} x {args.dim} float16, budget {args.budget}; seconds\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    picks = {}
    for _ in range(args.repeats):
        for candidates in args.candidates:
            for tree, src in trees.items():
                env = {**os.environ, "PYTHONPATH": str(src)}
                start = time.perf_counter()
                proc = subprocess.run(
                    [sys.executable, "-c", ROUND, str(project), str(args.budget), candidates],
                    env=env, capture_output=True, text=True,
                )  # fmt: skip
                wall = time.perf_counter() - start
                if proc.returncode != 0:
                    raise SystemExit(proc.stderr)
                out = json.loads(proc.stdout.strip().splitlines()[-1])
                picks.setdefault(candidates, {})[tree] = out["ids"]
                cells = [tree, candidates, wall, out["import"], out["open"], out["next"]]
                cells += [out["split"].get(k, 0.0) for k in keys]
                cells += [out["next"] - sum(out["split"].values()), str(out["torch"])]
                print("| " + " | ".join(f"{c:.2f}" if isinstance(c, float) else c for c in cells)
                      + " |", flush=True)  # fmt: skip
    for candidates, by_tree in picks.items():
        same = len({tuple(ids) for ids in by_tree.values()}) == 1
        print(f"\n{candidates}: the same {args.budget} picks in both trees: {same}")
    print(f"\n# load after: {os.getloadavg()}")
    shutil.rmtree(scratch)


if __name__ == "__main__":
    main()
