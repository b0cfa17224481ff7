"""Pooled descriptors, Fisher scores, kernels, k-center, pairing and the Fisher strategies."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import raresift.strategies.fisher as fisher_mod
from raresift.errors import ConfigError, ValidationError
from raresift.models.pooled import perturb, pooled_features, standardize_segments
from raresift.pool import Labels, Pool
from raresift.strategies import SelectionState, make_strategy
from raresift.strategies.coreset import greedy_k_center
from raresift.strategies.fisher import (
    FisherKernel,
    best_pairs,
    gaussian_mutual_information,
    monte_carlo_labels,
    pearson_similarity,
    trace_cross_covariance,
)

LAYERS = ["features.2", "features.5", "features"]


class TinyNet(nn.Module):
    """conv -> act -> pool -> conv -> act -> dropout -> fc -> act | classifier."""

    def __init__(self, n_classes=3, act=nn.ReLU, widths=(4, 6, 8)):
        super().__init__()
        c1, c2, h = widths
        self.features = nn.Sequential(
            nn.Conv2d(1, c1, 3), act(), nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 3), act(), nn.Dropout(0.5),
            nn.Flatten(), nn.Linear(c2 * 2 * 2, h), act(),
        )  # fmt: skip
        self.classifier = nn.Linear(h, n_classes)

    def forward(self, x):
        return self.classifier(self.features(x))


@pytest.fixture
def net():
    torch.manual_seed(0)
    return TinyNet()


def _one_item_reference(net, x, y):
    """Pooled activations and pooled d(CE)/d(activation) for one item, by plain autograd."""
    modules = dict(net.named_modules())
    acts = {}
    handles = [
        modules[name].register_forward_hook(lambda m, i, o, name=name: acts.__setitem__(name, o))
        for name in LAYERS
    ]
    xi = x.clone().requires_grad_(True)
    loss = F.cross_entropy(net(xi), torch.tensor([y]))
    tensors = [acts[name] for name in LAYERS]
    grads = torch.autograd.grad(loss, tensors)
    for h in handles:
        h.remove()

    def pool(t):
        return t.flatten(2).mean(2) if t.dim() > 2 else t

    z = torch.cat([pool(t.detach()) for t in tensors], 1)[0].numpy()
    g = torch.cat([pool(t) for t in grads], 1)[0].numpy()
    return z, g


def test_pooled_fisher_scores_equal_per_item_autograd(net):
    net.eval()
    x = torch.randn(11, 1, 10, 10)
    y = np.array([0, 1, 2, 2, 1, 0, 0, 1, 2, 1, 0])
    out = pooled_features(net, x, LAYERS, y, standardize=False, chunk_size=4)
    assert out.segments == [(0, 4), (4, 10), (10, 18)]
    for i in range(len(y)):
        z, g = _one_item_reference(net, x[i : i + 1], int(y[i]))
        np.testing.assert_allclose(out.z[i], z, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(out.g[i], g, rtol=1e-4, atol=1e-7)
    assert np.abs(out.g).max() > 0  # a non-trivial check


def test_all_class_scores_and_argmax_agree(net):
    x = torch.randn(7, 1, 10, 10)
    every = pooled_features(net, x, LAYERS, "all", standardize=False)
    argmax = pooled_features(net, x, LAYERS, "argmax", standardize=False)
    np.testing.assert_array_equal(argmax.labels, every.proba.argmax(1))
    np.testing.assert_allclose(every.g[np.arange(7), argmax.labels], argmax.g, atol=1e-6)
    assert every.g.shape == (7, 3, 18)


def test_eval_mode_used_and_training_mode_restored(net):
    net.train()  # dropout would make two calls differ in train mode
    x = torch.randn(5, 1, 10, 10)
    a = pooled_features(net, x, LAYERS, "argmax")
    b = pooled_features(net, x, LAYERS, "argmax")
    np.testing.assert_array_equal(a.g, b.g)
    assert net.training


def test_descriptors_only_match_and_default_layer(net):
    x = torch.randn(6, 1, 10, 10)
    only = pooled_features(net, x, LAYERS, None)
    full = pooled_features(net, x, LAYERS, "argmax")
    assert only.g is None
    np.testing.assert_allclose(only.z, full.z, atol=1e-6)
    # default: every ReLU output (4 + 6 + 8 values); "penultimate": the classifier's input
    assert pooled_features(net, x, None, None).segments == [(0, 4), (4, 10), (10, 18)]
    pen = pooled_features(net, x, ["penultimate"], None, standardize=False).z
    np.testing.assert_allclose(pen, net.eval().features(x).detach().numpy(), atol=1e-6)


def test_bad_layers_and_labels(net):
    x = torch.randn(3, 1, 10, 10)
    with pytest.raises(ConfigError, match="unknown layer"):
        pooled_features(net, x, ["nope"])
    with pytest.raises(ValidationError, match="integer class"):
        pooled_features(net, x, LAYERS, np.array([0, 1]))
    with pytest.raises(ValidationError, match="exceeds"):
        pooled_features(net, x, LAYERS, np.array([0, 1, 7]))


def test_standardize_segments_zero_mean_unit_std():
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 5.0, size=(4, 9))
    seg = [(0, 4), (4, 9)]
    s = standardize_segments(x, seg)
    for a, b in seg:
        np.testing.assert_allclose(s[:, a:b].mean(1), 0, atol=1e-5)
        np.testing.assert_allclose(s[:, a:b].std(1), 1, atol=1e-5)


def test_pearson_kernel_is_sum_of_per_scale_correlations():
    rng = np.random.default_rng(1)
    seg = [(0, 3), (3, 8)]
    a_raw, b_raw = rng.normal(size=(2, 8)), rng.normal(size=(3, 8))
    a, b = standardize_segments(a_raw, seg), standardize_segments(b_raw, seg)
    expected = np.array(
        [
            [sum(np.corrcoef(a_raw[i, s:e], b_raw[j, s:e])[0, 1] for s, e in seg) for j in range(3)]
            for i in range(2)
        ]
    )
    np.testing.assert_allclose(pearson_similarity(a, b, seg), expected, atol=1e-5)


def test_fisher_kernel_variants_by_hand():
    seg = [(0, 2)]  # two-value segments standardise to (+1, -1) or (-1, +1)
    za = standardize_segments(np.array([[0.0, 1.0]]), seg)
    ga = standardize_segments(np.array([[5.0, 1.0]]), seg)
    zb = standardize_segments(np.array([[0.0, 2.0], [3.0, 1.0]]), seg)
    gb = standardize_segments(np.array([[1.0, 4.0], [2.0, 0.0]]), seg)
    # R_z = [[1, -1]], R_g = [[-1, 1]]
    kern = {name: FisherKernel(seg, name)(za, ga, zb, gb) for name in ("pearson", "product", "sum")}
    np.testing.assert_allclose(kern["pearson"], [[1, -1]], atol=1e-6)
    np.testing.assert_allclose(kern["product"], [[-1, -1]], atol=1e-6)
    np.testing.assert_allclose(kern["sum"], [[0, 0]], atol=1e-6)
    # "sum" is the dot product of the concatenated, per-segment unit-norm [z; g]
    cat_a = np.hstack([za, ga]) / np.sqrt(2)
    cat_b = np.hstack([zb, gb]) / np.sqrt(2)
    np.testing.assert_allclose(kern["sum"], cat_a @ cat_b.T, atol=1e-6)
    with pytest.raises(ConfigError):
        FisherKernel(seg, "cosine")


def test_kcenter_matches_brute_force_farthest_first():
    rng = np.random.default_rng(3)
    pts = rng.normal(size=(40, 2))
    sim = -np.linalg.norm(pts[:, None] - pts[None], axis=2)
    got = greedy_k_center(lambda i: -sim[i], 40, 6, np.random.default_rng(5))[0]
    chosen = [got[0]]
    for _ in range(5):
        best = sim[:, chosen].max(1)
        best[chosen] = np.inf
        chosen.append(int(np.argmin(best)))
    assert got.tolist() == chosen
    assert len(set(got.tolist())) == 6


@pytest.mark.parametrize("order", ["similarity", "rank"])
def test_best_pairs_matches_brute_force_across_blocks(monkeypatch, order):
    monkeypatch.setattr(fisher_mod, "_BLOCK", 7)
    rng = np.random.default_rng(4)
    sim = rng.normal(size=(5, 30)).astype(np.float32)
    pos, s, rows = best_pairs(lambda a, b: sim[:, a:b], 5, 30, 9, order=order)
    rank = np.argsort(np.argsort(-sim, axis=1), axis=1)  # each pair's rank within its row
    pairs = sorted(
        (rank[r, c] if order == "rank" else 0, -sim[r, c], r, c)
        for r in range(5)
        for c in range(30)
    )
    expected, matched = [], []
    for *_, r, c in pairs:
        if c not in expected:
            expected.append(c)
            matched.append(r)
        if len(expected) == 9:
            break
    assert pos.tolist() == expected
    assert rows.tolist() == matched
    np.testing.assert_allclose(s, sim[rows, pos])
    if order == "rank":  # the first five picks are one per row
        assert sorted(rows[:5].tolist()) == [0, 1, 2, 3, 4]


def test_gaussian_mi_of_correlated_gaussians():
    rng = np.random.default_rng(0)
    k, rho = 4000, 0.8
    z = rng.normal(size=(k, 2))
    g = rho * z + np.sqrt(1 - rho**2) * rng.normal(size=(k, 2))
    mi = gaussian_mutual_information(z[None], g[None], ridge=1e-6)[0]
    assert mi == pytest.approx(-np.log(1 - rho**2), abs=0.05)  # 2 x 0.5 log(1/(1-rho^2))
    independent = gaussian_mutual_information(z[None], rng.normal(size=(k, 2))[None], 1e-6)[0]
    assert abs(independent) < 0.01
    # scale invariance and finiteness with fewer samples than features
    scaled = gaussian_mutual_information(100 * z[None], 0.01 * g[None], ridge=1e-6)[0]
    assert scaled == pytest.approx(mi, abs=1e-4)
    few = gaussian_mutual_information(rng.normal(size=(1, 4, 20)), rng.normal(size=(1, 4, 20)))
    assert np.isfinite(few).all()


def test_trace_cross_covariance_known_value():
    rng = np.random.default_rng(1)
    z = rng.normal(size=(20000, 3)) * np.array([1.0, 2.0, 3.0])
    g = 0.5 * z + rng.normal(size=z.shape)
    # tr(C_zg) = 0.5 * (1 + 4 + 9)
    assert trace_cross_covariance(z[None], g[None])[0] == pytest.approx(7.0, rel=0.03)


def test_mc_estimators_pick_the_class_coupled_to_the_features():
    """With items perturbed, the Fisher score of class d moves with z only through p - onehot(d).

    A linear network on 2-d inputs with an identity feature layer: z = x, g(d) = W^T (p - e_d).
    The estimators must return a valid class per item, be seeded, and the trace must equal the
    brute-force per-item, per-class computation.
    """
    torch.manual_seed(0)
    net = nn.Sequential()
    net.features = nn.Sequential(nn.Linear(4, 6), nn.Tanh())
    net.classifier = nn.Linear(6, 3)
    x = torch.randn(10, 4)
    a = monte_carlo_labels(net, x, ["features"], estimator="mc-trace", n_perturbations=6,
                           generator=torch.Generator().manual_seed(1), noise_std=0.3)  # fmt: skip
    b = monte_carlo_labels(net, x, ["features"], estimator="mc-trace", n_perturbations=6,
                           generator=torch.Generator().manual_seed(1), noise_std=0.3)  # fmt: skip
    np.testing.assert_array_equal(a, b)
    gen = torch.Generator().manual_seed(1)
    zs, gs = [], []
    for _ in range(6):
        f = pooled_features(net, perturb(x, gen, noise_std=0.3), ["features"], "all")
        zs.append(f.z)
        gs.append(f.g)
    z, g = np.stack(zs, 1), np.stack(gs, 2)
    brute = np.array(
        [[np.trace(np.cov(z[i].T, g[i, d].T)[:6, 6:]) for d in range(3)] for i in range(10)]
    )
    np.testing.assert_array_equal(a, brute.argmax(1))
    mi = monte_carlo_labels(net, x, ["features"], estimator="mc-mi", n_perturbations=6,
                            generator=torch.Generator().manual_seed(1), noise_std=0.3)  # fmt: skip
    assert mi.shape == (10,) and mi.min() >= 0 and mi.max() < 3


def test_perturb_rotates_images_slightly():
    gen = torch.Generator().manual_seed(0)
    img = torch.zeros(2, 1, 15, 15)
    img[:, :, 7, :] = 1.0  # a horizontal bar through the centre
    same = perturb(img, gen, max_degrees=0, noise_std=0)
    assert torch.equal(same, img)
    rotated = perturb(img, gen, max_degrees=5, noise_std=0)
    assert not torch.allclose(rotated, img)
    assert rotated[:, :, 7, 7].min() > 0.9  # the centre stays put
    assert (rotated.sum() - img.sum()).abs() / img.sum() < 0.1


# ---------------------------------------------------------------- the strategies
class _Model:
    def __init__(self, network):
        self.network = network

    def predict_proba(self, x):
        with torch.no_grad():
            return torch.softmax(self.network(torch.as_tensor(x)), 1).numpy()

    def network_inputs(self, x):
        return torch.as_tensor(np.asarray(x, dtype=np.float32))


@pytest.fixture
def smooth_net():
    """Tanh units never die, so no pooled segment is constant (a constant one correlates 0)."""
    torch.manual_seed(0)
    return TinyNet(act=nn.Tanh, widths=(8, 12, 16)).eval()


def _duplicate_setup(net, n_cand=60, n_val=8, seed=0):
    """Validation items are near-copies of candidates 0..n_val-1 (ids 100..)."""
    rng = np.random.default_rng(seed)
    cand = rng.normal(size=(n_cand, 1, 10, 10)).astype(np.float32)
    val = cand[:n_val] + 1e-4 * rng.normal(size=(n_val, 1, 10, 10)).astype(np.float32)
    x = np.concatenate([cand, val]).reshape(n_cand + n_val, -1)
    ids = np.concatenate([np.arange(n_cand), 100 + np.arange(n_val)])
    model = _Model(net)
    pred = model.predict_proba(val).argmax(1)
    return x, ids, model, pred


def test_fisher_picks_the_candidates_closest_to_validation(smooth_net):
    x, ids, model, pred = _duplicate_setup(smooth_net)
    val_ids = 100 + np.arange(8)
    labels = Labels(val_ids, pred)  # validation labels = the model's own predictions
    truth = Labels(np.arange(60), model.predict_proba(x[:60].reshape(-1, 1, 10, 10)).argmax(1))
    state = SelectionState(Pool(x, ids=ids), labels, model, validation_ids=val_ids,
                           rng=np.random.default_rng(0))  # fmt: skip
    # 3 segments: a perfect match scores 3 x 3 (product), 3 + 3 (sum) or 3 (pcc)
    for name, params, perfect in [
        ("fisher", {"pseudo_label": "argmax"}, 9),
        ("fisher", {"pseudo_label": "true", "true_labels": truth, "kernel": "sum"}, 6),
        ("fisher", {"pseudo_label": "nearest-validation"}, 9),
        ("pcc", {"validation": "all"}, 3),
    ]:
        strategy = make_strategy(name, layers=LAYERS, input_shape=(1, 10, 10), **params)
        batch = strategy.select(state, np.arange(60), 8)
        assert sorted(batch.ids.tolist()) == list(range(8)), (name, params)
        np.testing.assert_allclose(batch.scores, perfect, atol=1e-3)


def test_fisher_weak_matches_only_misclassified_validation_items(smooth_net):
    x, ids, model, pred = _duplicate_setup(smooth_net)
    val_ids = 100 + np.arange(8)
    wrong = (pred + 1) % 3
    val_labels = np.where(np.arange(8) < 3, wrong, pred)  # items 100..102 are misclassified
    state = SelectionState(Pool(x, ids=ids), Labels(val_ids, val_labels), _Model(smooth_net),
                           validation_ids=val_ids, rng=np.random.default_rng(0))  # fmt: skip
    strategy = make_strategy("pcc", layers=LAYERS, input_shape=(1, 10, 10))
    batch = strategy.select(state, np.arange(60), 3)
    assert sorted(batch.ids.tolist()) == [0, 1, 2]
    # with budget < misclassified count, k-center chooses which validation items to match; the
    # candidates' Fisher scores must be taken under the same labels as their copies' (oracle)
    truth = Labels(np.arange(60), np.r_[val_labels, np.zeros(52, dtype=int)])
    weak = make_strategy("fisher-weak", layers=LAYERS, input_shape=(1, 10, 10),
                         pseudo_label="true", true_labels=truth)  # fmt: skip
    again = weak.select(state, np.arange(60), 2)
    assert set(again.ids.tolist()) <= {0, 1, 2} and len(again) == 2
    assert "validation item 10" in again.reasons[0]


def test_fisher_strategy_is_seeded_and_validates(smooth_net):
    x, ids, model, pred = _duplicate_setup(smooth_net)
    val_ids = 100 + np.arange(8)
    pool = Pool(x, ids=ids)

    def run(seed):
        state = SelectionState(pool, Labels(val_ids, (pred + 1) % 3), model,
                               validation_ids=val_ids, rng=np.random.default_rng(seed))  # fmt: skip
        s = make_strategy("fisher-weak", pseudo_label="mc-mi", n_perturbations=3, layers=LAYERS,
                          input_shape=(1, 10, 10))  # fmt: skip
        return s.select(state, np.arange(60), 5).ids

    np.testing.assert_array_equal(run(1), run(1))
    with pytest.raises(ValidationError, match="validation set"):
        make_strategy("fisher").select(SelectionState(pool, Labels(), model), np.arange(60), 3)
    with pytest.raises(ValidationError, match="no label"):
        make_strategy("fisher").select(
            SelectionState(pool, Labels(), model, validation_ids=val_ids), np.arange(60), 3
        )
    with pytest.raises(ConfigError, match="true_labels"):
        make_strategy("fisher", pseudo_label="true")
    with pytest.raises(ConfigError, match="pseudo_label"):
        make_strategy("fisher", pseudo_label="guess")


def test_default_layers_of_raresift_networks():
    from raresift.models import LeNet, ResNet18

    lenet = LeNet(n_classes=10)
    out = pooled_features(lenet, torch.zeros(2, 1, 28, 28), None, None)
    assert out.segments == [(0, 10), (10, 30), (30, 80)]  # the paper's L = 80
    resnet = ResNet18(n_classes=3, in_channels=1, width=4, image_size=28)
    out = pooled_features(resnet, torch.zeros(2, 1, 28, 28), None, "argmax")
    assert out.segments == [(0, 16), (16, 48)]  # resblock3 + resblock4


@pytest.mark.parametrize("name", ["fisher-weak", "pcc"])
def test_fisher_strategies_run_in_the_active_learner(name):
    from raresift.loop import ActiveLearner
    from raresift.models import LeNet, TorchModel

    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 90)
    x = (rng.random((90, 784)) * 100 + y[:, None] * 60).astype(np.float32)  # flat pixels
    model = TorchModel(LeNet(n_classes=3), epochs=2, input_scale=1 / 255, device="cpu")
    learner = ActiveLearner(
        Pool(x), model, make_strategy(name), labels=Labels(np.arange(30), y[:30]),
        validation_ids=np.arange(20, 30), seed=0,
    )  # fmt: skip
    records = learner.run(y, rounds=2, budget=4)
    picked = np.concatenate([r["batch_ids"] for r in records])
    assert picked.size == 8 and np.unique(picked).size == 8 and picked.min() >= 30
