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
# ResNet-18 is trained here on Fashion-MNIST (Xiao, Rasul and Vollgraf 2017): 70,000
# grayscale images of clothing, 28x28 pixels, in ten classes; 60,000 for training and
# 10,000 for testing. This notebook looks at the data the way the network will see it:
#
# - the ten classes and what they look like;
# - the three sets the course uses: training, validation (held out of the training
#   set, to choose settings on) and test (scored once, at the end);
# - what a batch holds: normalized pixels and labels;
# - what augmentation does to an image (random mirror images).
#
# The appendix at the end says where the files come from (offline too) and how they are
# verified, compares the course notebook's `DataLoader` with the package's in-memory
# loader, and measures what the book's resize to 96x96 would cost.

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
from d2l_resnet.data import (
    FASHION_MNIST,
    FASHION_MNIST_LABELS,
    FASHION_MNIST_MEAN,
    FASHION_MNIST_STD,
    InMemoryLoader,
    load_data_fashion_mnist,
    load_data_fashion_mnist_fast,
    load_fashion_mnist_tensors,
    prepare_fashion_mnist,
    stratified_subset,
)
from d2l_resnet.plot import plot_image_grid

profile = get_profile()
_ = torch.manual_seed(0)

# %% [markdown]
# ## The ten classes (十个类别)
#
# The package reads each set into one tensor: the images as uint8 (one byte per pixel,
# 0 = background, 255 = brightest), the labels as integers 0 to 9. (Where the files are
# found and how they are checked: appendix.)

# %%
train_images, train_labels = load_fashion_mnist_tensors(train=True)
test_images, test_labels = load_fashion_mnist_tensors(train=False)
for split, images, labels in (("train", train_images, train_labels),
                              ("test", test_images, test_labels)):
    print(f"{split:<5}: images {tuple(images.shape)} {images.dtype}, "
          f"labels {tuple(labels.shape)} {labels.dtype}")
for i, name in enumerate(FASHION_MNIST_LABELS):
    print(i, name)

# %% [markdown]
# The first three training images of each class, one class per column. The gray scale
# is drawn inverted, as in a catalog: a pixel of 255 (the garment) is black here, the
# background (0) white.

# %%
picks = torch.cat([torch.nonzero(train_labels == c).flatten()[:3] for c in range(10)])
picks = picks.reshape(10, 3).T.flatten()          # row-major: one class per column
display(plot_image_grid(train_images[picks],
                        [FASHION_MNIST_LABELS[int(c)] for c in train_labels[picks]],
                        scale=1.3))

# %% [markdown]
# Shirts, T-shirts, pullovers and coats look alike at this size; they are where a
# trained network makes most of its mistakes (notebook 4 shows its confusion matrix).
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
# ## Training, validation and test sets (训练集、验证集和测试集)
#
# A recipe has settings to choose: the learning rate, the number of epochs, the
# augmentation. Choosing them by the test accuracy would fit the choice to the test set,
# and its accuracy would no longer say how the network does on images it has never
# seen. So the course holds out 5,000 of the 60,000 training images as a *validation*
# set, 500 of each class, the same images in every run: settings are compared on it
# (notebook 4), the other 55,000 train, and the test set is scored once, after the
# last epoch of the final run, which then trains on all 60,000.
#
# `load_data_fashion_mnist_fast` gives the three by name:

# %%
splits = load_data_fashion_mnist_fast(256, validation=5000)
for name in ("train", "val", "test"):
    loader = getattr(splits, name)
    counts = torch.bincount(loader.labels.cpu(), minlength=10).tolist()
    print(f"{name:<5}: {loader.num_examples:>6,} images, {len(loader):>3} batches of "
          f"{loader.batch_size}; per class {min(counts):,} to {max(counts):,}")
assert (splits.train.num_examples, splits.val.num_examples) == (55_000, 5_000)

# %% [markdown]
# The `quick` profile, which the tests run, trains on a subset. `stratified_subset`
# draws one from a seed and keeps the classes in proportion, so a small subset is still
# balanced; for example 1,000 training images:

# %%
subset = stratified_subset(train_labels, 1000, seed=0)
print(torch.bincount(train_labels[subset], minlength=10).tolist())

