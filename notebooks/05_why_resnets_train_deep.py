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
# 2016). A plain stack of that depth is hopeless: as measured below, its gradient
# vanishes or explodes long before the thousandth layer. The course notebook ends
# with a three-line argument for why the shortcut makes the difference: "turn
# multiplication into addition". The argument is right in spirit, but it drops a
# partial sign, never says what $f$ and $g$ are, and blames the vanishing on a small
# loss, which is not the cause.
#
# This notebook
#
# 1. restates the argument with every symbol defined and every derivative correct,
# 2. derives its general form for a stack of $L$ residual blocks (He et al. 2016,
#    eq. 4-5) and contrasts it with the product that a plain stack gives,
# 3. checks each formula against PyTorch's autograd,
# 4. measures the gradient, layer by layer, in plain and residual stacks of 10 to 1000
#    layers, with and without BatchNorm, and
# 5. repeats the *degradation* experiment of He et al. 2015, Fig. 1, on a much smaller
#    scale. What is reproduced: on Fashion-MNIST, fully connected stacks with BatchNorm
#    reach a higher training loss the deeper they are (4, 16 and 48 layers), and their
#    residual twins, with the same layers and the same initial weights, do not. What is
#    not: Fig. 1 shows convolutional networks of 20 and 56 layers on CIFAR-10, trained
#    for tens of thousands of steps, with training *and* test error; here the networks
#    are small fully connected stacks trained for a few hundred steps, and only the
#    training loss is measured. The cause may differ too: He et al. report healthy
#    gradient norms in their plain networks, while the deep plain stack here starts with
#    gradients that differ by four orders of magnitude from its first layer to its last
#    (measured at the end of that section).

# %%
# %matplotlib inline
import math

import torch
import torch.nn.functional as F
from IPython.display import SVG

from d2l_resnet import get_profile, show_source
from d2l_resnet.extras.diagrams import preactivation_svg
from d2l_resnet.gradients import (
    StackBlock,
    block_jacobians,
    chain_jacobian,
    fashion_mnist_features,
    format_ratio,
    layer_grad_norms,
    make_stack,
    train_stack,
    zero_residual_branches,
)
from d2l_resnet.plot import family_styles, plot_grad_norms, plot_loss_panels

# The networks here are narrow (a few dozen units): one thread is as fast as several,
# and the numbers do not depend on how many cores the machine has.
torch.set_num_threads(1)
_ = torch.manual_seed(0)  # the same random numbers on every run
profile = get_profile()

# %% [markdown]
# ## The argument in the course notebook (原文的推导)
#
# The course notebook's last section reads (translated):
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
# - **$f$, $g$ and $w$ are never defined.** Below, $f$ is the lower part of the network
#   and holds the weight $w$; $g$ is the part stacked on top and does not depend on
#   $w$. Gradient descent also needs a loss $E$: it updates $w \leftarrow w - \eta
#   \frac{\partial E}{\partial w}$, not with $\frac{\partial y}{\partial w}$.
# - **"A small loss makes the gradient small" is not why gradients vanish.**
#   $\frac{\partial g(y)}{\partial y}$ is the Jacobian of the layers in $g$; it depends on
#   their weights and on where their activation functions operate (a saturated
#   $\tanh$ or sigmoid has a slope near 0), not on how good the prediction is. The loss
#   enters through a different factor, $\frac{\partial E}{\partial y^{\prime}}$, which
#   multiplies the gradient of *every* layer alike, in a plain and in a residual network.
#   Near a minimum all gradients are small, and that is as it should be. Vanishing
#   gradients are something else: the gradient of the *lower* layers is many orders of
#   magnitude smaller than that of the upper ones, because it is a product of many
#   Jacobians. It happens at initialization, before any training, when the loss is far
#   from small: the 100-layer plain stack measured below starts at 2.30, the loss of
#   guessing uniformly among 10 classes ($\ln 10$).

