"""raresift's submodular engine vs submodlib 0.0.3, side by side, in one run.

Every case (library, objective, optimizer, n) runs in its own subprocess with a timeout; the worker
reports its wall time (kernel construction and hand-off included) and its own peak RSS (``VmHWM``
from ``/proc/self/status``), so a submodlib blow-up cannot take the run down. Data: random float32
embeddings, d = 64, q = 25 query and p = 100 conditioning items, budget B = 100, shifted cosine
kernel (SIMILAR's), eta = nu = lambda = 1. raresift uses ``kernel="auto"``: dense n x n for the FL
family up to 32,768 candidates, a sparse k = 100 nearest-neighbour kernel above; graph cut and log
det never store n x n (rows are computed on demand). submodlib gets the dense kernels.

The kernel bound: each raresift worker also times the one sgemm that builds its n x n kernel
(``xs @ xs.T`` of the prepared float32 rows, into fresh memory, ``xs.T`` contiguous so BLAS runs a
plain sgemm) right before each repeat of the selection, in the same process, and reports the
selection's time over it: ``x gemm`` (min over repeats of each, and median of each). Pin BLAS to one
thread (OMP/OPENBLAS/MKL_NUM_THREADS=1) so both sides run on one core; raresift's compiled loops
(numba) are serial, so its selection runs on one core too. The first call of those loops in a
process loads them from numba's cache (or compiles them once per machine): the header line times
both, and the first repeat of each worker pays the load (min and median of 3 leave it out).

Quick run:   python benchmarks/submodular_vs_submodlib.py --sizes 2000 --objectives fl,flqmi
Full run:    python benchmarks/submodular_vs_submodlib.py          (takes long; run in background)
Kernel bound of the facility-location family (the README's table):
             python benchmarks/submodular_vs_submodlib.py --sizes 10000,30000 \
                 --objectives fl,flvmi,flcg,flcmi --optimizers lazy,naive --repeats 3
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from raresift.submodular import objective_names, select  # noqa: E402
from raresift.submodular.objectives import DENSE_LIMIT, OBJECTIVES  # noqa: E402

DIM, N_QUERY, N_CONDITIONING, BUDGET = 64, 25, 100, 100
SUBMODLIB_LIMIT_GB = 20.0  # never start a submodlib case estimated above this


def _data(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, DIM)).astype(np.float32)
    Q = rng.normal(size=(N_QUERY, DIM)).astype(np.float32)
    P = rng.normal(size=(N_CONDITIONING, DIM)).astype(np.float32)
    return X, Q, P


def submodlib_gb(name: str, n: int) -> float:
    """Estimated submodlib peak: every kernel becomes a Python list of lists (~32 B per entry:
    a float object plus its pointer), on top of the numpy kernel itself."""
    entries = n * N_QUERY + n * N_CONDITIONING
    if OBJECTIVES[name].data_kernel:
        entries += n * n
    return entries * (32 + 8) / 1e9


def _peak_rss_mb() -> float:
    """This process's peak RSS. /proc's VmHWM starts afresh at exec, unlike ru_maxrss, which Linux
    carries over from the parent."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _sgemm_seconds(X: np.ndarray) -> tuple[float, float]:
    """Wall and CPU seconds of the one sgemm that builds the n x n kernel of ``X``'s rows (the
    shifted cosine's dot products of unit rows), into fresh memory like the kernel itself."""
    xs = X / np.linalg.norm(X, axis=1, keepdims=True)
    xt = np.ascontiguousarray(xs.T)
    cpu, start = time.process_time(), time.perf_counter()
    product = xs @ xt
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    del product
    return seconds, cpu


_LOOPS_FIRST_CALL = """
import time
import numpy as np
import raresift.submodular
start = time.perf_counter()
from raresift.submodular import loops
rows = np.ones((5, 3), dtype=np.float32)
lo, hi, total = np.zeros(5, np.float32), np.ones(5, np.float32), np.zeros(3)
loops.finish_and_sum(rows, np.float32(1.0), np.float32(0.5), lo, hi, total)
loops.add_clipped_rows(rows, np.arange(5), lo, hi, total, -1.0)
print(time.perf_counter() - start)
"""


def _loops_first_call_seconds() -> tuple[float, float]:
    """Seconds of the first call of raresift's compiled loops in a fresh process: with an empty
    numba cache (compiling them) and then with that cache (loading them)."""
    import tempfile

    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache, PYTHONPATH=str(ROOT / "src"))
        cmd = [sys.executable, "-c", _LOOPS_FIRST_CALL]
        return tuple(
            float(subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout)
            for _ in range(2)
        )


