"""Tests of the few-multiplications conv nets (CIFAR-10 / SVHN, run on a GPU with downloaded
data): the layer's products, its quantized weight gradient, the architecture, the training
loop's resume, and the configs. Everything here runs on small random tensors."""

from __future__ import annotations

import math

import pytest
import torch
from torch.nn import functional as F

from papernotes_core import few_multiplications as fm
from papernotes_core.few_multiplications import conv

SMALL = dict(arch=((4, 3, 1), (4, 2, 2)), fc_units=8, image=9)   # 9 -> 7 -> 6 -> pool 3


def test_conv_h_uses_the_pooled_fan_out():
    # cifar10.py's second layer: 128 -> 128, 3x3, pooled 2x2
    assert conv.conv_h(128, 128, 3, 2) == pytest.approx(0.5 * math.sqrt(6 / (128 * 9 + 128 * 9 / 4)))
    with pytest.raises(ValueError, match="kernel"):
        conv.conv_h(3, 4, 0)


def test_conv_forward_equals_f_conv2d_with_the_sampled_weights():
    torch.manual_seed(0)
    layer = conv.FewMultConv2d(3, 5, 3, mode="ternary")
    x = torch.randn(2, 3, 8, 8)
    torch.manual_seed(7)
    out = layer(x)
    torch.manual_seed(7)
    w_t = fm.ternarize(layer.weight.detach(), layer.H)
    torch.testing.assert_close(out, F.conv2d(x, w_t))
    H = torch.tensor(layer.H, dtype=torch.float32).item()
    assert set(torch.unique(w_t).tolist()) <= {-H, 0.0, H}
    layer.eval()   # evaluation: the real weights
    torch.testing.assert_close(layer(x), F.conv2d(x, layer.weight))


def test_quantized_conv_gradient_is_exact_for_power_of_two_inputs_and_unbiased_otherwise():
    torch.manual_seed(1)
    ref = conv.FewMultConv2d(2, 3, 2, mode="full")
    q = conv.FewMultConv2d(2, 3, 2, mode="full", quantized_backprop=True)
    q.weight.data.copy_(ref.weight.data)
    exps = torch.randint(-4, 4, (2, 2, 5, 5)).float()
    x = torch.where(torch.rand(2, 2, 5, 5) < 0.5, -1.0, 1.0) * torch.exp2(exps)
    x[0, 0, 0, 0] = 0.0
    g = torch.randn(2, 3, 4, 4)
    (ref(x) * g).sum().backward()
    (q(x) * g).sum().backward()
    assert torch.equal(q.weight.grad, ref.weight.grad) or torch.allclose(q.weight.grad, ref.weight.grad, rtol=0,
                                                                         atol=1e-6)
    # non-powers of two: the mean over many backward passes is the true gradient
    x = torch.rand(1, 2, 4, 4) * 3 + 0.1
    g = torch.randn(1, 3, 3, 3)
    ref.weight.grad = None
    (ref(x) * g).sum().backward()
    n, grads = 3000, []
    for _ in range(n):
        q.weight.grad = None
        (q(x) * g).sum().backward()
        grads.append(q.weight.grad.clone())
    grads = torch.stack(grads)
    se = grads.std(0) / math.sqrt(n)
    assert float(((grads.mean(0) - ref.weight.grad).abs() / se.clamp_min(1e-9)).max()) < 4.5
    # the input gradient is untouched by the quantization
    xx = x.clone().requires_grad_(True)
    (q(xx) * g).sum().backward()
    torch.testing.assert_close(xx.grad, torch.nn.grad.conv2d_input(x.shape, q.weight.detach(), g))


def test_paper_architecture_maps_32_pixels_to_1():
    model = conv.FewMultCNN(mode="binary", quantized_backprop=True)
    convs = [m for m in model.net if isinstance(m, conv.FewMultConv2d)]
    assert [(c.weight.shape[0], c.weight.shape[2]) for c in convs] == [(o, k) for o, k, _ in conv.ARCH]
    fcs = [m for m in model.net if isinstance(m, fm.FewMultLinear)]
    assert [tuple(f.weight.shape) for f in fcs] == [(1024, 1024), (10, 1024)]
    model.eval()
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 10)
    with pytest.raises(ValueError, match="cannot be pooled"):
        conv.FewMultCNN(arch=((4, 2, 2),), image=4)


def test_clip_keeps_every_layer_in_range():
    torch.manual_seed(2)
    model = conv.FewMultCNN(mode="binary", **SMALL)
    model.clip_()
    for m in model.net:
        if hasattr(m, "H"):
            assert float(m.weight.detach().abs().max()) <= m.H + 1e-7


def _data(n=60, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, 9, 9, generator=g)
    y = (x[:, 0, 4, 4] > 0).long()            # a learnable label
    return (x, y), (x[:20], y[:20]), (x[20:40], y[20:40])


