"""Tests of the in-memory loader: what it yields, in which order, and what it refuses.

Small synthetic tensors stand in for Fashion-MNIST, so these run in seconds; the loader
over the real data set is exercised by notebook 03 and ``python -m d2l_resnet bench data``.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from d2l_resnet.data import (
    FASHION_MNIST_MEAN,
    FASHION_MNIST_STD,
    InMemoryLoader,
    stratified_subset,
)

N, H = 50, 8


def _data(n: int = N, h: int = H) -> tuple[torch.Tensor, torch.Tensor]:
    """Images whose first pixel encodes the example's index, labels = index mod 10."""
    gen = torch.Generator().manual_seed(123)
    images = torch.randint(0, 256, (n, h, h), dtype=torch.uint8, generator=gen)
    images[:, 0, 0] = torch.arange(n, dtype=torch.uint8)
    return images, torch.arange(n) % 10


def _indices(loader: InMemoryLoader) -> list[int]:
    """The examples of one epoch, in the order the loader yields them (via the labels
    of a loader built over labels = indices)."""
    return [i for _, y in loader for i in y.tolist()]


def _indexed(n: int = N, **kwargs) -> InMemoryLoader:
    images, _ = _data(n)
    return InMemoryLoader(images, torch.arange(n), 8, **kwargs)


# ------------------------------------------------------------------ what a batch holds

def test_batches_have_the_right_shapes_and_dtypes() -> None:
    images, labels = _data()
    loader = InMemoryLoader(images, labels, 16)
    batches = list(loader)
    assert [tuple(X.shape) for X, _ in batches] == [(16, 1, H, H)] * 3 + [(2, 1, H, H)]
    assert [tuple(y.shape) for _, y in batches] == [(16,)] * 3 + [(2,)]
    assert all(X.dtype == torch.float32 and y.dtype == torch.int64 for X, y in batches)


def test_without_normalize_pixels_are_scaled_to_unit_range_exactly() -> None:
    images, labels = _data()
    X, y = next(iter(InMemoryLoader(images, labels, N, normalize=False)))
    assert torch.equal(X, images.unsqueeze(1).float() / 255)   # as ToTensor, bit for bit
    assert X.min() >= 0 and X.max() <= 1
    assert torch.equal(y, labels)


def test_normalize_uses_the_fashion_mnist_mean_and_std() -> None:
    images, labels = _data()
    X, _ = next(iter(InMemoryLoader(images, labels, N)))
    expected = (images.unsqueeze(1).float() / 255 - FASHION_MNIST_MEAN) / FASHION_MNIST_STD
    assert torch.allclose(X, expected, atol=1e-5)
    assert X.min() == pytest.approx(-FASHION_MNIST_MEAN / FASHION_MNIST_STD, abs=1e-5)
    assert X.max() == pytest.approx((1 - FASHION_MNIST_MEAN) / FASHION_MNIST_STD, abs=1e-5)


def test_resize_matches_an_antialiased_interpolate_of_each_image() -> None:
    images, labels = _data()
    loader = InMemoryLoader(images, labels, 10, resize=20, normalize=False)
    X, _ = next(iter(loader))
    assert X.shape == (10, 1, 20, 20)
    reference = F.interpolate(images[:10].unsqueeze(1).float(), size=(20, 20),
                              mode="bilinear", antialias=True) / 255
    # The CPU path resizes uint8 (rounded to whole pixel values, like PIL).
    assert (X - reference).abs().max() <= 1 / 255 + 1e-6
    assert X.min() >= 0 and X.max() <= 1


def test_downsizing_works_too() -> None:
    images, labels = _data(h=16)
    X, _ = next(iter(InMemoryLoader(images, labels, 4, resize=8)))
    assert X.shape == (4, 1, 8, 8)


def test_data_and_batches_live_on_the_requested_device() -> None:
    images, labels = _data()
    loader = InMemoryLoader(images, labels, 16, device="cpu")
    assert loader.images.dtype == torch.uint8 and loader.images.device.type == "cpu"
    X, y = next(iter(loader))
    assert X.device.type == "cpu" and y.device.type == "cpu"


