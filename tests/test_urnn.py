import math

import numpy as np
import pytest
import torch

from papernotes_core import runtime
from papernotes_core import urnn as U


pytestmark = pytest.mark.usefixtures("one_thread")


def random_params(n, dtype=torch.float32, seed=0):
    g = torch.Generator().manual_seed(seed)
    thetas = [(torch.rand(n, generator=g, dtype=torch.float64) * 2 - 1) * math.pi for _ in range(3)]
    vs = [torch.rand(2, n, generator=g, dtype=torch.float64) * 2 - 1 for _ in range(2)]
    perm = torch.randperm(n, generator=g)
    return [t.to(dtype) for t in thetas] + [v.to(dtype) for v in vs] + [perm]


def random_states(batch, n, dtype, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.complex(torch.randn(batch, n, generator=g, dtype=torch.float64),
                         torch.randn(batch, n, generator=g, dtype=torch.float64)).to(dtype)


def unitarity_error(w):
    eye = torch.eye(w.shape[0], dtype=w.dtype)
    return max(float((w.conj().T @ w - eye).abs().max()), float((w @ w.conj().T - eye).abs().max()))


# --------------------------------------------------------------------------------------------
# W is unitary, and the structured product equals the dense one
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("n", [8, 64, 512])
def test_w_is_unitary_in_complex64_dense_and_structured(n):
    params = random_params(n, torch.float32, seed=n)
    w = U.unitary_dense(*params)
    assert w.dtype == torch.complex64 and w.shape == (n, n)
    assert unitarity_error(w) < 1e-5
    # the structured map applied to the rows e_i^T gives the rows (W e_i)^T: the matrix W^T
    w_structured = U.unitary_apply(torch.eye(n, dtype=torch.complex64), *params).T
    assert unitarity_error(w_structured) < 1e-5
    assert float((w_structured - w).abs().max()) < 1e-5
    # and W is not something trivial (identity, a permutation, diagonal)
    assert float((w - torch.eye(n)).abs().max()) > 0.1
    assert float(w.abs().max()) < 0.99


@pytest.mark.parametrize("n", [1, 2, 5, 12, 16, 37, 100])
def test_structured_product_equals_dense_matrix_on_random_vectors(n):
    p64 = random_params(n, torch.float64, seed=n)
    h = random_states(7, n, torch.complex128, seed=n + 1)
    w = U.unitary_dense(*p64)
    assert w.dtype == torch.complex128
    out = U.unitary_apply(h, *p64)
    assert out.dtype == torch.complex128 and out.shape == h.shape
    assert float((out - h @ w.T).abs().max()) < 1e-10          # each row as a column: W h
    for i in range(3):
        assert float((out[i] - w @ h[i]).abs().max()) < 1e-10
    # the same in complex64
    p32 = random_params(n, torch.float32, seed=n)
    h32 = h.to(torch.complex64)
    out32 = U.unitary_apply(h32, *p32)
    assert out32.dtype == torch.complex64
    assert float((out32 - h32 @ U.unitary_dense(*p32).T).abs().max()) < 1e-4
    # leading batch dimensions of any shape
    hb = h.reshape(7, 1, n).expand(7, 2, n)
    torch.testing.assert_close(U.unitary_apply(hb, *p64)[:, 1], out, rtol=0, atol=1e-12)


def test_complex_reflection_vectors_are_accepted():
    theta1, theta2, theta3, v1, v2, perm = random_params(10, torch.float64)
    c1, c2 = torch.complex(v1[0], v1[1]), torch.complex(v2[0], v2[1])
    h = random_states(3, 10, torch.complex128)
    torch.testing.assert_close(U.unitary_apply(h, theta1, theta2, theta3, c1, c2, perm),
                               U.unitary_apply(h, theta1, theta2, theta3, v1, v2, perm), rtol=0, atol=1e-13)


def test_dense_is_the_product_of_the_factors_in_the_papers_order():
    params = random_params(9, torch.float64, seed=3)
    f = U.dense_factors(*params)
    expected = f["D3"] @ f["R2"] @ f["Finv"] @ f["D2"] @ f["P"] @ f["R1"] @ f["F"] @ f["D1"]
    torch.testing.assert_close(U.unitary_dense(*params), expected, rtol=0, atol=1e-13)
    # the order matters: the reflections swapped give another matrix
    swapped = f["D3"] @ f["R1"] @ f["Finv"] @ f["D2"] @ f["P"] @ f["R2"] @ f["F"] @ f["D1"]
    assert float((swapped - expected).abs().max()) > 1e-2


def test_dense_factors_follow_their_formulas():
    n = 12
    theta1, theta2, theta3, v1, v2, perm = random_params(n, torch.float64, seed=4)
    f = U.dense_factors(theta1, theta2, theta3, v1, v2, perm)
    h = random_states(5, n, torch.complex128)
    eye = torch.eye(n, dtype=torch.complex128)
    # DFT convention of torch.fft with norm="ortho"; F^-1 = F^*; F^2 is the reversal k -> -k mod N
    torch.testing.assert_close(h @ f["F"].T, torch.fft.fft(h, norm="ortho"), rtol=0, atol=1e-12)
    torch.testing.assert_close(h @ f["Finv"].T, torch.fft.ifft(h, norm="ortho"), rtol=0, atol=1e-12)
    torch.testing.assert_close(f["Finv"], f["F"].conj().T, rtol=0, atol=1e-14)
    rev = torch.tensor([(-k) % n for k in range(n)])
    torch.testing.assert_close(f["F"] @ f["F"], eye[rev], rtol=0, atol=1e-12)
    # (P h)_i = h_{perm[i]}
    torch.testing.assert_close(h @ f["P"].T, h[:, perm], rtol=0, atol=0)
    # R v = -v and R u = u for u orthogonal to v (a reflection through v's orthogonal complement)
    vc = torch.complex(v1[0], v1[1])
    torch.testing.assert_close(f["R1"] @ vc, -vc, rtol=0, atol=1e-13)
    u = torch.randn(n, dtype=torch.complex128)
    u = u - vc * (vc.conj() @ u) / (vc.conj() @ vc)
    torch.testing.assert_close(f["R1"] @ u, u, rtol=0, atol=1e-13)
    torch.testing.assert_close(f["D2"], torch.diag(torch.exp(1j * theta2.to(torch.complex128))), rtol=0, atol=1e-14)


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-12)])
def test_each_factor_is_unitary(dtype, tol):
    f = U.dense_factors(*random_params(64, dtype, seed=5))
    assert list(f) and set(f) == set(U.FACTOR_ORDER)
    for name, m in f.items():
        assert unitarity_error(m) < tol, name