# %% [markdown]
# ## What a batch holds (小批量)
#
# The loader turns the pixels into floats in [0, 1] and then *normalizes* them: it
# subtracts the training set's mean pixel and divides by its standard deviation, so that
# the network's inputs are centered near 0 with a spread near 1, which suits its first
# layer's initial weights. The two constants are computed exactly here, from the
# histogram of the 47 million pixel values (integer counts, so the result is the same on
# every machine):

# %%
def pixel_mean_std(images: torch.Tensor) -> tuple[float, float]:
    """Mean and standard deviation of the pixels of uint8 images, scaled to [0, 1]."""
    counts = torch.bincount(images.flatten(), minlength=256).double()   # (256,)
    values = torch.arange(256, dtype=torch.float64) / 255
    n = counts.sum()
    mean = (counts * values).sum() / n
    var = (counts * values**2).sum() / n - mean**2
    return mean.item(), var.sqrt().item()


mean, std = pixel_mean_std(train_images)
assert round(mean, 4) == FASHION_MNIST_MEAN and round(std, 4) == FASHION_MNIST_STD
background = (train_images == 0).sum().item() / train_images.numel()
print(f"training pixels: mean {mean:.4f}, std {std:.4f} (the package's "
      f"FASHION_MNIST_MEAN, FASHION_MNIST_STD); exactly 0 (background): {background:.1%}")

X, y = next(iter(splits.train))
print(f"a training batch: X {tuple(X.shape)} {X.dtype}, y {tuple(y.shape)} {y.dtype}")
print(f"its pixels: mean {X.mean():.2f}, std {X.std():.2f}, from {X.min():.2f} to "
      f"{X.max():.2f}")

# %% [markdown]
# Half of all pixels are background, which pulls the mean down to 0.29; after
# normalization the background reads $-0.81$ and the brightest pixel $2.02$. The batch's
# shape is (batch, channels, height, width): one gray channel.
#
# ## Augmentation (数据增广)
#
# A garment mirrored left to right is still the same garment. The course's training
# loader flips each image with probability 1/2, a new draw for every image in every
# epoch, and leaves the label alone: over the epochs the network sees both sides of
# every example, and learns that the side does not matter. (The loader can also shift
# images by a few pixels; notebook 4 found no gain from it on the validation set.)
# Notebook 4 also uses the mirror image at test time. *Dive into Deep Learning* covers
# augmentation in its section "图像增广" (Image Augmentation).
#
# One image of each class, the original in the top row and its mirror image below:

# %%
firsts = torch.stack([train_images[train_labels == c][0] for c in range(10)])  # (10, 28, 28)
display(plot_image_grid(torch.cat([firsts, firsts.flip(-1)]),
                        [f"{name}" for name in FASHION_MNIST_LABELS]
                        + ["mirrored"] * 10, scale=1.3))

# %% [markdown]
# What the training loader yields: eight copies of the same sneaker, as one augmented
# batch (normalization off, so the pixels read as they are). Each copy has its own
# draw, so some point their toe to the left and some to the right; the labels are
# unchanged.

# %%
sneaker = train_images[train_labels == 7][0]                    # (28, 28)
copies = InMemoryLoader(sneaker.expand(8, 28, 28).contiguous(), torch.full((8,), 7),
                        8, augment=True, max_shift=0, normalize=False, seed=1)
X, y = next(iter(copies))
flipped = [bool((X[i, 0] == sneaker.flip(-1).float() / 255).all()) for i in range(8)]
assert y.tolist() == [7] * 8 and 0 < sum(flipped) < 8
display(plot_image_grid(torch.cat([sneaker[None].float() / 255, X[:, 0]]),
                        ["original"] + ["mirrored" if f else "as is" for f in flipped],
                        scale=1.3))

# %% [markdown]
# ## Using it (使用)
#
# Notebook 4 trains with `load_data_fashion_mnist_fast`, the in-memory counterpart of
# the course notebook's `load_data_fashion_mnist`: the training loader shuffled (and
# augmented, with `augment=True`), the validation and test loaders in order:

# %%
splits = load_data_fashion_mnist_fast(256, augment=True, max_shift=0, validation=5000)
print(splits.train)
print(splits.val)
print(splits.test)

# %% [markdown]
# ## Summary (小结)
#
# - Fashion-MNIST: ten balanced classes of 28x28 grayscale clothing, 6,000 training and
#   1,000 test images each; shirts, T-shirts, pullovers and coats look alike.
# - Settings are chosen on a validation set of 5,000 training images; the test set is
#   scored once, after the final run.
# - The loader normalizes the pixels (mean 0.2860, standard deviation 0.3530) and, for
#   training, flips each image left to right with probability 1/2.

