"""The Ray engine of a labeling session: its SEALS searches go to index actors and its
strategy's selection to Ray workers (the same picks as the local engine).

The :class:`~raresift.session.Session` facade wires it for a session created with
``engine="ray"``; the session floor (:mod:`raresift.session.project`, rounds, status) knows
only the engine protocol of :class:`raresift.session.config.LocalEngine`.
"""

from __future__ import annotations

from raresift.distributed.cluster import connect
from raresift.distributed.index import RemoteNeighborIndex
from raresift.distributed.rounds import RayStrategy


class RayEngine:
    """Rounds on the Ray cluster at ``address`` (a local Ray when None), joined on first use."""

    name = "ray"

    def __init__(self, address: str | None = None):
        self.address = address

    def index(self, project, index):
        """The searches go to index actors that load the project's (fingerprinted) file."""
        connect(self.address)
        return RemoteNeighborIndex(project.root / project.config["index"]["path"])

    def strategy(self, strategy, progress: bool):
        connect(self.address)
        return RayStrategy(strategy, progress=progress)