# %% [markdown]
# ## The chain rule, corrected (链式法则)
#
# Let $x$ be the input, $y = f(x; w)$ the output of the lower layers, which hold the
# weight $w$, and $g$ the layers on top (with weights of their own). The loss $E$ is a
# function of the network's output.
#
# **Plain stacking.** The output is $y^{\prime} = g(y) = g(f(x; w))$ and the chain rule
# gives a *product*:
#
# $$\frac{\partial y^{\prime}}{\partial w} = \frac{\partial g(y)}{\partial y}\,
# \frac{\partial y}{\partial w}, \qquad \frac{\partial E}{\partial w} = \frac{\partial
# E}{\partial y^{\prime}}\, \frac{\partial g(y)}{\partial y}\, \frac{\partial
# y}{\partial w}.$$
#
# If $g$ is itself $k$ layers, $g = g_k \circ \dots \circ g_1$, then $\frac{\partial
# g}{\partial y} = \frac{\partial g_k}{\partial y_{k-1}} \cdots \frac{\partial
# g_1}{\partial y}$ is a product of $k$ Jacobians. If each of them multiplies the
# length of every vector by at most $c < 1$ (its largest singular value is at most
# $c$), the gradient that reaches $w$ shrinks at least like $c^k$: it *vanishes*
# exponentially with depth. It *explodes* at least like $c^k$ if each Jacobian
# multiplies the length of every vector by at least $c > 1$, that is, if its *smallest*
# singular value is at least $c$. A largest singular value above 1 is not enough: a
# Jacobian can stretch one direction and crush another (a ReLU's own Jacobian is a
# diagonal matrix of 0s and 1s, singular as soon as one unit is off), and a product of
# such matrices can even be zero. Between the two bounds, the outcome depends on how
# the directions line up from layer to layer; the measurements below show both
# vanishing and exploding in real stacks. The two bounds, and the counterexample,
# checked on products of 20 random $8 \times 8$ matrices with chosen singular values:

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
# **Residual stacking.** The upper layers are added to a shortcut,
# $y^{\prime\prime} = y + g(y) = f(x; w) + g(f(x; w))$, and the derivative is a *sum*:
#
# $$\frac{\partial y^{\prime\prime}}{\partial w} = \frac{\partial y}{\partial w} +
# \frac{\partial g(y)}{\partial y}\, \frac{\partial y}{\partial w} = \Bigl(I +
# \frac{\partial g(y)}{\partial y}\Bigr) \frac{\partial y}{\partial w}.$$
#
# The second term is exactly the plain network's gradient $\frac{\partial
# y^{\prime}}{\partial w}$ (the source's step 3). The first term, $\frac{\partial
# y}{\partial w}$, is the lower layers' own gradient, and it arrives whatever $g$ does:
# even if $\frac{\partial g(y)}{\partial y}$ is nearly zero, $w$ still gets a useful
# gradient. ($I$ is the identity matrix; for scalars it is 1.)

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
# **The two-function case.** Take scalar "layers": $f(x; w) = \tanh(wx)$ and $g(y) =
# \tanh(vy)$ with $x = 1.5$, $w = 0.8$ and $v = 5$, large enough that $g$ saturates.
# By hand, $\frac{\partial y}{\partial w} = x\,(1 - \tanh^2(wx))$ and $\frac{\partial
# g}{\partial y} = v\,(1 - \tanh^2(vy))$. Autograd differentiates the composed
# functions; the formulas use only the two hand-derived pieces.

# %%
x = torch.tensor(1.5, dtype=torch.float64)
w = torch.tensor(0.8, dtype=torch.float64, requires_grad=True)
v = 5.0


def f(x, w):
    return torch.tanh(w * x)     # the lower layer, with the weight w


def g(y):
    return torch.tanh(v * y)     # the layer on top


y = f(x, w)
(d_plain,) = torch.autograd.grad(g(y), w, retain_graph=True)        # d y' / d w
(d_residual,) = torch.autograd.grad(y + g(y), w)                    # d y'' / d w

