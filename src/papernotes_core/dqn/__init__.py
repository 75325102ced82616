r"""Playing Atari with Deep Reinforcement Learning (Mnih et al. 2013): the DQN chapter.

* :mod:`.replay`: the replay memory, one byte-frame per transition, stacks built when sampled.
* :mod:`.atari`: the Arcade Learning Environment with the 2013 and the Nature preprocessing.
* :mod:`.agent`: the networks, ε-greedy, the TD target and loss, Algorithm 1, evaluation.
* :mod:`.tabular`: a small MDP solved exactly, with tabular and linear Q-learning (the notebook's
  derivation checks).
* this module: the chapter's experiments at the three scales (:class:`Config`, :func:`run`).

Steps and frames: one *step* is one agent decision. With frame skip k = 4 a step spans 4
emulator frames. The papers' "frames" count agent steps: the Nature paper's 50M frames are
"around 38 days of game experience", which at 60 Hz is 200M emulator frames = 50M decisions.
So the 2013 paper's 10M training frames are 10M steps here (40M emulator frames), its replay
memory of "one million most recent frames" holds 1M transitions, and ε anneals over 1M steps.
"""

from __future__ import annotations

import dataclasses
import sys as _sys
import time as _time
from pathlib import Path

import numpy as np

from .. import results as _results
from .. import runtime as _runtime
from .agent import (AgentConfig, AtariQNetwork, MLPQNetwork, TrainResult, average_max_q, epsilon, evaluate,
                    greedy_actions, heldout_states, make_env, make_network, make_optimizer, record_episode, save_gif,
                    td_loss, td_target, train, update)
from .optim import CentredRMSprop
from .replay import Batch, ReplayMemory

SLUG = "dqn"

__all__ = ["AgentConfig", "AtariQNetwork", "Batch", "CentredRMSprop", "Config", "MLPQNetwork", "PAPER", "ReplayMemory",
           "TrainResult", "average_max_q", "cartpole_config", "atari_config", "epsilon", "evaluate", "game_names",
           "greedy_actions", "heldout_states", "make_env", "make_network", "make_optimizer", "pong_cpu_config",
           "record_episode", "run", "save_gif", "td_loss", "td_target", "train", "update"]


def cartpole_config(**overrides) -> AgentConfig:
    """The DQN we train on CartPole-v1 (not in the paper; our choice, tuned to solve it on two
    CPU cores in under a minute): the Nature algorithm (target network) with Adam and a
    256-256 MLP on the 4-number observation (no frame stack), γ = 0.99, minibatch 64, 128
    gradient steps after every 256 environment steps, the target network refreshed after every
    128 updates, ε from 1 to 0.04 over the first 8,000 steps, squared loss. Evaluation is greedy
    (ε = 0) over 100 episodes, Gymnasium's criterion for "solved" (average ≥ 475)."""
    base = dict(env="CartPole-v1", preprocessing="none", network="mlp", hidden=(256, 256), stack=1,
                total_steps=50_000, replay_capacity=100_000, batch=64, learning_starts=1_000, train_every=256,
                gradient_steps=128, gamma=0.99, optimizer="adam", lr=2.3e-3, target_period=128, loss="mse",
                eps_start=1.0, eps_end=0.04, eps_anneal_steps=8_000, eval_episodes=100, eval_epsilon=0.0,
                log_every=1_000)
    base.update(overrides)
    return AgentConfig(**base)


def atari_config(game: str = "Pong", variant: str = "2013", **overrides) -> AgentConfig:
    """The paper's agent on an Atari game. ``variant="2013"``: Sec. 5 and Algorithm 1 of the 2013
    paper (2013 network and preprocessing, RMSProp, batch 32, one update at every step, replay
    1M, ε 1 → 0.1 over 1M steps, 10M steps, no target network, squared loss, evaluation at
    ε = 0.05). ``variant="nature"``: the 2015 paper's network, preprocessing (max over two frames,
    up to 30 no-ops, life loss as terminal), an update every 4 steps, target network C = 10,000
    updates, Huber loss, learning starts at 50,000 steps. Both use DeepMind's centred RMSProp
    (:class:`.optim.CentredRMSprop`); the learning rate, not given in 2013, is the Nature paper's
    2.5e-4 in both. Learning starts at step 50,000 in both (the Nature paper's replay start size;
    the 2013 paper does not give one)."""
    if variant == "2013":
        base = dict(env=game, preprocessing="2013", network="2013", learning_starts=50_000)
    elif variant == "nature":
        base = dict(env=game, preprocessing="nature", network="nature", target_period=10_000, loss="huber",
                    life_loss_terminal=True, learning_starts=50_000, train_every=4)
    else:
        raise ValueError(f"variant must be '2013' or 'nature', got {variant!r}")
    base.update(overrides)
    return AgentConfig(**base)


