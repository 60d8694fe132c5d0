"""Tests of the training engine: evaluation, seeding, divergence, checkpoints, resume.

A tiny network on synthetic 8x8 images stands in for ResNet-18 on Fashion-MNIST, so each
test takes well under a second; notebook 04 and the CLI exercise the real thing.
"""

from __future__ import annotations

import math
import os

import pytest
import torch
from torch import nn

from d2l_resnet.checkpoint import load_checkpoint, save_checkpoint
from d2l_resnet.data import InMemoryLoader
from d2l_resnet.model import Residual, init_weights
from d2l_resnet.profiles import Recipe
from d2l_resnet.train import (
    DivergenceError,
    DivergenceGuard,
    History,
    accuracy,
    confusion_matrix,
    evaluate_accuracy,
    make_optimizer,
    predict,
    scoring,
    set_seed,
    shift,
    train,
    train_epoch,
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


RECIPE = Recipe(momentum=0.9, nesterov=True, weight_decay=5e-4, label_smoothing=0.1,
                schedule="onecycle", init="kaiming")
QUIET = {"verbose": False, "progress": False}
RUN_OPTIONS = {"checkpoint", "resume", "verbose", "progress", "on_update", "val_iter"}


# -- accuracy and evaluation


def test_accuracy_counts_correct_predictions() -> None:
    y_hat = torch.tensor([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
    assert accuracy(y_hat, torch.tensor([1, 0, 0])) == 2.0
    assert accuracy(torch.tensor([1, 1]), torch.tensor([1, 0])) == 1.0


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
    """Train Tiny with :data:`RECIPE` changed by the recipe settings in ``kwargs``; the
    other keywords go to ``train``."""
    train_iter, test_iter = _loaders()
    net = Tiny()
    options = {**QUIET, **{k: v for k, v in kwargs.items() if k in RUN_OPTIONS}}
    recipe = RECIPE.replace(seed=seed, **{k: v for k, v in kwargs.items()
                                          if k not in RUN_OPTIONS | {"num_epochs", "lr"}})
    history = train(net, train_iter, test_iter, kwargs.get("num_epochs", 3),
                    kwargs.get("lr", 0.1), "cpu", recipe=recipe, **options)
    return history, net


def test_train_learns_and_records_a_history_per_epoch() -> None:
    history, _ = _run(num_epochs=4, lr=0.2)
    assert history.epochs == [1, 2, 3, 4]
    assert len(history.train_loss) == len(history.epoch_time) == 4
    assert history.val_acc == [] and history.test_acc is not None   # scored once
    # Five points an epoch (6 batches: after batches 1, 2, 4, 5 and 6), each the mean
    # since the one before: the epoch's loss is their mean weighted by their batches.
    assert len(history.points) == 4 * 5 and history.points[-1][0] == 4.0
    assert [round(p[0] % 1, 3) for p in history.points[:5]] == [0.167, 0.333, 0.667, 0.833,
                                                                 0.0]
    weights = [1, 1, 2, 1, 1]
    assert sum(w * p[1] for w, p in zip(weights, history.points[15:], strict=True)) / 6 == \
        pytest.approx(history.train_loss[3])
    assert history.train_loss[-1] < history.train_loss[0]
    assert history.test_acc > 0.3                       # chance is 0.1
    assert all(r > 0 for r in history.examples_per_sec)


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
    with pytest.raises(DivergenceError, match=r"lr=1e\+06 at epoch 1, step \d+: the loss "
                                              r"is (nan|inf)"):
        _run(lr=1e6, schedule="constant", num_epochs=2)


def test_the_guard_lets_a_spike_that_recovers_pass() -> None:
    guard = DivergenceGuard(lr=0.9, limit=4.6, window=5)
    for step, loss in enumerate([90.0, 50.0, 7.0, 6.0, 2.0, 9.0, 9.0, 9.0, 9.0, 1.0], 1):
        guard.check(loss, epoch=1, step=step)           # never 5 steps above in a row
    for step in range(11, 15):
        guard.check(9.0, epoch=1, step=step)
    with pytest.raises(DivergenceError, match=r"lr=0\.9 at epoch 1, step 15: .*for 5 steps"):
        guard.check(9.0, epoch=1, step=15)
    with pytest.raises(DivergenceError, match="the loss is nan"):
        DivergenceGuard(lr=0.9).check(float("nan"), epoch=2, step=1)


def test_train_prints_the_report_only_when_asked(capsys: pytest.CaptureFixture[str]) -> None:
    _run(num_epochs=1)
    assert capsys.readouterr().out == ""
    history, _ = _run(num_epochs=1, verbose=True)
    out = capsys.readouterr().out
    assert out.startswith(f"training on cpu, {history.precision}\n")
    assert out.endswith(f"{history.epoch_line()}\n{history.final_lines()}\n")


@pytest.mark.parametrize(("kwargs", "facts"), [
    ({"num_epochs": 0}, ["num_epochs", "0"]),
    ({"lr": -0.1}, ["lr", "-0.1", "(0, inf)"]),
    ({"lr": float("nan")}, ["lr", "nan"]),
    ({"schedule": "cyclic"}, ["schedule", "'cyclic'", "'onecycle'"]),
    ({"precision": "fp8"}, ["precision", "'fp8'", "'bf16'"]),
    ({"init": "orthogonal"}, ["init", "'orthogonal'", "'kaiming'"]),
    ({"momentum": 1.0}, ["momentum", "1.0", "[0, 1)"]),
    ({"resume": True}, ["resume", "checkpoint"]),
    ({"dropout": 0.5}, ["dropout", "num_epochs", "flip_tta"]),
])
def test_train_refuses_bad_arguments(kwargs: dict, facts: list[str]) -> None:
    with pytest.raises(ValueError) as err:
        _run(**kwargs)
    assert all(fact in str(err.value) for fact in facts), str(err.value)


def test_train_needs_a_train_iter_with_a_length() -> None:
    batches = iter(_loaders()[0])
    with pytest.raises(ValueError, match=r"len\(\)"):
        train(Tiny(), batches, None, 1, 0.1, "cpu", **QUIET)


def test_bf16_channels_last_matmul_convs_train_too() -> None:
    history, _ = _run(num_epochs=2, precision="bf16", channels_last=True, matmul_convs=True)
    assert all(math.isfinite(v) for v in history.train_loss)


# -- checkpoints and resume


class InterruptedRunError(Exception):
    """Stands for a killed run."""


def _stop_after(epoch: int):
    def hook(history: History) -> None:
        if history.epochs and history.epochs[-1] == epoch:
            raise InterruptedRunError
    return hook


def test_resume_after_an_interruption_ends_with_the_same_metrics(tmp_path) -> None:
    path = tmp_path / "run.pt"
    full, net_full = _run(seed=5, num_epochs=3)
    with pytest.raises(InterruptedRunError):
        _run(seed=5, num_epochs=3, checkpoint=path, on_update=_stop_after(1))
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
        return train(Tiny(), train_iter, test_iter, 3, 0.1, "cpu",
                     recipe=RECIPE.replace(seed=2), **{**QUIET, **kwargs})

    full = run()
    with pytest.raises(InterruptedRunError):
        run(checkpoint=tmp_path / "c.pt", on_update=_stop_after(2))
    assert run(checkpoint=tmp_path / "c.pt", resume=True).train_loss == full.train_loss


def test_resume_refuses_a_checkpoint_of_another_recipe(tmp_path) -> None:
    path = tmp_path / "run.pt"
    _run(num_epochs=1, checkpoint=path)
    with pytest.raises(ValueError, match=r"lr: 0\.1 -> 0\.2\)"):
        _run(num_epochs=1, lr=0.2, checkpoint=path, resume=True)
    with pytest.raises(ValueError, match=r"label_smoothing: 0\.1 -> 0\.0, flip_tta: "
                                         r"False -> True\)"):
        _run(num_epochs=1, label_smoothing=0.0, flip_tta=True, checkpoint=path, resume=True)
    state = load_checkpoint(path)             # written before the recipe had a warmup
    del state["recipe"]["warmup"]
    save_checkpoint(path, state)
    with pytest.raises(ValueError, match=r"\(warmup: not stored -> 0\.25\)"):
        _run(num_epochs=1, checkpoint=path, resume=True)


def test_resume_from_an_older_checkpoint_says_so_and_its_weights_still_load(tmp_path) -> None:
    path = tmp_path / "old.pt"
    _, net = _run(num_epochs=1, checkpoint=path)
    state = load_checkpoint(path)
    del state["format"]                       # format 1 had no such entry
    state["recipe"] = {"lr": 0.1, "num_epochs": 1}
    save_checkpoint(path, state)
    with pytest.raises(ValueError, match=r"format 1.*reads 2"):
        _run(num_epochs=1, checkpoint=path, resume=True)
    fresh = Tiny()
    fresh.load_state_dict(load_checkpoint(path)["model"])
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(),
                                                  net.state_dict().values(), strict=True))


def test_save_checkpoint_is_atomic(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "sub" / "c.pt"
    old_umask = os.umask(0o022)
    try:
        save_checkpoint(path, {"model": {}, "epoch": 1})
    finally:
        os.umask(old_umask)
    assert path.stat().st_mode & 0o777 == 0o644           # as open() makes it, not 0o600

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
    with pytest.raises(FileNotFoundError, match=r"missing\.pt"):
        load_checkpoint(tmp_path / "missing.pt")
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"garbage\.pt"):
        load_checkpoint(garbage)
    other = tmp_path / "other.pt"
    torch.save({"weights": 1}, other)
    with pytest.raises(ValueError, match=r"other\.pt.*'model' and 'epoch'"):
        load_checkpoint(other)
    with pytest.raises(FileNotFoundError):
        _run(checkpoint=tmp_path / "missing.pt", resume=True)


def test_history_round_trips_through_a_dict() -> None:
    history, _ = _run(num_epochs=1)
    assert History.from_dict(history.to_dict()) == history


# -- the epoch function, the held-out split, test-time flips


def test_train_epoch_is_the_loop_that_train_runs() -> None:
    """Seeded alike, one epoch of train_epoch with the same optimizer and loss gives what
    train records for its first epoch, to the bit."""
    history, _ = _run(num_epochs=1, lr=0.1, schedule="constant")
    train_iter, _ = _loaders()
    net = Tiny()
    set_seed(0)
    init_weights(net, "kaiming")      # as train does: seed, then initialize
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, nesterov=True,
                                weight_decay=5e-4, fused=True)
    loss = nn.CrossEntropyLoss(label_smoothing=0.1)
    mean_loss, mean_acc, n = train_epoch(net, train_iter, loss, optimizer)
    assert n == 96
    assert (mean_loss, mean_acc) == (history.train_loss[0], history.train_acc[0])


