r"""Atari 2600 environments for the DQN chapter (Mnih et al. 2013, *Playing Atari with Deep
Reinforcement Learning*, arXiv:1312.5602; and the 2015 Nature paper, *Human-level control
through deep reinforcement learning*, as an option).

The games run in the Arcade Learning Environment (``ale-py``, whose wheel ships the ROMs;
nothing is downloaded) through Gymnasium's ``ALE/<Game>-v5`` ids. :func:`make_atari` turns such
a game into what the agent sees: one preprocessed ``(84, 84)`` ``uint8`` frame per step and a
clipped reward. Frames are **not** stacked here: the replay memory stores single frames and
stacks the last four itself, which saves 4x the memory (2013 paper, Sec. 4.1, the function
:math:`\phi`).

Two presets (:data:`PREPROCESSING`, each a :class:`Preprocessing`):

* ``"2013"`` (2013 paper, Sec. 4.1 and Sec. 5): gray-scale, down-sample the 210x160 screen to
  110x84, crop an 84x84 "region of the image that roughly captures the playing area" (rows
  18..101 of the 110, see :data:`PREPROCESSING`), act on every 4th frame, rewards clipped to their
  sign. No max-pooling, no no-op starts, no life-loss signal.
* ``"nature"`` (Nature 2015, Methods): max over the last two emulator frames, gray-scale, squash
  to 84x84 (no crop), act on every 4th frame, 1..30 random no-ops at reset, rewards clipped, and a
  life lost counts as terminal *for the learner*.

Both use ``repeat_action_probability=0`` (no "sticky actions"): Gymnasium's v5 default is 0.25
(Machado et al. 2018), but the DQN papers ran the deterministic emulator, so 0 is what matches
their setup and their reported scores.

Every env made here puts the **raw game score** of a finished episode in
``info["episode"]["r"]`` (Gymnasium's ``RecordEpisodeStatistics``, placed *before* the reward is
clipped), the raw reward of each step in ``info["raw_reward"]`` (when rewards are clipped), and
``info["life_lost"]`` on every step (see :class:`LifeLossInfo`).

For paper-scale runs, :func:`make_vector_atari` builds ale-py's ``AtariVectorEnv``, which does
the same preprocessing (and the frame stacking) in C++ threads.
"""

from __future__ import annotations

import dataclasses
import difflib
import numbers
from dataclasses import dataclass
from typing import Any

import ale_py
import cv2
import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.wrappers import AtariPreprocessing, RecordEpisodeStatistics, TimeLimit

__all__ = ["GAMES", "PREPROCESSING", "ClipReward", "LifeLossInfo", "Preprocessing", "ResizeCrop",
           "check_game", "make_atari", "make_vector_atari"]

gym.register_envs(ale_py)

_PREFIX, _SUFFIX = "ALE/", "-v5"

#: Gymnasium id -> ale-py ROM id ("ALE/SpaceInvaders-v5" -> "space_invaders"), from the registry.
_ROM_OF: dict[str, str] = {
    env_id: spec.kwargs["game"]
    for env_id, spec in gym.registry.items()
    if env_id.startswith(_PREFIX) and env_id.endswith(_SUFFIX) and "game" in spec.kwargs
}

#: The games whose ROMs ship inside ale-py and that Gymnasium registers as single-player
#: ``ALE/<Name>-v5`` envs, by their CamelCase names ("Pong", "SpaceInvaders", ...), sorted.
#: (ale-py also ships a few two-player-only ROMs, e.g. Combat, that have no Gymnasium id.)
GAMES: tuple[str, ...] = tuple(sorted(env_id[len(_PREFIX):-len(_SUFFIX)] for env_id in _ROM_OF))


