"""Run ``raresift serve`` in a child process for the web app's tests, and stop it by its PID.

The server binds to 127.0.0.1 on a free port (``--port 0``) and prints its URL; every wait here
is bounded in time.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import raresift

SRC = str(Path(raresift.__file__).resolve().parents[1])
# Headless Chromium as root on a machine with no outside network (background services off).
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


class ServerProcess:
    """``raresift serve PROJECT --port 0`` (or another ``command`` that prints its URL, such as
    ``label-studio``) in a child process; ``url`` once it listens."""

    def __init__(
        self,
        project: Path,
        log_path: Path,
        *args: str,
        timeout: float = 90.0,
        command: str = "serve",
    ):
        env = dict(os.environ)
        env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = "1"
        self.log = open(log_path, "ab")
        who = ["--who", "browser-test"] if command == "serve" else []
        program = [sys.executable, "-m", "raresift.cli", command, str(project), "--port", "0"]
        self.proc = subprocess.Popen(
            [*program, *who, *args],
            stdout=subprocess.PIPE,
            stderr=self.log,
            env=env,
        )
        self.url = self._read_url(timeout)

    def _read_url(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        selector = selectors.DefaultSelector()
        selector.register(self.proc.stdout, selectors.EVENT_READ)
        line = b""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            if selector.select(timeout=0.5):
                line = self.proc.stdout.readline()
                if b"http://" in line:
                    return line.decode().split(" at ", 1)[1].split()[0].rstrip("/")
        self.kill()
        raise RuntimeError(f"raresift did not start (output {line!r}; see {self.log.name})")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def kill(self) -> None:
        """SIGKILL: the server gets no chance to flush or clean up."""
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.log.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)
        self.log.close()


HOSTILE = ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>']
TOPICS = [
    "corn harvest forecasts rose after late rains in the midwest",
    "the central bank left interest rates unchanged this quarter",
    "wheat exports to asia fell as prices climbed",
    "a new smartphone model sold out within hours",
    "shares of the carmaker dropped after the recall",
    "soybean futures steadied on weather worries",
]


def make_texts_csv(path: Path, n: int) -> Path:
    """An item table of ``n`` short news-like texts (ids ``t000``...), with a metadata column;
    the first two texts and sources are hostile markup."""
    import csv

    with open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["id", "text", "source"])
        for i in range(n):
            text = f"{TOPICS[i % len(TOPICS)]} (report {i})"
            source = "wire"
            if i < len(HOSTILE):
                text, source = HOSTILE[i], HOSTILE[1 - i]
            if i == 2:
                text = " ".join([TOPICS[0]] * 12)  # long: an excerpt plus the full text
            writer.writerow([f"t{i:03d}", text, source])
    return path


def make_images(folder: Path, n: int, size=(96, 72)) -> Path:
    """``n`` small JPEGs: a white disc (every third image) or bar on a coloured ground."""
    import numpy as np
    from PIL import Image, ImageDraw

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    w, h = size
    for i in range(n):
        image = Image.new("RGB", size, tuple(int(c) for c in rng.integers(30, 220, 3)))
        draw = ImageDraw.Draw(image)
        if i % 3 == 0:
            draw.ellipse([w // 4, h // 6, w // 4 + h * 2 // 3, h * 5 // 6], fill="white")
        else:
            draw.rectangle([w // 6, h // 3, w * 5 // 6, h * 2 // 3], fill="white")
        image.save(folder / f"img{i:03d}.jpg", quality=90)
    return folder