def _worker(lib: str, name: str, optimizer: str, n: int, kernel: str, repeats: int = 1) -> dict:
    """``repeats`` timed runs of one case; raresift's each after a timed sgemm of its kernel."""
    runs = [_one_run(lib, name, optimizer, n, kernel) for _ in range(repeats)]
    out = dict(runs[0])
    out["seconds"] = min(r["seconds"] for r in runs)
    out["median"] = float(np.median([r["seconds"] for r in runs]))
    out["cpu"] = min(r["cpu"] for r in runs)
    out["peak_mb"] = _peak_rss_mb()
    if runs[0]["gemm"] is not None:
        out["gemm"] = min(r["gemm"] for r in runs)
        out["gemm_median"] = float(np.median([r["gemm"] for r in runs]))
        out["gemm_cpu"] = min(r["gemm_cpu"] for r in runs)
    out["repeats"] = repeats
    return out


def _one_run(lib: str, name: str, optimizer: str, n: int, kernel: str) -> dict:
    X, Q, P = _data(n)
    gemm = gemm_cpu = None
    if lib == "submodlib":
        import submodlib  # noqa: F401  (import time is not the library's selection time)
    elif n <= DENSE_LIMIT:  # above it no n x n kernel is built (nor could its sgemm's fit)
        gemm, gemm_cpu = _sgemm_seconds(X)
    before = resource.getrusage(resource.RUSAGE_SELF)
    cpu_before = before.ru_utime + before.ru_stime
    start = time.perf_counter()
    if lib == "raresift":
        sel = select(
            name, BUDGET, optimizer, data=X, query=Q, conditioning=P, seed=0, kernel=kernel
        )
        picks, gains = sel.indices, sel.gains
    else:
        from raresift.kernels import similarity
        from raresift.submodular.reference import (
            kernel_names,
            submodlib_function,
            submodlib_select,
        )

        blocks = {
            "data_kernel": (X,),
            "query_kernel": (X, Q),
            "conditioning_kernel": (X, P),
            "query_query_kernel": (Q,),
            "conditioning_conditioning_kernel": (P,),
            "query_conditioning_kernel": (Q, P),
        }
        kernels = {key: similarity(*blocks[key]) for key in kernel_names(name)}
        fn = submodlib_function(name, n, kernels)
        picks, gains = submodlib_select(fn, BUDGET, optimizer)
    seconds = time.perf_counter() - start
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "seconds": seconds,
        "cpu": usage.ru_utime + usage.ru_stime - cpu_before,
        "gemm": gemm,
        "gemm_cpu": gemm_cpu,
        "picks": picks[:10].tolist(),
        "gains": gains[:10].tolist(),
        "value": float(np.sum(gains)),
    }


