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
# notebook starts with why adding a block's input back to its output helps (nested
# function classes), then takes the block apart: what it computes, why it sometimes needs
# a 1x1 convolution on its shortcut, what happens when the shapes of its two paths do not
# match, and what passes through it when its residual branch is zero, forwards and
# backwards.
#
# Notebook 2 stacks these blocks into ResNet-18; notebook 5 shows why the shortcut lets
# very deep networks train.

# %%
import textwrap

import torch
import torch.nn.functional as F
from IPython.display import SVG

from d2l_resnet import Residual, count_parameters, resnet18, show_source
from d2l_resnet.extras.diagrams import function_classes_svg, residual_block_svg
from d2l_resnet.model import init_weights

_ = torch.manual_seed(0)  # the same random numbers on every run

# %% [markdown]
# The notation is He et al.'s, as in notebook 5 and in the notation table of the course's
# glossary: $\mathcal{H}(\mathbf{x})$ is the mapping a block should compute, and
# $\mathcal{F}(\mathbf{x}) = \mathcal{H}(\mathbf{x}) - \mathbf{x}$ its residual branch.
#
# ## Function classes (函数类)
#
# An architecture, with its training recipe, can reach a certain class $\mathcal{C}$ of
# functions: those that some setting of its weights computes. Training looks for the
# member of $\mathcal{C}$ that fits the data best, an approximation of the function
# $f^*$ we are after. To get closer to $f^*$ we make the architecture bigger, say
# deeper, and reach a class $\mathcal{C}'$. But closer is guaranteed only if
# $\mathcal{C} \subseteq \mathcal{C}'$. If the classes are not nested (left), a larger
# class can lie further from $f^*$; if they are (right), the best member of the larger
# class is at least as good as that of the smaller one. (The book, section 7.6.1, writes
# $\mathcal{F}$ for a class; here that letter is the residual branch. And $f^*$ is the
# function the whole network should compute, not the mapping $\mathcal{H}$ of one block.)

# %%
SVG(function_classes_svg())

# %% [markdown]
# A deeper network's class contains the shallower one's if the added layers can compute
# the identity, $\mathbf{x} \mapsto \mathbf{x}$: then the deeper network can still compute
# everything the shallower one did. A stack of convolutions, BatchNorm and ReLUs has to
# learn the identity through its nonlinearities; a residual block has it built in, as
# the last section of this notebook checks.
#
# ## The residual block (残差块)
#
# Let $\mathcal{H}(\mathbf{x})$ be the mapping a few stacked layers should compute. A
# plain stack has to learn $\mathcal{H}$ itself. A residual block instead learns the
# *difference*, the residual $\mathcal{F}(\mathbf{x}) = \mathcal{H}(\mathbf{x}) -
# \mathbf{x}$, and adds the input back on a shortcut, so that $\mathcal{F}(\mathbf{x}) +
# \mathbf{x}$ is what approximates $\mathcal{H}(\mathbf{x})$ (He et al. 2015). The block
# of the course, like the original ResNet, puts a ReLU after the sum:
#
# $$\mathbf{Y} = \mathrm{ReLU}\big(\mathcal{F}(\mathbf{X}) +
# \mathrm{shortcut}(\mathbf{X})\big), \qquad \mathcal{F}(\mathbf{X}) =
# \mathrm{BN}(\mathrm{conv}_2(\mathrm{ReLU}(\mathrm{BN}(\mathrm{conv}_1(\mathbf{X}))))).$$
#
# If the best thing a block can do is (close to) nothing, it only has to push
# $\mathcal{F}$ towards zero; He et al. (2015) hypothesize that this is easier for an
# optimizer than fitting the identity with a stack of nonlinear layers.
#
# Both convolutions are 3x3 with padding 1, so they keep height and width, unless the
# first one has `strides=2`. The shortcut is the identity, or with `use_1x1conv=True` a
# 1x1 convolution. Drawn left to right, with the residual branch $\mathcal{F}$ in the
# dashed frame and the shortcut below it:

# %%
SVG(residual_block_svg("identity"))

# %% [markdown]
# Here is the block as the package defines it (the same class every later notebook
# uses):

# %%
show_source(Residual)

# %% [markdown]
# Compared with the course notebook's version, the package's `forward` computes the same
# thing in the same order, in five lines where the course notebook has six: it adds
# without modifying `Y` in place (`Y + X` rather than `Y += X`). What the course
# notebook does not have is in the constructor: a block whose identity shortcut could
# not be added to its branch refuses to be built, with a message that says how to fix it
# (see below), instead of failing later, at the first batch, with a broadcasting error
# from deep inside PyTorch.

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
# ## Changing the shape: the 1x1 convolution on the shortcut (改变形状：1x1卷积)
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
SVG(residual_block_svg("1x1"))

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
# ## When the shapes do not match (形状不匹配时)
#
# The 1x1 convolution is needed whenever the branch changes the shape: a different
# number of channels *or* a stride other than 1. Forget it, and the identity shortcut
# cannot be added. The package refuses to build such a block, says why and names the
# fix:

