"""Tests of d2l_resnet.gradients: deep plain and residual stacks, gradient norms, training."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator

import pytest
import torch

from d2l_resnet.gradients import (
    STACK_INITS,
    DeepStack,
    TrainHistory,
    block_jacobians,
    chain_jacobian,
    fashion_mnist_features,
    format_ratio,
    gradient_correlation,
    input_gradients,
    layer_grad_norms,
    make_stack,
    train_stack,
    zero_residual_branches,
)


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    """These networks are tiny: one thread is fastest, and fair on a shared machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _batch(n: int = 32, features: int = 16, seed: int = 0,
           dtype: torch.dtype = torch.float64) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    X = torch.randn(n, features, generator=gen, dtype=dtype)
    y = torch.randint(0, 10, (n,), generator=gen)
    return X, y


@pytest.mark.parametrize("batch_norm", [False, True])
def test_zeroed_residual_branches_pass_input_and_gradient_unchanged(batch_norm) -> None:
    net = zero_residual_branches(make_stack(40, width=8, residual=True, batch_norm=batch_norm,
                                            in_features=16, dtype=torch.float64))
    X, y = _batch()
    x0 = net.stem(X)
    x = x0
    for layer in net.layers:
        x = layer(x)
    assert torch.equal(x, x0)
    norms = layer_grad_norms(net, X, y, wrt="input")
    assert len(norms) == 40
    assert norms[0] > 0
    assert norms == pytest.approx([norms[-1]] * 40, rel=1e-12)


def test_zeroing_refuses_a_plain_stack() -> None:
    with pytest.raises(ValueError, match="residual=True"):
        zero_residual_branches(make_stack(3, width=4, in_features=4))


@pytest.mark.parametrize("wrt", ["input", "weight"])
@pytest.mark.parametrize(("residual", "batch_norm"),
                         [(False, False), (False, True), (True, False), (True, True)])
def test_grad_norms_one_positive_value_per_layer(wrt, residual, batch_norm) -> None:
    net = make_stack(7, width=8, residual=residual, batch_norm=batch_norm, in_features=16,
                     dtype=torch.float64)
    norms = layer_grad_norms(net, *_batch(), wrt=wrt)
    assert len(norms) == 7
    assert all(isinstance(v, float) and math.isfinite(v) and v > 0 for v in norms)
    assert all(p.grad is None for p in net.parameters())


def test_weight_grad_norms_match_manual_backward() -> None:
    net = make_stack(5, width=8, batch_norm=True, in_features=16, dtype=torch.float64)
    X, y = _batch()
    norms = layer_grad_norms(net, X, y, wrt="weight")
    torch.nn.functional.cross_entropy(net(X), y).backward()
    expected = [layer.linear.weight.grad.norm().item() for layer in net.layers]
    assert norms == pytest.approx(expected, rel=1e-12)


def test_input_grad_of_last_layer_matches_manual_backward() -> None:
    net = make_stack(4, width=8, residual=True, in_features=16, dtype=torch.float64)
    X, y = _batch()
    norms = layer_grad_norms(net, X, y, wrt="input")
    x = net.stem(X)
    for layer in net.layers[:-1]:
        x = layer(x)
    x_last = x.detach().requires_grad_()
    out = net.layers[-1](x_last)
    logits = net.head(torch.relu(out))
    torch.nn.functional.cross_entropy(logits, y).backward()
    assert norms[-1] == pytest.approx(x_last.grad.norm().item(), rel=1e-12)


def test_plain_gradient_vanishes_with_depth_residual_does_not() -> None:
    X, y = _batch()
    plain = layer_grad_norms(make_stack(60, width=16, in_features=16, dtype=torch.float64),
                             X, y)
    residual = layer_grad_norms(make_stack(60, width=16, residual=True, batch_norm=True,
                                           in_features=16, dtype=torch.float64), X, y)
    assert plain[0] / plain[-1] < 1e-15
    assert 0.1 < residual[0] / residual[-1] < 100
    # The plain gradient shrinks layer after layer.
    assert all(a < b for a, b in itertools.pairwise(plain))


