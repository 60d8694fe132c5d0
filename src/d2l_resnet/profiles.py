"""The training recipe, written once, and the profiles that hold one.

A :class:`Recipe` is how to train (epochs, rate, optimizer, schedule, loss, initialization,
precision, memory layout, seed); a :class:`DataSpec` is what to train on (batch size,
image size, subsets, augmentation); a :class:`Profile` names a pair of them. The
notebooks and the CLI choose a profile with the environment variable
``D2L_RESNET_PROFILE`` or by name:

- ``quick``: for tests and nbval, the course recipe on a small subset, two epochs: every
  notebook runs in under a minute on 2 CPU cores.
- ``course`` (the default): all of Fashion-MNIST at 28x28, a recipe for a laptop CPU
  whose choices were made on a validation split (``python -m d2l_resnet experiment
  recipe``; the tables are ``results/recipe_round*.csv``, discussed in notebook 04).
- ``d2l``: the book's recipe, unchanged: Xavier init, plain SGD at a constant lr 0.05, no
  augmentation, pixels in [0, 1], fp32, 96x96 images, 10 epochs (for a GPU).

``train(net, data.train, data.test, recipe=profile.recipe)`` trains with a profile's
recipe; :func:`d2l_resnet.data.load_data_for_profile` loads its data.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from typing import Any

from d2l_resnet.checks import check_choice, check_int, check_positive_int, check_range
from d2l_resnet.devices import PRECISIONS
from d2l_resnet.model import INITS

__all__ = [
    "DEFAULT_PROFILE",
    "INITS",
    "NOT_STORED",
    "PROFILES",
    "PROFILE_ENV",
    "SCHEDULES",
    "DataSpec",
    "Profile",
    "Recipe",
    "get_profile",
]

PROFILE_ENV = "D2L_RESNET_PROFILE"
DEFAULT_PROFILE = "course"
SCHEDULES = ("constant", "onecycle")


class _NotStored:
    def __repr__(self) -> str:
        return "not stored"


#: The stored value :meth:`Recipe.differences` reports for a setting a stored recipe lacks.
NOT_STORED = _NotStored()


@dataclass(frozen=True)
class Recipe:
    """How to train: every setting of :func:`d2l_resnet.train.train` that shapes the result.

    The defaults are the source notebook's recipe (Xavier init, plain SGD at a constant
    rate, fp32), with the book's lr 0.05. A recipe checks itself when it is made, and a
    checkpoint stores it whole, so a resumed run can name any setting that differs.

    Attributes:
        num_epochs: Epochs to train.
        lr: Learning rate (the peak rate with the one-cycle schedule).
        momentum: SGD momentum (0: plain SGD, as the book). Under the one-cycle schedule
            it moves against the rate, from momentum + 0.05 down to momentum - 0.05 at
            the peak rate and back (Smith's one-cycle policy, PyTorch's ``OneCycleLR``).
        nesterov: Nesterov momentum (needs momentum > 0).
        weight_decay: L2 penalty of SGD.
        bias_decay: Apply ``weight_decay`` to the biases and BatchNorm's scales and shifts
            too (False: to the weights of convolutions and linear layers only, the "no
            bias decay" of He et al., *Bag of Tricks*, 2019, Sec. 3.1).
        label_smoothing: Label smoothing of the cross-entropy loss.
        schedule: ``"constant"``, or ``"onecycle"``: warm up to ``lr`` over the first
            ``warmup`` of the steps, then anneal (cosine) to nearly zero, stepped per batch.
        warmup: The share of the steps the one-cycle schedule warms up over (0.25: the
            first quarter).
        init: ``"xavier"`` (the source), ``"kaiming"`` (He init with each residual branch
            starting at zero, see :func:`d2l_resnet.model.init_weights`), ``"default"``
            (PyTorch's), or None to keep the weights as they are (fine-tuning).
        precision: ``"auto"`` (bf16 autocast where the device computes bfloat16
            natively, else fp32; see :func:`d2l_resnet.devices.resolve_precision`),
            ``"fp32"`` or ``"bf16"``.
        channels_last: Run the network in channels-last memory format (faster
            convolutions on a CPU).
        matmul_convs: Compute the convolutions of tiny maps as matrix products
            (:func:`d2l_resnet.model.use_matmul_convs`): same results, faster on a CPU.
        flip_tta: Score held-out images as the mean of the predictions for the image and
            its mirror image (test-time augmentation, for networks trained with flips).
        seed: Seed everything first (initialization, shuffling, augmentation), or None.
    """

    num_epochs: int = 10
    lr: float = 0.05
    momentum: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0
    bias_decay: bool = True
    label_smoothing: float = 0.0
    schedule: str = "constant"
    warmup: float = 0.25
    init: str | None = "xavier"
    precision: str = "fp32"
    channels_last: bool = False
    matmul_convs: bool = False
    flip_tta: bool = False
    seed: int | None = None

    def __post_init__(self) -> None:
        check_positive_int("num_epochs", self.num_epochs)
        check_range("lr", self.lr, 0, math.inf, low_open=True, hint="the book uses 0.05")
        check_range("momentum", self.momentum, 0, 1)
        check_range("weight_decay", self.weight_decay, 0, math.inf)
        check_range("label_smoothing", self.label_smoothing, 0, 1)
        check_choice("schedule", self.schedule, SCHEDULES)
        check_range("warmup", self.warmup, 0, 1, low_open=True, hint="0.25 warms up over "
                    "the first quarter of the steps")
        check_choice("init", self.init, (*INITS, None))
        check_choice("precision", self.precision, PRECISIONS)
        check_int("seed", self.seed, allow_none=True)
        for name in ("nesterov", "bias_decay", "channels_last", "matmul_convs", "flip_tta"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")

    def replace(self, **changes: Any) -> Recipe:
        """A copy with some settings changed (and checked)."""
        _check_names(Recipe, changes)
        return dataclasses.replace(self, **changes)

    def differences(self, other: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
        """The settings where ``other`` (a stored ``asdict(recipe)``) differs from this one:
        ``{name: (stored value, this value)}``; a setting missing from ``other`` (stored by
        an older version) counts, as :data:`NOT_STORED`."""
        return {name: (other.get(name, NOT_STORED), value)
                for name, value in dataclasses.asdict(self).items()
                if other.get(name, NOT_STORED) != value}


@dataclass(frozen=True)
class DataSpec:
    """What to train on: the keyword arguments of
    :func:`d2l_resnet.data.load_data_fashion_mnist_fast` (the seed comes from the recipe).

    Attributes:
        batch_size: Examples per step.
        resize: Side length the images are resized to, or None for 28x28.
        train_subset: How many training examples to use (None: all 60,000, less the
            validation split).
        test_subset: How many test examples to score (None: all 10,000).
        validation: Hold out this many training examples as a validation set (0: none).
        augment: Random horizontal flips (and shifts) of the training images.
        max_shift: Largest random shift of ``augment``, in pixels (0: flips only).
        erase: Random erasing of the training images: the probability that an image
            has a random rectangle blanked (0: none; see
            :class:`d2l_resnet.data.InMemoryLoader`).
        normalize: Normalize the inputs (False: pixels in [0, 1], as ``ToTensor``).
    """

    batch_size: int = 256
    resize: int | None = None
    train_subset: int | None = None
    test_subset: int | None = None
    validation: int = 0
    augment: bool = False
    max_shift: int = 0
    erase: float = 0.0
    normalize: bool = False

    def __post_init__(self) -> None:
        check_positive_int("batch_size", self.batch_size)
        check_positive_int("resize", self.resize, allow_none=True)
        check_positive_int("train_subset", self.train_subset, allow_none=True)
        check_positive_int("test_subset", self.test_subset, allow_none=True)
        check_int("validation", self.validation)
        check_int("max_shift", self.max_shift)
        check_range("erase", self.erase, 0, 1, high_open=False)

    def replace(self, **changes: Any) -> DataSpec:
        """A copy with some settings changed (and checked)."""
        _check_names(DataSpec, changes)
        return dataclasses.replace(self, **changes)


def _check_names(cls: type, settings: dict[str, Any]) -> None:
    """Raise ``ValueError`` naming any of ``settings`` that ``cls`` (a dataclass) lacks."""
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(settings) - set(names))
    if unknown:
        raise ValueError(f"unknown setting{'s' * (len(unknown) > 1)} {', '.join(unknown)}; "
                         f"a {cls.__name__} has {', '.join(names)}")


@dataclass(frozen=True)
class Profile:
    """A named pair of a :class:`Recipe` and a :class:`DataSpec`.

    Attributes:
        name: ``quick``, ``course`` or ``d2l``.
        recipe: How to train.
        data: What to train on.
    """

    name: str
    recipe: Recipe
    data: DataSpec

    @property
    def quick(self) -> bool:
        """True for the small profile used by tests and nbval."""
        return self.name == "quick"

    def replace(self, **changes: Any) -> Profile:
        """A copy with settings of the recipe or the data changed, by their names.

        ``profile.replace(num_epochs=3, batch_size=128)`` changes the recipe's epochs and
        the data's batch size.

        Raises:
            ValueError: If a name is a setting of neither, or a value is out of range.
        """
        recipe_names = {f.name for f in dataclasses.fields(Recipe)}
        data_names = {f.name for f in dataclasses.fields(DataSpec)}
        unknown = sorted(set(changes) - recipe_names - data_names)
        if unknown:
            raise ValueError(f"unknown setting{'s' * (len(unknown) > 1)} {', '.join(unknown)}; "
                             f"a profile has the settings of a Recipe and of a DataSpec")
        return dataclasses.replace(
            self,
            recipe=self.recipe.replace(**{k: v for k, v in changes.items() if k in recipe_names}),
            data=self.data.replace(**{k: v for k, v in changes.items() if k in data_names}))


# The course recipe. Its choices were made on a validation split of the training set
# (5,000 images; the test set played no part): `python -m d2l_resnet experiment recipe
# --round 1` changed one setting at a time from a peak rate of 0.1; a peak rate of 0.2
# and test-time flips helped from both seeds, and so did Xavier init alone, but Xavier
# init with the rate of 0.2 did worse than the rate alone (`--round 2`). Round 3 tried
# shorter schedules: 10 epochs scored best of them, as well as 12 and within noise of
# the 15 of round 2, and 8 less, at any peak rate tried. Round 4 found 13 epochs no
# better than 10 from four seeds each; rounds 5 and 6 found random erasing, label
# smoothing 0.2 and 32x32 inputs no better than the recipe. Round 7 found sparing
# the biases and BatchNorm's scales and shifts weight decay better by 1.7 standard
# errors from six seeds each, and the recipe took it. Round 8 found neither the last
# epoch without flips nor batches of 128 worth more seeds, round 9 neither a warm-up
# over a tenth of the steps nor over two fifths, and round 10 neither half nor twice the
# weight decay. `experiment tta` found shifted copies at test time no better than flips
# alone. The tables are results/recipe_round*.csv and results/tta.csv, discussed in
# notebook 04.
COURSE_RECIPE = Recipe(
    num_epochs=10, lr=0.2, momentum=0.9, nesterov=True, weight_decay=5e-4,
    bias_decay=False, label_smoothing=0.1, schedule="onecycle", init="kaiming", precision="auto",
    channels_last=True, matmul_convs=True, flip_tta=True, seed=0)
COURSE_DATA = DataSpec(batch_size=256, augment=True, max_shift=0, normalize=True)

PROFILES: dict[str, Profile] = {
    "quick": Profile("quick", COURSE_RECIPE.replace(num_epochs=2),
                     COURSE_DATA.replace(batch_size=128, train_subset=4096,
                                         test_subset=1024)),
    "course": Profile("course", COURSE_RECIPE, COURSE_DATA),
    "d2l": Profile("d2l", Recipe(num_epochs=10, lr=0.05, seed=0),
                   DataSpec(batch_size=256, resize=96)),
}


def get_profile(name: str | None = None) -> Profile:
    """The profile called ``name``, else ``$D2L_RESNET_PROFILE``, else ``course``."""
    chosen = name if name is not None else os.environ.get(PROFILE_ENV, DEFAULT_PROFILE)
    key = chosen.strip().lower()
    if key not in PROFILES:
        source = "argument" if name is not None else f"${PROFILE_ENV}"
        raise ValueError(
            f"unknown profile {chosen!r} (from the {source}); expected one of "
            f"{', '.join(PROFILES)}"
        )
    return PROFILES[key]