with torch.no_grad():
    dy_dw = x * (1 - torch.tanh(w * x) ** 2)      # by hand
    dg_dy = v * (1 - torch.tanh(v * y) ** 2)      # by hand
    plain_formula = dg_dy * dy_dw                 # product
    residual_formula = dy_dw + dg_dy * dy_dw      # sum

print(f"dy/dw = {dy_dw:.6f}   dg/dy = {dg_dy:.6f}")
print(f"plain    dy'/dw : autograd {d_plain:.6f}  (dg/dy)(dy/dw) = {plain_formula:.6f}  "
      f"equal: {torch.allclose(d_plain, plain_formula)}")
print(f"residual dy''/dw: autograd {d_residual:.6f}  dy/dw + (dg/dy)(dy/dw) = "
      f"{residual_formula:.6f}  equal: {torch.allclose(d_residual, residual_formula)}")
assert torch.allclose(d_plain, plain_formula)
assert torch.allclose(d_residual, residual_formula)

# %% [markdown]
# $g$ is saturated ($vy \approx 4.2$), so its slope is $0.0048$ and the plain
# gradient is about 200 times smaller than $\frac{\partial y}{\partial w}$. The residual
# gradient keeps $\frac{\partial y}{\partial w}$ whole and adds the small product to it.
# Nothing here involves a loss: the small factor is a property of the layer $g$.
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
# connected stacks (`make_stack`) of width 64 and depth $L$ = 10, 30, 100 and, for the
# residual ones, 1000: a linear stem, $L$ layers as above, and a linear classifier
# head, with PyTorch's default initialization and the same seed for a plain stack and
# its residual twin. One forward and backward pass of a batch of 64 random inputs with
# random labels (cross-entropy loss) gives $\|\partial E / \partial x_l\|$, the norm of
# the gradient with respect to the input of layer $l$, for every layer: the quantity of
# eq. 5. The computation is in float64. float32's smallest *normal* number is about
# $1.2 \cdot 10^{-38}$; below it, *subnormal* numbers keep fewer and fewer significant
# bits down to $1.4 \cdot 10^{-45}$, and anything smaller is 0. A deep plain stack's
# gradients go below that range (checked after the table).

# %%
show_source(layer_grad_norms)

# %%
gen = torch.Generator().manual_seed(0)
X_probe = torch.randn(64, 64, generator=gen, dtype=torch.float64)   # (N, features)
y_probe = torch.randint(0, 10, (64,), generator=gen)                  # (N,)

KINDS = {  # name: (residual, batch_norm)
    "plain": (False, False),
    "residual": (True, False),
    "plain + BN": (False, True),
    "residual + BN": (True, True),
}
DEPTHS = (10, 30, 100, 1000)
norms = {}
for kind, (residual, batch_norm) in KINDS.items():
    for L in DEPTHS:
        if L == 1000 and not residual:
            continue
        net = make_stack(L, width=64, residual=residual, batch_norm=batch_norm,
                         in_features=64, seed=0, dtype=torch.float64)
        norms[kind, L] = layer_grad_norms(net, X_probe, y_probe, wrt="input")


def ratio(kind, L):
    """Gradient norm at the first layer over the gradient norm at the last."""
    first, *_, last = norms[kind, L]
    return first / last


print("first-layer / last-layer gradient norm, ||dE/dx_0|| / ||dE/dx_{L-1}||")
print(f"{'':<15}" + "".join(f"{'L=' + str(L):>8}" for L in DEPTHS) + f"{'per layer':>11}")
for kind in KINDS:
    cells = "".join(f"{format_ratio(ratio(kind, L)) if (kind, L) in norms else '-':>8}"
                    for L in DEPTHS)
    per_layer = ratio(kind, 100) ** (1 / 99)    # geometric mean factor over 99 layers
    print(f"{kind:<15}{cells}{per_layer:>11.2f}")
loss0 = F.cross_entropy(make_stack(100, width=64, in_features=64, seed=0,
                                   dtype=torch.float64)(X_probe), y_probe).item()
print(f"loss of the 100-layer plain stack at initialization: {loss0:.2f} "
      f"(ln 10 = {math.log(10):.2f})")