def pong_cpu_config(**overrides) -> AgentConfig:
    """A DQN that learns Pong on two CPU cores: the ``cpu`` scale's Pong agent.

    Its recipe is Lapan's Pong DQN (M. Lapan, *Deep Reinforcement Learning Hands-On*, Packt 2018,
    Chapter 6, ``Chapter06/02_dqn_pong.py``), a DQN of the Nature family tuned for Pong: Adam at
    lr 1e-4, minibatch 32, one update at every step, a target network copied every 1,000
    updates, a replay memory of 10,000 transitions filled before learning starts, ε from 1 to
    0.02 over the first 100,000 steps, γ = 0.99, squared loss. Two choices are ours: the 2013
    paper's network and preprocessing (Lapan uses the Nature network, which costs twice as much
    per update here, and max-pools two frames), and the length, 400,000 steps, fixed after
    reading the diagnostics of a 200,000-step pilot, which is the first half of this run (Lapan's
    runs reached a mean of 19 after about 400,000-700,000 steps). Evaluation every
    100,000 steps, 30 episodes at ε = 0.05 (the 2013 Table 1 protocol); the Q diagnostic on 500
    held-out states every 10,000 steps. Seed 0, declared before the run.

    Differences from the 2013 paper: Adam instead of RMSProp, a target network (Nature), a
    replay memory of 10,000 instead of 1M, ε annealed over 100,000 steps to 0.02 instead of
    over 1M to 0.1, learning from step 10,000, and 400,000 steps instead of 10M.
    """
    base = dict(env="Pong", preprocessing="2013", network="2013", optimizer="adam", lr=1e-4, batch=32,
                train_every=1, target_period=1_000, replay_capacity=10_000, learning_starts=10_000,
                eps_start=1.0, eps_end=0.02, eps_anneal_steps=100_000, gamma=0.99, loss="mse",
                total_steps=400_000, eval_every=100_000, eval_episodes=30, eval_epsilon=0.05,
                heldout_states=500, log_every=10_000, checkpoint_every=25_000)
    base.update(overrides)
    return AgentConfig(**base)


#: The names under which :func:`run` writes one game's run of ``Config.atari`` (``pong_eval_return``, ...),
#: besides the diagnostic curves (``*_avg_max_q_vs_step``, ``*_action_freq_vs_step.*``), which the
#: chapter's first Atari runs did not record.
GAME_NAMES = ("eval_return", "eval_return_sd", "best_episode", "random_return", "steps", "train_s", "steps_per_s",
              "return_vs_step", "loss_vs_step")


def game_names(game: str) -> tuple[str, ...]:
    """The metric and curve names (:data:`GAME_NAMES`) of one game's run of ``Config.atari``, e.g.
    ``pong_eval_return``; ``carry`` takes them as a group."""
    return tuple(f"{game.lower()}_{name}" for name in GAME_NAMES)


