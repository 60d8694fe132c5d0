# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: tags,-all
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
# # 5. Why residual networks train at depth (ResNet为什么能训练出1000层的模型)
#
# He et al. trained residual networks of more than a thousand layers: 1202 layers on
# CIFAR-10 in the paper that introduced ResNet (He, Zhang, Ren and Sun 2015, Sec. 4.2)
# and a 1001-layer network with identity mappings a year later (He, Zhang, Ren and Sun
# 2016). The course notebook ends with a three-line argument for why the shortcut makes
# the difference: "turn multiplication into addition". The argument is right in spirit,
# but it drops a partial sign, never says what $f$ and $g$ are, and blames vanishing
# gradients on a small loss, which is not the cause.
#
# It also answers only half of the question. The chain rule makes a plain network's
# gradient a product of one Jacobian per layer, and that product *can* vanish: it does
# with PyTorch's default initialization, by a factor of about 0.4 per layer. It need
# not: with Kaiming initialization, made for ReLU networks, the first of 100 plain
# layers receives about a tenth of the gradient that the last one receives, instead of
# $10^{-38}$ of it, and with BatchNorm it receives more than the last one. Yet deep plain
# networks with BatchNorm still reach a *higher training error* than shallower ones
# (He et al. 2015, the *degradation* problem), and He et al. argue that this is not
# caused by vanishing gradients: such networks are hard to *optimize*.
#
# This notebook
#
# 1. restates the argument with every symbol defined and every derivative correct,
# 2. derives its general form for a stack of $L$ residual blocks (He et al. 2016,
#    eq. 4-5), contrasts it with the product that a plain stack gives, and says what
#    the shortcut guarantees and what it does not,
# 3. checks each formula against PyTorch's autograd,
# 4. measures the gradient, layer by layer, in plain and residual stacks of 10 to 1000
#    layers, with PyTorch's default and with Kaiming initialization, with and without
#    BatchNorm: when the product vanishes and when it does not,
# 5. measures degradation on the convolutional networks of He et al. 2015 (Sec. 4.2,
#    Fig. 6), plain and residual, 20 and 56 layers, on Fashion-MNIST: a full run
#    committed under `results/`, and a small preview that runs here, and
# 6. measures one thing that does go wrong in a deep plain network from the start: its
#    gradients are *shattered* (Balduzzi et al. 2017).
#
# The notation is He et al.'s (tabled in the course's glossary): $\mathcal{H}(x)$ is the
# mapping a block should compute, $\mathcal{F}(x) = \mathcal{H}(x) - x$ its residual
# branch, $x_l$ the input of block $l$, $x_L$ that of a later block $L$ (or the
# network's output), and $E$ the loss.

# %%
# %matplotlib inline
import math
import statistics

import torch
from IPython.display import SVG

from d2l_resnet import get_profile, show_source
from d2l_resnet.extras.diagrams import preactivation_svg
from d2l_resnet.gradients import (
    StackBlock,
    block_jacobians,
    chain_jacobian,
    fashion_mnist_features,
    format_ratio,
    gradient_correlation,
    layer_grad_norms,
    make_stack,
    train_stack,
    zero_residual_branches,
)
from d2l_resnet.model import init_weights, small_image_net
from d2l_resnet.plot import (
    family_styles,
    plot_depth_curves,
    plot_grad_norms,
    plot_loss_panels,
    plot_vs_depth,
)
from d2l_resnet.results import read_results

# The stacks here are narrow (a few dozen units): one thread is as fast as several, and
# the numbers do not depend on how many cores the machine has. The convolutional
# networks, later, get every core.
default_threads = torch.get_num_threads()
torch.set_num_threads(1)
_ = torch.manual_seed(0)  # the same random numbers on every run
profile = get_profile()

# %% [markdown]
# ## The argument in the course notebook (原文的推导)
#
# The course notebook's last section reads (translated; its symbols kept):
#
# > One way to solve vanishing gradients is to turn multiplication into addition.
# >
# > 1. An ordinary fully connected network can be written $y = f(x)$; gradient descent
# >    gives $\frac{\partial y}{\partial w}$ and $w = w - \eta \frac{\partial
# >    y}{\partial w}$.
# > 2. A deeper network can be written $y^{\prime} = g(f(x))$,
# >    $\frac{y^{\prime}}{\partial w} = \frac{\partial y^{\prime}}{\partial y}
# >    \frac{\partial y}{\partial w} = \frac{\partial g(y)}{\partial y} \frac{\partial
# >    y}{\partial w}$, where $\frac{\partial g(y)}{\partial y}$ depends on how well the
# >    network predicts: if it predicts well the loss is small, so the gradient is a
# >    small number, and multiplying by it makes the gradient vanish.
# > 3. For a residual network, $y^{\prime \prime} = f(x) + g(f(x))$, and its derivative
# >    is $\frac{\partial y^{\prime \prime}}{\partial w} = \frac{\partial y}{\partial w} +
# >    \frac{y^{\prime}}{\partial w}$.
#
# Three things need fixing:
#
# - **A missing $\partial$.** $\frac{y^{\prime}}{\partial w}$ (twice, in steps 2 and 3)
#   should read $\frac{\partial y^{\prime}}{\partial w}$.
# - **$f$, $g$ and $w$ are never defined.** In the source, $f$ is the lower part of the
#   network and holds the weight $w$; $g$ is the part stacked on top and does not depend
#   on $w$. In He et al.'s notation, used from here on, the lower part's output $y =
#   f(x; w)$ is the input $x_l$ of the block on top, $g$ is that block's residual branch
#   $\mathcal{F}$, the plain network's output $y^{\prime} = g(y)$ is $\mathcal{F}(x_l)$,
#   and the residual network's output $y^{\prime\prime} = y + g(y)$ is $x_{l+1} = x_l +
#   \mathcal{F}(x_l)$. Gradient descent also needs a loss $E$: it updates $w \leftarrow
#   w - \eta \frac{\partial E}{\partial w}$, not with $\frac{\partial y}{\partial w}$.
# - **"A small loss makes the gradient small" is not why gradients vanish.** The factor
#   $\frac{\partial g(y)}{\partial y}$, in He et al.'s notation $\frac{\partial
#   \mathcal{F}(x_l)}{\partial x_l}$, is the Jacobian of the layers on top; it depends on
#   their weights and on where their activation functions operate (a saturated $\tanh$
#   or sigmoid has a slope near 0), not on how good the prediction is. The loss enters
#   through a different factor, $\frac{\partial E}{\partial x_{l+1}}$, which multiplies
#   the gradient of *every* layer alike, in a plain and in a residual network. Near a
#   minimum all gradients are small, and that is as it should be. Vanishing gradients
#   are something else: the gradient of the *lower* layers is many orders of magnitude
#   smaller than that of the upper ones, because it is a product of many Jacobians. It
#   can happen at initialization, before any training, when the loss is far from small:
#   the 100-layer plain stack measured below, with PyTorch's default initialization,
#   starts at 2.30, the loss of guessing uniformly among 10 classes ($\ln 10$).

# %% [markdown]
# ## The chain rule, corrected (链式法则)
#
# Let $x$ be the input, $x_l = f(x; w)$ the output of the lower layers, which hold the
# weight $w$, and $\mathcal{F}$ the layers on top (with weights of their own). The loss
# $E$ is a function of the network's output.
#
# **Plain stacking.** The output is $x_{l+1} = \mathcal{F}(x_l) = \mathcal{F}(f(x; w))$
# and the chain rule gives a *product*:
#
# $$\frac{\partial x_{l+1}}{\partial w} = \frac{\partial \mathcal{F}(x_l)}{\partial
# x_l}\, \frac{\partial x_l}{\partial w}, \qquad \frac{\partial E}{\partial w} =
# \frac{\partial E}{\partial x_{l+1}}\, \frac{\partial \mathcal{F}(x_l)}{\partial x_l}\,
# \frac{\partial x_l}{\partial w}.$$
#
# If $\mathcal{F}$ is itself $k$ layers, $\mathcal{F} = \mathcal{F}_k \circ \dots \circ
# \mathcal{F}_1$, then its Jacobian is a product of $k$ Jacobians, one per layer. If
# each of them multiplies the length of every vector by at most $c < 1$ (its largest
# singular value is at most $c$), the gradient that reaches $w$ shrinks at least like
# $c^k$: it *vanishes* exponentially with depth. It *explodes* at least like $c^k$ if
# each Jacobian multiplies the length of every vector by at least $c > 1$, that is, if
# its *smallest* singular value is at least $c$. A largest singular value above 1 is
# not enough: a Jacobian can stretch one direction and crush another (a ReLU's own
# Jacobian is a diagonal matrix of 0s and 1s, singular as soon as one unit is off), and
# a product of such matrices can even be zero. Between the two bounds, the outcome
# depends on how the directions line up from layer to layer. Nothing in the chain rule
# says which case a real network is in: that depends on its weights, and the
# measurements below show vanishing, exploding and neither. The two bounds, and the
# counterexample, checked on products of 20 random $8 \times 8$ matrices with chosen
# singular values:

