# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 3. Fashion-MNIST (加载数据集)
#
# ResNet-18 is trained here on Fashion-MNIST: 70,000 grayscale 28x28 images of clothing
# in ten classes, 60,000 for training and 10,000 for testing. This notebook finds the
# data set (offline or online), checks that it is the real thing, looks at it, and then
# compares two ways of feeding it to a network: the course notebook's `DataLoader`,
# which prepares one image at a time in worker processes, and an in-memory loader that
# prepares whole batches at once. The course notebook trains at the images' native
# 28x28; the book's chapter resizes them to 96x96, and the last part of this notebook
# measures what that costs.

# %%
# %matplotlib inline
import hashlib
import statistics
import time
import warnings
from itertools import islice

import torch
from IPython.display import display

from d2l_resnet import get_profile, resnet18, show_source, summarize
from d2l_resnet.extras.bench import source_pipeline
from d2l_resnet.data import (
    FASHION_MNIST,
    FASHION_MNIST_LABELS,
    FASHION_MNIST_MEAN,
    FASHION_MNIST_STD,
    InMemoryLoader,
    load_data_fashion_mnist_fast,
    load_fashion_mnist_tensors,
    prepare_fashion_mnist,
    stratified_subset,
)
from d2l_resnet.plot import plot_image_grid

profile = get_profile()
_ = torch.manual_seed(0)

# %% [markdown]
# ## Where the data comes from (数据从哪里来)
#
# The course notebook calls `torchvision.datasets.FashionMNIST(root="../data",
# download=True)`: torchvision downloads four gzipped files from the data set's
# mirrors. That needs the internet, and it fails outright when the mirror is blocked
# or the machine is offline (a classroom network, a train).
#
# The package looks in several places, in this order, and the first that holds the data
# wins:
#
# 1. a folder passed as `root=...`, or named by the environment variable
#    `D2L_RESNET_DATA` (a folder you name must hold the data: a typo is an error, not a
#    silent download);
# 2. the project's `data/` folder;
# 3. `/usr/share/datasets/fashion-mnist`, where the Debian/Ubuntu package
#    `dataset-fashion-mnist` puts it (`sudo apt-get install dataset-fashion-mnist`
#    works from a local package mirror, without the internet);
# 4. torchvision's download, as in the course notebook.
#
# Gzipped files are decompressed into `data/FashionMNIST/raw` (torchvision's own
# downloader refuses the Debian package's gz files: they were compressed differently,
# so their checksums differ from the mirror's, though the images inside are the same).
# `python -m d2l_resnet data` (or `make data`) does all this from a terminal.
#
# ### How it is verified (如何校验)
#
# Every decompressed file is checked before anything is built on it: its IDX header
# (the MNIST format: a magic number, then the size of each dimension), its length
# against that header (a truncated download is caught here), its shape, the range of
# the labels, and the SHA-256 of its bytes against the published data set. A file that
# fails is named in the error message together with the remedy. The expected contents:

# %%
for name, (shape, sha256) in FASHION_MNIST.files.items():
    print(f"{name:<25} shape {shape!s:<16} SHA-256 {sha256[:16]}...")

# %% [markdown]
# ### What happened on this machine (在本机上的结果)
#
# Where the data was found depends on the machine, so the next cell's output (which
# names folders) is not compared by the tests; the cell after it repeats the checks and
# prints only what must be the same everywhere.

# %% tags=["nbval-ignore-output"]
source = prepare_fashion_mnist()
print(source.report())

# %%
for name, (_, sha256) in FASHION_MNIST.files.items():
    digest = hashlib.sha256((source.raw_dir / name).read_bytes()).hexdigest()
    assert digest == sha256, name
    print(f"{name:<25} SHA-256 matches")

# %% [markdown]
# The package then reads each file into a single tensor: the images as uint8 (one
# byte per pixel, 0 = background, 255 = brightest), the labels as int64.

# %%
train_images, train_labels = load_fashion_mnist_tensors(train=True)
test_images, test_labels = load_fashion_mnist_tensors(train=False)
for split, images, labels in (("train", train_images, train_labels),
                              ("test", test_images, test_labels)):
    print(f"{split:<5}: images {tuple(images.shape)} {images.dtype}, "
          f"{images.nbytes / 1e6:.1f} MB; labels {tuple(labels.shape)} {labels.dtype}")

