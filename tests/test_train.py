"""Tests of the training engine: evaluation, seeding, divergence, checkpoints, resume.

A tiny network on synthetic 8x8 images stands in for ResNet-18 on Fashion-MNIST, so each
test takes well under a second; notebook 04 and the CLI exercise the real thing.
"""

from __future__ import annotations

import math
import re

import pytest
import torch
from torch import nn

from d2l_resnet.data import InMemoryLoader
from d2l_resnet.model import Residual, resnet18
from d2l_resnet.profiles import PROFILES, get_profile
from d2l_resnet.train import (
    DivergenceError,
    History,
    MatmulConv2d,
    accuracy,
    confusion_matrix,
    evaluate_accuracy,
    get_device,
    init_weights,
    load_checkpoint,
    predict,
    save_checkpoint,
    set_seed,
    train,
    use_matmul_convs,
)


class Tiny(nn.Module):
    """Stem, one residual block (for the Kaiming init's zeroed BatchNorm), pool, linear."""

    num_classes = 10

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU())
        self.block = Residual(8, 8)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 10))

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return self.head(self.block(self.stem(X)))


def _data(n: int = 96, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """8x8 uint8 images whose brightness tells the class: something to learn."""
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 10, (n,), generator=gen)
    noise = torch.randint(0, 40, (n, 8, 8), generator=gen)
    images = (labels[:, None, None] * 20 + noise).clamp(0, 255).to(torch.uint8)
    return images, labels


def _loaders(augment: bool = True) -> tuple[InMemoryLoader, InMemoryLoader]:
    images, labels = _data()
    test_images, test_labels = _data(48, seed=1)
    return (InMemoryLoader(images, labels, 16, shuffle=True, augment=augment, max_shift=1,
                           seed=3),
            InMemoryLoader(test_images, test_labels, 16))


RECIPE = dict(momentum=0.9, nesterov=True, weight_decay=5e-4, label_smoothing=0.1,
              schedule="onecycle", init="kaiming", verbose=False, progress=False)


# -- accuracy and evaluation