def test_a_zero_reflection_vector_gives_the_identity_not_nan():
    theta1, theta2, theta3, v1, v2, perm = random_params(6, torch.float64)
    h = random_states(2, 6, torch.complex128)
    out = U.unitary_apply(h, theta1, theta2, theta3, torch.zeros(2, 6, dtype=torch.float64), v2, perm)
    assert torch.isfinite(torch.view_as_real(out)).all()
    torch.testing.assert_close(torch.linalg.vector_norm(out, dim=1), torch.linalg.vector_norm(h, dim=1))


def test_norm_is_preserved_over_5000_steps_in_complex64():
    runtime.seed_everything(0)
    cell = U.UnitaryRNNCell(3, 64, perm_seed=1)
    h = random_states(8, 64, torch.complex64)
    n0 = torch.linalg.vector_norm(h.to(torch.complex128), dim=1)
    with torch.no_grad():
        for _ in range(5000):
            h = cell.recurrent(h)
    drift = float((torch.linalg.vector_norm(h.to(torch.complex128), dim=1) / n0 - 1).abs().max())
    print(f"relative norm drift after 5000 steps (complex64, N=64): {drift:.2e}")
    assert drift < 1e-3
    assert float(h.abs().max()) > 0  # the state moved, not collapsed


def test_gradients_through_the_structured_map_match_the_dense_one():
    params = [p.clone().requires_grad_(p.is_floating_point()) for p in random_params(10, torch.float64, seed=6)]
    h = random_states(4, 10, torch.complex128)
    target = random_states(4, 10, torch.complex128, seed=9)
    loss_s = (U.unitary_apply(h, *params) * target.conj()).real.sum()
    grads_s = torch.autograd.grad(loss_s, params[:5])
    loss_d = ((h @ U.unitary_dense(*params).T) * target.conj()).real.sum()
    grads_d = torch.autograd.grad(loss_d, params[:5])
    for gs, gd in zip(grads_s, grads_d):
        assert float(gs.abs().max()) > 1e-3
        torch.testing.assert_close(gs, gd, rtol=1e-9, atol=1e-11)


# --------------------------------------------------------------------------------------------
# modReLU
# --------------------------------------------------------------------------------------------

def test_modrelu_matches_its_formula_and_zeroes_small_moduli():
    g = torch.Generator().manual_seed(0)
    z = torch.complex(torch.randn(200, 16, generator=g, dtype=torch.float64),
                      torch.randn(200, 16, generator=g, dtype=torch.float64))
    b = torch.linspace(-1.5, 0.5, 16, dtype=torch.float64)
    out = U.modrelu(z, b)
    r = z.abs()
    expected = torch.clamp(r + b, min=0) * z / r
    torch.testing.assert_close(out, expected, rtol=1e-14, atol=1e-15)
    dead = r <= -b
    assert dead.any() and (~dead).any()
    assert (out[dead] == 0).all()
    torch.testing.assert_close(out[~dead].abs(), (r + b).expand_as(r)[~dead], rtol=1e-13, atol=0)
    # b = 0 is the identity; complex64 in, complex64 out
    torch.testing.assert_close(U.modrelu(z, torch.zeros(16, dtype=torch.float64)), z, rtol=1e-15, atol=0)
    assert U.modrelu(z.to(torch.complex64), b.float()).dtype == torch.complex64


def test_modrelu_keeps_the_phase():
    g = torch.Generator().manual_seed(1)
    z = torch.complex(torch.randn(500, generator=g), torch.randn(500, generator=g))
    b = torch.full((500,), -0.7)
    out = U.modrelu(z, b)
    live = out != 0
    assert live.sum() > 100
    diff = torch.angle(out[live]) - torch.angle(z[live])
    wrapped = torch.remainder(diff + math.pi, 2 * math.pi) - math.pi
    assert float(wrapped.abs().max()) < 1e-5


def test_modrelu_at_zero_is_zero_with_finite_gradient():
    z = torch.zeros(4, dtype=torch.complex128, requires_grad=True)
    b = torch.tensor([-0.5, 0.0, 0.3, 1.0], dtype=torch.float64, requires_grad=True)
    out = U.modrelu(z, b)
    assert (out == 0).all()
    torch.view_as_real(out).sum().backward()
    assert torch.isfinite(torch.view_as_real(z.grad)).all() and torch.isfinite(b.grad).all()


