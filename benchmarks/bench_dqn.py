r"""DQN training throughput and replay memory: ours against Stable-Baselines3's ``DQN``.

**Timed.** Environment steps per second *with learning*: each run plays Pong for
``learning_starts`` steps without learning (untimed), then ``timed_steps`` more steps with one
gradient step on a minibatch of 32 after every 4th step; the clock starts just before the first
gradient step and stops after the last, and steps/s is the number of steps from the first update
on divided by that time. Ours is :func:`papernotes_core.dqn.train` (its
``TrainResult.learn_steps / learn_seconds``); SB3's is ``DQN.learn`` with a callback that starts
the clock at the same step (before its first ``train``) and stops it in ``_on_training_end``
(after the last one). The two run interleaved, ours, SB3, SB3, ours, ... (the order rotates each
round, as :func:`benchmarks.harness.interleaved_medians` does), ``repeats`` rounds, each run a
fresh agent in a **fresh process** (so one run's allocations cannot help or hurt the next);
round ``r`` uses seed ``r`` on both sides. ``metrics.steps_per_s_ratio_vs_sb3`` = median(ours) /
median(SB3) (above 1: ours is faster), with the spread of the per-round ratios (25th-75th
percentile).

**Equal on both sides.** The environment (one env each): :func:`papernotes_core.dqn.make_env`
with the "2013" preset of :func:`papernotes_core.dqn.atari.make_atari` (frame skip 4, 110×84
grey frames cropped to 84×84, rewards clipped); the network, the 2013 paper's (conv 16 8×8/4,
conv 32 4×4/2, linear 256, a linear output per action; SB3 gets it as a ``BaseFeaturesExtractor``
with ``net_arch=[]``, and the parameter counts are asserted equal), fed ``uint8`` frames divided
by 255 inside the network (SB3 treats the channel-first ``uint8`` (4, 84, 84) space as an image:
no transpose, the same /255); RMSProp (lr 2.5e-4, alpha 0.95, eps 0.01); the Huber loss
(``smooth_l1``, SB3's only loss; ours is set to ``loss="huber"`` instead of the 2013 squared
loss); gradient-norm clipping at 10 (SB3's default, set on ours); γ = 0.99; batch 32, train every
4 steps, 1 gradient step; the same ``learning_starts`` and buffer size; ε-greedy with a constant ε
(default 0.1, the rate of 90% of a 10M-step run, so the greedy action's forward pass is in the
timing; ε = 1 would time random play); ``torch.set_num_threads(threads)`` (default 1) in both;
progress bars off; the device (CUDA when available, else CPU).

**What differs, and why.**

* *Frame stacking*: SB3 gets the env wrapped in ``gymnasium.wrappers.FrameStackObservation(env,
  4)`` and stores the stacked (4, 84, 84) observation *and* next observation of every transition
  (its default ``ReplayBuffer``; that is what users get); ours stores each 84×84 frame once and
  builds the stacks when it samples (:mod:`papernotes_core.dqn.replay`).
* *Target network*: SB3 always keeps a target copy ``q_net_target``; ours in the 2013 mode has
  none (``target_period=0``, the targets come from the online network under ``no_grad``). The
  compute per update is the same: one ``no_grad`` forward pass on the next states, one forward
  and backward on the states. SB3's ``target_update_interval`` is set to 10**9, so it never copies
  weights inside the timed window (ours has nothing to copy); its targets come from the initial
  weights, ours from the current ones, which changes the numbers, not the work.
* *Warm-up actions*: SB3 acts uniformly at random before ``learning_starts``, ours ε-greedily;
  untimed.
* *Bookkeeping*: SB3 wraps the env in its ``Monitor`` and a ``DummyVecEnv``, calls callbacks and
  its logger each step; ours records episode returns and a loss curve. That is each library as
  used.

**Where our time goes, before and after.** Every run of ours records its time per step split
into the network (the gradient steps, from the minibatch's arrays to the optimizer step, and the
greedy action's forward pass), the emulator (ale-py's ``AtariEnv.step``: 4 emulated frames and
the screen) and the rest (wrappers, preprocessing, replay memory, ε-greedy, the loop); the
medians are ``metrics.network_ms_per_step``, ``emulator_ms_per_step``, ``other_ms_per_step``
and ``non_network_ms_per_step`` (= emulator + rest), and ``update_ms`` is one gradient step.
With ``isolate`` (the default), a third agent joins the interleaved rounds, ``ours_before``:
ours with the speed-ups of the last revision undone in its process (:func:`_as_before`), whose
medians are the ``before_*`` metrics.

**Replay memory.** ``metrics.replay_gb_at_1m``: the bytes of our arrays at the 2013 paper's
capacity of 1,000,000 transitions, :meth:`ReplayMemory.nbytes_at_capacity` (computed, not
allocated), in GB (10^9 bytes); ``replay_bytes_per_transition`` the same per slot.
``sb3_replay_gb_at_1m`` (default buffer) and ``sb3_replay_gb_at_1m_optimized``
(``optimize_memory_usage=True``, which needs ``handle_timeout_termination=False`` and drops
``next_observations``): SB3's ``ReplayBuffer`` is built with 10 slots for the same spaces and each
array's bytes per slot scaled to 1M. ``replay_rss_gb_100k`` / ``sb3_replay_rss_gb_100k`` /
``sb3_replay_rss_gb_100k_optimized``: the increase of the resident memory of a fresh process
from just before the buffer is created to when all ``fill`` (100,000) slots hold frames (random
``uint8`` frames, episodes of 1,000 steps); filling matters, as ``np.zeros`` pages take no memory
until written.

Writes ``results/bench/dqn.json``; ``curves`` hold every run's steps/s. Run it with
``python -m benchmarks dqn`` (about 2 minutes on two CPU cores at the defaults; the SB3 memory
figure needs about 6 GB free).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from papernotes_core import results

NAME = "dqn"
GAME = "Pong"
PRESET = "2013"
STACK = 4
LR = 2.5e-4
RMSPROP = {"alpha": 0.95, "eps": 0.01}
MAX_GRAD_NORM = 10.0
GAMMA = 0.99
BATCH = 32
TRAIN_EVERY = 4
#: SB3's target copy interval: never within a run (ours has no target network to copy).
SB3_TARGET_UPDATE_INTERVAL = 10**9
#: Steps per episode when the memory benchmark fills a buffer.
FILL_EPISODE = 1_000

_ROOT = Path(__file__).resolve().parents[1]

EQUAL = ("env: papernotes_core.dqn.make_env, make_atari preset '2013' (frame skip 4, 84x84 crop, rewards clipped), "
         "one env each; network: the 2013 net (conv16 8x8/4, conv32 4x4/2, fc256, linear head), equal parameter "
         "counts asserted, uint8 /255 inside; RMSprop lr 2.5e-4 alpha 0.95 eps 0.01; Huber loss (ours set to "
         "'huber'); grad-norm clip 10 (set on ours); gamma 0.99; batch 32; train every 4 steps; 1 gradient step; "
         "same learning_starts and buffer size; constant epsilon; equal torch threads; progress bars off; "
         "one fresh process per run")
DIFFERS = ("SB3 stacks frames in gymnasium's FrameStackObservation wrapper and stores obs and next_obs (4x84x84 "
           "each) per transition, ours stores each frame once and stacks when sampling; SB3 keeps a target "
           "network (target_update_interval 1e9: no copy while timed) and computes targets with it, ours (2013, "
           "target_period=0) with the online net under no_grad - same forward-pass work; SB3 acts at random "
           "before learning_starts, ours epsilon-greedily (untimed); SB3 adds Monitor, DummyVecEnv, callbacks "
           "and its logger")


# ----------------------------------------------------------------------------------------------
# The two agents
# ----------------------------------------------------------------------------------------------

def _our_config(learning_starts: int, timed_steps: int, buffer_size: int, epsilon: float):
    from papernotes_core.dqn import atari_config

    return atari_config(GAME, PRESET, total_steps=learning_starts + timed_steps, replay_capacity=buffer_size,
                        learning_starts=learning_starts, batch=BATCH, train_every=TRAIN_EVERY, gradient_steps=1,
                        gamma=GAMMA, optimizer="torch_rmsprop", lr=LR, target_period=0, loss="huber",
                        max_grad_norm=MAX_GRAD_NORM, eps_start=epsilon, eps_end=epsilon, eps_anneal_steps=0,
                        stack=STACK, checkpoint_every=0)


def _first_update_step(learning_starts: int) -> int:
    """The step after which both agents make their first gradient step: the first multiple of
    ``TRAIN_EVERY`` above ``learning_starts``."""
    return (learning_starts // TRAIN_EVERY + 1) * TRAIN_EVERY


def _n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _features_2013():
    """SB3 features extractor equal to the 2013 network up to its last hidden layer."""
    from stable_baselines3.common.torch_layers import BaseFeaturesExtractor

    class Features2013(BaseFeaturesExtractor):
        def __init__(self, observation_space, features_dim: int = 256):
            super().__init__(observation_space, features_dim)
            n = observation_space.shape[0]
            self.net = nn.Sequential(nn.Conv2d(n, 16, 8, stride=4), nn.ReLU(), nn.Conv2d(16, 32, 4, stride=2),
                                     nn.ReLU(), nn.Flatten(), nn.Linear(32 * 9 * 9, features_dim), nn.ReLU())

        def forward(self, observations: torch.Tensor) -> torch.Tensor:
            return self.net(observations)

    return Features2013


class _Stopwatch:
    """Adds up the time spent inside calls of a function (for the time breakdown of our agent),
    once switched on; ``starts`` lists stopwatches its first call switches on, with itself."""

    def __init__(self, fn, starts=()):
        self.fn, self.seconds, self.calls, self.on, self.starts = fn, 0.0, 0, False, list(starts)

    def __call__(self, *args, **kwargs):
        if not self.on and self.starts:
            for w in self.starts:
                w.on = True
            self.on = True
        if not self.on:
            return self.fn(*args, **kwargs)
        t = time.perf_counter()
        try:
            return self.fn(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - t
            self.calls += 1


def _as_before() -> None:
    """Put our agent back the way it ran before the speed-ups of this benchmark's last revision, in
    this process: convolutions in the default (NCHW) layout, and torch's RMSprop and gradient
    clipping with their per-tensor loops (``foreach=False``) instead of the multi-tensor kernels."""
    from papernotes_core.dqn import agent

    init, make_optimizer = agent.AtariQNetwork.__init__, agent.make_optimizer

    def plain_init(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self.features.to(memory_format=torch.contiguous_format)

    def plain_forward(self, frames):
        return self.head(self.features(frames.float().mul_(1.0 / 255.0)))

    def loop_optimizer(cfg, params):
        if cfg.optimizer != "torch_rmsprop":
            return make_optimizer(cfg, params)
        return torch.optim.RMSprop(list(params), lr=cfg.lr, alpha=0.95, eps=0.01, foreach=False)

    clip = nn.utils.clip_grad_norm_
    agent.AtariQNetwork.__init__, agent.AtariQNetwork.forward = plain_init, plain_forward
    agent.make_optimizer = loop_optimizer
    nn.utils.clip_grad_norm_ = lambda params, max_norm, foreach=None: clip(params, max_norm, foreach=False)


def _run_ours(learning_starts: int, timed_steps: int, buffer_size: int, epsilon: float, seed: int,
              device: str) -> dict:
    """One timed run of ours, with where its time goes: ``network`` (the gradient steps, from the
    minibatch's arrays to the optimizer step, and the greedy action's forward pass), ``emulator``
    (the ALE env's own ``step``: the emulator's 4 frames and the screen), and the rest (Gymnasium
    wrappers, preprocessing, replay memory, ε-greedy, the loop), each in ms per timed step. The
    stopwatches run only from the first gradient step on, like the clock."""
    import ale_py.env

    from papernotes_core.dqn import agent

    cfg = _our_config(learning_starts, timed_steps, buffer_size, epsilon)
    watches = {"act": _Stopwatch(agent.greedy_actions), "emulator": _Stopwatch(ale_py.env.AtariEnv.step)}
    watches["update"] = _Stopwatch(agent.update, starts=list(watches.values()))
    saved = agent.update, agent.greedy_actions, ale_py.env.AtariEnv.step
    agent.update, agent.greedy_actions = watches["update"], watches["act"]
    emulator = watches["emulator"]
    ale_py.env.AtariEnv.step = lambda self, action: emulator(self, action)
    try:
        # The first gradient step switches the stopwatches on, as it starts train()'s clock.
        res = agent.train(cfg, seed, device=device, progress=False)
    finally:
        agent.update, agent.greedy_actions, ale_py.env.AtariEnv.step = saved
    steps = res.learn_steps
    per_step = {k: w.seconds / steps * 1e3 for k, w in watches.items()}
    total = res.learn_seconds / steps * 1e3
    network = per_step["update"] + per_step["act"]
    return {"steps_per_s": steps / res.learn_seconds, "timed_steps": steps,
            "seconds": res.learn_seconds, "updates": res.updates, "params": _n_params(res.q_net),
            "ms_per_step": total, "update_ms_per_step": per_step["update"], "act_ms_per_step": per_step["act"],
            "network_ms_per_step": network, "emulator_ms_per_step": per_step["emulator"],
            "non_network_ms_per_step": total - network,
            "other_ms_per_step": total - network - per_step["emulator"],
            "update_ms": watches["update"].seconds / max(1, watches["update"].calls) * 1e3}


def _run_sb3(learning_starts: int, timed_steps: int, buffer_size: int, epsilon: float, seed: int,
             device: str) -> dict:
    import gymnasium as gym
    from stable_baselines3 import DQN
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.preprocessing import is_image_space, is_image_space_channels_first
    from stable_baselines3.common.vec_env import VecTransposeImage, is_vecenv_wrapped

    from papernotes_core.dqn import make_env

    cfg = _our_config(learning_starts, timed_steps, buffer_size, epsilon)
    env = gym.wrappers.FrameStackObservation(make_env(cfg, seed=seed), STACK)
    space = env.observation_space
    if not (space.shape == (STACK, 84, 84) and is_image_space(space) and is_image_space_channels_first(space)):
        raise RuntimeError(f"SB3 would not see the stacked frames as a channel-first uint8 image: {space}")
    start_at = _first_update_step(learning_starts)

    class Clock(BaseCallback):
        def __init__(self):
            super().__init__(verbose=0)
            self.t0 = self.t1 = None

        def _on_step(self) -> bool:
            if self.num_timesteps == start_at:
                self.t0 = time.perf_counter()
            return True

        def _on_training_end(self) -> None:
            self.t1 = time.perf_counter()

    total = learning_starts + timed_steps
    model = DQN("CnnPolicy", env, learning_rate=LR, buffer_size=buffer_size, learning_starts=learning_starts,
                batch_size=BATCH, tau=1.0, gamma=GAMMA, train_freq=TRAIN_EVERY, gradient_steps=1,
                target_update_interval=SB3_TARGET_UPDATE_INTERVAL, exploration_fraction=0.5,
                exploration_initial_eps=epsilon, exploration_final_eps=epsilon, max_grad_norm=MAX_GRAD_NORM,
                policy_kwargs=dict(features_extractor_class=_features_2013(),
                                   features_extractor_kwargs=dict(features_dim=256), net_arch=[],
                                   normalize_images=True, optimizer_class=torch.optim.RMSprop,
                                   optimizer_kwargs=dict(RMSPROP)),
                seed=seed, device=device, verbose=0)
    if is_vecenv_wrapped(model.get_env(), VecTransposeImage):
        raise RuntimeError("SB3 transposed the observations; the comparison assumes it does not")
    clock = Clock()
    model.learn(total_timesteps=total, callback=clock, progress_bar=False)
    if clock.t0 is None or clock.t1 is None:
        raise RuntimeError("SB3's run ended before its first gradient step; raise timed_steps")
    steps = model.num_timesteps - start_at + 1
    return {"steps_per_s": steps / (clock.t1 - clock.t0), "timed_steps": steps, "seconds": clock.t1 - clock.t0,
            "updates": int(model._n_updates), "params": _n_params(model.q_net),
            "target_params": _n_params(model.q_net_target)}


def _timed_run(kind: str, threads: int, **kw) -> dict:
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        if kind == "ours_before":
            _as_before()
        out = (_run_sb3 if kind == "sb3" else _run_ours)(**kw)
    finally:
        torch.set_num_threads(previous)
    out["threads"] = threads
    return out


# ----------------------------------------------------------------------------------------------
# Replay memory
# ----------------------------------------------------------------------------------------------

def _sb3_spaces():
    from gymnasium import spaces

    return spaces.Box(0, 255, (STACK, 84, 84), np.uint8), spaces.Discrete(6)


def _sb3_buffer(size: int, optimized: bool):
    from stable_baselines3.common.buffers import ReplayBuffer

    obs_space, act_space = _sb3_spaces()
    return ReplayBuffer(size, obs_space, act_space, device="cpu", n_envs=1, optimize_memory_usage=optimized,
                        handle_timeout_termination=not optimized)


def _sb3_bytes_per_transition(optimized: bool) -> int:
    """Bytes per transition of SB3's ReplayBuffer arrays (one env), from a 10-slot buffer."""
    size = 10
    buf = _sb3_buffer(size, optimized)
    arrays = [getattr(buf, name) for name in ("observations", "next_observations", "actions", "rewards", "dones",
                                              "timeouts") if isinstance(getattr(buf, name, None), np.ndarray)]
    total = sum(a.nbytes for a in arrays)
    if total % size:
        raise RuntimeError(f"SB3 buffer of {size} slots takes {total} bytes, not a multiple of {size}")
    return total // size