def check_game(name: str) -> str:
    """Validate an Atari game name and return its Gymnasium id, e.g. ``"ALE/Pong-v5"``.

    Accepted: a name from :data:`GAMES` exactly as spelled there (``"Pong"``, ``"SpaceInvaders"``)
    or the full id (``"ALE/Pong-v5"``). Anything else, including other capitalisations
    (``"pong"``) and other versions (``"PongNoFrameskip-v4"``), is rejected with the closest
    names as suggestions, so that one spelling per game reaches the results files.

    Raises:
        TypeError: ``name`` is not a str.
        ValueError: no such game; the message lists close matches (``difflib``).
    """
    if not isinstance(name, str):
        raise TypeError(f"game must be a str such as 'Pong' or 'ALE/Pong-v5', "
                        f"got {type(name).__name__} {name!r}")
    if name in GAMES:
        return f"{_PREFIX}{name}{_SUFFIX}"
    if name in _ROM_OF:
        return name
    # Strip the decorations people paste from other versions before suggesting a name.
    core = name.strip()
    if core.startswith(_PREFIX):
        core = core[len(_PREFIX):]
    core = core.split("-v")[0].removesuffix("NoFrameskip").removesuffix("Deterministic")
    by_lower = {g.lower(): g for g in GAMES}
    if core.lower() in by_lower:
        matches = [by_lower[core.lower()]]
    else:
        matches = [by_lower[m] for m in
                   difflib.get_close_matches(core.lower(), list(by_lower), n=3, cutoff=0.6)]
    if name.startswith(_PREFIX):  # answer in the form that was asked
        matches = [f"{_PREFIX}{m}{_SUFFIX}" for m in matches]
    hint = ("did you mean " + " or ".join(repr(m) for m in matches) + "?" if matches else
            "expected a name such as 'Pong' or an id such as 'ALE/Pong-v5'")
    raise ValueError(f"unknown Atari game {name!r}: {hint} ({len(GAMES)} games ship with ale-py; "
                     f"see papernotes_core.dqn.atari.GAMES)")


# --------------------------------------------------------------------------- validation helpers

def _check_int(what: str, value: Any, minimum: int) -> int:
    expected = "a positive int" if minimum == 1 else f"an int >= {minimum}"
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{what} must be {expected}, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{what} must be {expected}, got {value}")
    return int(value)


def _check_bool(what: str, value: Any) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{what} must be a bool, got {type(value).__name__} {value!r}")
    return bool(value)


def _check_resize(resize: Any) -> tuple[int, int]:
    if not isinstance(resize, (tuple, list)) or len(resize) != 2:
        raise TypeError(f"resize must be a (rows, cols) pair of positive ints, got {resize!r}")
    return (_check_int("resize rows", resize[0], 1), _check_int("resize cols", resize[1], 1))


def _check_crop(crop_top: Any, resize: tuple[int, int]) -> int | None:
    if crop_top is None:
        return None
    crop_top = _check_int("crop_top", crop_top, 0)
    rows, cols = resize
    if crop_top + cols > rows:
        raise ValueError(f"crop_top={crop_top} cuts a {cols}x{cols} square out of rows "
                         f"{crop_top}..{crop_top + cols - 1}, but the resized frame has only {rows} "
                         f"rows (resize={resize}); expected crop_top <= {rows - cols}")
    return crop_top


# --------------------------------------------------------------------------- preprocessing spec