# %% [markdown]
# The whole training set is 47 MB: it fits in memory many times over, even on a small
# laptop, and on any GPU.
#
# ## The ten classes (十个类别)

# %%
for i, name in enumerate(FASHION_MNIST_LABELS):
    print(i, name)

# %% [markdown]
# The first three training images of each class, one class per column:

# %%
picks = torch.cat([torch.nonzero(train_labels == c).flatten()[:3] for c in range(10)])
picks = picks.reshape(10, 3).T.flatten()          # row-major: one class per column
fig = plot_image_grid(train_images[picks],
                      [FASHION_MNIST_LABELS[int(c)] for c in train_labels[picks]])
display(fig)

# %% [markdown]
# Shirts, T-shirts, pullovers and coats look alike at this size; they are where a
# trained network makes most of its mistakes (notebook 4 shows its confusion matrix).
#
# ### Per-class counts (每个类别的样本数)
#
# The data set is balanced: each class has 6,000 training and 1,000 test images.

# %%
train_counts = torch.bincount(train_labels, minlength=10)
test_counts = torch.bincount(test_labels, minlength=10)
print(f"{'class':<12}{'train':>7}{'test':>7}")
for name, n_train, n_test in zip(FASHION_MNIST_LABELS, train_counts.tolist(),
                                 test_counts.tolist(), strict=True):
    print(f"{name:<12}{n_train:>7,}{n_test:>7,}")
print(f"{'total':<12}{int(train_counts.sum()):>7,}{int(test_counts.sum()):>7,}")

# %% [markdown]
# The `quick` profile (used by the tests) trains on a subset. `stratified_subset` draws
# it from a seed and keeps the classes in proportion, so a small subset is still
# balanced; for example 1,000 training images:

# %%
subset = stratified_subset(train_labels, 1000, seed=0)
print(torch.bincount(train_labels[subset], minlength=10).tolist())

# %% [markdown]
# ### Pixel mean and standard deviation (像素的均值和标准差)
#
# Networks train better on inputs centred near 0 with a spread near 1, so the loader
# subtracts the training set's mean pixel and divides by its standard deviation. They
# are computed exactly here from the histogram of the 47 million pixel values (integer
# counts, so the result is the same on every machine), and compared with the constants
# the package uses.

# %%
def pixel_mean_std(images: torch.Tensor) -> tuple[float, float]:
    """Mean and standard deviation of the pixels of uint8 images, scaled to [0, 1]."""
    counts = torch.bincount(images.flatten(), minlength=256).double()   # (256,)
    values = torch.arange(256, dtype=torch.float64) / 255
    n = counts.sum()
    mean = (counts * values).sum() / n
    var = (counts * values**2).sum() / n - mean**2
    return mean.item(), var.sqrt().item()


for split, images in (("train", train_images), ("test", test_images)):
    mean, std = pixel_mean_std(images)
    print(f"{split:<5}: mean {mean:.4f}, std {std:.4f}")
mean, std = pixel_mean_std(train_images)
assert round(mean, 4) == FASHION_MNIST_MEAN and round(std, 4) == FASHION_MNIST_STD
print(f"the package's FASHION_MNIST_MEAN, FASHION_MNIST_STD: "
      f"{FASHION_MNIST_MEAN:.4f}, {FASHION_MNIST_STD:.4f}")
background = (train_images == 0).sum().item() / train_images.numel()
print(f"pixels that are exactly 0 (background): {background:.1%}")