# --------------------------------------------------------------------- order, epochs

def test_without_shuffle_the_order_is_the_data_set_order() -> None:
    assert _indices(_indexed()) == list(range(N))


def test_every_example_is_seen_exactly_once_per_epoch() -> None:
    loader = _indexed(shuffle=True, augment=True)
    for _ in range(3):
        seen = _indices(loader)
        assert sorted(seen) == list(range(N))


def test_shuffling_is_reproducible_from_the_seed_and_differs_between_epochs() -> None:
    a, b = _indexed(shuffle=True, seed=7), _indexed(shuffle=True, seed=7)
    epochs_a = [_indices(a) for _ in range(3)]
    epochs_b = [_indices(b) for _ in range(3)]
    assert epochs_a == epochs_b
    assert epochs_a[0] != list(range(N))
    assert epochs_a[0] != epochs_a[1] != epochs_a[2]
    assert _indices(_indexed(shuffle=True, seed=8)) != epochs_a[0]


def test_images_and_labels_stay_paired_when_shuffled() -> None:
    images, _ = _data()
    loader = InMemoryLoader(images, torch.arange(N), 8, shuffle=True, normalize=False)
    for X, y in loader:
        first_pixel = torch.round(X[:, 0, 0, 0] * 255).long()
        assert torch.equal(first_pixel, y)


def test_len_and_drop_last() -> None:
    images, labels = _data()
    assert len(InMemoryLoader(images, labels, 16)) == 4
    assert len(InMemoryLoader(images, labels, 10)) == 5
    dropping = InMemoryLoader(images, labels, 16, drop_last=True, shuffle=True)
    assert len(dropping) == 3
    batches = list(dropping)
    assert len(batches) == 3 and all(len(y) == 16 for _, y in batches)
    assert dropping.num_examples == N


# ------------------------------------------------------------------------ augmentation

def test_augmentation_keeps_labels_and_changes_images() -> None:
    images, labels = _data()
    plain = InMemoryLoader(images, labels, N, normalize=False)
    augmented = InMemoryLoader(images, labels, N, normalize=False, augment=True)
    (X0, y0), (X1, y1) = next(iter(plain)), next(iter(augmented))
    assert torch.equal(y0, y1)
    assert X1.shape == X0.shape and X1.dtype == torch.float32
    assert not torch.equal(X0, X1)
    assert X1.min() >= 0 and X1.max() <= 1