@dataclass(frozen=True, kw_only=True)
class Preprocessing:
    """How a raw 210x160 Atari screen and its rewards become the agent's input.

    Fields (all keyword-only; every one but ``name`` has a default):

    * ``name``: a label for results files.
    * ``frame_skip`` (k): the agent acts on every k-th emulator frame and its action is repeated on
      the frames in between; the rewards of the k frames are summed.
    * ``max_pool``: the observation is the pixel-wise max of the last two of the k frames (Nature
      2015: removes the flicker of objects drawn only on every other frame). Needs ``k >= 2``.
    * ``resize``: ``(rows, cols)`` the gray-scale screen is down-sampled to (``cv2.INTER_AREA``).
    * ``crop_top``: if not None, keep the ``cols x cols`` square starting at this row of the
      resized frame; None keeps the whole resized frame.
    * ``noop_max``: at reset, take a uniform random number in ``1..noop_max`` of no-op emulator
      frames (0 = none), so that episodes do not all start from the same state. Implemented by
      Gymnasium's ``AtariPreprocessing``, which always max-pools, so it needs ``max_pool=True``.
    * ``terminal_on_life_loss``: whether the *learner* should treat a lost life as the end of
      an episode for its TD target. The env never ends the episode on a life loss; it reports
      the loss in ``info["life_lost"]`` (see :class:`LifeLossInfo`).
    * ``clip_rewards``: rewards replaced by their sign, -1/0/+1 (2013 paper, Sec. 5).
    * ``repeat_action_probability``: ALE's "sticky actions". Gymnasium's v5 default is 0.25
      (Machado et al. 2018); 0.0, the default here, is the deterministic emulator both DQN
      papers trained and evaluated on.
    * ``max_episode_steps``: cut episodes after this many *agent* steps (None = no cut beyond
      the v5 envs' own 108,000-frame limit, 30 minutes of play).

    A variant is a :func:`dataclasses.replace` away, e.g. the 2013 paper's k = 3 for Space
    Invaders: ``dataclasses.replace(PREPROCESSING["2013"], name="2013-k3", frame_skip=3)``.

    Raises:
        TypeError / ValueError: a field has the wrong type or is out of range (the message says
            what was expected and what came).
    """

    name: str
    frame_skip: int = 4
    max_pool: bool = False
    resize: tuple[int, int] = (84, 84)
    crop_top: int | None = None
    noop_max: int = 0
    terminal_on_life_loss: bool = False
    clip_rewards: bool = True
    repeat_action_probability: float = 0.0
    max_episode_steps: int | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"name must be a non-empty str, got {self.name!r}")
        set_ = lambda field, value: object.__setattr__(self, field, value)  # noqa: E731 (frozen)
        set_("frame_skip", _check_int("frame_skip", self.frame_skip, 1))
        set_("max_pool", _check_bool("max_pool", self.max_pool))
        set_("resize", _check_resize(self.resize))
        set_("crop_top", _check_crop(self.crop_top, self.resize))
        set_("noop_max", _check_int("noop_max", self.noop_max, 0))
        for field in ("terminal_on_life_loss", "clip_rewards"):
            set_(field, _check_bool(field, getattr(self, field)))
        p = self.repeat_action_probability
        if isinstance(p, bool) or not isinstance(p, numbers.Real):
            raise TypeError(f"repeat_action_probability must be a float in [0, 1), "
                            f"got {type(p).__name__} {p!r}")
        if not 0.0 <= p < 1.0:
            raise ValueError(f"repeat_action_probability must be in [0, 1) (0 = deterministic "
                             f"emulator, as in the DQN papers; 0.25 = Gymnasium's v5 default), got {p}")
        set_("repeat_action_probability", float(p))
        if self.max_episode_steps is not None:
            set_("max_episode_steps", _check_int("max_episode_steps", self.max_episode_steps, 1))
        if self.max_pool and self.frame_skip < 2:
            raise ValueError(f"max_pool takes the max of the last two of the frame_skip frames, so it "
                             f"needs frame_skip >= 2, got frame_skip={self.frame_skip}")
        if self.noop_max > 0 and not self.max_pool:
            raise ValueError(f"noop_max={self.noop_max} needs max_pool=True: no-op starts come from "
                             f"Gymnasium's AtariPreprocessing, which always max-pools; set "
                             f"noop_max=0 or max_pool=True")

    @property
    def frame_shape(self) -> tuple[int, int]:
        """``(rows, cols)`` of one observation: the crop square, or the resized frame."""
        rows, cols = self.resize
        return (cols, cols) if self.crop_top is not None else (rows, cols)


#: The two presets. ``"2013"``: the 2013 paper (Sec. 4.1 preprocessing, Sec. 5 frame skip and
#: reward clipping). The 110x84 frame is cropped to rows 18..101 (``crop_top=18``): in the
#: 110-row image, Pong's top wall ends at row 17 and its bottom wall starts at row 101, so these
#: rows are exactly Pong's playing field (ball and both paddles); in Breakout they hold everything
#: below the top wall (rows 9..16) down to and including the paddle (rows 99..100). What is cut is
#: the score bar at the top and the border at the bottom. The other common choice, rows 26..109,
#: would hide the top 8 rows of Pong's field, where the ball travels. The paper used k = 3 for
#: Space Invaders (with k = 4 the blinking lasers are invisible); make that with
#: :func:`dataclasses.replace`. ``"nature"``: Nature 2015 (Methods, Extended Data Table 1): max of
#: the last two frames, 84x84 without a crop, k = 4, up to 30 no-ops at reset, rewards clipped,
#: life loss terminal for the learner. The Nature evaluation also capped episodes at 5 minutes
#: (``max_episode_steps=4500`` at k = 4); training had no cap, so neither preset has one.
PREPROCESSING: dict[str, Preprocessing] = {
    "2013": Preprocessing(name="2013", frame_skip=4, max_pool=False, resize=(110, 84), crop_top=18,
                          noop_max=0, terminal_on_life_loss=False, clip_rewards=True),
    "nature": Preprocessing(name="nature", frame_skip=4, max_pool=True, resize=(84, 84),
                            crop_top=None, noop_max=30, terminal_on_life_loss=True,
                            clip_rewards=True),
}