def test_same_seed_gives_plain_and_residual_twins_the_same_weights() -> None:
    plain = make_stack(6, width=8, batch_norm=True, in_features=16, seed=3)
    residual = make_stack(6, width=8, residual=True, batch_norm=True, in_features=16, seed=3)
    for p, q in zip(plain.parameters(), residual.parameters(), strict=True):
        assert torch.equal(p, q)
    X, _ = _batch(dtype=torch.float32)
    assert not torch.allclose(plain(X), residual(X))


def test_make_stack_dtype_and_shapes() -> None:
    net = make_stack(3, width=5, in_features=12, num_classes=4, dtype=torch.float64)
    assert isinstance(net, DeepStack)
    out = net(torch.zeros(2, 3, 4, dtype=torch.float64))   # flattened to (2, 12)
    assert out.shape == (2, 4)
    assert out.dtype == torch.float64


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"depth": 0}, "depth must be a positive integer"),
        ({"depth": 2.5}, "depth must be a positive integer"),
        ({"depth": 3, "width": -1}, "width must be a positive integer"),
        ({"depth": 3, "in_features": 0}, "in_features must be a positive integer"),
        ({"depth": 3, "dtype": torch.int64}, "dtype must be torch.float32 or torch.float64"),
    ],
)
def test_make_stack_rejects_bad_arguments(kwargs, match) -> None:
    with pytest.raises(ValueError, match=match):
        make_stack(**kwargs)


def test_stack_rejects_wrong_input_size() -> None:
    net = make_stack(2, width=4, in_features=16)
    with pytest.raises(ValueError, match="in_features=12"):
        net(torch.zeros(2, 12))


def test_grad_norms_reject_bad_arguments() -> None:
    net = make_stack(2, width=4, in_features=16, dtype=torch.float64)
    X, y = _batch()
    with pytest.raises(ValueError, match=r"wrt 'bias'.*'input', 'weight'"):
        layer_grad_norms(net, X, y, wrt="bias")
    with pytest.raises(ValueError, match=r"y must be \(N,\)"):
        layer_grad_norms(net, X, y[:5])
    with pytest.raises(ValueError, match="expected a DeepStack"):
        layer_grad_norms(torch.nn.Linear(16, 10), X, y)


def test_chain_jacobian_is_the_autograd_jacobian_of_the_composition() -> None:
    torch.manual_seed(0)
    mats = [torch.randn(3, 3, dtype=torch.float64) for _ in range(4)]
    blocks = [lambda v, M=M: torch.tanh(M @ v) for M in mats]

    def composed(v: torch.Tensor) -> torch.Tensor:
        for block in blocks:
            v = block(v)
        return v

    x = torch.tensor([0.3, -0.2, 0.5], dtype=torch.float64)
    jacobians, x_out = block_jacobians(blocks, x)
    assert len(jacobians) == 4
    assert torch.allclose(x_out, composed(x))
    expected = torch.autograd.functional.jacobian(composed, x)
    assert torch.allclose(chain_jacobian(jacobians), expected)
    # Order matters: the product taken the wrong way round is a different matrix.
    wrong = jacobians[0]
    for J in jacobians[1:]:
        wrong = wrong @ J
    assert not torch.allclose(wrong, expected)


def test_jacobian_helpers_reject_bad_arguments() -> None:
    with pytest.raises(ValueError, match="vector"):
        block_jacobians([torch.tanh], torch.zeros(2, 2))
    with pytest.raises(ValueError, match="at least one"):
        block_jacobians([], torch.zeros(2))
    with pytest.raises(ValueError, match="at least one"):
        chain_jacobian([])


def _easy_task(n: int = 512) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(1)
    X = torch.randn(n, 16, generator=gen)
    y = (X[:, :4].argmax(dim=1))            # 4 classes, learnable by a linear layer
    return X, y


def test_train_stack_is_seeded_and_learns() -> None:
    X, y = _easy_task()
    runs = [train_stack(make_stack(3, width=16, residual=True, batch_norm=True,
                                   in_features=16, seed=0),
                        X, y, num_steps=60, batch_size=64, lr=0.05, progress=False)
            for _ in range(2)]
    assert runs[0].losses == runs[1].losses
    assert len(runs[0].losses) == 60
    assert runs[0].final_loss(10) < 0.5 * runs[0].losses[0]


