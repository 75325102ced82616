"""The generative adversarial metric (evaluation.gam_*): ratios against hand-made
discriminators with known error rates, both conventions, the zero rule, the bootstrap and the
decision rule, and bad input."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from papernotes_core import evaluation as E


def _column(n: int, wrong: int, real: bool, col: int, width: int = 3) -> torch.Tensor:
    """n 'images' whose column ``col`` is a logit: the first ``wrong`` of them are judged wrongly
    by the discriminator that reads that column."""
    x = torch.zeros(n, width)
    good, bad = (2.0, -2.0) if real else (-2.0, 2.0)
    x[:, col] = good
    x[:wrong, col] = bad
    return x


def d1(x):
    return x[:, 0]


def d2(x):
    return x[:, 1]


def _data(n_test, k1, k2, n_s, m1, m2):
    """Test images on which D1 errs k1 times and D2 k2 times; G2's samples fool D1 m1 times,
    G1's fool D2 m2 times."""
    x_test = torch.zeros(n_test, 3)
    x_test[:, :2] = 2.0
    x_test[:k1, 0] = -2.0
    x_test[n_test - k2:, 1] = -2.0
    s_g2 = _column(n_s, m1, False, 0)
    s_g1 = _column(n_s, m2, False, 1)
    return x_test, s_g1, s_g2


@settings(max_examples=40, deadline=None)
@given(n_test=st.integers(5, 60), n_s=st.integers(5, 60), data=st.data())
def test_ratios_equal_the_formulas_in_both_conventions(n_test, n_s, data):
    k1, k2 = data.draw(st.integers(1, n_test - 1)), data.draw(st.integers(1, n_test - 1))
    m1, m2 = data.draw(st.integers(1, n_s - 1)), data.draw(st.integers(1, n_s - 1))
    x_test, s_g1, s_g2 = _data(n_test, k1, k2, n_s, m1, m2)
    res = E.gam_battle(d1, d2, s_g1, s_g2, x_test, n_boot=20)
    assert res.counts == {"d1_test": k1, "d2_test": k2, "d1_on_g2": m1, "d2_on_g1": m2}
    assert res.r_test == pytest.approx((k1 / n_test) / (k2 / n_test), rel=1e-12)
    assert res.r_sample == pytest.approx((m1 / n_s) / (m2 / n_s), rel=1e-12)
    acc = E.gam_battle(d1, d2, s_g1, s_g2, x_test, n_boot=20, convention="battle_py")
    assert acc.r_test == pytest.approx((1 - k1 / n_test) / (1 - k2 / n_test), rel=1e-12)
    assert acc.r_sample == pytest.approx((1 - m1 / n_s) / (1 - m2 / n_s), rel=1e-12)


def test_the_zero_rule_counts_zero_errors_as_one_half():
    x_test, s_g1, s_g2 = _data(100, 0, 4, 50, 0, 0)
    res = E.gam_battle(d1, d2, s_g1, s_g2, x_test, n_boot=50)
    assert res.r_test == pytest.approx(0.5 / 4)
    assert res.r_sample == 1.0 and res.winner in ("tie", "void")
    # with battle.py's accuracies a zero count is a discriminator always wrong
    x_test, s_g1, s_g2 = _data(10, 10, 5, 10, 10, 5)
    acc = E.gam_battle(d1, d2, s_g1, s_g2, x_test, n_boot=50, convention="battle_py")
    assert acc.r_test == pytest.approx(0.5 / 5) and acc.r_sample == pytest.approx(0.5 / 5)


def test_a_model_against_an_identical_copy_of_itself_gives_ratios_of_exactly_one():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 1), torch.nn.Flatten(0))
    copy = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 1), torch.nn.Flatten(0))
    copy.load_state_dict(net.state_dict())
    x_test = torch.randn(300, 4, 4)
    z = torch.randn(200, 4, 4)             # the same z for both generators
    g = torch.nn.Tanh()
    for conv in E.GAM_CONVENTIONS:
        res = E.gam_battle(net, copy, g(z), g(z), x_test, n_boot=200, convention=conv)
        assert res.r_test == 1.0 and res.r_sample == 1.0
        assert res.r_test_ci == (1.0, 1.0) and res.r_sample_ci[0] <= 1.0 <= res.r_sample_ci[1]
        assert res.test_ok and res.winner == "tie"


