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
# # 2. ResNet-18, layer by layer (ResNet模型)
#
# Notebook 1 built one residual block. ResNet-18 is a stem followed by four stages of
# two such blocks each, a global average pool and one linear layer. This notebook
# assembles it exactly as the course notebook does, follows the shape of the data
# through it at three input sizes, and counts where its parameters and its compute are.
# Exercises at the end build the bottleneck and pre-activation blocks of later ResNets.

# %%
# %matplotlib inline
import torch
import torch.nn.functional as F
from IPython.display import SVG
from torch import nn

from d2l_resnet import (
    count_parameters,
    format_summary,
    resnet18,
    resnet_block,
    show_source,
    summarize,
)
from d2l_resnet.extras.diagrams import resnet18_stages_svg
from d2l_resnet.plot import plot_cost_shares

_ = torch.manual_seed(0)  # the same random numbers on every run

# %% [markdown]
# ## The stem: b1 (第一个模块)
#
# The first module, `b1`, is GoogLeNet's first two layers with BatchNorm added: a 7x7
# convolution with 64 output channels and stride 2, BatchNorm, ReLU, and a 3x3 max-pool
# with stride 2. The two strides divide height and width by 4 before the first residual
# block. The input
# has one channel: Fashion-MNIST images are grayscale.

# %%
b1 = nn.Sequential(nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3),
                   nn.BatchNorm2d(64), nn.ReLU(),
                   nn.MaxPool2d(kernel_size=3, stride=2, padding=1))

# %% [markdown]
# ## The stages: b2 to b5 (残差块组成的模块)
#
# Each of the four stages is a list of residual blocks, made by the package's
# `resnet_block`:

# %%
show_source(resnet_block)

# %% [markdown]
# > 之后在ResNet加入所有残差块，这里每个模块使用两个残差块。
#
# Then all residual blocks are added, two per stage. The pattern:
#
# | stage | channels | first block | second block |
# |---|---|---|---|
# | b2 | 64 -> 64 | stride 1, identity shortcut | identity |
# | b3 | 64 -> 128 | stride 2, 1x1 shortcut | identity |
# | b4 | 128 -> 256 | stride 2, 1x1 shortcut | identity |
# | b5 | 256 -> 512 | stride 2, 1x1 shortcut | identity |
#
# Every stage after the first **halves height and width and doubles the channels** in
# its first block, the one place where the shortcut needs the 1x1 convolution of
# notebook 1. `b2` is the exception (`first_block=True`): the max-pool of `b1` has just
# halved the resolution, and `b1` already produces 64 channels, so `b2` keeps both.

# %%
b2 = nn.Sequential(*resnet_block(64, 64, 2, first_block=True))
b3 = nn.Sequential(*resnet_block(64, 128, 2))
b4 = nn.Sequential(*resnet_block(128, 256, 2))
b5 = nn.Sequential(*resnet_block(256, 512, 2))

# %% [markdown]
# The head averages each of the 512 final feature maps to one number
# (`AdaptiveAvgPool2d((1, 1))`, whatever the resolution), flattens, and maps the 512
# features to the 10 classes. Counting the layers with weights: 1 convolution in `b1`,
# 4 stages x 2 blocks x 2 convolutions = 16, and the linear layer make 18 (the three 1x1
# shortcut convolutions are not counted by convention).

# %%
net = nn.Sequential(b1, b2, b3, b4, b5,
                    nn.AdaptiveAvgPool2d((1, 1)),
                    nn.Flatten(), nn.Linear(512, 10))

weighted = [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
shortcuts = [m for m in weighted if isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1)]
assert len(weighted) - len(shortcuts) == 18 and len(shortcuts) == 3
print(f"{len(weighted) - len(shortcuts)} layers with weights, plus {len(shortcuts)} "
      f"1x1 shortcut convolutions")

# %% [markdown]
# The package's `resnet18()`, which notebook 4 trains, is exactly this network. A
# check: its state (every weight, bias and BatchNorm statistic, by name and shape) loads
# into ours without a missing or unexpected key, and the two then compute the same
# outputs.

# %%
reference = resnet18()
net.load_state_dict(reference.state_dict())  # strict: names and shapes must match
net.eval()
reference.eval()
X = torch.randn(2, 1, 96, 96)  # (N, C, H, W)
with torch.no_grad():
    assert torch.allclose(net(X), reference(X))
