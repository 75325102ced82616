r"""The DQN agent: the networks, ε-greedy exploration, the TD target and loss, the training loop
of Algorithm 1 (Mnih et al. 2013), its evaluation and its checkpoints.

Algorithm 1 in one screen::

    initialise the replay memory D (capacity N) and Q with random weights θ
    for every step:
        a = random action with probability ε, else argmax_a Q(φ(s), a; θ)
        execute a, observe r and the next frame; store (φ_t, a, r, φ_{t+1}) in D
        sample a minibatch of transitions from D
        y = r                                   if the episode terminated at φ_{t+1}
          = r + γ max_a' Q(φ_{t+1}, a'; θ⁻)     otherwise
        gradient step on (y − Q(φ_t, a; θ))²

In the 2013 paper θ⁻ = θ (the targets come from the current network, held fixed only while one
loss is differentiated): :attr:`AgentConfig.target_period` ``= 0``. The 2015 Nature paper adds a
separate target network θ⁻ copied from θ every C updates (``target_period = C``) and clips the
TD error to [−1, 1], which is the Huber loss (``loss = "huber"``).

One *step* here is one agent decision. With the Atari presets one decision spans 4 emulator
frames (frame skip k = 4); see :mod:`papernotes_core.dqn.atari`.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .. import training
from ..training import check_int
from .replay import ReplayMemory

NETWORKS = ("mlp", "2013", "nature")
LOSSES = ("mse", "huber")
OPTIMIZERS = ("rmsprop", "adam", "torch_rmsprop")
#: Fields a checkpoint may be resumed under with another value: a run can be extended.
EXTENDABLE = ("total_steps", "checkpoint_every")
_MISSING = object()


# --------------------------------------------------------------------------------------------
# Networks
# --------------------------------------------------------------------------------------------


class AtariQNetwork(nn.Module):
    r"""The convolutional Q-network: a stack of ``stack`` 84×84 frames in, one value per action out.

    ``"2013"`` (Sec. 4.1): 16 filters 8×8 stride 4, 32 filters 4×4 stride 2, 256 fully connected
    units, ReLU after each, a linear output per action. ``"nature"`` (2015, Methods): 32 8×8/4,
    64 4×4/2, 64 3×3/1, 512 units. Frames come in as ``uint8`` and are scaled by 1/255 here, so
    the replay memory can keep bytes.
    """

    def __init__(self, n_actions: int, stack: int = 4, kind: str = "2013") -> None:
        super().__init__()
        check_int("n_actions", n_actions, 1)
        check_int("stack", stack, 1)
        if kind == "2013":
            self.features = nn.Sequential(nn.Conv2d(stack, 16, 8, stride=4), nn.ReLU(),
                                          nn.Conv2d(16, 32, 4, stride=2), nn.ReLU(), nn.Flatten())
            width, hidden = 32 * 9 * 9, 256
        elif kind == "nature":
            self.features = nn.Sequential(nn.Conv2d(stack, 32, 8, stride=4), nn.ReLU(),
                                          nn.Conv2d(32, 64, 4, stride=2), nn.ReLU(),
                                          nn.Conv2d(64, 64, 3, stride=1), nn.ReLU(), nn.Flatten())
            width, hidden = 64 * 7 * 7, 512
        else:
            raise ValueError(f"Atari network kind must be '2013' or 'nature', got {kind!r}")
        self.kind, self.stack = kind, stack
        self.head = nn.Sequential(nn.Linear(width, hidden), nn.ReLU(), nn.Linear(hidden, n_actions))
        # Channels-last ("NHWC") convolutions: oneDNN runs these layers faster in that layout on the
        # CPU (benchmarks/bench_dqn.py measures it); the values are the same, only the memory order.
        self.features.to(memory_format=torch.channels_last)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        if frames.dim() != 4 or tuple(frames.shape[1:]) != (self.stack, 84, 84):
            raise ValueError(f"expected frames of shape (batch, {self.stack}, 84, 84), got {tuple(frames.shape)}")
        x = frames.contiguous(memory_format=torch.channels_last).float().mul_(1.0 / 255.0)
        return self.head(self.features(x))


class MLPQNetwork(nn.Module):
    """A fully connected Q-network for vector observations (CartPole): the stacked observation is
    flattened, then ``hidden`` ReLU layers and a linear output per action."""

    def __init__(self, obs_dim: int, n_actions: int, hidden: tuple[int, ...] = (64, 64)) -> None:
        super().__init__()
        check_int("obs_dim", obs_dim, 1)
        check_int("n_actions", n_actions, 1)
        if not hidden or not all(isinstance(h, int) and h > 0 for h in hidden):
            raise ValueError(f"hidden must be a non-empty tuple of positive layer widths, got {hidden!r}")
        layers: list[nn.Module] = [nn.Flatten()]
        width = obs_dim
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        layers.append(nn.Linear(width, n_actions))
        self.net = nn.Sequential(*layers)
        self.obs_dim = obs_dim

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        if obs.dim() < 2 or math.prod(obs.shape[1:]) != self.obs_dim:
            raise ValueError(f"expected observations of shape (batch, ...) with {self.obs_dim} values each, "
                             f"got {tuple(obs.shape)}")
        return self.net(obs.float())


# --------------------------------------------------------------------------------------------
# The pieces of the update
# --------------------------------------------------------------------------------------------


def epsilon(step: int, start: float = 1.0, end: float = 0.1, anneal_steps: int = 1_000_000) -> float:
    r"""The exploration rate at ``step``: linear from ``start`` to ``end`` over ``anneal_steps``
    steps, then constant (Sec. 5: "ε annealed linearly from 1 to 0.1 over the first million
    frames, and fixed at 0.1 thereafter").

    .. math:: \varepsilon(t) = \varepsilon_0 + (\varepsilon_1 - \varepsilon_0)\,\min(1, t / T)
    """
    if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
        raise ValueError(f"step must be an int >= 0, got {step!r}")
    if not (0.0 <= end <= 1.0 and 0.0 <= start <= 1.0):
        raise ValueError(f"start and end must lie in [0, 1], got start={start}, end={end}")
    if isinstance(anneal_steps, bool) or not isinstance(anneal_steps, (int, np.integer)) or anneal_steps < 0:
        raise ValueError(f"anneal_steps must be an int >= 0, got {anneal_steps!r}")
    if anneal_steps == 0:
        return float(end)
    return float(start + (end - start) * min(1.0, step / anneal_steps))


def td_target(reward: torch.Tensor, terminated: torch.Tensor, next_q: torch.Tensor, gamma: float) -> torch.Tensor:
    r"""The TD target of Algorithm 1:

    .. math:: y = r + \gamma\,(1 - \text{terminated})\,\max_{a'} Q(s', a'; \theta^-)

    ``next_q`` holds :math:`Q(s', \cdot\,; \theta^-)` for each transition, shape ``(batch,
    n_actions)``: from the target network where there is one, else from the current network
    (2013), computed without gradient. Only a *terminal* state stops the bootstrap; a time-limit
    truncation is not a terminal state of the MDP, so its transition bootstraps as usual (the
    replay memory keeps the two flags apart).
    """
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must lie in [0, 1], got {gamma}")
    if next_q.dim() != 2 or reward.shape != (next_q.shape[0],) or terminated.shape != reward.shape:
        raise ValueError(f"expected reward and terminated of shape (batch,) and next_q of shape (batch, n_actions); "
                         f"got {tuple(reward.shape)}, {tuple(terminated.shape)}, {tuple(next_q.shape)}")
    return reward.float() + gamma * (1.0 - terminated.float()) * next_q.max(dim=1).values


def td_loss(q_taken: torch.Tensor, target: torch.Tensor, kind: str = "mse") -> torch.Tensor:
    r"""The loss on the TD error :math:`\delta = y - Q(s, a; \theta)`, averaged over the batch.

    * ``"mse"`` (2013): :math:`\tfrac12 \delta^2`, whose gradient with respect to Q is
      :math:`-\delta`.
    * ``"huber"`` (Nature): :math:`\tfrac12\delta^2` for :math:`|\delta| \le 1`, else
      :math:`|\delta| - \tfrac12`; its gradient is :math:`-\operatorname{clip}(\delta, -1, 1)`,
      which is what "clipping the error term to [−1, 1]" means.
    """
    if kind not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {kind!r}")
    if q_taken.shape != target.shape:
        raise ValueError(f"q_taken and target must have the same shape, got {tuple(q_taken.shape)} and {tuple(target.shape)}")
    if kind == "mse":
        return 0.5 * F.mse_loss(q_taken, target)
    return F.smooth_l1_loss(q_taken, target, beta=1.0)


def greedy_actions(q_net: nn.Module, states: np.ndarray, device: torch.device) -> np.ndarray:
    """``argmax_a Q(s, a)`` for a batch of stacked states (ties go to the lowest action)."""
    with torch.no_grad():
        return q_net(torch.as_tensor(states, device=device)).argmax(dim=1).cpu().numpy()


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class AgentConfig:
    """Every knob of one DQN training run, in one place. The defaults are the 2013 paper's where
    it gives them (Sec. 5 and Algorithm 1): RMSProp, minibatch 32, replay memory of 1M
    transitions, ε from 1 to 0.1 over the first 1M steps, frame skip 4 (in the environment), 10M
    steps, one minibatch update at every step (``train_every=1``, Algorithm 1's inner loop; the
    Nature agent's "update frequency" is 4), no target network, squared loss, rewards clipped (in
    the environment). ``lr`` and γ are not in the paper: 2.5e-4 and 0.99 are the Nature paper's
    values, and ``"rmsprop"`` is DeepMind's centred RMSProp (:class:`.optim.CentredRMSprop`), the
    optimizer of their code; ``"torch_rmsprop"`` is ``torch.optim.RMSprop(alpha=0.95, eps=0.01)``,
    which earlier versions of this chapter used (uncentred, eps outside the root: see
    :mod:`.optim`), kept to reproduce the runs made with it; ``"adam"`` is Adam.

    Diagnostics (2013 paper, Fig. 2): with ``heldout_states = n > 0`` a random policy collects
    n states before training and the average over them of :math:`\\max_a Q(s, a)` is logged every
    ``log_every`` steps; with ``eval_every = m > 0`` the network is evaluated (``eval_episodes``
    episodes at ε = ``eval_epsilon``) every m steps during training. A checkpoint may be resumed
    with a larger ``total_steps`` (and another ``checkpoint_every``): the run is extended.

    ``target_period`` counts *parameter updates* (the Nature paper's C = 10,000 is "measured in
    the number of parameter updates"); 0 means no target network (2013). ``eval_epsilon`` is the
    ε of evaluation (the 2013 paper's Table 1 used 0.05). ``life_loss_terminal`` treats the loss
    of a life as a terminal state for learning while the game goes on (Nature; the Atari env
    flags it in ``info["life_lost"]``).
    """

    env: str = "Pong"
    preprocessing: str = "2013"
    network: str = "2013"
    hidden: tuple[int, ...] = (64, 64)
    stack: int = 4
    total_steps: int = 10_000_000
    replay_capacity: int = 1_000_000
    batch: int = 32
    learning_starts: int = 50_000
    train_every: int = 1
    gradient_steps: int = 1
    gamma: float = 0.99
    optimizer: str = "rmsprop"
    lr: float = 2.5e-4
    target_period: int = 0
    loss: str = "mse"
    eps_start: float = 1.0
    eps_end: float = 0.1
    eps_anneal_steps: int = 1_000_000
    eval_episodes: int = 30
    eval_epsilon: float = 0.05
    max_grad_norm: float | None = None
    life_loss_terminal: bool = False
    max_episode_steps: int | None = None
    log_every: int = 10_000
    checkpoint_every: int = 0
    eval_every: int = 0
    heldout_states: int = 0

    def __post_init__(self):
        if not isinstance(self.env, str) or not self.env:
            raise ValueError(f"env must be a Gymnasium id or an Atari game name, got {self.env!r}")
        if self.network not in NETWORKS:
            raise ValueError(f"network must be one of {NETWORKS}, got {self.network!r}")
        allowed = ("2013", "nature") if self.network != "mlp" else ("none",)
        if self.preprocessing not in allowed:
            raise ValueError(f"preprocessing for the {self.network!r} network must be one of {allowed}, "
                             f"got {self.preprocessing!r}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {LOSSES}, got {self.loss!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if isinstance(self.stack, bool) or not isinstance(self.stack, int) or self.stack < 1:
            raise ValueError(f"stack size must be >= 1, got {self.stack!r}")
        for name in ("total_steps", "learning_starts", "target_period", "eps_anneal_steps", "log_every",
                     "checkpoint_every", "eval_every", "heldout_states"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"{name} must be an int >= 0, got {v!r}")
        for name in ("replay_capacity", "batch", "train_every", "gradient_steps", "eval_episodes"):
            check_int(name, getattr(self, name), 1)
        if self.replay_capacity < self.batch:
            raise ValueError(f"replay capacity {self.replay_capacity} is smaller than the batch size {self.batch}")
        if not 0.0 <= self.gamma <= 1.0:
            raise ValueError(f"gamma must lie in [0, 1], got {self.gamma}")
        for name in ("eps_start", "eps_end", "eval_epsilon"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")

    @property
    def is_atari(self) -> bool:
        return self.network in ("2013", "nature")


# --------------------------------------------------------------------------------------------
# Environments and networks from a config
# --------------------------------------------------------------------------------------------


def make_env(cfg: AgentConfig, seed: int | None = None, render_mode: str | None = None):
    """The environment ``cfg`` names: an Atari game through :func:`atari.make_atari` with the
    config's preprocessing preset (single 84×84 frames; the replay memory stacks them), or any
    other Gymnasium id (e.g. ``"CartPole-v1"``) as Gymnasium makes it."""
    import gymnasium as gym

    if cfg.is_atari:
        from . import atari

        return atari.make_atari(cfg.env, _preprocessing(cfg), seed=seed, render_mode=render_mode)
    env = gym.make(cfg.env, render_mode=render_mode)
    if cfg.max_episode_steps is not None:
        env = gym.wrappers.TimeLimit(env, cfg.max_episode_steps)
    env = gym.wrappers.RecordEpisodeStatistics(env)
    if seed is not None:
        env.action_space.seed(seed)
    return env


def _preprocessing(cfg: AgentConfig):
    from . import atari

    pre = atari.PREPROCESSING[cfg.preprocessing] if isinstance(cfg.preprocessing, str) else cfg.preprocessing
    if cfg.max_episode_steps is not None:
        pre = dataclasses.replace(pre, max_episode_steps=cfg.max_episode_steps)
    return pre


def make_network(cfg: AgentConfig, obs_shape: tuple[int, ...], n_actions: int) -> nn.Module:
    """The Q-network ``cfg.network`` names for observations of ``obs_shape`` (one frame)."""
    if cfg.is_atari:
        if tuple(obs_shape) != (84, 84):
            raise ValueError(f"the Atari networks take 84×84 frames, got observations of shape {tuple(obs_shape)}")
        return AtariQNetwork(n_actions, cfg.stack, cfg.network)
    return MLPQNetwork(cfg.stack * math.prod(obs_shape), n_actions, cfg.hidden)


def make_optimizer(cfg: AgentConfig, params) -> torch.optim.Optimizer:
    """The optimizer ``cfg.optimizer`` names, at ``cfg.lr``: ``"rmsprop"`` is DeepMind's centred
    RMSProp (decay 0.95, 0.01 inside the square root; :class:`.optim.CentredRMSprop`),
    ``"torch_rmsprop"`` is ``torch.optim.RMSprop(alpha=0.95, eps=0.01)`` (uncentred, eps outside
    the root), ``"adam"`` is Adam with torch's defaults (the fused kernel on CPU and CUDA)."""
    from .optim import CentredRMSprop

    params = list(params)
    if cfg.optimizer == "rmsprop":
        return CentredRMSprop(params, lr=cfg.lr, alpha=0.95, eps=0.01)
    if cfg.optimizer == "torch_rmsprop":
        return torch.optim.RMSprop(params, lr=cfg.lr, alpha=0.95, eps=0.01, foreach=True)
    fused = all(p.device.type in ("cpu", "cuda") for p in params)
    return torch.optim.Adam(params, lr=cfg.lr, fused=fused)


def heldout_states(cfg: AgentConfig, n: int, seed: int, *, stride: int = 4) -> np.ndarray:
    """The 2013 paper's fixed set of states for its Q diagnostic (Sec. 5.1, Fig. 2): ``n`` stacked
    states, shape ``(n, stack, *obs_shape)``, met by a uniformly random policy in an environment
    of its own (seeded from ``seed``) before training, one every ``stride`` steps. Deterministic
    given ``seed``, so a resumed run collects the same set again."""
    n = check_int("n", n, 1)
    stride = check_int("stride", stride, 1)
    env = make_env(cfg, seed=seed)
    rng = np.random.default_rng([seed, 4])
    obs, _ = env.reset(seed=seed)
    frames = [obs] * cfg.stack
    out, t = [], 0
    while len(out) < n:
        obs, _, terminated, truncated, _ = env.step(int(rng.integers(env.action_space.n)))
        t += 1
        if terminated or truncated:
            obs, _ = env.reset()
            frames = [obs] * cfg.stack
        else:
            frames = (frames + [obs])[-cfg.stack:]
        if t % stride == 0:
            out.append(np.stack(frames))
    env.close()
    return np.stack(out)


def average_max_q(q_net: nn.Module, states: np.ndarray | torch.Tensor, device: torch.device | str | None = None,
                  chunk: int = 256) -> float:
    r"""The 2013 paper's Q diagnostic: :math:`\frac1n \sum_i \max_a Q(s_i, a)` over the held-out
    ``states`` (evaluated in chunks, without gradient)."""
    device = next(q_net.parameters()).device if device is None else torch.device(device)
    if len(states) == 0:
        raise ValueError("average_max_q needs at least one state, got an empty array")
    total = 0.0
    was_training = q_net.training
    q_net.eval()
    with torch.no_grad():
        for i in range(0, len(states), chunk):
            x = torch.as_tensor(states[i:i + chunk], device=device)
            total += float(q_net(x).max(dim=1).values.double().sum())
    q_net.train(was_training)
    return total / len(states)


def _pack_memory(state: dict) -> dict:
    """A replay memory's state with its arrays zlib-compressed (Atari frames compress 10-30×)."""
    import zlib

    return {k: {"zlib": zlib.compress(np.ascontiguousarray(v).tobytes(), 1), "dtype": v.dtype.str,
                "shape": list(v.shape)} if isinstance(v, np.ndarray) else v for k, v in state.items()}


def _unpack_memory(state: dict) -> dict:
    import zlib

    out = {}
    for k, v in state.items():
        if isinstance(v, dict) and "zlib" in v:
            v = np.frombuffer(zlib.decompress(v["zlib"]), dtype=np.dtype(v["dtype"])).reshape(v["shape"]).copy()
        elif isinstance(v, torch.Tensor):
            v = v.numpy()
        out[k] = v
    return out


# --------------------------------------------------------------------------------------------
# Training (Algorithm 1)
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class TrainResult:
    """What :func:`train` returns: the trained network, the per-episode returns seen while
    training (raw game score), the logged curves, timing, and the memory it used."""

    q_net: nn.Module
    episode_returns: list[tuple[int, float]]
    losses: list[tuple[int, float]]
    steps: int
    updates: int
    seconds: float
    learn_seconds: float
    learn_steps: int
    memory: ReplayMemory
    avg_max_q: list[tuple[int, float]] = dataclasses.field(default_factory=list)
    action_counts: list[tuple[int, list[int]]] = dataclasses.field(default_factory=list)
    evals: list[tuple[int, list[float]]] = dataclasses.field(default_factory=list)
    eval_seconds: float = 0.0
    resumed_from: int = 0
    action_names: tuple[str, ...] = ()


def update(q_net: nn.Module, target_net: nn.Module | None, optimizer: torch.optim.Optimizer, batch,
           cfg: AgentConfig, device: torch.device) -> float:
    """One gradient step on a sampled minibatch (Algorithm 1's last two lines); returns the loss.

    The target :math:`y` is computed under ``no_grad`` from ``target_net`` (Nature) or from
    ``q_net`` itself (2013, ``target_net=None``): either way no gradient flows through it.
    """
    obs = torch.as_tensor(batch.obs, device=device)
    next_obs = torch.as_tensor(batch.next_obs, device=device)
    action = torch.as_tensor(batch.action, device=device, dtype=torch.int64)
    reward = torch.as_tensor(batch.reward, device=device)
    terminated = torch.as_tensor(batch.terminated, device=device)
    with torch.no_grad():
        next_q = (target_net if target_net is not None else q_net)(next_obs)
        y = td_target(reward, terminated, next_q, cfg.gamma)
    q_taken = q_net(obs).gather(1, action[:, None]).squeeze(1)
    loss = td_loss(q_taken, y, cfg.loss)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if cfg.max_grad_norm is not None:
        nn.utils.clip_grad_norm_(q_net.parameters(), cfg.max_grad_norm, foreach=True)
    optimizer.step()
    return float(loss.detach())


def train(cfg: AgentConfig, seed: int = 0, *, device: torch.device | str | None = None,
          checkpoint: str | Path | None = None, progress: bool = True,
          on_log: Callable[[int, dict], None] | None = None) -> TrainResult:
    """Train a DQN agent as ``cfg`` says and return the final network (Algorithm 1).

    Exploration and minibatch sampling use NumPy generators seeded from ``seed``; the network's
    initial weights use torch's generator seeded from ``seed``; the environment is reset with
    ``seed`` once (later episodes continue its stream).

    Diagnostics, as :class:`AgentConfig` asks for them: the average max-Q over held-out states
    (every ``log_every`` steps), the counts of the greedy actions taken in each ``log_every``
    window, and evaluations every ``eval_every`` steps (their time is kept apart in
    ``eval_seconds``).

    ``checkpoint``: a file to resume from and to write every ``cfg.checkpoint_every`` steps and
    at the end (atomically). It holds the network, the target network, the optimizer, the step,
    the generators, the curves, and the replay memory zlib-compressed while its raw size is under
    1 GB (CartPole's and a 10k-100k Atari memory are; the paper's 1M-frame memory is 7 GB, so a
    resumed paper-scale run refills it for ``learning_starts`` steps before learning resumes).
    The environment starts a new episode on resume. A checkpoint written under another config is
    refused, except that ``total_steps`` may grow (the run is extended from where it stopped) and
    ``checkpoint_every`` may change.
    """
    device = torch.device(device) if device is not None else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    t_start = time.perf_counter()
    env = make_env(cfg, seed=seed)
    obs_shape = env.observation_space.shape
    n_actions = int(env.action_space.n)
    action_names = tuple(env.unwrapped.get_action_meanings()) if hasattr(env.unwrapped, "get_action_meanings") \
        else tuple(str(a) for a in range(n_actions))
    torch.manual_seed(seed)
    q_net = make_network(cfg, obs_shape, n_actions).to(device)
    target_net = copy.deepcopy(q_net) if cfg.target_period else None
    if target_net is not None:
        target_net.requires_grad_(False)
    optimizer = make_optimizer(cfg, q_net.parameters())
    obs_dtype = env.observation_space.dtype
    memory = ReplayMemory(cfg.replay_capacity, tuple(obs_shape), stack=cfg.stack, obs_dtype=obs_dtype,
                          seed=np.random.default_rng([seed, 1]))
    explore = np.random.default_rng([seed, 2])
    step, updates, learn_from = 0, 0, cfg.learning_starts
    episode_returns: list[tuple[int, float]] = []
    losses: list[tuple[int, float]] = []
    avg_max_q: list[tuple[int, float]] = []
    action_counts: list[tuple[int, list[int]]] = []
    evals: list[tuple[int, list[float]]] = []
    # Time spent before this call (a resumed run adds it up): total, from the first update on, evaluating.
    seconds0, learn_seconds0, learn_steps0, eval_seconds = 0.0, 0.0, 0, 0.0
    checkpoint = Path(checkpoint) if checkpoint is not None else None
    if checkpoint is not None and checkpoint.is_file():
        state = training.load_checkpoint(checkpoint, map_location=device)
        saved, mine = dict(state["config"]), dataclasses.asdict(cfg)
        # A field added to AgentConfig after the checkpoint was written counts as unchanged when
        # the run keeps its default.
        defaults = {f.name: f.default for f in dataclasses.fields(AgentConfig)}
        for k in set(mine) - set(saved):
            if defaults.get(k, _MISSING) is not dataclasses.MISSING:
                saved[k] = defaults.get(k, _MISSING)
        differs = sorted(k for k in set(saved) | set(mine)
                         if k not in EXTENDABLE and saved.get(k, _MISSING) != mine.get(k, _MISSING))
        if differs:
            raise ValueError(f"checkpoint {checkpoint} was written with another config (it differs in {differs}); "
                             f"remove it to start afresh (only {EXTENDABLE} may change on resume)")
        if int(state["step"]) > cfg.total_steps:
            raise ValueError(f"checkpoint {checkpoint} is at step {state['step']}, past total_steps={cfg.total_steps}: "
                             f"a run can be extended, not shortened")
        q_net.load_state_dict(state["q_net"])
        if target_net is not None:
            target_net.load_state_dict(state["target_net"])
        optimizer.load_state_dict(state["optimizer"])
        step, updates = int(state["step"]), int(state["updates"])
        explore.bit_generator.state = state["explore_rng"]
        episode_returns = [tuple(x) for x in state["episode_returns"]]
        losses = [tuple(x) for x in state["losses"]]
        avg_max_q = [tuple(x) for x in state.get("avg_max_q", [])]
        action_counts = [(int(t), list(c)) for t, c in state.get("action_counts", [])]
        evals = [(int(t), list(r)) for t, r in state.get("evals", [])]
        seconds0, learn_seconds0, learn_steps0 = state["seconds"], state["learn_seconds"], state["learn_steps"]
        eval_seconds = float(state.get("eval_seconds", 0.0))
        if "memory" in state:
            memory.load_state_dict(_unpack_memory(state["memory"]))
        else:
            learn_from = step + cfg.learning_starts
    resumed_from = step
    probe = heldout_states(cfg, cfg.heldout_states, seed=100_000 + seed) if cfg.heldout_states else None

    def timing() -> tuple[float, float, int]:
        now = time.perf_counter()
        return (seconds0 + now - t_start, learn_seconds0 + (now - t_learn if t_learn is not None else 0.0),
                learn_steps0 + learn_steps)

    def save(totals: tuple[float, float, int] | None = None) -> None:
        if checkpoint is None:
            return
        seconds, learn_seconds, learn_steps_total = totals or timing()
        state = {"config": dataclasses.asdict(cfg), "q_net": q_net.state_dict(), "optimizer": optimizer.state_dict(),
                 "step": step, "updates": updates, "explore_rng": explore.bit_generator.state,
                 "episode_returns": [list(x) for x in episode_returns], "losses": [list(x) for x in losses],
                 "avg_max_q": [list(x) for x in avg_max_q], "action_counts": [[t, list(c)] for t, c in action_counts],
                 "evals": [[t, list(r)] for t, r in evals], "eval_seconds": eval_seconds,
                 "seconds": seconds, "learn_seconds": learn_seconds, "learn_steps": learn_steps_total}
        if target_net is not None:
            state["target_net"] = target_net.state_dict()
        if memory.nbytes < 2**30:
            state["memory"] = _pack_memory(memory.state_dict())
        training.save_checkpoint(checkpoint, state)

    obs, info = env.reset(seed=seed + 1000 * (step > 0))
    memory.start_episode(obs)
    bar = training.progress(total=cfg.total_steps, initial=step, desc=f"DQN {cfg.env} seed {seed}",
                            disable=not progress, leave=False)
    recent_loss: list[float] = []
    greedy_counts = np.zeros(n_actions, dtype=np.int64)
    t_learn, learn_steps = None, 0
    if probe is not None and step == 0:
        avg_max_q.append((0, average_max_q(q_net, probe, device)))
    while step < cfg.total_steps:
        eps = epsilon(step, cfg.eps_start, cfg.eps_end, cfg.eps_anneal_steps)
        if explore.random() < eps:
            action = int(explore.integers(n_actions))
        else:
            action = int(greedy_actions(q_net, memory.current_stack()[None], device)[0])
            greedy_counts[action] += 1
        obs, reward, terminated, truncated, info = env.step(action)
        life_lost = cfg.life_loss_terminal and bool(info.get("life_lost", False)) and not (terminated or truncated)
        memory.add(action, float(reward), obs, bool(terminated) or life_lost, bool(truncated))
        step += 1
        if terminated or truncated:
            episode_returns.append((step, float(info["episode"]["r"])))
            obs, info = env.reset()
            memory.start_episode(obs)
        elif life_lost:
            memory.start_episode(obs)  # the stack starts afresh after a lost life; the game goes on
        if step > learn_from and step % cfg.train_every == 0 and memory.can_sample(cfg.batch):
            if t_learn is None:
                t_learn, learn_steps = time.perf_counter(), 0
            for _ in range(cfg.gradient_steps):
                loss = update(q_net, target_net, optimizer, memory.sample(cfg.batch), cfg, device)
                updates += 1
                recent_loss.append(loss)
                if target_net is not None and updates % cfg.target_period == 0:
                    target_net.load_state_dict(q_net.state_dict())
        if t_learn is not None:
            learn_steps += 1
        if cfg.log_every and step % cfg.log_every == 0:
            if recent_loss:
                losses.append((step, float(np.mean(recent_loss))))
                recent_loss = []
            if probe is not None:
                avg_max_q.append((step, average_max_q(q_net, probe, device)))
            action_counts.append((step, [int(c) for c in greedy_counts]))
            greedy_counts[:] = 0
            if on_log is not None:
                recent = [r for _, r in episode_returns[-20:]]
                on_log(step, {"epsilon": eps, "mean_return_last20": float(np.mean(recent)) if recent else float("nan"),
                              "updates": updates, "avg_max_q": avg_max_q[-1][1] if probe is not None else None})
        if cfg.eval_every and step % cfg.eval_every == 0:
            t_eval = time.perf_counter()
            returns = evaluate(cfg, q_net, device=device)
            evals.append((step, [float(r) for r in returns]))
            eval_seconds += time.perf_counter() - t_eval
            if on_log is not None:
                on_log(step, {"eval_return": float(returns.mean()), "eval_return_sd": float(returns.std())})
        if cfg.checkpoint_every and step % cfg.checkpoint_every == 0:
            save()
        bar.update(1)
    bar.close()
    env.close()
    totals = timing()
    save(totals)
    seconds, learn_seconds, learn_steps_total = totals
    return TrainResult(q_net, episode_returns, losses, step, updates, seconds, learn_seconds, learn_steps_total, memory,
                       avg_max_q=avg_max_q, action_counts=action_counts, evals=evals, eval_seconds=eval_seconds,
                       resumed_from=resumed_from, action_names=action_names)


def evaluate(cfg: AgentConfig, q_net: nn.Module, episodes: int | None = None, *, epsilon: float | None = None,
             seed: int = 10_000, device: torch.device | str | None = None,
             record: Callable[[np.ndarray, np.ndarray, int, float], None] | None = None) -> np.ndarray:
    """Play ``episodes`` whole episodes with ε-greedy actions (``epsilon``, default
    ``cfg.eval_epsilon``) and return their returns (the raw game score for Atari, before reward
    clipping). Episodes are seeded ``seed, seed + 1, ...``, independent of training.

    ``record(frame_stack, q_values, action, reward)``, if given, is called at every step (for
    plots of Q over an episode and animations).
    """
    episodes = cfg.eval_episodes if episodes is None else check_int("episodes", episodes, 1)
    eps = cfg.eval_epsilon if epsilon is None else float(epsilon)
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"epsilon must lie in [0, 1], got {epsilon}")
    device = next(q_net.parameters()).device if device is None else torch.device(device)
    env = make_env(cfg, seed=seed)
    rng = np.random.default_rng([seed, 3])
    n_actions = int(env.action_space.n)
    returns = np.zeros(episodes)
    was_training = q_net.training
    q_net.eval()
    for episode in range(episodes):
        obs, info = env.reset(seed=seed + episode)
        frames = [obs] * cfg.stack
        done = False
        while not done:
            state = np.stack(frames[-cfg.stack:])
            with torch.no_grad():
                q = q_net(torch.as_tensor(state[None], device=device))[0].cpu().numpy()
            action = int(rng.integers(n_actions)) if rng.random() < eps else int(q.argmax())
            obs, reward, terminated, truncated, info = env.step(action)
            if record is not None:
                record(state, q, action, float(info.get("raw_reward", reward)))
            done = terminated or truncated
            if not done and cfg.life_loss_terminal and info.get("life_lost", False):
                frames = [obs] * cfg.stack
            else:
                frames.append(obs)
                frames = frames[-cfg.stack:]
        returns[episode] = float(info["episode"]["r"])
    q_net.train(was_training)
    env.close()
    return returns


def record_episode(cfg: AgentConfig, q_net: nn.Module, *, seed: int = 20_000, epsilon: float | None = None,
                   max_steps: int = 1_500, device: torch.device | str | None = None) -> tuple[np.ndarray, float]:
    """Play one episode (or its first ``max_steps`` steps) with ε-greedy actions (``epsilon``,
    default ``cfg.eval_epsilon``) and return the screens the emulator showed, one RGB frame
    ``(210, 160, 3)`` ``uint8`` per agent step, and the raw score of what was played. For the
    chapter's animation of a trained agent."""
    max_steps = check_int("max_steps", max_steps, 1)
    eps = cfg.eval_epsilon if epsilon is None else float(epsilon)
    if not 0.0 <= eps <= 1.0:
        raise ValueError(f"epsilon must lie in [0, 1], got {epsilon}")
    device = next(q_net.parameters()).device if device is None else torch.device(device)
    env = make_env(cfg, seed=seed, render_mode="rgb_array")
    rng = np.random.default_rng([seed, 5])
    obs, _ = env.reset(seed=seed)
    frames, screens, score = [obs] * cfg.stack, [env.render()], 0.0
    was_training = q_net.training
    q_net.eval()
    for _ in range(max_steps):
        with torch.no_grad():
            q = q_net(torch.as_tensor(np.stack(frames)[None], device=device))[0]
        action = int(rng.integers(env.action_space.n)) if rng.random() < eps else int(q.argmax())
        obs, reward, terminated, truncated, info = env.step(action)
        score += float(info.get("raw_reward", reward))
        screens.append(env.render())
        if terminated or truncated:
            break
        frames = (frames + [obs])[-cfg.stack:]
    q_net.train(was_training)
    env.close()
    return np.stack(screens), score


def save_gif(frames: np.ndarray, path: str | Path, fps: float = 15.0) -> Path:
    """Write ``frames`` (``(T, H, W, 3)`` ``uint8``) as a looping animated GIF at ``fps`` frames a
    second (15 = real time for Atari at frame skip 4), atomically; returns the path."""
    from PIL import Image

    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
        raise ValueError(f"frames must be a non-empty uint8 array of shape (T, H, W, 3), got {frames.dtype} "
                         f"{frames.shape}")
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    images = [Image.fromarray(f) for f in frames]
    return training.write_atomic(Path(path), lambda f: images[0].save(
        f, format="GIF", save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0,
        optimize=False))
