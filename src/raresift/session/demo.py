"""The demo's labeling session: the demo's pool as a session a person continues by hand."""

from __future__ import annotations

import csv
import shlex
import shutil
from pathlib import Path

import numpy as np

from raresift.loop import ArrayOracle
from raresift.session.session import Session


def start_demo_session(
    out_dir: Path,
    embeddings: np.ndarray,
    oracle: ArrayOracle,
    seed_ids: np.ndarray,
    rounds: int = 2,
    budget: int = 50,
    strategy: str = "mlp",
    seed: int = 0,
) -> list[str]:
    """Create ``out_dir/session`` over ``embeddings`` with the seed answers, answer ``rounds``
    batches from the ``oracle`` (the true 0/1 answer of row ids), leave the next batch pending
    and write its true answers beside it. Returns the shell commands that continue the session
    by hand."""
    out_dir = Path(out_dir)
    data = out_dir / "session-data"
    project = out_dir / "session"
    shutil.rmtree(project, ignore_errors=True)
    data.mkdir(parents=True, exist_ok=True)
    np.save(data / "embeddings.npy", np.ascontiguousarray(embeddings, dtype=np.float32))
    seed_csv = data / "seed.csv"
    _write_answers(seed_csv, seed_ids, oracle)
    session = Session.create(project, embeddings=data / "embeddings.npy", concept="rare",
                             seed_labels=seed_csv, strategy=strategy, candidates="all",
                             budget=budget, seed=seed, progress=False)  # fmt: skip
    for _ in range(rounds):
        ids = np.array([b.id for b in session.next()], dtype=np.int64)
        session.answer_many(list(zip(ids.tolist(), oracle(ids).tolist(), strict=True)), who="demo")
    pending = np.array([b.id for b in session.next()], dtype=np.int64)
    truth = data / f"answers-round-{rounds + 1}.csv"
    _write_answers(truth, pending, oracle)
    first = int(pending[0])
    session.close()
    p, q = shlex.quote(str(project)), shlex.quote
    return [
        f"raresift status {p}",
        f"raresift next {p}   # round {rounds + 1}: {budget} items and why each",
        f"raresift label {p} --id {first} --label {int(oracle([first])[0])}   # answer one by hand",
        f"raresift label {p} {q(str(truth))}   # or the whole batch",
        f"raresift undo {p}",
        f"raresift next {p} --strategy entropy --budget 20",
        f"raresift status {p} --plot {q(str(out_dir / 'session-curve.png'))}",
        f"raresift export {p} --format label-studio --out {q(str(out_dir / 'tasks.json'))}",
    ]


def _write_answers(path: Path, ids: np.ndarray, oracle: ArrayOracle) -> None:
    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "label"])
        writer.writerows(zip(ids.tolist(), oracle(ids).tolist(), strict=True))