# %% [markdown]
# Half of all pixels are background, exactly 0, which pulls the mean down to 0.29.
#
# ## Two ways to feed the network (两种读取数据的方式)
#
# ### The course notebook's DataLoader (原课程的DataLoader)
#
# `load_data_fashion_mnist` in the course notebook wraps torchvision's data set in a
# `DataLoader` with 4 worker processes. For each batch of 256, a worker, *one image at
# a time*, turns a row of the uint8 array into a PIL image, resizes it with PIL if
# asked, converts it back into a float tensor with `ToTensor` (dividing by 255), and
# finally stacks the 256 tensors into a batch, which travels to the main process
# through shared memory. That is a few dozen Python calls per image, and on a machine
# with 2 cores, 4 workers compete with the training process for the CPU. (The
# package's `load_data_fashion_mnist` keeps this pipeline but uses one core fewer than
# the machine has, at most 4 workers; `bench.source_pipeline` rebuilds the source's
# exactly, with 4.)
#
# ### The in-memory loader (内存中的加载器)
#
# The data set is already one uint8 tensor. `InMemoryLoader` keeps it so (on the GPU
# when training there) and makes each batch with a handful of whole-batch tensor
# operations: one gather of the batch's rows, optionally random flips and shifts (one
# more gather), one batched `F.interpolate` to resize, and one multiply and one
# subtract to convert to float and normalize. The order of each epoch is a permutation
# drawn from a generator seeded with (seed, epoch), so an epoch can be replayed exactly,
# and a training run resumed from a checkpoint sees the batches it would have seen.

# %%
show_source(InMemoryLoader._make_batch)

# %% [markdown]
# ### The same batches (相同的小批量)
#
# Without normalization (`normalize=False`) and without shuffling, the two loaders
# yield the same first batch: the same images, the same labels, the same pixel values.
# At 96x96 both resize with a bilinear filter, the DataLoader with Pillow, the
# in-memory loader with PyTorch's resize of uint8 images, which follows Pillow's
# fixed-point arithmetic. The check below allows the two to differ by one gray level
# (1/255), so that it holds whichever CPU kernel PyTorch picks; the cell after it counts
# the pixels that actually differ on the machine that ran it.

# %%
for resize in (None, 96):
    source_iter = torch.utils.data.DataLoader(
        source_pipeline(256, resize, num_workers=0).dataset, 256, shuffle=False)
    X_src, y_src = next(iter(source_iter))
    fast_iter = InMemoryLoader(train_images, train_labels, 256, resize=resize,
                               normalize=False)
    X_fast, y_fast = next(iter(fast_iter))
    size = resize or 28
    pixels = (f"pixels equal: {torch.equal(X_src, X_fast)}" if resize is None else
              f"pixels within one gray level: "
              f"{(X_src - X_fast).abs().max().item() <= 1 / 255 + 1e-6}")
    print(f"{size}x{size}: shapes {tuple(X_src.shape)} and {tuple(X_fast.shape)}, "
          f"labels equal: {torch.equal(y_src, y_fast)}, {pixels}")

# %% tags=["nbval-ignore-output"]
differ = int(((X_src - X_fast).abs() > 0.5 / 255).sum())    # the 96x96 batch, from above
print(f"96x96 pixels that differ on this machine: {differ:,} of {X_src.numel():,}")
assert (X_src - X_fast).abs().max().item() <= 1 / 255 + 1e-6

# %% [markdown]
# ### Timed side by side (计时比较)
#
# Both loaders make shuffled passes over the training set with batches of 256, and
# nothing is done with the batches, so what is measured is what feeding a training
# loop costs. A pass includes starting the DataLoader's worker processes, which
# happens at every epoch. The `course` profile times whole epochs (235 batches), the
# `quick` one the first 20 batches; each figure is the median of three passes. The
# numbers depend on the machine and on what else runs on it, so the tests do not
# compare them; they check that the in-memory loader is faster.

# %%
def examples_per_second(loader, num_batches: int | None, repeats: int = 3) -> float:
    """Median examples/s of ``repeats`` passes over the first ``num_batches`` batches."""
    rates = []
    for _ in range(repeats):
        start, n = time.perf_counter(), 0
        for _, y in islice(loader, num_batches):
            n += len(y)
        rates.append(n / (time.perf_counter() - start))
    return statistics.median(rates)