def test_train_epoch_refuses_an_empty_data_set() -> None:
    net = Tiny()
    with pytest.raises(ValueError, match="no batch"):
        train_epoch(net, [], nn.CrossEntropyLoss(), torch.optim.SGD(net.parameters(), 0.1))


class CountingLoader:
    """Wraps a loader and counts the passes made over it."""

    def __init__(self, loader: InMemoryLoader) -> None:
        self.loader, self.passes = loader, 0

    def __iter__(self):
        self.passes += 1
        return iter(self.loader)


def test_validation_is_scored_every_epoch_and_the_test_set_once_at_the_end(capsys) -> None:
    train_iter, test_loader = _loaders()
    images, labels = _data(32, seed=4)
    val_iter = CountingLoader(InMemoryLoader(images, labels, 16, split="val"))
    test_iter = CountingLoader(test_loader)
    history = train(Tiny(), train_iter, test_iter, 3, 0.1, "cpu", recipe=RECIPE,
                    val_iter=val_iter, progress=False)
    assert (val_iter.passes, test_iter.passes) == (3, 1)
    assert len(history.val_acc) == 3 and history.test_acc is not None
    assert f", val acc {history.val_acc[-1]:.3f}, " in capsys.readouterr().out
    no_test = train(Tiny(), _loaders()[0], None, 1, 0.1, "cpu", recipe=RECIPE,
                    val_iter=val_iter.loader, **QUIET)
    assert no_test.test_acc is None
    assert no_test.final_lines().startswith(f"loss {no_test.train_loss[0]:.3f}, train acc "
                                            f"{no_test.train_acc[0]:.3f}, val acc "
                                            f"{no_test.val_acc[0]:.3f}\n")


