"""Training and evaluation: the source notebook's ``train`` loop, made correct.

The source's loop has two defects that this module fixes:

- ``evaluate_accuracy_gpu`` returns inside its loop, so it scores the first batch only;
  :func:`evaluate_accuracy` scores the whole data set (in eval mode, without gradients,
  and puts the network back in the mode it found it in).
- It prints the loss as it trains but keeps no record; :func:`train` returns a
  :class:`History`, with the accuracy on a validation split after every epoch (the
  curve to choose settings on) and on the test set once, at the end.

The module reads in three parts: scoring (:func:`accuracy`, :func:`evaluate_accuracy`);
one epoch (:func:`train_epoch`, the loop notebook 04 shows); and a whole run
(:func:`train`: the recipe's set-up, then epochs, each followed by its scores, its line
in the history and a checkpoint). Everything here runs in one process; training across
processes (``torchrun``) wraps the same :func:`train_epoch` in
:mod:`d2l_resnet.extras.distributed`.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Iterable, Iterator, Sized
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from d2l_resnet.checkpoint import (
    FORMAT,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from d2l_resnet.checks import check_int
from d2l_resnet.devices import autocast, get_device, resolve_precision
from d2l_resnet.model import init_weights, use_matmul_convs
from d2l_resnet.notebook import progress_bar
from d2l_resnet.optim import FlatSGD, without_bias_decay
from d2l_resnet.profiles import Recipe

__all__ = [
    "DivergenceError",
    "DivergenceGuard",
    "History",
    "accuracy",
    "checkpoint_state",
    "confusion_matrix",
    "count_correct",
    "evaluate_accuracy",
    "make_optimizer",
    "predict",
    "prepare_network",
    "restore_run",
    "scoring",
    "set_seed",
    "shift",
    "train",
    "train_epoch",
]


# -- scoring --------------------------------------------------------------------------------


def accuracy(y_hat: torch.Tensor, y: torch.Tensor) -> float:
    """The number of correct predictions (not the fraction), as the source's ``accuracy``.

    Args:
        y_hat: Scores of shape (N, num_classes), or predicted classes of shape (N,).
        y: True classes, shape (N,).
    """
    if y_hat.dim() > 1 and y_hat.shape[1] > 1:
        y_hat = y_hat.argmax(dim=1)                   # (N,)
    return float((y_hat.to(y.dtype) == y).sum())


def shift(X: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Images ``X`` (N, C, H, W) moved ``dy`` pixels down and ``dx`` right, the edge pixels
    repeated into the gap (same shape)."""
    pad = max(abs(dy), abs(dx))
    if pad == 0:
        return X
    height, width = X.shape[-2:]
    padded = nn.functional.pad(X, (pad, pad, pad, pad), mode="replicate")
    return padded[..., pad - dy:pad - dy + height, pad - dx:pad - dx + width]