def test_accuracy_counts_correct_predictions() -> None:
    y_hat = torch.tensor([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
    assert accuracy(y_hat, torch.tensor([1, 0, 0])) == 2.0
    assert accuracy(torch.tensor([1, 1]), torch.tensor([1, 0])) == 1.0
    with pytest.raises(ValueError, match="do not match"):
        accuracy(y_hat, torch.tensor([1, 0]))


class AlwaysZero(nn.Module):
    """Predicts class 0 for every input."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 2)
        nn.init.zeros_(self.linear.weight)
        with torch.no_grad():
            self.linear.bias.copy_(torch.tensor([1.0, 0.0]))

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return self.linear(X)


def _trap() -> list[tuple[torch.Tensor, torch.Tensor]]:
    """First batch: all labels 0 (all right); the next two: all labels 1 (all wrong)."""
    return [(torch.randn(5, 4), torch.zeros(5, dtype=torch.long)),
            (torch.randn(5, 4), torch.ones(5, dtype=torch.long)),
            (torch.randn(5, 4), torch.ones(5, dtype=torch.long))]


def _source_evaluate_accuracy_gpu(net: nn.Module, data_iter: list) -> float:
    """The source notebook's function, defect included (``return`` inside the loop)."""
    net.eval()
    correct = total = 0.0
    for X, y in data_iter:
        correct, total = correct + accuracy(net(X), y), total + y.numel()
        return correct / total
    raise AssertionError("unreachable")


def test_evaluate_accuracy_scores_every_batch_not_the_first() -> None:
    net = AlwaysZero()
    assert _source_evaluate_accuracy_gpu(net, _trap()) == 1.0   # the trap catches the source
    assert evaluate_accuracy(net, _trap()) == pytest.approx(5 / 15)


@pytest.mark.parametrize("mode", [True, False])
def test_evaluate_accuracy_restores_the_mode_and_leaves_batchnorm_alone(mode: bool) -> None:
    net = Tiny()
    net.train(mode)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    _, test_iter = _loaders()
    evaluate_accuracy(net, test_iter)
    assert net.training is mode
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_evaluate_accuracy_refuses_an_empty_data_set() -> None:
    with pytest.raises(ValueError, match="no example"):
        evaluate_accuracy(Tiny(), [])


def test_predict_and_confusion_matrix_agree_with_accuracy() -> None:
    net = Tiny()
    _, test_iter = _loaders()
    preds, labels = predict(net, test_iter)
    matrix = confusion_matrix(preds, labels)
    assert matrix.shape == (10, 10) and int(matrix.sum()) == 48
    assert int(matrix.diag().sum()) / 48 == pytest.approx(evaluate_accuracy(net, test_iter))
    assert confusion_matrix(torch.tensor([1, 1]), torch.tensor([0, 1]), 2).tolist() == \
        [[0, 1], [0, 1]]


# -- seeding, training, divergence


def _run(seed: int = 0, **kwargs) -> tuple[History, nn.Module]:
    train_iter, test_iter = _loaders()
    net = Tiny()
    history = train(net, train_iter, test_iter, kwargs.pop("num_epochs", 3),
                    kwargs.pop("lr", 0.1), "cpu", seed=seed, **{**RECIPE, **kwargs})
    return history, net


def test_train_learns_and_records_a_history_per_epoch() -> None:
    history, _ = _run(num_epochs=4, lr=0.2)
    assert history.epochs == [1, 2, 3, 4]
    assert len(history.test_acc) == len(history.train_loss) == len(history.epoch_time) == 4
    # About five points an epoch, as the source prints (6 batches: one per batch here).
    assert len(history.points) == 4 * 6 and history.points[-1][0] == 4.0
    assert history.train_loss[-1] < history.train_loss[0]
    assert history.test_acc[-1] > 0.3                   # chance is 0.1
    assert all(r > 0 for r in history.examples_per_sec)
    assert re.fullmatch(r"loss \d\.\d{3}, train acc \d\.\d{3}, test acc \d\.\d{3}\n"
                        r"\d+\.\d examples/sec on cpu", history.final_lines())


def test_the_same_seed_gives_the_same_run_and_another_seed_does_not() -> None:
    a, net_a = _run(seed=7)
    b, net_b = _run(seed=7)
    c, _ = _run(seed=8)
    assert a.train_loss == b.train_loss and a.test_acc == b.test_acc
    assert all(torch.equal(x, y) for x, y in zip(net_a.state_dict().values(),
                                                  net_b.state_dict().values(), strict=True))
    assert a.train_loss != c.train_loss


def test_set_seed_refuses_a_negative_seed() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        set_seed(-1)


def test_a_diverging_loss_stops_the_run_naming_the_learning_rate() -> None:
    with pytest.raises(DivergenceError, match=r"lr=1e\+06") as err:
        _run(lr=1e6, schedule="constant", num_epochs=2)
    assert "Lower the learning rate" in str(err.value)


def test_an_exploding_but_finite_loss_also_stops_the_run() -> None:
    # A low bar for "exploded": any loss above 0.5 counts, so the first step trips it.
    with pytest.raises(DivergenceError, match=r"lr=0\.1 .*above 0\.50"):
        _run(max_loss=0.5)


def test_train_prints_the_report_only_when_asked(capsys: pytest.CaptureFixture[str]) -> None:
    _run(num_epochs=1)
    assert capsys.readouterr().out == ""
    _run(num_epochs=1, verbose=True)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "training on cpu"
    assert out[-2].startswith("loss ") and out[-1].endswith("examples/sec on cpu")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"num_epochs": 0}, "num_epochs must be a positive integer"),
    ({"lr": -0.1}, "lr must be a positive number"),
    ({"lr": float("nan")}, "lr must be a positive number"),
    ({"schedule": "cyclic"}, "unknown schedule"),
    ({"precision": "fp8"}, "unknown precision"),
    ({"init": "orthogonal"}, "unknown init"),
    ({"momentum": 1.0}, "momentum must be in"),
    ({"resume": True}, "needs a checkpoint path"),
])
def test_train_refuses_bad_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _run(**kwargs)