def test_augmentation_is_a_flip_and_a_shift_of_at_most_two_pixels() -> None:
    images = torch.zeros(64, 12, 12, dtype=torch.uint8)
    images[:, 5, 2] = 255                                   # one bright pixel, at the left
    loader = InMemoryLoader(images, torch.zeros(64, dtype=torch.long), 64,
                            augment=True, normalize=False)
    X, _ = next(iter(loader))
    assert torch.equal(X.sum(dim=(1, 2, 3)), torch.ones(64))   # the pixel stays inside
    where = X[:, 0].flatten(1).argmax(1)
    rows, cols = (where // 12).tolist(), (where % 12).tolist()
    assert all(3 <= r <= 7 for r in rows)
    # Unflipped it lies within 2 of column 2, flipped within 2 of column 9.
    unflipped = [c for c in cols if 0 <= c <= 4]
    flipped = [c for c in cols if 7 <= c <= 11]
    assert len(unflipped) + len(flipped) == 64
    assert 16 <= len(flipped) <= 48                         # about half are flipped
    assert len(set(rows)) == 5 and len(set(unflipped)) == 5 and len(set(flipped)) == 5


def test_augmentation_is_reproducible_from_the_seed() -> None:
    images, labels = _data()
    a = InMemoryLoader(images, labels, 16, augment=True, shuffle=True, seed=3)
    b = InMemoryLoader(images, labels, 16, augment=True, shuffle=True, seed=3)
    assert all(torch.equal(Xa, Xb) for (Xa, _), (Xb, _) in zip(a, b, strict=True))


def test_random_erasing_blanks_one_rectangle_in_about_half_the_images() -> None:
    images = torch.full((400, 28, 28), 200, dtype=torch.uint8)
    labels = torch.zeros(400, dtype=torch.long)
    X, _ = next(iter(InMemoryLoader(images, labels, 400, normalize=False, erase=0.5)))
    blank = X[:, 0] == 0                                            # (B, H, W)
    erased = blank.flatten(1).any(1)
    assert 160 <= int(erased.sum()) <= 240                          # about half
    assert torch.all(X[:, 0][~blank] == 200 / 255)                  # the rest untouched
    rows, cols = blank.any(2), blank.any(1)
    assert torch.equal(rows[:, :, None] & cols[:, None, :], blank)  # each one rectangle
    share = blank.flatten(1).sum(1)[erased] / (28 * 28)             # 2-33% of the area,
    assert share.min() >= 0.01 and share.max() <= 0.36              # up to rounding
    height, width = rows.sum(1)[erased].float(), cols.sum(1)[erased].float()
    assert (height / width).max() > 1.5 and (height / width).min() < 1 / 1.5


def test_random_erasing_leaves_the_other_draws_and_the_labels_alone() -> None:
    images, labels = _data(h=28)
    kwargs = {"shuffle": True, "augment": True, "seed": 5, "normalize": True}
    plain = InMemoryLoader(images, labels, 16, **kwargs)
    erased = InMemoryLoader(images, labels, 16, erase=1.0, **kwargs)
    for (X0, y0), (X1, y1) in zip(plain, erased, strict=True):
        assert torch.equal(y0, y1)
        changed = X0 != X1
        assert changed.flatten(1).any(1).all()      # erase=1: every image
        assert torch.all(X1[changed] == 0)          # blanked to 0, the mean once normalized


# ------------------------------------------------------------------------- resumption

def test_state_dict_between_epochs_resumes_the_same_epochs() -> None:
    reference = _indexed(shuffle=True, seed=5)
    epochs = [_indices(reference) for _ in range(3)]
    first = _indexed(shuffle=True, seed=5)
    assert _indices(first) == epochs[0]
    state = first.state_dict()
    resumed = _indexed(shuffle=True, seed=0)      # another seed: the state overrides it
    resumed.load_state_dict(state)
    assert [_indices(resumed) for _ in range(2)] == epochs[1:]


def test_state_dict_mid_epoch_resumes_the_rest_of_that_epoch() -> None:
    reference = _indexed(shuffle=True, augment=True, seed=2)
    _indices(reference)
    epoch1 = [(X, y) for X, y in reference]
    loader = _indexed(shuffle=True, augment=True, seed=2)
    _indices(loader)
    it = iter(loader)
    next(it), next(it)
    state = loader.state_dict()
    assert (state["epoch"], state["batch"]) == (1, 2)
    resumed = _indexed(shuffle=True, augment=True, seed=2)
    resumed.load_state_dict(state)
    rest = list(resumed)
    assert len(rest) == len(epoch1) - 2
    assert all(torch.equal(Xa, Xb) and torch.equal(ya, yb)
               for (Xa, ya), (Xb, yb) in zip(rest, epoch1[2:], strict=True))
    assert resumed.state_dict()["epoch"] == 2 and resumed.state_dict()["batch"] == 0


def test_load_state_dict_refuses_a_state_from_another_loader() -> None:
    state = _indexed().state_dict()
    with pytest.raises(ValueError, match="num_examples"):
        _indexed(n=40).load_state_dict(state)
    with pytest.raises(ValueError, match="state must be a dict"):
        _indexed().load_state_dict({"epoch": 1})
    with pytest.raises(ValueError, match="batch"):
        _indexed().load_state_dict({**state, "batch": 99})


# ----------------------------------------------------------------------------- subsets

def test_stratified_subset_is_balanced_fixed_and_seeded() -> None:
    labels = torch.arange(1000) % 10
    idx = stratified_subset(labels, 95, seed=0)
    assert len(idx) == 95 and len(set(idx.tolist())) == 95
    assert torch.equal(idx, torch.sort(idx).values)
    counts = torch.bincount(labels[idx], minlength=10)
    assert counts.max() - counts.min() <= 1
    assert torch.equal(idx, stratified_subset(labels, 95, seed=0))
    assert not torch.equal(idx, stratified_subset(labels, 95, seed=1))


def test_stratified_subset_keeps_class_proportions() -> None:
    labels = torch.cat([torch.zeros(900), torch.ones(100)]).long()
    counts = torch.bincount(labels[stratified_subset(labels, 100)])
    assert counts.tolist() == [90, 10]


# ------------------------------------------------------------------------------ errors

@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"images": torch.zeros(4, 8, 8)}, "uint8 tensor of shape"),
        ({"images": torch.zeros(4, 1, 8, 8, dtype=torch.uint8)}, r"\(N, H, W\)"),
        ({"labels": torch.zeros(4, dtype=torch.int32)}, "int64"),
        ({"labels": torch.zeros(3, dtype=torch.long)}, "same number"),
        ({"batch_size": 0}, "batch_size must be a positive integer"),
        ({"batch_size": 2.5}, "batch_size"),
        ({"resize": 0}, "resize must be a positive integer or None"),
        ({"seed": -1}, "seed"),
        ({"device": "nonsense"}, "device"),
        ({"batch_size": 8, "drop_last": True}, "no batch"),
        ({"erase": 1.5}, "erase"),
    ],
)
def test_bad_arguments_raise_value_error(kwargs: dict, match: str) -> None:
    args = {"images": torch.zeros(4, 8, 8, dtype=torch.uint8),
            "labels": torch.zeros(4, dtype=torch.long), "batch_size": 2}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        InMemoryLoader(args.pop("images"), args.pop("labels"), args.pop("batch_size"),
                       **args)


