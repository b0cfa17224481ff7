"""The next round, run in a background thread so the page never waits on retraining.

One job runs at a time per server: asking again while one runs returns the running job's state
(and, for a runner made with ``rerun=True``, runs the work once more when it ends, so a request
that came in after the work had looked at the answers is never lost). Answers keep being written
by the request threads while the model retrains and selects.

The session reports no progress of its own, so the shown fraction is the time elapsed over the
time the previous round took (``expected_seconds``), held below 1 until the work returns.

>>> runner = JobRunner(lambda: {"size": 3})
>>> runner.start(expected_seconds=2.0)["state"] in {"running", "done"}
True
>>> runner.wait(5)["state"], runner.state()["result"]
('done', {'size': 3})
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from raresift.errors import RaresiftError

log = logging.getLogger("raresift")

RUNNING_CAP = 0.95


class JobRunner:
    """Run ``work()`` in a background thread, one run at a time, and tell how far it is;
    ``rerun``: a start while it runs runs it once more afterwards (several starts, once)."""

    def __init__(self, work: Callable[[], Any], rerun: bool = False):
        self.work = work
        self.rerun = rerun
        self._again = False
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._state: dict[str, Any] = {"state": "idle", "run": 0, "fraction": None, "message": ""}

    def state(self) -> dict[str, Any]:
        """``state`` (idle, running, done, failed), ``run`` (a counter), ``fraction``,
        ``message``, and ``result`` / ``error`` / ``seconds`` once finished."""
        with self._lock:
            state = dict(self._state)
        if state["state"] == "running":
            elapsed = time.time() - state["started"]
            expected = state.get("expected_seconds")
            state["elapsed"] = round(elapsed, 1)
            if expected:
                state["fraction"] = min(RUNNING_CAP, elapsed / expected)
                left = max(0.0, expected - elapsed)
                state["message"] = (
                    f"fitting and selecting: about {left:.0f} s left"
                    if left >= 1
                    else "fitting and selecting: almost done"
                )
        return state

    def start(self, expected_seconds: float | None = None) -> dict[str, Any]:
        """Start the work unless it is running already; returns the state either way."""
        with self._lock:
            if self._state["state"] == "running":
                self._again = self.rerun
            else:
                self._state = {
                    "state": "running",
                    "run": self._state["run"] + 1,
                    "fraction": None,
                    "message": "fitting and selecting",
                    "started": time.time(),
                    "expected_seconds": expected_seconds,
                }
                self._thread = threading.Thread(target=self._run, name="raresift-next", daemon=True)
                self._thread.start()
        return self.state()

    def wait(self, timeout: float | None = None) -> dict[str, Any]:
        """Wait for the running work (at most ``timeout`` seconds); returns the state."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        return self.state()

    def _run(self) -> None:
        while True:
            try:
                outcome = ("done", {"result": self.work()})
            except RaresiftError as exc:
                outcome = ("failed", {"error": str(exc)})
            except Exception as exc:  # shown to the user, logged in full for the developer
                log.error("selecting the next batch failed:\n%s", traceback.format_exc())
                outcome = ("failed", {"error": f"{type(exc).__name__}: {exc}"})
            with self._lock:  # a start from here on sees the state below, not "running"
                if not self._again:
                    self._finish(outcome[0], **outcome[1])
                    return
                self._again = False

    def _finish(self, state: str, **extra: Any) -> None:
        """Under the lock: the run's outcome."""
        self._state.update(state=state, fraction=1.0 if state == "done" else None, **extra)
        self._state["seconds"] = round(time.time() - self._state["started"], 3)
        self._state["message"] = "next batch ready" if state == "done" else "failed"