# %%
gen = torch.Generator().manual_seed(0)


def with_singular_values(values):
    """A random matrix U diag(values) V^T with orthogonal U and V."""
    n = len(values)
    U, _ = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=torch.float64))
    V, _ = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=torch.float64))
    return U @ torch.diag(torch.tensor(values, dtype=torch.float64)) @ V.T


k = 20
shrinking = torch.linalg.multi_dot([with_singular_values([0.9, 0.7, 0.5, 0.3, 0.2, 0.1,
                                                          0.1, 0.1]) for _ in range(k)])
stretching = torch.linalg.multi_dot([with_singular_values([3.0, 2.5, 2.0, 1.5, 1.3, 1.2,
                                                           1.1, 1.1]) for _ in range(k)])
sv_shrinking = torch.linalg.svdvals(shrinking)
sv_stretching = torch.linalg.svdvals(stretching)
J = torch.tensor([[0.0, 2.0], [0.0, 0.0]], dtype=torch.float64)
checks = {
    "all singular values <= 0.9: product's largest <= 0.9^20":
        sv_shrinking.max() <= 0.9**k * (1 + 1e-9),
    "all singular values >= 1.1: product's smallest >= 1.1^20":
        sv_stretching.min() >= 1.1**k * (1 - 1e-9),
    "J = [[0, 2], [0, 0]]: largest singular value 2, yet J @ J = 0":
        torch.linalg.svdvals(J).max() == 2 and not (J @ J).any(),
}
for name, ok in checks.items():
    print(f"{name:<60} {bool(ok)}")
assert all(checks.values())

# %% [markdown]
# With the bounds in mind, back to the source's step 3.
#
# **Residual stacking.** The layers on top are added to a shortcut, $x_{l+1} = x_l +
# \mathcal{F}(x_l) = f(x; w) + \mathcal{F}(f(x; w))$, and the derivative is a *sum*:
#
# $$\frac{\partial x_{l+1}}{\partial w} = \frac{\partial x_l}{\partial w} +
# \frac{\partial \mathcal{F}(x_l)}{\partial x_l}\, \frac{\partial x_l}{\partial w} =
# \Bigl(I + \frac{\partial \mathcal{F}(x_l)}{\partial x_l}\Bigr) \frac{\partial
# x_l}{\partial w}.$$
#
# The second term is exactly the plain network's gradient, the product above (the
# source's $\frac{\partial y^{\prime}}{\partial w}$ of its step 2). The first term,
# $\frac{\partial x_l}{\partial w}$, is the lower layers' own gradient, and it arrives
# whatever $\mathcal{F}$ does: even if $\frac{\partial \mathcal{F}(x_l)}{\partial x_l}$
# is nearly zero, $w$ still gets a gradient. ($I$ is the identity matrix; for scalars it
# is 1.)

# %% [markdown]
# ## The general form: He et al. 2016, eq. 4-5 (一般形式)
#
# He, Zhang, Ren and Sun (2016), "Identity Mappings in Deep Residual Networks", write a
# stack of residual blocks as $x_{l+1} = x_l + \mathcal{F}(x_l, \mathcal{W}_l)$, where
# $x_l$ is the input of block $l$, $\mathcal{F}$ its residual branch and
# $\mathcal{W}_l$ the branch's weights. Applying this from block $l$ up to block $L$
# gives their **eq. 4**:
#
# $$x_L = x_l + \sum_{i=l}^{L-1} \mathcal{F}(x_i, \mathcal{W}_i),$$
#
# and differentiating a loss $E$ gives **eq. 5**:
#
# $$\frac{\partial E}{\partial x_l} = \frac{\partial E}{\partial x_L}\,\frac{\partial
# x_L}{\partial x_l} = \frac{\partial E}{\partial x_L}\Bigl(1 + \frac{\partial}{\partial
# x_l} \sum_{i=l}^{L-1} \mathcal{F}(x_i, \mathcal{W}_i)\Bigr).$$
#
# (For vectors, $\frac{\partial E}{\partial x}$ is a row vector and the $1$ is the
# identity matrix $I$.) The term $\frac{\partial E}{\partial x_L}$ reaches every block
# directly, through no weight layer at all. For a **plain** stack, $x_{l+1} =
# \mathcal{F}(x_l, \mathcal{W}_l)$, the same derivative is a product of $L - l$
# Jacobians, the block nearest the output leftmost:
#
# $$\frac{\partial E}{\partial x_l} = \frac{\partial E}{\partial x_L}\,
# \frac{\partial \mathcal{F}(x_{L-1})}{\partial x_{L-1}} \cdots \frac{\partial
# \mathcal{F}(x_l)}{\partial x_l}.$$
#
# Each residual block has the Jacobian $I + \frac{\partial \mathcal{F}(x_i)}{\partial
# x_i}$, so the residual product $\prod_i \bigl(I + \frac{\partial
# \mathcal{F}(x_i)}{\partial x_i}\bigr)$ expands into $I$ plus the sum of all the other
# terms: that is where the $1$ of eq. 5 comes from.
#
# **What the $1$ guarantees, and what it does not.** It guarantees that the gradient of
# the output reaches every block, whatever the branches do: even with every branch at
# zero, a thousand residual layers pass it back unchanged (checked at the end of the
# measurements below). That alone does not make a network train well. The other terms
# of the sum can be large: without BatchNorm, a deep residual stack's gradient
# explodes (measured below). And a gradient that arrives is not necessarily a useful
# one: the last sections of this notebook measure how deep plain networks fail even
# when their gradients arrive at full size, and what the shortcut changes there.
# Nor does eq. 5 say that a plain network's product must vanish: whether it does
# depends on its factors, that is, on the initialization and on normalization.
#
# Eq. 4 and 5 hold exactly only if nothing follows the addition: the shortcut is an
# identity and there is no ReLU after the sum. That is the point of He et al. 2016:
# the original ResNet of 2015, and the blocks of notebook 1, apply a ReLU after the
# sum (a); the *pre-activation* block moves BatchNorm and ReLU into the branch, before
# each convolution, and leaves the sum alone (b).

# %%
SVG(preactivation_svg())

# %% [markdown]
# The stacks in this notebook follow the 2016 design, with fully connected layers in
# place of convolutions: each layer is BatchNorm (optional), ReLU, then a linear map,
# and a residual layer adds its input:

# %%
show_source(StackBlock)

# %% [markdown]
# ## Checked by autograd (用自动微分验证)
#
# **The two-function case.** Take scalar "layers": the lower layer $x_l = f(x; w) =
# \tanh(wx)$ and the layer on top $\mathcal{F}(x_l) = \tanh(v x_l)$, with $x = 1.5$,
# $w = 0.8$ and $v = 5$, large enough that $\mathcal{F}$ saturates. By hand,
# $\frac{\partial x_l}{\partial w} = x\,(1 - \tanh^2(wx))$ and $\frac{\partial
# \mathcal{F}}{\partial x_l} = v\,(1 - \tanh^2(v x_l))$. Autograd differentiates the
# composed functions; the formulas use only the two hand-derived pieces.

# %%
x = torch.tensor(1.5, dtype=torch.float64)
w = torch.tensor(0.8, dtype=torch.float64, requires_grad=True)
v = 5.0


def lower(x, w):
    return torch.tanh(w * x)     # f(x; w), the lower layer, with the weight w


def branch(x_l):
    return torch.tanh(v * x_l)   # F(x_l), the layer on top


x_l = lower(x, w)
(d_plain,) = torch.autograd.grad(branch(x_l), w, retain_graph=True)    # x_{l+1} = F(x_l)
(d_residual,) = torch.autograd.grad(x_l + branch(x_l), w)            # x_l + F(x_l)

