"""A labeling session over the 10^8 x 64 float16 pool, end to end, as a user runs it.

``init``: the real ``raresift init`` (a child process under ``/usr/bin/time -v``) over the
memory-mapped ``.npy`` of :mod:`benchmarks.scale_pool`, seeded with 5 positives and 95 negatives
of a median-prevalence rare concept: wall and CPU time, peak resident memory (VmHWM, which counts
the pages of mapped files too) and the peak of anonymous memory (RssAnon sampled every 0.2 s:
what the build itself holds, page cache aside), the machine's load before and after.

``rounds``: then ``--fresh`` rounds as ``raresift next`` child processes (wall time of the whole
command), ``--warm`` rounds in one long-lived process (as the web app: ``Session.next`` timed
alone) and ``--flqmi`` warm rounds of the SIMILAR function flqmi with the labeled positives as
its query set, all over SEALS; the answers come from the true labels. The index's recall probe
of each round and the status line that shows it are printed.

Run (heavy: the init builds for up to an hour on both cores)::

    flock /tmp/raresift-heavy.lock python benchmarks/scale_session.py init \\
        --n 100000000 --scratch /work/scratch/scale
    flock /tmp/raresift-heavy.lock python benchmarks/scale_session.py rounds \\
        --n 100000000 --scratch /work/scratch/scale
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale_pool import make_pool  # noqa: E402

SRC = str(Path(__file__).resolve().parents[1] / "src")


def env() -> dict:
    out = dict(os.environ)
    out["PYTHONPATH"] = SRC + os.pathsep + out.get("PYTHONPATH", "")
    return out


def load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def concept_seed(scratch: Path, labels: Path) -> tuple[int, np.ndarray, Path]:
    """The median-prevalence concept, its membership and a seed file of 5 + 95 answers."""
    concept_of = np.load(labels)
    counts = np.bincount(concept_of[concept_of >= 0])
    concept = int(np.argsort(counts)[len(counts) // 2])
    truth = concept_of == concept
    del concept_of
    rng = np.random.default_rng(0)
    pos = rng.choice(np.flatnonzero(truth), 5, replace=False)
    neg = rng.integers(0, truth.size, 200)
    neg = neg[~truth[neg]][:95]
    seed = scratch / "seed.csv"
    seed.write_text("id,label\n" + "".join(f"{i},{int(truth[i])}\n" for i in np.r_[pos, neg]))
    return concept, truth, seed


class AnonPeak(threading.Thread):
    """Samples a process's RssAnon and VmHWM (kB) until it ends."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.anon, self.hwm = pid, 0, 0

    def run(self) -> None:
        while True:
            try:
                with open(f"/proc/{self.pid}/status") as fh:
                    for line in fh:
                        if line.startswith("RssAnon"):
                            self.anon = max(self.anon, int(line.split()[1]))
                        elif line.startswith("VmHWM"):
                            self.hwm = max(self.hwm, int(line.split()[1]))
            except (FileNotFoundError, ProcessLookupError):
                return
            time.sleep(0.2)


