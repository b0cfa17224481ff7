"""Fisher-kernel (papers/001) and importance-based (papers/004) acquisition, side by side.

Three experiments, each printed as a table:

(a) papers/004's synthetic set: 2 features, 3 classes with 2,000 / 500 / 50 points; class 1
    overlaps class 0 (hard for uncertainty sampling), class 2 is rare (hard for random sampling).
    An MLP, 10 seed labels, 10 rounds of 10 labels; test accuracy and balanced accuracy on a fresh
    draw of the same distribution, averaged over seeds.
(b) Fashion-MNIST with 100x class imbalance (classes 5-9 rare, as papers/001 does with MNIST):
    a pool of 600 items per common class and 6 per rare class, a balanced 20-per-class validation
    set, LeNet, 20 seed labels, 5 rounds of 50 labels: rare-class items selected and test accuracy.
(c) Cost of one selection round on the (b) pool with a fitted LeNet: forward and backward
    item-passes through the network and seconds, per strategy.

Run: PYTHONPATH=src python benchmarks/fisher_ibal.py [--part a|b|c|all] [--seeds N]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from raresift.datasets import load_fashion_mnist
from raresift.loop import ActiveLearner
from raresift.models import MLP, LeNet, TorchModel
from raresift.pool import Labels, Pool
from raresift.strategies import SelectionState, make_strategy

RARE = np.arange(5, 10)


def _table(title: str, header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    print(f"\n{title}")
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)))


def _mean_std(values) -> str:
    v = np.asarray(values, dtype=float)
    return f"{v.mean():.3f} ± {v.std():.3f}"


# --------------------------------------------------------------------------- (a) synthetic
def make_ibal_synthetic(seed: int, sizes=(2000, 500, 50)) -> tuple[np.ndarray, np.ndarray]:
    """papers/004's kind of synthetic set: imbalance plus class overlap, 2 features, 3 classes.

    Class 0 ~ N((0, 0), I); class 1 ~ N((1.5, 0), I) overlaps it heavily; class 2 ~
    N((1, 2.75), 0.5^2 I) is rare and touches the other two only at its edge.
    """
    rng = np.random.default_rng(seed)
    means = np.array([[0.0, 0.0], [1.5, 0.0], [1.0, 2.75]])
    scales = np.array([1.0, 1.0, 0.5])
    y = np.repeat(np.arange(3), sizes)
    x = means[y] + scales[y, None] * rng.normal(size=(y.size, 2))
    order = rng.permutation(y.size)
    return x[order].astype(np.float32), y[order]


def _balanced_accuracy(pred, y) -> float:
    return float(np.mean([np.mean(pred[y == c] == c) for c in np.unique(y)]))


def part_a(seeds: int) -> None:
    strategies = {
        "random": {},
        "entropy": {},
        "ibal": {},
        "ibal-d": {"gamma": 1.0},
        "entropy-d": {"gamma": 1.0},
    }
    acc = {name: [] for name in strategies}
    bal = {name: [] for name in strategies}
    curves = {name: [] for name in strategies}
    rare_found = {name: [] for name in strategies}
    seconds = {name: 0.0 for name in strategies}
    for seed in range(seeds):
        x, y = make_ibal_synthetic(seed)
        x_test, y_test = make_ibal_synthetic(1000 + seed)
        seed_ids = np.random.default_rng(seed).choice(y.size, 10, replace=False)
        for name, params in strategies.items():
            model = TorchModel(MLP(2, 32, n_classes=3, dropout=0.0), epochs=60, lr=0.05,
                               batch_size=32, device="cpu", seed=seed)  # fmt: skip
            learner = ActiveLearner(Pool(x), model, make_strategy(name, **params),
                                    labels=Labels(seed_ids, y[seed_ids]), seed=seed)  # fmt: skip

            def test_accuracy(lrn, _batch, x_test=x_test, y_test=y_test):
                pred = lrn.model.predict_proba(x_test).argmax(1)
                return {"acc": float(np.mean(pred == y_test))}

            start = time.perf_counter()
            records = learner.run(y, rounds=10, budget=10, callback=test_accuracy)
            seconds[name] += time.perf_counter() - start
            print(f"  (a) seed {seed} {name}: acc {records[-1]['acc']:.3f}", flush=True)
            pred = model.predict_proba(x_test).argmax(1)
            acc[name].append(np.mean(pred == y_test))
            bal[name].append(_balanced_accuracy(pred, y_test))
            curves[name].append([r["acc"] for r in records])
            rare_found[name].append(int(np.sum(y[learner.labels.ids] == 2)))
    rows = []
    for name in strategies:
        curve = np.mean(curves[name], axis=0)
        rows.append([
            name, _mean_std(acc[name]), _mean_std(bal[name]), f"{np.mean(curve):.3f}",
            f"{np.mean(rare_found[name]):.1f}", f"{seconds[name] / seeds:.1f}",
        ])  # fmt: skip
    _table(
        f"(a) synthetic 2,000/500/50, MLP, 10 seed + 10 rounds x 10 labels, {seeds} seeds "
        "(test acc. after round 10, mean ± std; area = mean acc. over rounds 1-10)",
        ["strategy", "test acc.", "balanced acc.", "area", "rare labeled", "s/run"],
        rows,
    )
    print("per-round test accuracy (mean over seeds):")
    for name in strategies:
        print(f"  {name:10s}", " ".join(f"{v:.3f}" for v in np.mean(curves[name], axis=0)))


# --------------------------------------------------------------------------- (b) Fashion-MNIST
def imbalanced_fashion(seed: int, per_common=600, ratio=100, per_val=20, per_test=200):
    """Pool (classes 5-9 cut by ``ratio``), balanced validation and test sets, as arrays."""
    rng = np.random.default_rng(seed)
    train, test = load_fashion_mnist("train"), load_fashion_mnist("test")
    pool_idx, val_idx = [], []
    for c in range(10):
        idx = rng.permutation(np.flatnonzero(train.y == c))
        n = per_common if c < 5 else per_common // ratio
        pool_idx.append(idx[:n])
        val_idx.append(idx[n : n + per_val])
    test_idx = np.concatenate(
        [rng.choice(np.flatnonzero(test.y == c), per_test, replace=False) for c in range(10)]
    )
    pool_idx, val_idx = np.concatenate(pool_idx), np.concatenate(val_idx)
    x = np.concatenate([train.X[pool_idx], train.X[val_idx]]).astype(np.float32)
    y = np.concatenate([train.y[pool_idx], train.y[val_idx]])
    val_ids = np.arange(pool_idx.size, pool_idx.size + val_idx.size)
    return x, y, val_ids, test.X[test_idx].astype(np.float32), test.y[test_idx]


def _lenet(seed: int) -> TorchModel:
    return TorchModel(LeNet(n_classes=10), epochs=25, lr=0.05, batch_size=32,
                      input_scale=1 / 255, device="cpu", seed=seed)  # fmt: skip


FISHER_SETUPS = {
    "random": ("random", {}),
    "entropy": ("entropy", {}),
    "pcc (weak)": ("pcc", {}),
    "fisher-weak argmax": ("fisher-weak", {}),
    "fisher-weak p(y,z)": ("fisher-weak", {"pseudo_label": "nearest-validation"}),
    "fisher all p(y,z)": ("fisher", {"pseudo_label": "nearest-validation"}),
    "fisher-weak p(y,z) sim-order": (
        "fisher-weak",
        {"pseudo_label": "nearest-validation", "pairing": "similarity"},
    ),
    "fisher-weak true y (oracle)": ("fisher-weak", {"pseudo_label": "true"}),
}


def part_b(seeds: int) -> None:
    rare = {k: [] for k in FISHER_SETUPS}
    rare_curve = {k: [] for k in FISHER_SETUPS}
    acc = {k: [] for k in FISHER_SETUPS}
    rare_acc = {k: [] for k in FISHER_SETUPS}
    seconds = {k: [] for k in FISHER_SETUPS}
    for seed in range(seeds):
        x, y, val_ids, x_test, y_test = imbalanced_fashion(seed)
        pool_size = x.shape[0] - val_ids.size
        seed_ids = np.random.default_rng(seed).choice(pool_size, 20, replace=False)
        start_ids = np.concatenate([seed_ids, val_ids])
        for key, (name, params) in FISHER_SETUPS.items():
            if params.get("pseudo_label") == "true":  # pool ids are positions 0..n-1
                params = {**params, "true_labels": lambda ids, y=y: y[ids]}
            model = _lenet(seed)
            learner = ActiveLearner(Pool(x), model, make_strategy(name, **params),
                                    labels=Labels(start_ids, y[start_ids]),
                                    validation_ids=val_ids, seed=seed)  # fmt: skip
            start = time.perf_counter()
            records = learner.run(y, rounds=5, budget=50)
            seconds[key].append(time.perf_counter() - start)
            print(f"  (b) seed {seed} {key}: {seconds[key][-1]:.0f} s", flush=True)
            picked = [np.isin(y[r["batch_ids"]], RARE).sum() for r in records]
            rare[key].append(int(np.sum(picked)))
            rare_curve[key].append(np.cumsum(picked))
            pred = model.predict_proba(x_test).argmax(1)
            acc[key].append(np.mean(pred == y_test))
            is_rare = np.isin(y_test, RARE)
            rare_acc[key].append(np.mean(pred[is_rare] == y_test[is_rare]))
    rows = [
        [key, _mean_std(rare[key]), " ".join(f"{v:.1f}" for v in np.mean(rare_curve[key], 0)),
         _mean_std(acc[key]), _mean_std(rare_acc[key]), f"{np.mean(seconds[key]):.0f}"]
        for key in FISHER_SETUPS
    ]  # fmt: skip
    _table(
        f"(b) Fashion-MNIST, classes 5-9 100x rarer (pool 3,030: 30 rare), LeNet 25 epochs, "
        f"20 seed labels + 5 rounds x 50, 200-item balanced validation, {seeds} seeds",
        ["strategy", "rare picked (of 250)", "cumulative per round", "test acc.",
         "rare-class test acc.", "s/run"],
        rows,
    )  # fmt: skip


# --------------------------------------------------------------------------- (c) cost
class PassCounter:
    """Item-passes through a LeNet: forward at conv1, backward at the classifier's input."""

    def __init__(self, network):
        self.forward = self.backward = 0
        self._handles = [
            network.conv1.register_forward_hook(self._count_forward),
            network.classifier.register_full_backward_hook(self._count_backward),
        ]

    def _count_forward(self, _m, inputs, _out):
        self.forward += inputs[0].shape[0]

    def _count_backward(self, _m, grad_input, _grad_output):
        if grad_input[0] is not None:
            self.backward += grad_input[0].shape[0]

    def close(self):
        for h in self._handles:
            h.remove()