# --------------------------------------------------------------------------------------------
# The cell and the network
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("n", [1, 16, 100])
def test_recurrent_parameter_count_is_7n(n):
    cell = U.UnitaryRNNCell(5, n)
    assert U.recurrent_parameter_count(n) == 7 * n
    assert sum(p.numel() for p in cell.recurrent_parameters()) == U.recurrent_parameter_count(n)
    assert U.dense_unitary_parameter_count(n) == n * n
    # everything else: V (2 N in), the modReLU bias (N)
    assert U.count_parameters(cell) == 7 * n + 2 * n * 5 + n
    model = U.URNN(5, n, 3)
    assert model.n_parameters() == U.count_parameters(model) == 7 * n + 10 * n + n + 2 * n + (2 * n * 3 + 3)
    assert U.count_parameters(U.URNN(5, n, 3, learn_h0=False)) == model.n_parameters() - 2 * n


def test_cell_step_is_the_papers_equation():
    runtime.seed_everything(2)
    cell = U.UnitaryRNNCell(3, 12).double()
    with torch.no_grad():
        cell.bias.uniform_(-0.5, 0.1)
    x = torch.randn(4, 3, dtype=torch.float64)
    h = random_states(4, 12, torch.complex128)
    v = torch.complex(cell.V[0], cell.V[1])
    expected = U.modrelu(h @ cell.dense().T + x.to(torch.complex128) @ v.T, cell.bias)
    out = cell(x, h)
    assert out.dtype == torch.complex128
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(cell.recurrent(h), h @ cell.dense().T, rtol=0, atol=1e-12)


def test_cell_initialisation():
    runtime.seed_everything(3)
    cell = U.UnitaryRNNCell(10, 200).requires_grad_(False)
    for t in (cell.theta1, cell.theta2, cell.theta3):
        assert t.shape == (200,) and t.dtype == torch.float32
        assert -math.pi <= float(t.min()) and float(t.max()) <= math.pi and float(t.std()) > 1.0
    for v in (cell.v1, cell.v2):
        assert v.shape == (2, 200) and float(v.abs().max()) <= 1.0
    assert cell.V.shape == (2, 200, 10) and float(cell.V.abs().max()) <= math.sqrt(6 / (10 + 400))
    assert (cell.bias == 0).all()
    assert torch.equal(torch.sort(cell.perm).values, torch.arange(200))
    assert not torch.equal(cell.perm, torch.arange(200))
    assert "perm" in dict(cell.named_buffers()) and "perm" not in dict(cell.named_parameters())
    assert torch.equal(U.UnitaryRNNCell(10, 200, perm_seed=7).perm, U.UnitaryRNNCell(10, 200, perm_seed=7).perm)


def test_urnn_forward_shape_and_gradients_reach_every_parameter():
    runtime.seed_everything(0)
    model = U.URNN(3, 16, 2)
    x = torch.randn(4, 6, 3)
    out = model(x)
    assert out.shape == (4, 6, 2) and out.dtype == torch.float32
    assert model.hidden_states(x).shape == (4, 6, 16) and model.hidden_states(x).dtype == torch.complex64
    (out ** 2).mean().backward()
    names = dict(model.named_parameters())
    assert {"h0", "cell.theta1", "cell.theta2", "cell.theta3", "cell.v1", "cell.v2", "cell.V", "cell.bias",
            "readout.weight", "readout.bias"} == set(names)
    for name, p in names.items():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert float(p.grad.abs().max()) > 0, name


def test_urnn_readout_is_linear_in_real_and_imaginary_parts():
    runtime.seed_everything(1)
    model = U.URNN(2, 8, 3)
    x = torch.randn(2, 4, 2)
    h = model.hidden_states(x)
    expected = torch.cat([h.real, h.imag], -1) @ model.readout.weight.T + model.readout.bias
    torch.testing.assert_close(model(x), expected)
    # an explicit initial state replaces h0
    h0 = random_states(2, 8, torch.complex64)
    assert not torch.allclose(model(x, h0), model(x))


def test_urnn_is_deterministic_given_the_seed():
    def build_and_run(seed):
        runtime.seed_everything(seed)
        model = U.URNN(3, 10, 2)
        x = torch.randn(2, 5, 3)
        return model(x), model.cell.perm

    (a, pa), (b, pb), (c, pc) = build_and_run(0), build_and_run(0), build_and_run(1)
    assert torch.equal(a, b) and torch.equal(pa, pb)
    assert not torch.allclose(a, c)


def test_urnn_double_precision():
    runtime.seed_everything(0)
    model = U.URNN(3, 10, 2).double()
    out = model(torch.randn(2, 5, 3, dtype=torch.float64))
    assert out.dtype == torch.float64 and model.hidden_states(torch.randn(2, 5, 3)).dtype == torch.complex128


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_runs_on_cuda_and_agrees_with_the_cpu():
    runtime.seed_everything(0)
    model = U.URNN(3, 64, 2)
    x = torch.randn(4, 7, 3)
    expected = model(x)
    model = model.to("cuda")
    out = model(x.cuda())
    assert out.device.type == "cuda"
    torch.testing.assert_close(out.cpu(), expected, rtol=1e-4, atol=1e-5)
    params = [p.cuda() for p in random_params(64)]
    w = U.unitary_dense(*params)
    assert w.device.type == "cuda" and unitarity_error(w.cpu()) < 1e-5


# --------------------------------------------------------------------------------------------
# Bad input
# --------------------------------------------------------------------------------------------

