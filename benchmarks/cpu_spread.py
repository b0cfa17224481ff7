"""How far the demo studies' tables move with the CPU's kernels: the spread behind the tolerances.

Runs each demo study (``src/raresift/demo_study*.toml``, the tables under ``docs/results/demo*``
that ``tests/test_committed_results.py`` compares) once per *kernel setting*: thread counts and the
kernel types that OpenBLAS (numpy, scipy, Faiss), ATen and MKL (torch) select by CPU, forced with
their environment variables, so that one machine shows what other CPUs of its kind compute. Each
fresh table is compared with the committed one by :func:`raresift.simulate.reproduce.differences`
(exact cells exactly; model cells per strategy, within the stated tolerances) and the largest
difference of every compared quantity is printed beside its tolerance.

    OMP_NUM_THREADS=1 python benchmarks/cpu_spread.py > benchmarks/results/cpu-spread.txt

(``make results-spread``; about an hour on 2 cores, 24 study runs). ``--settings`` picks some
settings, ``--studies`` some studies, ``--work`` keeps the fresh tables (default: a temporary
folder; a table already there is reused, so a second call only prints).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from raresift.simulate.reproduce import TOLERANCES, differences, read_table, spread

ROOT = Path(__file__).resolve().parents[1]
STUDIES = {
    "demo": ROOT / "src" / "raresift" / "demo_study.toml",
    "demo-mnist5k": ROOT / "src" / "raresift" / "demo_study_mnist5k.toml",
}
# name -> environment; each row stands for a kind of CPU or a thread count a machine may use.
SETTINGS = {
    "as-is": {},  # the machine's own kernels, one thread per core
    "omp-1": {"OMP_NUM_THREADS": "1"},
    "openblas-haswell": {"OPENBLAS_CORETYPE": "Haswell"},
    "openblas-sandybridge": {"OPENBLAS_CORETYPE": "Sandybridge"},
    "openblas-prescott": {"OPENBLAS_CORETYPE": "Prescott"},
    "aten-avx2": {"ATEN_CPU_CAPABILITY": "avx2"},
    "aten-scalar": {"ATEN_CPU_CAPABILITY": "default"},
    "mkl-avx2": {"MKL_ENABLE_INSTRUCTIONS": "AVX2"},
    "mkl-compatible": {"MKL_CBWR": "COMPATIBLE"},
    "torch-avx2": {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
    "torch-scalar": {"ATEN_CPU_CAPABILITY": "default", "MKL_CBWR": "COMPATIBLE"},
    "amd-zen-like": {
        "OPENBLAS_CORETYPE": "Zen",
        "ATEN_CPU_CAPABILITY": "avx2",
        "MKL_ENABLE_INSTRUCTIONS": "AVX2",
        "OMP_NUM_THREADS": "2",
    },
}


def run(study: str, setting: str, work: Path) -> Path:
    """The study's fresh results.csv under ``setting`` (reused if ``work`` already holds it)."""
    out = work / f"{study}--{setting}"
    table = out / "results.csv"
    if table.exists():
        return table
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {name for setting in SETTINGS.values() for name in setting}
    }
    env.update(SETTINGS[setting])
    command = [sys.executable, "-m", "raresift.cli", "simulate", str(STUDIES[study])]
    command += ["--out", str(out), "--no-resume", "--no-progress"]
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
    return table


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--settings", default=",".join(SETTINGS))
    parser.add_argument("--studies", default=",".join(STUDIES))
    parser.add_argument("--work", type=Path, default=None, help="keep the fresh tables here")
    args = parser.parse_args(argv)
    settings, studies = args.settings.split(","), args.studies.split(",")
    work = args.work or Path(tempfile.mkdtemp(prefix="cpu-spread-"))
    work.mkdir(parents=True, exist_ok=True)
    chosen = "" if settings == list(SETTINGS) else f" --settings {','.join(settings)}"
    print(f"$ benchmarks/cpu_spread.py{chosen}")
    print(f"\nsettings ({time.strftime('%Y-%m-%d')}, CPU: {cpu_name()}):")
    for name in settings:
        print(f"  {name:22s} {' '.join(f'{k}={v}' for k, v in SETTINGS[name].items()) or '-'}")
    worst: dict[str, float] = {}
    for study in studies:
        committed = read_table(ROOT / "docs" / "results" / study / "results.csv")
        print(f"\n## {study}: largest difference from docs/results/{study} per quantity")
        print(
            f"{'setting':22s} {'exact cells':>12s}  " + "  ".join(f"{q:>16s}" for q in TOLERANCES)
        )
        for name in settings:
            fresh = read_table(run(study, name, work))
            moved = spread(fresh, committed)
            for q, v in moved.items():
                worst[q] = max(worst.get(q, 0.0), v)
            exact = "same" if not differences(fresh, committed, tolerances=None) else "DIFFER"
            cells = "  ".join(f"{moved[q]:16.4f}" for q in TOLERANCES)
            print(f"{name:22s} {exact:>12s}  {cells}")
    print("\n## largest difference anywhere vs the tolerance tests/test_committed_results.py uses")
    for q, tol in TOLERANCES.items():
        print(f"  {q:16s} {worst.get(q, 0.0):8.4f}  tolerance {tol:8.4f}")
    return 0


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


if __name__ == "__main__":
    sys.exit(main())