# %% [markdown]
# ## Appendix: where the data comes from, and how fast it loads (附录：数据来源与读取速度)
#
# ### Where the files come from (数据从哪里来)
#
# The course notebook calls `torchvision.datasets.FashionMNIST(root="../data",
# download=True)`: torchvision downloads four gzipped files from the data set's
# mirrors. That needs the internet, and it fails when the mirror is blocked or the
# machine is offline (a classroom network, a train). The package looks in several
# places, in this order, and the first that holds the data wins:
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
# `python -m d2l_resnet data` (or `make data`) does all this from a terminal. Where the
# data was found on this machine (the output names folders, so the tests do not compare
# it):

# %% tags=["nbval-ignore-output"]
source = prepare_fashion_mnist()
print(source.report())

# %% [markdown]
# ### How it is verified (如何校验)
#
# Every decompressed file is checked before anything is built on it: its IDX header
# (the MNIST format: a magic number, then the size of each dimension), its length
# against that header (a truncated download is caught here), its shape, the range of
# the labels, and the SHA-256 of its bytes against the published data set. A file that
# fails is named in the error message together with the remedy. The checks, repeated:

# %%
for name, (shape, sha256) in FASHION_MNIST.files.items():
    digest = hashlib.sha256((source.raw_dir / name).read_bytes()).hexdigest()
    assert digest == sha256, name
    print(f"{name:<25} shape {shape!s:<16} SHA-256 {sha256[:16]}... matches")

# %% [markdown]
# ### The source's DataLoader and the in-memory loader (两种读取数据的方式)
#
# `load_data_fashion_mnist` in the course notebook wraps torchvision's data set in a
# `DataLoader` with 4 worker processes. For each batch of 256, a worker, *one image at
# a time*, turns a row of the uint8 array into a PIL image, resizes it with PIL if
# asked, converts it back into a float tensor with `ToTensor` (dividing by 255), and
# finally stacks the 256 tensors into a batch, which travels to the main process
# through shared memory: a few dozen Python calls per image. (The package's
# `load_data_fashion_mnist` keeps this pipeline, with one worker fewer than the machine
# has cores, at most 4.)
#
# The data set is already one uint8 tensor. `InMemoryLoader` keeps it so (on the GPU
# when training there) and makes each batch with a handful of whole-batch tensor
# operations: one gather of the batch's rows, optionally random flips and shifts (one
# more gather), one batched `F.interpolate` to resize, one multiply and one subtract to
# convert to float and normalize, and optionally random erasing (one masked fill,
# notebook 4 tries it). The order of each epoch is a permutation drawn from a generator
# seeded with (seed, epoch), so an epoch can be replayed exactly, and a training run
# resumed from a checkpoint sees the batches it would have seen.

# %%
show_source(InMemoryLoader._make_batch)

# %% [markdown]
# Without normalization and without shuffling, the two loaders yield the same first
# batch: the same images, the same labels, the same pixel values. At 96x96 both resize
# with a bilinear filter, the DataLoader with Pillow, the in-memory loader with
# PyTorch's resize of uint8 images, which follows Pillow's fixed-point arithmetic. The
# check allows the two to differ by one gray level (1/255), so that it holds whichever
# CPU kernel PyTorch picks.

# %%
for resize in (None, 96):
    source_iter = torch.utils.data.DataLoader(
        load_data_fashion_mnist(256, resize, num_workers=0)[0].dataset, 256, shuffle=False)
    X_src, y_src = next(iter(source_iter))
    X_fast, y_fast = next(iter(InMemoryLoader(train_images, train_labels, 256,
                                              resize=resize, normalize=False)))
    size = resize or 28
    gap = (X_src - X_fast).abs().max().item()
    pixels = (f"pixels equal: {gap == 0}" if resize is None else
              f"pixels within one gray level: {gap <= 1 / 255 + 1e-6}")
    print(f"{size}x{size}: shapes {tuple(X_src.shape)} and {tuple(X_fast.shape)}, "
          f"labels equal: {torch.equal(y_src, y_fast)}, {pixels}")