with torch.no_grad():
    dxl_dw = x * (1 - torch.tanh(w * x) ** 2)         # by hand
    dbranch_dxl = v * (1 - torch.tanh(v * x_l) ** 2)  # by hand
    plain_formula = dbranch_dxl * dxl_dw              # product
    residual_formula = dxl_dw + dbranch_dxl * dxl_dw  # sum

print(f"dx_l/dw = {dxl_dw:.6f}   dF/dx_l = {dbranch_dxl:.6f}")
print(f"plain    dx_(l+1)/dw: autograd {d_plain:.6f}  (dF/dx_l)(dx_l/dw) = "
      f"{plain_formula:.6f}  equal: {torch.allclose(d_plain, plain_formula)}")
print(f"residual dx_(l+1)/dw: autograd {d_residual:.6f}  dx_l/dw + (dF/dx_l)(dx_l/dw) = "
      f"{residual_formula:.6f}  equal: {torch.allclose(d_residual, residual_formula)}")
assert torch.allclose(d_plain, plain_formula)
assert torch.allclose(d_residual, residual_formula)

# %% [markdown]
# $\mathcal{F}$ is saturated ($v x_l \approx 4.2$), so its slope is $0.0048$ and the
# plain gradient is about 200 times smaller than $\frac{\partial x_l}{\partial w}$. The
# residual gradient keeps $\frac{\partial x_l}{\partial w}$ whole and adds the small
# product to it. Nothing here involves a loss: the small factor is a property of the
# layer $\mathcal{F}$.
#
# **A stack of blocks: eq. 4 and 5.** Now six residual layers of width 5 (float64, no
# BatchNorm, so that each layer maps one vector to one vector). `block_jacobians` runs a
# vector through a list of blocks and takes each block's Jacobian at the point the
# forward pass reaches; `chain_jacobian` multiplies them in the order of the chain
# rule. The loss is $E = \frac{1}{2}\|x_L\|^2$, so $\frac{\partial E}{\partial x_L} =
# x_L^\top$ exactly (a row vector, hence `x_last @ ...` below).

# %%
show_source(block_jacobians)

# %%
show_source(chain_jacobian)

# %%
def run(blocks, x):
    for block in blocks:
        x = block(x)
    return x


def sum_of_branches(blocks, x):
    """sum_i F(x_i): the branch outputs along the residual path, added up."""
    total = torch.zeros_like(x)
    for block in blocks:
        out = block.branch(x)
        total = total + out
        x = x + out
    return total


def grad_x0(blocks, x0):
    """Autograd's gradient of E = ||x_L||^2 / 2 with respect to the input x_0."""
    x = x0.clone().requires_grad_()
    (grad,) = torch.autograd.grad(0.5 * run(blocks, x).pow(2).sum(), x)
    return grad


gen = torch.Generator().manual_seed(0)
x0 = torch.randn(5, generator=gen, dtype=torch.float64)
eye = torch.eye(5, dtype=torch.float64)   # the identity matrix I
residual_blocks = list(make_stack(6, width=5, residual=True, in_features=5, seed=0,
                                  dtype=torch.float64).layers)
plain_blocks = list(make_stack(6, width=5, residual=False, in_features=5, seed=0,
                               dtype=torch.float64).layers)    # the same weights

# Residual: eq. 4, eq. 5, and the product of block Jacobians.
x_last = run(residual_blocks, x0)
J_sum = torch.autograd.functional.jacobian(lambda x: sum_of_branches(residual_blocks, x), x0)
J_blocks, _ = block_jacobians(residual_blocks, x0)
checks = {
    "eq. 4   x_L = x_0 + sum_i F(x_i)": torch.allclose(
        x_last, x0 + sum_of_branches(residual_blocks, x0)),
    "eq. 5   dE/dx_0 (autograd) = dE/dx_L (I + d/dx_0 sum_i F(x_i))": torch.allclose(
        grad_x0(residual_blocks, x0), x_last @ (eye + J_sum)),
    "chain   (I + J_5) ... (I + J_0) = I + d/dx_0 sum_i F(x_i)": torch.allclose(
        chain_jacobian(J_blocks), eye + J_sum),
}
# Plain: the same layers without shortcuts; the gradient is the product alone.
x_last_plain = run(plain_blocks, x0)
J_plain, _ = block_jacobians(plain_blocks, x0)
checks["plain   dE/dx_0 (autograd) = dE/dx_L J_5 ... J_0"] = torch.allclose(
    grad_x0(plain_blocks, x0), x_last_plain @ chain_jacobian(J_plain))
for name, ok in checks.items():
    print(f"{name:<66} {ok}")
assert all(checks.values())

# %% [markdown]
# All four agree with autograd. In the residual product every block contributes $I +
# J_i$ rather than $J_i$, and the identity survives the multiplication: the $1$ in eq. 5
# is the path from the loss to $x_0$ that skips every branch.

# %% [markdown]
# ## Measured: gradient norms layer by layer (逐层的梯度范数)
#
# How much of the gradient reaches the lower layers of a deep network? We build fully
# connected stacks (`make_stack`) of width 64 and depth $L$ = 10, 30, 100 and 1000: a
# linear stem, $L$ layers as above, and a linear classifier head, with the same seed for
# a plain stack and its residual twin. Each is built twice: with PyTorch's default
# initialization of `nn.Linear` (weights uniform, of variance $1/(3\,\text{fan\_in})$)
# and with **Kaiming initialization** (He, Zhang, Ren and Sun 2015b, made for ReLU
# networks: weights normal, of variance $2/\text{fan\_in}$, and biases zero). One
# forward and backward pass of a batch of 64 random inputs with random labels
# (cross-entropy loss) gives $\|\partial E / \partial x_l\|$, the norm of the gradient
# with respect to the input of layer $l$, for every layer: the quantity of eq. 5. The
# computation is in float64. float32's smallest *normal* number is about $1.2 \cdot
# 10^{-38}$; below it, *subnormal* numbers keep fewer and fewer significant bits down to
# $1.4 \cdot 10^{-45}$, and anything smaller is 0. A deep plain stack's gradients fall
# into that range, or below it (checked after the table). Over 1000 layers that multiply
# the gradient, the last rounding differences of the CPU's arithmetic grow too: the
# 1000-layer plain stack with BatchNorm (default initialization) has a ratio of
# $3 \cdot 10^{87}$ in the run shown (a 2-core AMD EPYC), $9 \cdot 10^{86}$ on a Xeon and
# $2 \cdot 10^{87}$ on the same Xeon capped at AVX2, and the number of threads changes it
# too. So the tests do not compare the table's digits; what the text says of it is
# asserted after the figure, on every CPU.

# %%
show_source(layer_grad_norms)

# %% tags=["nbval-ignore-output"]
gen = torch.Generator().manual_seed(0)
X_probe = torch.randn(64, 64, generator=gen, dtype=torch.float64)   # (N, features)
y_probe = torch.randint(0, 10, (64,), generator=gen)                  # (N,)

KINDS = {  # name: (residual, batch_norm)
    "plain": (False, False),
    "residual": (True, False),
    "plain + BN": (False, True),
    "residual + BN": (True, True),
}
INITS = ("default", "kaiming")
DEPTHS = (10, 30, 100, 1000)
norms = {}
for init in INITS:
    for kind, (residual, batch_norm) in KINDS.items():
        for L in DEPTHS:
            if (init, kind, L) == ("default", "plain", 1000):
                continue      # below the smallest float64 (computed after the table)
            net = make_stack(L, width=64, residual=residual, batch_norm=batch_norm,
                             in_features=64, seed=0, dtype=torch.float64, init=init)
            norms[init, kind, L] = layer_grad_norms(net, X_probe, y_probe, wrt="input")


def ratio(init, kind, L):
    """Gradient norm at the first layer over the gradient norm at the last."""
    first, *_, last = norms[init, kind, L]
    return first / last


print("first-layer / last-layer gradient norm, ||dE/dx_0|| / ||dE/dx_{L-1}||")
print(f"{'init':<9}{'stack':<15}" + "".join(f"{'L=' + str(L):>8}" for L in DEPTHS)
      + f"{'per layer':>11}")
