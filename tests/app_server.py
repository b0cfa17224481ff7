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


class ServerProcess:
    """``raresift serve PROJECT --port 0`` in a child process; ``url`` once it listens."""

    def __init__(self, project: Path, log_path: Path, *args: str, timeout: float = 90.0):
        env = dict(os.environ)
        env["PYTHONPATH"] = SRC + os.pathsep + env.get("PYTHONPATH", "")
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            env[var] = "1"
        self.log = open(log_path, "ab")
        command = [sys.executable, "-m", "raresift.cli", "serve", str(project), "--port", "0"]
        self.proc = subprocess.Popen(
            [*command, "--who", "browser-test", *args],
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
        raise RuntimeError(f"raresift serve did not start (output {line!r}; see {self.log.name})")

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
