"""Per-round selection time of every registered strategy at 20,000 candidates, both model adapters.

Run from the repository root:

    PYTHONPATH=src python benchmarks/strategies.py [--candidates 20000] [--budget 100]

Data: Fashion-MNIST pixels (scaled to [0, 1]) when installed, else random Gaussian embeddings
with 10 random class centers (``--data random`` forces that). 1,000 items are labeled (100 of
them held out as the validation set, 50 of class 0 form a query set, 50 others a conditioning set
so SIMILAR-style strategies can run too); the rest are the candidates. Each model is trained once;
every strategy then answers ``query(budget)`` ``--repeats`` times and the median is reported, split
into model features (forward passes, gradients, MC dropout) and the selection itself. The last row
runs BADGE on explicit K (D + 1)-wide gradient rows instead of the factored inner products.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits

from raresift.errors import DatasetNotInstalledError, RaresiftError
from raresift.loop import ActiveLearner
from raresift.models import MLP, SklearnModel, TorchModel
from raresift.pool import Labels, Pool
from raresift.strategies import make_strategy, strategy_names


class DenseGradients:
    """Hides a model's ``gradient_factors`` so BADGE builds the explicit K (D + 1)-wide rows."""

    def __init__(self, model):
        self.model = model

    def predict_proba(self, X):
        return self.model.predict_proba(X)

    def gradient_embeddings(self, X, labels=None):
        return self.model.gradient_embeddings(X, labels)


def load_data(kind: str, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, str]:
    if kind in ("auto", "fashion-mnist"):
        try:
            from raresift.datasets import load_fashion_mnist

            data = load_fashion_mnist("train")
            rows = rng.choice(data.X.shape[0], size=n, replace=False)
            X = (data.X[rows].astype(np.float32) / 255.0).reshape(n, -1)
            return X, np.asarray(data.y[rows], dtype=np.int64), "Fashion-MNIST pixels (784-d)"
        except (ImportError, DatasetNotInstalledError):
            if kind == "fashion-mnist":
                raise
    centers = rng.normal(size=(10, 64)).astype(np.float32)
    y = rng.integers(10, size=n)
    X = centers[y] + rng.normal(scale=1.5, size=(n, 64)).astype(np.float32)
    return X, y, "random Gaussian embeddings (64-d, 10 classes)"


DENSE_BADGE = "badge, dense rows"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=20_000)
    parser.add_argument("--labeled", type=int, default=1_000)
    parser.add_argument("--budget", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data", choices=("auto", "fashion-mnist", "random"), default="auto")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch, BLAS threads")
    parser.add_argument("--strategies", default="", help="comma-separated names (default: all)")
    args = parser.parse_args()
    if args.threads:  # torch and the BLAS under numpy both
        torch.set_num_threads(args.threads)
        threadpool_limits(args.threads)

    rng = np.random.default_rng(args.seed)
    n = args.candidates + args.labeled
    X, y, description = load_data(args.data, n, rng)
    pool = Pool(X)
    labeled = np.arange(args.labeled)
    labels = Labels(labeled, y[labeled])
    validation = labeled[-100:]
    query = labeled[:-100][y[labeled[:-100]] == 0][:50]
    conditioning = labeled[:-100][y[labeled[:-100]] != 0][:50]

    models = {
        "torch MLP": TorchModel(
            MLP(X.shape[1], 128, 10, dropout=0.2), epochs=15, lr=0.05, device="cpu"
        ),
        "sklearn LR": SklearnModel(LogisticRegression(max_iter=300), n_classes=10),
    }
    learners, training = {}, {}
    for model_name, model in models.items():
        learners[model_name] = ActiveLearner(
            pool,
            model,
            "random",
            labels=labels,
            query_ids=query,
            conditioning_ids=conditioning,
            validation_ids=validation,
            seed=args.seed,
        )
        start = time.perf_counter()
        learners[model_name].fit()
        training[model_name] = f"{time.perf_counter() - start:8.2f}"

    print(f"data: {description}; {args.candidates:,} candidates, {args.labeled:,} labeled, ")
    print(f"budget {args.budget}, median of {args.repeats} queries")
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__} with {torch.get_num_threads()} threads, "
        f"load average at the start {os.getloadavg()[0]:.1f}"
    )
    print("seconds per query: model features | selection | total")
    header = f"{'strategy':<20}" + "".join(f"{m:>29}" for m in models)
    print(header)
    print("-" * len(header))
    print(f"{'(training, once)':<20}" + "".join(f"{training[m]:>29}" for m in models), flush=True)
    names = args.strategies.split(",") if args.strategies else [*strategy_names(), DENSE_BADGE]
    for name in names:
        cells = [time_queries(learners[m], models[m], name, args) for m in models]
        print(f"{name:<20}" + "".join(f"{cell:>29}" for cell in cells), flush=True)


def time_queries(learner: ActiveLearner, model, name: str, args: argparse.Namespace) -> str:
    """Median features / selection / total seconds of ``args.repeats`` queries, as a cell."""
    learner.strategy = make_strategy("badge" if name == DENSE_BADGE else name)
    learner.model = DenseGradients(model) if name == DENSE_BADGE else model
    timings = []
    try:
        for _ in range(args.repeats):
            learner.query(args.budget)
            timings.append(learner.last_query_seconds)
    except RaresiftError as exc:
        return f"n/a ({type(exc).__name__})"
    features = float(np.median([t["features"] for t in timings]))
    selection = float(np.median([t["selection"] for t in timings]))
    return f"{features:8.3f} {selection:8.3f} {features + selection:8.3f}"


if __name__ == "__main__":
    main()