def test_get_device_names_and_errors() -> None:
    assert get_device("cpu") == torch.device("cpu")
    assert get_device(None).type in ("cpu", "cuda")
    with pytest.raises(ValueError, match="unknown device"):
        get_device("gpu0")
    with pytest.raises(ValueError, match=r"not available|unknown|unsupported"):
        get_device(f"cuda:{torch.cuda.device_count()}")


def test_bf16_channels_last_matmul_convs_train_too() -> None:
    history, _ = _run(num_epochs=2, precision="bf16", channels_last=True, matmul_convs=True)
    assert all(math.isfinite(v) for v in history.train_loss)


# -- initialisation and the matrix-product convolution


def test_kaiming_init_starts_each_residual_branch_at_zero() -> None:
    net = init_weights(resnet18(), "kaiming")
    blocks = [m for m in net.modules() if isinstance(m, Residual)]
    assert len(blocks) == 8 and all(torch.all(b.bn2.weight == 0) for b in blocks)
    xavier = init_weights(resnet18(), "xavier")
    w = xavier[0][0].weight                               # 64 x 1 x 7 x 7
    bound = math.sqrt(6 / (1 * 49 + 64 * 49))
    assert float(w.detach().abs().max()) <= bound


@pytest.mark.parametrize(("c_in", "c_out", "size", "kernel", "stride"), [
    (16, 24, 1, 3, 1),     # b5's 3x3 convolutions on a 1x1 map
    (16, 24, 2, 3, 2),     # b5's first convolution: 2x2 -> 1x1
    (16, 24, 2, 1, 2),     # b5's 1x1 shortcut
    (16, 24, 2, 3, 1),     # b4's 3x3 convolutions on 2x2 maps: the dense linear map
    (16, 24, 3, 3, 1),     # 3x3 maps, still at most kh*kw pixels
    (16, 24, 3, 3, 2),     # a stride with some taps on padding only
    (16, 24, 4, 3, 1),     # larger maps: falls back to nn.Conv2d
])
def test_matmul_conv_matches_conv2d_in_value_and_gradient(c_in: int, c_out: int, size: int,
                                                          kernel: int, stride: int) -> None:
    torch.manual_seed(0)
    conv = nn.Conv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2)
    fast = MatmulConv2d(c_in, c_out, kernel, stride=stride, padding=kernel // 2)
    fast.load_state_dict(conv.state_dict())
    X = torch.randn(5, c_in, size, size, requires_grad=True)
    Y, Y_fast = conv(X), fast(X)
    assert Y_fast.shape == Y.shape
    torch.testing.assert_close(Y_fast, Y, rtol=1e-5, atol=1e-5)
    g = torch.randn_like(Y)
    grads = torch.autograd.grad(Y, (X, conv.weight, conv.bias), g)
    grads_fast = torch.autograd.grad(Y_fast, (X, fast.weight, fast.bias), g)
    for a, b in zip(grads, grads_fast, strict=True):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)


def test_use_matmul_convs_keeps_parameters_and_outputs() -> None:
    torch.manual_seed(0)
    net = resnet18().eval()
    X = torch.randn(2, 1, 28, 28)
    expected = net(X)
    keys, params = list(net.state_dict()), [id(p) for p in net.parameters()]
    use_matmul_convs(net)
    assert sum(isinstance(m, MatmulConv2d) for m in net.modules()) == 20
    assert list(net.state_dict()) == keys and [id(p) for p in net.parameters()] == params
    torch.testing.assert_close(net(X), expected, rtol=1e-4, atol=1e-5)


# -- checkpoints and resume


class InterruptedRunError(Exception):
    """Stands for a killed run."""


def _stop_after(epoch: int):
    def hook(history: History) -> None:
        if history.epochs[-1] == epoch:
            raise InterruptedRunError
    return hook