class LeftHalf(nn.Module):
    """Scores class 1 by the brightness of the left half of the image, class 0 by 0.5."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.ones(()))

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        left = X[..., : X.shape[-1] // 2].mean(dim=(1, 2, 3)) * self.w
        return torch.stack([torch.full_like(left, 0.5), left], dim=1)


def test_flip_tta_averages_the_scores_of_an_image_and_its_mirror() -> None:
    X = torch.zeros(2, 1, 2, 4)
    X[0, ..., :2] = 0.9          # bright left half: class 1; mirrored, class 0 (0.45 < 0.5)
    X[1, ..., 2:] = 0.9          # bright right half: class 0; mirrored, class 1
    y = torch.tensor([1, 1])
    data = [(X, y)]
    assert evaluate_accuracy(LeftHalf(), data) == 0.5
    # With flips each scores (0.9 + 0) / 2 = 0.45 for class 1 against 0.5: class 0.
    assert evaluate_accuracy(LeftHalf(), data, flip_tta=True) == 0.0
    preds, _ = predict(LeftHalf(), data, flip_tta=True)
    assert preds.tolist() == [0, 0]


def test_shift_moves_the_image_and_repeats_its_edge() -> None:
    X = torch.arange(9.0).reshape(1, 1, 3, 3)       # rows 0 1 2 / 3 4 5 / 6 7 8
    assert shift(X, 1, 0)[0, 0].tolist() == [[0, 1, 2], [0, 1, 2], [3, 4, 5]]
    assert shift(X, 0, -1)[0, 0].tolist() == [[1, 2, 2], [4, 5, 5], [7, 8, 8]]
    assert shift(X, -2, 2)[0, 0].tolist() == [[6, 6, 6], [6, 6, 6], [6, 6, 6]]
    assert shift(X, 0, 0) is X


def test_shifted_views_are_averaged_with_their_mirrors() -> None:
    X = torch.zeros(1, 1, 2, 4)
    X[0, ..., 2] = 3.0           # columns 0 0 3 0: left-half mean 0 < 0.5, class 0
    data = [(X, torch.tensor([1]))]
    assert evaluate_accuracy(LeftHalf(), data) == 0.0
    # Moved left: 0 3 0 0 scores 1.5, mean (0 + 1.5) / 2 = 0.75: class 1. Moved right:
    # 0 0 0 3 scores 0: class 0.
    assert evaluate_accuracy(LeftHalf(), data, shifts=((0, -1),)) == 1.0
    assert evaluate_accuracy(LeftHalf(), data, shifts=((0, 1),)) == 0.0
    # With the mirrors: the image 0, moved right 0, mirrored 0 3 0 0 1.5, moved right and
    # mirrored 3 0 0 0 1.5: mean 0.75, class 1 (without the last view a tie at 0.5).
    assert evaluate_accuracy(LeftHalf(), data, flip_tta=True, shifts=((0, 1),)) == 1.0


@pytest.mark.parametrize(("momentum", "expected"), [
    (0.9, [0.95, 0.85, 0.95]), (0.0, [0.0, 0.0, 0.0])])
def test_one_cycle_moves_the_recipes_momentum_against_the_rate(
        momentum: float, expected: list[float]) -> None:
    """At the start, at the peak rate (step 4 of 20: a quarter of the steps) and at the
    last step."""
    recipe = Recipe(num_epochs=1, lr=0.2, momentum=momentum, schedule="onecycle")
    optimizer, scheduler = make_optimizer(Tiny(), recipe, num_batches=20)
    seen = {}
    for step in range(20):
        seen[step] = optimizer.param_groups[0]["momentum"]
        optimizer.step()
        scheduler.step()
    assert [seen[0], seen[4], seen[19]] == pytest.approx(expected)
    assert max(seen.values()) == pytest.approx(expected[0])


@pytest.mark.parametrize(("warmup", "peak"), [(0.25, 9), (0.1, 3), (0.5, 19)])
def test_one_cycle_peaks_after_the_recipes_warm_up(warmup: float, peak: int) -> None:
    """Over 40 steps the rate rises for ``warmup`` of them, peaks at ``lr``, then falls."""
    recipe = Recipe(num_epochs=1, lr=0.2, momentum=0.9, schedule="onecycle", warmup=warmup)
    optimizer, scheduler = make_optimizer(Tiny(), recipe, num_batches=40)
    rates = []
    for _ in range(40):
        rates.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert rates.index(max(rates)) == peak and max(rates) == pytest.approx(0.2)
    assert rates[:peak + 1] == sorted(rates[:peak + 1])
    assert rates[peak:] == sorted(rates[peak:], reverse=True)
    with pytest.raises(ValueError, match="single step"):     # not a ZeroDivisionError
        make_optimizer(Tiny(), recipe, num_batches=round(1 / warmup))


@pytest.mark.parametrize("bias_decay", [True, False])
def test_without_bias_decay_only_the_weights_of_convolutions_and_linear_layers_decay(
        bias_decay: bool) -> None:
    net = Tiny()
    for p in net.parameters():
        nn.init.ones_(p)
        p.grad = torch.zeros_like(p)       # a step then does nothing but decay
    recipe = Recipe(lr=0.1, weight_decay=0.5, bias_decay=bias_decay)
    optimizer, _ = make_optimizer(net, recipe, num_batches=1)
    optimizer.step()
    decayed = {name: bool((p < 1).all()) for name, p in net.named_parameters()}
    assert any(p.ndim <= 1 for p in net.parameters())
    assert decayed == {name: bias_decay or p.ndim > 1 for name, p in net.named_parameters()}


def test_a_progress_bar_changes_nothing_the_run_computes() -> None:
    plain, _ = _run(num_epochs=2)
    with_bar, _ = _run(num_epochs=2, progress=True)
    assert (with_bar.train_loss, with_bar.test_acc) == (plain.train_loss, plain.test_acc)


def test_scoring_says_how_train_scores_a_recipe() -> None:
    recipe = Recipe(precision="fp32", channels_last=True, flip_tta=True)
    assert scoring(recipe, "cpu") == {"precision": "fp32", "channels_last": True,
                                      "flip_tta": True}
    history, net = _run(num_epochs=1, flip_tta=True)
    _, test_iter = _loaders()
    assert evaluate_accuracy(net, test_iter, **scoring(RECIPE.replace(flip_tta=True),
                                                       "cpu")) == history.test_acc