def test_train_cnn_learns_and_resumes_exactly(tmp_path, monkeypatch):
    cfg = conv.CNNConfig(epochs=4, batch=10, seeds=(0,))
    data = _data()
    whole = conv.train_cnn(cfg, "ternary_qb", 0, data, device="cpu", model_kw=SMALL)
    assert len(whole["val_error"]) == 4 and whole["val_error"][-1] < 0.5
    # a run killed in its third epoch's evaluation, after the checkpoint of epoch 2
    real, calls = fm.error_rate, []

    def dying(*a, **k):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real(*a, **k)
    monkeypatch.setattr(fm, "error_rate", dying)
    ck = tmp_path / "run.pt"
    torch.manual_seed(123)   # the global generator is restored from the checkpoint, not reused
    with pytest.raises(KeyboardInterrupt):
        conv.train_cnn(cfg, "ternary_qb", 0, data, device="cpu", model_kw=SMALL, checkpoint=str(ck))
    monkeypatch.setattr(fm, "error_rate", real)
    resumed = conv.train_cnn(cfg, "ternary_qb", 0, data, device="cpu", model_kw=SMALL, checkpoint=str(ck))
    assert resumed["val_error"] == whole["val_error"]
    assert resumed["train_loss"] == pytest.approx(whole["train_loss"], rel=1e-6)


def test_paper_configs_and_bad_input():
    c = conv.CNNConfig.paper("cifar10")
    assert (c.epochs, c.batch, c.lr, c.lr_final) == (300, 100, 0.3, 0.001)
    assert c.lr_at(300) == pytest.approx(0.001) and c.lr_at(0) == pytest.approx(0.3)
    assert conv.CNNConfig.paper("svhn").epochs == 60
    with pytest.raises(ValueError, match="dataset"):
        conv.CNNConfig(dataset="imagenet")
    with pytest.raises(ValueError, match="variants"):
        conv.CNNConfig(variants=("full", "octal"))
    with pytest.raises(ValueError, match="variant"):
        conv.train_cnn(conv.CNNConfig(epochs=1), "octal", 0, _data(), device="cpu")


def test_run_cnn_writes_a_valid_results_file(tmp_path, monkeypatch):
    monkeypatch.setenv("PAPERNOTES_CHECKPOINTS", str(tmp_path / "ck"))
    cfg = conv.CNNConfig(dataset="svhn", variants=("full", "ternary_qb"), epochs=2, batch=10, seeds=(0, 1))
    out = conv.run_cnn(cfg, data=_data(), device="cpu", results_dir=tmp_path, model_kw=SMALL)
    m = out["metrics"]
    assert out["slug"] == "few_multiplications_svhn" and out["scale"] == "paper"
    for v in cfg.variants:
        per_seed = [m[f"test_error.{v}.seed{s}"] for s in cfg.seeds]
        assert m[f"test_error.{v}"] == pytest.approx(sum(per_seed) / 2)
    assert out["paper"]["test_error.ternary_qb"]["value"] == 0.0242
    assert (tmp_path / "paper" / "few_multiplications_svhn.json").exists()
    assert len(list((tmp_path / "ck" / "few_multiplications").glob("svhn-*.pt"))) == 4


def test_load_data_cifar10_is_gcn_then_zca_fitted_on_train(monkeypatch):
    import numpy as np

    from papernotes_core import data as datasets
    from papernotes_core.data.mnist import Split, Splits
    from papernotes_core.elu.cifar import fit_zca, global_contrast_normalize

    rng = np.random.default_rng(0)

    def split(n):
        return Split(rng.random((n, 3, 32, 32), dtype=np.float32), rng.integers(0, 10, n))
    fake = Splits(split(40), split(10), split(12))
    monkeypatch.setattr(datasets, "load_cifar10", lambda: fake)
    (xtr, ytr), (xva, yva), (xte, yte) = conv.load_data("cifar10", train_limit=30, device="cpu")
    assert xtr.shape == (30, 3, 32, 32) and xva.shape == (10, 3, 32, 32) and xte.shape == (12, 3, 32, 32)
    assert ytr.tolist() == fake.train.y[:30].tolist()
    mean, p = fit_zca(global_contrast_normalize(fake.train.x), 0.1)   # fitted on all 40 training images
    ref = (global_contrast_normalize(fake.test.x) - mean) @ p
    np.testing.assert_allclose(xte.reshape(12, -1).numpy(), ref, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="dataset"):
        conv.load_data("imagenet")



def test_load_data_svhn_is_gcn_then_lcn_on_the_red_channel(monkeypatch):
    import numpy as np

    from papernotes_core.data import preprocess, svhn
    from papernotes_core.data.mnist import Split, Splits

    rng = np.random.default_rng(1)

    def split(n):
        return Split(rng.random((n, 3, 32, 32), dtype=np.float32), rng.integers(0, 10, n))
    fake = Splits(split(6), split(3), split(4))
    asked = {}

    def fake_load(extra=False):
        asked["extra"] = extra
        return Splits(*(Split(fake[k].x.copy(), fake[k].y) for k in ("train", "valid", "test")))
    monkeypatch.setattr(svhn, "load_svhn", fake_load)
    (xtr, ytr), _, (xte, yte) = conv.load_data("svhn", device="cpu")
    assert asked["extra"] is True and xtr.shape == (6, 3, 32, 32) and yte.tolist() == fake.test.y.tolist()
    g = preprocess.global_contrast_normalize(fake.test.x)
    ref = preprocess.lecun_lcn(g, channels=(0,))
    np.testing.assert_allclose(xte.numpy(), ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(xte[:, 1:].numpy(), g[:, 1:], rtol=1e-6, atol=1e-6)   # G, B: GCN only
    conv.load_data("svhn", extra=False)
    assert asked["extra"] is False
