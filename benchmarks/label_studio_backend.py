"""How fast ``raresift label-studio`` answers Label Studio: a webhook (one annotation, one
transaction, then 201) must come back well within Label Studio's ``WEBHOOK_TIMEOUT`` of 1 s,
and ``/predict`` (a model fitted on the answers in force, then each task scored) runs each time
a task is opened with predictions on.

In-process through Starlette's test client (the HTTP stack without a socket), on a session of
``--n`` random embeddings of ``--dim`` dimensions with ``--answers`` answers and a pending
batch. Prints one table: the median and the slowest of ``--repeats`` requests of each kind.

    OMP_NUM_THREADS=1 python benchmarks/label_studio_backend.py --n 20000 --answers 500
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from starlette.testclient import TestClient

from raresift.app.ml_backend import create_backend
from raresift.session import Session
from raresift.session.exchange import label_studio_config


def _project(folder: Path, n: int, dim: int, answers: int, budget: int) -> Path:
    rng = np.random.default_rng(0)
    np.save(folder / "emb.npy", rng.normal(size=(n, dim)).astype(np.float32))
    s = Session.create(folder / "p", embeddings=folder / "emb.npy", concept="rare",
                       budget=budget, progress=False)  # fmt: skip
    s.answer_many([(i, i, "1" if i % 10 == 0 else "0") for i in range(1, answers + 1)])
    s.next()
    s.close()
    return folder / "p"


def _timed(call, repeats: int) -> list[float]:
    seconds = []
    for k in range(repeats):
        start = time.perf_counter()
        reply = call(k)
        seconds.append(time.perf_counter() - start)
        assert reply.status_code in (200, 201), reply.text
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=20000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--answers", type=int, default=500)
    parser.add_argument("--budget", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        project = _project(Path(tmp), args.n, args.dim, args.answers, args.budget)
        app = create_backend(project, ls_project=1)
        session = app.state.session
        config = label_studio_config(session)
        batch = [b.id for b in session.batch()]
        others = [i for i in range(args.answers + 1, args.n) if i not in set(batch)]

        def task(uid):
            return {"id": uid + 1, "data": {"raresift_id": uid}}

        def predict(uids):
            body = {"tasks": [task(u) for u in uids], "project": "1.0", "label_config": config}
            return lambda k: client.post("/predict", json=body)

        def webhook(k):
            result = [{"from_name": "label", "to_name": "item", "type": "choices",
                       "value": {"choices": ["0"]}}]  # fmt: skip
            return client.post("/webhook", json={
                "action": "ANNOTATION_CREATED", "project": {"id": 1}, "task": task(others[k]),
                "annotation": {"id": 1000 + k, "result": result, "completed_by": 1},
            })  # fmt: skip

        rows = []
        with TestClient(app) as client:
            rows.append(("POST /webhook (one annotation)", _timed(webhook, args.repeats)))
            app.state.jobs.wait(600)
            rows.append(("POST /predict, 1 task", _timed(predict(batch[:1]), args.repeats)))
            tasks = batch[:50] + others[-50:]
            rows.append(("POST /predict, 100 tasks", _timed(predict(tasks), args.repeats)))
        session.close()
    print(f"n={args.n} dim={args.dim} answers={args.answers} budget={args.budget}, "
          f"{args.repeats} requests each, in-process (no socket), milliseconds")  # fmt: skip
    print(f"{'request':34} {'median':>8} {'slowest':>8}")
    for name, seconds in rows:
        print(f"{name:34} {1000 * statistics.median(seconds):8.1f} {1000 * max(seconds):8.1f}")


if __name__ == "__main__":
    main()