for init in INITS:
    for kind in KINDS:
        cells = "".join(f"{format_ratio(ratio(init, kind, L)):>8}" if (init, kind, L) in norms
                        else f"{'-':>8}" for L in DEPTHS)
        per_layer = ratio(init, kind, 100) ** (1 / 99)    # geometric mean over 99 layers
        print(f"{init:<9}{kind:<15}{cells}{per_layer:>11.2f}")
loss0 = torch.nn.functional.cross_entropy(
    make_stack(100, width=64, in_features=64, seed=0, dtype=torch.float64)(X_probe),
    y_probe).item()
print(f"loss of the 100-layer plain stack (default init) at initialization: {loss0:.2f} "
      f"(ln 10 = {math.log(10):.2f})")

# %% [markdown]
# The figure plots every layer's gradient norm of the 100-layer stacks (log scale)
# against $L - l$, the number of layers the gradient has traveled back from the output
# (linear scale), so the layer nearest the output is at the left and the first layer
# (marked with a dot) at the right. On these axes a gradient that changes by the same
# factor at every layer draws a straight line, and its slope is the logarithm of that
# factor. As in every figure of this notebook, plain networks are orange and residual
# ones blue; here the stacks with BatchNorm are dashed.

# %%
panels = {f"{name} initialization": {kind: norms[init, kind, 100] for kind in KINDS}
          for init, name in zip(INITS, ("default", "Kaiming"), strict=True)}
first_layer = {"marker": "o", "markevery": [0], "markersize": 4}   # a dot at l = 0
styles = {"plain": {"color": "tab:orange", **first_layer},
          "residual": {"color": "tab:blue", **first_layer},
          "plain + BN": {"color": "tab:orange", "linestyle": "--", **first_layer},
          "residual + BN": {"color": "tab:blue", "linestyle": "--", **first_layer}}
fig = plot_grad_norms(panels, styles=styles, legend="figure", figsize=(9.0, 3.4))
fig

# %% [markdown]
# What the numbers say (one significant digit; the last column is the average factor
# per layer in the 100-layer stacks):
#
# - **Plain, default initialization: the gradient vanishes.** Every layer multiplies it
#   by about 0.41, so the first of 100 layers receives $10^{-38}$ of what the last one
#   receives. The factor can be predicted: the default initialization gives weights of
#   variance $1/(3 \cdot \text{width})$ and the ReLU passes half of the units, so each
#   layer scales the gradient's squared norm by about $\text{width} \cdot
#   \frac{1}{3\,\text{width}} \cdot \frac{1}{2} = \frac{1}{6}$, its norm by
#   $\sqrt{1/6} \approx 0.41$. For 1000 layers the rule predicts $\sqrt{1/6}^{\,999}
#   \approx 10^{-389}$, and the rate measured over 100 layers, carried on to 1000, gives
#   $10^{-382}$: both far below the smallest positive float64, about $5 \cdot
#   10^{-324}$, so that stack is left out (computed in the cell below).
# - **Plain, Kaiming initialization: it does not.** Weights of variance
#   $2/\text{width}$ make the same factor $\text{width} \cdot \frac{2}{\text{width}}
#   \cdot \frac{1}{2} = 1$: each layer keeps the squared norm *on average*. One network's
#   layers fluctuate around that average, so the ratio drifts slowly (0.98 per layer
#   here): $9 \cdot 10^{-2}$ across 100 layers, $10^{-6}$ across 1000, against
#   $10^{-38}$ across 100 with the default initialization. The product of Jacobians
#   vanishes because of the initialization, not because of depth.
# - **Residual, without BatchNorm: no vanishing, but explosion.** Each block multiplies
#   by $I + J_i$ instead of $J_i$. With the default initialization the branch is small
#   ($J_i$ scales the squared norm by $1/6$) and the factor is about 1.08 per layer:
#   harmless for 30 layers, $6 \cdot 10^{32}$ over 1000. With Kaiming initialization the
#   branch is as large as its input and the factor is about $\sqrt{2} \approx 1.4$:
#   $4 \cdot 10^{14}$ over 100 layers. The shortcut removes the vanishing, not every
#   problem: very deep residual networks also need their branches to start small, which
#   BatchNorm (below), zero-initialized last layers (`zero_residual_branches`, and
#   torchvision's `zero_init_residual`) or Fixup provide. Fixup (Zhang, Dauphin and Ma
#   2019) initializes the last weight layer of each branch to zero and rescales the other
#   weight layers inside each branch by $L^{-1/(2m-2)}$, for $L$ branches of $m$ layers
#   each.
# - **Plain, with BatchNorm: no vanishing either, but growth**, whatever the
#   initialization: about 1.2 per layer, $3 \cdot 10^{8}$ across 100 layers. BatchNorm
#   divides each layer's input by its own scale, so the initial scale of the weights
#   hardly matters. He et al. (2015, Sec. 4.1) note that BatchNorm keeps the forward
#   signals at non-zero variance and the backward gradients at healthy norms, so that
#   the degradation of their plain networks is unlikely to be caused by vanishing
#   gradients; no vanishing is what we see too. Yang et al. (2019) showed that deep
#   plain networks with BatchNorm have *exploding* gradients at initialization, which is
#   what we see as well.
# - **Residual, with BatchNorm: balanced**, with either initialization. The ratio grows
#   only slowly with depth: a factor of 2 to 3 across 10 layers and of about 80 across
#   1000. Each branch normalizes its input and adds a signal of fixed scale, so $x_l$
#   grows with $l$ (20-fold over 1000 layers, measured below) and each later branch
#   changes it relatively less: the blocks stay close to the identity.
#
# So the product of Jacobians vanishes in a plain network with the default
# initialization and no normalization; with Kaiming initialization, or with BatchNorm,
# it does not. The ranges of the two floating-point types, the 1000-layer
# extrapolation, and the 100-layer plain stack's first-layer gradient in float64:

# %%
tiny32, tiny64 = torch.finfo(torch.float32).tiny, torch.finfo(torch.float64).tiny
sub32 = torch.nextafter(torch.tensor(0.0), torch.tensor(1.0)).item()
sub64 = torch.nextafter(torch.tensor(0.0, dtype=torch.float64),
                        torch.tensor(1.0, dtype=torch.float64)).item()
print(f"float32: smallest normal {tiny32:.1e}, smallest subnormal {sub32:.1e}")
print(f"float64: smallest normal {tiny64:.1e}, smallest subnormal {sub64:.1e}")
predicted = 999 * math.log10(math.sqrt(1 / 6))                   # log10 of sqrt(1/6)^999
extended = 999 / 99 * math.log10(ratio("default", "plain", 100))  # the 100-layer rate
print(f"1000 plain layers: sqrt(1/6)^999 = 10^{predicted:.0f}; measured rate carried on: "
      f"10^{extended:.0f}; smallest float64: 10^{math.log10(sub64):.0f}")
assert max(predicted, extended) < math.log10(sub64)
first64 = norms["default", "plain", 100][0]
print(f"plain, 100 layers: ||dE/dx_0|| = {format_ratio(first64)} in float64, below "
      f"float32's smallest normal: {first64 < tiny32}")
assert first64 < tiny32

# %% [markdown]
# In float32 the same gradient is subnormal at best, with few significant bits left,
# and its norm, which squares the entries, comes out as 0 (the exact result can depend
# on the CPU, so the next cell is not compared by the tests):

# %% tags=["nbval-ignore-output"]
norms32 = layer_grad_norms(make_stack(100, width=64, in_features=64, seed=0),
                           X_probe.float(), y_probe)
print(f"plain, 100 layers, float32: ||dE/dx_0|| = {norms32[0]}; layers whose gradient "
      f"norm is 0: {sum(v == 0 for v in norms32)} of 100")
assert norms32[0] < tiny32

# %% [markdown]
# How $x_l$ grows along the 1000-layer residual stack with BatchNorm:

# %%
net = make_stack(1000, width=64, residual=True, batch_norm=True, in_features=64, seed=0,
                 dtype=torch.float64)
with torch.no_grad():
    x, sizes = net.stem(X_probe), []
    for layer in net.layers:
        sizes.append(x.norm().item())     # ||x_l||, the input of layer l
        x = layer(x)
print(f"residual + BN, 1000 layers: ||x_999|| / ||x_0|| = {format_ratio(sizes[-1] / sizes[0])}")
assert 10 < sizes[-1] / sizes[0] < 40

# %% [markdown]
# The numbers, asserted (they hold in every profile: this part uses no data and the
# same seeds), and one more check of eq. 5: with every branch set to zero, even a
# 1000-layer residual stack passes the gradient back unchanged, ratio exactly 1.