num_batches = 20 if profile.quick else None     # None: whole epochs
speed = {}
with warnings.catch_warnings():
    # On fewer than 4 cores PyTorch warns that 4 workers are more than the machine has:
    # that is the source's setting, kept on purpose here.
    warnings.filterwarnings("ignore", message="This DataLoader will create")
    for resize in (None, 96):
        source_iter = source_pipeline(256, resize, num_workers=4)
        fast_iter = InMemoryLoader(train_images, train_labels, 256, shuffle=True,
                                   resize=resize)
        next(iter(fast_iter))                     # warm-up: the first call sets up kernels
        speed[resize] = (examples_per_second(source_iter, num_batches),
                         examples_per_second(fast_iter, num_batches))

# %% tags=["nbval-ignore-output"]
print(f"{'size':<7}{'DataLoader, 4 workers':>24}{'in-memory':>14}{'ratio':>8}")
for resize, (slow, fast) in speed.items():
    size = resize or 28
    print(f"{size}x{size:<4}{slow:>18,.0f} ex/s{fast:>14,.0f}{fast / slow:>7.1f}x")
ratio = {resize: fast / slow for resize, (slow, fast) in speed.items()}
assert ratio[None] > 10 and ratio[96] > 1      # tens of times at 28x28; faster at 96x96
assert ratio[None] > ratio[96]                 # the gap shrinks at 96x96

# %% [markdown]
# The in-memory loader is tens of times faster at 28x28: its batch costs a few tensor
# operations on 200 KB of pixels, while the DataLoader makes 60,000 PIL images and
# tensors per epoch in Python and ships every batch between processes. At 96x96 the
# gap shrinks (to a few times in the run shown): the in-memory loader must now resize
# every batch, which makes its batches tens of times as costly as at 28x28 (measured
# below), and it does so in one thread, where the DataLoader has four worker processes.
# `python -m d2l_resnet bench data` measures the same comparison over several whole
# epochs and prints the ratios.
#
# ## What resize=96 costs (放大到96x96的代价)
#
# The book's chapter trains at 96x96: it calls `load_data_fashion_mnist(batch_size,
# resize=96)`. The course notebook calls `load_data_fashion_mnist(batch_size=256)`
# without `resize`, so it trains at 28x28, as this course does. What would the book's
# size cost here? Each image has (96/28)^2 = 11.8 times as many pixels, and everything
# that follows grows with them.
#
# **Memory.** A batch of 256 float32 images grows from 0.8 MB to 9.4 MB. That is
# nothing next to the network's activations, but it is why the loader keeps the data
# set as uint8 at 28x28 and resizes batch by batch: resized to 96x96 in float32 once
# and for all, the training set would take 2.2 GB instead of 47 MB.

# %%
for resize in (None, 96):
    X, _ = next(iter(InMemoryLoader(train_images, train_labels, 256, resize=resize)))
    size = resize or 28
    whole = len(train_images) * size * size * X.element_size()
    print(f"{size}x{size}: one batch {tuple(X.shape)} {X.dtype}: {X.nbytes / 1e6:.1f} MB; "
          f"the training set as float32: {whole / 1e9:.2f} GB")
print(f"as the loader keeps it, uint8 at 28x28: {train_images.nbytes / 1e9:.3f} GB")

# %% [markdown]
# **Compute.** The network's convolutions cost in proportion to the number of pixels
# of their feature maps, so a forward pass of ResNet-18 costs about 10 times as much at
# 96x96 (the counts come from `summarize`, notebook 2). Not quite 11.8: at 28x28 the 7x7
# maps of stage b2 round up to 4x4 after the next stride of 2, where 96x96 gives exact
# halves (24, 12, 6, 3).

# %%
net = resnet18()
flops = {size: sum(row.flops for row in summarize(net, (1, 1, size, size)))
         for size in (28, 96)}
for size, f in flops.items():
    print(f"{size}x{size}: {f / 1e6:,.0f} MFLOPs per image (forward)")
print(f"ratio: {flops[96] / flops[28]:.1f}x")

# %% [markdown]
# **Time, measured.** The loader's time per batch, and a training step of ResNet-18
# (forward, backward, SGD update) on a batch of 32 images, at both sizes (the fastest
# of five calls each):

