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
# # 1. The residual block (残差网络 · 残差块)
#
# A residual network is built from one repeated unit, the **residual block**. This
# notebook takes it apart: what it computes, why it sometimes needs a 1x1 convolution on
# its shortcut, what happens when the shapes of its two paths do not match, and one
# property that makes it special (with its last BatchNorm scaled to zero it passes its
# input straight through).
#
# Notebook 2 stacks these blocks into ResNet-18; notebook 5 shows why the shortcut lets
# very deep networks train.

# %%
import textwrap

import torch
import torch.nn.functional as F

from d2l_resnet import Residual, count_parameters, show_source

_ = torch.manual_seed(0)  # the same random numbers on every run

# %% [markdown]
# ## The residual block (残差块)
#
# A plain stack of layers has to learn the mapping $f(\mathbf{x})$ it is asked for. A
# residual block instead learns the *difference* $g(\mathbf{x}) = f(\mathbf{x}) -
# \mathbf{x}$ and adds the input back on a shortcut:
#
# $$\mathbf{Y} = \mathrm{ReLU}\big(g(\mathbf{X}) + \mathrm{shortcut}(\mathbf{X})\big),
# \qquad g(\mathbf{X}) = \mathrm{BN}(\mathrm{conv}_2(\mathrm{ReLU}(\mathrm{BN}(
# \mathrm{conv}_1(\mathbf{X}))))).$$
#
# If the best thing a block can do is (close to) nothing, it only has to push $g$
# towards zero, which is easy for weights that start small; a plain stack would have to
# learn the identity through its nonlinearities.
#
# Both convolutions are 3x3 with padding 1, so they keep height and width, unless the
# first one has `strides=2`. The shortcut is the identity, or with `use_1x1conv=True` a
# 1x1 convolution. Here is the block as the package defines it (the same class every
# later notebook uses):

# %%
show_source(Residual)

# %% [markdown]
# Compared with the course notebook's version, the package's `forward` reads the same
# top to bottom, with two differences: it adds without modifying `Y` in place
# (`Y + X` rather than `Y += X`), and it checks that the two terms of the sum have the
# same shape, so a wrong configuration fails with a message that says how to fix it
# (see below) instead of a broadcasting error from deep inside PyTorch.

# %% [markdown]
# ## Input and output of the same shape (输入和输出形状一致)
#
# With 3 input and 3 output channels and stride 1, the residual branch keeps the shape of
# its input, so the identity shortcut can be added as it is. A batch of 4 images with 3
# channels of 6x6 pixels:

# %%
blk = Residual(3, 3)
X = torch.rand(4, 3, 6, 6)  # (N, C, H, W)
Y = blk(X)
assert Y.shape == X.shape
Y.shape

# %% [markdown]
# ## Changing the shape: the 1x1 convolution on the shortcut
#
# > 通常来说，增加输出通道数的同时，我们会减半输出的高和宽。
#
# Usually, when a network increases the number of channels, it halves height and width
# at the same time. The residual branch does both with `num_channels=6` and `strides=2`
# on its first convolution; then $\mathbf{X}$, still `(4, 3, 6, 6)`, can no longer be
# added to the branch's `(4, 6, 3, 3)`. The 1x1 convolution on the shortcut
# (`use_1x1conv=True`) projects the input to the output's shape: it maps 3 channels to 6
# and uses the same stride.
#
# > 如果要使用1x1的卷积核的话, 能够把输入通道数变成输出通道数。

# %%
blk = Residual(3, 6, use_1x1conv=True, strides=2)
Y = blk(X)
assert Y.shape == (4, 6, 3, 3)
Y.shape

# %%
blk

# %% [markdown]
# Why do the two paths always agree? A convolution with kernel $k$, padding $p$ and
# stride $s$ turns $H$ pixels into $\lfloor (H + 2p - k)/s \rfloor + 1$. For the 3x3
# convolution ($k=3, p=1$) and the 1x1 shortcut ($k=1, p=0$) both are $\lfloor (H - 1)/s
# \rfloor + 1$: the same for every input size, odd ones included. A check over many sizes:

# %%
for H in range(1, 33):
    out = Residual(3, 6, use_1x1conv=True, strides=2)(torch.rand(2, 3, H, H + 1))
    assert out.shape == (2, 6, (H - 1) // 2 + 1, H // 2 + 1), (H, out.shape)
print("branch and shortcut agree for H = 1..32 and W = H + 1")

# %% [markdown]
# The projection is cheap. Of the block's parameters, the 1x1 convolution holds
# $3 \cdot 6 + 6 = 24$ (weights and biases); the two 3x3 convolutions hold
# $(3 \cdot 6 \cdot 9 + 6) + (6 \cdot 6 \cdot 9 + 6) = 498$:

# %%
print(f"whole block:         {count_parameters(blk):>4}")
print(f"1x1 shortcut (conv3): {count_parameters(blk.conv3):>4}")
assert count_parameters(blk.conv3) == 3 * 6 + 6
assert count_parameters(blk.conv1) + count_parameters(blk.conv2) == 498

# %% [markdown]
# ## When the shapes do not match
#
# The 1x1 convolution is needed whenever the branch changes the shape: a different
# number of channels *or* a stride other than 1. Forget it, and the identity shortcut
# cannot be added. The package says so and names the fix:

# %%
for bad in (Residual(3, 6), Residual(3, 3, strides=2)):
    try:
        bad(X)
    except ValueError as err:
        print(f"Residual({bad.input_channels}, {bad.num_channels}, strides={bad.strides}):")
        print(textwrap.indent(textwrap.fill(f"ValueError: {err}", 84), "    "))
    else:
        raise AssertionError("expected a ValueError")

# %% [markdown]
# When the shapes do match, the 1x1 convolution is allowed but not needed:
# `Residual(3, 3, use_1x1conv=True)` works too, at the cost of a learned projection
# where the identity would do. ResNet uses the projection only where the shape changes,
# in the first block of a stage (notebook 2).

# %%
assert Residual(3, 3, use_1x1conv=True)(X).shape == X.shape

# %% [markdown]
# ## A block that starts as the identity
#
# Set the scale (`weight`, $\gamma$) of the block's last BatchNorm to zero. Its shift
# $\beta$ starts at zero, so the residual branch outputs exactly zero whatever the input,
# and the block computes $\mathrm{ReLU}(0 + \mathbf{X}) = \mathrm{ReLU}(\mathbf{X})$.
# This is the `zero_init_residual` option of torchvision's ResNet: every block starts as
# (nearly) the identity, so a deep network starts out behaving like a shallow one, and
# training grows each branch from zero. Checked with `torch.allclose`, on inputs with
# negative values so that the ReLU matters, in training and in evaluation mode:

# %%
blk = Residual(3, 3)
with torch.no_grad():
    blk.bn2.weight.zero_()
X = torch.randn(4, 3, 6, 6)  # (N, C, H, W), about half of the values negative

for mode in ("train", "eval"):
    blk.train(mode == "train")
    assert torch.allclose(blk(X), F.relu(X)), mode
    print(f"{mode:>5} mode: block(X) == ReLU(X): True")

# %% [markdown]
# The gradient sees the same thing: through the shortcut, $\partial \mathbf{Y} / \partial
# \mathbf{X}$ is 1 wherever the output is positive and 0 elsewhere, the derivative of the
# ReLU alone. Nothing in the block shrinks the signal on its way back; notebook 5 builds
# on this.

# %%
blk.train()
X.requires_grad_(True)
blk(X).sum().backward()
assert torch.equal(X.grad, (X > 0).float())
print("dY/dX == 1 where X > 0, else 0: True")

# %% [markdown]
# ## Summary
#
# - A residual block adds its input to what its two convolutions compute:
#   $\mathbf{Y} = \mathrm{ReLU}(g(\mathbf{X}) + \mathbf{X})$.
# - With the same number of channels and stride 1, the shortcut is the identity. When
#   the channels change or the stride is 2, a 1x1 convolution with the same stride
#   projects the input to the output's shape; without it the block refuses to run.
# - With its last BatchNorm scaled to zero, the block is the identity followed by ReLU,
#   and the gradient passes through it unchanged.
#
# Next: [02_resnet18](02_resnet18.ipynb) assembles ResNet-18 from these blocks.

# %% tags=["nbval-ignore-output"]
from d2l_resnet import run_info

print(run_info())