# %%
assert ratio("default", "plain", 100) < 1e-30                      # vanishes
assert abs(ratio("default", "plain", 100) ** (1 / 99) - math.sqrt(1 / 6)) < 0.01
assert 1e-2 < ratio("kaiming", "plain", 100) < 1e2                 # Kaiming: it does not
assert ratio("kaiming", "plain", 1000) > 1e-10                     # ...even at 1000 layers
assert ratio("default", "residual", 30) < 1e2                      # fine at moderate depth
assert ratio("default", "residual", 1000) > 1e20                   # explodes at 1000
assert ratio("kaiming", "residual", 100) > 1e10                    # ...and at 100 (Kaiming)
for init in INITS:
    assert ratio(init, "plain + BN", 100) > 1e6                     # BN: growth
    assert all(1 < ratio(init, "residual + BN", L) < 1e3 for L in DEPTHS)

identity_stack = zero_residual_branches(make_stack(1000, width=64, residual=True,
                                                   in_features=64, dtype=torch.float64))
zeroed = layer_grad_norms(identity_stack, X_probe, y_probe)
print("1000 residual layers, branches zeroed: every layer gets the same gradient:",
      all(v == zeroed[-1] for v in zeroed))
assert all(v == zeroed[-1] for v in zeroed)

# %% [markdown]
# ## Degradation on convolutional networks (退化问题)
#
# He et al. (2015, Fig. 1) found that a 56-layer plain network reaches a *higher
# training error* than a 20-layer one on CIFAR-10. That is not overfitting (the training
# error itself is worse) and, by their Sec. 4.1, unlikely to be vanishing gradients:
# their plain networks have BatchNorm. The deeper network is harder to *optimize*,
# although it could in principle copy the shallower one and set its extra layers to the
# identity; they conjecture that deep plain networks may have exponentially low
# convergence rates. Their Sec. 4.2 (Fig. 6, Table 6) repeats the comparison on a family
# of small networks for 32x32 images: a 3x3 convolution with 16 channels, three stages
# of $n$ blocks of two 3x3 convolutions with 16, 32 and 64 channels, global average
# pooling and a linear layer, $6n + 2$ layers in all. Plain-20, 32, 44 and 56 reach
# higher training errors the deeper they are; ResNet-20, 32, 44, 56 and 110 do not, and
# their CIFAR-10 test errors fall with depth: 8.75%, 7.51%, 7.17%, 6.97% and 6.43%
# (Table 6). They trained with SGD at a learning rate of 0.1, batches of 128, for
# 64,000 iterations, with zero-padded identity shortcuts where the shape changes (their
# option A).
#
# `small_image_net` is that family at 28x28 with one input channel. The stages see
# 28x28, 14x14 and 7x7 maps, and where a stage changes the shape the shortcut is a 1x1
# convolution (option B), as in the rest of this course:

# %%
show_source(small_image_net)

# %% [markdown]
# ### The committed run (完整实验)
#
# `python -m d2l_resnet experiment depth --jobs 2` trains plain-20, ResNet-20, plain-56,
# ResNet-56 and, for comparison, notebook 2's ResNet-18 and its plain twin (the same
# layers without shortcuts), twice each (seeds 0 and 1). Every network gets the same
# recipe: the course's (Nesterov SGD with a one-cycle learning rate, weight decay, label
# smoothing 0.1, random horizontal flips) with He et al.'s peak rate of 0.1 at batches
# of 128, for 15 epochs of 20,000 training images (about 2,350 steps), and the same
# initialization: Kaiming weights in the convolutions and every BatchNorm scale at 1, so
# that a plain network and its residual twin start alike (no branch starts at zero).
# Each seed draws its own stratified subset of the training split and scores 5,000
# held-out training images (the validation split) after every epoch; the test set is
# never used. The command writes `results/depth.csv` (per epoch) and
# `results/depth_curves.csv` (five points per epoch):

# %%
depth_rows, depth_meta = read_results("depth")           # one row per network, seed, epoch
curve_rows, _ = read_results("depth_curves")              # five rows per epoch
print(f"$ {depth_meta['command']}")
print(f"machine: {depth_meta['machine']['processor']}, {depth_meta['precision']}, "
      f"{depth_meta['seconds'] / 3600:.1f} hours")
print({key: depth_meta["options"][key] for key in ("train_subset", "num_epochs", "seeds")})

# %% [markdown]
# The training and validation errors of the last epoch, beside He et al.'s CIFAR-10
# test errors (Table 6; for the plain networks the paper gives curves only, Fig. 6).
# The training error is the mean over the last epoch's batches as trained (with flips
# and BatchNorm in training mode); each cell gives the mean of the two seeds and, in
# brackets, the two values.

# %%
PAPER_TEST_ERROR = {"ResNet-20": 8.75, "ResNet-32": 7.51, "ResNet-44": 7.17,
                    "ResNet-56": 6.97, "ResNet-110": 6.43}   # He et al. 2015, Table 6 (%)
last_epoch = max(int(row["epoch"]) for row in depth_rows)
final = {}   # network -> {"train": [per seed], "val": [per seed]}, errors in percent
for row in depth_rows:
    if int(row["epoch"]) == last_epoch:
        entry = final.setdefault(row["network"], {"train": [], "val": []})
        entry["train"].append(100 * float(row["train_err"]))
        entry["val"].append(100 * (1 - float(row["val_acc"])))


def cell(values):
    """Mean of the seeds, and each seed in brackets."""
    return (f"{statistics.fmean(values):5.2f} ("
            + ", ".join(f"{v:.2f}" for v in values) + ")")


print(f"error (%) after {last_epoch} epochs")
print(f"{'network':<12}{'training':>22}{'validation':>22}{'He et al., CIFAR-10 test':>27}")
for network, errors in final.items():
    paper = PAPER_TEST_ERROR.get(network)
    print(f"{network:<12}{cell(errors['train']):>22}{cell(errors['val']):>22}"
          f"{'-' if paper is None else f'{paper:.2f}':>27}")


def mean_error(network, split):
    return statistics.fmean(final[network][split])


def train_error_by_epoch(network):
    """The mean over the seeds of each epoch's training error, in percent."""
    return [statistics.fmean(100 * float(row["train_err"]) for row in depth_rows
                             if row["network"] == network and int(row["epoch"]) == epoch)
            for epoch in range(1, last_epoch + 1)]


# What the text below says, checked on the committed run.
assert all(deep > shallow for deep, shallow in zip(
    train_error_by_epoch("plain-56"), train_error_by_epoch("plain-20"), strict=True))
assert mean_error("plain-56", "train") > 2.5 * mean_error("plain-20", "train")
assert mean_error("plain-56", "val") > mean_error("plain-20", "val") + 2
assert mean_error("ResNet-56", "train") < mean_error("ResNet-20", "train") \
    < mean_error("plain-20", "train")
assert mean_error("plain-18", "train") > mean_error("ResNet-18", "train")
ties = [mean_error(network, "val") for network in ("plain-20", "ResNet-20", "ResNet-56")]
assert max(ties) - min(ties) < 0.5

# %% [markdown]
# The curves, in the manner of He et al.'s Fig. 6: thin dashed lines the training error
# (each point the mean over a fifth of an epoch, about 31 steps), bold lines the
# validation error after each epoch; each line the mean of the two seeds.

# %%
families = {name: ("plain" if name.startswith("plain") else "residual",
                   int(name.split("-")[1])) for name in final}
colors = {name: style["color"] for name, style in family_styles(families).items()}
fig = plot_depth_curves(depth_rows, curve_rows, {
    "plain, He et al.'s family": ["plain-20", "plain-56"],
    "residual, He et al.'s family": ["ResNet-20", "ResNet-56"],
    "ResNet-18 and its plain twin": ["plain-18", "ResNet-18"],
}, colors=colors, ylim=(0, 25), figsize=(10.0, 3.6))
fig