@dataclasses.dataclass(frozen=True)
class Config:
    """The DQN chapter's experiments at one scale: CartPole-v1 with ``cartpole_seeds``, the
    agent ``atari`` on each of ``games`` (one seed, ``atari_seed``), and ``pong_cpu`` (if not
    None), the agent that learns Pong on two CPU cores, with seed ``pong_cpu_seed``.

    ``carry``: names (or prefixes, :func:`results.matches_prefix`) of metrics and curves taken from
    the existing results file instead of re-measured (recorded in ``provenance.carried_over``);
    a game whose ``{game}_eval_return`` is carried is not trained again, nor is CartPole when
    ``cartpole`` is carried."""

    cartpole: AgentConfig = dataclasses.field(default_factory=cartpole_config)
    cartpole_seeds: tuple[int, ...] = (0, 1, 2)
    atari: AgentConfig = dataclasses.field(default_factory=atari_config)
    games: tuple[str, ...] = ("Pong", "Breakout")
    atari_seed: int = 0
    pong_cpu: AgentConfig | None = None
    pong_cpu_seed: int = 0
    carry: tuple[str, ...] = ()
    threads: int | None = None

    def __post_init__(self):
        if not isinstance(self.cartpole_seeds, tuple) or not all(
                isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in self.cartpole_seeds):
            raise ValueError(f"cartpole_seeds must be a tuple of ints >= 0, got {self.cartpole_seeds!r}")
        if not isinstance(self.games, tuple) or not all(isinstance(g, str) for g in self.games):
            raise ValueError(f"games must be a tuple of Atari game names, got {self.games!r}")
        if self.games:
            from .atari import check_game

            for game in self.games:
                check_game(game)
        if self.pong_cpu is not None and (not isinstance(self.pong_cpu, AgentConfig) or self.pong_cpu.env != "Pong"):
            raise ValueError(f"pong_cpu must be an AgentConfig for Pong (see pong_cpu_config) or None, got {self.pong_cpu!r}")
        if isinstance(self.pong_cpu_seed, bool) or not isinstance(self.pong_cpu_seed, int) or self.pong_cpu_seed < 0:
            raise ValueError(f"pong_cpu_seed must be an int >= 0, got {self.pong_cpu_seed!r}")
        if not isinstance(self.carry, tuple) or not all(isinstance(c, str) and c for c in self.carry):
            raise ValueError(f"carry must be a tuple of metric names or prefixes such as 'pong_eval_return', "
                             f"got {self.carry!r}")

    @classmethod
    def quick(cls) -> "Config":
        """CI scale, within a minute per notebook on CI's two cores: CartPole for 32,000 steps
        with 64 gradient steps after every 256 environment steps (one update per four steps, as in
        the Nature agent; the `cpu` scale keeps 128), one seed; and 600 steps of the 2013 agent
        on Pong (learning from step 300 with an update every 4 steps to fit the minute, ε
        annealed over those 600 steps, replay 600, the Q diagnostic on 100 held-out states):
        enough to show the whole pipeline run on the real game, far too little to learn it. The
        Pong agent that learns is the ``cpu`` scale's."""
        atari = atari_config("Pong", total_steps=600, replay_capacity=600, learning_starts=300, train_every=4,
                             eps_anneal_steps=600, eval_episodes=1, log_every=150, heldout_states=100)
        return cls(cartpole=cartpole_config(total_steps=32_000, gradient_steps=64), cartpole_seeds=(0,),
                   atari=atari, games=("Pong",), threads=1)

    @classmethod
    def cpu(cls) -> "Config":
        """Two CPU cores. CartPole for 100,000 steps with three seeds (ε over 16,000 steps),
        carried over from the committed results (they were run before Adam became the fused
        kernel, which changes the numbers in the last digits, not the method).

        ``pong_cpu``: the agent that learns Pong on two cores (:func:`pong_cpu_config`, seed 0),
        about two hours.

        ``atari``: the chapter's first Atari study, the 2013 agent on Pong and on Breakout for
        500,000 steps each (one seed; the games ran in parallel processes, one core each), kept
        as it was run and carried over from the committed results file: the paper's schedule
        scaled down 20-fold in length (ε from 1 to 0.1 over 100,000 steps, a replay memory of
        100,000, learning from step 10,000), the 2013 network, preprocessing, batch 32, no
        target network and squared loss, but with two departures found later: an update every 4
        steps (Algorithm 1 updates at every step) and ``torch.optim.RMSprop`` (not DeepMind's
        centred RMSProp). Evaluation: 30 episodes at ε = 0.05."""
        atari = atari_config("Pong", total_steps=500_000, replay_capacity=100_000, learning_starts=10_000,
                             eps_anneal_steps=100_000, checkpoint_every=50_000, train_every=4,
                             optimizer="torch_rmsprop")
        return cls(cartpole=cartpole_config(total_steps=100_000, eps_anneal_steps=16_000), cartpole_seeds=(0, 1, 2),
                   atari=atari, games=("Pong", "Breakout"), pong_cpu=pong_cpu_config(), pong_cpu_seed=0,
                   carry=("cartpole",) + game_names("Pong") + game_names("Breakout"), threads=None)

    @classmethod
    def paper(cls) -> "Config":
        """The 2013 paper's agent on Pong and Breakout for 10M steps each (one seed per game),
        evaluated over 30 episodes at ε = 0.05; CartPole as at ``cpu``. A
        checkpoint every 100,000 steps (under ``PAPERNOTES_CHECKPOINTS``) lets a stopped run resume;
        the replay memory (7 GB) is not in it and refills for ``learning_starts`` steps."""
        cp = cls.cpu()
        return cls(cartpole=cp.cartpole, cartpole_seeds=cp.cartpole_seeds,
                   atari=atari_config("Pong", checkpoint_every=100_000, heldout_states=500, eval_every=1_000_000),
                   games=("Pong", "Breakout"))


# Table 1 of the 2013 paper: average total reward (ε = 0.05) and the best single episode.
TABLE1 = {"BeamRider": (4092, 5184), "Breakout": (168, 225), "Enduro": (470, 661), "Pong": (20, 21),
          "Qbert": (1952, 4500), "Seaquest": (1705, 1740), "SpaceInvaders": (581, 1075)}

