r"""The replay memory of DQN (Mnih et al., 2013, "Playing Atari with Deep Reinforcement Learning"),
storing each frame once.

The paper (Sec. 4, Algorithm 1) keeps a *replay memory* :math:`\mathcal D` of capacity :math:`N`
holding the agent's experiences :math:`e_t = (\phi_t, a_t, r_t, \phi_{t+1})`, pooled over many
episodes; only the last :math:`N` are kept, and every update trains on a minibatch sampled
*uniformly at random* from :math:`\mathcal D`. The state :math:`\phi_t` is the stack of the last 4
preprocessed frames (Sec. 4.1), and the Atari runs use a memory of one million most recent frames
(Sec. 5).

Stored naively, each transition holds two stacks of 4 frames, 8 frames for one new frame of
information: 8x the memory. This module stores each frame **once** and builds the stacks when a
minibatch is sampled.

Design
------
* A ring buffer of ``capacity`` *frame slots*. Frames are numbered by an absolute counter
  :math:`i = 0, 1, 2, \dots` in the order they arrive (reset frames and next frames alike); frame
  :math:`i` lives in slot :math:`i \bmod N`, so the last :math:`N` frames survive.
* Each slot holds one frame plus the ``action``, ``reward``, ``terminated`` and ``truncated`` of
  the step taken *from* that frame, an ``acted`` flag (has a step been stored from this frame?) and
  ``pos``, the frame's position in its episode (0 for the reset frame). An episode of :math:`L`
  steps occupies :math:`L + 1` slots: its last frame has no action and never starts a transition,
  but it is the next frame of the last transition. The episode of the frame in slot :math:`i`
  starts at absolute index :math:`i - \text{pos}_i`.
* **Padding.** A stack never crosses an episode boundary: the stack for frame :math:`i` is frames
  :math:`i - k + 1, \dots, i` (:math:`k` = ``stack``), and any of them before the episode's first
  frame is replaced by that first frame (the convention of Gymnasium's ``FrameStackObservation``
  with its default ``padding_type="reset"``).
* **Validity.** The transition starting at frame :math:`i` is valid iff a step was stored from it
  (``acted``; so it is not the last frame of its episode and its next frame :math:`i + 1` is
  stored), and every frame its stack and its next stack need, after padding, is still in memory:
  :math:`i - \min(\text{pos}_i, k - 1) \ge T - N`, with :math:`T` the number of frames written so
  far. (Next frames are newer, so they outlive the frame they follow.) Transitions whose oldest
  needed frame was overwritten after the ring wrapped are not sampled.
* **Sampling** is uniform with replacement over the valid transitions: candidate slots are drawn
  uniformly and the invalid ones rejected (vectorised; when fewer than 1 in 8 slots is valid, the
  valid slots are enumerated instead). Stacks are gathered by one fancy index per batch, no
  Python loop over its items. The random numbers come from the memory's own seeded
  ``np.random.Generator``, so a run is reproducible, and :meth:`ReplayMemory.state_dict` saves
  the generator's state with the buffer.
* ``len(memory)`` is the number of valid transitions: a running count of ``acted`` slots minus the
  few invalid ones, which can only be among the oldest :math:`k - 1` frames (O(stack)).

Memory per slot (:meth:`ReplayMemory.bytes_per_transition`): one frame, plus ``action`` int32 (4
bytes), ``reward`` float32 (4), ``terminated``, ``truncated``, ``acted`` bool (1 each) and ``pos``
int32 (4): 15 bytes over the frame, so 7056 + 15 = 7071 bytes for an 84x84 uint8 frame, and
:math:`7.07 \cdot 10^9` bytes for the paper's one million frames. Rewards are stored as float32.
"""

from __future__ import annotations

import copy
import numbers
from typing import NamedTuple

import numpy as np

from ..training import check_int

__all__ = ["Batch", "ReplayMemory"]

