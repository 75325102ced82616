r"""The chapter *Generating Images with Recurrent Adversarial Networks* (Im, Kim, Jiang &
Memisevic, 2016): the recurrent generator (GRAN), its training as the authors' code does it,
and battles between trained models by the generative adversarial metric (GAM).

The networks are in :mod:`~papernotes_core.gran.model`, the authors' variant of Adam in
:mod:`~papernotes_core.gran.optim`; the metric is :func:`papernotes_core.evaluation.gam_battle`.
This module holds the study: :class:`Config` (quick / cpu / paper), :func:`train_model` (one
model, one seed, checkpointed), :func:`run` (every model over the seeds, then the battles) and
the command line.

Training, as ``main_granI_cifar10.py`` with ``optimize_gan.py`` and ``gran.py`` do it: for each
minibatch of data, one discriminator step on

.. math::

    L_D = \mathrm{BCE}(D(x), 1) + \mathrm{BCE}(D(G(z)), 0)
          + \lambda\, \tfrac12 (\lVert W \rVert^2 + \lVert W_y \rVert^2)

with fresh :math:`z \sim \mathcal N(0, I)`, then one generator step on
:math:`L_G = \mathrm{BCE}(D(G(z')), 1) = -\log D(G(z'))` with another fresh :math:`z'`; each
player has its own learning rate (discriminator :math:`4 \cdot 10^{-5}`, generator
:math:`10^{-4}`), divided by :math:`1 + e/50` in epoch :math:`e`, and its own
:class:`~papernotes_core.gran.optim.AuthorsAdam`. The losses are the GAN chapter's
(:func:`papernotes_core.gan.discriminator_loss`, :func:`papernotes_core.gan.generator_loss`
with ``"non_saturating"``); the data are scaled to :math:`[0, 1]`.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import evaluation, results, runtime, training
from .. import gan as gan_chapter
from .model import ConvDecoder, ConvDiscriminator, ConvEncoder, GRANGenerator, base_size, count_parameters
from .optim import AuthorsAdam

__all__ = ["BATTLES", "MODELS", "PAPER", "SLUG", "AuthorsAdam", "Config", "ConvDecoder", "ConvDiscriminator",
           "ConvEncoder", "GRANGenerator", "base_size", "build", "count_parameters", "dcgan_width_for", "load_data",
           "main", "read_samples", "run", "sample", "train_model"]

SLUG = "gran"
#: model name -> number of steps T (0: the DCGAN baseline, one step and no encoder)
MODELS = {"gran_t1": 1, "gran_t3": 3, "gran_t5": 5, "dcgan": 0}
#: the battles of the study, (M1, M2)
BATTLES = (("gran_t3", "dcgan"), ("gran_t5", "dcgan"), ("gran_t1", "gran_t3"), ("gran_t1", "gran_t5"),
           ("gran_t3", "gran_t5"))
DATASETS = ("mnist", "cifar10", "lsun")


@dataclass(frozen=True)
class Config:
    """Every knob of the study; ``quick()``, ``cpu()``, ``paper_cifar10()`` / ``paper_lsun()`` /
    ``paper()`` give the scales.

    ``models``: which of :data:`MODELS` to train (each over ``seeds``); ``width``: the decoder's
    last hidden feature maps (the authors' ``ckern``; their 28×28 generator has 128 there and
    256 in the first map); ``disc_widths``, ``disc_hidden``: the discriminator's conv maps and
    tanh units (the authors' ``convnet28``: 80, 40 and 100); ``kernel``: conv size (5);
    ``dcgan_width``: the DCGAN baseline's width, ``None`` to match the parameter count of the
    GRAN generator with ``dcgan_match_steps`` steps (:func:`dcgan_width_for`). Optimisation:
    ``lr_d``, ``lr_g``, ``lr_decay_epochs`` (:math:`\\eta / (1 + e / n)`), ``weight_decay``
    (:math:`\\lambda`), ``batch_size``, ``epochs``, ``train_limit`` (first n training images).
    Evaluation: ``n_samples`` per generator and ``test_images`` for the battles, judged in
    chunks of ``judge_batch`` (batch norm uses the chunk's statistics), ``n_boot`` bootstrap
    replicates.
    """

    dataset: str = "mnist"
    models: tuple[str, ...] = ("gran_t1", "gran_t3", "gran_t5", "dcgan")
    seeds: tuple[int, ...] = (0, 1, 2)
    z_dim: int = 100
    width: int = 24
    disc_widths: tuple[int, ...] = (40, 20)
    disc_hidden: int = 100
    kernel: int = 5
    dcgan_width: int | None = None
    dcgan_match_steps: int = 3
    batch_size: int = 100
    lr_d: float = 4e-5
    lr_g: float = 1e-4
    lr_decay_epochs: float = 50.0
    weight_decay: float = 5e-6
    epochs: int = 4
    train_limit: int | None = None
    n_samples: int = 10_000
    test_images: int | None = None
    judge_batch: int = 1000
    n_boot: int = 1000
    snapshot_steps: int = 6
    threads: int | None = None
    checkpoint: bool = True

    def __post_init__(self):
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {DATASETS}, got {self.dataset!r}")
        if not self.models or any(m not in MODELS for m in self.models):
            raise ValueError(f"models must be a non-empty tuple of {tuple(MODELS)}, got {self.models!r}")
        if not self.seeds or not all(isinstance(s, int) and s >= 0 for s in self.seeds):
            raise ValueError(f"seeds must be a non-empty tuple of ints >= 0, got {self.seeds!r}")
        for name in ("z_dim", "width", "disc_hidden", "kernel", "batch_size", "epochs", "n_samples", "judge_batch",
                     "n_boot", "snapshot_steps", "dcgan_match_steps"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an int >= 1, got {v!r}")
        for name in ("dcgan_width", "train_limit", "test_images", "threads"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise ValueError(f"{name} must be an int >= 1 or None, got {v!r}")
        for name in ("lr_d", "lr_g", "lr_decay_epochs"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ValueError(f"{name} must be a number > 0, got {v!r}")
        if not (isinstance(self.weight_decay, (int, float)) and self.weight_decay >= 0):
            raise ValueError(f"weight_decay must be a number >= 0, got {self.weight_decay!r}")
        if self.train_limit is not None and self.train_limit < self.batch_size:
            raise ValueError(f"train_limit ({self.train_limit}) must be at least batch_size ({self.batch_size})")
        size, _ = _image_shape(self.dataset)
        base_size(size, _layers(self.dataset))
        base_size(size, len(self.disc_widths))

    @classmethod
    def quick(cls) -> "Config":
        """CI scale: GRAN (T = 3) and the DCGAN only, one seed, a narrower generator (width
        16), one pass over the first 6,000 training images (60 steps each), 1,000 samples
        against 1,000 test images. Enough to check the code and the battle, not to judge the
        models."""
        return cls(models=("gran_t3", "dcgan"), seeds=(0,), width=16, epochs=1, train_limit=6_000, n_samples=1000,
                   test_images=1000, n_boot=500, threads=1, checkpoint=False)

    @classmethod
    def cpu(cls) -> "Config":
        """Two CPU cores: MNIST (our configuration: the authors have no MNIST script), GRAN with
        T = 1, 3, 5 and the DCGAN of equal parameter count, 3 seeds each, the authors' learning
        rates, optimiser and update; the networks are the authors' 28×28 ones made narrower
        (generator maps 48 / 24 against their 256 / 128, discriminator maps 40 / 20 against
        80 / 40), 4 epochs; the battles on 10,000 samples and the 10,000 test images. One
        thread per process: about 0.25 s per step, 50 minutes on two cores."""
        return cls(threads=1)

    @classmethod
    def paper_cifar10(cls) -> "Config":
        """The authors' ``main_granI_cifar10.py`` at the repository's last commit: CIFAR-10
        32×32 in [0, 1], T = 5 (an earlier commit had 3), ``num_z`` 100, generator maps
        1024 → 512 → 256 → 3 from a 4×4 start (``ckern`` 128 × [8, 4, 2, 1]), discriminator
        ``convnet_cuda32``'s 1024 → 512 → 256 maps and 100 tanh units, batch 100, learning
        rates 4e-5 (D) and 1e-4 (G) divided by 1 + e/50, λ = 5e-6, and 21 passes (their loop
        runs ``num_epoch + 1`` = 21). Against the DCGAN of equal parameter count. For a GPU."""
        return cls(dataset="cifar10", models=("gran_t5", "dcgan"), seeds=(0,), width=256, disc_widths=(1024, 512, 256),
                   disc_hidden=100, dcgan_match_steps=5, epochs=21, n_samples=10_000)

    @classmethod
    def paper_lsun(cls) -> "Config":
        """The authors' ``main_granI_lsun.py``: 64×64 images, T = 5, generator maps
        1376 → 688 → 344 → 172 → 3 from a 4×4 start, discriminator ``convnet64`` with
        ``ckern`` 384 × [8, 4, 2, 1] maps (3072 → 1536 → 768 → 384), learning rates 1e-4 (D)
        and 2e-4 (G) divided by 1 + e/25, λ = 1e-5 (their ``lam1`` is never passed, so the
        default applies), 16 passes (``num_epoch`` 15, plus one). For a GPU, and the LSUN
        images (no offline source or pinned download: see :func:`load_data`)."""
        return cls(dataset="lsun", models=("gran_t5", "dcgan"), seeds=(0,), width=172,
                   disc_widths=(3072, 1536, 768, 384), disc_hidden=100, dcgan_match_steps=5, lr_d=1e-4, lr_g=2e-4,
                   lr_decay_epochs=25.0, weight_decay=1e-5, epochs=16, n_samples=10_000)

    @classmethod
    def paper(cls) -> "Config":
        """``paper_cifar10()``."""
        return cls.paper_cifar10()


def _image_shape(dataset: str) -> tuple[int, int]:
    return {"mnist": (28, 1), "cifar10": (32, 3), "lsun": (64, 3)}[dataset]


def _layers(dataset: str) -> int:
    return {"mnist": 2, "cifar10": 3, "lsun": 4}[dataset]


def dcgan_width_for(config: Config) -> int:
    """The DCGAN baseline's width: ``config.dcgan_width``, or the width whose generator has the
    parameter count closest to the GRAN generator with ``dcgan_match_steps`` steps."""
    if config.dcgan_width is not None:
        return config.dcgan_width
    size, ch = _image_shape(config.dataset)
    kw = dict(z_dim=config.z_dim, image_size=size, channels=ch, layers=_layers(config.dataset), kernel=config.kernel)
    def params(steps, width, dcgan):
        with torch.device("meta"):                      # counts without allocating
            return count_parameters(GRANGenerator(steps, width=width, dcgan=dcgan, **kw))

    target = params(config.dcgan_match_steps, config.width, False)
    lo, hi = 1, 8 * config.width                        # the count grows with the width
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if params(1, mid, True) < target else (lo, mid)
    return min((lo, hi), key=lambda w: abs(params(1, w, True) - target))


def build(config: Config, model: str, seed: int, device=None) -> tuple[GRANGenerator, ConvDiscriminator]:
    """The generator and discriminator of ``model`` (a key of :data:`MODELS`), seeded by ``seed``."""
    if model not in MODELS:
        raise ValueError(f"model must be one of {tuple(MODELS)}, got {model!r}")
    size, ch = _image_shape(config.dataset)
    torch.manual_seed(seed)
    steps = MODELS[model]
    kw = dict(z_dim=config.z_dim, image_size=size, channels=ch, layers=_layers(config.dataset), kernel=config.kernel)
    g = (GRANGenerator(1, width=dcgan_width_for(config), dcgan=True, **kw) if steps == 0
         else GRANGenerator(steps, width=config.width, **kw))
    d = ConvDiscriminator(size, ch, config.disc_widths, config.disc_hidden, config.kernel)
    device = device or runtime.device()
    return g.to(device), d.to(device)


def load_data(config: Config) -> dict:
    """Images as float32 ``(n, c, s, s)`` in [0, 1]: ``{"train", "test"}``.

    MNIST and CIFAR-10 come through :mod:`papernotes_core.data` (pinned downloads); CIFAR-10
    trains on all 50,000 training images (our train and valid splits). LSUN has no
    offline source and no pinned download here: put a float32 array ``(n, 3, 64, 64)`` in
    [0, 1] at ``<PAPERNOTES_DATA>/lsun64.npy`` (e.g. the church-outdoor training images,
    resized), else a ``FileNotFoundError`` says so."""
    from .. import data

    if config.dataset == "mnist":
        sp = data.load_mnist()
        train, test = torch.as_tensor(sp.train.x).reshape(-1, 1, 28, 28), torch.as_tensor(sp.test.x).reshape(-1, 1, 28, 28)
    elif config.dataset == "cifar10":
        sp = data.load_cifar10()                        # float32 in [0, 1] already
        train = torch.as_tensor(np.concatenate([sp.train.x, sp.valid.x])).reshape(-1, 3, 32, 32)
        test = torch.as_tensor(sp.test.x).reshape(-1, 3, 32, 32)
    else:
        path = runtime.data_dir() / "lsun64.npy"
        if not path.exists():
            raise FileNotFoundError(f"LSUN has no offline source: put a float32 array (n, 3, 64, 64) in [0, 1] at "
                                    f"{path} (e.g. LSUN church-outdoor resized to 64x64)")
        arr = torch.as_tensor(np.load(path))
        if arr.dim() != 4 or tuple(arr.shape[1:]) != (3, 64, 64):
            raise ValueError(f"{path} must hold (n, 3, 64, 64) images, got {tuple(arr.shape)}")
        train, test = arr[:-10_000], arr[-10_000:]
    if config.train_limit is not None:
        train = train[:config.train_limit]
    if config.test_images is not None:
        test = test[:config.test_images]
    return {"train": train.float().contiguous(), "test": test.float().contiguous()}


_RUN_FIELDS = ("dataset", "z_dim", "width", "disc_widths", "disc_hidden", "kernel", "dcgan_width", "dcgan_match_steps",
               "batch_size", "lr_d", "lr_g", "lr_decay_epochs", "weight_decay", "epochs", "train_limit")


def _checkpoint_path(config: Config, model: str, seed: int) -> Path:
    fields = {k: getattr(config, k) for k in _RUN_FIELDS}
    key = hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:10]
    return runtime.checkpoints_dir() / SLUG / f"{model}-seed{seed}-{key}.pt"


def _noise(n: int, dim: int, gen: torch.Generator, device) -> torch.Tensor:
    return torch.randn(n, dim, generator=gen).to(device)


def train_model(config: Config, model: str, seed: int, x_train: torch.Tensor, *, device=None,
                progress: bool = True) -> dict:
    r"""Train one model (module docstring) for ``config.epochs``; returns ``{"G", "D", "curves",
    "seconds"}`` with per-epoch mean ``loss_d`` (without the weight penalty), ``loss_g``,
    ``d_real`` and ``d_fake`` (the discriminator's mean output on the epoch's real and generated
    batches). With ``config.checkpoint`` the state is saved after every epoch and a killed run
    resumes there (bit for bit on the CPU)."""
    device = device or runtime.device()
    g, d = build(config, model, seed, device)
    opt_g, opt_d = AuthorsAdam(g.parameters(), config.lr_g), AuthorsAdam(d.parameters(), config.lr_d)
    sampler = training.EpochSampler(len(x_train), config.batch_size, seed=seed, drop_last=True)
    spe = sampler.steps_per_epoch
    noise = torch.Generator().manual_seed(10_000 + seed)
    curves = {"loss_d": [], "loss_g": [], "d_real": [], "d_fake": []}
    epoch, seconds = 0, 0.0
    path = _checkpoint_path(config, model, seed) if config.checkpoint else None
    if path is not None and path.exists():
        saved = training.load_checkpoint(path, map_location="cpu")
        g.load_state_dict(saved["G"]), d.load_state_dict(saved["D"])
        opt_g.load_state_dict(saved["opt_g"]), opt_d.load_state_dict(saved["opt_d"])
        noise.set_state(saved["noise"])
        epoch, seconds = int(saved["epoch"]), float(saved["seconds"])
        curves = {k: [list(p) for p in v] for k, v in saved["curves"].items()}
    x_train = x_train.to(device)
    bar = training.progress(total=config.epochs * spe, initial=epoch * spe, desc=model, disable=not progress)
    t0 = time.perf_counter()
    for e in range(epoch, config.epochs):
        for opt, lr in ((opt_d, config.lr_d), (opt_g, config.lr_g)):
            for group in opt.param_groups:
                group["lr"] = lr / (1.0 + e / config.lr_decay_epochs)
        g.train(), d.train()
        sums = np.zeros(4)
        for i in range(spe):
            step = e * spe + i
            x = x_train[torch.as_tensor(sampler.indices(step), device=device)]
            with torch.no_grad():
                fake = g(_noise(config.batch_size, config.z_dim, noise, device))
            a_real, a_fake = d(x), d(fake)
            loss_d = gan_chapter.discriminator_loss(a_real, a_fake)
            opt_d.zero_grad(set_to_none=True)
            (loss_d + config.weight_decay * d.weight_decay()).backward()
            opt_d.step()
            loss_g = gan_chapter.generator_loss(d(g(_noise(config.batch_size, config.z_dim, noise, device))))
            opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
            opt_g.step()
            sums += [training.check_finite(loss_d.detach(), step), training.check_finite(loss_g.detach(), step),
                     float(torch.sigmoid(a_real.detach()).mean()), float(torch.sigmoid(a_fake.detach()).mean())]
            bar.update(1)
        for k, v in zip(curves, sums / spe):
            curves[k].append([e + 1, float(v)])
        if path is not None:
            training.save_checkpoint(path, {
                "G": g.state_dict(), "D": d.state_dict(), "opt_g": opt_g.state_dict(), "opt_d": opt_d.state_dict(),
                "noise": noise.get_state(), "epoch": e + 1, "seconds": seconds + time.perf_counter() - t0,
                "curves": curves})
    bar.close()
    seconds += time.perf_counter() - t0
    return {"G": g.eval(), "D": d.eval(), "curves": curves, "seconds": seconds}


def sample(generator: GRANGenerator, n: int, *, seed: int, batch_size: int = 1000,
           return_steps: bool = False):
    """``n`` images from ``generator`` (on the CPU), :math:`z \\sim \\mathcal N(0, I)` drawn from
    ``seed``, in batches of ``batch_size`` (batch norm uses each batch's statistics, as in
    training); with ``return_steps`` also the canvas after each step, ``(T, n, c, s, s)``."""
    if not isinstance(generator, GRANGenerator):
        raise TypeError(f"generator must be a GRANGenerator, got {type(generator).__name__}")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an int >= 1, got {n!r}")
    device = next(generator.parameters()).device
    z = torch.randn(n, generator.z_dim, generator=torch.Generator().manual_seed(seed))
    out, steps = [], []
    with torch.no_grad():
        for s in range(0, n, batch_size):
            x, st = generator(z[s:s + batch_size].to(device), return_steps=True)
            out.append(x.cpu())
            if return_steps:
                steps.append(st.cpu())
    if return_steps:
        return torch.cat(out), torch.cat(steps, 1)
    return torch.cat(out)


PAPER = {
    # filled from the paper's tables in the chapter (see book/gran.md); values checked there
}


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    return (x.clamp(0, 1) * 255).round().to(torch.uint8).numpy()


def _write_samples(arrays: dict, scale: str, results_dir=None) -> Path:
    folder = Path(results_dir if results_dir is not None else runtime.results_out_dir())
    return training.write_atomic(folder / scale / f"{SLUG}_samples.npz",
                                 lambda f: np.savez_compressed(f, **arrays))


def read_samples(scale: str, results_dir=None) -> dict:
    """What a run kept for the figures (``results/<scale>/gran_samples.npz``):
    ``"<model>.seed<s>"`` → uint8 ``(36, c, s, s)`` samples and ``"<model>.seed<s>.steps"`` →
    uint8 ``(T, 8, c, s, s)`` canvases after each step."""
    folder = results_dir if results_dir is not None else runtime.results_dir()
    with np.load(Path(folder) / runtime.check_scale(scale) / f"{SLUG}_samples.npz") as z:
        return {k: z[k] for k in z.files}


def _battle_name(m1: str, m2: str) -> str:
    return f"{m1}_vs_{m2}"


def run(config: Config | None = None, *, scale: str | None = None, write: bool = True, results_dir=None,
        device=None, command: str | None = None, models: dict | None = None) -> dict:
    r"""Train every model of ``config`` over its seeds, battle them, write and return the results.

    For every battle ``b`` of :data:`BATTLES` whose two models were trained (seed ``s`` of M1
    against seed ``s`` of M2; both judge the same test images), ``metrics``:
    ``gam_r_test.<b>``, ``gam_r_sample.<b>`` (means over seeds), ``gam_r_test_sd.<b>``,
    ``gam_r_sample_sd.<b>`` (standard deviations over seeds, ddof 1, 0 with one seed),
    ``gam_log10_r_test.<b>``, ``gam_log10_r_sample.<b>`` and their ``_sd`` (the same over
    :math:`\log_{10}` of the ratios, which can span orders of magnitude),
    ``gam_m1_wins.<b>`` / ``gam_m2_wins.<b>`` / ``gam_void.<b>`` (seeds won by each side, or
    void, under the paper's rule), ``gam_battle_py_r_sample.<b>`` and
    ``gam_battle_py_m1_wins.<b>`` (the authors' ``battle.py`` convention) and
    ``gam_rules_disagree.<b>`` (seeds where the two conventions name different winners, a
    void counting as a disagreement). Per model: ``d_test_error.<m>`` (its discriminator's
    error on the test images), ``d_self_error.<m>`` (on its own generator's samples),
    ``d_balanced_error.<m>`` (their mean: 0 for a discriminator that separates the two,
    about 1/2 for one that does not),
    ``sample_class_entropy.<m>`` (the GAN chapter's digit classifier on the samples, MNIST
    only), ``pixel_mean_gap.<m>`` (|mean pixel of the samples − mean pixel of the test
    images|: an untrained generator is grey, 0.5 against MNIST's 0.13),
    ``generator_params.<m>``, ``train_s.<m>``. ``curves``: per battle and seed the
    95 % intervals (``gam_r_test_ci_low.<b>``, ``gam_r_test_ci_high.<b>``, the same for
    ``r_sample``: ``[seed, bound]``) and ratios per seed, per model the training curves of
    seed 0 (``loss_d.<m>`` ...), each discriminator's error rates per seed
    (``d_test_error_per_seed.<m>``, ``d_self_error_per_seed.<m>``), and ``judge_errors.seed0.<m>``: ``[j, error of D_m on the
    samples of the j-th model of config.models]``.
    """
    study = results.start_study(Config, config, scale, device, models)
    scale, config, device = study.scale, study.config, study.device
    data = load_data(config)
    trained: dict[tuple[str, int], dict] = {}
    for m in config.models:
        for s in config.seeds:
            trained[m, s] = train_model(config, m, s, data["train"], device=device)
    t_eval = time.perf_counter()
    samples = {(m, s): sample(trained[m, s]["G"], config.n_samples, seed=20_000 + s, batch_size=config.judge_batch)
               for (m, s) in trained}
    x_test = data["test"].to(device)
    metrics: dict[str, float] = {}
    curves: dict[str, list] = {}

    def judge(d, x, real):
        return evaluation.discriminator_errors(d, x.to(device), real=real, batch_size=config.judge_batch)

    for m in config.models:
        per = [float(judge(trained[m, s]["D"], x_test, True).float().mean()) for s in config.seeds]
        own = [float(judge(trained[m, s]["D"], samples[m, s], False).float().mean()) for s in config.seeds]
        metrics[f"d_test_error.{m}"] = float(np.mean(per))
        metrics[f"d_self_error.{m}"] = float(np.mean(own))
        metrics[f"d_balanced_error.{m}"] = float(np.mean(per) + np.mean(own)) / 2
        curves[f"d_test_error_per_seed.{m}"] = [[s, v] for s, v in zip(config.seeds, per)]
        curves[f"d_self_error_per_seed.{m}"] = [[s, v] for s, v in zip(config.seeds, own)]
        metrics[f"pixel_mean_gap.{m}"] = float(np.mean([abs(float(samples[m, s].mean()) - float(x_test.mean()))
                                                         for s in config.seeds]))
        metrics[f"generator_params.{m}"] = float(count_parameters(trained[m, config.seeds[0]]["G"]))
        metrics[f"train_s.{m}"] = float(np.mean([trained[m, s]["seconds"] for s in config.seeds]))
        for k, v in trained[m, config.seeds[0]]["curves"].items():
            curves[f"{k}.{m}"] = v
    if config.dataset == "mnist":
        full = gan_chapter.load_data()
        clf = gan_chapter.train_classifier(full["train"], full["y_train"], epochs=1, seed=0)
        for m in config.models:
            ent = []
            for s in config.seeds:
                h = gan_chapter.class_histogram(clf, samples[m, s].reshape(len(samples[m, s]), -1))
                h = h[h > 0]
                ent.append(float(-(h * np.log(h)).sum()))
            metrics[f"sample_class_entropy.{m}"] = float(np.mean(ent))
    for m1, m2 in BATTLES:
        if m1 not in config.models or m2 not in config.models:
            continue
        b = _battle_name(m1, m2)
        paper_res, py_res = [], []
        for s in config.seeds:
            args = (trained[m1, s]["D"], trained[m2, s]["D"], samples[m1, s], samples[m2, s], x_test)
            kw = dict(n_boot=config.n_boot, seed=s, batch_size=config.judge_batch)
            paper_res.append(evaluation.gam_battle(*args, **kw))
            py_res.append(evaluation.gam_battle(*args, convention="battle_py", **kw))
        sd = (lambda v: float(np.std(v, ddof=1)) if len(v) > 1 else 0.0)
        rt, rs = [r.r_test for r in paper_res], [r.r_sample for r in paper_res]
        metrics.update({f"gam_r_test.{b}": float(np.mean(rt)), f"gam_r_sample.{b}": float(np.mean(rs)),
                        f"gam_r_test_sd.{b}": sd(rt), f"gam_r_sample_sd.{b}": sd(rs),
                        f"gam_log10_r_test.{b}": float(np.mean(np.log10(rt))),
                        f"gam_log10_r_test_sd.{b}": sd(np.log10(rt)),
                        f"gam_log10_r_sample.{b}": float(np.mean(np.log10(rs))),
                        f"gam_log10_r_sample_sd.{b}": sd(np.log10(rs)),
                        f"gam_m1_wins.{b}": float(sum(r.winner == "M1" for r in paper_res)),
                        f"gam_m2_wins.{b}": float(sum(r.winner == "M2" for r in paper_res)),
                        f"gam_void.{b}": float(sum(r.winner == "void" for r in paper_res)),
                        f"gam_battle_py_r_sample.{b}": float(np.mean([r.r_sample for r in py_res])),
                        f"gam_battle_py_r_test.{b}": float(np.mean([r.r_test for r in py_res])),
                        f"gam_battle_py_m1_wins.{b}": float(sum(r.winner == "M1" for r in py_res)),
                        f"gam_rules_disagree.{b}": float(sum(a.winner != p.winner for a, p in zip(paper_res, py_res)))})
        for name, attr in (("gam_r_test_ci", "r_test_ci"), ("gam_r_sample_ci", "r_sample_ci")):
            for j, end in enumerate(("low", "high")):
                curves[f"{name}_{end}.{b}"] = [[s, getattr(r, attr)[j]] for s, r in zip(config.seeds, paper_res)]
        curves[f"gam_r_sample_per_seed.{b}"] = [[s, r.r_sample] for s, r in zip(config.seeds, paper_res)]
        curves[f"gam_r_test_per_seed.{b}"] = [[s, r.r_test] for s, r in zip(config.seeds, paper_res)]
    s0 = config.seeds[0]
    for mi in config.models:
        curves[f"judge_errors.seed{s0}.{mi}"] = [
            [j, float(judge(trained[mi, s0]["D"], samples[mj, s0], False).float().mean())]
            for j, mj in enumerate(config.models)]
    metrics["eval_s"] = time.perf_counter() - t_eval
    metrics["compute_s"] = metrics["eval_s"] + sum(v["seconds"] for v in trained.values())
    keep = {}
    for (m, s), out in trained.items():
        keep[f"{m}.seed{s}"] = _to_uint8(samples[m, s][:36])
        _, steps = sample(out["G"], 8, seed=30_000 + s, return_steps=True)
        keep[f"{m}.seed{s}.steps"] = _to_uint8(steps)
    if models is not None:
        models.update({"trained": trained, "samples": samples, "x_test": data["test"]})
    result = study.finish(SLUG, metrics, curves, PAPER, seeds=list(config.seeds), command=command, write=write,
                          results_dir=results_dir)
    if write:
        _write_samples(keep, scale, results_dir)
    return result


def main(argv: list[str] | None = None) -> int:
    """``python -m papernotes_core.gran [--models ...] [--no-write]`` at ``PAPERNOTES_SCALE``."""
    return runtime.study_main(SLUG, Config, run, argv, narrow=runtime.narrow_to("models", MODELS),
                              description=main.__doc__)