def _rss() -> int:
    import psutil

    return psutil.Process().memory_info().rss


def _fill_rss(kind: str, fill: int, *, warm_up: bool = True) -> dict:
    """Resident-memory increase from creating a buffer of ``fill`` slots to having filled them all
    (after filling a 64-slot one first, so that imports and first-call allocations are not counted)."""
    import gc

    if warm_up:
        _fill_rss(kind, 64, warm_up=False)
    rng = np.random.default_rng(0)
    pool = rng.integers(0, 256, size=(64 + STACK, 84, 84), dtype=np.uint8)
    gc.collect()
    before = _rss()
    if kind == "ours":
        from papernotes_core.dqn import ReplayMemory

        mem = ReplayMemory(fill, (84, 84), stack=STACK, seed=0)
        written, step = 0, 0
        while written < fill:
            mem.start_episode(pool[written % 64])
            written += 1
            for t in range(FILL_EPISODE):
                if written >= fill:
                    break
                end = t == FILL_EPISODE - 1
                mem.add(int(step % 6), 0.0, pool[written % 64], end, False)
                written += 1
                step += 1
        nbytes = mem.nbytes
    else:
        buf = _sb3_buffer(fill, kind == "sb3_optimized")
        action, reward, info = np.zeros((1, 1), np.int64), np.zeros(1, np.float32), [{}]
        for i in range(fill):
            j = i % 64
            done = np.array([(i + 1) % FILL_EPISODE == 0])
            buf.add(pool[j:j + STACK][None], pool[j + 1:j + 1 + STACK][None], action, reward, done, info)
        if not buf.full:
            raise RuntimeError("SB3's buffer did not fill")
        nbytes = sum(a.nbytes for a in (buf.observations, getattr(buf, "next_observations", None), buf.actions,
                                        buf.rewards, buf.dones, buf.timeouts) if isinstance(a, np.ndarray))
    after = _rss()
    return {"rss_increase": after - before, "nbytes": nbytes}