# %% [markdown]
# ### What resize=96 costs (放大到96x96的代价)
#
# The book's chapter trains at 96x96: it calls `load_data_fashion_mnist(batch_size,
# resize=96)`. The course notebook calls `load_data_fashion_mnist(batch_size=256)`
# without `resize`, so it trains at 28x28, as this course does. Each image would have
# (96/28)^2 = 11.8 times as many pixels. A forward pass of ResNet-18 costs in proportion
# to the pixels of its feature maps, about 10 times as much at 96x96 (counted with
# `summarize`, notebook 2; not quite 11.8, because at 28x28 the 7x7 maps of b2 round up
# to 4x4 after the next stride of 2, where 96x96 gives exact halves):

# %%
net = resnet18()
flops = {size: sum(row.flops for row in summarize(net, (1, 1, size, size)))
         for size in (28, 96)}
for size, f in flops.items():
    print(f"{size}x{size}: {f / 1e6:,.0f} MFLOPs per image (forward)")
print(f"ratio: {flops[96] / flops[28]:.1f}x")

# %% [markdown]
# Measured on this machine: a training step of ResNet-18 (forward, backward, SGD update;
# float32, as the source) on a batch of 64 images, and the in-memory loader's time for a
# batch of 256, at both sizes; the median of five timed calls after two untimed ones, in
# one thread (two threads of one process wait for each other whenever another program
# takes a core, which can make a small step many times slower than its arithmetic).

# %%
def median_seconds(fn, repeats: int = 5, warmup: int = 2) -> float:
    """The median time of ``repeats`` calls of ``fn``, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def step_and_batch_seconds(resize: int | None) -> tuple[float, float]:
    """Seconds of a training step on 64 images, and of making a batch of 256."""
    torch.manual_seed(0)
    model = resnet18()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    X, y = next(iter(InMemoryLoader(train_images[:64], train_labels[:64], 64, resize=resize)))

    def step() -> None:
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(X), y).backward()
        optimizer.step()

    batches = iter(InMemoryLoader(train_images, train_labels, 256, shuffle=True,
                                  resize=resize))
    return median_seconds(step), median_seconds(lambda: next(batches))


threads = torch.get_num_threads()
torch.set_num_threads(1)
cost = {resize or 28: step_and_batch_seconds(resize) for resize in (None, 96)}
torch.set_num_threads(threads)

# %% tags=["nbval-ignore-output"]
for size, (step_s, batch_s) in cost.items():
    print(f"{size}x{size}: training step {1e3 * step_s:7.1f} ms per 64 images; "
          f"loader {1e3 * batch_s:5.2f} ms per batch of 256")
print(f"96x96 / 28x28: training step {cost[96][0] / cost[28][0]:.1f}x, "
      f"loader {cost[96][1] / cost[28][1]:.0f}x")
assert cost[96][0] > 3 * cost[28][0]       # 9.7 times the arithmetic: far slower
assert all(batch_s < 0.1 * 4 * step_s for step_s, batch_s in cost.values())  # 256 images

# %% [markdown]
# The step at 96x96 takes several times as long as at 28x28; how close it comes to the
# 9.7 times of the arithmetic depends on the machine and on what else runs on it, since
# how well each size keeps the CPU's cores busy differs too. Making the batches stays
# under a tenth of the training time at either size. On a laptop CPU, 28x28 is the
# sensible size (the `course` profile trains there); 96x96, the book's size, is for a GPU
# (`d2l` profile), where the loader keeps the data set on the GPU and makes every batch
# there.
#
# ### Timed side by side (计时比较)
#
# Last, both loaders make shuffled passes over the training set with batches of 256,
# with nothing done to the batches, so what is measured is what feeding a training loop
# costs. The DataLoader runs the source's 4 worker processes; a pass includes starting
# them, which happens at every epoch. The `course` profile times whole epochs (235
# batches), the `quick` one the first 20 batches; each figure is the median of three
# passes. The numbers depend on the machine and on what else runs on it, so the tests
# do not compare them; they check that the in-memory loader is faster.

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
        source_iter = load_data_fashion_mnist(256, resize, num_workers=4)[0]
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
# tensors per epoch in Python and ships every batch between processes. At 96x96 the gap
# shrinks: the in-memory loader must now resize every batch, which makes its batches
# about 11 times as costly as at 28x28 (measured above), and it does so in one thread,
# where the DataLoader has four worker processes. `python -m d2l_resnet bench data`
# measures the same comparison over several whole epochs and prints the ratios.

# %% tags=["nbval-ignore-output"]
from d2l_resnet import run_info

print(run_info())