def test_bad_subset_size_raises_value_error() -> None:
    with pytest.raises(ValueError, match="from 1 to 10"):
        stratified_subset(torch.arange(10), 11)


def test_pytorch_threads_are_restored_around_each_batch() -> None:
    images, labels = _data()
    before = torch.get_num_threads()
    loader = InMemoryLoader(images, labels, 8, num_threads=1, resize=12)
    seen = []
    for _ in loader:
        seen.append(torch.get_num_threads())
    assert seen == [before] * len(loader)
    assert torch.get_num_threads() == before


def test_max_shift_zero_flips_only() -> None:
    images, labels = _data()
    plain = next(iter(InMemoryLoader(images, labels, N, normalize=False)))[0]
    X, _ = next(iter(InMemoryLoader(images, labels, N, normalize=False, augment=True,
                                    max_shift=0)))
    assert all(torch.equal(x, p) or torch.equal(x, p.flip(-1))
               for x, p in zip(X, plain, strict=True))
    assert not torch.equal(X, plain)


def test_bench_data_rejects_bad_sizes() -> None:
    from d2l_resnet.extras.bench import bench_data

    with pytest.raises(ValueError, match="at least one image size"):
        bench_data(())
    with pytest.raises(ValueError, match=r"sizes.*0"):
        bench_data((28, 0))


def test_an_iterator_made_and_dropped_skips_no_epoch() -> None:
    """tqdm's progress bar (tqdm.auto) calls iter() once before the loop does: the epoch
    starts with the first batch asked for, so the bar changes nothing."""
    first_epoch = _indices(_indexed(shuffle=True, seed=3))
    loader = _indexed(shuffle=True, seed=3)
    iter(loader)                                   # made, never used
    assert _indices(loader) == first_epoch
    assert loader.state_dict()["epoch"] == 1