def _predictions(net: nn.Module, data_iter: Iterable, precision: str, channels_last: bool,
                 flip_tta: bool, shifts: tuple[tuple[int, int], ...] = ()
                 ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """``(predicted classes, labels)`` of each batch: eval mode, no gradients, mode restored.

    With ``flip_tta`` a score is the mean of the scores of the image and of its mirror
    image (test-time augmentation, for a network trained with flips); ``shifts`` adds the
    image moved by each ``(dy, dx)`` (and its mirror) to the views averaged.
    """
    device = next(net.parameters()).device
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad(), autocast(device, precision):
            for X, y in data_iter:
                X, y = X.to(device), y.to(device)
                if channels_last:
                    X = X.contiguous(memory_format=torch.channels_last)
                views = [X, *(shift(X, dy, dx) for dy, dx in shifts)]
                if flip_tta:
                    views += [view.flip(-1) for view in views]
                y_hat = sum(net(view).float() for view in views) / len(views)  # (N, classes)
                yield y_hat.argmax(dim=1), y
    finally:
        net.train(was_training)


def count_correct(net: nn.Module, data_iter: Iterable, *, precision: str = "fp32",
                  channels_last: bool = False, flip_tta: bool = False,
                  shifts: tuple[tuple[int, int], ...] = ()) -> tuple[float, int]:
    """``(correct predictions, examples)`` over every batch of ``data_iter``."""
    correct, total = 0.0, 0
    for y_pred, y in _predictions(net, data_iter, precision, channels_last, flip_tta,
                                  shifts):
        correct += accuracy(y_pred, y)
        total += y.numel()
    return correct, total


def evaluate_accuracy(net: nn.Module, data_iter: Iterable, *, precision: str = "fp32",
                      channels_last: bool = False, flip_tta: bool = False,
                      shifts: tuple[tuple[int, int], ...] = ()) -> float:
    """The accuracy of ``net`` on every example of ``data_iter``, on ``net``'s device.

    Unlike the source's ``evaluate_accuracy_gpu`` (which returns inside its loop, after the
    first batch), this scores the whole data set. It runs in eval mode (BatchNorm uses its
    running statistics) under ``torch.no_grad``, and restores the mode ``net`` was in.

    Args:
        net: The network.
        data_iter: Batches ``(X, y)``.
        precision: ``"fp32"`` or ``"bf16"`` (autocast).
        channels_last: Feed the batches in channels-last memory format.
        flip_tta: Average the scores of each image and its mirror image.
        shifts: Also average the scores of the image moved by each ``(dy, dx)`` pixels
            (see :func:`shift`), and of their mirror images with ``flip_tta``.
    """
    correct, total = count_correct(net, data_iter, precision=precision,
                                   channels_last=channels_last, flip_tta=flip_tta,
                                   shifts=shifts)
    if total == 0:
        raise ValueError("data_iter yielded no example; pass a non-empty data set")
    return correct / total


def predict(net: nn.Module, data_iter: Iterable, *, precision: str = "fp32",
            channels_last: bool = False, flip_tta: bool = False
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """Predicted and true classes of every example of ``data_iter`` (both int64 (N,), CPU),
    computed like :func:`evaluate_accuracy`."""
    pairs = [(p.cpu(), y.cpu()) for p, y in _predictions(net, data_iter, precision,
                                                          channels_last, flip_tta)]
    if not pairs:
        raise ValueError("data_iter yielded no example; pass a non-empty data set")
    return torch.cat([p for p, _ in pairs]), torch.cat([y for _, y in pairs])


def scoring(recipe: Recipe, device: torch.device | str) -> dict[str, Any]:
    """How a network trained with ``recipe`` on ``device`` is scored: the keywords of
    :func:`evaluate_accuracy` and :func:`predict` that :func:`train` uses."""
    return {"precision": resolve_precision(recipe.precision, device).name,
            "channels_last": recipe.channels_last, "flip_tta": recipe.flip_tta}


def confusion_matrix(preds: torch.Tensor, labels: torch.Tensor, num_classes: int = 10
                     ) -> torch.Tensor:
    """Counts (num_classes, num_classes): row = true class, column = predicted class."""
    index = labels.long() * num_classes + preds.long()
    return torch.bincount(index, minlength=num_classes**2).view(num_classes, num_classes)


def set_seed(seed: int) -> None:
    """Seed Python's, NumPy's and PyTorch's generators (every device).

    On one machine, the same seed then gives the same run; different CPUs or library
    versions may still differ in the last bits of floating-point sums.
    """
    check_int("seed", seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)          # also seeds every CUDA device


# -- one epoch ------------------------------------------------------------------------------


def train_epoch(net: nn.Module, train_iter: Iterable, loss: nn.Module,
                optimizer: torch.optim.Optimizer, scheduler: Any = None, *,
                precision: str = "fp32", channels_last: bool = False,
                on_batch: Callable[[float, float, int], None] | None = None,
                ) -> tuple[float, float, int]:
    """Train ``net`` for one pass over ``train_iter``: forward, loss, backward, step.

    Returns:
        The mean loss, the accuracy and the number of examples of the epoch, measured as
        the book does: on the batches as trained, in train mode. ``on_batch`` is called
        after every step with the step's loss, its correct predictions and its examples.
    """
    device = next(net.parameters()).device
    net.train()
    loss_sum, correct, n = 0.0, 0.0, 0
    for X, y in train_iter:
        X, y = X.to(device), y.to(device)
        if channels_last:
            X = X.contiguous(memory_format=torch.channels_last)
        with autocast(device, precision):
            y_hat = net(X)
            l = loss(y_hat, y)   # noqa: E741 (the book's name)
        optimizer.zero_grad(set_to_none=True)
        l.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()     # the one-cycle rate changes every step
        l_value, c = float(l.detach()), accuracy(y_hat, y)
        loss_sum, correct, n = loss_sum + l_value * len(y), correct + c, n + len(y)
        if on_batch is not None:
            on_batch(l_value, c, len(y))
    if n == 0:
        raise ValueError("train_iter yielded no batch; pass a non-empty data set")
    return loss_sum / n, correct / n, n


# -- a whole run ----------------------------------------------------------------------------


@dataclass
class History:
    """What :func:`train` measured, one entry per epoch (and five points per epoch).

    Attributes:
        epochs: Epoch numbers 1, 2, ...
        train_loss: Mean training loss over each epoch.
        train_acc: Training accuracy over each epoch (on the batches as trained, in train
            mode, as the book).
        val_acc: Accuracy on the validation set after each epoch (empty without one).
        test_acc: Accuracy on the whole test set, scored once after the last epoch (None
            before, or without a test set).
        examples_per_sec: Training examples per second of each epoch (training steps only).
        epoch_time: Seconds of each epoch (training and scoring).
        points: ``(epoch as a fraction, loss, accuracy)`` five times an epoch, each the mean
            over the steps since the point before.
        device: The device the run trained on.
        lr: The (peak) learning rate.
        precision: The precision the run computed in, and why (e.g.
            ``"precision bf16 (CPU has AMX)"``).
    """

    epochs: list[int] = field(default_factory=list)
    train_loss: list[float] = field(default_factory=list)
    train_acc: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    test_acc: float | None = None
    examples_per_sec: list[float] = field(default_factory=list)
    epoch_time: list[float] = field(default_factory=list)
    points: list[tuple[float, float, float]] = field(default_factory=list)
    device: str = "cpu"
    lr: float = 0.0
    precision: str = ""

    @property
    def wall_time(self) -> float:
        """Seconds of all epochs together (training and scoring)."""
        return float(sum(self.epoch_time))

    @property
    def train_examples_per_sec(self) -> float:
        """Training examples per second over the whole run (the book's second line)."""
        if not self.examples_per_sec:
            return 0.0
        # The harmonic mean: epochs of equal size, so total examples / total train time.
        return len(self.examples_per_sec) / sum(1 / r for r in self.examples_per_sec)

    def epoch_line(self) -> str:
        """The line printed after each epoch."""
        i = len(self.epochs) - 1
        val = f", val acc {self.val_acc[i]:.3f}" if self.val_acc else ""
        return (f"epoch {self.epochs[i]}, loss {self.train_loss[i]:.3f}, train acc "
                f"{self.train_acc[i]:.3f}{val}, {self.examples_per_sec[i]:.0f} examples/sec, "
                f"{self.epoch_time[i]:.0f} s")

    def final_lines(self) -> str:
        """The book's two final lines: ``loss L, train acc A, test acc T`` and the speed
        (``val acc V`` in place of the test accuracy for a run without a test set)."""
        if not self.epochs:
            return "no epoch trained"
        held_out = (f", test acc {self.test_acc:.3f}" if self.test_acc is not None else
                    f", val acc {self.val_acc[-1]:.3f}" if self.val_acc else "")
        return (f"loss {self.train_loss[-1]:.3f}, train acc {self.train_acc[-1]:.3f}"
                f"{held_out}\n{self.train_examples_per_sec:.1f} examples/sec on {self.device}")

    def add_epoch(self, train_loss: float, train_acc: float, val_acc: float | None,
                  examples_per_sec: float, seconds: float) -> None:
        """Record the next epoch's measurements."""
        self.epochs.append(len(self.epochs) + 1)
        self.train_loss.append(train_loss)
        self.train_acc.append(train_acc)
        if val_acc is not None:
            self.val_acc.append(val_acc)
        self.examples_per_sec.append(examples_per_sec)
        self.epoch_time.append(seconds)

    def to_dict(self) -> dict[str, Any]:
        """Plain Python values (for checkpoints and JSON)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, state: dict[str, Any]) -> History:
        """The inverse of :meth:`to_dict`."""
        state = dict(state)
        state["points"] = [tuple(p) for p in state.get("points", [])]
        return cls(**state)


class DivergenceError(RuntimeError):
    """The training loss became NaN or infinite, or stayed far above chance too long."""


@dataclass
class DivergenceGuard:
    """Stops a run that has diverged, and no run that is only slow to start.

    A loss that is NaN or infinite stops the run at once. A finite loss stops it only
    when it has stayed above ``limit`` for ``window`` steps in a row: a run that spikes
    and then recovers, as the source's run with lr 0.9 did, is never stopped.

    Attributes:
        lr: The learning rate, named in the message.
        limit: A loss far above chance: default twice the loss of a uniform guess over
            10 classes, 2 ln 10 = 4.6.
        window: How many steps in a row the loss must stay above ``limit``.
    """

    lr: float
    limit: float = 2 * math.log(10)
    window: int = 100
    _above: int = 0

    def check(self, loss: float, epoch: int, step: int) -> None:
        """Raise :class:`DivergenceError` if ``loss`` (step ``step`` of ``epoch``) ends the run."""
        self._above = self._above + 1 if loss > self.limit else 0
        if math.isfinite(loss) and self._above < self.window:
            return
        what = (f"the loss is {loss}" if not math.isfinite(loss) else
                f"the loss has stayed above {self.limit:.2f} for {self.window} steps")
        raise DivergenceError(f"training diverged with lr={self.lr:g} at epoch {epoch}, "
                              f"step {step}: {what}. Lower the learning rate (the book uses "
                              f"lr=0.05 for this model)")


class EpochRecorder:
    """What :func:`train` does after each step of an epoch: check the loss with the
    guard, and five times an epoch add a point to the history (the means since the last
    point) and call ``on_update`` (a live plot). ``pause`` is the time that took."""

    def __init__(self, history: History, guard: DivergenceGuard, epoch: int,
                 num_batches: int, on_update: Callable[[History], None] | None) -> None:
        self.history, self.guard, self.epoch = history, guard, epoch
        self.num_batches, self.on_update = num_batches, on_update
        self.marks = {round(k * num_batches / 5) for k in range(1, 6)}
        self.step, self.sums, self.pause = 0, [0.0, 0.0, 0], 0.0

    def __call__(self, loss: float, correct: float, size: int) -> None:
        self.step += 1
        self.guard.check(loss, self.epoch + 1, self.step)
        self.sums = [self.sums[0] + loss * size, self.sums[1] + correct, self.sums[2] + size]
        if self.step in self.marks:
            t0 = time.perf_counter()
            loss_sum, correct_sum, n = self.sums
            self.history.points.append((self.epoch + self.step / self.num_batches,
                                        loss_sum / n, correct_sum / n))
            self.sums = [0.0, 0.0, 0]
            if self.on_update is not None:
                self.on_update(self.history)
            self.pause += time.perf_counter() - t0


def prepare_network(net: nn.Module, recipe: Recipe, device: torch.device) -> nn.Module:
    """Seed, initialize and place the network as the recipe says (in place)."""
    if recipe.seed is not None:
        set_seed(recipe.seed)
    if recipe.init is not None:
        init_weights(net, recipe.init)
    if recipe.matmul_convs:
        use_matmul_convs(net)
    net.to(device)
    if recipe.channels_last:
        net.to(memory_format=torch.channels_last)
    return net


def make_optimizer(net: nn.Module, recipe: Recipe, num_batches: int
                   ) -> tuple[torch.optim.Optimizer, Any]:
    """SGD as the recipe says, and its rate schedule (None for a constant rate).

    ``FlatSGD`` is ``torch.optim.SGD`` (same arithmetic, same results) stepping on flat
    views of the parameters, which spares the fused CPU step a copy of every gradient in
    the channels-last layout (see :mod:`d2l_resnet.optim`).
    """
    device = next(net.parameters()).device
    params = net.parameters() if recipe.bias_decay else without_bias_decay(net.parameters())
    optimizer = FlatSGD(
        params, lr=recipe.lr, momentum=recipe.momentum,
        nesterov=recipe.nesterov and recipe.momentum > 0, weight_decay=recipe.weight_decay,
        fused=device.type in ("cpu", "cuda"))   # all parameters in one pass
    if recipe.schedule == "constant":
        return optimizer, None
    # The one-cycle policy moves the momentum against the rate: from momentum + 0.05 at
    # the start down to momentum - 0.05 at the peak rate and back (0.95 and 0.85 for 0.9,
    # PyTorch's defaults). Without momentum there is none to cycle.
    m, steps = recipe.momentum, recipe.num_epochs * num_batches
    if recipe.warmup * steps == 1:      # OneCycleLR would divide by zero at the first step
        raise ValueError(f"a warm-up of {recipe.warmup} of {steps} steps is a single step, "
                         f"which the one-cycle schedule cannot take: change warmup or the "
                         f"number of steps (epochs x batches)")
    return optimizer, torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=recipe.lr, total_steps=steps,
        pct_start=recipe.warmup, anneal_strategy="cos", div_factor=10.0, final_div_factor=100.0,
        cycle_momentum=m > 0, base_momentum=round(max(m - 0.05, 0.0), 6),
        max_momentum=round(min(m + 0.05, 0.999), 6))


def checkpoint_state(net: nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any,
                     recipe: Recipe, history: History, train_iter: Any) -> dict[str, Any]:
    """Everything a resumed run needs to end as an unbroken one would."""
    return {"format": FORMAT, "model": net.state_dict(), "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "epoch": len(history.epochs), "recipe": asdict(recipe),
            "history": history.to_dict(), "rng": rng_state(),
            "loader": getattr(train_iter, "state_dict", lambda: None)()}


def restore_run(state: dict[str, Any], path: Any, recipe: Recipe, net: nn.Module,
                optimizer: torch.optim.Optimizer, scheduler: Any, train_iter: Any) -> History:
    """Load a checkpoint's ``state`` (read from ``path``) into the run; return its history.

    Raises:
        ValueError: If the checkpoint is of an older format or another recipe.
    """
    if state["format"] != FORMAT:
        raise ValueError(f"cannot resume from {path}: it was written by an older version of "
                         f"d2l_resnet (checkpoint format {state['format']}, this one reads "
                         f"{FORMAT}); its weights still load with net.load_state_dict("
                         f"load_checkpoint(path)['model']), but train afresh to resume later")
    changed = recipe.differences(state["recipe"])
    if changed:
        diff = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in changed.items())
        raise ValueError(f"cannot resume from {path}: it was trained with another recipe "
                         f"({diff}); resume with the same settings, or start afresh")
    net.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None:
        scheduler.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"])
    if state.get("loader") is not None and hasattr(train_iter, "load_state_dict"):
        train_iter.load_state_dict(state["loader"])
    return History.from_dict(state["history"])


def train(net: nn.Module, train_iter: Iterable, test_iter: Iterable | None,
          num_epochs: int | None = None, lr: float | None = None,
          device: torch.device | str | None = None, *, recipe: Recipe | None = None,
          val_iter: Iterable | None = None, checkpoint: Any = None, resume: bool = False,
          verbose: bool = True, progress: bool | None = None,
          on_update: Callable[[History], None] | None = None) -> History:
    """Train ``net`` with minibatch SGD; score a validation set after every epoch and the
    test set once, at the end.

    ``train(net, train_iter, test_iter, num_epochs, lr, device)`` is the source's call, and
    trains as the source does (Xavier init, plain SGD, constant rate, fp32), minus its
    defects. ``train(net, train_iter, test_iter, recipe=profile.recipe)`` trains with a
    profile's :class:`~d2l_resnet.profiles.Recipe`; ``num_epochs`` and ``lr``, if given,
    override the recipe's.

    Args:
        net: The network; moved to ``device``.
        train_iter: Training batches ``(X, y)``, with ``len()``; iterated once per epoch.
            With a ``state_dict`` method (:class:`~d2l_resnet.data.InMemoryLoader`) its
            position is saved in checkpoints.
        test_iter: Test batches, scored in full once, after the last epoch (None: none).
            Nothing is chosen on them: that is what ``val_iter`` is for.
        num_epochs: Epochs to train (in total, counting those of a resumed checkpoint).
        lr: Learning rate (the peak rate with ``schedule="onecycle"``).
        device: ``"auto"`` or None (CUDA, else mps, else the CPU), or a name.
        recipe: Every other setting (default: the source's, ``Recipe()``).
        val_iter: Validation batches (held out of the training set), scored in full
            after every epoch: the curve on which settings are chosen.
        checkpoint: Save a checkpoint there after every epoch, atomically.
        resume: Continue from ``checkpoint`` (which must exist): the run ends with the
            same metrics as one that was never interrupted.
        verbose: Print a header line (device and precision), one line per epoch and the
            book's final lines.
        progress: A progress bar over each epoch's batches; None: on unless the
            environment sets ``TQDM_DISABLE=1``.
        on_update: Called with the history five times per epoch and after each epoch
            (for a live plot, e.g. :class:`d2l_resnet.plot.LivePlot`).

    Raises:
        ValueError: If a setting is out of range, or ``resume`` meets a checkpoint it
            cannot continue.
        FileNotFoundError: If ``resume`` finds no checkpoint.
        DivergenceError: If the loss becomes NaN or infinite, or stays far above chance.
    """
    recipe = (recipe or Recipe()).replace(
        **{k: v for k, v in (("num_epochs", num_epochs), ("lr", lr)) if v is not None})
    if resume and checkpoint is None:
        raise ValueError("resume=True needs a checkpoint path to resume from")
    if not isinstance(train_iter, Sized):
        raise ValueError(f"train_iter must have a len() (a DataLoader or a list of batches), "
                         f"got {type(train_iter).__name__}")
    device = get_device(device)
    precision = resolve_precision(recipe.precision, device)
    net = prepare_network(net, recipe, device)
    optimizer, scheduler = make_optimizer(net, recipe, len(train_iter))
    loss = nn.CrossEntropyLoss(label_smoothing=recipe.label_smoothing)
    history = History(device=str(device), lr=recipe.lr, precision=str(precision))
    if resume:
        history = restore_run(load_checkpoint(checkpoint, map_location=device), checkpoint,
                              recipe, net, optimizer, scheduler, train_iter)
    if verbose:
        print(f"training on {device}, {precision}" + (
            f", resuming after epoch {len(history.epochs)}" if history.epochs else ""))
    guard = DivergenceGuard(recipe.lr)
    score = scoring(recipe, device)
    for epoch in range(len(history.epochs), recipe.num_epochs):
        t0 = time.perf_counter()
        recorder = EpochRecorder(history, guard, epoch, len(train_iter), on_update)
        batches = progress_bar(train_iter, progress, total=len(train_iter),
                               desc=f"epoch {epoch + 1}/{recipe.num_epochs}", unit="batch")
        train_loss, train_acc, n = train_epoch(
            net, batches, loss, optimizer, scheduler, precision=precision.name,
            channels_last=recipe.channels_last, on_batch=recorder)
        train_time = time.perf_counter() - t0 - recorder.pause
        val_acc = evaluate_accuracy(net, val_iter, **score) if val_iter is not None else None
        if epoch + 1 == recipe.num_epochs and test_iter is not None:
            history.test_acc = evaluate_accuracy(net, test_iter, **score)
        history.add_epoch(train_loss, train_acc, val_acc, n / train_time,
                          time.perf_counter() - t0)
        if verbose:
            print(history.epoch_line())
        if checkpoint is not None:
            save_checkpoint(checkpoint, checkpoint_state(net, optimizer, scheduler, recipe,
                                                         history, train_iter))
        if on_update is not None:
            on_update(history)
    if verbose:
        print(history.final_lines())
    return history
