"""What pushing ``raresift_priority`` costs against a real Label Studio (``make label-studio``):
the task listing and the PATCHes of ``raresift label-studio PROJECT --sync``.

Starts Label Studio from ``.venv-label-studio`` on a free port over a copy of its template data
dir, imports ``raresift export --format label-studio --items all`` tasks of a session of
``--n`` random embeddings, answers the pending batch of ``--budget`` and times: listing every
task, ``--sync`` once (the next round, then one PATCH per unlabeled task whose priority moved)
and ``--sync`` again (a listing that changes nothing). Prints one table.

    OMP_NUM_THREADS=1 python benchmarks/label_studio_push.py --n 2000 --budget 100
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

from raresift.session import Session
from raresift.session.exchange import label_studio_config
from raresift.session.labelstudio import LabelStudio

VENV = Path(__file__).resolve().parents[1] / ".venv-label-studio"
TOKEN = "raresift-benchmark-legacy-token"


def _start(data: Path) -> tuple[subprocess.Popen, str]:
    shutil.copytree(VENV / "template", data, dirs_exist_ok=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "LABEL_STUDIO_BASE_DATA_DIR": str(data),
           "LABEL_STUDIO_USERNAME": "bench@example.com", "LABEL_STUDIO_PASSWORD": "bench-pw-123",
           "LABEL_STUDIO_USER_TOKEN": TOKEN, "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
           "SENTRY_DSN": ""}  # fmt: skip
    log = open(data / "label-studio.log", "ab")
    command = [str(VENV / "bin" / "label-studio"), "start", "--no-browser"]
    proc = subprocess.Popen(
        [*command, "--internal-host", "127.0.0.1", "--port", str(port)],
        stdout=log, stderr=log, env=env,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            urllib.request.urlopen(url + "/health", timeout=5)
            return proc, url
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"Label Studio did not start; see {log.name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--budget", type=int, default=100)
    args = parser.parse_args()
    if not (VENV / "template").is_dir():
        raise SystemExit("Label Studio is not installed: run make label-studio")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        proc, url = _start(tmp / "label-studio")
        try:
            legacy = LabelStudio(url, TOKEN)
            np.save(
                tmp / "emb.npy", np.random.default_rng(0).normal(size=(args.n, 32)).astype("f4")
            )
            s = Session.create(tmp / "p", embeddings=tmp / "emb.npy", concept="x",
                               budget=args.budget, progress=False)  # fmt: skip
            s.answer_many([(i, i, "1" if i % 2 else "0") for i in range(1, 5)])
            s.next()
            tasks = json.loads(s.export("label-studio", items="all"))
            body = {"title": "push benchmark", "label_config": label_studio_config(s)}
            pid = legacy.request("POST", "/api/projects/", body)["id"]
            legacy.request("POST", f"/api/projects/{pid}/import", tasks)
            token = legacy.request("POST", "/api/token/")["token"]
            for b in s.batch():
                s.answer(b.id, "0")
            s.close()
            rows = []
            start = time.perf_counter()
            listed = len(LabelStudio(url, token).tasks(pid))
            rows.append((f"list {listed} tasks", time.perf_counter() - start, ""))
            sync = [sys.executable, "-m", "raresift.cli", "label-studio", str(tmp / "p"),
                    "--url", url, "--token", token, "--ls-project", str(pid), "--sync"]  # fmt: skip
            for what in ("--sync: round + push", "--sync again: nothing moved"):
                start = time.perf_counter()
                done = subprocess.run(sync, capture_output=True, text=True, check=True)
                said = done.stdout.strip().split(": ", 2)[-1]
                rows.append((what, time.perf_counter() - start, said))
        finally:
            os.kill(proc.pid, signal.SIGTERM)
            proc.wait(60)
    print(f"n={args.n} budget={args.budget}, Label Studio 1.23.2 on 127.0.0.1, wall seconds")
    for what, seconds, said in rows:
        print(f"{what:30} {seconds:7.1f}  {said}")


if __name__ == "__main__":
    main()