def _resolve(preprocessing: str | Preprocessing) -> Preprocessing:
    if isinstance(preprocessing, Preprocessing):
        return preprocessing
    if not isinstance(preprocessing, str):
        raise TypeError(f"preprocessing must be a preset name {sorted(PREPROCESSING)} or a "
                        f"Preprocessing, got {type(preprocessing).__name__} {preprocessing!r}")
    if preprocessing not in PREPROCESSING:
        raise ValueError(f"unknown preprocessing preset {preprocessing!r}: expected one of "
                         f"{sorted(PREPROCESSING)} or a Preprocessing instance")
    return PREPROCESSING[preprocessing]


# --------------------------------------------------------------------------- wrappers

class ResizeCrop(gym.ObservationWrapper, gym.utils.RecordConstructorArgs):
    """Down-sample a 2-D ``uint8`` frame to ``resize`` (rows, cols) and optionally crop a square.

    Step 1 (2013 paper, Sec. 4.1): ``cv2.resize`` to ``(rows, cols)`` with ``INTER_AREA``
    (each output pixel is the mean of the input pixels it covers), skipped if the frame already
    has that shape. Step 2: if ``crop_top`` is not None, keep rows ``crop_top .. crop_top+cols-1``,
    a ``cols x cols`` square (the paper crops only because its GPU convolution code wanted square
    inputs).
    """

    def __init__(self, env: gym.Env, resize: tuple[int, int], crop_top: int | None = None):
        gym.utils.RecordConstructorArgs.__init__(self, resize=resize, crop_top=crop_top)
        gym.ObservationWrapper.__init__(self, env)
        space = env.observation_space
        if not (isinstance(space, spaces.Box) and len(space.shape) == 2 and space.dtype == np.uint8):
            raise TypeError(f"ResizeCrop needs a 2-D uint8 Box observation space (a gray-scale "
                            f"screen), got {space}")
        self.resize = _check_resize(resize)
        self.crop_top = _check_crop(crop_top, self.resize)
        rows, cols = self.resize
        shape = (cols, cols) if self.crop_top is not None else (rows, cols)
        self.observation_space = spaces.Box(0, 255, shape, np.uint8)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        rows, cols = self.resize
        frame = np.asarray(observation)
        if frame.shape != (rows, cols):
            frame = cv2.resize(frame, (cols, rows), interpolation=cv2.INTER_AREA)  # cv2 wants (w, h)
        if self.crop_top is not None:
            frame = frame[self.crop_top:self.crop_top + cols]
        return np.ascontiguousarray(frame, dtype=np.uint8)