def test_bad_sizes_are_errors():
    with pytest.raises(ValueError, match=r"^hidden_size must be a positive int, got 0$"):
        U.UnitaryRNNCell(3, 0)
    with pytest.raises(ValueError, match="hidden_size must be a positive int, got -2"):
        U.URNN(3, -2, 1)
    with pytest.raises(TypeError, match="hidden_size must be a positive int, got float 2.5"):
        U.UnitaryRNNCell(3, 2.5)
    with pytest.raises(TypeError, match="hidden_size"):
        U.recurrent_parameter_count(True)
    with pytest.raises(ValueError, match="input_size must be a positive int, got 0"):
        U.UnitaryRNNCell(0, 4)
    with pytest.raises(ValueError, match="output_size must be a positive int, got 0"):
        U.URNN(2, 4, 0)
    with pytest.raises(ValueError, match="hidden_size"):
        U.dense_unitary_parameter_count(0)


@pytest.mark.parametrize("perm", [[0, 0, 2, 3], [1, 2, 3, 4], [-1, 0, 1, 2]])
def test_a_non_permutation_is_an_error(perm):
    theta1, theta2, theta3, v1, v2, _ = random_params(4)
    h = random_states(2, 4, torch.complex64)
    bad = torch.tensor(perm)
    with pytest.raises(ValueError, match=r"perm must be a permutation of 0\.\.3"):
        U.unitary_apply(h, theta1, theta2, theta3, v1, v2, bad)
    with pytest.raises(ValueError, match="perm must be a permutation"):
        U.unitary_dense(theta1, theta2, theta3, v1, v2, bad)


def test_bad_arguments_name_what_was_expected():
    theta1, theta2, theta3, v1, v2, perm = random_params(4)
    h = random_states(2, 4, torch.complex64)
    with pytest.raises(ValueError, match=r"perm must have shape \(4,\), got \(3,\)"):
        U.unitary_apply(h, theta1, theta2, theta3, v1, v2, perm[:3])
    with pytest.raises(TypeError, match="perm must be an integer tensor"):
        U.unitary_apply(h, theta1, theta2, theta3, v1, v2, perm.float())
    with pytest.raises(TypeError, match="h must be a complex tensor"):
        U.unitary_apply(h.real, theta1, theta2, theta3, v1, v2, perm)
    with pytest.raises(ValueError, match=r"h must have shape \(\.\.\., 4\)"):
        U.unitary_apply(random_states(2, 5, torch.complex64), theta1, theta2, theta3, v1, v2, perm)
    with pytest.raises(ValueError, match=r"theta2 must have shape \(4,\), got \(5,\)"):
        U.unitary_apply(h, theta1, torch.zeros(5), theta3, v1, v2, perm)
    with pytest.raises(ValueError, match=r"v1 must have shape \(2, 4\)"):
        U.unitary_apply(h, theta1, theta2, theta3, v1.T, v2, perm)
    with pytest.raises(TypeError, match="theta1 must be a real floating-point tensor"):
        U.unitary_apply(h, torch.zeros(4, dtype=torch.long), theta2, theta3, v1, v2, perm)
    with pytest.raises(TypeError, match="z must be a complex tensor"):
        U.modrelu(torch.ones(3), torch.zeros(3))
    with pytest.raises(TypeError, match="b must be a real floating-point tensor"):
        U.modrelu(torch.ones(3, dtype=torch.complex64), torch.zeros(3, dtype=torch.complex64))
    with pytest.raises(ValueError, match="eps must be a finite number > 0"):
        U.modrelu(torch.ones(3, dtype=torch.complex64), torch.zeros(3), eps=0.0)
    cell = U.UnitaryRNNCell(3, 4)
    with pytest.raises(ValueError, match=r"x_t must have shape \(batch, 3\)"):
        cell(torch.zeros(2, 5), h)
    with pytest.raises(TypeError, match="h must be a complex tensor"):
        cell(torch.zeros(2, 3), h.real)
    with pytest.raises(ValueError, match=r"h must have shape \(3, 4\) to match x_t, got \(2, 4\)"):
        cell(torch.zeros(3, 3), h)
    model = U.URNN(3, 4, 2)
    with pytest.raises(ValueError, match=r"x must have shape \(batch, T >= 1, 3\)"):
        model(torch.zeros(2, 3))
    with pytest.raises(TypeError, match="x must be a real floating-point tensor"):
        model(torch.zeros(2, 5, 3, dtype=torch.long))
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        U.count_parameters("not a model")


# --------------------------------------------------------------------------------------------
# The benchmark, smoke-tested at tiny sizes
# --------------------------------------------------------------------------------------------

def test_benchmark_runs_at_tiny_sizes():
    from benchmarks import bench_urnn

    out = bench_urnn.run(write=False, sizes=(16, 32, 64), repeats=3)
    m = out["metrics"]
    assert {"exponent_urnn", "exponent_dense", "speedup_largest_n"} <= set(m)
    assert "speedup_n2048" not in m  # 2048 was not among the sizes
    assert math.isfinite(m["exponent_urnn"]) and math.isfinite(m["exponent_dense"]) and m["speedup_largest_n"] > 0
    for name in ("urnn_s_vs_n", "dense_s_vs_n"):
        assert [p[0] for p in out["curves"][name]] == [16, 32, 64]
        assert all(p[1] > 0 for p in out["curves"][name])
    assert out["scale"] == "bench" and out["slug"] == "urnn" and out["provenance"]["config"]["batch"] == 20
    assert bench_urnn._fit_exponent([1, 2, 4], [3.0, 12.0, 48.0]) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="sizes"):
        bench_urnn.run(write=False, sizes=(16,))


# ----------------------------------------------------------------------------------------------
# The experiments
# ----------------------------------------------------------------------------------------------

import dataclasses  # noqa: E402
import json  # noqa: E402

from papernotes_core import results, tasks  # noqa: E402


