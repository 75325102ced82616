"""Measure every quick-scale claim the notebooks assert on a training run (`make spread`).

A notebook that asserts "the trained model reaches X" at the quick scale must hold on a
reader's machine, whose CPU kernels round differently (training amplifies it) and on any seed.
So each such claim is measured here over seeds 0..4 and over two CPU kernel paths (the
machine's own and the portable one of `tools/kernel_paths.py`), for the trained model and for
the same model untrained, measured the same way. The notebook's threshold must lie strictly
between the worst trained value and the best untrained one; the notebook prints both and
asserts that it does.

Writes `results/spread/<slug>.json` (metrics `<claim>.trained.<path>.seed<s>`,
`<claim>.untrained.<path>.seed<s>`, and the summaries `<claim>.worst_trained` and
`<claim>.best_untrained`; `paper` holds nothing). Each (slug, path, seed) runs in a fresh
process with one thread; `--jobs 2` runs two at a time.

    python tools/spread.py                     # every chapter, 5 seeds, both paths
    python tools/spread.py --slugs vae irnn --seeds 0 1 2 3 4 --jobs 2
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))

PATHS = ("native", "default")

# claim name -> "higher" or "lower" is better, per chapter. The names are what the notebooks use.
CLAIMS = {
    "elu": {
        **{f"track_loss.{a}": "lower" for a in ("elu", "relu", "lrelu", "relu_bn")},
        "median_unit_mean_margin": "higher",
    },
    "vae": {"test_elbo": "higher", "iw_minus_elbo": "higher"},
    "gan": {"classifier_test_accuracy": "higher", "test_parzen_ll": "higher",
            "toy_discriminator_mae": "lower", "toy_gan_mean_error": "lower", "toy_gan_sd_error": "lower",
            "toy_gan_d_error": "lower"},
    "irnn": {"adding_t20_test_mse.irnn": "lower"},
    "urnn": {"copy_t20_test_xent.urnn": "lower"},
    "rnn_dropout": {"test_ppl.small": "lower"},
    "few_multiplications": {f"test_error.{v}": "lower" for v in ("full", "binary", "ternary", "binary_qb", "ternary_qb")},
    "translation_matrix": {"p_at_5.matrix": "higher", "p_at_5.procrustes": "higher"},
    "gran": {f"{c}.{m}": "lower" for c in ("pixel_mean_gap", "d_balanced_error") for m in ("gran_t3", "dcgan")},
    "byte_to_span": {"pos_accuracy.multi.en": "higher", "pos_accuracy.multi.tr": "higher",
                     "ill_formed_rate": "lower"},
    "dqn": {"cartpole_eval_return": "higher", "tabular_q_error": "lower", "linear_dqn_error": "lower",
            "linear_dqn_wrong_actions": "lower"},
}


# ------------------------------------------------------------------------------------------------
# One (slug, seed) in this process: {claim: [trained, untrained]}
# ------------------------------------------------------------------------------------------------

def _elu(seed: int) -> dict:
    from papernotes_core import elu

    config = dataclasses.replace(elu.Config.quick(), seeds=(seed,), datasets=("mnist",))
    out = elu.run(config, scale="quick", write=False)
    c = out["curves"]
    res = {}
    for a in config.activations:
        pts = c[f"mnist.track_loss.{a}"]
        res[f"track_loss.{a}"] = [pts[-1][1], pts[0][1]]          # the same subset: end vs epoch 0

    def margin(i):
        med = {a: abs(c[f"mnist.median_unit_mean.{a}"][i][1]) for a in ("elu", "relu", "lrelu")}
        return min(med["relu"], med["lrelu"]) - med["elu"]
    res["median_unit_mean_margin"] = [margin(-1), margin(0)]
    return res


def _vae(seed: int) -> dict:
    import torch
    from papernotes_core import evaluation, vae

    config = dataclasses.replace(vae.Config.quick(), seed=seed, latents=(20,))
    models = {}
    out = vae.run(config, scale="quick", write=False, models=models)
    m = out["metrics"]
    _, x_test = vae.load_data(config.train_limit)
    x_test_bin = vae.binarize(x_test, vae.TEST_BINARIZE_SEED)
    x_iw = x_test_bin[:config.iw_images] if config.iw_images else x_test_bin
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(vae._seed_from(config.seed, 20, 0))
        model = vae.VAE(x_test.shape[1], 20, config.hidden, likelihood=config.likelihood, init_std=config.init_std)
    gen = torch.Generator()
    elbo0 = vae.evaluate_elbo(model, x_test_bin, samples=config.elbo_samples,
                              generator=gen.manual_seed(vae._seed_from(config.seed, 20, 3)))
    iw0 = vae.evaluate_log_likelihood_iw(model, x_iw, k=config.iw_samples,
                                         generator=gen.manual_seed(vae._seed_from(config.seed, 20, 5)))
    elbo0_mean = float(evaluation.mean_and_standard_error(elbo0)[0])
    return {"test_elbo": [m["test_elbo"], elbo0_mean],
            "iw_minus_elbo": [m["test_log_likelihood_iw"] - m["test_elbo"], float(iw0.mean()) - elbo0_mean]}


def _gan(seed: int) -> dict:
    import numpy as np
    import torch
    from papernotes_core import gan

    config = dataclasses.replace(gan.Config.quick(), seed=seed)
    models = {}
    out = gan.run(config, scale="quick", write=False, models=models)
    m = out["metrics"]
    data = gan.load_data(config.train_limit)
    # untrained: the generator as built (seeded as in training), and a classifier with no training
    g0, _ = gan.build(config, data["train"], device="cpu")
    samples0 = gan.sample(g0, config.parzen_samples, noise=torch.Generator().manual_seed(config.seed + 3),
                          kind=config.noise)
    x_test = data["test"][:config.parzen_test_images] if config.parzen_test_images else data["test"]
    parzen0 = gan.parzen_evaluation(samples0, x_test, data["valid"][:config.parzen_valid_images])["mean"]
    torch.manual_seed(config.seed)
    clf0 = gan.DigitClassifier()
    with torch.no_grad():
        acc0 = float((clf0(data["test"]).argmax(1) == data["y_test"]).float().mean())
    res = {"classifier_test_accuracy": [m["classifier_test_accuracy"], acc0],
           "test_parzen_ll": [m["test_parzen_ll"], parzen0]}

    # the notebook's 1-D toys (cells "the optimal discriminator" and "Fig. 1"), same settings
    import math
    x = np.linspace(-10, 10, 40001)
    dx = float(x[1] - x[0])

    def pdf(t, mu, s):
        return np.exp(-0.5 * ((t - mu) / s) ** 2) / (s * math.sqrt(2 * math.pi))
    p_data, p_g = pdf(x, 0, 1), pdf(x, 1.5, 0.7)
    d_star = gan.optimal_discriminator(p_data, p_g)
    mixture = (p_data + p_g) / 2

    def mae(net):
        with torch.no_grad():
            d = torch.sigmoid(net(torch.tensor(x, dtype=torch.float32)[:, None]))[:, 0].double().numpy()
        return float(np.sum(mixture * np.abs(d - d_star)) * dx)
    d_net = gan.train_discriminator(lambda n, g: torch.randn(n, 1, generator=g),
                                    lambda n, g: 1.5 + 0.7 * torch.randn(n, 1, generator=g), steps=1500, seed=seed)
    torch.manual_seed(seed)
    res["toy_discriminator_mae"] = [mae(d_net), mae(gan.MLP1d(1, 32))]

    toy = gan.train_toy_gan(lambda n, g: 2.0 + 0.5 * torch.randn(n, 1, generator=g), steps=1500, k=5, lr_g=1e-3,
                            snapshots=(0, 1500), seed=seed)
    grid = toy["grid"]
    near = (grid > 1.0) & (grid < 3.0)

    def stats(snap):
        w = snap["p_g"] / np.sum(snap["p_g"])
        mean = float(np.sum(grid * w))
        sd = float(np.sqrt(np.sum((grid - mean) ** 2 * w)))
        return abs(mean - 2.0), abs(sd - 0.5), abs(float(snap["d"][near].mean()) - 0.5)
    first, last = stats(toy["snapshots"][0]), stats(toy["snapshots"][-1])
    for i, name in enumerate(("toy_gan_mean_error", "toy_gan_sd_error", "toy_gan_d_error")):
        res[name] = [last[i], first[i]]
    return res


def _irnn(seed: int) -> dict:
    import torch
    from papernotes_core import irnn, tasks

    config = dataclasses.replace(irnn.Config.quick(), seed=seed, kinds=("irnn",), pixel_steps=0)
    out = irnn.run(config, scale="quick", write=False)
    T = config.adding_T[0]
    x_test, y_test = tasks.adding_problem(config.test_sequences, T, generator=torch.Generator().manual_seed(10_000 + T))
    torch.manual_seed(config.seed)
    model = irnn.RecurrentNet("irnn", 2, config.hidden, 1)
    return {f"adding_t{T}_test_mse.irnn": [out["metrics"][f"adding_t{T}_test_mse.irnn"],
                                          irnn.evaluate_adding(model, x_test, y_test)]}


def _rnn_dropout(seed: int) -> dict:
    import torch
    from papernotes_core import rnn_dropout
    from papernotes_core.data.ptb import load_ptb

    config = dataclasses.replace(rnn_dropout.Config.quick(), seed=seed, parts=("reproduce",))
    out = rnn_dropout.run(config, scale="quick", write=False)
    torch.manual_seed(seed)
    model = rnn_dropout.LSTMLM(config.model("small"))
    test = load_ptb().test[:config.test_tokens]
    return {"test_ppl.small": [out["metrics"]["test_ppl.small"], rnn_dropout.evaluate(model, test)]}


def _few_multiplications(seed: int) -> dict:
    import torch
    from papernotes_core import few_multiplications as fm

    config = dataclasses.replace(fm.Config.quick(), seeds=(seed,))
    out = fm.run(config, scale="quick", write=False)
    data = fm._data(config, torch.device("cpu"))
    res = {}
    for v, (mode, qb) in fm.VARIANTS.items():
        fm.runtime.seed_everything(seed)
        model = fm.FewMultMLP(config.sizes, mode=mode, quantized_backprop=qb)
        fm.recompute_bn_statistics(model, torch.cat([data[0][0], data[1][0]]), config.batch)
        res[f"test_error.{v}"] = [out["metrics"][f"test_error.{v}"], fm.error_rate(model, *data[2])]
    return res


def _urnn(seed: int) -> dict:
    import torch
    from papernotes_core import tasks, urnn

    config = dataclasses.replace(urnn.Config.quick(), seed=seed, models=("urnn",), adding_steps=0, pixel_steps=0)
    out = urnn.run(config, scale="quick", write=False)
    T = config.copy_T[0]
    xt, yt = tasks.copying_problem(config.test_sequences, T, generator=torch.Generator().manual_seed(20_000 + T))
    torch.manual_seed(config.seed)
    model = urnn.make_model("urnn", 10, 9, dict(config.small_hidden))
    return {f"copy_t{T}_test_xent.urnn": [out["metrics"][f"copy_t{T}_test_xent.urnn"],
                                         urnn._copy_xent(model, xt, yt, 9)]}


def _dqn(seed: int) -> dict:
    import numpy as np
    import torch
    from papernotes_core import dqn
    from papernotes_core.dqn import agent, tabular

    config = dataclasses.replace(dqn.Config.quick(), cartpole_seeds=(seed,), games=())
    out = dqn.run(config, scale="quick", write=False, progress=False)
    env = agent.make_env(config.cartpole, seed=seed)
    torch.manual_seed(seed)
    net0 = agent.make_network(config.cartpole, env.observation_space.shape, int(env.action_space.n))
    untrained = float(agent.evaluate(config.cartpole, net0, seed=10_000 + 1_000 * seed).mean())
    res = {"cartpole_eval_return": [out["metrics"]["cartpole_eval_return"], untrained]}

    # the notebook's tabular checks, same settings as its cells
    mdp = tabular.chain_mdp(n_states=6, slip=0.1, gamma=0.9)
    q_star = tabular.value_iteration(mdp)
    live = ~mdp.terminal
    zero = float(np.abs(q_star).max())
    res["tabular_q_error"] = [float(np.abs(tabular.q_learning(mdp, 100_000, seed=seed) - q_star).max()), zero]
    d = mdp.n_states * mdp.n_actions
    features = np.random.default_rng(seed).normal(size=(mdp.n_states, mdp.n_actions, d))
    features /= np.linalg.norm(features, axis=2, keepdims=True)
    q_lin = tabular.linear_dqn(mdp, features, 20_000, seed=seed)
    res["linear_dqn_error"] = [float(np.abs(q_lin - q_star)[live].max()), float(np.abs(q_star)[live].max())]
    # greedy actions in states 1..4 that differ from Q*'s (untrained: Q = 0, every argmax "left")
    wrong = lambda q: float((q[live].argmax(1)[1:] != q_star[live].argmax(1)[1:]).sum())
    res["linear_dqn_wrong_actions"] = [wrong(q_lin), wrong(np.zeros_like(q_star))]
    return res


def _translation_matrix(seed: int) -> dict:
    import numpy as np
    from papernotes_core import translation_matrix as tm

    config = dataclasses.replace(tm.Config.quick(), seeds=(seed,))
    keep = {}
    out = tm.run(config, scale="quick", write=False, keep=keep)
    # untrained: random vectors for the same vocabularies, evaluated the same way
    rng = np.random.default_rng(seed)
    src, tgt = (tm.Embeddings(e.words, rng.standard_normal(e.vectors.shape).astype(np.float32), e.counts, e.name)
                for e in (keep["src"], keep["tgt"]))
    dev, folds, gold = keep["dev"], keep["folds"], keep["gold"]
    p5 = {"matrix": [], "procrustes": []}
    for f, test in enumerate(folds):
        train = dev + [w for g, fold in enumerate(folds) if g != f for w in fold]
        res = tm.evaluate_fold(src, tgt, gold, train, test, lam=0.0, methods=("matrix", "procrustes"))
        for meth in p5:
            p5[meth].append(res[meth][1])
    return {f"p_at_5.{meth}": [out["metrics"][f"p_at_5.{meth}"], float(np.mean(v))] for meth, v in p5.items()}


def _gran(seed: int) -> dict:
    from papernotes_core import evaluation, gran

    config = dataclasses.replace(gran.Config.quick(), seeds=(seed,))
    out = gran.run(config, scale="quick", write=False)
    x_test = gran.load_data(config)["test"]
    res = {}
    for m in config.models:
        g, d = gran.build(config, m, seed, "cpu")        # untrained, measured the same way
        s = gran.sample(g, config.n_samples, seed=20_000 + seed, batch_size=config.judge_batch)
        res[f"pixel_mean_gap.{m}"] = [out["metrics"][f"pixel_mean_gap.{m}"],
                                      abs(float(s.mean()) - float(x_test.mean()))]
        err = [float(evaluation.discriminator_errors(d, x, real=r, batch_size=config.judge_batch).float().mean())
               for x, r in ((x_test, True), (s, False))]
        res[f"d_balanced_error.{m}"] = [out["metrics"][f"d_balanced_error.{m}"], sum(err) / 2]
    return res


def _byte_to_span(seed: int) -> dict:
    import torch

    from papernotes_core import byte_to_span as bts
    from papernotes_core.byte_to_span.spans import OutputVocab

    config = dataclasses.replace(bts.Config.quick(), seeds=(seed,))
    out = bts.run(config, scale="quick", write=False)
    corpora = bts.load_corpora(config)
    torch.manual_seed(seed)   # the same network untrained, scored the same way
    vocab = OutputVocab(config.k, bts.labels_for(corpora))
    untrained = bts.evaluate(bts.build_model(config, vocab), vocab, corpora, "test", config.stride)
    m = out["metrics"]
    return {**{f"pos_accuracy.multi.{lang}": [m[f"pos_accuracy.multi.{lang}"], untrained[f"pos_accuracy.{lang}"]]
               for lang in ("en", "tr")},
            "ill_formed_rate": [m["ill_formed_rate"], untrained["ill_formed_rate"]]}


MEASURE = {"elu": _elu, "vae": _vae, "gan": _gan, "irnn": _irnn, "urnn": _urnn, "rnn_dropout": _rnn_dropout, "few_multiplications": _few_multiplications, "dqn": _dqn,
           "translation_matrix": _translation_matrix, "gran": _gran, "byte_to_span": _byte_to_span}


def child(slug: str, seed: int) -> None:
    import torch

    torch.set_num_threads(1)
    res = MEASURE[slug](seed)
    assert set(res) == set(CLAIMS[slug]), (sorted(res), sorted(CLAIMS[slug]))
    print("SPREAD " + json.dumps({"capability": torch.backends.cpu.get_cpu_capability(), "claims": res}))


# ------------------------------------------------------------------------------------------------
# The parent: every (slug, path, seed) in its own process, then one results file per slug
# ------------------------------------------------------------------------------------------------

def _foreign_env() -> dict:
    from kernel_paths import FOREIGN_ENV  # the one place that names the portable kernel path

    return dict(FOREIGN_ENV)


def _env(path: str, scratch: str) -> dict:
    FOREIGN_ENV = _foreign_env()
    env = {k: v for k, v in os.environ.items() if k not in FOREIGN_ENV}
    if path == "default":
        env.update(FOREIGN_ENV)
    env.update(PAPERNOTES_SCALE="quick", PAPERNOTES_PROGRESS="0", PYTHONHASHSEED="0", OMP_NUM_THREADS="1",
               PAPERNOTES_CHECKPOINTS=scratch, PAPERNOTES_RESULTS_OUT=scratch)
    return env


def _run_one(slug: str, path: str, seed: int, scratch: str) -> tuple[str, str, int, dict, float]:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, "--child", slug, str(seed)], env=_env(path, scratch),
                          capture_output=True, text=True, cwd=scratch)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("SPREAD ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{slug} {path} seed {seed} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return slug, path, seed, json.loads(lines[-1][len("SPREAD "):]), time.perf_counter() - t0


def summarise(slug: str, runs: dict) -> dict:
    """Metrics of one chapter from ``runs[(path, seed)] = {"claims": {claim: [trained, untrained]}}``."""
    metrics = {}
    for claim, better in CLAIMS[slug].items():
        trained, untrained = [], []
        for (path, seed), r in sorted(runs.items()):
            t, u = r["claims"][claim]
            metrics[f"{claim}.trained.{path}.seed{seed}"] = t
            metrics[f"{claim}.untrained.{path}.seed{seed}"] = u
            trained.append(t)
            untrained.append(u)
        worst, best_untrained = (min, max) if better == "higher" else (max, min)
        metrics[f"{claim}.worst_trained"] = worst(trained)
        metrics[f"{claim}.best_untrained"] = best_untrained(untrained)
    return metrics


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", nargs=2, metavar=("SLUG", "SEED"), help=argparse.SUPPRESS)
    parser.add_argument("--slugs", nargs="+", default=list(CLAIMS), choices=list(CLAIMS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child[0], int(args.child[1]))
        return 0
    if len(args.seeds) < 5:
        print("note: fewer than 5 seeds; the notebooks' policy asks for at least 5", file=sys.stderr)

    sys.path.insert(0, str(ROOT / "src"))
    from papernotes_core import results

    code = results.code_state()
    t0 = time.perf_counter()
    runs: dict = {slug: {} for slug in args.slugs}
    seconds: dict = {slug: 0.0 for slug in args.slugs}
    with tempfile.TemporaryDirectory() as scratch, cf.ThreadPoolExecutor(args.jobs) as pool:
        futures = [pool.submit(_run_one, slug, path, seed, scratch)
                   for slug in args.slugs for path in PATHS for seed in args.seeds]
        for fut in cf.as_completed(futures):
            slug, path, seed, res, s = fut.result()
            runs[slug][(path, seed)] = res
            seconds[slug] += s
            print(f"{slug:5s} {path:8s} seed {seed} ({res['capability']}, {s:.0f} s): "
                  + ", ".join(f"{k} {v[0]:.4g} (untrained {v[1]:.4g})" for k, v in res["claims"].items()), flush=True)
    for slug in args.slugs:
        caps = {p: {runs[slug][(p, s)]["capability"] for s in args.seeds} for p in PATHS}
        if caps["native"] == caps["default"]:
            print(f"warning: {slug}: both paths ran on {caps['native']}: this machine has no other kernel path",
                  file=sys.stderr)
        metrics = summarise(slug, runs[slug])
        metrics["compute_s"] = seconds[slug]
        prov = results.provenance({"claims": CLAIMS[slug], "paths": {p: sorted(c) for p, c in caps.items()},
                                   "foreign_env": _foreign_env(), "scale": "quick"},
                                  args.seeds, wall_s=time.perf_counter() - t0, code=code,
                                  command="python tools/spread.py --slugs " + " ".join(args.slugs))
        path = results.write({"slug": slug, "scale": "spread", "metrics": metrics, "curves": {}, "paper": {},
                              "provenance": prov}, ROOT / "results")
        print(f"{path}: " + ", ".join(f"{c} worst trained {metrics[f'{c}.worst_trained']:.4g}, best untrained "
                                      f"{metrics[f'{c}.best_untrained']:.4g}" for c in CLAIMS[slug]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