PAPER = {
    "cartpole_eval_return": {"value": 475, "status": "V",
                             "source": "not in the paper: Gymnasium's CartPole-v1 reward threshold (average "
                                       "over 100 episodes; 500 is the most an episode can score)"},
}
for _game, (_avg, _best) in TABLE1.items():
    PAPER[f"{_game.lower()}_eval_return"] = {"value": _avg, "status": "V",
                                             "source": "Table 1, DQN average total reward, ε = 0.05"}
    PAPER[f"{_game.lower()}_best_episode"] = {"value": _best, "status": "V",
                                              "source": "Table 1, DQN best single episode"}
    PAPER[f"{_game.lower()}_steps"] = {"value": 10_000_000, "status": "V",
                                       "source": "Sec. 5: trained on 10 million frames (agent steps)"}
PAPER["pong_cpu_eval_return"] = {"value": 20, "status": "V",
                                 "source": "Table 1, DQN on Pong after 10M steps (the paper's agent, not this "
                                           "recipe; ε = 0.05)"}
PAPER["pong_cpu_best_episode"] = {"value": 21, "status": "V", "source": "Table 1, DQN on Pong, best single episode"}


def _diagnostic_curves(key: str, res: TrainResult) -> dict:
    """The curves of one Atari training run under ``key``: training-episode returns, loss, the
    average max-Q on held-out states, the frequency of each greedy action per log window, and the
    evaluations during training (mean and sd)."""
    curves = {f"{key}_return_vs_step": [list(p) for p in res.episode_returns],
              f"{key}_loss_vs_step": [list(p) for p in res.losses]}
    if res.avg_max_q:
        curves[f"{key}_avg_max_q_vs_step"] = [list(p) for p in res.avg_max_q]
    for a, name in enumerate(res.action_names):
        points = [[t, c[a] / sum(c)] for t, c in res.action_counts if sum(c)]
        if points:
            curves[f"{key}_action_freq_vs_step.{name}"] = points
    if res.evals:
        curves[f"{key}_eval_return_vs_step"] = [[t, float(np.mean(r))] for t, r in res.evals]
        curves[f"{key}_eval_return_sd_vs_step"] = [[t, float(np.std(r))] for t, r in res.evals]
    return curves