def test_make_model_gives_every_step_for_every_kind():
    torch.manual_seed(0)
    hidden = {"urnn": 8, "lstm": 4, "irnn": 6, "tanh": 6}
    x = torch.randn(3, 7, 2)
    for kind in U.MODELS:
        out = U.make_model(kind, 2, 5, hidden)(x)
        assert out.shape == (3, 7, 5) and out.dtype == torch.float32, kind
    with pytest.raises(ValueError, match="kind must be one of"):
        U.make_model("gru", 2, 5, hidden)


def test_paper_sizes_give_about_the_same_parameter_counts():
    """The paper matches models at about 6.5k parameters on copying (uRNN 128, LSTM 40, RNNs 80)."""
    counts = {k: U.count_parameters(U.make_model(k, 10, 9, dict(U.Config.paper().small_hidden))) for k in U.MODELS}
    assert all(5_000 < c < 9_000 for c in counts.values()), counts


@pytest.mark.parametrize("field, value, message", [
    ("models", ("urnn", "gru"), "models must be a non-empty tuple"),
    ("copy_T", (0,), "copy_T must be a tuple of sequence lengths"),
    ("pixel_size", 5, "pixel_size must divide 28"),
    ("copy_steps", -1, "copy_steps must be an int >= 0"),
    ("lrs", (), "lrs must be a non-empty tuple"),
    ("lrs", (1e-3, 1e-3), "lrs must be a non-empty tuple of distinct"),
    ("seeds", (0, 0), "seeds must be a tuple of distinct ints >= 0"),
    ("seeds", (-1,), "seeds must be a tuple of distinct ints >= 0"),
    ("seeds", (0, 20), r"seed 20 would train the copy problem at T = 20 on its test sequences"),
    ("adding_batch", 0, "adding_batch must be a positive int"),
    ("adding_hidden", (("urnn", 8),), "adding_hidden must be a tuple of .* naming every model"),
])
def test_bad_configs_raise(field, value, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(U.Config.quick(), **{field: value})


def test_run_writes_every_task_for_every_model(tmp_path, monkeypatch):
    def fake_pixel(split="train", *, permutation=None, limit=None):
        y = torch.arange(120) % 10
        x = y[:, None].float() / 10 + 0.01 * torch.rand(120, 784, generator=torch.Generator().manual_seed(0))
        return tasks.as_sequences(x[:limit] if limit else x), (y[:limit] if limit else y)

    monkeypatch.setattr(tasks, "pixel_mnist", fake_pixel)
    cfg = dataclasses.replace(U.Config.quick(), copy_T=(5,), adding_T=(6,), pixel_size=4, copy_steps=4, adding_steps=4,
                              pixel_steps=3, pixel_variants=("plain", "permuted"), test_sequences=30,
                              pixel_test_images=60, pixel_val_images=50, eval_every=2, lrs=(1e-3, 1e-2),
                              small_hidden=(("urnn", 8), ("lstm", 4), ("irnn", 6), ("tanh", 6)),
                              adding_hidden=(("urnn", 8), ("lstm", 4), ("irnn", 6), ("tanh", 6)),
                              pixel_hidden=(("urnn", 8), ("lstm", 4), ("irnn", 6), ("tanh", 6)), norm_sequences=3)
    out = U.run(cfg, scale="quick", results_dir=tmp_path, command="test")
    m = results.read("urnn", "quick", tmp_path)["metrics"]
    for kind in U.MODELS:
        for task in ("copy_t5_test_xent", "adding_t6_test_mse", "pixel_mnist_test_acc", "permuted_pixel_mnist_test_acc"):
            assert math.isfinite(m[f"{task}.{kind}"]) and m[f"lr.{task}.{kind}"] in (1e-3, 1e-2), (task, kind)
            assert math.isfinite(m[f"val.{task}.{kind}"]), (task, kind)
            # the curve is the validation score; its last point is the winner's validation score
            curve = out["curves"][f"{task}_vs_step.{kind}"]
            assert [p[0] for p in curve][-1] in (3, 4) and curve[-1][1] == m[f"val.{task}.{kind}"]
        for task in ("copy_t5_test_xent", "adding_t6_test_mse"):
            assert m[f"{task}.{kind}.seed0"] == m[f"{task}.{kind}"] and m[f"{task}_sd.{kind}"] == 0.0
        for name in ("hidden_norm_vs_t", "grad_norm_vs_t"):
            for suffix in ("", ".init"):
                c = out["curves"][f"{name}.copy.{kind}{suffix}"]
                assert [p[0] for p in c] == list(range(1, 5 + 20 + 1)) and all(math.isfinite(p[1]) for p in c)
    assert m["params.adding_t6_test_mse.urnn"] == U.count_parameters(U.make_model("urnn", 2, 1, {"urnn": 8}))
    assert m["copy_t5_test_xent"] == m["copy_t5_test_xent.urnn"]
    assert m["copy_t5_baseline_xent"] == pytest.approx(10 * math.log(8) / 25)
    json.dumps(out)


def test_the_urnn_learns_to_copy_over_a_short_gap():
    torch.manual_seed(0)
    cfg = dataclasses.replace(U.Config.quick(), copy_T=(8,), copy_steps=150, adding_steps=0, pixel_steps=0,
                              models=("urnn",), test_sequences=200, eval_every=150,
                              small_hidden=(("urnn", 32), ("lstm", 4), ("irnn", 6), ("tanh", 6)))
    m = U.run(cfg, scale="quick", write=False)["metrics"]
    assert m["copy_t8_test_xent"] < 0.5 * m["copy_t8_baseline_xent"]


# ----------------------------------------------------------------------------------------------
# Learning rates chosen on validation data; the test data scored once, afterwards
# ----------------------------------------------------------------------------------------------

def test_select_by_validation_picks_the_best_in_either_direction():
    pairs = [(1e-4, 0.30), (1e-3, 0.10), (1e-2, 0.50), (1e-1, 0.10)]
    assert U.select_by_validation(pairs, lower_is_better=True) == (1e-3, 0.10)      # tie: the earlier one
    assert U.select_by_validation(pairs, lower_is_better=False) == (1e-2, 0.50)
    # NaN is worse than any number, either way; all NaN: the first
    nan = float("nan")
    assert U.select_by_validation([(1e-3, nan), (1e-2, 0.9)], True) == (1e-2, 0.9)
    assert U.select_by_validation([(1e-3, nan), (1e-2, 0.1)], False) == (1e-2, 0.1)
    lr, score = U.select_by_validation([(1e-3, nan), (1e-2, nan)], True)
    assert lr == 1e-3 and math.isnan(score)
    assert U.select_by_validation(iter([(1e-3, 2)]), True) == (1e-3, 2.0)
    with pytest.raises(ValueError, match="candidates must be a non-empty sequence"):
        U.select_by_validation([], True)
    with pytest.raises(TypeError, match=r"candidates must be \(lr, validation score\) pairs"):
        U.select_by_validation([(1e-3, 0.1, "test")], True)
    with pytest.raises(TypeError, match="lower_is_better must be True or False"):
        U.select_by_validation([(1e-3, 0.1)], "lower")


@pytest.mark.parametrize("lower_is_better, chosen", [(True, 1), (False, 2)])
def test_fit_scores_only_the_chosen_model_on_the_test_data_once_after_all_training(monkeypatch, lower_is_better,
                                                                                  chosen):
    lrs = (1e-3, 1e-2, 1e-1)
    val_scores = (0.5, 0.2, 0.9)        # by model: the second is best when lower, the third when higher
    built, events, selections = [], [], []

    initial = []

    def make():
        built.append(U.make_model("tanh", 2, 1, {"tanh": 3}))
        initial.append({k: v.clone() for k, v in built[-1].state_dict().items()})
        return built[-1]

    def next_batch():
        gen = torch.Generator().manual_seed(0)
        return lambda step: tasks.adding_problem(4, 5, generator=gen)

    def validate(model):
        i = next(i for i, m in enumerate(built) if m is model)
        events.append(("val", i))
        return val_scores[i]

    def test(model):
        events.append(("test", next(i for i, m in enumerate(built) if m is model)))
        return 0.123

    real = U.select_by_validation

    def spy(candidates, lower_is_better):
        candidates = list(candidates)
        selections.append(candidates)
        events.append(("select", None))
        return real(candidates, lower_is_better)

    monkeypatch.setattr(U, "select_by_validation", spy)
    out = U._fit(lrs=lrs, seed=0, make=make, next_batch=next_batch, loss_fn=lambda o, y: ((o[:, -1] - y) ** 2).mean(),
                 validate=validate, test=test, steps=3, eval_every=1, clip=1.0, device="cpu",
                 lower_is_better=lower_is_better)
    assert len(built) == 3
    # training: validation after every update of every run, in the order of the grid
    assert events[:9] == [("val", 0)] * 3 + [("val", 1)] * 3 + [("val", 2)] * 3
    # then the selection, which saw only (lr, validation score) pairs, then one test evaluation
    assert events[9:] == [("select", None), ("test", chosen)]
    assert selections == [list(zip(lrs, val_scores))]
    assert out["lr"] == lrs[chosen] and out["val"] == val_scores[chosen] and out["test"] == 0.123
    assert out["model"] is built[chosen] and [p[1] for p in out["curve"]] == [val_scores[chosen]] * 3
    # every learning rate starts from the same initialisation (seed), and training moved them
    for state in initial[1:]:
        assert all(torch.equal(state[k], initial[0][k]) for k in state)
    assert not torch.equal(built[chosen].net.rnn.weight_hh_l0, initial[chosen]["net.rnn.weight_hh_l0"])


# ----------------------------------------------------------------------------------------------
# Seeds, the adding problem's sizes and the cache
# ----------------------------------------------------------------------------------------------

def test_adding_and_copying_sizes_and_the_cpu_config():
    paper, cpu = U.Config.paper(), U.Config.cpu()
    assert dict(paper.adding_hidden) == {"urnn": 512, "lstm": 128, "irnn": 128, "tanh": 128}
    assert dict(paper.small_hidden) == {"urnn": 128, "lstm": 40, "irnn": 80, "tanh": 80}
    assert paper.batch == 20 and paper.adding_batch == 50 and paper.run_seeds == (0,)
    assert cpu.run_seeds == (0, 1, 2) and cpu.cache and cpu.copy_T == (100,) and cpu.adding_T == (100,)
    assert cpu.copy_steps == cpu.adding_steps == 2000 and cpu.adding_hidden == paper.adding_hidden
    assert dataclasses.replace(cpu, seeds=()).run_seeds == (cpu.seed,)
    # held-out sequences never share a generator seed with training, for any seed we allow
    for task in ("copy", "adding"):
        for s in (0, 1, 2, 7):
            d = U._data_seeds(task, s, 100)
            assert len({d["train"], d["val"], d["test"]}) == 3


def tiny_config(**kw):
    hidden = (("urnn", 6), ("lstm", 3), ("irnn", 4), ("tanh", 4))
    base = dict(copy_T=(4,), adding_T=(5,), copy_steps=3, adding_steps=3, pixel_steps=0, test_sequences=20,
                val_sequences=10, eval_every=3, norm_sequences=2, models=("urnn", "tanh"), small_hidden=hidden,
                adding_hidden=hidden, pixel_hidden=hidden)
    return dataclasses.replace(U.Config.quick(), **{**base, **kw})


def test_seeds_give_mean_sd_and_per_seed_results():
    out = U.run(tiny_config(seeds=(0, 1, 2)), scale="quick", write=False)
    m, c = out["metrics"], out["curves"]
    for task in ("copy_t4_test_xent", "adding_t5_test_mse"):
        for kind in ("urnn", "tanh"):
            per = [m[f"{task}.{kind}.seed{s}"] for s in (0, 1, 2)]
            assert len(set(per)) == 3, (task, kind)                     # the seeds differ
            assert m[f"{task}.{kind}"] == pytest.approx(sum(per) / 3)
            mean = sum(per) / 3
            assert m[f"{task}_sd.{kind}"] == pytest.approx(math.sqrt(sum((v - mean) ** 2 for v in per) / 2))
            assert m[f"val.{task}.{kind}"] == pytest.approx(sum(m[f"val.{task}.{kind}.seed{s}"] for s in (0, 1, 2)) / 3)
            assert c[f"{task}_vs_step.{kind}"] == c[f"{task}_vs_step.{kind}.seed0"]
            assert c[f"{task}_vs_step.{kind}.seed1"] != c[f"{task}_vs_step.{kind}.seed0"]
        assert m[task] == m[f"{task}.urnn"]
    assert out["provenance"]["seeds"] == [0, 1, 2]
    # a single-seed run of seed 1 gives seed 1's numbers
    one = U.run(tiny_config(seeds=(1,)), scale="quick", write=False)["metrics"]
    assert one["copy_t4_test_xent.urnn"] == m["copy_t4_test_xent.urnn.seed1"]
    assert one["copy_t4_test_xent_sd.urnn"] == 0.0


def test_the_cache_gathers_seeds_run_in_separate_processes(tmp_path, monkeypatch):
    monkeypatch.setenv("PAPERNOTES_CHECKPOINTS", str(tmp_path))
    fitted = []
    real_fit = U._fit

    def counting_fit(**kw):
        fitted.append(kw["seed"])
        return real_fit(**kw)

    monkeypatch.setattr(U, "_fit", counting_fit)
    part = U.run(tiny_config(seeds=(1,), cache=True), scale="quick", write=False)
    assert sorted(fitted) == [1] * 4                                   # 2 tasks x 2 models
    assert len(list((tmp_path / "urnn").glob("*.json"))) == 4
    fitted.clear()
    whole = U.run(tiny_config(seeds=(0, 1), cache=True), scale="quick", write=False)
    assert sorted(fitted) == [0] * 4                                   # seed 1 came from the cache
    for name, value in part["metrics"].items():
        if name.endswith(".seed1"):
            assert whole["metrics"][name] == value, name
    fitted.clear()
    again = U.run(tiny_config(seeds=(1, 0), cache=True), scale="quick", write=False)   # order does not matter
    assert fitted == []
    assert again["metrics"]["copy_t4_test_xent.urnn.seed0"] == whole["metrics"]["copy_t4_test_xent.urnn.seed0"]
    # a setting that shapes the unit is part of the key
    U.run(tiny_config(seeds=(1,), cache=True, adding_batch=7), scale="quick", write=False)
    assert sorted(fitted) == [1, 1]                                    # only the adding runs


# ----------------------------------------------------------------------------------------------
# Norms of the hidden states and of their gradients against time
# ----------------------------------------------------------------------------------------------

def linear_unitary_urnn(n=16, n_in=3):
    """A float64 uRNN whose modReLU is the identity (b = 0: sigma(z) = |z| z/|z| = z; a large
    positive b would add b to every modulus) and whose input matrix is zero: h_t = W h_{t-1}."""
    runtime.seed_everything(0)
    model = U.URNN(n_in, n, 2).double()
    with torch.no_grad():
        model.cell.V.zero_()
        model.cell.bias.zero_()
    return model


def test_hidden_norm_is_constant_for_the_linear_unitary_urnn():
    model = linear_unitary_urnn()
    x = torch.randn(5, 40, 3, dtype=torch.float64)
    norms = U.hidden_state_norms(model, x)
    h0 = float(torch.linalg.vector_norm(model.initial_state(1).detach()))
    assert norms.shape == (40,) and norms.dtype == np.float64
    np.testing.assert_allclose(norms, h0, rtol=1e-12)
    # the state does move
    with torch.no_grad():
        assert float((model.hidden_states(x)[:, -1] - model.initial_state(5)).abs().max()) > 0.1


def test_gradient_norm_is_constant_in_time_for_the_linear_unitary_urnn():
    model = linear_unitary_urnn()
    x = torch.randn(5, 30, 3, dtype=torch.float64)
    y = torch.randn(5, 2, dtype=torch.float64)
    g = U.gradient_norms_vs_time(model, x, y, lambda out, y: ((out[:, -1] - y) ** 2).sum())   # depends on h_T only
    assert g.shape == (30,) and g[-1] > 1e-3
    assert float(np.abs(g / g[-1] - 1).max()) < 1e-5
    # the same in float32
    model32 = linear_unitary_urnn().float()
    g32 = U.gradient_norms_vs_time(model32, x.float(), y.float(), lambda out, y: ((out[:, -1] - y) ** 2).sum())
    assert float(np.abs(g32 / g32[-1] - 1).max()) < 1e-5
    # with a loss at every step the gradient of the early states collects more terms
    g_all = U.gradient_norms_vs_time(model, x, y, lambda out, y: (out ** 2).sum())
    assert g_all[0] > g_all[-1]
    # parameters' gradients are left alone
    assert all(p.grad is None for p in model.parameters())


def test_hidden_state_norms_are_those_of_the_models_states():
    torch.manual_seed(0)
    x = torch.randn(4, 9, 2)
    for kind in U.MODELS:
        model = U.make_model(kind, 2, 3, {"urnn": 8, "lstm": 5, "irnn": 6, "tanh": 6})
        if kind == "urnn":
            states = model.hidden_states(x)
        else:
            states, _ = model.net.rnn(x)            # the LSTM's h_t, not its cell
        expected = torch.linalg.vector_norm(states, dim=-1).mean(0).double().detach().numpy()
        np.testing.assert_allclose(U.hidden_state_norms(model, x), expected, rtol=1e-5, atol=1e-7)
        # the step-by-step unrolling gives the model's own outputs
        torch.testing.assert_close(U._unroll(model, x)[1], model(x), rtol=1e-5, atol=1e-6)
    with pytest.raises(TypeError, match="model must be a URNN, an irnn.RecurrentNet"):
        U.hidden_state_norms(torch.nn.Linear(2, 3), x)
    with pytest.raises(ValueError, match=r"x must have shape \(batch, T, 2\)"):
        U.hidden_state_norms(U.make_model("tanh", 2, 3, {"tanh": 4}), torch.randn(4, 9, 3))


def manual_recurrence(net, x, deltas):
    """The baseline's recurrence written out from its weights, with h_t + delta_t passed on and
    read out, so that dL/d delta_t = dL/dh_t: an independent computation of the gradients."""
    r = net.rnn
    w_ih, w_hh, b = r.weight_ih_l0, r.weight_hh_l0, r.bias_ih_l0 + r.bias_hh_l0
    n = net.hidden_size
    h = torch.zeros(x.shape[0], n, dtype=x.dtype)
    c = torch.zeros_like(h)
    hs = []
    for t in range(x.shape[1]):
        a = x[:, t] @ w_ih.T + h @ w_hh.T + b
        if net.kind == "lstm":
            i, f, g, o = a[:, :n].sigmoid(), a[:, n:2 * n].sigmoid(), a[:, 2 * n:3 * n].tanh(), a[:, 3 * n:].sigmoid()
            c = f * c + i * g
            h = o * c.tanh()
        else:
            h = a.tanh() if net.kind == "tanh" else a.relu()
        h = h + deltas[t]
        hs.append(h)
    return net.out(torch.stack(hs, 1))


@pytest.mark.parametrize("kind", ["tanh", "lstm", "irnn"])
def test_gradient_norms_of_a_baseline_match_an_independent_computation(kind):
    from papernotes_core import irnn

    torch.manual_seed(1)
    net = irnn.RecurrentNet(kind, 2, 4, 3).double()
    if kind == "irnn":
        with torch.no_grad():
            net.rnn.weight_ih_l0.normal_(0, 0.5)
            net.out.weight.normal_(0, 0.5)
    x = torch.randn(3, 7, 2, dtype=torch.float64)
    y = torch.randn(3, 7, 3, dtype=torch.float64)

    def loss_fn(out, y):
        return ((out - y) ** 2).mean()

    got = U.gradient_norms_vs_time(U._AllSteps(net), x, y, loss_fn)
    deltas = [torch.zeros(3, 4, dtype=torch.float64, requires_grad=True) for _ in range(7)]
    grads = torch.autograd.grad(loss_fn(manual_recurrence(net, x, deltas), y), deltas)
    expected = np.array([float(g.norm(dim=1).mean()) for g in grads])
    assert expected.min() > 1e-6
    np.testing.assert_allclose(got, expected, rtol=1e-9)
    # and the independent computation against central finite differences at t = 3, unit 2 of sequence 1
    eps = 1e-6
    with torch.no_grad():
        def loss_at(step):
            d = [torch.zeros(3, 4, dtype=torch.float64) for _ in range(7)]
            d[2][1, 2] = step
            return float(loss_fn(manual_recurrence(net, x, d), y))
        fd = (loss_at(eps) - loss_at(-eps)) / (2 * eps)
    assert fd == pytest.approx(float(grads[2][1, 2]), rel=1e-6, abs=1e-10)
    # a bare RecurrentNet: the loss sees the last step only
    bare = U.gradient_norms_vs_time(net, x, y[:, -1], loss_fn)
    assert bare.shape == (7,) and bare[-1] > 0


# ----------------------------------------------------------------------------------------------
# Gradients of the real parameters behind the complex state, against finite differences
# ----------------------------------------------------------------------------------------------

def test_phase_and_reflection_gradients_match_central_finite_differences():
    runtime.seed_everything(3)
    model = U.URNN(2, 6, 2).double()
    with torch.no_grad():
        model.cell.bias.uniform_(-0.3, 0.1)        # modReLU not the identity
    x = torch.randn(3, 5, 2, dtype=torch.float64)
    target = torch.randn(3, 5, 2, dtype=torch.float64)

    def loss():
        return ((model(x) - target) ** 2).sum()

    value = loss()
    value.backward()
    eps = 1e-6
    for param, index in ((model.cell.v1, (1, 2)), (model.cell.v2, (0, 4)), (model.cell.theta2, (3,)),
                         (model.cell.theta1, (0,))):
        with torch.no_grad():
            old = param[index].item()
            param[index] = old + eps
            up = loss().item()
            param[index] = old - eps
            down = loss().item()
            param[index] = old
        fd = (up - down) / (2 * eps)
        assert abs(fd) > 1e-4
        assert param.grad[index].item() == pytest.approx(fd, rel=1e-6)