# %%
for input_channels, num_channels, strides in ((3, 6, 1), (3, 3, 2)):
    try:
        Residual(input_channels, num_channels, strides=strides)
    except ValueError as err:
        print(f"Residual({input_channels}, {num_channels}, strides={strides}):")
        print(textwrap.indent(textwrap.fill(f"ValueError: {err}", 84), "    "))
        assert "use_1x1conv=True" in str(err)
        assert (f"{input_channels} -> {num_channels}" in str(err) if strides == 1
                else f"stride {strides}" in str(err))
    else:
        raise AssertionError("expected a ValueError")

# %% [markdown]
# When the shapes do match, the 1x1 convolution is allowed but not needed:
# `Residual(3, 3, use_1x1conv=True)` works too, at the cost of a learned projection
# where the identity would do. ResNet uses the projection only where the shape changes,
# in the first block of each stage after the first (b3, b4 and b5; notebook 2).

# %%
assert Residual(3, 3, use_1x1conv=True)(X).shape == X.shape

# %% [markdown]
# ## A block that starts as the identity (从恒等映射开始的残差块)
#
# Set the scale (`weight`, $\gamma$) of the block's last BatchNorm to zero. Its shift
# $\beta$ starts at zero, so the residual branch outputs exactly zero whatever the
# input, $\mathcal{F}(\mathbf{X}) = 0$, and the block computes $\mathrm{ReLU}(0 +
# \mathbf{X}) = \mathrm{ReLU}(\mathbf{X})$. Inside ResNet every block receives a
# non-negative input (the stem's max-pool of a ReLU's output, or the previous block's
# ReLU output), and there $\mathrm{ReLU}(\mathbf{X}) = \mathbf{X}$: the block is exactly
# the identity, so adding it leaves the network's function as it was (the nested classes
# above). This is the `zero_init_residual` option of torchvision's ResNet (and of this
# package's `init_weights(net, "kaiming")`): training grows each branch from zero.
# Checked on inputs with negative values, in training and in evaluation mode, and on the
# same inputs after a ReLU:

# %%
blk = Residual(3, 3)
with torch.no_grad():
    blk.bn2.weight.zero_()
X = torch.randn(4, 3, 6, 6)  # (N, C, H, W), about half of the values negative

for mode in ("train", "eval"):
    blk.train(mode == "train")
    assert torch.equal(blk(X), F.relu(X)), mode
    assert torch.equal(blk(F.relu(X)), F.relu(X)), mode
    print(f"{mode:>5} mode: block(X) == ReLU(X): True; block(X) == X for X >= 0: True")

# %% [markdown]
# Only a block with an identity shortcut becomes the identity. With a zero branch, a
# block with the 1x1 convolution computes $\mathrm{ReLU}(\mathrm{conv}_3(\mathbf{X}))$:
# a learned projection of its input, of another shape. So with `zero_init_residual` a
# ResNet starts as the network that is left when its identity blocks are taken out: the
# stem, $\mathrm{ReLU}(\mathrm{conv}_3(\mathbf{X}))$ for each block that changes the
# shape, and the head (in ResNet-18, 5 of its 8 blocks drop out and 3 projections stay):

# %%
proj = Residual(3, 6, use_1x1conv=True, strides=2)
with torch.no_grad():
    proj.bn2.weight.zero_()
X_pos = torch.rand(4, 3, 6, 6)  # (N, C, H, W), non-negative like the output of a ReLU
assert torch.equal(proj(X_pos), F.relu(proj.conv3(X_pos)))
print(f"1x1 block with a zero branch: block(X) == ReLU(conv3(X)): True; "
      f"X {tuple(X_pos.shape)} -> {tuple(proj(X_pos).shape)}")

net = init_weights(resnet18(), "kaiming")   # zero_init_residual: every bn2 scale at 0
blocks = [m for m in net.modules() if isinstance(m, Residual)]
projections = [b for b in blocks if b.conv3 is not None]
images = torch.randn(2, 1, 28, 28)          # (N, C, H, W)
x = net[0](images)                          # the stem, b1
for b in projections:                       # the identity blocks left out
    x = F.relu(b.conv3(x))
shallow = net[7](net[6](net[5](x)))         # global average pooling, flatten, linear
assert torch.allclose(net(images), shallow) and len(projections) == 3
print(f"ResNet-18 at initialization: {len(blocks) - len(projections)} of its {len(blocks)} "
      f"blocks are the identity; it computes the stem, ReLU(conv3(X)) of the "
      f"{len(projections)} blocks with a 1x1 convolution, and the head: True")