def _run_case(
    lib: str, name: str, optimizer: str, n: int, kernel: str, timeout: float, repeats: int = 1
) -> dict:
    cmd = [sys.executable, __file__, "--worker", lib, name, optimizer, str(n), kernel, str(repeats)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"status": f"timeout > {timeout:.0f} s"}
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["killed"])[-1][:60]
        return {"status": f"failed (rc {done.returncode}): {last}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def _agreement(ours: dict, ref: dict) -> str:
    """'yes' when the first ten picks agree; 'tie@i' when they first differ at step i with equal
    gains (an exact tie, broken differently by float noise); 'no' otherwise."""
    for step, (a, b) in enumerate(zip(ours["picks"], ref["picks"], strict=False)):
        if a != b:
            g, h = ours["gains"][step], ref["gains"][step]
            return f"tie@{step}" if abs(g - h) <= 1e-5 * max(1.0, abs(h)) else "no"
    return "yes"


def _fmt(result: dict) -> tuple[str, str, str]:
    if "status" in result:
        return result["status"], "-", "-"
    seconds = f"{result['seconds']:.2f}"
    if result.get("repeats", 1) > 1:
        seconds += f"/{result['median']:.2f}"
    return seconds, f"{result['cpu']:.1f}", f"{result['peak_mb']:.0f}"


def _bound(result: dict) -> tuple[str, str]:
    """The sgemm's wall seconds (min/median) and the selection's time over it: min/min,
    median/median, and CPU min/min."""
    if result.get("gemm") is None:
        return "-", "-"
    gemm = f"{result['gemm']:.3f}/{result['gemm_median']:.3f}"
    ratio = (
        f"{result['seconds'] / result['gemm']:.2f}/{result['median'] / result['gemm_median']:.2f}"
        f" ({result['cpu'] / result['gemm_cpu']:.2f})"
    )
    return gemm, ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2000,10000,30000,100000")
    parser.add_argument("--objectives", default=",".join(objective_names()))
    parser.add_argument("--optimizers", default="lazy,naive,stochastic,lazier")
    parser.add_argument(
        "--submodlib-sizes",
        default="2000,10000",
        help="sizes at which submodlib runs (it is skipped elsewhere, with the reason)",
    )
    parser.add_argument("--million", action="store_true", help="add FLQMI and GCMI at n=1e6")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument(
        "--kernel",
        default="auto",
        choices=["auto", "dense", "sparse", "features"],
        help="how raresift holds candidate similarities (sparse = k-NN, k=100)",
    )
    parser.add_argument(
        "--repeats", type=int, default=1, help="timed runs of each raresift case (min, median)"
    )
    parser.add_argument(
        "--submodlib-repeats", type=int, default=1, help="timed runs of each submodlib case"
    )
    parser.add_argument(
        "--submodlib-optimizers",
        default="lazy,naive,stochastic,lazier",
        help="optimizers for which submodlib runs (it is skipped for the others, with the reason)",
    )
    parser.add_argument(
        "--worker", nargs=6, metavar=("LIB", "NAME", "OPT", "N", "KERNEL", "REPEATS")
    )
    args = parser.parse_args()
    if args.worker:
        lib, name, optimizer, n, kernel, repeats = args.worker
        print(json.dumps(_worker(lib, name, optimizer, int(n), kernel, int(repeats))))
        return

    sizes = [int(s) for s in args.sizes.split(",") if s]
    ref_sizes = {int(s) for s in args.submodlib_sizes.split(",") if s}
    have_ref = importlib.util.find_spec("submodlib") is not None
    cases = [
        (n, name, opt)
        for n in sizes
        for name in args.objectives.split(",")
        for opt in args.optimizers.split(",")
    ]
    if args.million:
        cases += [(1_000_000, name, opt) for name in ("flqmi", "gcmi") for opt in ("lazy",)]
    compiled, cached = _loops_first_call_seconds()
    threads = " ".join(
        f"{k}={os.environ.get(k, 'unset')}"
        for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMBA_NUM_THREADS")
    )
    print(
        f"# threads: {threads} (sgemm and submodlib on one core; raresift's numba loops are "
        f"serial); numba loops' first call in a process (import numba "
        f"included): {compiled:.2f} s compiling (empty cache), {cached:.2f} s loading (cached)"
    )
    header = (
        f"{'n':>8} {'objective':<10} {'optimizer':<10} {'raresift s':>11} {'cpu s':>6} {'MB':>6} "
        f"{'sgemm s':>11} {'x sgemm (cpu)':>17}  {'submodlib s':<36} {'cpu s':>6} {'MB':>6} "
        f"{'speedup':>8} {'same top-10':>11}"
    )
    print(header)
    print("-" * len(header), flush=True)
    for n, name, opt in cases:
        ours = _run_case("raresift", name, opt, n, args.kernel, args.timeout, args.repeats)
        if not have_ref:
            ref = {"status": "skipped: submodlib not installed"}
        elif opt not in args.submodlib_optimizers.split(","):
            ref = {"status": "skipped (--submodlib-optimizers)"}
        elif submodlib_gb(name, n) > SUBMODLIB_LIMIT_GB:
            ref = {"status": f"skipped: needs ~{submodlib_gb(name, n):.0f} GB list-of-lists kernel"}
        elif n not in ref_sizes and OBJECTIVES[name].data_kernel:
            ref = {"status": "skipped (--submodlib-sizes)"}
        else:
            ref = _run_case(
                "submodlib", name, opt, n, args.kernel, args.timeout, args.submodlib_repeats
            )
        speed = same = "-"
        if "seconds" in ours and "seconds" in ref:
            speed = f"{ref['seconds'] / ours['seconds']:.1f}x"
            if opt in ("naive", "lazy"):
                same = _agreement(ours, ref)
        rs, rc, rm = _fmt(ours)
        ss, sc, sm = _fmt(ref)
        gemm, ratio = _bound(ours)
        print(
            f"{n:>8} {name:<10} {opt:<10} {rs:>11} {rc:>6} {rm:>6} {gemm:>11} {ratio:>17}  "
            f"{ss:<36} {sc:>6} {sm:>6} {speed:>8} {same:>11}",
            flush=True,
        )
    print(
        f"(B={BUDGET}, d={DIM}, q={N_QUERY}, p={N_CONDITIONING}, shifted cosine, epsilon=0.1; "
        f"raresift kernel={args.kernel}; seconds include building kernels, min/median over "
        f"{args.repeats} raresift and {args.submodlib_repeats} submodlib repeat(s); "
        "sgemm s = the n x n kernel's one sgemm timed in the raresift worker before each repeat; "
        "x sgemm = raresift s over it, min/min and median/median, (cpu: min/min of CPU seconds); "
        "speedup = submodlib s over raresift s, both min; "
        "cpu s = user + system seconds of all the worker's threads; MB = the worker's peak RSS)"
    )


if __name__ == "__main__":
    main()