def run(config: Config | None = None, *, scale: str | None = None, write: bool = True, command: str | None = None,
        results_dir=None, models: dict | None = None, progress: bool = True) -> dict:
    """Run the chapter's experiments at ``scale`` and write ``results/<scale>/dqn.json``.

    Metrics: ``cartpole_eval_return`` (the median over seeds of each seed's mean return over
    ``eval_episodes`` episodes of its final network, at ε = ``eval_epsilon``), per seed
    ``cartpole_eval_return.seed{s}``, their minimum, and for each game ``{game}_eval_return``,
    ``{game}_best_episode``, ``{game}_random_return`` (uniformly random actions, same episodes),
    ``{game}_steps``, ``{game}_steps_per_s``. Curves: training episode returns against steps, the
    mean loss, the average max-Q on held-out states and the greedy actions' frequencies (where
    the config asks for them). With ``pong_cpu``: the same under ``pong_cpu_*``, plus
    ``pong_cpu_eval_return_vs_step`` (evaluations during training), ``pong_cpu_train_s`` (training
    time without those evaluations) and an animation of the trained agent playing
    (``<scale>/dqn_pong_cpu.gif``). ``models`` is filled with the trained networks
    (``"cartpole.seed{s}"``, ``"{game}"``, ``"pong_cpu"``).
    """
    study = _results.start_study(Config, config, scale, None, models)
    config, device = study.config, study.device
    metrics, curves, carried = {}, {}, None
    if config.carry:
        carried_metrics, carried_curves, carried = _results.carry_over(SLUG, study.scale, config.carry, results_dir)
        metrics.update(carried_metrics)
        curves.update(carried_curves)

    def is_carried(name: str) -> bool:
        return any(_results.matches_prefix(name, c) for c in config.carry)

    per_seed = []
    for seed in () if is_carried("cartpole_eval_return") else config.cartpole_seeds:
        res = train(config.cartpole, seed, device=device, progress=progress)
        returns = evaluate(config.cartpole, res.q_net, device=device, seed=10_000 + 1_000 * seed)
        per_seed.append(float(returns.mean()))
        metrics[f"cartpole_eval_return.seed{seed}"] = float(returns.mean())
        metrics[f"cartpole_eval_return_sd.seed{seed}"] = float(returns.std())
        metrics[f"cartpole_train_s.seed{seed}"] = res.seconds
        curves[f"cartpole_return_vs_step.seed{seed}"] = [list(p) for p in res.episode_returns]
        curves[f"cartpole_loss_vs_step.seed{seed}"] = [list(p) for p in res.losses]
        if models is not None:
            models[f"cartpole.seed{seed}"] = res.q_net
    if per_seed:
        metrics["cartpole_eval_return"] = float(np.median(per_seed))
        metrics["cartpole_eval_return_min"] = float(np.min(per_seed))
        metrics["cartpole_steps"] = config.cartpole.total_steps
    earlier_s = 0.0   # training time spent by earlier processes whose checkpoints this run resumed
    def atari_run(cfg: AgentConfig, seed: int, key: str):
        """Train (or resume) one Atari agent and record its metrics and curves under ``key``."""
        nonlocal earlier_s
        t_call = _time.perf_counter()
        res = train(cfg, seed, device=device, progress=progress,
                    checkpoint=_runtime.checkpoints_dir() / SLUG / f"{study.scale}_{key}.pt"
                    if cfg.checkpoint_every else None)
        earlier_s += max(0.0, res.seconds - (_time.perf_counter() - t_call))
        final = dict(res.evals).get(res.steps)      # an evaluation at the last step is the final one
        returns = np.asarray(final) if final is not None else evaluate(cfg, res.q_net, device=device)
        metrics[f"{key}_eval_return"] = float(returns.mean())
        metrics[f"{key}_eval_return_sd"] = float(returns.std())
        metrics[f"{key}_best_episode"] = float(returns.max())
        # The same protocol with uniformly random actions: the floor a learning curve starts from.
        metrics[f"{key}_random_return"] = float(evaluate(cfg, res.q_net, device=device, epsilon=1.0).mean())
        metrics[f"{key}_steps"] = res.steps
        metrics[f"{key}_updates"] = res.updates
        metrics[f"{key}_train_s"] = res.seconds - res.eval_seconds
        if res.learn_seconds > res.eval_seconds:
            metrics[f"{key}_steps_per_s"] = res.learn_steps / (res.learn_seconds - res.eval_seconds)
        if res.evals:
            metrics[f"{key}_eval_s"] = res.eval_seconds
        for t, r in res.evals:      # each evaluation during training, for the page to cite
            metrics[f"{key}_eval_return.step{t}"] = float(np.mean(r))
            metrics[f"{key}_eval_return_sd.step{t}"] = float(np.std(r))
        if res.avg_max_q:
            metrics[f"{key}_avg_max_q"] = res.avg_max_q[-1][1]
        curves.update(_diagnostic_curves(key, res))
        return res

    for game in config.games:
        if not is_carried(f"{game.lower()}_eval_return"):
            res = atari_run(dataclasses.replace(config.atari, env=game), config.atari_seed, game.lower())
            if models is not None:
                models[game] = res.q_net
    if config.pong_cpu is not None and not is_carried("pong_cpu_eval_return"):
        cfg, key = config.pong_cpu, "pong_cpu"
        res = atari_run(cfg, config.pong_cpu_seed, key)
        metrics[f"{key}_seed"] = config.pong_cpu_seed
        if write:
            out = Path(results_dir if results_dir is not None else _runtime.results_out_dir()) / study.scale / \
                f"{SLUG}_{key}.gif"
            frames, episode_return = record_episode(cfg, res.q_net, seed=20_000, max_steps=1_500)
            save_gif(frames, out)
            metrics[f"{key}_animation_return"] = episode_return
        if models is not None:
            models[key] = res.q_net
    metrics["compute_s"] = _time.perf_counter() - study.t0 + earlier_s
    seeds = list(config.cartpole_seeds) or [config.pong_cpu_seed if config.pong_cpu is not None else config.atari_seed]
    return study.finish(SLUG, metrics, curves, PAPER, seeds=seeds, command=command, write=write,
                        results_dir=results_dir, carried=carried)


def main(argv: list[str] | None = None) -> int:
    """``python -m papernotes_core.dqn [--games GAME ...] [--no-write]`` at ``PAPERNOTES_SCALE``."""
    narrow = ("--games", {"nargs": "+", "metavar": "GAME",
                          "help": "train only these Atari games (and no CartPole), e.g. to run the games in "
                                  "parallel processes with --no-write; a later full run reuses their checkpoints"},
              lambda config, games: dataclasses.replace(config, games=tuple(games), cartpole_seeds=()))
    return _runtime.study_main(SLUG, Config, run, argv, narrow=narrow, description=main.__doc__)


if __name__ == "__main__":  # pragma: no cover - the command line entry point
    _sys.exit(main())
