"""Tests for papernotes_core.dqn.atari: the DQN chapter's Atari environments."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

pytest.importorskip("ale_py")
cv2 = pytest.importorskip("cv2")

import gymnasium as gym  # noqa: E402
from gymnasium.utils.env_checker import check_env  # noqa: E402

from papernotes_core.dqn import atari  # noqa: E402
from papernotes_core.dqn.atari import (  # noqa: E402
    GAMES, PREPROCESSING, ClipReward, LifeLossInfo, Preprocessing, ResizeCrop, check_game,
    make_atari, make_vector_atari)

# check_env warns that a wrapped env is not its unwrapped version: checking the wrapped env is the point.
pytestmark = pytest.mark.filterwarnings("ignore:.*is different from the unwrapped version:UserWarning")


def _raw_gray(game: str, frameskip: int) -> gym.Env:
    """The bare emulator, gray-scale, deterministic: the reference for the preprocessing."""
    return gym.make(f"ALE/{game}-v5", frameskip=frameskip, repeat_action_probability=0.0,
                    obs_type="grayscale", full_action_space=False)


# --------------------------------------------------------------------------- game names

def test_games_lists_the_classics():
    for game in ("Pong", "Breakout", "SpaceInvaders", "Seaquest", "BeamRider", "Enduro", "Qbert"):
        assert game in GAMES
    assert list(GAMES) == sorted(GAMES) and len(set(GAMES)) == len(GAMES) > 50
    assert all(gym.spec(check_game(g)) is not None for g in GAMES)


def test_check_game_accepts_names_and_ids():
    assert check_game("Pong") == "ALE/Pong-v5"
    assert check_game("ALE/Breakout-v5") == "ALE/Breakout-v5"
    assert check_game("SpaceInvaders") == "ALE/SpaceInvaders-v5"


@pytest.mark.parametrize("bad, suggestion", [
    ("Pongg", "'Pong'"), ("pong", "'Pong'"), ("space_invaders", "'SpaceInvaders'"),
    ("ALE/Pongg-v5", "'ALE/Pong-v5'"), ("PongNoFrameskip-v4", "'Pong'"),
])
def test_check_game_suggests_close_names(bad, suggestion):
    with pytest.raises(ValueError, match="did you mean") as err:
        check_game(bad)
    assert suggestion in str(err.value) and repr(bad) in str(err.value)
    assert f"{len(GAMES)} games ship with ale-py" in str(err.value)


def test_check_game_rejects_non_strings_and_nonsense():
    with pytest.raises(TypeError, match="must be a str"):
        check_game(123)
    with pytest.raises(ValueError, match="expected a name such as 'Pong'"):
        check_game("Zzzzzzzzzzzz")


# --------------------------------------------------------------------------- Preprocessing

def test_presets():
    p13, nat = PREPROCESSING["2013"], PREPROCESSING["nature"]
    assert (p13.frame_skip, p13.max_pool, p13.resize, p13.crop_top, p13.noop_max) == (4, False, (110, 84), 18, 0)
    assert (nat.frame_skip, nat.max_pool, nat.resize, nat.crop_top, nat.noop_max) == (4, True, (84, 84), None, 30)
    assert not p13.terminal_on_life_loss and nat.terminal_on_life_loss
    assert p13.clip_rewards and nat.clip_rewards
    assert p13.repeat_action_probability == nat.repeat_action_probability == 0.0
    assert p13.frame_shape == nat.frame_shape == (84, 84)
    k3 = dataclasses.replace(p13, name="2013-k3", frame_skip=3)
    assert k3.frame_skip == 3 and k3.crop_top == 18


@pytest.mark.parametrize("changes, error, match", [
    (dict(frame_skip=0), ValueError, "frame_skip must be a positive int"),
    (dict(frame_skip="4"), TypeError, "frame_skip must be a positive int, got str"),
    (dict(repeat_action_probability=1.5), ValueError, r"repeat_action_probability must be in \[0, 1\)"),
    (dict(repeat_action_probability="0"), TypeError, "repeat_action_probability"),
    (dict(resize=(110,)), TypeError, "resize must be a"),
    (dict(resize=(110, 84), crop_top=30), ValueError, "expected crop_top <= 26"),
    (dict(crop_top=-1), ValueError, "crop_top must be an int >= 0"),
    (dict(noop_max=30), ValueError, "needs max_pool=True"),
    (dict(max_pool=True, frame_skip=1), ValueError, "needs frame_skip >= 2"),
    (dict(max_pool=1), TypeError, "max_pool must be a bool"),
    (dict(max_episode_steps=0), ValueError, "max_episode_steps"),
    (dict(name=""), TypeError, "name must be a non-empty str"),
])
def test_preprocessing_validation(changes, error, match):
    kwargs = dict(name="custom") | changes
    with pytest.raises(error, match=match):
        Preprocessing(**kwargs)


def test_unknown_preset_and_bad_arguments():
    with pytest.raises(ValueError, match=r"unknown preprocessing preset 'dqn'.*'2013', 'nature'"):
        make_atari("Pong", "dqn")
    with pytest.raises(TypeError, match="preprocessing must be"):
        make_atari("Pong", 2013)
    with pytest.raises(ValueError, match="did you mean 'Pong'"):
        make_atari("Pongg")
    with pytest.raises(ValueError, match="seed must be an int >= 0"):
        make_atari("Pong", seed=-1)


# --------------------------------------------------------------------------- env API

@pytest.mark.parametrize("preset", ["2013", "nature"])
def test_check_env_on_wrapped_env(preset):
    env = make_atari("Pong", preset)
    check_env(env, skip_render_check=True)
    assert env.observation_space == gym.spaces.Box(0, 255, (84, 84), np.uint8)
    obs, info = env.reset(seed=0)
    assert obs.shape == (84, 84) and obs.dtype == np.uint8 and obs.flags.c_contiguous
    assert info["life_lost"] is False


def test_check_env_on_each_wrapper():
    check_env(ResizeCrop(_raw_gray("Pong", 4), (110, 84), 18), skip_render_check=True)
    check_env(ResizeCrop(_raw_gray("Pong", 4), (84, 84)), skip_render_check=True)
    check_env(LifeLossInfo(_raw_gray("Breakout", 4)), skip_render_check=True)
    check_env(ClipReward(_raw_gray("Pong", 4)), skip_render_check=True)
    with pytest.raises(TypeError, match="2-D uint8 Box"):
        ResizeCrop(gym.make("ALE/Pong-v5"), (84, 84))  # RGB screen


# --------------------------------------------------------------------------- observations

def test_2013_observation_is_resize_then_crop():
    """Against the bare emulator stepped in lockstep, and against the ALE's own screen buffer."""
    env, ref = make_atari("Pong", "2013"), _raw_gray("Pong", 4)
    obs, _ = env.reset(seed=5)
    raw, _ = ref.reset(seed=5)
    rng = np.random.default_rng(0)
    for t in range(40):
        expected = cv2.resize(raw, (84, 110), interpolation=cv2.INTER_AREA)[18:102]
        np.testing.assert_array_equal(obs, expected)
        screen = env.unwrapped.ale.getScreenGrayscale()
        assert screen.shape == (210, 160)
        np.testing.assert_array_equal(obs, cv2.resize(screen, (84, 110), interpolation=cv2.INTER_AREA)[18:102])
        action = int(rng.integers(env.action_space.n))
        obs, *_ = env.step(action)
        raw, *_ = ref.step(action)
    assert obs.std() > 0  # not a blank frame