def part_c() -> None:
    x, y, val_ids, _, _ = imbalanced_fashion(0)
    pool = Pool(x)
    pool_size = x.shape[0] - val_ids.size
    train_ids = np.random.default_rng(0).choice(pool_size, 120, replace=False)
    labels = Labels(np.concatenate([train_ids, val_ids]), y[np.concatenate([train_ids, val_ids])])
    model = _lenet(0).fit(x[train_ids], y[train_ids])
    candidates = np.setdiff1d(np.arange(pool_size), train_ids)
    setups = {
        "entropy": ("entropy", {}),
        "pcc (weak)": ("pcc", {}),
        "fisher-weak argmax": ("fisher-weak", {}),
        "fisher-weak p(y,z)": ("fisher-weak", {"pseudo_label": "nearest-validation"}),
        "fisher-weak tr(C_zg), K=4": ("fisher-weak", {"pseudo_label": "mc-trace",
                                                      "n_perturbations": 4}),
        "fisher-weak I(z;g), K=4": ("fisher-weak", {"pseudo_label": "mc-mi",
                                                    "n_perturbations": 4}),
        "ibal": ("ibal", {}),
        "ibal-d": ("ibal-d", {"input_shape": (1, 28, 28)}),
        "entropy-d": ("entropy-d", {"input_shape": (1, 28, 28)}),
    }  # fmt: skip
    rows = []
    for key, (name, params) in setups.items():
        strategy = make_strategy(name, **params)
        state = SelectionState(pool, labels, model, rng=np.random.default_rng(0),
                               validation_ids=val_ids)  # fmt: skip
        # the first call pays one-off costs (the autoencoder's training, lazy torch set-up);
        # the second is the steady per-round cost
        start = time.perf_counter()
        strategy.select(state, candidates, 50)
        first = time.perf_counter() - start
        counter = PassCounter(model.network)
        start = time.perf_counter()
        strategy.select(state, candidates, 50)
        elapsed = time.perf_counter() - start
        counter.close()
        rows.append([
            key, f"{counter.forward:,}", f"{counter.backward:,}",
            f"{counter.forward / candidates.size:.1f}", f"{counter.backward / candidates.size:.1f}",
            f"{elapsed:.2f}", f"{first:.2f}",
        ])  # fmt: skip
    _table(
        f"(c) one selection round, LeNet, {candidates.size:,} candidates + {val_ids.size} "
        f"validation items, budget 50, torch threads {torch.get_num_threads()}",
        ["strategy", "forward items", "backward items", "fwd/cand", "bwd/cand", "seconds",
         "first call (s, incl. AE training)"],
        rows,
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["a", "b", "c", "all"], default="all")
    parser.add_argument("--seeds", type=int, default=None, help="(a) 5, (b) 3 by default")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (small nets)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.part in ("a", "all"):
        part_a(args.seeds or 5)
    if args.part in ("b", "all"):
        part_b(args.seeds or 3)
    if args.part in ("c", "all"):
        part_c()


if __name__ == "__main__":
    main()