# %% [markdown]
# The figure plots every layer's gradient norm against $L - l$, the number of layers the
# gradient has travelled back from the output, so the layer nearest the output is at
# the left and the first layer (marked with a dot) is at $x = L$. Plain stacks are
# drawn in orange (solid), residual ones in blue (dashed), the deeper the darker. Note
# the different y scales of the two panels.

# %%
panels, families = {"without BatchNorm": {}, "with BatchNorm": {}}, {}
for (kind, L), values in norms.items():
    family = kind.removesuffix(" + BN")
    label = f"{family}, L={L}"
    panels["with BatchNorm" if kind.endswith("BN") else "without BatchNorm"][label] = values
    families[label] = (family, L)
styles = {label: {**style, "marker": "o", "markevery": [0], "markersize": 4}
          for label, style in family_styles(families).items()}
fig = plot_grad_norms(panels, styles=styles, sharey=False)
fig

# %% [markdown]
# What the numbers say (one significant digit; the last column is the average factor
# per layer in the 100-layer stacks):
#
# - **Plain, without BatchNorm: the gradient vanishes.** Every layer multiplies it by
#   about 0.41, so the first of 100 layers receives $10^{-38}$ of what the last one
#   receives. The factor can be predicted: PyTorch's default initialization gives
#   weights of variance $1/(3 \cdot \text{width})$ and the ReLU passes half of the
#   units, so each layer scales the gradient's squared norm by about $\text{width}
#   \cdot \frac{1}{3\,\text{width}} \cdot \frac{1}{2} = \frac{1}{6}$, its norm by
#   $\sqrt{1/6} \approx 0.41$. The plain curves of all depths fall on one line: the
#   damage depends only on how many layers the gradient crosses. For 1000 layers the
#   rule predicts $\sqrt{1/6}^{\,999} \approx 10^{-389}$, and the rate measured over
#   100 layers, carried on to 1000, gives $10^{-382}$: both far below the smallest
#   positive float64, about $5 \cdot 10^{-324}$, so that stack is left out (computed in
#   the cell below).
# - **Residual, without BatchNorm: the gradient does not vanish, but at 1000 layers it
#   explodes.** Each block multiplies by $I + J_i$ instead of $J_i$; with this
#   initialization that is a factor of about 1.08 per layer, harmless for 30 layers and
#   $6 \cdot 10^{32}$ over 1000. The shortcut removes the vanishing, not every problem:
#   very deep residual networks also need the branches to start small, which BatchNorm
#   (below), zero-initialized last layers (`zero_residual_branches`, and torchvision's
#   `zero_init_residual`) or a branch scale of order $1/\sqrt{L}$ (Fixup, Zhang et al.
#   2019) provide.
# - **Plain, with BatchNorm: no vanishing either, but growth.** BatchNorm keeps every
#   layer's activations at unit scale, and the gradient grows by about 1.2 per layer:
#   $3 \cdot 10^{8}$ across 100 layers. He et al. (2015, Sec. 4.1) checked that their
#   plain networks with BatchNorm do not suffer from *vanishing* gradients, and that is
#   what we see; Yang et al. (2019) showed that deep plain networks with BatchNorm have
#   *exploding* gradients at initialization, which is what we see too.
# - **Residual, with BatchNorm: balanced.** The ratio grows only slowly with depth: a
#   factor of 3 across 10 layers and of 80 across 1000, while 100 plain layers give
#   $10^{-38}$ or $3 \cdot 10^{8}$. Each branch normalizes its input and adds a signal
#   of fixed scale, so $x_l$ grows with $l$ (20-fold over 1000 layers, measured below)
#   and each later branch changes it relatively less: the blocks stay close to the
#   identity. The slight rise at the input end ($L - l$ near $L$) comes from the first
#   layers, whose inputs are the smallest: BatchNorm divides by their scale, so their
#   branches pass back the largest gradients.
#
# The ranges of the two floating-point types, the 1000-layer extrapolation, and the
# 100-layer plain stack's first-layer gradient in float64:

