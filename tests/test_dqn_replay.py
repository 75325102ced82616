"""Tests for papernotes_core.dqn.replay: the frame-once replay memory of DQN, checked against a
naive reference that keeps each episode as a Python list of frames and builds every stack
directly; wrap-around, episode starts, padding, errors, sizes and save/restore."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from papernotes_core.dqn.replay import Batch, ReplayMemory


# ----------------------------------------------------------------------------------------------
# The naive reference
# ----------------------------------------------------------------------------------------------

class Reference:
    """Episodes as lists of frames and steps; the last ``capacity`` frames written survive; a
    transition is kept iff every frame of its stack and next stack (first-frame padded) survives."""

    def __init__(self, capacity: int, stack: int):
        self.capacity, self.stack = capacity, stack
        self.n_frames = 0            # frames written, in order, over all episodes
        self.episodes = []           # {"start": absolute index of frame 0, "frames": [...], "steps": [...]}

    def start_episode(self, frame):
        self.episodes.append({"start": self.n_frames, "frames": [frame], "steps": []})
        self.n_frames += 1

    def add(self, action, reward, frame, terminated, truncated):
        ep = self.episodes[-1]
        ep["steps"].append((action, reward, terminated, truncated))
        ep["frames"].append(frame)
        self.n_frames += 1

    def stack_indices(self, k):
        """Episode-local indices of the stack ending at step k, padded with frame 0."""
        return [max(0, k - self.stack + 1 + i) for i in range(self.stack)]

    def _kept(self):
        oldest = self.n_frames - self.capacity
        for ep in self.episodes:
            for k, step in enumerate(ep["steps"]):
                needed = self.stack_indices(k) + self.stack_indices(k + 1)
                if all(ep["start"] + i >= oldest for i in needed):
                    yield ep, k, step

    def count(self):
        return sum(1 for _ in self._kept())

    def transitions(self):
        out = set()
        for ep, k, (action, reward, terminated, truncated) in self._kept():
            obs = np.stack([ep["frames"][i] for i in self.stack_indices(k)])
            nxt = np.stack([ep["frames"][i] for i in self.stack_indices(k + 1)])
            out.add((obs.tobytes(), int(action), float(np.float32(reward)), nxt.tobytes(), terminated, truncated))
        return out

    def current_stack(self):
        ep = self.episodes[-1]
        return np.stack([ep["frames"][i] for i in self.stack_indices(len(ep["frames"]) - 1)])


def keys(batch: Batch):
    return [(batch.obs[i].tobytes(), int(batch.action[i]), float(batch.reward[i]), batch.next_obs[i].tobytes(),
             bool(batch.terminated[i]), bool(batch.truncated[i])) for i in range(len(batch.action))]


def all_transitions(memory: ReplayMemory) -> Batch:
    return memory._gather(memory._valid_slots())


def frame(episode: int, step: int, shape=(2,), dtype=np.int32):
    """A frame that names its (episode, step) uniquely."""
    f = np.zeros(shape, dtype=dtype).reshape(-1)
    f[0], f[1] = episode, step
    return f.reshape(shape)


class Both:
    """Drive a ReplayMemory and the Reference with the same calls."""

    def __init__(self, capacity, stack, **kw):
        self.memory = ReplayMemory(capacity, (2,), stack=stack, obs_dtype=np.int32, **kw)
        self.ref = Reference(capacity, stack)
        self.episode = -1
        self.step = 0

    def start(self):
        self.episode += 1
        self.step = 0
        f = frame(self.episode, 0)
        self.memory.start_episode(f)
        self.ref.start_episode(f)

    def add(self, terminated=False, truncated=False):
        self.step += 1
        action, reward = (3 * self.episode + self.step) % 7, 0.25 * self.step - self.episode
        f = frame(self.episode, self.step)
        self.memory.add(action, reward, f, terminated, truncated)
        self.ref.add(action, reward, f, terminated, truncated)

    def check(self):
        assert len(self.memory) == self.ref.count()
        got = keys(all_transitions(self.memory))
        assert len(got) == len(set(got)) == len(self.memory)
        assert set(got) == self.ref.transitions()
        np.testing.assert_array_equal(self.memory.current_stack(), self.ref.current_stack())


# ----------------------------------------------------------------------------------------------
# Against the reference
# ----------------------------------------------------------------------------------------------

END = st.sampled_from(["terminated", "truncated", "both", "abandoned"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(capacity=st.integers(1, 12), data=st.data(),
       episodes=st.lists(st.tuples(st.integers(1, 15), END), min_size=1, max_size=8),
       last_steps=st.one_of(st.none(), st.integers(0, 10)))
def test_matches_the_naive_reference(capacity, data, episodes, last_steps):
    """Random episodes (length 1 included, longer than the capacity included, many wrap-arounds,
    terminated / truncated / abandoned ends): the set of sampleable transitions, len(), the
    current stack and every sampled transition agree with the reference."""
    stack = data.draw(st.integers(1, min(capacity, 5)), label="stack")
    both = Both(capacity, stack, seed=data.draw(st.integers(0, 2**32 - 1), label="seed"))
    plan = episodes + ([(last_steps, "running")] if last_steps is not None else [])
    for length, end in plan:
        both.start()
        for k in range(length):
            last = k == length - 1
            both.add(terminated=last and end in ("terminated", "both"), truncated=last and end in ("truncated", "both"))
            assert len(both.memory) == both.ref.count()
            np.testing.assert_array_equal(both.memory.current_stack(), both.ref.current_stack())
        both.check()
    n = len(both.memory)
    b = min(capacity, max(n, 1))
    assert both.memory.can_sample(b) == (n >= b)
    if n >= b:
        reference = both.ref.transitions()
        for _ in range(3):
            assert set(keys(both.memory.sample(b))) <= reference


def test_episode_starts_are_padded_with_the_first_frame_and_never_crossed():
    both = Both(capacity=20, stack=3)
    both.start()
    both.add()
    both.add(terminated=True)
    both.start()
    both.add()
    both.check()
    expected = {  # (obs stack, next stack) per transition, frames named by (episode, step)
        (((0, 0), (0, 0), (0, 0)), ((0, 0), (0, 0), (0, 1))),
        (((0, 0), (0, 0), (0, 1)), ((0, 0), (0, 1), (0, 2))),
        (((1, 0), (1, 0), (1, 0)), ((1, 0), (1, 0), (1, 1))),
    }
    batch = all_transitions(both.memory)
    named = lambda stacks: tuple(tuple(map(int, f)) for f in stacks)  # noqa: E731
    assert {(named(batch.obs[i]), named(batch.next_obs[i])) for i in range(len(batch.action))} == expected
    # the last frame of episode 0 starts no transition; the terminal one is flagged
    assert len(both.memory) == 3 and batch.terminated.sum() == 1
    np.testing.assert_array_equal(both.memory.current_stack(), [frame(1, 0), frame(1, 0), frame(1, 1)])


def test_wrap_around_in_one_long_episode():
    """capacity 5, stack 2, an episode of 10 steps: frames 6..10 survive; the transition from
    frame 6 needs frame 5 for its stack, so only 7->8, 8->9, 9->10 remain."""
    both = Both(capacity=5, stack=2)
    both.start()
    for _ in range(10):
        both.add()
    both.check()
    batch = all_transitions(both.memory)
    assert len(both.memory) == 3
    np.testing.assert_array_equal(batch.obs[:, :, 1], [[6, 7], [7, 8], [8, 9]])
    np.testing.assert_array_equal(batch.next_obs[:, :, 1], [[7, 8], [8, 9], [9, 10]])


def test_wrap_around_drops_transitions_whose_padding_frame_was_overwritten():
    """capacity 4, stack 3: episode 0 of 2 steps (frames 0-2), episode 1 (frames 3-...). When
    frame 3 (episode 1's first frame) is overwritten, the transitions that pad with it go."""
    both = Both(capacity=4, stack=3)
    both.start()
    both.add()
    both.add(truncated=True)
    both.start()
    for _ in range(3):
        both.add()
    both.check()
    assert len(both.memory) == 3               # frames 3-6 survive: all of episode 1's steps
    both.add()                                 # frame 7 overwrites frame 3
    both.check()
    assert len(both.memory) == 1               # only 6->7: its stack 4,5,6 survives
    batch = all_transitions(both.memory)
    np.testing.assert_array_equal(batch.obs[0, :, 1], [1, 2, 3])


def test_wrap_around_across_episodes_keeps_a_first_frame_only_when_needed():
    """capacity 6: episode 0 (frames 0-3), episode 1 (frames 4-7); frames 2-7 survive. With
    stack 1 the step 2->3 of episode 0 is still whole; with stack 2 it needs frame 1, gone."""
    for stack, expected in ((1, 4), (2, 3)):
        both = Both(capacity=6, stack=stack)
        both.start()
        for k in range(3):
            both.add(terminated=k == 2)
        both.start()
        for _ in range(3):
            both.add()
        both.check()
        assert len(both.memory) == expected


def test_length_one_episodes_and_terminated_versus_truncated():
    both = Both(capacity=7, stack=2)
    for k in range(10):
        both.start()
        both.add(terminated=k % 2 == 0, truncated=k % 2 == 1)
        both.check()
    batch = all_transitions(both.memory)
    assert len(both.memory) == 3               # 7 slots, 2 per episode: the last 3 episodes whole
    assert (batch.terminated != batch.truncated).all()
    np.testing.assert_array_equal(batch.obs[:, 0], batch.obs[:, 1])   # stack of 2 padded with frame 0


def test_abandoned_episode_keeps_its_transitions():
    """start_episode mid-episode (a resumed run resets its environment) ends the episode without a
    flag: its transitions stay and bootstrap, its last frame starts none."""
    both = Both(capacity=20, stack=2)
    both.start()
    both.add()
    both.add()
    both.start()
    both.add()
    both.check()
    assert len(both.memory) == 3
    assert not all_transitions(both.memory).terminated.any()


def test_capacity_one_holds_no_transition():
    memory = ReplayMemory(1, (2,), stack=1, obs_dtype=np.int32)
    memory.start_episode(frame(0, 0))
    memory.add(0, 1.0, frame(0, 1), False, False)
    assert len(memory) == 0 and not memory.can_sample(1)
    np.testing.assert_array_equal(memory.current_stack(), [frame(0, 1)])


# ----------------------------------------------------------------------------------------------
# Sampling
# ----------------------------------------------------------------------------------------------

def test_sampling_is_uniform_over_valid_transitions():
    both = Both(capacity=16, stack=3, seed=1)
    for length in (4, 1, 5, 3, 6):            # wraps; several starts; invalid slots in between
        both.start()
        for k in range(length):
            both.add(terminated=k == length - 1)
    both.check()
    n = len(both.memory)
    index = {key: i for i, key in enumerate(sorted(both.ref.transitions()))}
    counts = np.zeros(n)
    for _ in range(1000):
        for key in keys(both.memory.sample(n)):
            counts[index[key]] += 1
    expected = counts.sum() / n
    assert (counts > 0).all()
    assert np.abs(counts - expected).max() < 0.15 * expected       # ~5 standard deviations


def test_sparse_memory_falls_back_to_enumeration():
    """capacity 16, stack 15, one long episode: a transition needs 16 surviving frames, so only
    the newest one is valid (fewer than 1 slot in 8: sampling enumerates the valid slots)."""
    both = Both(capacity=16, stack=15, seed=3)
    both.start()
    for _ in range(20):
        both.add()
        both.check()
    assert len(both.memory) == 1 and 8 * len(both.memory) < both.memory.capacity
    (only,) = both.ref.transitions()
    assert keys(both.memory.sample(1)) == [only]
    both.add()
    both.check()
    assert keys(both.memory.sample(1)) == list(both.ref.transitions())


def test_sampling_is_reproducible_and_uses_the_given_generator():
    def filled(seed):
        both = Both(capacity=30, stack=4, seed=seed)
        for length in (7, 12, 9, 8):
            both.start()
            for k in range(length):
                both.add(truncated=k == length - 1)
        return both.memory

    a, b = filled(5), filled(5)
    for _ in range(5):
        assert keys(a.sample(8)) == keys(b.sample(8))
    assert keys(filled(5).sample(8)) != keys(filled(6).sample(8))
    rng = np.random.default_rng(5)
    c = filled(np.random.default_rng(5))
    assert keys(c.sample(8)) == keys(filled(rng).sample(8))


def test_batch_shapes_and_dtypes_for_atari_frames():
    rng = np.random.default_rng(0)
    memory = ReplayMemory(50, (84, 84), stack=4)
    frames = rng.integers(0, 256, size=(61, 84, 84), dtype=np.uint8)
    memory.start_episode(frames[0])
    for i in range(1, 61):
        memory.add(i % 4, 1.0, frames[i], False, i == 60)
    batch = memory.sample(32)
    assert isinstance(batch, Batch)
    assert batch.obs.shape == batch.next_obs.shape == (32, 4, 84, 84)
    assert batch.obs.dtype == batch.next_obs.dtype == np.uint8
    assert batch.action.dtype == np.int64 and batch.action.shape == (32,)
    assert batch.reward.dtype == np.float32 and batch.terminated.dtype == batch.truncated.dtype == np.bool_
    # the frames are the ones stored, shifted by one between obs and next_obs
    np.testing.assert_array_equal(batch.obs[:, 1:], batch.next_obs[:, :-1])
    np.testing.assert_array_equal(memory.current_stack(), frames[57:61])
    # a batch is a copy: changing it does not change the memory
    before = memory.current_stack().copy()
    memory.sample(32).obs[...] = 0
    np.testing.assert_array_equal(memory.current_stack(), before)


def test_stack_one_and_float32_vector_observations():
    """CartPole-like: obs_shape (4,), float32, no stacking."""
    memory = ReplayMemory(10, (4,), stack=1, obs_dtype=np.float32)
    obs = [np.full(4, i / 8, dtype=np.float32) for i in range(6)]
    memory.start_episode(obs[0])
    for i in range(1, 6):
        memory.add(i % 2, 1.0, obs[i], i == 5, False)
    assert len(memory) == 5
    batch = all_transitions(memory)
    assert batch.obs.shape == (5, 1, 4) and batch.obs.dtype == np.float32
    np.testing.assert_array_equal(batch.obs[:, 0], obs[:5])
    np.testing.assert_array_equal(batch.next_obs[:, 0], obs[1:])
    np.testing.assert_array_equal(batch.terminated, [False] * 4 + [True])
    np.testing.assert_array_equal(memory.current_stack(), obs[5][None])
    assert memory.sample(5).obs.shape == (5, 1, 4)


# ----------------------------------------------------------------------------------------------
# Bad input
# ----------------------------------------------------------------------------------------------

def test_bad_construction():
    with pytest.raises(ValueError, match="stack size must be >= 1, got 0"):
        ReplayMemory(10, (4,), stack=0)
    with pytest.raises(ValueError, match="capacity must be >= 1, got 0"):
        ReplayMemory(0, (4,))
    with pytest.raises(TypeError, match="capacity must be an int, got float"):
        ReplayMemory(10.0, (4,))
    with pytest.raises(TypeError, match=r"obs_shape must be a tuple of positive ints.*got list \[84, 84\]"):
        ReplayMemory(10, [84, 84])
    with pytest.raises(TypeError, match="obs_shape must be a tuple of positive ints"):
        ReplayMemory(10, (84, 0))
    with pytest.raises(ValueError, match="stack size must be <= capacity.*stack size 4 and capacity 3"):
        ReplayMemory(3, (4,), stack=4)
    with pytest.raises(TypeError, match="seed must be an int >= 0 or a np.random.Generator"):
        ReplayMemory(10, (4,), seed=1.5)
    with pytest.raises(TypeError, match="obs_dtype must be a numpy bool, integer or floating dtype, got object"):
        ReplayMemory(10, (4,), obs_dtype=object)


def test_sample_errors():
    memory = ReplayMemory(8, (2,), stack=2, obs_dtype=np.int32)
    with pytest.raises(ValueError, match="replay capacity 8 is smaller than the batch size 9"):
        memory.sample(9)
    assert not memory.can_sample(9)
    with pytest.raises(ValueError, match=r"sample\(4\) needs at least 4 transitions, has 0"):
        memory.sample(4)
    memory.start_episode(frame(0, 0))
    for k in range(1, 4):
        memory.add(0, 0.0, frame(0, k), False, False)
    assert len(memory) == 3 and not memory.can_sample(4) and memory.can_sample(3)
    with pytest.raises(ValueError, match="needs at least 4 transitions, has 3"):
        memory.sample(4)
    with pytest.raises(ValueError, match="batch_size must be >= 1, got 0"):
        memory.sample(0)
    with pytest.raises(TypeError, match="batch_size must be an int, got float"):
        memory.can_sample(2.0)


def test_add_out_of_order_errors():
    memory = ReplayMemory(8, (2,), stack=2, obs_dtype=np.int32)
    with pytest.raises(RuntimeError, match=r"add\(\) before start_episode\(\)"):
        memory.add(0, 0.0, frame(0, 1), False, False)
    with pytest.raises(RuntimeError, match=r"current_stack\(\) before start_episode\(\)"):
        memory.current_stack()
    memory.start_episode(frame(0, 0))
    memory.add(0, 0.0, frame(0, 1), True, False)
    with pytest.raises(RuntimeError, match=r"add\(\) after the episode ended.*call start_episode"):
        memory.add(0, 0.0, frame(0, 2), False, False)
    memory.start_episode(frame(1, 0))
    memory.add(0, 0.0, frame(1, 1), False, True)
    with pytest.raises(RuntimeError, match="truncated=True"):
        memory.add(0, 0.0, frame(1, 2), False, False)


def test_bad_step_arguments_are_refused_and_change_nothing():
    memory = ReplayMemory(8, (84, 84), stack=2)
    good = np.zeros((84, 84), np.uint8)
    with pytest.raises(ValueError, match=r"obs must have shape \(84, 84\) \(one frame\), got \(84, 84, 3\)"):
        memory.start_episode(np.zeros((84, 84, 3), np.uint8))
    with pytest.raises(TypeError, match="obs must have dtype uint8, got float32"):
        memory.start_episode(good.astype(np.float32))
    with pytest.raises(TypeError, match="obs must be a np.ndarray of shape"):
        memory.start_episode(good.tolist())
    memory.start_episode(good)
    state = memory.state_dict()
    bad_calls = [
        (ValueError, r"next_obs must have shape \(84, 84\) \(one frame\), got \(4, 84, 84\)",
         (0, 0.0, np.zeros((4, 84, 84), np.uint8), False, False)),
        (TypeError, "next_obs must have dtype uint8, got float64", (0, 0.0, np.zeros((84, 84)), False, False)),
        (TypeError, "action must be an int.*got float 1.0", (1.0, 0.0, good, False, False)),
        (TypeError, "action must be an int.*got bool", (True, 0.0, good, False, False)),
        (ValueError, r"action must be an int in \[0, 2147483647\].*got -1", (-1, 0.0, good, False, False)),
        (TypeError, "reward must be a real number, got str", (0, "1", good, False, False)),
        (ValueError, "reward must be finite in float32.*got nan", (0, float("nan"), good, False, False)),
        (ValueError, "reward must be finite in float32.*got 1e\\+300", (0, 1e300, good, False, False)),
        (TypeError, "terminated must be a bool, got int 1", (0, 0.0, good, 1, False)),
        (TypeError, "truncated must be a bool, got NoneType", (0, 0.0, good, False, None)),
    ]
    for error, message, args in bad_calls:
        with pytest.raises(error, match=message):
            memory.add(*args)
    after = memory.state_dict()
    for key, value in state.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(after[key], value)
        else:
            assert after[key] == value
    memory.add(np.int64(2), np.float32(1.5), good, np.bool_(False), False)   # numpy scalars are fine
    assert len(memory) == 1


# ----------------------------------------------------------------------------------------------
# Sizes
# ----------------------------------------------------------------------------------------------

def test_bytes_per_transition_and_at_capacity():
    per = ReplayMemory.bytes_per_transition((84, 84))
    assert per == 84 * 84 + 4 + 4 + 1 + 1 + 1 + 4 == 7071      # frame, action, reward, 3 flags, pos
    assert ReplayMemory.bytes_per_transition((4,), np.float32) == 16 + 15
    total = ReplayMemory.nbytes_at_capacity(1_000_000, (84, 84))
    assert total == 7_071_000_000
    assert 7.056e9 < total <= 7.5e9
    for capacity, shape, dtype in ((100, (84, 84), np.uint8), (37, (4,), np.float32), (5, (3, 2), np.int16)):
        memory = ReplayMemory(capacity, shape, stack=2, obs_dtype=dtype)
        assert memory.nbytes == ReplayMemory.nbytes_at_capacity(capacity, shape, dtype)
    with pytest.raises(TypeError, match="obs_shape must be a tuple of positive ints"):
        ReplayMemory.bytes_per_transition(84)


# ----------------------------------------------------------------------------------------------
# Save and restore
# ----------------------------------------------------------------------------------------------

def _filled(seed=0, capacity=23, **kw):
    both = Both(capacity=capacity, stack=3, seed=seed, **kw)
    for length in (9, 1, 14, 6):
        both.start()
        for k in range(length):
            both.add(terminated=k == length - 1)
    both.start()
    both.add()
    return both


def test_state_dict_round_trip_samples_identically():
    a = _filled(seed=4)
    state = a.memory.state_dict()
    b = ReplayMemory(23, (2,), stack=3, obs_dtype=np.int32, seed=999)
    b.load_state_dict(state)
    assert len(b) == len(a.memory)
    np.testing.assert_array_equal(b.current_stack(), a.memory.current_stack())
    for _ in range(5):
        assert keys(b.sample(7)) == keys(a.memory.sample(7))
    # both go on identically, mid-episode
    for memory in (a.memory, b):
        memory.add(1, 2.0, frame(9, 9), False, False)
    assert keys(all_transitions(b)) == keys(all_transitions(a.memory))
    assert keys(b.sample(7)) == keys(a.memory.sample(7))


def test_state_dict_is_a_snapshot():
    a = _filled()
    state = a.memory.state_dict()
    frames_before = state["frames"].copy()
    a.memory.add(0, 0.0, frame(7, 7), False, False)
    a.memory.sample(5)
    np.testing.assert_array_equal(state["frames"], frames_before)
    b = ReplayMemory(23, (2,), stack=3, obs_dtype=np.int32)
    b.load_state_dict(state)
    c = ReplayMemory(23, (2,), stack=3, obs_dtype=np.int32)
    c.load_state_dict(state)
    assert keys(b.sample(5)) == keys(c.sample(5))


def test_load_state_dict_refuses_a_mismatch_and_changes_nothing():
    state = _filled().memory.state_dict()
    other = ReplayMemory(24, (2,), stack=3, obs_dtype=np.int32)
    with pytest.raises(ValueError, match=r"state was saved from a memory with .*\(23, 3, \(2,\), '<i4'\).*this one has"):
        other.load_state_dict(state)
    memory = ReplayMemory(23, (2,), stack=3, obs_dtype=np.int32)
    with pytest.raises(ValueError, match="state must have the keys"):
        memory.load_state_dict({k: v for k, v in state.items() if k != "pos"})
    broken = dict(state, reward=state["reward"].astype(np.float64))
    with pytest.raises(ValueError, match=r"state\['reward'\] must be a np.ndarray float32 \(23,\), got float64"):
        memory.load_state_dict(broken)
    with pytest.raises(TypeError, match="state must be a dict"):
        memory.load_state_dict([])
    assert len(memory) == 0 and memory._t == 0
    with pytest.raises(RuntimeError, match="before start_episode"):
        memory.current_stack()
