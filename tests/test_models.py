import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from raresift.datasets import load_fashion_mnist
from raresift.errors import ConfigError, ValidationError
from raresift.models import MLP, LeNet, ResNet18, SklearnModel, TorchModel, last_layer_gradients

from .conftest import load_or_skip


def blobs(rng, n_per_class=40, n_classes=3, dim=5, spread=0.3):
    centers = rng.normal(scale=3.0, size=(n_classes, dim))
    y = np.repeat(np.arange(n_classes), n_per_class)
    X = centers[y] + rng.normal(scale=spread, size=(y.size, dim))
    return X.astype(np.float32), y


# ---------------------------------------------------------------- SklearnModel
def test_sklearn_columns_follow_class_index_when_classes_are_missing(rng):
    X, y = blobs(rng, n_classes=3)
    keep = y != 1
    model = SklearnModel(LogisticRegression(), n_classes=4).fit(X[keep], y[keep] * 1)
    proba = model.predict_proba(X)
    assert proba.shape == (X.shape[0], 4)
    assert np.all(proba[:, [1, 3]] == 0)
    np.testing.assert_allclose(proba.sum(1), 1.0)
    # class-2 items get their probability in column 2, not column 1
    assert np.mean(proba[y == 2].argmax(1) == 2) > 0.9


def test_sklearn_one_class_predicts_it_with_certainty(rng):
    X, _ = blobs(rng)
    model = SklearnModel(LogisticRegression(), n_classes=3).fit(X[:5], [2] * 5)
    proba = model.predict_proba(X)
    assert np.all(proba[:, 2] == 1) and np.all(proba[:, :2] == 0)


def test_sklearn_clones_each_fit(rng):
    X, y = blobs(rng)
    estimator = LogisticRegression()
    model = SklearnModel(estimator, n_classes=3)
    model.fit(X, y)
    first = model.estimator_
    model.fit(X[::-1], y[::-1])
    assert model.estimator_ is not first
    assert not hasattr(estimator, "coef_")


@pytest.mark.parametrize("labels", [[0, 1], [1, 3]])
def test_sklearn_binary_logistic_fast_path_equals_sklearn(rng, labels):
    X, y = blobs(rng, n_classes=2)
    y = np.asarray(labels)[y]
    model = SklearnModel(LogisticRegression(), n_classes=4).fit(X, y)
    wide = X.astype(np.float64)
    proba = model.predict_proba(wide)
    assert np.array_equal(proba[:, labels], model.estimator_.predict_proba(wide))
    assert np.all(np.delete(proba, labels, axis=1) == 0)
    # float32 rows: one float32 product (no float64 copy); float16 rows widened in blocks
    for dtype in (np.float32, np.float16):
        rows = X.astype(dtype)
        expected = model.estimator_.predict_proba(rows.astype(np.float64))
        for got in (model.predict_proba(rows), model.predict_proba_trusted(rows)):
            np.testing.assert_allclose(got[:, labels], expected, rtol=1e-5, atol=1e-6)


def test_sklearn_trusted_scoring_checks_shape_but_not_values(rng):
    X, y = blobs(rng, n_classes=2)
    model = SklearnModel(LogisticRegression()).fit(X, y)
    with pytest.raises(ValidationError, match="features"):
        model.predict_proba_trusted(X[:, :1])
    with pytest.raises(ValidationError, match="NaN"):
        model.predict_proba(np.full_like(X[:2], np.nan))


def test_sklearn_validates(rng):
    X, y = blobs(rng)
    with pytest.raises(ValidationError, match="not fitted"):
        SklearnModel(LogisticRegression()).predict_proba(X)
    with pytest.raises(ValidationError, match="out of range"):
        SklearnModel(LogisticRegression(), n_classes=2).fit(X, y)
    with pytest.raises(ConfigError, match="SklearnModel: estimator=.* it must be a probabilistic"):
        SklearnModel(object())
    model = SklearnModel(LogisticRegression()).fit(X, y)
    with pytest.raises(ValidationError, match="features per row"):
        model.predict_proba(X[:, :2])