# %% [markdown]
# **Degradation, reproduced.** Plain-56 ends at a training error of 9.3%, nearly three
# times plain-20's 3.3%, and stays above it at every epoch; its validation error is
# higher too (10.5% against 7.2%). That is He et al.'s Fig. 6 on Fashion-MNIST: the
# deeper plain network is not overfitting, it fits its own training images worse. With
# shortcuts the order turns around: ResNet-56 reaches a lower training error than
# ResNet-20 (1.5% against 2.0%), and both are below plain-20. The course's own network
# shows the same, more mildly: plain-18, ResNet-18 without its shortcuts, ends at 3.8%
# training error against ResNet-18's 2.4%.
#
# **What did not carry over.** On CIFAR-10 the deeper residual networks also *test*
# better (8.75% for ResNet-20, 6.97% for ResNet-56). Here ResNet-56's validation error
# (7.5%) is no better than ResNet-20's (7.3%), or plain-20's (7.2%): the two seeds of each
# network differ by up to 0.2 points, and the three lie within 0.3 points of each other,
# too close to order. Likely reasons, none of them tested
# here: a third of the training images and 15 epochs (about 2,350 steps, against He et
# al.'s 64,000 on 45,000 images), a data set on which 20 layers already fit most of what
# can be learned, and a run too short for the extra capacity to pay off. ResNet-18,
# built for 224x224 images, scores below plain-20, ResNet-20 and ResNet-56 (8.5%
# validation error against 7.2% to 7.5%): its stem shrinks the 28x28 images to 7x7
# before the first block (notebook 2, exercise 5).
# The validation curves swing in the first epochs, while the one-cycle schedule's rate
# is high (up to 0.1 with batches of 128); the comparison is the last epoch's.

# %% [markdown]
# ### A small preview, live (小规模预览)
#
# The committed run takes hours on a CPU. A preview that runs here: the same four
# networks of He et al.'s family, with the same initialization, trained for 100 steps in
# the `quick` profile (600 in `course`) on batches of 32 Fashion-MNIST images, each
# image seen once, with plain SGD (learning rate 0.05, momentum 0.9, no schedule, no
# augmentation). To make a step four times cheaper, the images are average-pooled to
# 14x14 (the three stages then see 14x14, 7x7 and 4x4 maps). `train_stack` records
# every step's training loss:

# %%
show_source(train_stack)

# %% tags=["nbval-ignore-output"]
torch.set_num_threads(default_threads)   # the convolutional networks use every core
NUM_STEPS = 100 if profile.quick else 600
X_img, y_img = fashion_mnist_features(32 * NUM_STEPS, seed=0, pool=2)
X_img = X_img.view(-1, 1, 14, 14)                               # (N, 1, 14, 14)
PREVIEW = {"plain-20": (20, False), "plain-56": (56, False),
           "ResNet-20": (20, True), "ResNet-56": (56, True)}    # name: (depth, residual)
preview = {}
for name, (depth, residual) in PREVIEW.items():
    torch.manual_seed(0)
    net = init_weights(small_image_net(depth, residual), "kaiming", zero_init_residual=False)
    preview[name] = train_stack(net, X_img, y_img, NUM_STEPS, batch_size=32, lr=0.05,
                                momentum=0.9, seed=0, name=name)
final_loss = {name: history.final_loss(last=20) for name, history in preview.items()}
print(f"profile {profile.name}: {NUM_STEPS} steps; training loss, mean of the last 20")
for name, loss in final_loss.items():
    print(f"{name:<10} {loss:.2f}")
assert final_loss["plain-56"] > final_loss["plain-20"] + 0.3    # the deeper plain: worse
assert final_loss["ResNet-56"] < final_loss["plain-56"] - 0.2   # its residual twin: not

# %% tags=["nbval-ignore-output"]
fig = plot_loss_panels(
    {"plain": {name: preview[name].losses for name in ("plain-20", "plain-56")},
     "residual": {name: preview[name].losses for name in ("ResNet-20", "ResNet-56")}},
    window=10, styles={name: {"color": colors[name]} for name in PREVIEW},
    reference=(math.log(10), "ln 10: a uniform guess"))
fig

# %% [markdown]
# The preview shows how training starts: the deeper plain network learns more slowly.
# In the run shown (`course` profile, 600 steps), plain-56 ends at a training loss of
# 1.28, twice plain-20's 0.62. ResNet-56 ends at 0.71, near plain-20 though still above
# ResNet-20 (0.44): in so few steps its extra depth does not pay yet, but it does not
# hold it back the way it holds back plain-56. The assertions check the same ordering
# in the `quick` profile's 100 steps. ResNet-56 starts badly: its loss first rises
# above $\ln 10$ and comes back within a few dozen steps. He et al. met the same with
# ResNet-110 at a learning rate of 0.1 and warmed it up at 0.01 for about 400
# iterations (Sec. 4.2); the committed run's one-cycle schedule starts at a small rate
# too. A preview is not the experiment (fewer steps, smaller images, another recipe):
# the table and the curves above are the result.

# %% [markdown]
# ## What goes wrong in a deep plain network (深层普通网络的问题)
#
# If the gradient arrives, why does a deep plain network train badly? Balduzzi, Frean,
# Leary, Lewis, Ma and McWilliams (2017), "The Shattered Gradients Problem: If resnets
# are the answer, then what is the question?", looked at the gradient of a network's
# output with respect to its *input*. In a deep plain network of rectifiers it resembles
# white noise: the correlation between the gradients at two nearby inputs decays
# exponentially with depth (like $2^{-L}$ for $L$ layers), and BatchNorm does not
# prevent it. In a residual network it decays far more slowly (like $1/\sqrt{L}$). A
# shattered gradient is a poor guide for gradient descent: what one step learns from an
# input says little about its neighbors.
#
# Measured on He et al.'s family at initialization, as trained above (Kaiming weights in
# the convolutions, BatchNorm in training mode), on 32 training images, at depths from 8
# to 110 layers:
#
# - the ratio of the gradient norms at the first and the last block's input, $\|\partial
#   E/\partial x_0\| / \|\partial E/\partial x_{\text{last}}\|$, as in the fully
#   connected stacks (the two tensors differ in shape, $16 \times 28 \times 28$ and,
#   from 14 layers on, $64 \times 7 \times 7$ numbers ($32 \times 14 \times 14$ at 8
#   layers), so a gradient of the same size per number would give a ratio of 2
#   ($\sqrt{2}$ at 8 layers)), and
# - the correlation between $\partial E/\partial x$ at an image $x$ and at $x + 0.01\,z$,
#   $z$ standard normal noise (the pixels are standardized, so the noise is a hundredth of
#   their spread): `gradient_correlation`, the mean over the 32 images.

# %%
show_source(gradient_correlation)

# %%
torch.set_num_threads(default_threads)
X_probe_img, y_probe_img = fashion_mnist_features(32, seed=0, pool=1)
X_probe_img = X_probe_img.view(-1, 1, 28, 28)                  # (32, 1, 28, 28)
SHATTER_DEPTHS = (8, 14, 20, 32, 44, 56, 110)
grad_ratio = {"plain": {}, "residual": {}}
correlation = {"plain": {}, "residual": {}}
for kind, residual in (("plain", False), ("residual", True)):
    for depth in SHATTER_DEPTHS:
        torch.manual_seed(0)
        net = init_weights(small_image_net(depth, residual), "kaiming",
                           zero_init_residual=False)
        blocks = [block for stage in net[1:4] for block in stage]   # the 3n blocks
        block_norms = layer_grad_norms(net, X_probe_img, y_probe_img, layers=blocks)
        grad_ratio[kind][depth] = block_norms[0] / block_norms[-1]
        correlation[kind][depth] = statistics.fmean(
            gradient_correlation(net, X_probe_img, y_probe_img, noise=0.01))

print(f"{'depth':<24}" + "".join(f"{d:>7}" for d in SHATTER_DEPTHS))
for kind in ("plain", "residual"):
    print(f"{kind + ', gradient ratio':<24}"
          + "".join(f"{format_ratio(grad_ratio[kind][d]):>7}" for d in SHATTER_DEPTHS))
for kind in ("plain", "residual"):
    print(f"{kind + ', correlation':<24}"
          + "".join(f"{correlation[kind][d]:>7.2f}" for d in SHATTER_DEPTHS))
assert all(ratio > 1 for kind in grad_ratio for ratio in grad_ratio[kind].values())
assert max(abs(correlation["plain"][d]) for d in (32, 44, 56, 110)) < 0.1   # shattered
assert min(correlation["residual"][d] for d in SHATTER_DEPTHS) > 0.4           # not
assert correlation["residual"][20] > correlation["plain"][20] + 0.2