# %% [markdown]
# What passes backwards? Write $\mathbf{S} = \mathcal{F}(\mathbf{X}) + \mathbf{X}$ for
# the sum, so $\mathbf{Y} = \mathrm{ReLU}(\mathbf{S})$, and let $\mathbf{G} = \partial E /
# \partial \mathbf{Y}$ be the gradient arriving from above. The final ReLU passes $\mathbf{G}$
# where $\mathbf{Y} > 0$ and stops it where $\mathbf{Y} = 0$: with the mask $\mathbf{M}$
# (1 where $\mathbf{Y} > 0$, else 0), the gradient that reaches the sum is
# $\mathbf{M} \odot \mathbf{G}$. From the sum, the identity shortcut hands it to
# $\mathbf{X}$ unchanged, and the residual branch adds its own term, the same gradient
# carried back through $\mathcal{F}$:
#
# $$\frac{\partial E}{\partial \mathbf{X}} = \underbrace{\mathbf{M} \odot
# \mathbf{G}}_{\text{shortcut}} + \underbrace{\Bigl(\frac{\partial \mathcal{F}}{\partial
# \mathbf{X}}\Bigr)^{\!\top} (\mathbf{M} \odot \mathbf{G})}_{\text{branch}}.$$
#
# For the identity block with a zero branch (`blk`, above) the branch is constant, so
# its term vanishes. With $E$ the
# sum of $\mathbf{Y}$, $\mathbf{G}$ is all ones, and the gradient with respect to
# $\mathbf{X}$ is exactly the mask: 1 where $\mathbf{Y} = \mathrm{ReLU}(\mathbf{X}) > 0$,
# and 0 where the ReLU outputs 0.

# %%
blk.train()
X.requires_grad_(True)
Y = blk(X)
Y.sum().backward()          # E = sum of Y: the gradient arriving at Y is all ones
M = (Y > 0).float()         # where the final ReLU lets the gradient through
assert torch.equal(X.grad, M)
print(f"{X.numel()} entries: gradient 1 (passed unchanged) at {int(M.sum())}, where Y > 0;"
      f" 0 (stopped by the final ReLU) at {int((M == 0).sum())}, where Y = 0")

# %% [markdown]
# So nothing in this block shrinks the gradient where $\mathbf{Y} > 0$, and nothing
# passes where $\mathbf{Y} = 0$ (here where $\mathbf{X} \le 0$, about half of the
# entries). Notebook 5 builds on both halves of this: the shortcut's unchanged
# gradient, and the mask that a ReLU after the sum puts on it.
#
# With a branch that is not zero (PyTorch's default initialization), the gradient is the
# masked one plus the branch's term. A check of the formula, with the branch's term
# computed by autograd through $\mathcal{F}$ alone:

# %%
blk = Residual(3, 3)                       # default initialization: F is not zero
X = torch.randn(4, 3, 6, 6, requires_grad=True)
Y = blk(X)
Y.sum().backward()
M = (Y > 0).float()
branch = blk.bn2(blk.conv2(F.relu(blk.bn1(blk.conv1(X)))))      # F(X), recomputed
(branch_term,) = torch.autograd.grad(branch, X, grad_outputs=M)  # (dF/dX)^T (M * G)
assert torch.allclose(X.grad, M + branch_term, atol=1e-5)
assert branch_term.abs().max() > 0.01
print("dE/dX == M (shortcut) + the branch's term: True; the branch's term is not zero")

# %% [markdown]
# ## Summary (小结)
#
# - Making a network bigger helps reliably only if its class of functions contains the
#   smaller network's (nested function classes). A residual block can be the identity,
#   so adding one keeps what the network could already do within reach.
# - A residual block adds its input to what its two convolutions compute, the residual
#   branch $\mathcal{F}(\mathbf{X})$, which learns $\mathcal{H}(\mathbf{X}) - \mathbf{X}$:
#   $\mathbf{Y} = \mathrm{ReLU}(\mathcal{F}(\mathbf{X}) + \mathbf{X})$.
# - With the same number of channels and stride 1, the shortcut is the identity. When
#   the channels change or the stride is 2, a 1x1 convolution with the same stride
#   projects the input to the output's shape; without it the block refuses to be built.
# - With its last BatchNorm scaled to zero, a block with the identity shortcut computes
#   $\mathrm{ReLU}(\mathbf{X})$, which is $\mathbf{X}$ for the non-negative inputs it
#   receives inside ResNet; a block with the 1x1 convolution computes
#   $\mathrm{ReLU}(\mathrm{conv}_3(\mathbf{X}))$. Backwards, the gradient that reaches
#   the sum passes to $\mathbf{X}$ unchanged through the shortcut; the final ReLU stops
#   it where $\mathbf{Y} = 0$, and a branch that is not zero adds its own term.
#
# Next: [02_resnet18](02_resnet18.ipynb) assembles ResNet-18 from these blocks.

# %% tags=["nbval-ignore-output"]
from d2l_resnet import run_info

print(run_info())
