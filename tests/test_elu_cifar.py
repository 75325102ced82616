"""The ELU paper's CIFAR-100 network, preprocessing and training loop (``papernotes_core.elu.cifar``).

CIFAR itself cannot be had offline: these run on small random tensors.
"""

import math

import numpy as np
import pytest
import torch

from papernotes_core.elu.cifar import *  # noqa: F401,F403
from papernotes_core.elu import cifar as C
from papernotes_core import training


# --------------------------------------------------------------------------------------------
# Tests (move into tests/test_elu.py)
# --------------------------------------------------------------------------------------------

#: Parameters of CifarCNN: conv weights + biases (no BN); with BN the 10 hidden convs lose
#: their biases (2,544) and gain BN weight and bias (2 x 2,544).
PAPER_PARAMS = 1_669_028
PAPER_PARAMS_BN = PAPER_PARAMS - 2_544 + 2 * 2_544


@torch.no_grad()
def test_cifar_cnn_shapes():
    """(2, 3, 32, 32) -> (2, 100) logits for every activation, with and without BN.

    About 6 s on 2 CPU cores (each convolution call costs ~30 ms there, whatever its size).
    """
    x = torch.randn(2, 3, 32, 32)
    for activation in CIFAR_ACTIVATIONS:
        for batch_norm in (False, True):
            model = CifarCNN(activation, batch_norm=batch_norm, init_seed=0)
            logits, hidden = model(x, return_hidden=True)
            assert logits.shape == (2, 100) and logits.dtype == torch.float32
            assert torch.isfinite(logits).all()
            assert len(model.convs) == 11 and len(hidden) == 10
            n_params = sum(p.numel() for p in model.parameters())
            assert n_params == (PAPER_PARAMS_BN if batch_norm else PAPER_PARAMS), n_params
            # "same" padding keeps each layer's map size; the pooling after each stack halves it
            assert [h.shape[-1] for h in hidden] == [32, 16, 16, 8, 8, 4, 4, 2, 2, 1]
            assert [h.shape[1] for h in hidden] == [192, 192, 240, 240, 260, 260, 280, 280, 300, 300]
    assert model.eval()(x).shape == (2, 100)  # eval mode (BN running statistics) too
    model = CifarCNN("elu", padding="caffe", num_classes=10)
    logits, hidden = model(x, return_hidden=True)
    assert logits.shape == (2, 10)
    assert [h.shape[-1] for h in hidden] == [32, 16, 16, 8, 7, 4, 3, 2, 1, 1]
    assert sum(p.numel() for p in model.parameters()) == PAPER_PARAMS - 90 * 301  # 10, not 100, outputs


def test_cifar_cnn_same_initial_weights_across_activations():
    """[S5]: the same run number gives the same initial weights, whatever the units or BN."""
    ref = CifarCNN("elu", init_seed=3)
    for activation in CIFAR_ACTIVATIONS:
        for batch_norm in (False, True):
            other = CifarCNN(activation, batch_norm=batch_norm, init_seed=3)
            for a, b in zip(ref.convs, other.convs):
                assert torch.equal(a.weight, b.weight)
    assert not torch.equal(ref.convs[0].weight, CifarCNN("elu", init_seed=4).convs[0].weight)
    std = ref.convs[2].weight.std().item()  # He normal: sqrt(2 / (192 * 9))
    assert abs(std - math.sqrt(2 / (192 * 9))) < 0.01 * std + 1e-4


def test_cifar_cnn_rejects_bad_arguments():
    import pytest

    for kwargs, error, match in (
        ({"activation": "tanh"}, ValueError, "unknown activation"),
        ({"activation": 1}, TypeError, "activation must be a str"),
        ({"activation": "elu", "dropout": (0.1,) * 3}, ValueError, "one rate per stack"),
        ({"activation": "elu", "dropout": (1.0,) * 7}, ValueError, r"in \[0, 1\)"),
        ({"activation": "elu", "padding": "valid"}, ValueError, "padding"),
        ({"activation": "elu", "num_classes": 0}, ValueError, "num_classes"),
        ({"activation": "lrelu", "leak": 1.5}, ValueError, "leak"),
    ):
        with pytest.raises(error, match=match):
            CifarCNN(**kwargs)
    with pytest.raises(ValueError, match=r"\(n, 3, 32, 32\)"):
        CifarCNN("elu")(torch.zeros(2, 3, 28, 28))


def test_srelu_and_schedule():
    x = torch.tensor([-3.0, -1.0, -0.5, 0.0, 2.0])
    assert SReLU()(x).tolist() == [-1.0, -1.0, -0.5, 0.0, 2.0]
    config = cifar100_paper()
    assert [config.lr_at(s) for s in (0, 34_999, 35_000, 84_999, 85_000, 135_000, 164_999)] == \
        [0.01, 0.01, 0.005, 0.005, 0.0005, 0.00005, 0.00005]
    assert config.steps * config.batch_size / 50_000 == 330  # epochs, if the batch is 100