# Per-slot arrays besides the frame, in one place so that allocation, nbytes and the byte
# arithmetic of bytes_per_transition cannot disagree.
_SLOT_FIELDS: tuple[tuple[str, np.dtype], ...] = (
    ("action", np.dtype(np.int32)),
    ("reward", np.dtype(np.float32)),
    ("terminated", np.dtype(np.bool_)),
    ("truncated", np.dtype(np.bool_)),
    ("acted", np.dtype(np.bool_)),
    ("pos", np.dtype(np.int32)),
)
_INT32_MAX = int(np.iinfo(np.int32).max)

# Where the stream of start_episode/add calls stands.
_NO_EPISODE, _RUNNING, _ENDED = 0, 1, 2
_STATE_FORMAT = 1


class Batch(NamedTuple):
    """A minibatch of transitions :math:`(\\phi_j, a_j, r_j, \\phi_{j+1})` (Algorithm 1).

    ``obs`` and ``next_obs`` have shape ``(B, stack, *obs_shape)`` and the memory's ``obs_dtype``;
    ``action`` is int64 ``(B,)``, ``reward`` float32 ``(B,)``, ``terminated`` and ``truncated``
    bool ``(B,)``. Only ``terminated`` ends bootstrapping (the target is :math:`r_j`); a
    ``truncated`` step (a time limit) still bootstraps from ``next_obs``, the flag is informational.
    """

    obs: np.ndarray
    action: np.ndarray
    reward: np.ndarray
    next_obs: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray


# ----------------------------------------------------------------------------------------------
# Argument checks
# ----------------------------------------------------------------------------------------------

def _is_int(value) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _check_obs_shape(obs_shape) -> tuple[int, ...]:
    if not isinstance(obs_shape, tuple) or not all(_is_int(d) and d >= 1 for d in obs_shape):
        raise TypeError(f"obs_shape must be a tuple of positive ints, e.g. (84, 84), "
                        f"got {type(obs_shape).__name__} {obs_shape!r}")
    return tuple(int(d) for d in obs_shape)


def _check_obs_dtype(obs_dtype) -> np.dtype:
    try:
        dtype = np.dtype(obs_dtype)
    except TypeError as err:
        raise TypeError(f"obs_dtype must be a numpy numeric dtype, got {obs_dtype!r}") from err
    if dtype.kind not in "biuf":
        raise TypeError(f"obs_dtype must be a numpy bool, integer or floating dtype, got {dtype}")
    return dtype


def _make_rng(seed) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    if not _is_int(seed) or seed < 0:
        raise TypeError(f"seed must be an int >= 0 or a np.random.Generator, got {type(seed).__name__} {seed!r}")
    return np.random.default_rng(int(seed))


def _check_action(action) -> int:
    if not _is_int(action):
        raise TypeError(f"action must be an int (a discrete action index), got {type(action).__name__} {action!r}")
    if not 0 <= action <= _INT32_MAX:
        raise ValueError(f"action must be an int in [0, {_INT32_MAX}] (a discrete action index), got {action}")
    return int(action)


def _check_reward(reward) -> float:
    if isinstance(reward, (bool, np.bool_)) or not isinstance(reward, numbers.Real):
        raise TypeError(f"reward must be a real number, got {type(reward).__name__} {reward!r}")
    with np.errstate(over="ignore"):
        stored = np.float32(reward)
    if not np.isfinite(stored):
        raise ValueError(f"reward must be finite in float32 (how it is stored), got {reward!r}")
    return float(reward)


def _check_flag(name: str, value) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__} {value!r}")
    return bool(value)


# ----------------------------------------------------------------------------------------------
# The memory
# ----------------------------------------------------------------------------------------------