# %%
tiny32, tiny64 = torch.finfo(torch.float32).tiny, torch.finfo(torch.float64).tiny
sub32 = torch.nextafter(torch.tensor(0.0), torch.tensor(1.0)).item()
sub64 = torch.nextafter(torch.tensor(0.0, dtype=torch.float64),
                        torch.tensor(1.0, dtype=torch.float64)).item()
print(f"float32: smallest normal {tiny32:.1e}, smallest subnormal {sub32:.1e}")
print(f"float64: smallest normal {tiny64:.1e}, smallest subnormal {sub64:.1e}")
predicted = 999 * math.log10(math.sqrt(1 / 6))             # log10 of sqrt(1/6)^999
extended = 999 / 99 * math.log10(ratio("plain", 100))      # the 100-layer rate, 999 layers
print(f"1000 plain layers: sqrt(1/6)^999 = 10^{predicted:.0f}; measured rate carried on: "
      f"10^{extended:.0f}; smallest float64: 10^{math.log10(sub64):.0f}")
assert max(predicted, extended) < math.log10(sub64)
first64 = norms["plain", 100][0]
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
assert ratio("plain", 100) < 1e-30                   # vanishes
assert ratio("residual", 30) < 1e2                   # fine at moderate depth...
assert ratio("residual", 1000) > 1e20                # ...explodes at 1000 without BN
assert ratio("plain + BN", 100) > 1e6                # BN: no vanishing, but growth
assert all(1 < ratio("residual + BN", L) < 1e3 for L in DEPTHS)
assert abs(ratio("plain", 100) ** (1 / 99) - math.sqrt(1 / 6)) < 0.01

identity_stack = zero_residual_branches(make_stack(1000, width=64, residual=True,
                                                   in_features=64, dtype=torch.float64))
zeroed = layer_grad_norms(identity_stack, X_probe, y_probe)
print("1000 residual layers, branches zeroed: every layer gets the same gradient:",
      all(v == zeroed[-1] for v in zeroed))
assert all(v == zeroed[-1] for v in zeroed)

# %% [markdown]
# ## Degradation, small scale (退化问题)
#
# He et al. (2015, Fig. 1) found that a 56-layer plain network has a *higher training
# error* than a 20-layer one on CIFAR-10. That is not overfitting (the training error
# itself is worse) and, with BatchNorm, not vanishing gradients: the deeper network is
# simply harder to optimize, although it could in principle copy the shallower one and
# set its extra layers to the identity. Their residual networks do not degrade (Fig. 4
# and 6 of the same paper).
#
# A much smaller version of the experiment: fully connected, not convolutional, and
# trained briefly, measuring the training loss only. Plain stacks of 4, 16 and 48 layers,
# width 32, with BatchNorm (as the plain networks of the paper), and their residual
# twins, each trained with the same seed on the same minibatches of a Fashion-MNIST
# subset, with SGD (learning rate 0.05, momentum 0.9, batches of 128). The images are
# average-pooled to 14x14 and flattened to 196 features, which keeps a 48-layer stack
# fast on a CPU. The `quick` profile trains for fewer steps on fewer examples than
# `course`.

# %%
show_source(train_stack)

# %% tags=["nbval-ignore-output"]
NUM_EXAMPLES = 2048 if profile.quick else 8192
NUM_STEPS = 120 if profile.quick else 600
TRAIN_DEPTHS = (4, 16, 48)

X_train, y_train = fashion_mnist_features(NUM_EXAMPLES, seed=0)   # (n, 196), (n,)
print(f"profile {profile.name}: {NUM_EXAMPLES} training images, {NUM_STEPS} steps")
histories = {}
for residual in (False, True):
    for L in TRAIN_DEPTHS:
        kind = "residual" if residual else "plain"
        net = make_stack(L, width=32, residual=residual, batch_norm=True, in_features=196,
                         num_classes=10, seed=0)
        histories[kind, L] = train_stack(net, X_train, y_train, NUM_STEPS, batch_size=128,
                                         lr=0.05, momentum=0.9, seed=0,
                                         name=f"{kind}, {L} layers")