def run_init(args, project: Path, emb: Path, seed: Path) -> None:
    shutil.rmtree(project, ignore_errors=True)
    cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "raresift.cli", "init", str(project)]
    cmd += ["--embeddings", str(emb), "--labels", str(seed), "--concept", "rare"]
    print(f"load before: {load()}", flush=True)
    start = time.perf_counter()
    log = open(project.parent / "init.log", "w")
    proc = subprocess.Popen(cmd, env=env(), stdout=log, stderr=subprocess.STDOUT)
    # the python child of /usr/bin/time
    time.sleep(1.0)
    kids = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
    sampler = AnonPeak(int(kids[0]) if kids else proc.pid)
    sampler.start()
    proc.wait()
    wall = time.perf_counter() - start
    log.close()
    text = (project.parent / "init.log").read_text()
    if proc.returncode != 0:
        raise SystemExit(text[-3000:])
    usage = {
        key: line.split(": ", 1)[1]
        for line in text.splitlines()
        for key in ("User time", "System time", "Maximum resident", "Elapsed")
        if line.strip().startswith(key)
    }
    print(f"load after: {load()}")
    print(
        f"raresift init over {args.n:,} x {args.dim} float16: {wall:.0f} s wall "
        f"({usage.get('Elapsed')}), CPU {float(usage['User time']):.0f} s user + "
        f"{float(usage['System time']):.0f} s system; peak RSS (VmHWM, mapped files "
        f"included) {int(usage['Maximum resident']) / 2**20:.2f} GiB; peak anonymous RSS "
        f"(sampled) {sampler.anon / 2**20:.2f} GiB"
    )
    meta_path = next(project.glob("**/index.faiss.json"))
    meta = json.loads(meta_path.read_text())
    keep = ("factory", "search_params", "recall", "recall_k", "ntotal", "on_disk")
    print(f"index settings ({meta_path.relative_to(project)}): { ({k: meta[k] for k in keep}) }")
    sizes = {f.name: f.stat().st_size for f in meta_path.parent.iterdir()}
    print(f"index files: {sizes}")


FRESH = """
import json, sys, time
t0 = time.perf_counter()
from raresift.cli import main
sys.argv = ["raresift", "next", sys.argv[1], "--format", "jsonl"]
main()
"""

WARM = """
import json, sys, time
import numpy as np
from raresift.session import Session
truth = np.load(sys.argv[2], mmap_mode="r") == int(sys.argv[3])
s = Session.open(sys.argv[1])
rounds, strategy = int(sys.argv[4]), sys.argv[5]
for r in range(rounds):
    t = time.perf_counter()
    batch = s.next(strategy=strategy, candidates="seals", progress=False)
    wall = time.perf_counter() - t
    ids = [b.id for b in batch]
    s.answer_many([(i, int(truth[i])) for i in ids], who="oracle")
    info = s.round_info()
    print(json.dumps({"wall": wall, "split": info["seconds"], "new": int(truth[ids].sum()),
                      "probe": s.status(estimate=False).get("index_recall")}), flush=True)
thread = getattr(s, "_probe_thread", None)
t = time.perf_counter()
if thread is not None:
    thread.join(float(sys.argv[6]))
print(json.dumps({"probe_wait": time.perf_counter() - t,
                  "probe": s.status(estimate=False).get("index_recall")}), flush=True)
s.close()
"""


def fresh_round(project: Path, truth: np.ndarray) -> tuple[float, int]:
    t = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", FRESH, str(project)], env=env(), capture_output=True, text=True
    )
    wall = time.perf_counter() - t
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-3000:])
    ids = [json.loads(line)["id"] for line in proc.stdout.splitlines() if line.startswith("{")]
    from raresift.session import Session

    s = Session.open(project)
    s.answer_many([(i, int(truth[i])) for i in ids], who="oracle")
    s.close()
    return wall, int(truth[ids].sum())


