"""Build any of the twelve objectives by name from embeddings or from precomputed kernels."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from raresift.errors import ConfigError, ValidationError
from raresift.kernels import (
    DEFAULT_METRIC,
    DenseKernel,
    FeatureKernel,
    SparseKernel,
    check_metric,
    knn_kernel,
    similarity,
)
from raresift.pool import check_matrix
from raresift.submodular.base import Kernel, SetFunction, check_rectangular
from raresift.submodular.facility import FacilityLocationFamily
from raresift.submodular.graphcut import GraphCutFamily
from raresift.submodular.logdet import LogDetFamily

log = logging.getLogger("raresift")

DENSE_LIMIT = 32_768  # above this many candidates, kernel="auto" gives FL a sparse k-NN kernel
DEFAULT_NEIGHBORS = 100


@dataclass(frozen=True)
class _Spec:
    family: str  # "fl", "gc" or "logdet"
    query: bool  # needs a query set
    conditioning: bool  # needs a conditioning set
    submodular: bool  # on every kernel without negative similarities (SetFunction.submodular)
    data_kernel: bool = True  # needs similarities among the candidates


OBJECTIVES: dict[str, _Spec] = {
    "fl": _Spec("fl", False, False, True),
    "gc": _Spec("gc", False, False, True),
    "logdet": _Spec("logdet", False, False, True),
    "flvmi": _Spec("fl", True, False, True),
    "flqmi": _Spec("fl", True, False, True, data_kernel=False),
    "gcmi": _Spec("gc", True, False, True, data_kernel=False),
    "logdetmi": _Spec("logdet", True, False, False),
    "flcg": _Spec("fl", False, True, True),
    "gccg": _Spec("gc", False, True, True),
    "logdetcg": _Spec("logdet", False, True, True),
    "flcmi": _Spec("fl", True, True, True),
    "logdetcmi": _Spec("logdet", True, True, False),
}


def objective_names() -> list[str]:
    """The twelve objective names, plain functions first."""
    return list(OBJECTIVES)


def objective_without(name: str, missing: str) -> str:
    """The objective of ``name``'s family without its ``missing`` ("query" or "conditioning") set.

    >>> objective_without("flcmi", "conditioning"), objective_without("logdetmi", "query")
    ('flvmi', 'logdet')
    """
    spec = OBJECTIVES[name]
    query = spec.query and missing != "query"
    conditioning = spec.conditioning and missing != "conditioning"
    for other, s in OBJECTIVES.items():
        if (s.family, s.query, s.conditioning) == (spec.family, query, conditioning):
            if s.data_kernel:
                return other
    return spec.family


def _check_parameter(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        raise ValidationError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not np.isfinite(value) or value < 0:
        raise ValidationError(f"{name} must be finite and >= 0, got {value}")
    return value


def make_objective(
    name: str,
    data: Any = None,
    query: Any = None,
    conditioning: Any = None,
    *,
    metric: str = DEFAULT_METRIC,
    eta: float = 1.0,
    nu: float = 1.0,
    lambda_: float = 1.0,
    kernel: str = "auto",
    k: int = DEFAULT_NEIGHBORS,
    knn_index: str = "Flat",
    knn_mode: str = "union",
    data_kernel: Any = None,
    query_kernel: Any = None,
    conditioning_kernel: Any = None,
    query_query_kernel: Any = None,
    conditioning_conditioning_kernel: Any = None,
    query_conditioning_kernel: Any = None,
) -> SetFunction:
    """Build objective ``name`` (see :data:`OBJECTIVES`) over the candidates.

    Give embeddings (``data`` n x d, ``query`` q x d, ``conditioning`` p x d, compared with
    ``metric``) or precomputed kernels (``data_kernel`` n x n ndarray / :class:`SparseKernel` /
    :class:`FeatureKernel`, ``query_kernel`` n x q, ``conditioning_kernel`` n x p, and for the
    log-determinant family ``query_query_kernel``, ``conditioning_conditioning_kernel``,
    ``query_conditioning_kernel``). ``eta`` scales query similarities, ``nu`` conditioning ones,
    ``lambda_`` is graph cut's trade-off and log det's ridge (defaults 1, as SIMILAR ran them).

    ``kernel`` picks how candidate-candidate similarities are held when built from ``data``:
    ``"dense"`` (n x n float32), ``"sparse"`` (k-NN, missing similarities are 0; ``knn_mode``
    ``"union"`` keeps ``s_ij`` when either item is among the other's ``k`` nearest, as
    submodlib's ``mode="sparse"`` does, ``"rows"`` only ``i``'s own ``k``; see
    :func:`~raresift.kernels.knn_kernel`),
    ``"features"`` (rows computed on demand; no n x n storage), or ``"auto"``: features for graph
    cut
    and log det (exact, they only read rows of picked items), dense for the facility-location family
    up to 32,768 candidates and sparse k-NN above. The k-NN search (:mod:`raresift.index`) is
    exact for ``knn_index="Flat"`` (default); another Faiss factory string (``"HNSW32"``,
    ``"IVF4096,Flat"``, ...) makes it approximate.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> f = make_objective("flqmi", rng.normal(size=(50, 8)), query=rng.normal(size=(3, 8)))
    >>> f.name, f.n, f.gains().shape
    ('flqmi', 50, (50,))
    """
    if name not in OBJECTIVES:
        raise ConfigError(f"unknown objective {name!r}; choose one of: {', '.join(OBJECTIVES)}")
    spec = OBJECTIVES[name]
    check_metric(metric)
    eta, nu, lambda_ = (
        _check_parameter(eta, "eta"),
        _check_parameter(nu, "nu"),
        _check_parameter(lambda_, "lambda_"),
    )
    if spec.family == "logdet" and lambda_ <= 0:
        raise ValidationError(f"{name}: lambda_ must be > 0 for a log-determinant, got {lambda_}")
    if kernel not in ("auto", "dense", "sparse", "features"):
        raise ValidationError(
            f"unknown kernel {kernel!r}; choose 'auto', 'dense', 'sparse' or 'features'"
        )

    if spec.family == "logdet" and (kernel == "sparse" or isinstance(data_kernel, SparseKernel)):
        raise ValidationError(
            f"{name}: a k-NN kernel is not positive semi-definite, so its log-determinant is "
            "undefined; use kernel='features' (exact, never stores n x n) or 'dense'"
        )
    X = None if data is None else check_matrix(data, "data")
    n = _ground_size(X, data_kernel, query_kernel, conditioning_kernel)
    dim = None if X is None else X.shape[1]
    Xq = _side_set(name, spec.query, query, query_kernel, "query", dim)
    Xp = _side_set(name, spec.conditioning, conditioning, conditioning_kernel, "conditioning", dim)

    def rect(given, side, what):
        if given is not None:
            return check_rectangular(given, n, what)
        return similarity(X, side, metric)

    def square(given, side, what, size):
        if given is not None:
            arr = np.asarray(given, dtype=np.float32)
            if arr.shape != size or not np.all(np.isfinite(arr)):
                raise ValidationError(f"the {what} kernel must be finite with shape {size}")
            return arr
        if X is None:
            raise ValidationError(f"{name} needs {what} embeddings or the {what} kernel")
        return similarity(*side, metric=metric)

    Kq = rect(query_kernel, Xq, "query") if spec.query else None
    Kp = rect(conditioning_kernel, Xp, "conditioning") if spec.conditioning else None
    if data_kernel is None and X is not None and spec.data_kernel:
        kernel = _kernel_kind(name, spec, kernel, n, k)
    fused = spec.family == "fl" and name != "flqmi" and kernel == "dense"
    if fused and data_kernel is None and X is not None:
        K = None  # built below, with the first gains summed while it is built
    elif spec.data_kernel:
        K = _data_kernel(name, X, data_kernel, metric, kernel, k, knn_index, knn_mode)
    else:
        K = None

    if spec.family == "fl":
        if name == "flqmi":
            obj = FacilityLocationFamily(Kq, modular=eta * Kq.max(axis=1), name=name)
        else:
            m_q = None if Kq is None else eta * Kq.max(axis=1)
            cap = None if m_q is None else (m_q if name == "flvmi" else np.maximum(m_q, 0))
            floor = None if Kp is None else np.maximum(nu * Kp.max(axis=1), 0)
            if K is None:
                obj = FacilityLocationFamily.from_embeddings(X, metric, cap, floor, name)
            else:
                obj = FacilityLocationFamily(K, cap=cap, floor=floor, name=name)
    elif spec.family == "gc":
        if name == "gcmi":
            obj = GraphCutFamily(
                None, lambda_, Kq.sum(axis=1, dtype=np.float64), use_column_sums=False, n=n
            )
        else:
            extra = None if Kp is None else -2 * lambda_ * nu * Kp.sum(axis=1, dtype=np.float64)
            obj = GraphCutFamily(K, lambda_, extra)
    else:
        q, p = (0 if Kq is None else Kq.shape[1]), (0 if Kp is None else Kp.shape[1])
        Kqq = square(query_query_kernel, (Xq,), "query-query", (q, q)) if spec.query else None
        Kpp = (
            square(conditioning_conditioning_kernel, (Xp,), "conditioning-conditioning", (p, p))
            if spec.conditioning
            else None
        )
        Kqp = (
            square(query_conditioning_kernel, (Xq, Xp), "query-conditioning", (q, p))
            if spec.query and spec.conditioning
            else None
        )
        obj = LogDetFamily(K, lambda_, Kq, Kqq, Kp, Kpp, Kqp, eta, nu)
    obj.name = name
    return obj


def _ground_size(X, data_kernel, query_kernel, conditioning_kernel) -> int:
    if X is not None:
        return X.shape[0]
    for given in (data_kernel, query_kernel, conditioning_kernel):
        if given is not None:
            return given.n if isinstance(given, (SparseKernel, FeatureKernel)) else len(given)
    raise ValidationError("give the candidates' embeddings (data=...) or their kernels")


def _side_set(name, needed, embeddings, given_kernel, what, dim):
    """Validate a query or conditioning set; an empty one names the objective to use instead."""
    if not needed:
        if embeddings is not None or given_kernel is not None:
            log.info("%s ignores the %s set it was given", name, what)
        return None
    size = None
    if given_kernel is not None:
        size = np.asarray(given_kernel).shape[-1] if np.ndim(given_kernel) == 2 else 0
    elif embeddings is not None:
        size = np.asarray(embeddings).shape[0] if np.ndim(embeddings) == 2 else 0
    if not size:
        raise ValidationError(
            f"{name} needs a non-empty {what} set; with no {what} items use "
            f"'{objective_without(name, what)}' instead"
        )
    if given_kernel is not None:
        return None
    return check_matrix(embeddings, what, dim=dim)


def _kernel_kind(name: str, spec: _Spec, kernel: str, n: int, k: int) -> str:
    """``kernel`` with ``"auto"`` resolved: features for graph cut and log det (exact, they only
    read rows of picked items), dense for the facility-location family up to
    :data:`DENSE_LIMIT` candidates and sparse k-NN above."""
    if kernel != "auto":
        return kernel
    if spec.family != "fl":
        return "features"
    if n <= DENSE_LIMIT:
        return "dense"
    log.info("%s: %d candidates, using a sparse %d-NN kernel", name, n, k)
    return "sparse"


def _data_kernel(name, X, given, metric, kernel, k, knn_index, knn_mode) -> Kernel:
    if given is not None:
        if isinstance(given, (SparseKernel, FeatureKernel, DenseKernel)):
            return given
        return DenseKernel(given)
    if X is None:
        raise ValidationError(f"{name} needs the candidates' embeddings (data=...) or data_kernel")
    if kernel == "dense":
        return DenseKernel(similarity(X, metric=metric), check=False)
    if kernel == "sparse":
        return knn_kernel(X, k, metric, factory=knn_index, mode=knn_mode)
    return FeatureKernel(X, metric)