def test_train_stack_rejects_bad_arguments() -> None:
    X, y = _easy_task(64)
    net = make_stack(2, width=4, in_features=16)
    with pytest.raises(ValueError, match="num_steps"):
        train_stack(net, X, y, num_steps=0)
    with pytest.raises(ValueError, match="larger than the 64 examples"):
        train_stack(net, X, y, num_steps=1, batch_size=65)
    with pytest.raises(ValueError, match="lr must be a positive number"):
        train_stack(net, X, y, num_steps=1, lr=-0.1)
    with pytest.raises(ValueError, match="same examples"):
        train_stack(net, X, y[:10], num_steps=1)
    with pytest.raises(ValueError, match="no recorded steps"):
        TrainHistory("empty").final_loss()


@pytest.mark.parametrize(("ratio", "text"), [(3.29e-4, "3e-4"), (2.9, "3"), (13.2, "1e1"),
                                             (5.67e32, "6e32"), (1.0, "1"), (0.999, "1")])
def test_format_ratio_keeps_one_significant_digit(ratio, text) -> None:
    assert format_ratio(ratio) == text


@pytest.mark.parametrize("bad", [0.0, -1.0, float("inf"), float("nan")])
def test_format_ratio_rejects_non_positive(bad) -> None:
    with pytest.raises(ValueError, match="positive finite"):
        format_ratio(bad)


def test_fashion_mnist_features_pools_normalizes_and_subsets(monkeypatch) -> None:
    import d2l_resnet.gradients

    images = torch.arange(10 * 28 * 28).reshape(10, 28, 28).remainder(256).to(torch.uint8)
    labels = torch.arange(10)
    monkeypatch.setattr(d2l_resnet.gradients, "load_fashion_mnist_tensors",
                        lambda train=True, root=None: (images, labels))
    X, y = fashion_mnist_features(4, seed=1, pool=2)
    assert X.shape == (4, 196)
    assert X.dtype == torch.float32
    assert y.dtype == torch.int64
    assert len(set(y.tolist())) == 4
    k = int(y[0])
    pixels = (images[k].float() / 255 - d2l_resnet.data.FASHION_MNIST_MEAN) \
        / d2l_resnet.data.FASHION_MNIST_STD
    assert X[0, 0].item() == pytest.approx(pixels[:2, :2].mean().item(), rel=1e-5)
    X2, y2 = fashion_mnist_features(4, seed=1, pool=2)
    assert torch.equal(X, X2)
    assert torch.equal(y, y2)
    with pytest.raises(ValueError, match="pool must divide 28"):
        fashion_mnist_features(4, pool=3)
    with pytest.raises(ValueError, match="at most 10"):
        fashion_mnist_features(11)


@pytest.mark.parametrize(("env", "progress", "bar"), [("1", None, False), ("", None, True),
                                                      ("1", True, True), ("", False, False)])
def test_train_stack_progress_bar_follows_argument_then_environment(monkeypatch, env, progress,
                                                                   bar) -> None:
    import tqdm.auto

    made = []

    def fake_tqdm(iterable, **kwargs):
        made.append(kwargs)
        return iterable

    monkeypatch.setattr(tqdm.auto, "tqdm", fake_tqdm)
    monkeypatch.setenv("TQDM_DISABLE", env)
    X, y = _easy_task(64)
    train_stack(make_stack(1, width=4, in_features=16), X, y, num_steps=2, batch_size=32,
                progress=progress, name="run")
    assert bool(made) == bar


# -- Kaiming initialization, any network's blocks, gradients at nearby inputs --------------


def test_kaiming_stack_has_he_variance_and_zero_biases() -> None:
    assert STACK_INITS == ("default", "kaiming")
    width = 256
    default = make_stack(3, width=width, in_features=width, seed=0)
    kaiming = make_stack(3, width=width, in_features=width, seed=0, init="kaiming")
    for d, k in zip(default.layers, kaiming.layers, strict=True):
        assert k.linear.weight.var().item() == pytest.approx(2 / width, rel=0.05)
        assert d.linear.weight.var().item() == pytest.approx(1 / (3 * width), rel=0.05)
        assert not k.linear.bias.any()
    assert not kaiming.stem.bias.any() and not kaiming.head.bias.any()
    again = make_stack(3, width=width, in_features=width, seed=0, init="kaiming")
    assert all(torch.equal(p, q) for p, q in zip(kaiming.parameters(), again.parameters(),
                                                 strict=True))
    with pytest.raises(ValueError, match=r"init 'he'.*'default', 'kaiming'"):
        make_stack(3, init="he")