def test_preprocessing_matches_pylearn2_definitions():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (400, 48)).astype(np.float64)
    g = global_contrast_normalize(x, 55.0)
    assert np.allclose(g.mean(axis=1), 0) and np.allclose(np.linalg.norm(g, axis=1), 55.0)
    assert np.allclose(global_contrast_normalize(x / 255.0), g)  # scale of the input is irrelevant
    mean, p = fit_zca(g, bias=0.1)
    w = apply_zca(g, mean, p).astype(np.float64)
    cov = w.T @ w / len(w)
    c = (g - mean).T @ (g - mean) / len(g)
    e = np.linalg.eigvalsh(c)
    # Whitened covariance: P C P = V diag(e / (e + 0.1)) V^T, eigenvalues e / (e + bias).
    assert np.allclose(np.sort(np.linalg.eigvalsh(cov)), np.sort(e / (e + 0.1)), atol=1e-4)
    assert np.allclose(p, p.T)  # ZCA: symmetric, unlike PCA whitening
    out = preprocess(rng.integers(0, 256, (64, 3072)).astype(np.uint8) / np.float32(255),
                     zca_bias=None)
    assert out[0].shape == (64, 3, 32, 32) and out[0].dtype == np.float32


def test_augment_crops_and_flips():
    torch.manual_seed(0)
    x = torch.randn(4, 3, 32, 32)
    padded = F.pad(x, (4, 4, 4, 4))
    seen = set()
    for _ in range(10):
        y = augment(x, pad=4)
        assert y.shape == x.shape
        for i in range(len(x)):
            # each output is one 32x32 window of the zero-padded image, flipped or not
            matches = [(dy, dx, flip) for dy in range(9) for dx in range(9) for flip in (0, 1)
                       if torch.equal(y[i], (lambda w: w.flip(2) if flip else w)(
                           padded[i, :, dy:dy + 32, dx:dx + 32]))]
            assert len(matches) == 1
            seen.add(matches[0])
    assert len({(dy, dx) for dy, dx, _ in seen}) > 10 and {f for *_, f in seen} == {0, 1}
    torch.manual_seed(1)
    a = augment(x)
    torch.manual_seed(1)
    assert torch.equal(a, augment(x))  # a function of torch's RNG state only


def test_train_cifar_smoke(tmp_path, monkeypatch):
    """Two steps end to end on random data (no download): fit, resume, curves, metrics, results."""
    monkeypatch.setenv("PAPERNOTES_CHECKPOINTS", str(tmp_path))
    monkeypatch.setenv("PAPERNOTES_RESULTS_OUT", str(tmp_path / "results"))
    monkeypatch.setenv("PAPERNOTES_PROGRESS", "0")
    torch.manual_seed(0)
    x = torch.randn(12, 3, 32, 32)
    y = torch.randint(0, 100, (12,))
    tensors = (x, y, x[:4], y[:4])
    config = CifarConfig(activations=("srelu",), batch_norm=(False, True), steps=2,
                         eval_every=1, batch_size=4, seeds=(0,),
                         lr_schedule=((0, 0.01), (1, 0.005)))
    out = train_cifar(config, tensors=tensors, device=torch.device("cpu"))
    assert set(out["metrics"]) == {f"test_error{sd}.srelu{bn}" for sd in ("", "_sd")
                                   for bn in ("", "_bn")}
    assert all(0 <= v <= 100 for v in out["metrics"].values())
    assert (tmp_path / "results" / "paper" / "elu_cifar100.json").is_file()
    assert out["paper"] == {"test_error.srelu": {"value": 29.35, "source": "Sec. 4.2, mean of 10 runs (sd 0.29)",
                                                 "status": "V"}}
    assert [s for s, _ in out["curves"]["cifar100.test_error.srelu"]] == [1, 2]
    path = next(p for p in tmp_path.rglob("cifar100-srelu-seed0-*.pt") if ".curve" not in p.name)
    saved = training.load_checkpoint(path)
    assert saved["step"] == 2 and [s for s, _ in saved["history"]] == [0, 1]
    assert saved["optimizer"]["param_groups"][0]["lr"] == 0.005  # the schedule was applied
    # A second call finds the finished checkpoints and trains nothing more.
    again = train_cifar(config, tensors=tensors, device=torch.device("cpu"))
    assert again["metrics"] == out["metrics"]
    assert training.load_checkpoint(path)["step"] == 2
    # Without checkpoints the chunked fit calls continue the step count (no restart at 0).
    run = train_one_cifar(config, "srelu", False, 0, tensors, device=torch.device("cpu"))
    assert [s for s, _ in run["curve"]] == [1, 2]
    assert [s for s, _ in run["history"]] == [0, 1]