def test_sklearn_gradient_embeddings_match_softmax_regression_gradient(rng):
    X, y = blobs(rng)
    model = SklearnModel(LogisticRegression(), n_classes=3).fit(X, y)
    g = model.gradient_embeddings(X[:4], labels=y[:4])
    p = model.predict_proba(X[:4])
    r = p - np.eye(3)[y[:4]]
    expected = np.concatenate([r, (r[:, :, None] * X[:4, None, :]).reshape(4, -1)], axis=1)
    np.testing.assert_allclose(g, expected, rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- layout
def test_last_layer_gradients_uses_argmax_without_labels():
    proba = np.array([[0.2, 0.8], [0.6, 0.4]])
    e = np.array([[1.0, 2.0], [3.0, -1.0]])
    g = last_layer_gradients(proba, e)
    np.testing.assert_allclose(g[0], [0.2, -0.2, 0.2, 0.4, -0.2, -0.4])
    np.testing.assert_allclose(g[1], [-0.4, 0.4, -1.2, 0.4, 1.2, -0.4])


# ---------------------------------------------------------------- TorchModel
def easy_torch_model(dim=5, n_classes=3, **kw):
    params = dict(epochs=100, lr=0.05, batch_size=32, device="cpu", seed=0)
    params.update(kw)
    return TorchModel(MLP(dim, 32, n_classes=n_classes, dropout=0.2), **params)


def test_torch_reaches_target_accuracy_and_stops(rng):
    X, y = blobs(rng)
    model = easy_torch_model().fit(X, y)
    assert model.train_accuracy_ >= 0.99
    assert model.n_epochs_ < 100  # stopped at the target, not at the cap
    assert np.mean(model.predict_proba(X).argmax(1) == y) >= 0.99


def test_torch_is_deterministic_and_retrains_from_scratch(rng):
    X, y = blobs(rng)
    a = easy_torch_model().fit(X, y)
    p1 = a.predict_proba(X)
    a.fit(X, y)  # a second fit starts again from a fresh initialisation
    np.testing.assert_array_equal(a.predict_proba(X), p1)
    b = easy_torch_model().fit(X, y)
    np.testing.assert_array_equal(b.predict_proba(X), p1)
    c = easy_torch_model(seed=1).fit(X, y)
    assert not np.array_equal(c.predict_proba(X), p1)


def test_torch_fit_leaves_global_rng_alone(rng):
    X, y = blobs(rng)
    model = easy_torch_model(epochs=2)  # building the network itself draws from torch's RNG
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    model.fit(X, y)
    model.mc_dropout_proba(X, n_samples=2)
    assert torch.equal(torch.rand(3), expected)


def test_xavier_reinitialisation(rng):
    X, y = blobs(rng)
    net = MLP(5, 32, n_classes=3)
    model = TorchModel(net, epochs=1, device="cpu")
    with torch.no_grad():
        for p in net.parameters():
            p.fill_(7.0)
    model.reset_parameters()
    assert torch.all(net.classifier.bias == 0)
    bound = np.sqrt(6 / (32 + 3))
    w = net.classifier.weight.detach()
    assert float(w.abs().max()) <= bound and float(w.std()) > 0


def test_gradient_embeddings_match_autograd(rng):
    X, y = blobs(rng, n_per_class=10)
    model = easy_torch_model(epochs=3).fit(X, y)
    net = model.network
    hypothesised = model.predict_proba(X).argmax(1)
    for labels, targets in ((None, hypothesised), (y, y)):
        g = model.gradient_embeddings(X[:6], labels=None if labels is None else labels[:6])
        assert g.shape == (6, 3 * (32 + 1))
        for i in range(6):
            net.zero_grad()
            logits = net(torch.from_numpy(X[i : i + 1]))
            torch.nn.functional.cross_entropy(logits, torch.tensor([int(targets[i])])).backward()
            expected = torch.cat([net.classifier.bias.grad, net.classifier.weight.grad.flatten()])
            np.testing.assert_allclose(g[i], expected.numpy(), rtol=1e-4, atol=1e-6)


def test_penultimate_is_network_features(rng):
    X, y = blobs(rng)
    model = easy_torch_model(epochs=2, chunk_size=7).fit(X, y)
    with torch.no_grad():
        expected = model.network.features(torch.from_numpy(X)).numpy()
    np.testing.assert_allclose(model.penultimate(X), expected, rtol=1e-5, atol=1e-6)


def test_mc_dropout_samples_differ_and_follow_seed(rng):
    X, y = blobs(rng)
    model = TorchModel(MLP(5, 64, 3, dropout=0.5), epochs=5, device="cpu").fit(X, y)
    samples = model.mc_dropout_proba(X, n_samples=4, seed=3)
    assert samples.shape == (4, X.shape[0], 3)
    np.testing.assert_allclose(samples.sum(-1), 1.0, rtol=1e-5)
    assert not np.allclose(samples[0], samples[1])
    np.testing.assert_array_equal(samples, model.mc_dropout_proba(X, n_samples=4, seed=3))
    assert not model.network.training  # dropout switched off again afterwards
    np.testing.assert_array_equal(model.predict_proba(X), model.predict_proba(X))


def test_mc_dropout_needs_dropout(rng):
    X, y = blobs(rng)
    model = TorchModel(MLP(5, 8, 3, dropout=0.0), epochs=1, device="cpu").fit(X, y)
    with pytest.raises(ValidationError, match="dropout"):
        model.mc_dropout_proba(X)


def test_lenet_accepts_flat_rows_and_images(rng):
    X = rng.random((12, 784)).astype(np.float32)
    y = np.arange(12) % 10
    model = TorchModel(LeNet(10), epochs=1, device="cpu").fit(X, y)
    flat = model.predict_proba(X)
    np.testing.assert_allclose(flat, model.predict_proba(X.reshape(12, 1, 28, 28)))
    assert model.penultimate(X).shape == (12, 50)
    assert model.mc_dropout_proba(X, n_samples=2).shape == (2, 12, 10)
    with pytest.raises(ValidationError, match="expects"):
        model.predict_proba(X[:, :100])


def test_resnet18_trains_on_small_images(rng):
    X = rng.random((16, 3, 32, 32)).astype(np.float32)
    y = np.arange(16) % 4
    model = TorchModel(ResNet18(4, in_channels=3, width=4), epochs=2, device="cpu").fit(X, y)
    assert model.gradient_embeddings(X).shape == (16, 4 * (32 + 1))
    grey = TorchModel(ResNet18(4, in_channels=1, width=4, image_size=28), epochs=1, device="cpu")
    assert grey.fit(X[:, :1, 2:30, 2:30].reshape(16, -1), y).predict_proba(
        X[:, :1, 2:30, 2:30]
    ).shape == (16, 4)


@pytest.mark.realdata
@pytest.mark.slow
def test_lenet_learns_fashion_mnist(rng):
    train = load_or_skip(load_fashion_mnist, "train")
    test = load_or_skip(load_fashion_mnist, "test")
    rows = rng.choice(train.X.shape[0], size=500, replace=False)
    model = TorchModel(LeNet(10), epochs=10, batch_size=32, lr=0.05, input_scale=1 / 255)
    model.fit(train.X[rows], train.y[rows])  # raw uint8 pixels, flat rows of 784
    accuracy = np.mean(model.predict_proba(test.X[:1000]).argmax(1) == test.y[:1000])
    assert accuracy > 0.6, accuracy  # chance is 0.1


def test_torch_validates(rng):
    X, y = blobs(rng)
    with pytest.raises(ConfigError, match=r"TorchModel: network=Linear\(.*\) is invalid"):
        TorchModel(torch.nn.Linear(5, 3))
    with pytest.raises(ConfigError, match="TorchModel: n_classes=4 is invalid; it must be 3"):
        TorchModel(MLP(5, 8, 3), n_classes=4)
    model = easy_torch_model(epochs=1)
    with pytest.raises(ValidationError, match="not fitted"):
        model.predict_proba(X)
    with pytest.raises(ValidationError, match="out of range"):
        model.fit(X, y + 3)
    bad = X.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValidationError, match="NaN"):
        model.fit(bad, y)
    with pytest.raises(ValidationError, match="expects"):
        easy_torch_model(epochs=1).fit(X[:, :4], y)
    with pytest.raises(ConfigError, match="device"):
        TorchModel(MLP(5, 8, 3), device="tpu")