def test_kaiming_plain_stack_does_not_vanish_where_default_does() -> None:
    X, y = _batch(64, 64)
    ratios = {}
    for init in STACK_INITS:
        norms = layer_grad_norms(make_stack(60, init=init, dtype=torch.float64), X, y)
        ratios[init] = norms[0] / norms[-1]
    assert ratios["default"] < 1e-15
    assert 1e-2 < ratios["kaiming"] < 1e2


def _small_convnet() -> tuple[torch.nn.Sequential, list[torch.nn.Module]]:
    torch.manual_seed(0)
    blocks = [torch.nn.Sequential(torch.nn.Conv2d(2, 2, 3, padding=1), torch.nn.ReLU())
              for _ in range(3)]
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 3, padding=1), *blocks,
                              torch.nn.Flatten(), torch.nn.Linear(2 * 5 * 5, 10))
    return net.double(), blocks


def test_grad_norms_of_named_layers_match_manual_backward() -> None:
    net, blocks = _small_convnet()
    gen = torch.Generator().manual_seed(0)
    X = torch.randn(4, 1, 5, 5, generator=gen, dtype=torch.float64)
    y = torch.randint(0, 10, (4,), generator=gen)
    norms = layer_grad_norms(net, X, y, layers=blocks)
    assert len(norms) == 3 and all(p.grad is None for p in net.parameters())
    x = net[0](X)
    inputs = []
    for block in blocks:
        x.retain_grad()
        inputs.append(x)
        x = block(x)
    torch.nn.functional.cross_entropy(net[5](net[4](x)), y).backward()
    assert norms == pytest.approx([t.grad.norm().item() for t in inputs], rel=1e-12)
    with pytest.raises(ValueError, match=r"wrt='input'.*got wrt='weight'"):
        layer_grad_norms(net, X, y, wrt="weight", layers=blocks)
    with pytest.raises(ValueError, match="0 modules"):
        layer_grad_norms(net, X, y, layers=[])
    with pytest.raises(ValueError, match="went through 0 of the 1 layers"):
        layer_grad_norms(net, X, y, layers=[torch.nn.Linear(2, 2)])


def test_input_gradients_are_each_examples_own() -> None:
    net, _ = _small_convnet()
    gen = torch.Generator().manual_seed(1)
    X = torch.randn(3, 1, 5, 5, generator=gen, dtype=torch.float64)
    y = torch.tensor([1, 4, 7])
    grads = input_gradients(net, X, y)
    assert grads.shape == (3, 25)
    for i in range(3):
        xi = X[i:i + 1].clone().requires_grad_()
        torch.nn.functional.cross_entropy(net(xi), y[i:i + 1]).backward()
        assert torch.allclose(grads[i], xi.grad.flatten())
    with pytest.raises(ValueError, match=r"y must be \(N,\)"):
        input_gradients(net, X, y[:2])


class _Wiggly(torch.nn.Module):
    """Logits whose input gradient oscillates fast: 0.01 apart, the gradients are unrelated."""

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        score = torch.sin(1000 * X.flatten(1)).sum(dim=1, keepdim=True)
        return torch.cat([score, torch.zeros_like(score)], dim=1)


def test_gradient_correlation_tells_smooth_from_shattered() -> None:
    gen = torch.Generator().manual_seed(2)
    X = torch.randn(8, 1, 16, 16, generator=gen, dtype=torch.float64)
    y = torch.zeros(8, dtype=torch.int64)
    smooth = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(256, 2)).double()
    corr = gradient_correlation(smooth, X, y, noise=0.01)
    assert len(corr) == 8 and min(corr) > 0.99
    shattered = gradient_correlation(_Wiggly(), X, y, noise=0.01)
    assert max(abs(c) for c in shattered) < 0.3
    assert gradient_correlation(_Wiggly(), X, y, noise=1e-7) == pytest.approx([1.0] * 8,
                                                                              abs=1e-3)
    assert gradient_correlation(_Wiggly(), X, y, seed=3) == gradient_correlation(
        _Wiggly(), X, y, seed=3)
    with pytest.raises(ValueError, match=r"noise must be a number in \(0, inf\), got 0"):
        gradient_correlation(smooth, X, y, noise=0)
