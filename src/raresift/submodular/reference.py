"""Run the same objective in submodlib 0.0.3 (optional dependency), for differential tests and
benchmarks. Kernels are named as in :func:`raresift.submodular.make_objective`."""

from __future__ import annotations

from typing import Any

import numpy as np

from raresift.errors import ConfigError
from raresift.submodular.objectives import OBJECTIVES

SUBMODLIB_OPTIMIZERS = {
    "naive": "NaiveGreedy",
    "lazy": "LazyGreedy",
    "stochastic": "StochasticGreedy",
    "lazier": "LazierThanLazyGreedy",
}


def kernel_names(name: str) -> list[str]:
    """The kernels objective ``name`` needs, as keyword names of ``make_objective``."""
    spec = OBJECTIVES[name]
    names = ["data_kernel"] if spec.data_kernel else []
    if spec.query:
        names.append("query_kernel")
    if spec.conditioning:
        names.append("conditioning_kernel")
    if spec.family == "logdet":
        if spec.query:
            names.append("query_query_kernel")
        if spec.conditioning:
            names.append("conditioning_conditioning_kernel")
        if spec.query and spec.conditioning:
            names.append("query_conditioning_kernel")
    return names


def submodlib_function(
    name: str, n: int, kernels: dict[str, Any], eta=1.0, nu=1.0, lambda_=1.0
) -> Any:
    """The submodlib function object computing objective ``name`` on the given dense kernels."""
    try:
        import submodlib as s
    except ImportError:
        raise ConfigError("submodlib is not installed: pip install submodlib-py==0.0.3") from None
    K = kernels.get("data_kernel")
    Kq = kernels.get("query_kernel")
    Kp = kernels.get("conditioning_kernel")
    Kqq = kernels.get("query_query_kernel")
    Kpp = kernels.get("conditioning_conditioning_kernel")
    Kqp = kernels.get("query_conditioning_kernel")
    q = 0 if Kq is None else Kq.shape[1]
    p = 0 if Kp is None else Kp.shape[1]
    build = {
        "fl": lambda: s.FacilityLocationFunction(n=n, mode="dense", sijs=K, separate_rep=False),
        "gc": lambda: s.GraphCutFunction(n=n, mode="dense", lambdaVal=lambda_, ggsijs=K),
        "logdet": lambda: s.LogDeterminantFunction(n=n, mode="dense", lambdaVal=lambda_, sijs=K),
        "flvmi": lambda: s.FacilityLocationMutualInformationFunction(
            n=n, num_queries=q, data_sijs=K, query_sijs=Kq, magnificationEta=eta
        ),
        "flqmi": lambda: s.FacilityLocationVariantMutualInformationFunction(
            n=n, num_queries=q, query_sijs=Kq, queryDiversityEta=eta
        ),
        "gcmi": lambda: s.GraphCutMutualInformationFunction(n=n, num_queries=q, query_sijs=Kq),
        "logdetmi": lambda: s.LogDeterminantMutualInformationFunction(
            n=n, num_queries=q, lambdaVal=lambda_, data_sijs=K, query_sijs=Kq,
            query_query_sijs=Kqq, magnificationEta=eta,
        ),
        "flcg": lambda: s.FacilityLocationConditionalGainFunction(
            n=n, num_privates=p, data_sijs=K, private_sijs=Kp, privacyHardness=nu
        ),
        "gccg": lambda: s.GraphCutConditionalGainFunction(
            n=n, num_privates=p, lambdaVal=lambda_, data_sijs=K, private_sijs=Kp,
            privacyHardness=nu,
        ),
        "logdetcg": lambda: s.LogDeterminantConditionalGainFunction(
            n=n, num_privates=p, lambdaVal=lambda_, data_sijs=K, private_sijs=Kp,
            private_private_sijs=Kpp, privacyHardness=nu,
        ),
        "flcmi": lambda: s.FacilityLocationConditionalMutualInformationFunction(
            n=n, num_queries=q, num_privates=p, data_sijs=K, query_sijs=Kq, private_sijs=Kp,
            magnificationEta=eta, privacyHardness=nu,
        ),
        "logdetcmi": lambda: s.LogDeterminantConditionalMutualInformationFunction(
            n=n, num_queries=q, num_privates=p, lambdaVal=lambda_, data_sijs=K, query_sijs=Kq,
            query_query_sijs=Kqq, private_sijs=Kp, private_private_sijs=Kpp,
            query_private_sijs=Kqp, magnificationEta=eta, privacyHardness=nu,
        ),
    }  # fmt: skip
    if name not in build:
        raise ConfigError(f"unknown objective {name!r}")
    return build[name]()


def submodlib_select(
    fn: Any, budget: int, optimizer: str = "lazy"
) -> tuple[np.ndarray, np.ndarray]:
    """Run submodlib's maximiser; returns (picks, gains) like :class:`Selection`."""
    picks = fn.maximize(
        budget, optimizer=SUBMODLIB_OPTIMIZERS[optimizer], show_progress=False, verbose=False
    )
    return (
        np.array([j for j, _ in picks], dtype=np.int64),
        np.array([g for _, g in picks], dtype=np.float64),
    )