print("net and resnet18(): same layers, same parameter shapes, same outputs")

# %% [markdown]
# ## Output shapes, layer by layer (每个模块的输出形状)
#
# > 可以观察一下ResNet中不同模块的输入形状是如何变化的。
#
# How the shape changes from module to module, for one 224x224 image, with the course
# notebook's loop:

# %%
net.train()
X = torch.rand(size=(1, 1, 224, 224))
for layer in net:
    X = layer(X)
    print(layer.__class__.__name__, "output shape:\t", X.shape)
assert X.shape == (1, 10)

# %% [markdown]
# The course trains on Fashion-MNIST at its native 28x28, and the book resizes the
# images to 96x96. The same network at the three sizes, side by side (the package's
# `summarize` runs the loop above and records each layer's output shape, parameters and
# FLOPs; shapes are `(C, H, W)` for one image):

# %%
names = ["b1", "b2", "b3", "b4", "b5", "avgpool", "flatten", "linear"]
sizes = (224, 96, 28)
summaries = {s: summarize(net, (1, 1, s, s)) for s in sizes}

print(f"{'layer':<9}" + "".join(f"{f'{s}x{s} input':>18}" for s in sizes))
for i, name in enumerate(names):
    shapes = [str(summaries[s][i].output_shape[1:]) for s in sizes]
    print(f"{name:<9}" + "".join(f"{shape:>18}" for shape in shapes))

# %% [markdown]
# Every stride-2 step (with padding as here) turns $H$ pixels into $\lceil H/2 \rceil$,
# and there are five of them: the stem's convolution and max-pool, and the first blocks
# of `b3`, `b4` and `b5`. So the final feature maps are $\lceil H/32 \rceil$ pixels a
# side: 7 at 224, 3 at 96, and a single pixel at 28. A check of that rule for all three
# sizes:

# %%
def halve(h: int, times: int) -> int:
    """Height after `times` stride-2 steps: ceil(h / 2) each time."""
    for _ in range(times):
        h = -(-h // 2)
    return h


for s in sizes:
    spatial = [row.output_shape[2] for row in summaries[s][:5]]  # b1..b5
    assert spatial == [halve(s, 2), halve(s, 2), halve(s, 3), halve(s, 4), halve(s, 5)]
    print(f"{s:>3}: b1..b5 are {spatial} pixels a side")

# %% [markdown]
# The network at the training size, module by module. The shapes in the picture are not
# typed in: `resnet18_stages_svg` computes them with `summarize`, as above; the squares
# show the height and width of the feature maps to scale.

# %%
SVG(resnet18_stages_svg(28))

# %% [markdown]
# At 28x28, `b4` ends at 2x2 and `b5` works on 1x1 feature maps. A 3x3 convolution with
# padding 1 on a single pixel sees only zeros around it, so only the center of each
# kernel ever touches the data: the second block of `b5` acts as a stack of 1x1
# convolutions, and 8/9 of its 3x3 weights are never used. At 96x96, the size the book
# trains at, `b5` works on 3x3 maps and uses its kernels in full (exercise 4 counts
# the weights that receive a gradient). A check on the first convolution of `b5`'s
# second block:

# %%
conv = net[4][1].conv1  # b5, second block: 512 -> 512 channels, 3x3, padding 1
x = torch.randn(2, 512, 1, 1)  # (N, C, 1, 1): what b5's second block gets at 28x28
with torch.no_grad():
    center_only = F.conv2d(x, conv.weight[:, :, 1:2, 1:2], conv.bias)
    assert torch.allclose(conv(x), center_only, atol=1e-5)
print("on 1x1 inputs, the 3x3 convolution equals a 1x1 convolution with its center taps")

# %% [markdown]
# ## Parameters and FLOPs per stage (每个模块的参数和计算量)
#
# `format_summary` prints the layer table with parameter counts and the forward FLOPs
# for one 224x224 image. A multiply-add counts as 2 FLOPs and a bias add as 1; only
# convolutions and the linear layer are counted (BatchNorm, ReLU, pooling and the
# residual additions cost one or two operations per value, under 1% of the total).

# %%
print(format_summary(summaries[224]))

# %% [markdown]
# Two checks of the counting, by hand. The stem's convolution has $7 \cdot 7 \cdot 1
# \cdot 64$ weights and 64 biases, its BatchNorm a scale and a shift per channel; at
# 224x224 it produces $64 \cdot 112 \cdot 112$ values, each costing 49 multiply-adds and
# a bias add. And the parameters of the rows add up to the whole network's.

# %%
b1_row = summaries[224][0]
assert b1_row.params == (7 * 7 * 1 * 64 + 64) + 2 * 64 == 3_328
assert b1_row.flops == 64 * 112 * 112 * (2 * 49 + 1)
assert sum(row.params for row in summaries[224]) == count_parameters(net) == 11_178_378
print(f"b1: {b1_row.params:,} parameters, {b1_row.flops:,} FLOPs; "
      f"whole network: {count_parameters(net):,} parameters")

# %% [markdown]
# Per stage, with the head (average pool, flatten, linear) in one row, at the three
# input sizes. Parameters do not depend on the input size; FLOPs grow with the number
# of pixels.

# %%
stages = ["b1", "b2", "b3", "b4", "b5", "head"]


def per_stage(rows: list, field: str) -> list[int]:
    """Sum a field of the summary rows into b1..b5 and the head (the last 3 layers)."""
    values = [getattr(row, field) for row in rows]
    return [*values[:5], sum(values[5:])]


params = per_stage(summaries[224], "params")
flops = {s: per_stage(summaries[s], "flops") for s in sizes}

header = "".join(f"{f'MFLOPs {s}':>13}" for s in sizes)
print(f"{'stage':<7}{'parameters':>12}{'share':>8}{header}")
for i, stage in enumerate(stages):
    row = "".join(f"{flops[s][i] / 1e6:>13.1f}" for s in sizes)
    print(f"{stage:<7}{params[i]:>12,}{params[i] / sum(params):>8.1%}{row}")
total = "".join(f"{sum(flops[s]) / 1e6:>13.1f}" for s in sizes)
print(f"{'total':<7}{sum(params):>12,}{1:>8.1%}{total}")

# %% [markdown]
# What the table says, checked below:
#
# - **Parameters live at the end.** A 3x3 convolution from $C$ to $C$ channels has
#   $9C^2$ weights, so doubling the channels quadruples a stage's parameters (`b4` has
#   4 times those of `b3`, `b5` 4 times those of `b4`): `b5` alone holds three quarters
#   of the network's.
# - **At 224x224 the compute is spread evenly.** Halving height and width divides the
#   positions by 4 while doubling the channels multiplies the work per position by 4, so
#   `b3`, `b4` and `b5` cost the same (to 0.1%). `b2`, with no stride-2 block, costs a
#   little more.
# - **FLOPs scale with the pixels**: at 96x96 every stage costs exactly $(96/224)^2 =
#   (3/7)^2$ of its cost at 224x224, since every feature map is $3/7$ as tall and wide.
# - **At 28x28, the size the course trains at**, the odd sizes round up (7 -> 4 -> 2 ->
#   1): `b3`, `b4` and `b5` still count the same 16.8 MFLOPs each, and `b2`, on 7x7 maps
#   where `b3` works on 4x4, now costs *less* (14.5).

# %%
assert params[4] / sum(params) > 0.75
assert all(3.99 < params[i + 1] / params[i] < 4 for i in (2, 3))  # b4 / b3, b5 / b4
assert max(flops[224][2:5]) / min(flops[224][2:5]) < 1.001
assert flops[224][1] > flops[224][2] and flops[28][1] < flops[28][2]
assert all(flops[96][i] * 49 == flops[224][i] * 9 for i in range(5))
print("b5 holds > 75% of the parameters; b3, b4, b5 cost the same FLOPs to 0.1% at 224; "
      "b2 costs more than b3 at 224 and less at 28; FLOPs at 96 = (3/7)^2 x FLOPs at 224")

# %% [markdown]
# Those counts take every multiply-add of a convolution as work, including the taps
# that fall on zero padding. On large maps that is a thin border; on the tiny maps of
# the training size it is most of the count. A 3x3 tap is *useful* where it meets a
# real pixel: on `b5`'s 1x1 maps only the center tap does (1 of 9, as checked above),
# on `b4`'s 2x2 maps 4 of the 9 taps of each output pixel. Counted for every
# convolution (an all-ones input convolved with an all-ones kernel gives, at each output
# pixel, the number of taps that meet the image):

# %%
def useful_flops(net: nn.Sequential, size: int) -> list[float]:
    """Per top-level layer: the multiply-adds whose tap meets a real pixel, times 2."""
    counts = []

    def hook(module, inputs, output):
        _, c, h, w = inputs[0].shape
        ones = torch.ones(1, 1, h, w)
        taps = F.conv2d(ones, torch.ones(1, 1, *module.kernel_size), stride=module.stride,
                        padding=module.padding)                  # real taps per output
        counts.append(2.0 * float(taps.sum()) * c * module.out_channels)

    handles = [m.register_forward_hook(hook) for m in net.modules()
               if isinstance(m, nn.Conv2d)]
    X, per_layer = torch.zeros(1, 1, size, size), []
    with torch.no_grad():
        for layer in net:
            counts.clear()
            X = layer(X)
            per_layer.append(sum(counts))
    for handle in handles:
        handle.remove()
    return per_layer


for size in (224, 28):
    useful = useful_flops(net.eval(), size)[:5]
    counted = flops[size][:5]
    print(f"{size}x{size}: useful / counted FLOPs, b1..b5: "
          + "  ".join(f"{u / c:.2f}" for u, c in zip(useful, counted, strict=True)))
useful28 = useful_flops(net, 28)[:5]
assert abs(useful28[4] / flops[28][4] - 0.17) < 0.02      # b5: mostly center taps
assert useful28[2] > useful28[3] > useful28[4]             # b3 > b4 > b5 at 28x28

# %% [markdown]
# At 224x224 most of the count is useful work: 97% in `b1`, 98% in `b2`, down to 83%
# in `b5`, whose 7x7 maps have a wide border. At 28x28, `b3`, `b4` and `b5` count the
# same, but `b3` uses 70% of its count, `b4` about half and `b5` a sixth (its first
# block still reads 2x2 inputs, hence more than a ninth): the even spread breaks down on
# the 2x2 and 1x1 maps, and what `b5` learns at this size, it learns mostly with its
# center taps.
# Notebook 4's appendix turns this into speed: on such maps a convolution is a small
# matrix product.

# %% [markdown]
# The same in a picture: for each stage, its share of all parameters and its share of
# all FLOPs, at the source's 224x224 and at the training size 28x28.

# %%
fig = plot_cost_shares(
    stages,
    {"parameters": params, "FLOPs at 224x224": flops[224], "FLOPs at 28x28": flops[28]},
    title="ResNet-18: where the parameters live and where the compute goes",
)
fig

# %% [markdown]
# ## Summary (小结)
#
# - ResNet-18 = stem `b1` (7x7 convolution, BatchNorm, ReLU, max-pool), four stages of
#   two residual blocks, global average pool, linear layer: 18 layers with weights.
# - Each stage after `b2` halves height and width and doubles the channels in its first
#   block, which therefore needs the 1x1 shortcut.
# - At 224x224 the final feature maps are 7x7; at 96x96, 3x3; at Fashion-MNIST's 28x28,
#   a single pixel.
# - 11.2 million parameters, three quarters of them in `b5`; 3.5 GFLOPs per 224x224
#   image, 0.64 at 96x96 and 0.066 at 28x28. At 224x224 they are spread almost evenly
#   over `b2` to `b5` (the stem costs far less); at 28x28 `b4` and `b5` count as much
#   as `b3`, but most of their multiply-adds fall on zero padding.
#
# Next: notebook 3 loads Fashion-MNIST.

# %% [markdown]
# ## Exercises (练习)
#
# Try each one before opening its solution. The solutions are plain code: copy a
# solution into a new cell to run it.
#
# **1. A bottleneck block.** For ResNet-50 and deeper, He et al. (2015) replace the two
# 3x3 convolutions with a *bottleneck*: a 1x1 convolution that reduces the channels by
# 4, a 3x3 convolution on the reduced channels, and a 1x1 convolution that expands them
# back, each followed by BatchNorm (and ReLU, except the last, which is added to the
# shortcut first). Write `Bottleneck(input_channels, num_channels, use_1x1conv=False,
# strides=1)` whose output has `num_channels` channels, and check the shapes of
# `Bottleneck(256, 256)` and `Bottleneck(256, 512, use_1x1conv=True, strides=2)` on a
# `(2, 256, 14, 14)` input. Which of the three convolutions should carry the stride?
# Then redo the comparison of the paper's Fig. 5: a basic block on 64 channels,
# `Residual(64, 64)`, against a bottleneck block on 256 channels, `Bottleneck(256, 256)`
# (64 channels inside), both at 56x56, the resolution of the paper's first stage. Count
# their parameters and FLOPs with `summarize`.
#
# <details>
# <summary>Solution 1</summary>
#
# ```python
# import torch
# import torch.nn.functional as F
# from torch import nn
#
# from d2l_resnet import Residual, resnet18, summarize
#
#
# class Bottleneck(nn.Module):
#     """1x1 (reduce by 4), 3x3, 1x1 (expand), plus the shortcut of Residual."""
#
#     def __init__(self, input_channels, num_channels, use_1x1conv=False, strides=1):
#         super().__init__()
#         mid = num_channels // 4
#         self.conv1 = nn.Conv2d(input_channels, mid, kernel_size=1)
#         # The stride sits on the 3x3 convolution, as in torchvision's ResNet (the
#         # variant known as ResNet v1.5). The paper puts it on the first 1x1 convolution,
#         # which then never looks at three of every four input positions.
#         self.conv2 = nn.Conv2d(mid, mid, kernel_size=3, padding=1, stride=strides)
#         self.conv3 = nn.Conv2d(mid, num_channels, kernel_size=1)
#         self.bn1 = nn.BatchNorm2d(mid)
#         self.bn2 = nn.BatchNorm2d(mid)
#         self.bn3 = nn.BatchNorm2d(num_channels)
#         self.shortcut = (nn.Conv2d(input_channels, num_channels, kernel_size=1,
#                                    stride=strides) if use_1x1conv else nn.Identity())
#
#     def forward(self, X):
#         Y = F.relu(self.bn1(self.conv1(X)))
#         Y = F.relu(self.bn2(self.conv2(Y)))
#         Y = self.bn3(self.conv3(Y))
#         return F.relu(Y + self.shortcut(X))
#
#
# X = torch.randn(2, 256, 14, 14)
# assert Bottleneck(256, 256)(X).shape == (2, 256, 14, 14)
# assert Bottleneck(256, 512, use_1x1conv=True, strides=2)(X).shape == (2, 512, 7, 7)
#
# # Fig. 5 of the paper: a basic block on 64 channels, a bottleneck block on 256.
# (basic,) = summarize(nn.Sequential(Residual(64, 64)), (1, 64, 56, 56))
# (bottleneck,) = summarize(nn.Sequential(Bottleneck(256, 256)), (1, 256, 56, 56))
# for name, row in (("basic, 64 channels", basic), ("bottleneck, 256 channels", bottleneck)):
#     print(f"{name:<25} {row.params:>7,} parameters {row.flops / 1e6:>7.1f} MFLOPs at 56x56")
# print(f"bottleneck / basic: parameters {bottleneck.params / basic.params:.2f}, "
#       f"FLOPs {bottleneck.flops / basic.flops:.2f}")
# print(f"weights: bottleneck's 3x3 on 64 channels {9 * 64**2:,}, its two 1x1 "
#       f"{2 * 256 * 64:,}; the basic block's two 3x3 {2 * 9 * 64**2:,}")
# flops18 = sum(r.flops for r in summarize(resnet18(), (1, 1, 224, 224)))
# print(f"ResNet-18 at 224x224: {flops18 / 1e9:.1f} GFLOPs counted here, "
#       f"{flops18 / 2e9:.1f} with a multiply-add as one")
# assert 0.9 < bottleneck.params / basic.params < 1
# assert 0.9 < bottleneck.flops / basic.flops < 1
# ```
#
# The bottleneck block takes and gives four times as many channels, yet costs a few
# percent less than the basic block (the ratios printed): its 3x3 convolution works on
# 64 channels ($9 \cdot 64^2 = 36{,}864$ weights) and its two 1x1 convolutions add
# $2 \cdot 256 \cdot 64 = 32{,}768$,
# against $2 \cdot 9 \cdot 64^2 = 73{,}728$ in the two 3x3 convolutions of the basic
# block. That is how ResNet-50 has three layers per block and stages four times as
# wide as ResNet-34's at about the same cost (Table 1 of the paper: 3.8 against 3.6
# billion FLOPs). The paper counts a multiply-add as one FLOP: half the 3.5 billion
# counted here for ResNet-18 is the 1.7 printed, against the 1.8 of its table: the same
# count with ImageNet's three color channels (Fashion-MNIST has one) gives 1.8.
#
# </details>
#
# **2. A pre-activation block.** In the follow-up paper (He et al. 2016, *Identity
# Mappings in Deep Residual Networks*) each convolution comes *after* its BatchNorm and
# ReLU, and nothing follows the addition: $\mathbf{Y} = \mathbf{X} + \mathrm{conv}_2(
# \mathrm{ReLU}(\mathrm{BN}(\mathrm{conv}_1(\mathrm{ReLU}(\mathrm{BN}(\mathbf{X}))))))$
# (notebook 5 draws the two designs side by side). Write `PreActResidual(input_channels,
# num_channels, use_1x1conv=False, strides=1)`. Show the difference from notebook 1's
# block: with the last convolution's weight and bias set to zero, the block is exactly
# the identity, negative values included (the original block gave ReLU(X)). Then build a
# pre-activation ResNet-18 from these blocks. What must come between the last block and
# the average pool?
#
# <details>
# <summary>Solution 2</summary>
#
# ```python
# import torch
# import torch.nn.functional as F
# from torch import nn
#
#
# class PreActResidual(nn.Module):
#     """BN, ReLU, conv, BN, ReLU, conv; the sum is the output (no ReLU after it)."""
#
#     def __init__(self, input_channels, num_channels, use_1x1conv=False, strides=1):
#         super().__init__()
#         self.bn1 = nn.BatchNorm2d(input_channels)
#         self.conv1 = nn.Conv2d(input_channels, num_channels, kernel_size=3, padding=1,
#                                stride=strides)
#         self.bn2 = nn.BatchNorm2d(num_channels)
#         self.conv2 = nn.Conv2d(num_channels, num_channels, kernel_size=3, padding=1)
#         self.shortcut = (nn.Conv2d(input_channels, num_channels, kernel_size=1,
#                                    stride=strides) if use_1x1conv else nn.Identity())
#
#     def forward(self, X):
#         Y = self.conv1(F.relu(self.bn1(X)))
#         Y = self.conv2(F.relu(self.bn2(Y)))
#         return Y + self.shortcut(X)
#
#
# X = torch.randn(4, 3, 6, 6)
# assert PreActResidual(3, 6, use_1x1conv=True, strides=2)(X).shape == (4, 6, 3, 3)
#
# blk = PreActResidual(3, 3)
# with torch.no_grad():
#     blk.conv2.weight.zero_()
#     blk.conv2.bias.zero_()
# assert torch.equal(blk(X), X)  # the identity, negative values and all
# print("with conv2 at zero, PreActResidual(3, 3) is the identity")
#
#
# def preact_stage(input_channels, num_channels, num_residuals, first_block=False):
#     """Like resnet_block: the first block of each stage but b2 halves H and W."""
#     down = not first_block
#     return [PreActResidual(input_channels if i == 0 else num_channels, num_channels,
#                            use_1x1conv=down and i == 0, strides=2 if down and i == 0 else 1)
#             for i in range(num_residuals)]
#
#
# preact_resnet18 = nn.Sequential(
#     # b1 as in ResNet-18: its BN and ReLU are the activation that He et al. (2016) put
#     # right after the first convolution, before the first block.
#     nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3), nn.BatchNorm2d(64), nn.ReLU(),
#     nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
#     *preact_stage(64, 64, 2, first_block=True), *preact_stage(64, 128, 2),
#     *preact_stage(128, 256, 2), *preact_stage(256, 512, 2),
#     # The last block's sum is neither normalized nor activated: one more BN and ReLU.
#     nn.BatchNorm2d(512), nn.ReLU(),
#     nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(), nn.Linear(512, 10))
# assert preact_resnet18(torch.randn(2, 1, 96, 96)).shape == (2, 10)
# assert isinstance(preact_resnet18[-5], nn.BatchNorm2d)
# assert isinstance(preact_resnet18[-4], nn.ReLU)
# print("pre-activation ResNet-18: (2, 1, 96, 96) -> (2, 10)")
# ```
#
# Stacked, such blocks give $\mathbf{x}_L = \mathbf{x}_l + \sum_{i=l}^{L-1}
# F(\mathbf{x}_i)$: a clean path from any block to any later one, with no ReLU on it.
# Notebook 5 uses this form to explain why very deep residual networks train. The price
# is that the output of the last block is a raw sum: every branch ends in a
# convolution, and nothing normalizes or activates the sum. So the network needs one
# more BatchNorm and ReLU after its last block, before the average pool, as He et al.
# (2016) add after their last block's addition; without them the classifier would see
# the unnormalized sum of all the branches.
#
# </details>
#
# **3. ResNet-34.** Table 1 of He et al. (2015) gives ResNet-34 the same stages as
# ResNet-18 with 3, 4, 6 and 3 blocks instead of 2, 2, 2 and 2. Build it with
# `resnet_block`, check that its layer-by-layer output shapes at 224x224 are those of
# ResNet-18, and compare parameters and FLOPs.
#
# <details>
# <summary>Solution 3</summary>
#
# ```python
# from torch import nn
#
# from d2l_resnet import count_parameters, resnet18, resnet_block, summarize
#
# resnet34 = nn.Sequential(
#     nn.Sequential(nn.Conv2d(1, 64, kernel_size=7, stride=2, padding=3),
#                   nn.BatchNorm2d(64), nn.ReLU(),
#                   nn.MaxPool2d(kernel_size=3, stride=2, padding=1)),
#     nn.Sequential(*resnet_block(64, 64, 3, first_block=True)),
#     nn.Sequential(*resnet_block(64, 128, 4)),
#     nn.Sequential(*resnet_block(128, 256, 6)),
#     nn.Sequential(*resnet_block(256, 512, 3)),
#     nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(), nn.Linear(512, 10))
#
# rows18, rows34 = summarize(resnet18()), summarize(resnet34)
# assert [r.output_shape for r in rows18] == [r.output_shape for r in rows34]
# print(f"ResNet-18: {count_parameters(resnet18()):,} parameters, "
#       f"{sum(r.flops for r in rows18) / 1e9:.2f} GFLOPs")
# print(f"ResNet-34: {count_parameters(resnet34):,} parameters, "
#       f"{sum(r.flops for r in rows34) / 1e9:.2f} GFLOPs")
# assert count_parameters(resnet34) == 21_290_250
# assert 2 < sum(r.flops for r in rows34) / sum(r.flops for r in rows18) < 2.1
# ```
#
# The same shapes everywhere, about twice the parameters and twice the FLOPs (7.2
# against 3.5 GFLOPs): the extra blocks keep the shape, so they add depth and cost but
# change nothing in the table of shapes.
#
# </details>
#
# **4. Why 96?** The course trains at 28x28 and the book resizes to 96x96. From the
# tables above, what does `b5` see at 28x28, and what does resizing to 96 cost?
#
# <details>
# <summary>Solution 4</summary>
#
# At 28x28, `b4` ends at 2x2 and `b5` at 1x1: the last stage, which holds three quarters
# of the parameters, sees a single position, and its 3x3 kernels reduce to their centers
# (checked above), so most of those parameters never receive a gradient. At 96x96, `b5`
# works on 3x3 maps and its kernels are used in full. Counted, after one backward pass:
#
# ```python
# import torch
# import torch.nn.functional as F
#
# from d2l_resnet import resnet18, summarize
#
# torch.manual_seed(0)
# for size in (28, 96):
#     net = resnet18()
#     X, y = torch.randn(8, 1, size, size), torch.randint(0, 10, (8,))
#     F.cross_entropy(net(X), y).backward()
#     kernels = [p for p in net[4].parameters() if p.dim() == 4]    # b5's convolutions
#     used = sum(int((p.grad != 0).sum()) for p in kernels)
#     total = sum(p.numel() for p in kernels)
#     print(f"{size}x{size}: {used:,} of b5's {total:,} convolution weights get a "
#           f"gradient ({used / total:.0%}); the network costs "
#           f"{sum(r.flops for r in summarize(net, (1, 1, size, size))) / 1e6:.0f} MFLOPs "
#           f"per image")
#     assert used / total < 0.2 if size == 28 else used / total > 0.99
# ```
#
# The price of 96x96 is compute: 638 instead of 66 MFLOPs per image, almost ten times
# as much for every training step. That is why the course profile trains at 28 and the
# `d2l` profile, meant for a GPU, at 96.
#
# </details>
#
# **5. A stem for small images.** For CIFAR-10's 32x32 images, He et al. (2015, Sec.
# 4.2) start with a single 3x3 convolution, stride 1, and no max-pool, where ImageNet's
# ResNet (and this course) starts with a 7x7 convolution of stride 2 and a max-pool.
# Replace `b1` of `resnet18()` by a 3x3 convolution with 64 channels, BatchNorm and
# ReLU (stride 1, padding 1, no pool), and compare parameters and FLOPs per stage with
# the course's network at 28x28. Then look up in `results/stem.csv` (written by
# `python -m d2l_resnet experiment stem`) what each network scored on the validation
# set, trained alike. Is the small-image stem worth its cost here?
#
# <details>
# <summary>Solution 5</summary>
#
# ```python
# from torch import nn
#
# from d2l_resnet import resnet18, summarize
# from d2l_resnet.results import read_results
#
# small = resnet18()
# small[0] = nn.Sequential(nn.Conv2d(1, 64, kernel_size=3, padding=1), nn.BatchNorm2d(64),
#                          nn.ReLU())
# stages = ["b1", "b2", "b3", "b4", "b5"]
# course_rows = summarize(resnet18(), (1, 1, 28, 28))[:5]
# small_rows = summarize(small, (1, 1, 28, 28))[:5]
# print(f"{'stage':<6}{'7x7 stem: shape':>18}{'MFLOPs':>8}{'3x3 stem: shape':>18}{'MFLOPs':>8}")
# for name, a, b in zip(stages, course_rows, small_rows, strict=True):
#     print(f"{name:<6}{a.output_shape[1:]!s:>18}{a.flops / 1e6:>8.1f}"
#           f"{b.output_shape[1:]!s:>18}{b.flops / 1e6:>8.1f}")
# course_flops = sum(r.flops for r in course_rows)
# small_flops = sum(r.flops for r in small_rows)
# course_params = sum(r.params for r in course_rows)
# small_params = sum(r.params for r in small_rows)
# print(f"parameters: {course_params:,} and {small_params:,} ({small_params - course_params:+,});"
#       f" FLOPs: {course_flops / 1e6:.0f} and {small_flops / 1e6:.0f} MFLOPs, "
#       f"{small_flops / course_flops:.0f}x")
# assert 13 < small_flops / course_flops < 15
#
# rows, meta = read_results("stem")
# final = {}
# for row in rows:
#     if int(row["epoch"]) == meta["options"]["num_epochs"]:
#         final.setdefault(row["network"], []).append(float(row["val_acc"]))
# for network, accs in final.items():
#     print(f"{network:<22} validation accuracy {sum(accs) / len(accs):.4f} "
#           f"({len(accs)} seed(s), {meta['options']['train_subset']:,} training images, "
#           f"{meta['options']['num_epochs']} epochs)")
# means = {network: sum(accs) / len(accs) for network, accs in final.items()}
# gain = means["ResNet-18, 3x3 stem"] - means["ResNet-18"]
# print(f"3x3 stem - 7x7 stem: {gain:+.3f}, for {small_flops / course_flops:.0f}x the FLOPs")
# assert gain > 0
# ```
#
# The stem is the only change in parameters (a 3x3 kernel where there was a 7x7 one:
# 2,560 fewer); the feature maps of every stage are 3.5 to 4 times as tall and wide
# (28, 14, 7 and 4 pixels instead of 7, 4, 2 and 1), so the network costs 14 times the
# FLOPs, and `b5` works on 4x4 maps where its 3x3 kernels are used in full. On the
# validation set, trained alike on 10,000 images for 10 epochs, it scored about 0.015
# higher than the course's network (as printed): a large gain, but from one seed on a
# subset, and at 14 times the arithmetic per image, which is why the course keeps the
# 7x7 stem on a laptop CPU. Where time is not the constraint (a GPU), the small-image
# stem is worth trying: *Dive into Deep Learning*'s multi-GPU section (notebook 6)
# trains such a stem.
#
# </details>

# %% tags=["nbval-ignore-output"]
from d2l_resnet import run_info

print(run_info())
