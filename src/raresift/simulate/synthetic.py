"""Synthetic pools of skewed, clustered unit-norm embeddings with rare binary concepts.

A few hundred background clusters with Zipf-distributed sizes hold almost every item; each rare
concept (prevalence drawn log-uniformly, e.g. 0.002-0.2 %) is one cluster or, for a share of the
concepts, several fragments. Each concept fragment sits near a background cluster, so the nearest
negatives are confusable. Clusters live in a low-dimensional latent space, embedded in ``dim``
dimensions by a random orthonormal map plus isotropic noise, then L2-normalised. A held-out test
split comes from the same mixture. Rows are generated in chunks; with ``path`` each chunk is
appended to a ``.npy`` file (float32 or float16) and the pool comes back as a read-only memmap, so
10^8 x 64 needs a chunk of working memory plus the per-row cluster ids, not the pool.

Example
-------
>>> data = make_synthetic_concepts(n=20_000, dim=16, n_concepts=5, progress=False)
>>> data.train.shape, data.n_concepts, bool(data.labels(0).sum() == data.train_counts[0])
((20000, 16), 5, True)
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm

from raresift.errors import ConfigError
from raresift.index import normalize_rows

log = logging.getLogger("raresift")


@dataclass
class SyntheticConcepts:
    """Embeddings and concept memberships of a generated pool.

    ``train_concept[i]`` is the concept of train row ``i`` (-1: background); likewise for test.
    ``prevalence`` is each concept's share of the train rows; ``fragments`` its cluster count.
    """

    train: np.ndarray
    train_concept: np.ndarray
    test: np.ndarray
    test_concept: np.ndarray
    prevalence: np.ndarray
    fragments: np.ndarray
    seed: int

    @property
    def n_concepts(self) -> int:
        return int(self.prevalence.size)

    @property
    def train_counts(self) -> np.ndarray:
        return np.bincount(self.train_concept[self.train_concept >= 0], minlength=self.n_concepts)

    def labels(self, concept: int, split: str = "train") -> np.ndarray:
        """Boolean membership of every row of ``split`` ("train" or "test") in ``concept``."""
        if not 0 <= concept < self.n_concepts:
            raise ConfigError(f"concept must be in [0, {self.n_concepts}), got {concept}")
        if split not in ("train", "test"):
            raise ConfigError(f"split must be 'train' or 'test', got {split!r}")
        return (self.train_concept if split == "train" else self.test_concept) == concept


def _split_counts(total: int, weights: np.ndarray) -> np.ndarray:
    """Integer counts summing to ``total`` in proportion to ``weights`` (largest remainders)."""
    raw = total * weights / weights.sum()
    counts = np.floor(raw).astype(np.int64)
    short = total - counts.sum()
    counts[np.argsort(counts - raw, kind="stable")[:short]] += 1
    return counts


def make_synthetic_concepts(
    n: int = 100_000,
    dim: int = 64,
    n_concepts: int = 100,
    prevalence: tuple[float, float] = (2e-5, 2e-3),
    n_background: int = 300,
    zipf: float = 1.0,
    fragmented_share: float = 0.3,
    max_fragments: int = 4,
    latent_dim: int | None = None,
    spread: float = 1.0,
    concept_offset: float = 0.6,
    ambient_noise: float = 0.3,
    test_size: float = 0.1,
    min_test_positives: int = 20,
    min_train_positives: int = 1,
    path: str | os.PathLike | None = None,
    dtype: str | np.dtype = "float32",
    chunk_size: int = 65_536,
    seed: int = 0,
    progress: bool = True,
) -> SyntheticConcepts:
    """Generate a seeded synthetic pool (see the module docstring).

    Parameters
    ----------
    n, dim : train rows and embedding dimension.
    n_concepts : rare concepts; their train prevalences are log-uniform in ``prevalence``.
    n_background, zipf : background clusters and the Zipf exponent of their sizes.
    fragmented_share, max_fragments : share of concepts split into 2..max_fragments clusters.
    latent_dim, spread : latent dimension (default min(32, dim)); within-cluster standard
        deviation (centres are N(0, 1)).
    concept_offset : per-coordinate distance scale of a concept fragment from its background
        cluster (smaller: harder concepts).
    ambient_noise : isotropic noise added in all ``dim`` coordinates before normalising.
    test_size : test rows as a fraction of ``n``; every concept gets at least
        ``min_test_positives`` of them (and ``min_train_positives`` train rows).
    path : if given, the train embeddings are written to this ``.npy`` file chunk by chunk
        (plain sequential writes: the pool never sits in this process's memory) and returned
        as a read-only memmap; ``dtype`` ("float32" or "float16") is the file's (and the
        in-memory pool's) element type. The rows are the same for either dtype up to rounding.
    """
    lo, hi = prevalence
    if not (0 < lo <= hi < 1) or n <= 0 or dim <= 0 or n_concepts < 0:
        raise ConfigError(
            "need n > 0, dim > 0, n_concepts >= 0 and 0 < prevalence[0] <= prevalence[1] < 1"
        )
    if n_concepts * hi >= 0.5 or n_background < 1 or max_fragments < 1:
        raise ConfigError("concepts must stay rare (n_concepts * max prevalence < 0.5)")
    if not 0 < test_size <= 1:
        raise ConfigError(f"test_size must be in (0, 1], got {test_size}")
    dtype = np.dtype(dtype)
    if dtype not in (np.dtype(np.float32), np.dtype(np.float16)):
        raise ConfigError(f"dtype must be float32 or float16, got {dtype}")
    latent_dim = min(32, dim) if latent_dim is None else latent_dim
    if not 0 < latent_dim <= dim:
        raise ConfigError(f"latent_dim ({latent_dim}) must be in [1, dim={dim}]")
    streams = np.random.SeedSequence(seed).spawn(3)
    rng = np.random.default_rng(streams[0])

    prev = np.exp(rng.uniform(np.log(lo), np.log(hi), n_concepts))
    frag = np.ones(n_concepts, dtype=np.int64)
    split = rng.random(n_concepts) < fragmented_share
    if max_fragments > 1:
        frag[split] = rng.integers(2, max_fragments + 1, int(split.sum()))
    # clusters: background first, then the concept fragments
    bg_centers = rng.standard_normal((n_background, latent_dim))
    cluster_concept = np.concatenate(
        [np.full(n_background, -1), np.repeat(np.arange(n_concepts), frag)]
    ).astype(np.int32)
    n_frag = int(frag.sum())
    near = rng.integers(n_background, size=n_frag)
    frag_centers = bg_centers[near] + concept_offset * rng.standard_normal((n_frag, latent_dim))
    centers = np.vstack([bg_centers, frag_centers]).astype(np.float32)
    sigma = (spread * rng.uniform(0.7, 1.3, centers.shape[0])).astype(np.float32)
    frag_weights = rng.dirichlet(np.full(max(1, max_fragments), 2.0), n_concepts)
    bg_weights = 1.0 / np.arange(1, n_background + 1) ** zipf
    rng.shuffle(bg_weights)
    basis = np.linalg.qr(rng.standard_normal((dim, latent_dim)))[0].astype(np.float32)

    def cluster_counts(total: int, min_pos: int) -> np.ndarray:
        concept_total = np.maximum(np.round(prev * total).astype(np.int64), max(1, min_pos))
        per_frag = [
            _split_counts(int(c), frag_weights[i, : frag[i]]) for i, c in enumerate(concept_total)
        ]
        frag_counts = np.concatenate(per_frag) if per_frag else np.zeros(0, np.int64)
        background = total - int(frag_counts.sum())
        return np.concatenate([_split_counts(background, bg_weights), frag_counts])

    def generate(total: int, counts: np.ndarray, stream, write, desc: str):
        order = np.random.default_rng(stream).permutation(
            np.repeat(np.arange(counts.size, dtype=np.int32), counts)
        )
        starts = range(0, total, chunk_size)
        chunk_streams = stream.spawn(len(starts))
        for lo_row, chunk_stream in zip(
            tqdm(starts, desc=desc, unit="chunk", disable=not progress), chunk_streams, strict=True
        ):
            crng = np.random.default_rng(chunk_stream)
            clusters = order[lo_row : lo_row + chunk_size]
            latent = centers[clusters] + sigma[clusters, None] * crng.standard_normal(
                (clusters.size, latent_dim), dtype=np.float32
            )
            rows = latent @ basis.T + ambient_noise * crng.standard_normal(
                (clusters.size, dim), dtype=np.float32
            )
            write(lo_row, normalize_rows(rows))
        return cluster_concept[order]

    def into(array: np.ndarray):
        def write(lo_row: int, rows: np.ndarray) -> None:
            array[lo_row : lo_row + rows.shape[0]] = rows

        return write

    n_test = max(1, round(test_size * n))
    if path is not None:
        path = os.fspath(path)
        part = path + ".part"
        with open(part, "wb") as fh:
            header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False}
            np.lib.format.write_array_header_1_0(fh, {**header, "shape": (n, dim)})
            train_concept = generate(
                n,
                cluster_counts(n, min_train_positives),
                streams[1],
                lambda lo_row, rows: fh.write(rows.astype(dtype, copy=False).tobytes()),
                "synthetic train",
            )
        os.replace(part, path)
        train = np.load(path, mmap_mode="r")
    else:
        train = np.empty((n, dim), dtype=dtype)
        train_concept = generate(
            n, cluster_counts(n, min_train_positives), streams[1], into(train), "synthetic train"
        )
    test = np.empty((n_test, dim), dtype=np.float32)
    test_concept = generate(
        n_test, cluster_counts(n_test, min_test_positives), streams[2], into(test), "synthetic test"
    )
    counts = np.bincount(train_concept[train_concept >= 0], minlength=n_concepts)
    log.info(
        "synthetic pool: %d x %d, %d concepts at %.4f-%.4f %% prevalence, %d fragmented",
        n,
        dim,
        n_concepts,
        100 * counts.min(initial=0) / n,
        100 * counts.max(initial=0) / n,
        int((frag > 1).sum()),
    )
    return SyntheticConcepts(train, train_concept, test, test_concept, counts / n, frag, seed)