# %%
fig = plot_vs_depth(
    {"gradient norm, first block / last block": grad_ratio,
     "correlation of gradients at nearby inputs": correlation},
    ylabels={"gradient norm, first block / last block": "ratio (log scale)",
             "correlation of gradients at nearby inputs": "mean correlation"},
    logy=["gradient norm, first block / last block"],
    styles={"plain": {"color": "tab:orange"},
            "residual": {"color": "tab:blue", "linestyle": "--"}})
fig

# %% [markdown]
# The gradient vanishes in neither family: it *grows* towards the input, in the plain
# networks by a constant factor per layer (about 1.2, as in the fully connected stacks
# with BatchNorm: $2 \cdot 10^{4}$ across plain-56), in the residual ones slowly (80
# across ResNet-56). Up to 20 layers the two families' ratios are alike, yet their
# gradients already differ in kind. At 20 layers the correlation between the gradients
# at nearby inputs is 0.45 in the plain network and 0.84 in the residual one, and from
# 32 layers on the plain network's is about 0: changing the input by a hundredth of the
# pixels' spread gives an unrelated gradient, as if the gradient were white noise. The
# residual networks' correlation falls slowly, to 0.54 at 56 layers and 0.48 at 110.
#
# **What this explains, and what it does not.** A gradient that is unrelated from one
# input to its neighbor is a poor guide for a step of gradient descent: the step that
# lowers the loss on a batch of images says little about the images next to them. That
# fits He et al.'s conjecture that deep plain networks converge exponentially slowly,
# and it fits what was measured here: the plain network that degrades is the one whose
# gradient is shattered from the start, and its residual twin, whose gradient is not,
# does not degrade. It is not a proof of the cause. The measure is taken at
# initialization, and training changes the network; it is the gradient with respect to
# the input, while SGD follows the gradient with respect to the weights; and it is not
# a threshold: plain-20 trains well at a correlation of 0.45, and the residual networks'
# correlation falls too, while He et al.'s ResNet-110 trains best of all. What it does
# show is a difference the shortcut makes where gradient norms do not (up to 20
# layers), and that the trouble of deep plain networks is not that the gradient fails
# to arrive.

# %% [markdown]
# ## Summary (小结)
#
# - Plain stacking composes layers, so the chain rule multiplies their Jacobians:
#   $\frac{\partial x_{l+1}}{\partial w} = \frac{\partial \mathcal{F}}{\partial x_l}
#   \frac{\partial x_l}{\partial w}$. Over many layers the product can vanish or explode
#   exponentially, whatever the loss; whether it does depends on the weights.
# - A residual connection adds: $\frac{\partial x_{l+1}}{\partial w} = \frac{\partial
#   x_l}{\partial w} + \frac{\partial \mathcal{F}}{\partial x_l}\frac{\partial
#   x_l}{\partial w}$, and for a whole stack (He et al. 2016, eq. 5) $\frac{\partial
#   E}{\partial x_l} = \frac{\partial E}{\partial x_L}\bigl(1 +
#   \frac{\partial}{\partial x_l}\sum_i \mathcal{F}(x_i)\bigr)$: every layer gets the
#   gradient of the output directly, whatever the branches do. Autograd agrees with all
#   of these formulas. That guarantee alone does not make a network train well.
# - Measured at initialization, fully connected stacks: with PyTorch's default
#   initialization 100 plain layers pass $10^{-38}$ of the gradient to their first layer
#   (about 0.41 per layer); with Kaiming initialization, $9 \cdot 10^{-2}$ (about 1 per
#   layer); with BatchNorm the gradient grows instead ($3 \cdot 10^{8}$). The product of
#   Jacobians vanishes with the default initialization and no normalization, not
#   because of depth alone. Residual stacks without BatchNorm explode ($6 \cdot 10^{32}$
#   over 1000 layers with the default initialization, $4 \cdot 10^{14}$ over 100 with
#   Kaiming's), which is why deep residual networks keep their branches small at the
#   start; with BatchNorm they stay within a factor of 80 even at 1000 layers.
# - Degradation, measured on He et al.'s convolutional family (BatchNorm, Kaiming
#   initialization, the course's recipe, 20,000 Fashion-MNIST images, 15 epochs, two
#   seeds): plain-56 ends at 9.3% training error, plain-20 at 3.3%; with shortcuts the
#   deeper network trains better instead (ResNet-56 1.5%, ResNet-20 2.0%). In validation
#   the residual networks of 20 and 56 layers and plain-20 tie (7.2 to 7.5% error).
# - What does go wrong in a deep plain network, measured at initialization: its
#   gradient with respect to the input is *shattered* (Balduzzi et al. 2017). The
#   correlation between the gradients at nearby images falls from 0.91 at 8 layers to
#   about 0 from 32 layers on; in the residual networks it falls slowly, to 0.54 at 56
#   layers. The paper's plain networks fail to *optimize*, not to pass a gradient at
#   initialization.
#
# ## References (参考文献)
#
# - K. He, X. Zhang, S. Ren, J. Sun. *Deep Residual Learning for Image Recognition.*
#   CVPR 2016, arXiv:1512.03385 (2015). Fig. 1: the degradation problem; Sec. 4.1: plain
#   networks with BatchNorm and their gradients; Sec. 4.2, Fig. 6 and Table 6: the
#   small-image family on CIFAR-10, and a 1202-layer network.
# - K. He, X. Zhang, S. Ren, J. Sun. *Identity Mappings in Deep Residual Networks.*
#   ECCV 2016, arXiv:1603.05027. Eq. 4-5: the propagation formulas; a 1001-layer network.
# - K. He, X. Zhang, S. Ren, J. Sun. *Delving Deep into Rectifiers: Surpassing
#   Human-Level Performance on ImageNet Classification.* ICCV 2015, arXiv:1502.01852
#   (2015b). Kaiming initialization.
# - D. Balduzzi, M. Frean, L. Leary, J. P. Lewis, K. W.-D. Ma, B. McWilliams. *The
#   Shattered Gradients Problem: If resnets are the answer, then what is the question?*
#   ICML 2017, arXiv:1702.08591.
# - G. Yang, J. Pennington, V. Rao, J. Sohl-Dickstein, S. Schoenholz. *A Mean Field
#   Theory of Batch Normalization.* ICLR 2019.
# - H. Zhang, Y. N. Dauphin, T. Ma. *Fixup Initialization: Residual Learning Without
#   Normalization.* ICLR 2019.