def run_rounds(args, project: Path, labels: Path, concept: int, truth: np.ndarray) -> None:
    print(f"load before: {load()}", flush=True)
    print(f"\n{args.fresh} fresh `raresift next` processes (wall time of the whole command):")
    for r in range(args.fresh):
        wall, new = fresh_round(project, truth)
        print(f"  fresh round {r + 1}: {wall:.2f} s, {new} positives in the batch", flush=True)
    for strategy, rounds in (("mlp", args.warm), ("flqmi", args.flqmi)):
        print(f"\n{rounds} warm {strategy} rounds over SEALS in one long-lived process:")
        proc = subprocess.run(
            [sys.executable, "-c", WARM, str(project), str(labels), str(concept)]
            + [str(rounds), strategy, str(args.probe_wait)],
            env=env(),
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise SystemExit(proc.stderr[-3000:])
        walls = []
        lines = [x for x in proc.stdout.splitlines() if x.startswith("{")]  # not Faiss' notes
        for r, line in enumerate(lines):
            out = json.loads(line)
            if "probe_wait" in out:
                print(
                    f"  after the rounds, the probe thread was waited for "
                    f"{out['probe_wait']:.1f} s: {json.dumps(out['probe'])}"
                )
                continue
            split = ", ".join(f"{k} {v:.3f}" for k, v in out["split"].items())
            first = " (the process's first: imports, index and pool opened)" if r == 0 else ""
            print(f"  round {r + 1}{first}: {out['wall']:.3f} s ({split}); {out['new']} positives")
            print(f"    recall probe: {json.dumps(out['probe'])}")
            walls += [out["wall"]] if r else []
        if walls:
            print(
                f"  warm {strategy} rounds 2-{len(walls) + 1}: median {np.median(walls):.3f} s, "
                f"max {max(walls):.3f} s"
            )
    status = subprocess.run(
        [sys.executable, "-m", "raresift.cli", "status", str(project)],
        env=env(),
        capture_output=True,
        text=True,
    ).stdout
    print("\n`raresift status` says:\n" + "\n".join("  " + x for x in status.splitlines()))
    print(f"\nload after: {load()}")


def run_rare_flqmi(args, project: Path, labels: Path, concept: int) -> None:
    """flqmi rounds with a rare query set: a copy of the session (its database; the index and
    the embeddings are shared) rewound to its 100 seed answers, 5 of them positive."""
    from raresift.session import Session

    copy = project.parent / f"{project.name}-rewound"
    shutil.rmtree(copy, ignore_errors=True)
    copy.mkdir()
    shutil.copy(project / "session.db", copy / "session.db")
    for part in project.iterdir():  # the index files, shared
        if not part.name.startswith("session.db"):
            (copy / part.name).symlink_to(part)
    s = Session.open(copy)
    with s.store.reading() as db:
        in_force = db.count_in_force()
    s.undo(in_force - 100)
    s.close()
    print(f"\n{args.flqmi} warm flqmi rounds over SEALS, the session rewound to its seed:")
    proc = subprocess.run(
        [sys.executable, "-c", WARM, str(copy), str(labels), str(concept)]
        + [str(args.flqmi), "flqmi", "0"],
        env=env(),
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-3000:])
    lines = [x for x in proc.stdout.splitlines() if x.startswith('{"wall"')]
    for r, line in enumerate(lines):
        out = json.loads(line)
        split = ", ".join(f"{k} {v:.3f}" for k, v in out["split"].items())
        first = " (the process's first)" if r == 0 else ""
        print(f"  round {r + 1}{first}: {out['wall']:.3f} s ({split}); {out['new']} positives")
    print(f"load after: {load()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("part", choices=["init", "rounds", "flqmi-rare"])
    parser.add_argument("--n", type=int, default=100_000_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--scratch", default="/work/scratch/scale")
    parser.add_argument("--fresh", type=int, default=3)
    parser.add_argument("--warm", type=int, default=5)
    parser.add_argument("--flqmi", type=int, default=3)
    parser.add_argument("--probe-wait", type=float, default=300.0)
    args = parser.parse_args()
    scratch = Path(args.scratch)
    emb, labels = make_pool(scratch, args.n, args.dim)
    concept, truth, seed = concept_seed(scratch, labels)
    project = scratch / f"project-{args.n}"
    print(f"# {' '.join(sys.argv)}")
    print(
        f"# pool {emb} ({emb.stat().st_size / 1e9:.1f} GB); concept {concept}: "
        f"{int(truth.sum()):,} positives ({truth.mean():.4%}); {os.cpu_count()} cores"
    )
    if args.part == "init":
        run_init(args, project, emb, seed)
    elif args.part == "rounds":
        run_rounds(args, project, labels, concept, truth)
    else:
        print(f"load before: {load()}")
        run_rare_flqmi(args, project, labels, concept)


if __name__ == "__main__":
    main()