def test_training_batches_are_near_equal_never_a_tiny_remainder():
    # 65 items in batches of at most 32 train as 22 + 22 + 21, not 32 + 32 + 1: a lone item's
    # full SGD step kept a 784-64-10 MLP below 90 % training accuracy on Fashion-MNIST.
    net = MLP(4, 8, n_classes=2)
    sizes = []
    net.body.register_forward_hook(
        lambda module, args, out: sizes.append(args[0].shape[0]) if module.training else None
    )
    X = np.random.default_rng(0).normal(size=(65, 4)).astype(np.float32)
    y = np.arange(65) % 2  # labels unrelated to X: no early stop within two epochs
    TorchModel(net, epochs=2, batch_size=32).fit(X, y)
    assert sorted(sizes) == [21, 21, 22, 22, 22, 22]


@pytest.mark.parametrize("scale", [1.0, 1e-30, 1e6])
def test_linear_scorer_widens_float16_exactly(rng, scale):
    """Every finite half (subnormals, zeros, the largest) widened without torch: the products
    and sums are those over ``astype(np.float32)``, bit for bit, whatever the weights' scale
    (weights beyond 2^16 take the path that scales the block, not the weights), and a row
    scores the same alone as in a block."""
    from raresift.models.sklearn_model import LinearScorer

    every_half = np.arange(1 << 16, dtype=np.uint16).view(np.float16)
    every_half = every_half[np.isfinite(every_half)]
    rows = rng.permutation(np.resize(every_half, 64 * 2100)).reshape(-1, 64)
    w = (rng.standard_normal(64) * scale).astype(np.float32)
    expected = np.einsum("ij,j->i", rows.astype(np.float32), w)
    assert np.array_equal(LinearScorer(w).decide(rows), expected)
    assert np.array_equal(LinearScorer(w).decide(rows[5:7]), expected[5:7])
    assert np.array_equal(LinearScorer(w).decide(rows[3:4].astype(np.float32)), expected[3:4])