class LifeLossInfo(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Report lost lives in ``info["life_lost"]`` without ending the episode.

    The Nature DQN marks the transition where a life is lost as terminal for the learner (no
    bootstrapping past it) but plays on until game over, so an episode is a whole game and its
    score is the game score. Gymnasium's ``AtariPreprocessing(terminal_on_life_loss=True)``
    instead *ends* the episode, so the caller must reset (which only continues the game
    underneath) and sum scores across lives to report a game score, which is easy to get
    wrong. Here ``terminated`` stays "game over" and the training loop uses
    ``done_for_td = terminated or info["life_lost"]`` when the preset's
    ``terminal_on_life_loss`` is set. ``info["life_lost"]`` is True on the step where the ALE's
    life counter dropped (including the last life, at game over); ``info["lives"]`` is the count.
    """

    def __init__(self, env: gym.Env):
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.Wrapper.__init__(self, env)
        self._lives = 0

    def _ale_lives(self) -> int:
        return int(self.env.unwrapped.ale.lives())

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        self._lives = self._ale_lives()
        info = dict(info, lives=self._lives, life_lost=False)
        return obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        lives = self._ale_lives()
        info = dict(info, lives=lives, life_lost=lives < self._lives)
        self._lives = lives
        return obs, reward, terminated, truncated, info


class ClipReward(gym.RewardWrapper, gym.utils.RecordConstructorArgs):
    """Clip each reward to its sign, -1 / 0 / +1 (2013 paper, Sec. 5; Nature 2015, Methods).

    Clipping puts every game's error derivatives on the same scale, so one learning rate serves
    all games, at the price of not telling a 1-point from a 30-point reward. The unclipped
    reward stays in ``info["raw_reward"]`` (and an inner ``RecordEpisodeStatistics`` sums the
    raw rewards into the game score).
    """

    def __init__(self, env: gym.Env):
        gym.utils.RecordConstructorArgs.__init__(self)
        gym.RewardWrapper.__init__(self, env)

    def reward(self, reward: float) -> float:
        return float(np.sign(reward))

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        info = dict(info, raw_reward=float(reward))
        return obs, self.reward(reward), terminated, truncated, info


# --------------------------------------------------------------------------- builders

def make_atari(game: str, preprocessing: str | Preprocessing = "2013", *, seed: int | None = None,
               render_mode: str | None = None) -> gym.Env:
    """Build the DQN view of an Atari game: ``(84, 84)`` ``uint8`` frames, clipped rewards.

    The wrappers, innermost first:

    1. ``gym.make("ALE/<Game>-v5", obs_type="grayscale", full_action_space=False,
       repeat_action_probability=p.repeat_action_probability)``: the emulator, the game's
       minimal action set, the ALE's gray-scale screen (its palette's luminance). Without
       max-pooling it is made with ``frameskip=k``: the ALE repeats the action k times, sums the
       rewards and returns the last frame. With max-pooling it is made with ``frameskip=1`` and
    2. Gymnasium's ``AtariPreprocessing(frame_skip=k, noop_max=p.noop_max, grayscale_obs=True,
       terminal_on_life_loss=False, scale_obs=False)`` repeats the action, max-pools the last
       two frames, takes the no-ops at reset and resizes.
    3. :class:`ResizeCrop`: resize (if not done) and the 2013 crop.
    4. :class:`LifeLossInfo`: ``info["life_lost"]``, ``info["lives"]``.
    5. ``TimeLimit(p.max_episode_steps)`` if set (inside the statistics, so a truncated
       episode's score is recorded).
    6. ``RecordEpisodeStatistics``: at the end of an episode ``info["episode"]`` holds ``"r"``,
       the raw game score, ``"l"``, the number of agent steps, and ``"t"``, seconds.
    7. :class:`ClipReward` if ``p.clip_rewards``: reward -> sign, ``info["raw_reward"]``.

    Args:
        game: a name from :data:`GAMES` or a ``"ALE/<Game>-v5"`` id (see :func:`check_game`).
        preprocessing: a preset name from :data:`PREPROCESSING` or a :class:`Preprocessing`.
        seed: if not None, the emulator, the no-op generator and the action space are seeded,
            so that the first ``reset()`` is the same as ``reset(seed=seed)``: envs made with
            equal seeds replay identically under equal actions.
        render_mode: passed to ``gym.make`` (``"rgb_array"`` renders the full-colour screen).

    Raises:
        TypeError / ValueError: unknown game or preset, or a bad ``seed``.
    """
    env_id = check_game(game)
    p = _resolve(preprocessing)
    if seed is not None:
        seed = _check_int("seed", seed, 0)
    make_kwargs = dict(obs_type="grayscale", full_action_space=False,
                       repeat_action_probability=p.repeat_action_probability,
                       render_mode=render_mode)
    if p.max_pool:
        env = gym.make(env_id, frameskip=1, **make_kwargs)
        rows, cols = p.resize
        env = AtariPreprocessing(env, noop_max=p.noop_max, frame_skip=p.frame_skip,
                                 screen_size=(cols, rows), terminal_on_life_loss=False,
                                 grayscale_obs=True, grayscale_newaxis=False, scale_obs=False)
    else:
        env = gym.make(env_id, frameskip=p.frame_skip, **make_kwargs)
    env = ResizeCrop(env, p.resize, p.crop_top)
    env = LifeLossInfo(env)
    if p.max_episode_steps is not None:
        env = TimeLimit(env, max_episode_steps=p.max_episode_steps)
    env = RecordEpisodeStatistics(env)
    if p.clip_rewards:
        env = ClipReward(env)
    if seed is not None:
        # Seed the emulator and the no-op generator the way ``reset(seed=seed)`` does
        # (``AtariEnv.reset``: ``seed_game`` then ``load_game``), without starting an episode,
        # so that the first ``reset()`` equals ``reset(seed=seed)``.
        env.unwrapped.seed_game(seed)
        env.unwrapped.load_game()
        env.action_space.seed(seed)
    return env


def make_vector_atari(game: str, num_envs: int, *, preprocessing: str | Preprocessing = "nature",
                      seed: int | None = 0, num_threads: int = 0) -> gym.vector.VectorEnv:
    """``num_envs`` copies of a game in ale-py's C++ ``AtariVectorEnv``, the fast path.

    ``AtariVectorEnv`` runs the emulators in C++ threads and does the DQN preprocessing there.
    The preset maps onto its constructor as ``frameskip=k``, ``maxpool=p.max_pool``,
    ``noop_max=p.noop_max``, ``img_height, img_width = p.resize``, ``grayscale=True``,
    ``reward_clipping=p.clip_rewards``, ``repeat_action_probability``,
    ``full_action_space=False``, and ``max_num_frames_per_episode = k * p.max_episode_steps``
    (108,000 frames if None). Beyond the preset: ``use_fire_reset=False`` (the DQN papers did not
    press FIRE at reset), ``episodic_life=False`` and ``life_loss_info=False``, so that, as in
    :func:`make_atari`, ``terminated`` means game over.

    Differences from :func:`make_atari`:

    * Observations are ``(num_envs, 4, 84, 84)`` ``uint8``: the env stacks the last 4 frames
      itself (``stack_num=4``); on reset the stack is padded with blank frames.
    * The 2013 crop is not available in C++: the env resizes to 110x84 and the rows
      ``crop_top..crop_top+83`` are cut out in numpy (``gymnasium.wrappers.vector.
      TransformObservation``), giving the same shape.
    * Rewards are clipped in C++, and the raw reward is not reported: compute game scores with
      :func:`make_atari` (or a copy made with ``clip_rewards=False``).
    * A lost life is visible only as a drop of ``info["lives"]`` (shape ``(num_envs,)``); the
      constructor's ``life_loss_info=True`` would instead set ``terminated`` on a life loss
      while the game goes on. Episodes auto-reset on the step after they end (``NEXT_STEP``).

    Args:
        game: a name from :data:`GAMES` or a ``"ALE/<Game>-v5"`` id.
        num_envs: number of parallel games.
        preprocessing: a preset name or a :class:`Preprocessing`.
        seed: if not None, the env is reset once with this seed and its action space seeded,
            so envs made with equal seeds replay identically under equal actions. (Unlike
            :func:`make_atari`, the next ``reset()`` then starts a *new* episode of that seeded
            stream, not the same one as ``reset(seed=seed)``.)
        num_threads: C++ worker threads (0 = one per core).
    """
    env_id = check_game(game)
    p = _resolve(preprocessing)
    num_envs = _check_int("num_envs", num_envs, 1)
    num_threads = _check_int("num_threads", num_threads, 0)
    if seed is not None:
        seed = _check_int("seed", seed, 0)
    try:
        from ale_py.vector_env import AtariVectorEnv
    except ImportError as err:  # pragma: no cover - older ale-py
        raise ImportError(f"make_vector_atari needs ale_py.vector_env.AtariVectorEnv (ale-py >= "
                          f"0.11), found ale-py {ale_py.__version__}") from err
    rows, cols = p.resize
    max_frames = 108_000 if p.max_episode_steps is None else p.frame_skip * p.max_episode_steps
    env = AtariVectorEnv(
        _ROM_OF[env_id], num_envs, num_threads=num_threads,
        max_num_frames_per_episode=max_frames,
        repeat_action_probability=p.repeat_action_probability, full_action_space=False,
        img_height=rows, img_width=cols, grayscale=True, stack_num=4,
        frameskip=p.frame_skip, maxpool=p.max_pool, noop_max=p.noop_max,
        episodic_life=False, life_loss_info=False, reward_clipping=p.clip_rewards,
        use_fire_reset=False)
    if p.crop_top is not None:
        top = p.crop_top
        single = spaces.Box(0, 255, (4, cols, cols), np.uint8)
        env = gym.wrappers.vector.TransformObservation(
            env, lambda obs: np.ascontiguousarray(obs[..., top:top + cols, :]),
            observation_space=gym.vector.utils.batch_space(single, num_envs),
            single_observation_space=single)
    if seed is not None:
        env.reset(seed=seed)
        env.action_space.seed(seed)
    return env