# %% tags=["nbval-ignore-output"]
final = {key: h.final_loss(last=20) for key, h in histories.items()}
print("training loss, mean of the last 20 steps")
print(f"{'':<10}" + "".join(f"{str(L) + ' layers':>11}" for L in TRAIN_DEPTHS))
for kind in ("plain", "residual"):
    print(f"{kind:<10}" + "".join(f"{final[kind, L]:>11.3f}" for L in TRAIN_DEPTHS))
shallow, deep = TRAIN_DEPTHS[0], TRAIN_DEPTHS[-1]
assert final["plain", deep] > final["plain", shallow] + 0.5      # deeper plain: worse
assert final["plain", 16] > final["plain", shallow] + 0.1
assert final["residual", deep] < final["plain", deep] - 0.5      # residual twin: fine
assert final["residual", deep] < final["plain", shallow] + 0.15  # as good as shallow
if not profile.quick:     # the course run, as the text below describes it
    assert final["plain", 16] > 1.5 * final["plain", shallow]
    assert final["plain", deep] > 1.8

# %% tags=["nbval-ignore-output"]
DEPTH_COLORS = {4: "tab:blue", 16: "tab:green", 48: "tab:red"}
loss_panels = {kind: {f"{L} layers": histories[kind, L].losses for L in TRAIN_DEPTHS}
               for kind in ("plain", "residual")}
fig = plot_loss_panels(loss_panels, window=10,
                       styles={f"{L} layers": {"color": c} for L, c in DEPTH_COLORS.items()})
fig

# %% [markdown]
# The plain stacks degrade with depth, as in He et al.'s Fig. 1: in the course run the
# 16-layer plain stack ends with nearly twice the training loss of the 4-layer one, and
# the 48-layer one hardly learns at all (it ends at 2.0, not far below $\ln 10 \approx
# 2.3$, the loss of guessing among 10 classes). The residual twins, with exactly the
# same layers and the same initial weights, all train about as well as the shallowest
# network. Here, extra residual layers do not make the network harder to
# optimize: each block can stay close to the identity, and eq. 5 gives every layer a
# direct path to the loss.
#
# The measurement of the previous section suggests one reason why the deep plain stack
# fails here. Measured the same way, at initialization, on the first 128 training
# images (the same images in every profile), the gradients of the 48-layer plain stack
# and of its residual twin:

# %%
for residual in (False, True):
    net = make_stack(48, width=32, residual=residual, batch_norm=True, in_features=196,
                     seed=0)
    g48 = layer_grad_norms(net, X_train[:128], y_train[:128])
    kind = "residual" if residual else "plain"
    print(f"{kind:<8} 48 layers: ||dE/dx_0|| / ||dE/dx_47|| = {format_ratio(g48[0] / g48[-1])}")

# %% [markdown]
# In the plain stack the first layer receives a gradient some $10^{4}$ times larger than
# the last one, so no single learning rate suits all of its layers; in the residual twin
# the two differ by a factor of about 10. This is one difference from He et al. (2015),
# who verified that the gradients of their plain networks with BatchNorm have healthy
# norms, and conjecture that deep plain networks converge exponentially slowly.
# Exercise 3 tries smaller learning rates.