def test_the_paper_rule_and_battle_py_rule_decide_as_stated():
    # D1 errs as often as D2 on data, and G2 fools D1 less than G1 fools D2: M1 wins.
    x_test, s_g1, s_g2 = _data(400, 40, 40, 400, 20, 80)
    res = E.gam_battle(d1, d2, s_g1, s_g2, x_test, n_boot=300)
    assert res.test_ok and res.winner == "M1" and res.r_sample == pytest.approx(0.25)
    assert res.r_sample_ci[1] < 1
    acc = E.gam_battle(d1, d2, s_g1, s_g2, x_test, n_boot=300, convention="battle_py")
    assert acc.winner == "M1" and acc.r_sample == pytest.approx((380 / 400) / (320 / 400))
    # D1 much worse on data: the paper voids the battle, battle.py still decides on samples.
    x_test, s_g1, s_g2 = _data(400, 200, 20, 400, 20, 80)
    res = E.gam_battle(d1, d2, s_g1, s_g2, x_test, n_boot=300)
    assert not res.test_ok and res.winner == "void"
    acc = E.gam_battle(d1, d2, s_g1, s_g2, x_test, n_boot=300, convention="battle_py")
    assert acc.winner == "M1"
    # swapping the models inverts both ratios and the winner
    sw = E.gam_battle(d2, d1, s_g2, s_g1, *_data(400, 40, 40, 400, 20, 80)[:1], n_boot=300)
    assert sw.winner == "M2" and sw.r_sample == pytest.approx(4.0)


def test_the_bootstrap_interval_covers_the_ratio_and_shrinks_with_more_data():
    small = E.gam_battle(d1, d2, *_data(100, 10, 10, 100, 10, 20)[1:], _data(100, 10, 10, 100, 10, 20)[0],
                         n_boot=500)
    x_test, s_g1, s_g2 = _data(2000, 200, 200, 2000, 200, 400)
    big = E.gam_battle(d1, d2, s_g1, s_g2, x_test, n_boot=500)
    for r in (small, big):
        assert r.r_sample_ci[0] < r.r_sample < r.r_sample_ci[1]
        assert r.r_test_ci[0] <= 1.0 <= r.r_test_ci[1]
    assert (big.r_sample_ci[1] - big.r_sample_ci[0]) < (small.r_sample_ci[1] - small.r_sample_ci[0]) / 2


def test_errors_use_the_half_threshold_and_restore_train_mode():
    net = torch.nn.Sequential(torch.nn.Dropout(0.5), torch.nn.Flatten(0))
    net.train()
    x = torch.tensor([[-1.0], [0.0], [1.0]])
    assert E.discriminator_errors(net, x, real=True).tolist() == [True, True, False]
    assert E.discriminator_errors(net, x, real=False).tolist() == [False, False, True]
    assert net.training


def test_bad_input_is_a_clear_error():
    x_test, s_g1, s_g2 = _data(20, 2, 2, 20, 2, 2)
    with pytest.raises(ValueError, match="one size"):
        E.gam_battle(d1, d2, s_g1, torch.zeros(20, 4), x_test)
    with pytest.raises(ValueError, match="one size"):
        E.gam_battle(d1, d2, s_g1, s_g2, torch.zeros(20, 5))
    with pytest.raises(ValueError, match="as many samples"):
        E.gam_battle(d1, d2, s_g1, s_g2[:10], x_test)
    with pytest.raises(ValueError, match="convention"):
        E.gam_battle(d1, d2, s_g1, s_g2, x_test, convention="accuracy")
    with pytest.raises(ValueError, match="one logit per image"):
        E.discriminator_errors(lambda x: x, x_test, real=True)
    with pytest.raises(TypeError, match="bool"):
        E.discriminator_errors(d1, x_test, real=1)
    with pytest.raises(TypeError, match="bool tensor"):
        E.gam_ratios(torch.zeros(3), torch.zeros(3, dtype=torch.bool), torch.zeros(3, dtype=torch.bool),
                     torch.zeros(3, dtype=torch.bool))
    with pytest.raises(ValueError, match="same test images"):
        b = torch.zeros(3, dtype=torch.bool)
        E.gam_ratios(b, torch.zeros(4, dtype=torch.bool), b, b)
    with pytest.raises(ValueError, match="level"):
        E.gam_battle(d1, d2, s_g1, s_g2, x_test, level=95)