class ReplayMemory:
    r"""Replay memory :math:`\mathcal D` of capacity :math:`N` frame slots (Sec. 4, Algorithm 1),
    storing each frame once and stacking ``stack`` frames per state at sampling time.

    Feed it one episode at a time::

        memory.start_episode(obs)                       # the reset observation
        memory.add(action, reward, next_obs, terminated, truncated)   # one call per env step
        ...                                             # after terminated or truncated:
        memory.start_episode(obs)                       # the next episode

    ``current_stack()`` is the state the agent acts on now; ``sample(B)`` draws a uniform
    minibatch (with replacement) of valid transitions as a :class:`Batch`. See the module
    docstring for the ring-buffer layout, the first-frame padding and the validity rule.

    ``capacity`` is the number of frame slots, about the number of transitions kept (an episode of
    :math:`L` steps uses :math:`L + 1` slots for its :math:`L` transitions). ``seed`` is an int or a
    ``np.random.Generator`` (used as is, shared with the caller). ``capacity``, ``stack``,
    ``obs_shape`` and ``obs_dtype`` are read-only attributes.
    """

    def __init__(self, capacity: int, obs_shape: tuple[int, ...], *, stack: int = 4,
                 obs_dtype=np.uint8, seed: int | np.random.Generator = 0):
        self._capacity = check_int("capacity", capacity, 1)
        self._stack = check_int("stack size", stack, 1)
        self._obs_shape = _check_obs_shape(obs_shape)
        self._obs_dtype = _check_obs_dtype(obs_dtype)
        if self._stack > self._capacity:
            raise ValueError(f"stack size must be <= capacity (a stack of frames has to fit in memory), "
                             f"got stack size {self._stack} and capacity {self._capacity}")
        self._rng = _make_rng(seed)
        self._frames = np.zeros((self._capacity, *self._obs_shape), dtype=self._obs_dtype)
        for name, dtype in _SLOT_FIELDS:
            setattr(self, "_" + name, np.zeros(self._capacity, dtype=dtype))
        # Offsets from a transition's start frame i to the frames of both stacks: i-k+1 .. i+1.
        self._offsets = np.arange(-(self._stack - 1), 2, dtype=np.int64)
        self._t = 0            # frames written so far = absolute index of the next frame
        self._n_acted = 0      # slots with acted=True
        self._episode_pos = 0  # pos of the latest frame
        self._phase = _NO_EPISODE

    # -- configuration --------------------------------------------------------------------------

    @property
    def capacity(self) -> int:
        return self._capacity

    @property
    def stack(self) -> int:
        return self._stack

    @property
    def obs_shape(self) -> tuple[int, ...]:
        return self._obs_shape

    @property
    def obs_dtype(self) -> np.dtype:
        return self._obs_dtype

    def __repr__(self) -> str:
        return (f"ReplayMemory(capacity={self._capacity}, obs_shape={self._obs_shape}, stack={self._stack}, "
                f"obs_dtype={self._obs_dtype}, transitions={len(self)}, frames_written={self._t})")

    # -- sizes ----------------------------------------------------------------------------------

    @staticmethod
    def bytes_per_transition(obs_shape: tuple[int, ...], obs_dtype=np.uint8) -> int:
        """Bytes of one frame slot: the frame (``prod(obs_shape)`` items of ``obs_dtype``) plus
        the per-slot fields (action int32, reward float32, terminated, truncated and acted bool,
        pos int32: 15 bytes). 7071 for an 84x84 uint8 frame."""
        obs_shape, obs_dtype = _check_obs_shape(obs_shape), _check_obs_dtype(obs_dtype)
        frame = int(np.prod(obs_shape, dtype=np.int64)) * obs_dtype.itemsize
        return frame + sum(dtype.itemsize for _, dtype in _SLOT_FIELDS)

    @classmethod
    def nbytes_at_capacity(cls, capacity: int, obs_shape: tuple[int, ...], obs_dtype=np.uint8) -> int:
        """Bytes the arrays of a memory of this ``capacity`` would take, computed without
        allocating them: ``capacity * bytes_per_transition(obs_shape, obs_dtype)``, the sum of the
        array sizes (:attr:`nbytes` of such an instance)."""
        capacity = check_int("capacity", capacity, 1)
        return capacity * cls.bytes_per_transition(obs_shape, obs_dtype)

    @property
    def nbytes(self) -> int:
        """Bytes of this instance's arrays (frames and per-slot fields)."""
        return sum(a.nbytes for a in self._arrays().values())

    def _arrays(self) -> dict[str, np.ndarray]:
        out = {"frames": self._frames}
        out.update({name: getattr(self, "_" + name) for name, _ in _SLOT_FIELDS})
        return out

    # -- writing --------------------------------------------------------------------------------

    def _check_obs(self, name: str, obs) -> None:
        if not isinstance(obs, np.ndarray):
            raise TypeError(f"{name} must be a np.ndarray of shape {self._obs_shape} and dtype {self._obs_dtype}, "
                            f"got {type(obs).__name__}")
        if obs.shape != self._obs_shape:
            raise ValueError(f"{name} must have shape {self._obs_shape} (one frame), got {obs.shape}")
        if obs.dtype != self._obs_dtype:
            raise TypeError(f"{name} must have dtype {self._obs_dtype}, got {obs.dtype}")

    def _write_frame(self, obs: np.ndarray, pos: int) -> None:
        slot = self._t % self._capacity
        if self._acted[slot]:                 # overwriting the oldest frame drops its transition
            self._n_acted -= 1
        self._frames[slot] = obs
        self._action[slot] = 0
        self._reward[slot] = 0.0
        self._terminated[slot] = False
        self._truncated[slot] = False
        self._acted[slot] = False
        self._pos[slot] = pos
        self._t += 1
        self._episode_pos = pos

    def start_episode(self, obs: np.ndarray) -> None:
        """Store the reset observation of a new episode (one frame, shape ``obs_shape``).

        Normally called first and after an :meth:`add` with ``terminated`` or ``truncated``.
        Called while an episode is running (e.g. a run resumed from a checkpoint saved
        mid-episode resets its environment), it abandons that episode: the transitions already
        stored stay valid and bootstrap, like a truncation, and its last frame starts none (no
        step from it was stored). No stack ever reaches across into the new episode."""
        self._check_obs("obs", obs)
        self._write_frame(obs, 0)
        self._phase = _RUNNING

    def add(self, action: int, reward: float, next_obs: np.ndarray, terminated: bool, truncated: bool) -> None:
        """Store the step taken from the latest stored frame: ``action`` (an int >= 0), ``reward``,
        the next frame ``next_obs``, and how the episode stands after it. After ``terminated`` or
        ``truncated`` the next call must be :meth:`start_episode`. O(one frame copy); a call that
        raises leaves the memory unchanged."""
        if self._phase == _NO_EPISODE:
            raise RuntimeError("add() before start_episode(): call start_episode(obs) with the reset "
                               "observation of the episode first")
        if self._phase == _ENDED:
            raise RuntimeError("add() after the episode ended (the previous add() had terminated=True or "
                               "truncated=True): call start_episode(obs) to begin the next episode")
        action = _check_action(action)
        reward = _check_reward(reward)
        self._check_obs("next_obs", next_obs)
        terminated = _check_flag("terminated", terminated)
        truncated = _check_flag("truncated", truncated)
        if self._episode_pos >= _INT32_MAX:
            raise ValueError(f"episode longer than {_INT32_MAX} steps: the int32 position counter would overflow")
        slot = (self._t - 1) % self._capacity
        self._action[slot] = action
        self._reward[slot] = reward
        self._terminated[slot] = terminated
        self._truncated[slot] = truncated
        self._acted[slot] = True
        self._n_acted += 1
        self._write_frame(next_obs, self._episode_pos + 1)   # with capacity 1 this overwrites it again
        self._phase = _ENDED if (terminated or truncated) else _RUNNING

    # -- reading --------------------------------------------------------------------------------

    def current_stack(self) -> np.ndarray:
        """The state the agent acts on now, shape ``(stack, *obs_shape)``: the last ``stack``
        frames of the current episode, oldest first, padded with its first frame like stored
        stacks. After a terminal step it is the stack ending in that episode's last frame."""
        if self._phase == _NO_EPISODE:
            raise RuntimeError("current_stack() before start_episode(): no frame stored yet")
        last = self._t - 1
        idx = np.maximum(np.arange(last - self._stack + 1, last + 1), last - self._episode_pos)
        return self._frames[idx % self._capacity]

    def _abs_index(self, slots: np.ndarray) -> np.ndarray:
        """Absolute frame index of the (written) frame in each slot."""
        last = self._t - 1
        return last - (last - slots) % self._capacity

    def _valid(self, slots: np.ndarray) -> np.ndarray:
        """Which of these (written) slots start a valid transition (see the module docstring)."""
        oldest = self._t - self._capacity
        need = self._abs_index(slots) - np.minimum(self._pos[slots], self._stack - 1)
        return self._acted[slots] & (need >= oldest)

    def _valid_slots(self) -> np.ndarray:
        """All slots that start a valid transition, ascending (O(capacity); for tests and the
        sparse-sampling fallback)."""
        filled = np.arange(min(self._t, self._capacity))
        return filled[self._valid(filled)]

    def __len__(self) -> int:
        """Number of valid (sampleable) transitions. O(stack): only the oldest ``stack - 1``
        frames can have a step stored and still be invalid."""
        n = self._n_acted
        oldest = self._t - self._capacity
        if oldest > 0 and self._stack > 1:
            slots = np.arange(oldest, oldest + self._stack - 1) % self._capacity
            n -= int(np.count_nonzero(self._acted[slots] & ~self._valid(slots)))
        return n

    def _check_batch_size(self, batch_size) -> int:
        return check_int("batch_size", batch_size, 1)

    def can_sample(self, batch_size: int) -> bool:
        """Whether :meth:`sample` with this ``batch_size`` would succeed."""
        batch_size = self._check_batch_size(batch_size)
        return batch_size <= self._capacity and len(self) >= batch_size

    def sample(self, batch_size: int) -> Batch:
        """A minibatch of ``batch_size`` transitions drawn uniformly, with replacement, from the
        valid ones (Algorithm 1: "sample random minibatch of transitions from D"). Requires at
        least ``batch_size`` valid transitions, and ``batch_size <= capacity``."""
        batch_size = self._check_batch_size(batch_size)
        if batch_size > self._capacity:
            raise ValueError(f"replay capacity {self._capacity} is smaller than the batch size {batch_size}")
        n = len(self)
        if n < batch_size:
            raise ValueError(f"sample({batch_size}) needs at least {batch_size} transitions, has {n}")
        return self._gather(self._draw(batch_size, n))

    def _draw(self, k: int, n_valid: int) -> np.ndarray:
        """``k`` slots, uniform with replacement over the ``n_valid`` valid ones."""
        filled = min(self._t, self._capacity)
        if 8 * n_valid < filled:                 # sparse: enumerate rather than reject
            valid = self._valid_slots()
            return valid[self._rng.integers(0, valid.size, size=k)]
        parts, need = [], k
        while need > 0:
            candidates = self._rng.integers(0, filled, size=int(1.25 * need * filled / n_valid) + 8)
            accepted = candidates[self._valid(candidates)][:need]
            parts.append(accepted)
            need -= accepted.size
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def _gather(self, slots: np.ndarray) -> Batch:
        """The transitions starting at these (valid) slots, stacks padded with each episode's
        first frame; one fancy index per stack array."""
        start = self._abs_index(slots)
        episode_start = start - self._pos[slots]
        idx = start[:, None] + self._offsets
        np.maximum(idx, episode_start[:, None], out=idx)
        idx %= self._capacity
        return Batch(
            obs=self._frames[idx[:, :-1]],
            action=self._action[slots].astype(np.int64),
            reward=self._reward[slots],
            next_obs=self._frames[idx[:, 1:]],
            terminated=self._terminated[slots],
            truncated=self._truncated[slots],
        )

    # -- saving ---------------------------------------------------------------------------------

    def state_dict(self) -> dict:
        """A snapshot (copies) of everything: the configuration, counters, per-slot arrays and
        the random generator's state, so that a restored memory samples identically. Plain numpy
        arrays, ints, a tuple and strings; ``torch.save`` or ``pickle`` can write it. It holds a full
        copy of the buffer, so it is meant for small memories (tests, short runs)."""
        state = {
            "format": _STATE_FORMAT,
            "capacity": self._capacity,
            "stack": self._stack,
            "obs_shape": self._obs_shape,
            "obs_dtype": self._obs_dtype.str,
            "frames_written": self._t,
            "episode_pos": self._episode_pos,
            "phase": self._phase,
            "rng_state": copy.deepcopy(self._rng.bit_generator.state),
        }
        state.update({name: a.copy() for name, a in self._arrays().items()})
        return state

    def load_state_dict(self, state: dict) -> None:
        """Restore a :meth:`state_dict` saved from a memory with the same capacity, stack,
        obs_shape and obs_dtype (checked, like everything else, before anything is changed). The
        random generator's state is restored too (into the caller's generator if one was passed
        as ``seed``)."""
        if not isinstance(state, dict):
            raise TypeError(f"state must be a dict from ReplayMemory.state_dict(), got {type(state).__name__}")
        arrays = self._arrays()
        expected = {"format", "capacity", "stack", "obs_shape", "obs_dtype", "frames_written", "episode_pos",
                    "phase", "rng_state", *arrays}
        if set(state) != expected:
            raise ValueError(f"state must have the keys {sorted(expected)}, got {sorted(state)}")
        if state["format"] != _STATE_FORMAT:
            raise ValueError(f"state format must be {_STATE_FORMAT}, got {state['format']!r}")
        saved = (state["capacity"], state["stack"], tuple(state["obs_shape"]), state["obs_dtype"])
        mine = (self._capacity, self._stack, self._obs_shape, self._obs_dtype.str)
        if saved != mine:
            raise ValueError(f"state was saved from a memory with (capacity, stack, obs_shape, obs_dtype) = {saved}, "
                             f"this one has {mine}")
        for name, a in arrays.items():
            b = state[name]
            if not isinstance(b, np.ndarray) or b.shape != a.shape or b.dtype != a.dtype:
                got = f"{b.dtype} {b.shape}" if isinstance(b, np.ndarray) else type(b).__name__
                raise ValueError(f"state[{name!r}] must be a np.ndarray {a.dtype} {a.shape}, got {got}")
        t = check_int("state['frames_written']", state["frames_written"], 0)
        episode_pos = check_int("state['episode_pos']", state["episode_pos"], 0)
        phase = state["phase"]
        if phase not in (_NO_EPISODE, _RUNNING, _ENDED) or (phase == _NO_EPISODE) != (t == 0):
            raise ValueError(f"state['phase'] must be 0 (no frame yet), 1 (episode running) or 2 (episode ended), "
                             f"consistent with frames_written={t}, got {phase!r}")
        rng_state = state["rng_state"]
        current = self._rng.bit_generator.state
        if not isinstance(rng_state, dict) or rng_state.get("bit_generator") != current["bit_generator"]:
            raise ValueError(f"state['rng_state'] must be the state of a {current['bit_generator']} bit generator, "
                             f"got {rng_state!r}")
        self._rng.bit_generator.state = copy.deepcopy(rng_state)
        for name, a in arrays.items():
            a[...] = state[name]
        self._t, self._episode_pos, self._phase = t, episode_pos, phase
        self._n_acted = int(np.count_nonzero(self._acted))