# %% [markdown]
# ## Summary (小结)
#
# - Plain stacking composes layers, so the chain rule multiplies their Jacobians:
#   $\frac{\partial y^{\prime}}{\partial w} = \frac{\partial g}{\partial y}
#   \frac{\partial y}{\partial w}$. Over many layers the product can vanish or explode
#   exponentially, whatever the loss.
# - A residual connection adds: $\frac{\partial y^{\prime\prime}}{\partial w} =
#   \frac{\partial y}{\partial w} + \frac{\partial g}{\partial y}\frac{\partial
#   y}{\partial w}$, and for a whole stack (He et al. 2016, eq. 5) $\frac{\partial
#   E}{\partial x_l} = \frac{\partial E}{\partial x_L}\bigl(1 +
#   \frac{\partial}{\partial x_l}\sum_i \mathcal{F}(x_i)\bigr)$: every layer gets the
#   gradient of the output directly. Autograd agrees with all of these formulas.
# - Measured at initialization: 100 plain layers pass $10^{-38}$ of the gradient to
#   their first layer (about 0.41 per layer); with BatchNorm the gradient grows instead
#   ($3 \cdot 10^{8}$). Residual stacks with BatchNorm stay within a factor of 80 even at 1000
#   layers; without BatchNorm, 1000 residual layers at the default initialization
#   explode, which is why deep ResNets keep their branches small at the start.
# - Trained briefly on Fashion-MNIST, deeper fully connected plain stacks reach a higher
#   training loss than shallower ones (degradation, on a much smaller scale than He et
#   al.'s Fig. 1), and their residual twins do not.
#
# ## References (参考文献)
#
# - K. He, X. Zhang, S. Ren, J. Sun. *Deep Residual Learning for Image Recognition.*
#   CVPR 2016, arXiv:1512.03385 (2015). Fig. 1: the degradation problem; Sec. 4.2: a
#   1202-layer network.
# - K. He, X. Zhang, S. Ren, J. Sun. *Identity Mappings in Deep Residual Networks.*
#   ECCV 2016, arXiv:1603.05027. Eq. 4-5: the propagation formulas; a 1001-layer network.
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
# 100-layer plain stack and the 1000-layer residual stack without BatchNorm. The plain
# ratio is as tiny as before, but the residual one is close to 1. Does that mean the
# residual stack is fine? Look at the size of the gradients, and explain the ratio.
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
#       f"smallest norm {min(residual):.1e}")
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
# print(f"||dE/dx_0|| / ||dE/dx_999|| = {backward:.0e}; ||x_999|| / ||x_0|| = {forward:.0e}")
# assert 0.1 < backward / forward < 10
# ```
#
# </details>
#
# **2. Small branches without BatchNorm.** Scale the weights and biases of every branch of
# the 1000-layer residual stack (without BatchNorm) by $1/\sqrt{L}$ before measuring.
# What happens to the first-to-last ratio of $\|\partial E / \partial x_l\|$, and why?
#
# <details>
# <summary>Solution 2</summary>
#
# Each block now multiplies the squared gradient norm by about $1 + \frac{1}{6L}$
# instead of $1 + \frac{1}{6}$, and $(1 + \frac{1}{6L})^{L} \approx e^{1/6}$ stays
# bounded however deep the stack: the ratio drops from $6 \cdot 10^{32}$ to about 1. This is
# the idea behind Fixup and behind zero-initializing each branch's last layer.
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
# net = make_stack(L, residual=True, dtype=torch.float64)
# with torch.no_grad():
#     for layer in net.layers:
#         layer.linear.weight.mul_(1 / math.sqrt(L))
#         layer.linear.bias.mul_(1 / math.sqrt(L))
# norms = layer_grad_norms(net, X, y)
# print(f"first/last = {norms[0] / norms[-1]:.2f}")
# assert 0.5 < norms[0] / norms[-1] < 2
# ```
#
# </details>
#
# **3. Is it the learning rate?** Train the 48-layer plain stack of the degradation
# experiment with learning rates 0.01 and 0.002 instead of 0.05 (150 steps on 2048
# images are enough to see it). Does it catch up with the 4-layer one?
#
# <details>
# <summary>Solution 3</summary>
#
# No: with each of the three learning rates it ends near 2, not far below the loss of
# guessing ($\ln 10 \approx 2.3$), while the 4-layer plain stack and the 48-layer
# residual one reach about 0.4 in the same 150 steps. A smaller step does not fix
# gradients that differ by orders of magnitude from one layer to the next.
#
# ```python
# import torch
#
# from d2l_resnet.gradients import fashion_mnist_features, make_stack, train_stack
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
# assert all(final["plain, 48 layers", lr] > 1.9 for lr in (0.05, 0.01, 0.002))
# assert final["plain, 4 layers", 0.05] < 0.5 and final["residual, 48 layers", 0.05] < 0.5
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
