"""The log-determinant family: LogDet, LogDetMI, LogDetCG and LogDetCMI as one class.

All four are the conditional mutual information ``I(A; Q | P)`` of
``f(X) = log det(K_X + lambda I)`` on one joint kernel over ``V u Q u P`` whose V-Q block is scaled
by ``eta`` and V-P block by ``nu``:

    I(A; Q | P) = f(A u P) + f(Q u P) - f(A u Q u P) - f(P)

With ``Q`` empty it is LogDetCG ``f(A | P)``; with ``P`` empty LogDetMI; with both empty LogDet.
The gain of ``j`` is ``log d_j^2(A u P) - log d_j^2(A u Q u P)``, where ``d_j^2(B)`` is the Schur
complement ``k_jj + lambda - k_jB (K_B + lambda I)^-1 k_Bj``. Each ``d_j^2`` comes from an
incremental Cholesky factorisation (Chen, Zhang & Zhou 2018): one chain of vectors ``c_j`` per base
set, extended by ``e_j = (k_aj - <c_a, c_j>) / d_a`` when ``a`` joins, ``d_j^2 -= e_j^2``;
``O(n |B u A|)`` per step.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.linalg

from raresift.errors import ValidationError
from raresift.submodular.base import Kernel, SetFunction, as_index_set, check_symmetric


class _CholeskyChain:
    """Schur complements ``d_j^2`` of every candidate given a fixed base set plus the selection."""

    def __init__(self, base: np.ndarray, cross: np.ndarray, diag: np.ndarray, capacity: int):
        # base: (b, b) = K_B + lambda I ; cross: (b, n) = K_BV ; diag: (n,) = k_jj + lambda
        b, n = cross.shape
        self.vectors = np.empty((b + capacity, n), dtype=np.float64)
        self.size = b
        if b:
            chol = np.linalg.cholesky(base)  # raises LinAlgError if not positive definite
            self.vectors[:b] = scipy.linalg.solve_triangular(chol, cross, lower=True)
        self.d2 = diag - np.einsum("ij,ij->j", self.vectors[:b], self.vectors[:b])

    def add(self, j: int, row: np.ndarray) -> None:
        """Extend the factorisation by candidate ``j`` whose kernel row (over V) is ``row``."""
        if self.size == self.vectors.shape[0]:
            grown = np.empty((2 * self.size + 1, self.vectors.shape[1]), dtype=np.float64)
            grown[: self.size] = self.vectors
            self.vectors = grown
        c = self.vectors[: self.size]
        e = (row - c[:, j] @ c) / np.sqrt(self.d2[j])
        self.vectors[self.size] = e
        self.size += 1
        self.d2 -= e * e


class LogDetFamily(SetFunction):
    """``I(A; Q | P)`` of the log-determinant on the joint kernel (see the module docstring).

    Parameters
    ----------
    kernel : DenseKernel, FeatureKernel or SparseKernel
        Similarity among the candidates (only rows of selected items and the diagonal are read).
    query_kernel, conditioning_kernel : ndarray (n, q) / (n, p), optional
        Candidates x query / conditioning similarities (unscaled).
    query_query, conditioning_conditioning, query_conditioning : ndarray, optional
        The (q, q), (p, p) and (q, p) blocks.
    """

    all_gains_cheap = True  # every gain is maintained; lazy evaluation saves nothing

    def __init__(
        self,
        kernel: Kernel,
        lambda_: float = 1.0,
        query_kernel: np.ndarray | None = None,
        query_query: np.ndarray | None = None,
        conditioning_kernel: np.ndarray | None = None,
        conditioning_conditioning: np.ndarray | None = None,
        query_conditioning: np.ndarray | None = None,
        eta: float = 1.0,
        nu: float = 1.0,
        name: str = "logdet",
        capacity: int = 64,
    ):
        check_symmetric(kernel, name)
        super().__init__(kernel.n)
        self.kernel = kernel
        self.lambda_, self.eta, self.nu = float(lambda_), float(eta), float(nu)
        self.name = name
        self.query_kernel = query_kernel
        self.query_query = query_query
        self.conditioning_kernel = conditioning_kernel
        self.conditioning_conditioning = conditioning_conditioning
        self.query_conditioning = query_conditioning
        self.has_query = query_kernel is not None and query_kernel.shape[1] > 0
        self.has_conditioning = conditioning_kernel is not None and conditioning_kernel.shape[1] > 0
        # log det of a positive definite kernel is submodular, and so is its gain conditioned
        # on P; the mutual information with a query set is not, in general
        self.submodular = not self.has_query
        self._capacity = capacity
        self._diag = kernel.diagonal() + self.lambda_
        self._reset()

    # -- the joint kernel -------------------------------------------------------------------------
    def _base_blocks(self, with_query: bool) -> tuple[np.ndarray, np.ndarray]:
        """``K_B + lambda I`` and the scaled ``K_BV`` for the base ``B = (Q if with_query) u P``."""
        blocks, cross = [], []
        if with_query:
            blocks.append([self.query_query])
            cross.append(self.eta * self.query_kernel.T)
        if self.has_conditioning:
            if with_query:
                blocks[0].append(self.query_conditioning)
                blocks.append([self.query_conditioning.T, self.conditioning_conditioning])
            else:
                blocks.append([self.conditioning_conditioning])
            cross.append(self.nu * self.conditioning_kernel.T)
        if not blocks:
            return np.zeros((0, 0)), np.zeros((0, self.n))
        base = np.block(blocks).astype(np.float64)
        base[np.diag_indices_from(base)] += self.lambda_
        return base, np.vstack(cross).astype(np.float64)

    def _chain(self, with_query: bool) -> _CholeskyChain:
        base, cross = self._base_blocks(with_query)
        try:
            return _CholeskyChain(base, cross, self._diag, self._capacity)
        except np.linalg.LinAlgError:
            raise ValidationError(
                f"{self.name}: the query/conditioning kernel plus lambda={self.lambda_} is not "
                "positive definite; use a positive lambda_ and a positive semi-definite kernel"
            ) from None

    def _reset(self) -> None:
        self._outer = self._chain(with_query=False)  # given A u P
        self._inner = self._chain(with_query=True) if self.has_query else None  # given A u Q u P

    # -- gains ------------------------------------------------------------------------------------
    def _check(self, d2: np.ndarray, idx: np.ndarray, with_query: bool) -> None:
        bad = ~(d2 > 0)
        if not bad.any():
            return
        j = int(idx[np.argmax(bad)])
        if with_query:
            culprit = f"eta={self.eta}" + (f" (with nu={self.nu})" if self.has_conditioning else "")
        elif self.has_conditioning:
            culprit = f"nu={self.nu}"
        else:
            culprit = f"lambda={self.lambda_}"
        raise ValidationError(
            f"{self.name}: {culprit} makes the joint log-determinant kernel indefinite "
            f"(Schur complement {float(d2[np.argmax(bad)]):.3g} <= 0 for candidate {j}): eta "
            "and nu scale blocks of it, and values above 1, or far apart (eta = 0 with nu = 1), "
            "can break positive definiteness; use eta and nu <= 1 and close to each other, or "
            "a larger lambda_"
        )

    def _gains(self, idx: np.ndarray) -> np.ndarray:
        d2 = self._outer.d2[idx]
        self._check(d2, idx, with_query=False)
        gains = np.log(d2)
        if self._inner is not None:
            d2_inner = self._inner.d2[idx]
            self._check(d2_inner, idx, with_query=True)
            gains -= np.log(d2_inner)
        return gains

    def _add(self, j: int) -> None:
        self._gains(np.array([j]))  # refuses to factor through an indefinite pivot
        row = self.kernel.rows(np.array([j]))[0].astype(np.float64)
        row[j] += self.lambda_
        self._outer.add(j, row)
        if self._inner is not None:
            self._inner.add(j, row)

    # -- from scratch -----------------------------------------------------------------------------
    def _logdet(self, A: np.ndarray, with_query: bool, with_conditioning: bool) -> float:
        """``log det`` of the joint kernel (plus lambda I) restricted to ``A u Q? u P?``."""
        parts = [("V", A)] if A.size else []
        if with_query:
            parts.append(("Q", None))
        if with_conditioning:
            parts.append(("P", None))
        if not parts:
            return 0.0
        blocks = [[self._block(a, ia, b, ib) for b, ib in parts] for a, ia in parts]
        matrix = np.block(blocks).astype(np.float64)
        matrix[np.diag_indices_from(matrix)] += self.lambda_
        sign, value = np.linalg.slogdet(matrix)
        if sign <= 0:
            raise ValidationError(
                f"{self.name}: eta={self.eta}, nu={self.nu}, lambda={self.lambda_} make the joint "
                "log-determinant kernel indefinite; use eta and nu <= 1, or a larger lambda_"
            )
        return float(value)

    def _block(self, a: str, ia, b: str, ib) -> np.ndarray:
        if a == "V" and b == "V":
            return self.kernel.rows(ia)[:, ia]
        if a == "V":
            return (
                self.eta * self.query_kernel[ia]
                if b == "Q"
                else self.nu * self.conditioning_kernel[ia]
            )
        if b == "V":
            return self._block(b, ib, a, ia).T
        if a == b:
            return self.query_query if a == "Q" else self.conditioning_conditioning
        return self.query_conditioning if a == "Q" else self.query_conditioning.T

    def evaluate(self, A: Any) -> float:
        A = as_index_set(A, self.n)
        P = self.has_conditioning
        value = self._logdet(A, False, P) - self._logdet(A[:0], False, P)
        if self.has_query:
            value += self._logdet(A[:0], True, P) - self._logdet(A, True, P)
        return value

    def restrict(self, idx: np.ndarray) -> LogDetFamily:
        idx = np.asarray(idx, dtype=np.int64)
        return LogDetFamily(
            self.kernel.restrict(idx),
            self.lambda_,
            None if self.query_kernel is None else self.query_kernel[idx],
            self.query_query,
            None if self.conditioning_kernel is None else self.conditioning_kernel[idx],
            self.conditioning_conditioning,
            self.query_conditioning,
            self.eta,
            self.nu,
            self.name,
            self._capacity,
        )