def test_max_pool_is_max_of_last_two_frames():
    """Nature preprocessing (no-ops off, to step in lockstep with a frameskip-1 emulator)."""
    pre = dataclasses.replace(PREPROCESSING["nature"], name="nature-no-noop", noop_max=0)
    env, ref = make_atari("Breakout", pre), _raw_gray("Breakout", 1)
    env.reset(seed=2)
    ref.reset(seed=2)
    rng = np.random.default_rng(1)
    for t in range(30):
        action = int(rng.integers(env.action_space.n))
        obs, *_ = env.step(action)
        frames = [ref.step(action)[0] for _ in range(4)]
        pooled = np.maximum(frames[-2], frames[-1])
        np.testing.assert_array_equal(obs, cv2.resize(pooled, (84, 84), interpolation=cv2.INTER_AREA))


# --------------------------------------------------------------------------- rewards, scores, lives

def test_rewards_clipped_raw_kept_and_score_is_raw():
    """Space Invaders pays 5..30 points per invader, so clipping is visible within an episode."""
    env = make_atari("SpaceInvaders", "2013", seed=0)
    env.reset()
    raw_total = clipped_total = 0.0
    big = 0
    for _ in range(5000):
        _, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert reward == np.sign(info["raw_reward"]) and reward in (-1.0, 0.0, 1.0)
        raw_total += info["raw_reward"]
        clipped_total += reward
        big += abs(info["raw_reward"]) > 1
        if terminated or truncated:
            break
    assert terminated, "random Space Invaders should end well within 5000 steps"
    assert big > 0
    assert info["episode"]["r"] == raw_total > clipped_total
    assert "episode" in info and info["episode"]["l"] > 0