# %%
def seconds_per_call(fn, repeats: int = 5) -> float:
    """The fastest of ``repeats`` calls of ``fn`` (after one untimed call), in seconds.

    For short calls the minimum is the steadiest figure: whatever else runs on the
    machine can only add time to a call.
    """
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def training_step(X: torch.Tensor, y: torch.Tensor) -> None:
    optimizer.zero_grad()
    torch.nn.functional.cross_entropy(net(X), y).backward()
    optimizer.step()


def measure(resize: int | None) -> tuple[float, float]:
    """Seconds per batch of 256 from the loader, and per training step on 32 images."""
    batches = iter(InMemoryLoader(train_images, train_labels, 256, shuffle=True,
                                  resize=resize))
    X, y = next(iter(InMemoryLoader(train_images[:32], train_labels[:32], 32,
                                    resize=resize)))
    return (seconds_per_call(lambda: next(batches)),
            seconds_per_call(lambda: training_step(X, y)))


optimizer = torch.optim.SGD(net.parameters(), lr=0.05)
cost = {resize or 28: measure(resize) for resize in (None, 96)}

# %% tags=["nbval-ignore-output"]
for size, (load_s, step_s) in cost.items():
    print(f"{size}x{size}: loader {1e3 * load_s:6.2f} ms per batch of 256; training step "
          f"{1e3 * step_s:7.1f} ms per batch of 32, {1e3 * step_s * 8:7.0f} ms per 256")
print(f"96x96 / 28x28: loader {cost[96][0] / cost[28][0]:.0f}x, "
      f"training step {cost[96][1] / cost[28][1]:.0f}x")
assert cost[96][0] > 10 * cost[28][0]           # more pixels to make, and a resize
assert all(load_s < 0.1 * step_s * 8 for load_s, step_s in cost.values())  # under 10%

# %% [markdown]
# How much longer a training step takes at 96x96 depends on the machine and on what
# else runs on it: the work grows 9.7 times, but how well each size keeps the CPU's
# cores busy differs too. With the in-memory loader, preparing the batch stays a small
# part of the step at either size (checked: under 10%). On a laptop CPU, 28x28 is the
# sensible size (the `course` profile trains there); 96x96, the book's size, is for a
# GPU (`d2l` profile), where the loader keeps the data set on the GPU and makes every
# batch there.
#
# ## Using it (使用)
#
# Notebook 4 trains with `load_data_fashion_mnist_fast`, the in-memory counterpart of
# the course notebook's `load_data_fashion_mnist`. It returns the training loader
# (shuffled, optionally augmented with random flips and shifts) and the test loader:

# %%
train_iter, test_iter = load_data_fashion_mnist_fast(256, augment=True, seed=0)
print(train_iter)
print(test_iter)
X, y = next(iter(train_iter))
print(tuple(X.shape), X.dtype, tuple(y.shape), y.dtype)

# %% [markdown]
# Augmentation flips an image left-right and shifts it by up to two pixels, a new draw
# for every image in every epoch; the label stays. Ten copies of the same sneaker (its
# toe shows the flips), as one batch of the augmenting loader:

# %%
sneaker = train_images[train_labels == 7][0]                    # (28, 28)
copies = InMemoryLoader(sneaker.expand(10, 28, 28).contiguous(), torch.full((10,), 7),
                        10, augment=True, normalize=False, seed=1)
X, y = next(iter(copies))
assert y.tolist() == [7] * 10
display(plot_image_grid(X[:, 0], [f"{FASHION_MNIST_LABELS[7]} {i}" for i in range(10)]))

# %% [markdown]
# ## Summary (小结)
#
# - Fashion-MNIST is found offline (the project's `data/`, the Debian package) before
#   online, and every file is checked against the published checksums.
# - Ten balanced classes, 6,000 training and 1,000 test images each; pixel mean 0.2860
#   and standard deviation 0.3530.
# - The in-memory loader yields the same batches as the course notebook's DataLoader
#   (at 96x96 to within one gray level), in one thread, tens of times faster at 28x28
#   and a few times faster at 96x96 in the run shown.
# - The course notebook trains at 28x28; the book's chapter resizes to 96x96, which
#   multiplies the pixels by 11.8 and the network's FLOPs by 9.7: a GPU size, not a
#   laptop one.

# %% tags=["nbval-ignore-output"]
from d2l_resnet import run_info

print(run_info())