# %% [markdown]
# ## Exercises (练习)
#
# Try each one before opening its solution. The solutions are plain code: copy a
# solution into a new cell to run it.
#
# **1. Weight gradients.** Measure $\|\partial E / \partial W_l\|$ (the gradient that SGD
# actually applies to layer $l$) with `layer_grad_norms(..., wrt="weight")` for the
# 100-layer plain stack and the 1000-layer residual stack without BatchNorm (default
# initialization). The plain ratio is as tiny as before, but the residual one is close
# to 1. Does that mean the residual stack is fine? Look at the size of the gradients,
# and explain the ratio.
#
# <details>
# <summary>Solution 1</summary>
#
# The weight gradient of layer $l$ is a sum over the batch of outer products of
# $\partial E / \partial (\text{branch output})$, which grows towards the input by
# about 1.08 per layer, and the activation entering the layer's linear map, which grows
# towards the output at about the same rate: the forward signal explodes too (over the
# 1000 layers, by $2 \cdot 10^{32}$ against $6 \cdot 10^{32}$ for the gradient, as the
# solution prints). The two growths cancel in the ratio, but every weight gradient has
# a norm between $10^{32}$ and $10^{34}$: one SGD step would destroy the network.
#
# ```python
# import torch
#
# from d2l_resnet.gradients import layer_grad_norms, make_stack
#
# gen = torch.Generator().manual_seed(0)
# X = torch.randn(64, 64, generator=gen, dtype=torch.float64)
# y = torch.randint(0, 10, (64,), generator=gen)
# plain = layer_grad_norms(make_stack(100, dtype=torch.float64), X, y, wrt="weight")
# residual = layer_grad_norms(make_stack(1000, residual=True, dtype=torch.float64), X, y,
#                             wrt="weight")
# print(f"plain, 100 layers:     first/last = {plain[0] / plain[-1]:.1e}")
# print(f"residual, 1000 layers: first/last = {residual[0] / residual[-1]:.2f}, "
#       f"norms from {min(residual):.0e} to {max(residual):.0e}")
# assert plain[0] / plain[-1] < 1e-30
# assert 0.1 < residual[0] / residual[-1] < 10
# assert 1e32 < min(residual) and max(residual) < 1e34
#
# # The two growths: the input gradient towards the input, the activations towards the
# # output, across the 1000 layers.
# net = make_stack(1000, residual=True, dtype=torch.float64)
# grads = layer_grad_norms(net, X, y)
# with torch.no_grad():
#     x, sizes = net.stem(X), []
#     for layer in net.layers:
#         sizes.append(x.norm().item())
#         x = layer(x)
# backward, forward = grads[0] / grads[-1], sizes[-1] / sizes[0]
# print(f"||dE/dx_0|| / ||dE/dx_999|| = {backward:.0e} ({backward ** (1 / 999):.2f} per "
#       f"layer); ||x_999|| / ||x_0|| = {forward:.0e}")
# assert 0.1 < backward / forward < 10
# ```
#
# </details>
#
# **2. Small branches without BatchNorm.** Scale the weights and biases of every branch of
# the 1000-layer residual stack (without BatchNorm, default initialization) by
# $1/\sqrt{L}$ before measuring. What happens to the first-to-last ratio of
# $\|\partial E / \partial x_l\|$, and why? Is this Fixup?
#
# <details>
# <summary>Solution 2</summary>
#
# Each block now multiplies the squared gradient norm by about $1 + \frac{1}{6L}$
# instead of $1 + \frac{1}{6}$, and $(1 + \frac{1}{6L})^{L} \approx e^{1/6}$ stays
# bounded however deep the stack: the ratio of the norms drops from $6 \cdot 10^{32}$
# to about 1 (1.05 measured; the estimate gives $e^{1/12} \approx 1.09$), as the
# solution prints.
#
# It is not Fixup. Scaling each branch's output by $1/\sqrt{L}$ is the order of scale
# that Fixup arrives at, by another route: Fixup (Zhang, Dauphin and Ma 2019)
# initializes the last weight layer of each branch (and the classification layer) to
# zero, and rescales the other weight layers inside each branch by $L^{-1/(2m-2)}$,
# where $m$ is the number of weight layers per branch, so that their product scales by
# $L^{-1/2}$; it also adds a scalar multiplier and scalar biases to each branch. The
# branches of these stacks have a single weight layer ($m = 1$): it is the last one, and
# Fixup starts it at zero, as `zero_residual_branches` does.
#
# ```python
# import math
#
# import torch
#
# from d2l_resnet.gradients import layer_grad_norms, make_stack
#
# gen = torch.Generator().manual_seed(0)
# X = torch.randn(64, 64, generator=gen, dtype=torch.float64)
# y = torch.randint(0, 10, (64,), generator=gen)
# L = 1000
# before = layer_grad_norms(make_stack(L, residual=True, dtype=torch.float64), X, y)
# net = make_stack(L, residual=True, dtype=torch.float64)
# with torch.no_grad():
#     for layer in net.layers:
#         layer.linear.weight.mul_(1 / math.sqrt(L))
#         layer.linear.bias.mul_(1 / math.sqrt(L))
# after = layer_grad_norms(net, X, y)
# print(f"first/last: {before[0] / before[-1]:.0e} as built, {after[0] / after[-1]:.2f} "
#       f"with the branches scaled by 1/sqrt(L); e^(1/12) = {math.exp(1 / 12):.2f}")
# assert before[0] / before[-1] > 1e30
# assert 0.5 < after[0] / after[-1] < 2
# ```
#
# </details>
#
# **3. Degradation without convolutions.** Fully connected stacks degrade too. Take the
# stacks of the gradient measurements, with BatchNorm, on Fashion-MNIST images pooled to
# 14x14 (`fashion_mnist_features(2048)`, 196 features each) and train the 4-layer and
# the 48-layer plain stack and the 48-layer residual one (width 32) for 150 steps with
# `train_stack` (learning rate 0.05). Does the deep plain stack reach the loss of the
# shallow one? Is it the learning rate: try 0.01 and 0.002 for it.
#
# <details>
# <summary>Solution 3</summary>
#
# The 48-layer plain stack ends near 2 with each of the three learning rates (1.9 to
# 2.3, depending on the CPU), not far below the loss of guessing ($\ln 10 \approx 2.3$),
# while the 4-layer plain stack and the 48-layer residual one reach about 0.4 in the
# same 150 steps, as the solution prints. A smaller step does not help. (These stacks
# start with gradients that grow from layer to layer, as measured above for plain
# stacks with BatchNorm: in the 48-layer one the first layer's is some $10^{4}$ times
# the last one's, in its residual twin about 10 times.)
#
# ```python
# import math
#
# import torch
#
# from d2l_resnet.gradients import (fashion_mnist_features, layer_grad_norms, make_stack,
#                                   train_stack)
#
# torch.set_num_threads(1)
# X, y = fashion_mnist_features(2048, seed=0)
# runs = {"plain, 48 layers": (48, False, (0.05, 0.01, 0.002)),
#         "plain, 4 layers": (4, False, (0.05,)),
#         "residual, 48 layers": (48, True, (0.05,))}
# final = {}
# for name, (depth, residual, rates) in runs.items():
#     for lr in rates:
#         net = make_stack(depth, width=32, residual=residual, batch_norm=True,
#                          in_features=196, seed=0)
#         final[name, lr] = train_stack(net, X, y, 150, lr=lr, progress=False).final_loss()
#         print(f"{name:<20} lr {lr:<6} final training loss {final[name, lr]:.2f}")
# print(f"ln 10 = {math.log(10):.2f}")
# assert all(final["plain, 48 layers", lr] > 1.8 for lr in (0.05, 0.01, 0.002))
# assert final["plain, 4 layers", 0.05] < 0.5 and final["residual, 48 layers", 0.05] < 0.5
#
# for residual in (False, True):
#     net = make_stack(48, width=32, residual=residual, batch_norm=True, in_features=196,
#                      seed=0)
#     norms = layer_grad_norms(net, X[:128], y[:128])
#     print(f"{'residual' if residual else 'plain':<8} 48 layers at initialization: "
#           f"first/last gradient norm {norms[0] / norms[-1]:.0e}")
# ```
#
# </details>
#
# **4. A ReLU after the addition.** The original ResNet (and notebook 1's block) applies
# a ReLU after the sum: $x_{l+1} = \mathrm{ReLU}(x_l + \mathcal{F}(x_l))$. Build such
# blocks from the branches of a residual stack and check with autograd that eq. 4 no
# longer holds, and that each block's Jacobian is $D_l (I + J_l)$, where $D_l$ is the
# diagonal 0/1 matrix of the units the ReLU lets through. Why does that weaken the
# argument of eq. 5?
#
# <details>
# <summary>Solution 4</summary>
#
# The ReLU zeroes the negative units, so $x_L$ is no longer $x_0$ plus the branch
# outputs, and the identity term of each block is multiplied by $D_l$: the "1" of
# eq. 5 becomes a product of masks $D_{L-1} \cdots D_l$, which can cut the direct path
# for a unit. He et al. 2016 move the ReLU into the branch (pre-activation) for this
# reason.
#
# ```python
# import torch
#
# from d2l_resnet.gradients import block_jacobians, make_stack
#
# layers = make_stack(6, width=5, residual=True, in_features=5, seed=0,
#                     dtype=torch.float64).layers
# blocks = [lambda x, layer=layer: torch.relu(x + layer.branch(x)) for layer in layers]
# x0 = torch.randn(5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
# jacobians, x_last = block_jacobians(blocks, x0)
# x, branch_sum = x0, torch.zeros(5, dtype=torch.float64)
# for layer, J in zip(layers, jacobians, strict=True):
#     pre = x + layer.branch(x)
#     D = torch.diag((pre > 0).double())
#     J_branch = torch.autograd.functional.jacobian(layer.branch, x)
#     assert torch.allclose(J, D @ (torch.eye(5, dtype=torch.float64) + J_branch))
#     branch_sum = branch_sum + layer.branch(x)
#     x = torch.relu(pre).detach()
# print("eq. 4 holds:", torch.allclose(x_last, x0 + branch_sum))
# assert not torch.allclose(x_last, x0 + branch_sum)
# ```
#
# </details>

# %% tags=["nbval-ignore-output"]
from d2l_resnet import run_info

print(run_info())
