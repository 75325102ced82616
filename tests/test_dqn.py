"""Tests for the DQN agent (papernotes_core.dqn.agent), the chapter's Config/run and the tabular
MDP of the derivation (papernotes_core.dqn.tabular). The replay memory and the Atari wrappers
have their own files (test_dqn_replay.py, test_dqn_atari.py)."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
import torch

from papernotes_core import dqn
from papernotes_core.dqn import agent, tabular
from papernotes_core.dqn.replay import Batch

pytestmark = pytest.mark.usefixtures("one_thread")


# --------------------------------------------------------------------------------------------
# ε schedule
# --------------------------------------------------------------------------------------------


def test_epsilon_follows_the_linear_schedule():
    assert agent.epsilon(0, 1.0, 0.1, 1_000_000) == 1.0
    assert agent.epsilon(500_000, 1.0, 0.1, 1_000_000) == pytest.approx(0.55)
    assert agent.epsilon(1_000_000, 1.0, 0.1, 1_000_000) == pytest.approx(0.1)
    assert agent.epsilon(9_000_000, 1.0, 0.1, 1_000_000) == pytest.approx(0.1)
    steps = np.arange(0, 2_000, 7)
    values = [agent.epsilon(int(t), 0.9, 0.05, 1_000) for t in steps]
    expected = 0.9 + (0.05 - 0.9) * np.minimum(1.0, steps / 1_000)
    np.testing.assert_allclose(values, expected, rtol=0, atol=1e-12)
    assert np.all(np.diff(values) <= 1e-15)
    assert agent.epsilon(5, 1.0, 0.2, 0) == 0.2


@pytest.mark.parametrize("kwargs, match", [({"step": -1}, "step"), ({"step": 1.5}, "step"),
                                           ({"step": 0, "end": 1.5}, "lie in"), ({"step": 0, "anneal_steps": -3}, "anneal")])
def test_epsilon_rejects_bad_input(kwargs, match):
    with pytest.raises(ValueError, match=match):
        agent.epsilon(**kwargs)


# --------------------------------------------------------------------------------------------
# TD target and loss
# --------------------------------------------------------------------------------------------


def test_td_target_bootstraps_except_at_termination():
    reward = torch.tensor([1.0, 0.5, -1.0])
    terminated = torch.tensor([False, True, False])
    next_q = torch.tensor([[0.0, 2.0], [5.0, 3.0], [-1.0, -2.0]])
    y = agent.td_target(reward, terminated, next_q, 0.9)
    torch.testing.assert_close(y, torch.tensor([1.0 + 0.9 * 2.0, 0.5, -1.0 + 0.9 * -1.0]))


def test_td_target_rejects_bad_shapes_and_gamma():
    with pytest.raises(ValueError, match="gamma"):
        agent.td_target(torch.zeros(2), torch.zeros(2), torch.zeros(2, 3), 1.5)
    with pytest.raises(ValueError, match="shape"):
        agent.td_target(torch.zeros(2), torch.zeros(2), torch.zeros(3, 3), 0.9)


@pytest.mark.parametrize("kind", ["mse", "huber"])
def test_loss_gradient_is_the_clipped_td_error(kind):
    g = torch.Generator().manual_seed(0)
    q = (3 * torch.randn(200, generator=g)).requires_grad_()
    y = 3 * torch.randn(200, generator=g)
    loss = agent.td_loss(q, y, kind)
    (grad,) = torch.autograd.grad(loss * len(q), q)   # the loss is a batch mean
    delta = y - q.detach()
    expected = -delta if kind == "mse" else -delta.clamp(-1.0, 1.0)
    torch.testing.assert_close(grad, expected)
    assert (delta.abs() > 1).sum() > 50   # the clipping is exercised


def test_huber_loss_values_match_the_piecewise_formula():
    q = torch.tensor([0.0, 0.0, 0.0, 0.0])
    y = torch.tensor([0.5, -0.5, 3.0, -2.0])
    per = torch.tensor([0.125, 0.125, 2.5, 1.5])
    torch.testing.assert_close(agent.td_loss(q, y, "huber"), per.mean())
    torch.testing.assert_close(agent.td_loss(q, y, "mse"), (0.5 * y ** 2).mean())
    with pytest.raises(ValueError, match="loss must be one of"):
        agent.td_loss(q, y, "l1")
    with pytest.raises(ValueError, match="same shape"):
        agent.td_loss(q, y[:2], "mse")


def _batch(n_obs=4, terminated=(False, True, False, False), truncated=(False, False, True, False)):
    g = np.random.default_rng(0)
    B = len(terminated)
    return Batch(obs=g.normal(size=(B, 1, n_obs)).astype(np.float32), action=np.array([0, 1, 1, 0]),
                 reward=np.array([1.0, 2.0, 3.0, -1.0], np.float32),
                 next_obs=g.normal(size=(B, 1, n_obs)).astype(np.float32),
                 terminated=np.array(terminated), truncated=np.array(truncated))


@pytest.mark.parametrize("use_target", [True, False])
def test_update_uses_the_target_network_and_stops_only_at_termination(use_target):
    cfg = dqn.cartpole_config(gamma=0.9, loss="mse", optimizer="adam", lr=1e-3, target_period=10 if use_target else 0)
    torch.manual_seed(0)
    q_net = agent.MLPQNetwork(4, 2, (8,))
    target = agent.MLPQNetwork(4, 2, (8,)) if use_target else None
    batch = _batch()
    with torch.no_grad():
        nq = (target if use_target else q_net)(torch.as_tensor(batch.next_obs)).max(1).values.numpy()
        q_before = q_net(torch.as_tensor(batch.obs)).gather(1, torch.as_tensor(batch.action)[:, None]).squeeze(1)
    y = batch.reward + 0.9 * nq * np.array([1, 0, 1, 1])       # transition 1 terminated; 2 only truncated
    # One SGD step of size lr on the mean of ½δ² moves Q(s, a) along its own gradient; compare the
    # loss the update reports with ½ mean δ² computed here from the chosen network.
    opt = torch.optim.SGD(q_net.parameters(), lr=0.0)
    loss = agent.update(q_net, target, opt, batch, cfg, torch.device("cpu"))
    assert loss == pytest.approx(float(0.5 * np.mean((y - q_before.numpy()) ** 2)), rel=1e-5)


def test_target_network_is_refreshed_every_period_updates():
    cfg = dqn.cartpole_config(total_steps=400, learning_starts=64, train_every=4, gradient_steps=1, target_period=5,
                              batch=16, replay_capacity=1_000, eval_episodes=1)
    copies = []
    orig = torch.nn.Module.load_state_dict

    def spy(self, state, *a, **k):
        copies.append(1)
        return orig(self, state, *a, **k)

    torch.nn.Module.load_state_dict = spy
    try:
        res = agent.train(cfg, 0, progress=False)
    finally:
        torch.nn.Module.load_state_dict = orig
    assert res.updates == (400 - 64) // 4
    assert len(copies) == res.updates // 5


# --------------------------------------------------------------------------------------------
# Networks
# --------------------------------------------------------------------------------------------


def _count(net):
    return sum(p.numel() for p in net.parameters())


def test_atari_networks_have_the_papers_layers():
    net13 = agent.AtariQNetwork(6, 4, "2013")
    # 16 8×8 filters stride 4 (84 -> 20), 32 4×4 stride 2 (20 -> 9), 256 units, 6 outputs.
    assert _count(net13) == (4 * 16 * 64 + 16) + (16 * 32 * 16 + 32) + (32 * 9 * 9 * 256 + 256) + (256 * 6 + 6)
    net15 = agent.AtariQNetwork(6, 4, "nature")
    assert _count(net15) == ((4 * 32 * 64 + 32) + (32 * 64 * 16 + 64) + (64 * 64 * 9 + 64)
                             + (64 * 7 * 7 * 512 + 512) + (512 * 6 + 6))
    frames = torch.randint(0, 256, (3, 4, 84, 84), dtype=torch.uint8)
    assert net13(frames).shape == (3, 6) and net15(frames).shape == (3, 6)
    # uint8 frames are scaled by 1/255: the same as feeding floats in [0, 1] to the layers.
    torch.testing.assert_close(net13(frames), net13.head(net13.features(frames.float() / 255)))
    with pytest.raises(ValueError, match=r"\(batch, 4, 84, 84\)"):
        net13(torch.zeros(3, 84, 84))
    with pytest.raises(ValueError, match="'2013' or 'nature'"):
        agent.AtariQNetwork(6, 4, "2016")


def test_mlp_network_and_bad_input():
    net = agent.MLPQNetwork(4, 2, (16, 16))
    assert net(torch.zeros(5, 1, 4)).shape == (5, 2)
    with pytest.raises(ValueError, match="4 values"):
        net(torch.zeros(5, 3))
    with pytest.raises(ValueError, match="hidden"):
        agent.MLPQNetwork(4, 2, ())
    with pytest.raises(ValueError, match="n_actions"):
        agent.MLPQNetwork(4, 0)


def test_greedy_actions_are_the_argmax():
    net = agent.MLPQNetwork(3, 4, (8,))
    x = np.random.default_rng(0).normal(size=(50, 1, 3)).astype(np.float32)
    with torch.no_grad():
        expected = net(torch.as_tensor(x)).argmax(1).numpy()
    np.testing.assert_array_equal(agent.greedy_actions(net, x, torch.device("cpu")), expected)


# --------------------------------------------------------------------------------------------
# Config validation (bad input)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, match", [
    ({"stack": 0}, "stack size must be >= 1"),
    ({"replay_capacity": 16, "batch": 32}, "replay capacity 16 is smaller than the batch size 32"),
    ({"network": "resnet"}, "network must be one of"),
    ({"loss": "l1"}, "loss must be one of"),
    ({"optimizer": "sgd"}, "optimizer must be one of"),
    ({"gamma": 1.2}, "gamma"),
    ({"eval_epsilon": -0.1}, "eval_epsilon"),
    ({"preprocessing": "2013"}, "preprocessing"),
])
def test_agent_config_rejects_bad_values(kwargs, match):
    with pytest.raises(ValueError, match=match):
        dqn.cartpole_config(**kwargs)


def test_unknown_game_lists_close_matches():
    with pytest.raises(ValueError, match="Pong"):
        dqn.Config(games=("Pongg",))
    with pytest.raises(ValueError, match="variant"):
        dqn.atari_config("Pong", "2017")


def test_scales_follow_the_paper_where_they_say_so():
    paper = dqn.Config.paper()
    a = paper.atari
    assert (a.batch, a.replay_capacity, a.total_steps, a.eps_start, a.eps_end, a.eps_anneal_steps) == \
        (32, 1_000_000, 10_000_000, 1.0, 0.1, 1_000_000)
    assert (a.optimizer, a.target_period, a.loss, a.network, a.preprocessing, a.eval_epsilon) == \
        ("rmsprop", 0, "mse", "2013", "2013", 0.05)
    assert paper.games == ("Pong", "Breakout")
    nature = dqn.atari_config("Breakout", "nature")
    assert (nature.target_period, nature.loss, nature.network, nature.life_loss_terminal) == (10_000, "huber", "nature", True)
    assert (a.train_every, paper.atari.heldout_states) == (1, 500)
    cpu = dqn.Config.cpu()
    assert cpu.cartpole_seeds == (0, 1, 2) and cpu.games == ("Pong", "Breakout")
    assert (cpu.atari.network, cpu.atari.preprocessing, cpu.atari.target_period, cpu.atari.loss, cpu.atari.batch) == \
        ("2013", "2013", 0, "mse", 32)
    # The committed 500k-step runs are carried over, under the config they were run with.
    assert (cpu.atari.train_every, cpu.atari.optimizer) == (4, "torch_rmsprop")
    assert set(dqn.game_names("Pong")) <= set(cpu.carry) and "pong_eval_return" in cpu.carry and "cartpole" in cpu.carry
    # The Pong learner: Lapan's recipe with the 2013 network, seed 0 declared.
    p = cpu.pong_cpu
    assert (p.optimizer, p.lr, p.batch, p.train_every, p.target_period, p.replay_capacity, p.learning_starts,
            p.eps_end, p.eps_anneal_steps, p.network, p.eval_every, p.eval_episodes, p.eval_epsilon) == \
        ("adam", 1e-4, 32, 1, 1_000, 10_000, 10_000, 0.02, 100_000, "2013", 100_000, 30, 0.05)
    assert cpu.pong_cpu_seed == 0 and p.total_steps <= 1_000_000
    assert cpu.atari.checkpoint_every > 0 and paper.atari.checkpoint_every > 0


def test_games_option_narrows_the_study(tmp_path, monkeypatch):
    """``--games`` runs only the named games and no CartPole (to split a study over processes)."""
    seen = {}

    def fake_run(config, *, scale, write, command):
        seen.update(config=config, write=write, command=command)
        return {"metrics": {"x": 1.0}}

    monkeypatch.setenv("PAPERNOTES_SCALE", "cpu")
    monkeypatch.setattr(dqn, "run", fake_run)
    assert dqn.main(["--games", "Breakout", "--no-write"]) == 0
    assert seen["config"].games == ("Breakout",) and seen["config"].cartpole_seeds == ()
    assert seen["write"] is False and "--games Breakout" in seen["command"]


# --------------------------------------------------------------------------------------------
# Training, evaluation, checkpoints
# --------------------------------------------------------------------------------------------


def test_train_and_evaluate_on_cartpole_smoke():
    cfg = dqn.cartpole_config(total_steps=600, learning_starts=100, train_every=4, gradient_steps=1, batch=32,
                              replay_capacity=1_000, eval_episodes=3, log_every=100)
    res = agent.train(cfg, 0, progress=False)
    assert res.steps == 600 and res.updates == (600 - 100) // 4
    assert res.episode_returns and all(r >= 8 for _, r in res.episode_returns)
    assert sum(r for _, r in res.episode_returns) <= 600
    returns = agent.evaluate(cfg, res.q_net, 3)
    assert returns.shape == (3,) and np.all((returns >= 1) & (returns <= 500))
    with pytest.raises(ValueError, match="epsilon"):
        agent.evaluate(cfg, res.q_net, 1, epsilon=2.0)
    with pytest.raises(ValueError, match="episodes"):
        agent.evaluate(cfg, res.q_net, 0)


def test_training_is_repeatable_with_a_seed():
    cfg = dqn.cartpole_config(total_steps=300, learning_starts=50, train_every=2, gradient_steps=1, batch=16,
                              replay_capacity=500, eval_episodes=1)
    a = agent.train(cfg, 3, progress=False)
    b = agent.train(cfg, 3, progress=False)
    for pa, pb in zip(a.q_net.parameters(), b.q_net.parameters()):
        torch.testing.assert_close(pa, pb, rtol=0, atol=0)
    assert a.episode_returns == b.episode_returns


def test_checkpoint_resumes_where_it_stopped(tmp_path):
    base = dict(learning_starts=50, train_every=2, gradient_steps=1, batch=16, replay_capacity=2_000,
                eval_episodes=1, checkpoint_every=100)
    path = tmp_path / "cp.pt"
    first = agent.train(dqn.cartpole_config(total_steps=200, **base), 0, progress=False, checkpoint=path)
    state = torch.load(path, weights_only=True)
    assert state["step"] == 200 and "memory" in state      # CartPole's memory is small: it is included
    # Another config is refused rather than silently mixed (total_steps may only grow: see below).
    with pytest.raises(ValueError, match=r"another config \(it differs in \['batch'\]\)"):
        agent.train(dqn.cartpole_config(total_steps=200, **{**base, "batch": 8}), 0, progress=False, checkpoint=path)
    with pytest.raises(ValueError, match="extended, not shortened"):
        agent.train(dqn.cartpole_config(total_steps=150, **base), 0, progress=False, checkpoint=path)
    # A checkpoint written before a config field existed resumes if the run keeps that field's default.
    old = torch.load(path, weights_only=True)
    del old["config"]["heldout_states"]
    torch.save(old, path)
    agent.train(dqn.cartpole_config(total_steps=200, **base), 0, progress=False, checkpoint=path)
    with pytest.raises(ValueError, match="heldout_states"):
        agent.train(dqn.cartpole_config(total_steps=200, heldout_states=5, **base), 0, progress=False, checkpoint=path)
    # Resuming the same config continues from step 200: nothing is trained again.
    again = agent.train(dqn.cartpole_config(total_steps=200, **base), 0, progress=False, checkpoint=path)
    assert again.updates == first.updates and again.episode_returns == first.episode_returns
    # Timing adds up over resumes: the resumed call trained nothing, so it reports the first's time.
    assert again.seconds >= first.seconds > 0 and again.learn_steps == first.learn_steps
    assert again.learn_seconds == pytest.approx(first.learn_seconds, rel=1e-6)
    for pa, pb in zip(first.q_net.parameters(), again.q_net.parameters()):
        torch.testing.assert_close(pa, pb, rtol=0, atol=0)


def test_a_resumed_run_with_more_steps_continues_with_the_same_replay_memory(tmp_path, monkeypatch):
    base = dict(learning_starts=50, train_every=2, gradient_steps=1, batch=16, replay_capacity=2_000,
                eval_episodes=1, checkpoint_every=100, heldout_states=10, log_every=50)
    path = tmp_path / "cp.pt"
    first = agent.train(dqn.cartpole_config(total_steps=200, **base), 0, progress=False, checkpoint=path)
    saved = first.memory.state_dict()
    loaded = {}
    original = agent.ReplayMemory.load_state_dict

    def spy(self, state):
        loaded.update(state)
        return original(self, state)

    monkeypatch.setattr(agent.ReplayMemory, "load_state_dict", spy)
    longer = agent.train(dqn.cartpole_config(total_steps=350, checkpoint_every=50,
                                             **{k: v for k, v in base.items() if k != "checkpoint_every"}),
                         0, progress=False, checkpoint=path)
    assert longer.resumed_from == 200 and longer.steps == 350
    # The memory it resumed with is the memory the first run ended with, array by array.
    assert set(loaded) == set(saved)
    for name, value in saved.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(loaded[name], value, err_msg=name)
        else:
            assert loaded[name] == value, name
    # ... and it kept them: the first run's frames are still in the (larger) memory, in place.
    n = saved["frames_written"]
    np.testing.assert_array_equal(longer.memory._frames[:n], first.memory._frames[:n])
    assert longer.memory._t > n
    # Updates continued from the saved count, and the curves continue the first run's.
    assert longer.updates == first.updates + (350 - 200) // 2
    assert longer.avg_max_q[:len(first.avg_max_q)] == first.avg_max_q
    assert [t for t, _ in longer.avg_max_q] == [0, 50, 100, 150, 200, 250, 300, 350]
    assert longer.episode_returns[:len(first.episode_returns)] == first.episode_returns


def test_training_diagnostics_are_logged():
    cfg = dqn.cartpole_config(total_steps=300, learning_starts=50, train_every=2, gradient_steps=1, batch=16,
                              replay_capacity=1_000, eval_episodes=2, log_every=100, eval_every=150,
                              heldout_states=25, eps_anneal_steps=200)
    res = agent.train(cfg, 0, progress=False)
    # Average max-Q on the held-out states: at the start and every log_every steps, as computed directly.
    assert [t for t, _ in res.avg_max_q] == [0, 100, 200, 300]
    states = agent.heldout_states(cfg, 25, seed=100_000)
    with torch.no_grad():
        direct = float(res.q_net(torch.as_tensor(states)).max(dim=1).values.double().mean())
    assert res.avg_max_q[-1][1] == pytest.approx(direct, rel=1e-6)
    # Greedy action counts per window: ε = 1 - 0.96 * t / 200 explores most of the first window.
    assert [t for t, _ in res.action_counts] == [100, 200, 300]
    assert all(len(c) == 2 and sum(c) <= 100 for _, c in res.action_counts)
    assert sum(res.action_counts[0][1]) < sum(res.action_counts[2][1])
    assert res.action_names == ("0", "1")
    # Evaluations during training, with their time kept apart.
    assert [t for t, _ in res.evals] == [150, 300] and all(len(r) == 2 for _, r in res.evals)
    np.testing.assert_array_equal(res.evals[-1][1], agent.evaluate(cfg, res.q_net))
    assert 0 < res.eval_seconds < res.seconds


def test_heldout_states_and_average_max_q():
    cfg = dqn.cartpole_config()
    a = agent.heldout_states(cfg, 30, seed=7)
    b = agent.heldout_states(cfg, 30, seed=7)
    assert a.shape == (30, 1, 4) and np.array_equal(a, b)              # deterministic given the seed
    assert not np.array_equal(a, agent.heldout_states(cfg, 30, seed=8))
    torch.manual_seed(0)
    net = agent.MLPQNetwork(4, 2, (8,))
    with torch.no_grad():
        q = net(torch.as_tensor(a)).numpy()
    assert agent.average_max_q(net, a, chunk=7) == pytest.approx(float(np.mean(q.max(axis=1))), rel=1e-6)
    with pytest.raises(ValueError, match="at least one state"):
        agent.average_max_q(net, a[:0])
    with pytest.raises(ValueError, match="n must be >= 1"):
        agent.heldout_states(cfg, 0, seed=0)


def test_record_episode_and_gif(tmp_path):
    from PIL import Image

    cfg = dataclasses.replace(dqn.pong_cpu_config(), max_episode_steps=40)
    torch.manual_seed(0)
    net = agent.AtariQNetwork(6)
    screens, score = agent.record_episode(cfg, net, max_steps=25)
    assert screens.shape == (26, 210, 160, 3) and screens.dtype == np.uint8 and -21 <= score <= 21
    path = agent.save_gif(screens, tmp_path / "a.gif")
    with Image.open(path) as im:
        assert im.n_frames >= 2 and im.size == (160, 210)
    with pytest.raises(ValueError, match=r"\(T, H, W, 3\)"):
        agent.save_gif(screens[..., 0], tmp_path / "b.gif")


def test_checkpoint_mid_run_then_resume(tmp_path):
    cfg = dqn.cartpole_config(total_steps=300, learning_starts=50, train_every=2, gradient_steps=1, batch=16,
                              replay_capacity=2_000, eval_episodes=1, checkpoint_every=100)
    path = tmp_path / "cp.pt"
    full = agent.train(cfg, 1, progress=False, checkpoint=path)
    # Cut the run short: rewrite the checkpoint as it was at step 100 by training a copy with
    # total_steps=100 under the same config dict, then resume to 300.
    state = torch.load(path, weights_only=True)
    assert state["step"] == 300 and state["updates"] == full.updates
    short = tmp_path / "short.pt"
    partial_cfg = dataclasses.replace(cfg, total_steps=100)
    agent.train(partial_cfg, 1, progress=False, checkpoint=short)
    s = torch.load(short, weights_only=True)
    s["config"] = dataclasses.asdict(cfg)
    torch.save(s, short)
    resumed = agent.train(cfg, 1, progress=False, checkpoint=short)
    assert resumed.steps == 300
    assert resumed.updates == full.updates                      # the same number of updates overall
    assert resumed.episode_returns[: len([e for e in full.episode_returns if e[0] <= 100])] == \
        [e for e in full.episode_returns if e[0] <= 100]


def test_paper_config_runs_a_few_steps():
    """The paper-scale Atari config, shortened to a few dozen steps, runs end to end on the real
    Pong ROM (so the GPU cell never holds code that CI does not run)."""
    paper = dqn.Config.paper()
    cfg = dataclasses.replace(paper.atari, total_steps=48, learning_starts=36, replay_capacity=64, batch=32,
                              max_episode_steps=60, eval_episodes=1, eps_anneal_steps=48, heldout_states=8)
    res = agent.train(cfg, 0, progress=False)
    assert res.updates == 12                 # one update at every step after learning starts (Algorithm 1)
    assert len(res.avg_max_q) == 1          # logged at step 0 (log_every is 10,000)
    assert isinstance(res.q_net, agent.AtariQNetwork) and res.q_net.kind == "2013"
    ret = agent.evaluate(cfg, res.q_net, 1)
    assert ret.shape == (1,) and -21 <= ret[0] <= 21


def test_nature_config_runs_a_few_steps():
    cfg = dataclasses.replace(dqn.atari_config("Breakout", "nature"), total_steps=48, learning_starts=36,
                              replay_capacity=64, batch=32, max_episode_steps=60, eval_episodes=1,
                              eps_anneal_steps=48, target_period=2)
    res = agent.train(cfg, 0, progress=False)
    assert res.updates == 3 and res.q_net.kind == "nature"


def test_run_writes_a_valid_results_file(tmp_path):
    cp = dqn.cartpole_config(total_steps=300, learning_starts=50, train_every=4, gradient_steps=1, batch=16,
                             replay_capacity=500, eval_episodes=2)
    config = dqn.Config(cartpole=cp, cartpole_seeds=(0, 1), games=(), threads=1)
    models = {}
    out = dqn.run(config, scale="quick", results_dir=tmp_path, models=models, progress=False)
    m = out["metrics"]
    assert m["cartpole_eval_return"] == pytest.approx(np.median([m["cartpole_eval_return.seed0"],
                                                                  m["cartpole_eval_return.seed1"]]))
    assert m["cartpole_eval_return_min"] == min(m["cartpole_eval_return.seed0"], m["cartpole_eval_return.seed1"])
    assert set(models) == {"cartpole.seed0", "cartpole.seed1"}
    assert (tmp_path / "quick" / "dqn.json").is_file()
    assert out["paper"]["pong_eval_return"]["value"] == 20


# --------------------------------------------------------------------------------------------
# The tabular MDP of the derivation
# --------------------------------------------------------------------------------------------


def _policy_q(mdp, policy):
    """Q^π by solving the linear Bellman equation for a deterministic policy (independent of
    value iteration)."""
    n, A = mdp.n_states, mdp.n_actions
    idx = np.arange(n)
    P_pi = mdp.P[idx, policy]                                    # (n, n)
    r_pi = np.einsum("st,st->s", P_pi, mdp.R[idx, policy])
    live = ~mdp.terminal
    M = np.eye(n) - mdp.gamma * P_pi * live[None, :]
    V = np.linalg.solve(M, r_pi)
    V[mdp.terminal] = 0.0
    Q = np.einsum("sat,sat->sa", mdp.P, mdp.R + mdp.gamma * (V * live)[None, None, :])
    Q[mdp.terminal] = 0.0
    return Q


def test_value_iteration_equals_the_best_of_all_policies():
    mdp = tabular.chain_mdp(6, slip=0.1, gamma=0.9)
    Q = tabular.value_iteration(mdp)
    # A fixed point of the Bellman optimality operator ...
    residual = tabular.bellman_optimality(mdp, Q) - Q
    assert np.abs(residual[~mdp.terminal]).max() < 1e-10
    # ... and the optimal value: no deterministic policy does better in any state.
    best = None
    for policy in itertools.product(range(2), repeat=6):
        V = _policy_q(mdp, np.array(policy)).max(axis=1)
        best = V if best is None else np.maximum(best, V)
    np.testing.assert_allclose(Q.max(axis=1), best, atol=1e-9)
    # The greedy policy of Q* is that best policy: right everywhere but a close call at state 0.
    assert list(Q[:-1].argmax(axis=1)) == [1, 1, 1, 1, 1]


def test_q_learning_converges_to_q_star():
    mdp = tabular.chain_mdp()
    Q = tabular.value_iteration(mdp)
    Ql = tabular.q_learning(mdp, 60_000, seed=0)
    assert np.abs(Ql - Q).max() < 0.02


@pytest.mark.parametrize("kind, tol", [("one-hot", 0.03), ("random", 0.06)])
def test_linear_dqn_converges_to_q_star(kind, tol):
    mdp = tabular.chain_mdp()
    Q = tabular.value_iteration(mdp)
    d = mdp.n_states * mdp.n_actions
    if kind == "one-hot":
        F = np.eye(d).reshape(mdp.n_states, mdp.n_actions, d)
    else:
        F = np.random.default_rng(0).normal(size=(mdp.n_states, mdp.n_actions, d))
        F /= np.linalg.norm(F, axis=2, keepdims=True)
    Qd = tabular.linear_dqn(mdp, F, 20_000, seed=0)
    live = ~mdp.terminal
    assert np.abs(Qd - Q)[live].max() < tol
    assert list(Qd[live].argmax(axis=1)[1:]) == [1, 1, 1, 1]


def test_tabular_bad_input():
    with pytest.raises(ValueError, match="n_states"):
        tabular.chain_mdp(2)
    with pytest.raises(ValueError, match="slip"):
        tabular.chain_mdp(slip=0.7)
    mdp = tabular.chain_mdp()
    with pytest.raises(ValueError, match="power"):
        tabular.q_learning(mdp, 10, power=0.4)
    with pytest.raises(ValueError, match="features"):
        tabular.linear_dqn(mdp, np.zeros((6, 2)), 10)
    with pytest.raises(ValueError, match="smaller than the batch"):
        tabular.linear_dqn(mdp, np.zeros((6, 2, 3)), 10, capacity=8, batch=32)
    with pytest.raises(ValueError, match="shape"):
        tabular.bellman_optimality(mdp, np.zeros((3, 2)))


def test_run_with_a_game_reports_the_agent_and_a_random_baseline(tmp_path):
    atari = dataclasses.replace(dqn.Config.quick().atari, total_steps=80, learning_starts=40, replay_capacity=80,
                                eps_anneal_steps=80, max_episode_steps=30, eval_episodes=2)
    config = dqn.Config(cartpole_seeds=(), atari=atari, games=("Pong",), threads=1)
    out = dqn.run(config, scale="quick", results_dir=tmp_path, progress=False, write=False)
    m = out["metrics"]
    for name in ("pong_eval_return", "pong_eval_return_sd", "pong_best_episode", "pong_random_return",
                 "pong_steps", "pong_train_s", "pong_steps_per_s"):
        assert name in m, name
    assert m["pong_steps"] == 80 and -21 <= m["pong_random_return"] <= 21
    assert m["pong_best_episode"] >= m["pong_eval_return"]
    assert out["curves"]["pong_return_vs_step"]          # episodes of 30 steps end during training


def test_run_with_the_pong_learner_writes_its_diagnostics(tmp_path, monkeypatch):
    monkeypatch.setenv("PAPERNOTES_CHECKPOINTS", str(tmp_path / "ck"))
    pong = dqn.pong_cpu_config(total_steps=80, learning_starts=40, replay_capacity=64, eps_anneal_steps=80,
                               max_episode_steps=30, eval_episodes=2, eval_every=40, log_every=20,
                               heldout_states=12, checkpoint_every=40, target_period=5)
    config = dqn.Config(cartpole_seeds=(), games=(), pong_cpu=pong, pong_cpu_seed=3, threads=1)
    models = {}
    out = dqn.run(config, scale="quick", results_dir=tmp_path, progress=False, models=models)
    m, c = out["metrics"], out["curves"]
    assert m["pong_cpu_steps"] == 80 and m["pong_cpu_updates"] == 40 and m["pong_cpu_seed"] == 3
    assert [t for t, _ in c["pong_cpu_eval_return_vs_step"]] == [40, 80]
    assert m["pong_cpu_eval_return"] == c["pong_cpu_eval_return_vs_step"][-1][1]
    assert m["pong_cpu_eval_return.step40"] == c["pong_cpu_eval_return_vs_step"][0][1]
    assert m["pong_cpu_avg_max_q"] == c["pong_cpu_avg_max_q_vs_step"][-1][1]
    assert 0 < m["pong_cpu_train_s"] and 0 < m["pong_cpu_eval_s"]
    assert [t for t, _ in c["pong_cpu_avg_max_q_vs_step"]] == [0, 20, 40, 60, 80]
    freq = [name for name in c if name.startswith("pong_cpu_action_freq_vs_step.")]
    assert {n.split(".")[-1] for n in freq} <= {"NOOP", "FIRE", "RIGHT", "LEFT", "RIGHTFIRE", "LEFTFIRE"} and freq
    assert (tmp_path / "quick" / "dqn_pong_cpu.gif").is_file() and "pong_cpu_animation_return" in m
    assert set(models) == {"pong_cpu"} and (tmp_path / "ck" / "dqn" / "quick_pong_cpu.pt").is_file()


def test_run_carries_over_the_named_results(tmp_path):
    atari = dataclasses.replace(dqn.Config.quick().atari, total_steps=60, learning_starts=40, replay_capacity=60,
                                eps_anneal_steps=60, max_episode_steps=30, eval_episodes=1, heldout_states=0)
    first = dqn.run(dqn.Config(cartpole_seeds=(), atari=atari, games=("Pong",), threads=1), scale="quick",
                    results_dir=tmp_path, progress=False)
    again = dqn.run(dqn.Config(cartpole_seeds=(), atari=atari, games=("Pong",), threads=1,
                               carry=dqn.game_names("Pong")), scale="quick", results_dir=tmp_path, progress=False,
                    models=(models := {}))
    assert "Pong" not in models                      # carried, so not trained again
    for name in dqn.game_names("Pong"):
        for kind in ("metrics", "curves"):
            if name in first[kind]:
                assert again[kind][name] == first[kind][name], name
    assert "pong_eval_return" in again["provenance"]["carried_over"]["metrics"]