# ----------------------------------------------------------------------------------------------
# Child processes
# ----------------------------------------------------------------------------------------------

_CHILD = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
from benchmarks import bench_dqn
print(json.dumps(bench_dqn._child(json.loads(sys.argv[2]))))
"""


def _child(job: dict) -> dict:
    job = dict(job)
    what = job.pop("what")
    if what == "memory":
        return _fill_rss(job["kind"], job["fill"])
    return _timed_run(what, **job)


def _call(job: dict, isolate: bool) -> dict:
    if not isolate:
        return _child(job)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(_ROOT / "src"),
                                                                       os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run([sys.executable, "-c", _CHILD, str(_ROOT), json.dumps(job)], capture_output=True,
                          text=True, check=False, env=env, cwd=_ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"the DQN benchmark's child process ({job}) failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------------------------
# The benchmark
# ----------------------------------------------------------------------------------------------

def run(write: bool = True, repeats: int = 3, learning_starts: int = 1000, timed_steps: int = 2000,
        fill: int = 100_000, device: str | None = None, *, buffer_size: int = 100_000, epsilon: float = 0.1,
        threads: int = 1, isolate: bool = True) -> dict:
    """Time both agents interleaved and measure both replay memories; return (and with ``write``,
    write) the results. ``isolate=False`` runs everything in this process (for tests: faster,
    but the memory figures then share the process with what ran before)."""
    for name, value, low in (("repeats", repeats, 3), ("learning_starts", learning_starts, BATCH),
                             ("timed_steps", timed_steps, TRAIN_EVERY), ("fill", fill, 2 * STACK),
                             ("buffer_size", buffer_size, BATCH), ("threads", threads, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    if not 0.0 <= epsilon <= 1.0:
        raise ValueError(f"epsilon must lie in [0, 1], got {epsilon!r}")
    if _first_update_step(learning_starts) > learning_starts + timed_steps:
        raise ValueError(f"timed_steps={timed_steps} ends before the first gradient step")
    import stable_baselines3

    from papernotes_core.dqn import ReplayMemory

    start = time.perf_counter()
    code = results.code_state()
    device = device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu")
    kinds = ["ours", "sb3", "ours_before"] if isolate else ["ours", "sb3"]
    runs: dict[str, list[dict]] = {k: [] for k in kinds}
    for r in range(repeats):
        order = kinds[r % len(kinds):] + kinds[:r % len(kinds)]
        for kind in order:
            runs[kind].append(_call({"what": kind, "threads": threads, "learning_starts": learning_starts,
                                     "timed_steps": timed_steps, "buffer_size": buffer_size, "epsilon": epsilon,
                                     "seed": r, "device": device}, isolate))
    params = {k: {run["params"] for run in runs[k]} for k in kinds}
    if len(set().union(*params.values())) != 1:
        raise RuntimeError(f"the two networks differ in size: {params}")
    updates = {k: {run["updates"] for run in runs[k]} for k in kinds}
    if len(set().union(*updates.values())) != 1:
        raise RuntimeError(f"the two agents made different numbers of gradient steps: {updates}")
    sps = {k: [run["steps_per_s"] for run in runs[k]] for k in kinds}
    per_round = [a / b for a, b in zip(sps["ours"], sps["sb3"])]
    q = statistics.quantiles(per_round, n=4)
    med = {k: statistics.median(v) for k, v in sps.items()}

    memory = {kind: _call({"what": "memory", "kind": kind, "fill": fill}, isolate)
              for kind in ("ours", "sb3", "sb3_optimized")}
    ours_bpt = ReplayMemory.bytes_per_transition((84, 84))
    metrics = {
        "steps_per_s_ratio_vs_sb3": med["ours"] / med["sb3"],
        "steps_per_s_ratio_q25": q[0], "steps_per_s_ratio_q75": q[2],
        "ours_steps_per_s": med["ours"], "sb3_steps_per_s": med["sb3"],
        "replay_gb_at_1m": ReplayMemory.nbytes_at_capacity(1_000_000, (84, 84)) / 1e9,
        "replay_bytes_per_transition": ours_bpt,
        "sb3_replay_gb_at_1m": _sb3_bytes_per_transition(False) * 1_000_000 / 1e9,
        "sb3_replay_gb_at_1m_optimized": _sb3_bytes_per_transition(True) * 1_000_000 / 1e9,
        "sb3_replay_bytes_per_transition": _sb3_bytes_per_transition(False),
        "replay_rss_gb_100k": memory["ours"]["rss_increase"] / 1e9,
        "sb3_replay_rss_gb_100k": memory["sb3"]["rss_increase"] / 1e9,
        "sb3_replay_rss_gb_100k_optimized": memory["sb3_optimized"]["rss_increase"] / 1e9,
        "repeats": repeats,
    }
    for name in ("ms_per_step", "update_ms_per_step", "act_ms_per_step", "network_ms_per_step",
                 "emulator_ms_per_step", "non_network_ms_per_step", "other_ms_per_step", "update_ms"):
        metrics[name] = statistics.median(run[name] for run in runs["ours"])
        if "ours_before" in runs:     # the same breakdown before the speed-ups (_as_before)
            metrics[f"before_{name}"] = statistics.median(run[name] for run in runs["ours_before"])
    if "ours_before" in runs:
        metrics["before_steps_per_s"] = statistics.median(sps["ours_before"])
        metrics["before_steps_per_s_ratio_vs_sb3"] = metrics["before_steps_per_s"] / med["sb3"]
    data = {
        "slug": NAME, "scale": "bench",
        "metrics": metrics,
        "curves": {"ours_steps_per_s": [[i, v] for i, v in enumerate(sps["ours"])],
                   "sb3_steps_per_s": [[i, v] for i, v in enumerate(sps["sb3"])],
                   "steps_per_s_ratio_per_round": [[i, v] for i, v in enumerate(per_round)]},
        "paper": {},
        "provenance": results.provenance(
            {"game": GAME, "preset": PRESET, "learning_starts": learning_starts, "timed_steps": timed_steps,
             "timed_from_step": _first_update_step(learning_starts), "gradient_steps_per_run": updates["ours"].pop(),
             "buffer_size": buffer_size, "epsilon": epsilon, "repeats": repeats, "threads": threads,
             "isolate": isolate, "fill": fill, "fill_episode_steps": FILL_EPISODE, "gb": "1e9 bytes",
             "network_params": params["ours"].pop(), "batch": BATCH, "train_every": TRAIN_EVERY,
             "lr": LR, "rmsprop": RMSPROP, "max_grad_norm": MAX_GRAD_NORM, "gamma": GAMMA, "loss": "huber",
             "sb3_target_update_interval": SB3_TARGET_UPDATE_INTERVAL, "peer": "stable_baselines3.DQN",
             "sb3_version": stable_baselines3.__version__, "equal": EQUAL, "differs": DIFFERS,
             "runs": runs, "memory_nbytes": {k: v["nbytes"] for k, v in memory.items()}},
            list(range(repeats)), wall_s=time.perf_counter() - start, device=device,
            command=f"python -m benchmarks {NAME}", code=code),
    }
    data = results.validate(data)
    if write:
        results.write(data)
    return data