@pytest.mark.parametrize("preset", ["nature", "2013"])
def test_life_loss_flagged_episode_continues(preset):
    env = make_atari("Breakout", preset, seed=0)
    _, info = env.reset()
    lives, losses = info["lives"], 0
    assert lives == 5
    for _ in range(3000):
        _, _, terminated, truncated, info = env.step(env.action_space.sample())
        assert info["life_lost"] == (info["lives"] < lives)
        if info["life_lost"]:
            losses += 1
            assert terminated == (info["lives"] == 0)  # the game goes on until the last life
        lives = info["lives"]
        if terminated or truncated:
            break
    assert terminated and losses == 5 and "episode" in info


def test_time_limit_counts_agent_steps_and_records_score():
    pre = dataclasses.replace(PREPROCESSING["2013"], name="short", max_episode_steps=10)
    env = make_atari("Pong", pre, seed=0)
    env.reset()
    for t in range(10):
        _, _, terminated, truncated, info = env.step(0)
    assert truncated and not terminated and info["episode"]["l"] == 10


def test_no_clip_means_no_clip_wrapper():
    pre = dataclasses.replace(PREPROCESSING["2013"], name="raw", clip_rewards=False)
    env = make_atari("Pong", pre)
    assert not isinstance(env, ClipReward)
    assert isinstance(make_atari("Pong"), ClipReward)


# --------------------------------------------------------------------------- determinism

@pytest.mark.parametrize("preset", ["2013", "nature"])
def test_same_seed_same_observations(preset):
    actions = np.random.default_rng(7).integers(0, 6, size=50)

    def rollout(seed):
        env = make_atari("Pong", preset, seed=seed)
        frames = [env.reset()[0]]
        frames += [env.step(int(a))[0] for a in actions[:-1]]
        return np.stack(frames)

    first = rollout(3)
    np.testing.assert_array_equal(first, rollout(3))
    env = make_atari("Pong", preset)
    frames = [env.reset(seed=3)[0]]  # and reset(seed=...) on an unseeded env replays the same
    frames += [env.step(int(a))[0] for a in actions[:-1]]
    np.testing.assert_array_equal(first, np.stack(frames))


# --------------------------------------------------------------------------- vector env

@pytest.mark.parametrize("preset", ["nature", "2013"])
def test_vector_env_shapes(preset):
    env = make_vector_atari("Pong", 2, preprocessing=preset, seed=0, num_threads=1)
    assert env.single_observation_space == gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)
    obs, info = env.reset(seed=0)
    assert obs.shape == (2, 4, 84, 84) and obs.dtype == np.uint8
    for _ in range(5):
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert obs.shape == (2, 4, 84, 84) and reward.shape == terminated.shape == (2,)
    assert info["lives"].shape == (2,)
    env.close()


def test_vector_2013_crop_matches_make_atari():
    vec = make_vector_atari("Pong", 1, preprocessing="2013", seed=0, num_threads=1)
    obs, _ = vec.reset(seed=0)
    single, _ = make_atari("Pong", "2013").reset(seed=0)
    np.testing.assert_array_equal(obs[0, -1], single)
    vec.close()


def test_vector_rejects_bad_arguments():
    with pytest.raises(ValueError, match="num_envs must be a positive int"):
        make_vector_atari("Pong", 0)
    with pytest.raises(ValueError, match="did you mean"):
        make_vector_atari("Pongg", 1)


def test_module_exports():
    assert set(atari.__all__) <= set(dir(atari))


def test_vector_same_seed_same_observations():
    def rollout():
        env = make_vector_atari("Breakout", 2, preprocessing="nature", seed=4, num_threads=1)
        frames = [env.reset()[0]]
        frames += [env.step(np.array([a, (a + 1) % 4]))[0] for a in [1, 2, 3, 0, 1, 2, 3, 1] * 3]
        env.close()
        return np.stack(frames)

    np.testing.assert_array_equal(rollout(), rollout())
