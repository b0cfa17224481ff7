"""Latent structure of a concept in the k-NN graph (papers/002 section 4.4).

Take the k-NN graph of the whole pool and keep only the edges between a concept's positives.
The share of positives in its largest connected component says how much of the concept SEALS can
reach from one positive by following neighbours; the average shortest path inside that component
says how many expansion steps exploring it takes.

By default edges are symmetrised (i -> j or j -> i makes i and j adjacent), components are
connected components and paths are undirected; ``directed=True`` keeps edge direction, uses
strongly connected components and directed paths. Every result says which it used.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components, shortest_path

from raresift.errors import ValidationError
from raresift.index import NeighborIndex
from raresift.pool import Pool, as_ids


@dataclass
class ConceptStructure:
    """Largest component and path length of one concept's positives in the k-NN graph.

    ``avg_shortest_path`` is the mean hop count over ordered pairs of distinct positives in the
    largest component, from ``path_sources`` source nodes (all of them when the component has at
    most ``max_sources`` nodes, else a seeded sample); NaN for a one-node component.
    """

    concept: object
    n_positives: int
    k: int
    directed: bool
    n_components: int
    largest_component: int
    largest_share: float
    avg_shortest_path: float
    path_sources: int

    @property
    def edges(self) -> str:
        return "directed" if self.directed else "symmetrised"


def positive_graph(neighbors: np.ndarray, positive_ids: np.ndarray) -> csr_matrix:
    """Adjacency (m x m) among ``positive_ids`` from their neighbour rows (ids, -1 padded).

    Row ``i`` of ``neighbors`` lists the neighbours of ``positive_ids[i]``; edges to items outside
    the positives are dropped.

    >>> g = positive_graph(np.array([[2, 9], [5, 7], [7, -1]]), np.array([5, 7, 2]))
    >>> g.toarray().astype(int).tolist()
    [[0, 0, 1], [1, 0, 0], [0, 1, 0]]
    """
    positive_ids = as_ids(positive_ids)
    order = np.argsort(positive_ids, kind="stable")
    sorted_ids = positive_ids[order]
    m = positive_ids.size
    pos = np.minimum(np.searchsorted(sorted_ids, neighbors), m - 1)
    hit = (sorted_ids[pos] == neighbors) & (neighbors >= 0)
    rows = np.broadcast_to(np.arange(m)[:, None], neighbors.shape)[hit]
    cols = order[pos[hit]]
    keep = rows != cols
    data = np.ones(int(keep.sum()), dtype=np.float64)
    return csr_matrix((data, (rows[keep], cols[keep])), shape=(m, m))


def graph_structure(
    graph: csr_matrix,
    directed: bool = False,
    max_sources: int = 500,
    seed: int = 0,
) -> tuple[int, np.ndarray, float, int]:
    """(number of components, node indices of the largest one, its average shortest path,
    sources used) for an adjacency matrix; see :class:`ConceptStructure`."""
    n_comp, comp = connected_components(
        graph, directed=directed, connection="strong" if directed else "weak"
    )
    largest = np.flatnonzero(comp == np.argmax(np.bincount(comp)))
    if largest.size < 2:
        return int(n_comp), largest, float("nan"), 0
    sub = graph[largest][:, largest]
    if largest.size > max_sources:
        rng = np.random.default_rng(seed)
        sources = np.sort(rng.choice(largest.size, size=max_sources, replace=False))
    else:
        sources = np.arange(largest.size)
    dist = shortest_path(sub, directed=directed, unweighted=True, indices=sources)
    total = dist.sum()  # inside a (strongly) connected component every distance is finite
    avg = float(total / (sources.size * (largest.size - 1)))
    return int(n_comp), largest, avg, int(sources.size)


def concept_structure(
    index: NeighborIndex,
    positive_ids,
    k: int = 10,
    directed: bool = False,
    pool: Pool | None = None,
    max_sources: int = 500,
    seed: int = 0,
    concept: object = None,
) -> ConceptStructure:
    """Largest-component share and average shortest path of ``positive_ids`` in the k-NN graph.

    Neighbours come from ``index`` (search over the whole pool, ``k`` per positive).
    """
    ids = np.unique(as_ids(positive_ids, "positive_ids"))
    if ids.size == 0:
        raise ValidationError("a concept needs at least one positive to analyse its structure")
    neighbors = index.neighbors(ids, k, pool=pool)
    n_comp, largest, avg, sources = graph_structure(
        positive_graph(neighbors, ids), directed, max_sources, seed
    )
    return ConceptStructure(
        concept=concept,
        n_positives=int(ids.size),
        k=int(k),
        directed=bool(directed),
        n_components=n_comp,
        largest_component=int(largest.size),
        largest_share=largest.size / ids.size,
        avg_shortest_path=avg,
        path_sources=sources,
    )