def test_resume_after_an_interruption_ends_with_the_same_metrics(tmp_path) -> None:
    path = tmp_path / "run.pt"
    full, net_full = _run(seed=5, num_epochs=3)
    with pytest.raises(InterruptedRunError):
        _run(seed=5, num_epochs=3, checkpoint=path, on_epoch_end=_stop_after(1))
    assert load_checkpoint(path)["epoch"] == 1
    resumed, net_resumed = _run(seed=5, num_epochs=3, checkpoint=path, resume=True)
    assert resumed.epochs == [1, 2, 3]
    assert resumed.train_loss == full.train_loss
    assert resumed.train_acc == full.train_acc
    assert resumed.test_acc == full.test_acc
    for a, b in zip(net_full.state_dict().values(), net_resumed.state_dict().values(),
                    strict=True):
        assert torch.equal(a, b)
    assert load_checkpoint(path)["epoch"] == 3


def test_resume_with_a_plain_dataloader_uses_the_saved_random_state(tmp_path) -> None:
    images, labels = _data()
    X = (images.float() / 255).unsqueeze(1)
    dataset = torch.utils.data.TensorDataset(X, labels)

    def run(**kwargs) -> History:
        train_iter = torch.utils.data.DataLoader(dataset, 16, shuffle=True)
        test_iter = torch.utils.data.DataLoader(dataset, 32)
        return train(Tiny(), train_iter, test_iter, 3, 0.1, "cpu", seed=2,
                     **{**RECIPE, **kwargs})

    full = run()
    with pytest.raises(InterruptedRunError):
        run(checkpoint=tmp_path / "c.pt", on_epoch_end=_stop_after(2))
    assert run(checkpoint=tmp_path / "c.pt", resume=True).train_loss == full.train_loss


def test_resume_refuses_a_checkpoint_of_another_recipe(tmp_path) -> None:
    path = tmp_path / "run.pt"
    _run(num_epochs=1, checkpoint=path)
    with pytest.raises(ValueError, match=r"another recipe \(lr: 0\.1 -> 0\.2"):
        _run(num_epochs=1, lr=0.2, checkpoint=path, resume=True)


def test_save_checkpoint_is_atomic(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "sub" / "c.pt"
    save_checkpoint(path, {"model": {}, "epoch": 1})

    def broken_save(obj: object, f) -> None:
        f.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"model": {}, "epoch": 2})
    monkeypatch.undo()
    assert load_checkpoint(path)["epoch"] == 1            # the old one, intact
    assert [p.name for p in path.parent.iterdir()] == ["c.pt"]   # no temporary left


def test_load_checkpoint_errors_say_what_is_wrong(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "missing.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot read the checkpoint"):
        load_checkpoint(garbage)
    other = tmp_path / "other.pt"
    torch.save({"weights": 1}, other)
    with pytest.raises(ValueError, match="not a checkpoint written by"):
        load_checkpoint(other)
    with pytest.raises(FileNotFoundError):
        _run(checkpoint=tmp_path / "missing.pt", resume=True)


def test_history_round_trips_through_a_dict() -> None:
    history, _ = _run(num_epochs=1)
    assert History.from_dict(history.to_dict()) == history


# -- profiles


def test_profiles_are_valid_recipes_and_d2l_is_the_books() -> None:
    for profile in PROFILES.values():
        kwargs = profile.train_kwargs()
        assert set(kwargs) <= set(train.__code__.co_varnames)
        assert profile.data_kwargs()["batch_size"] == profile.batch_size
    d2l = get_profile("d2l")
    assert (d2l.lr, d2l.num_epochs, d2l.batch_size, d2l.resize) == (0.05, 10, 256, 96)
    assert (d2l.init, d2l.momentum, d2l.schedule, d2l.precision, d2l.augment,
            d2l.normalize) == ("xavier", 0.0, "constant", "fp32", False, False)
    assert get_profile("quick").train_subset is not None
