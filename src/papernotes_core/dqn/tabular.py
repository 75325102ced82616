r"""A small Markov decision process whose optimal action values are computed exactly, and the two
learners the chapter checks against them: tabular Q-learning and a linear-function DQN (replay
memory, target network, minibatch gradient steps on the squared TD error).

The MDP (:func:`chain_mdp`): states :math:`0, \dots, n-1` in a row, actions *left* and *right*.
An action moves the agent the intended way with probability :math:`1 - p_\text{slip}` and the
other way otherwise (walls keep it in place). Stepping right from state :math:`n-2` into
:math:`n-1` ends the episode with reward +1; state 0 pays a small reward 0.05 each time the
agent stays against the left wall, a distracting local optimum. State :math:`n-1` is terminal.

The Bellman optimality equation

.. math:: Q^*(s, a) = \sum_{s'} P(s' \mid s, a) \bigl[ r(s, a, s') + \gamma\, (1 - \text{term}(s'))
          \max_{a'} Q^*(s', a') \bigr]

is a :math:`\gamma`-contraction in the sup norm, so value iteration converges to its unique fixed
point :func:`value_iteration`.
"""

from __future__ import annotations

import dataclasses

import numpy as np

LEFT, RIGHT = 0, 1


@dataclasses.dataclass(frozen=True)
class MDP:
    """A finite MDP: ``P[s, a, s']`` transition probabilities, ``R[s, a, s']`` rewards,
    ``terminal[s]`` (no bootstrapping from a terminal state), ``start`` state, discount ``gamma``."""

    P: np.ndarray
    R: np.ndarray
    terminal: np.ndarray
    start: int
    gamma: float

    @property
    def n_states(self) -> int:
        return self.P.shape[0]

    @property
    def n_actions(self) -> int:
        return self.P.shape[1]

    def step(self, s: int, a: int, rng: np.random.Generator) -> tuple[int, float, bool]:
        """Sample one transition: ``(s', r, terminated)``."""
        cdf = np.cumsum(self.P[s, a])
        s2 = min(int(np.searchsorted(cdf, rng.random() * cdf[-1], side="right")), self.n_states - 1)
        return s2, float(self.R[s, a, s2]), bool(self.terminal[s2])


def chain_mdp(n_states: int = 6, slip: float = 0.1, gamma: float = 0.9) -> MDP:
    """The chain described in the module docstring."""
    if isinstance(n_states, bool) or not isinstance(n_states, int) or n_states < 3:
        raise ValueError(f"n_states must be an int >= 3, got {n_states!r}")
    if not 0.0 <= slip < 0.5:
        raise ValueError(f"slip must lie in [0, 0.5), got {slip}")
    if not 0.0 <= gamma < 1.0:
        raise ValueError(f"gamma must lie in [0, 1), got {gamma}")
    n = n_states
    P = np.zeros((n, 2, n))
    R = np.zeros((n, 2, n))
    for s in range(n - 1):
        left, right = max(s - 1, 0), min(s + 1, n - 1)
        P[s, LEFT, left] += 1 - slip
        P[s, LEFT, right] += slip
        P[s, RIGHT, right] += 1 - slip
        P[s, RIGHT, left] += slip
    P[n - 1, :, n - 1] = 1.0  # absorbing (never used for bootstrapping: it is terminal)
    R[n - 2, :, n - 1] = 1.0
    R[0, :, 0] = 0.05
    terminal = np.zeros(n, bool)
    terminal[n - 1] = True
    return MDP(P, R, terminal, start=0, gamma=gamma)


def bellman_optimality(mdp: MDP, Q: np.ndarray) -> np.ndarray:
    r"""The Bellman optimality operator :math:`(\mathcal T Q)(s, a) = \mathbb E_{s'}[r + \gamma
    (1 - \text{term}(s')) \max_{a'} Q(s', a')]`."""
    Q = np.asarray(Q, dtype=float)
    if Q.shape != (mdp.n_states, mdp.n_actions):
        raise ValueError(f"Q must have shape ({mdp.n_states}, {mdp.n_actions}), got {Q.shape}")
    v_next = np.where(mdp.terminal, 0.0, Q.max(axis=1))
    return np.einsum("sat,sat->sa", mdp.P, mdp.R + mdp.gamma * v_next[None, None, :])


def value_iteration(mdp: MDP, tol: float = 1e-12, max_iter: int = 100_000) -> np.ndarray:
    """:math:`Q^*` by iterating :func:`bellman_optimality` from zero until the sup-norm change
    is below ``tol`` (terminal states' rows stay 0)."""
    Q = np.zeros((mdp.n_states, mdp.n_actions))
    for _ in range(max_iter):
        Q_new = bellman_optimality(mdp, Q)
        Q_new[mdp.terminal] = 0.0
        if np.max(np.abs(Q_new - Q)) < tol:
            return Q_new
        Q = Q_new
    raise RuntimeError(f"value iteration did not converge to {tol} in {max_iter} iterations")


def q_learning(mdp: MDP, steps: int, *, epsilon: float = 1.0, power: float = 0.7, seed: int = 0,
               max_episode_steps: int = 100) -> np.ndarray:
    r"""Tabular Q-learning (Watkins) with the behaviour policy ε-greedy in the current estimate:

    .. math:: Q(s, a) \leftarrow Q(s, a) + \alpha_n \bigl(r + \gamma (1 - \text{term}) \max_{a'}
              Q(s', a') - Q(s, a)\bigr), \qquad \alpha_n = n(s, a)^{-\text{power}}

    It is stochastic approximation of the fixed point of the Bellman optimality operator: with
    every pair visited infinitely often and :math:`\sum \alpha = \infty`,
    :math:`\sum \alpha^2 < \infty` (``0.5 < power <= 1``) it converges to :math:`Q^*`. A
    time limit of ``max_episode_steps`` restarts from the start state *without* treating the
    cut as terminal.
    """
    if not 0.5 < power <= 1.0:
        raise ValueError(f"power must lie in (0.5, 1] for the Robbins-Monro conditions, got {power}")
    rng = np.random.default_rng(seed)
    Q = np.zeros((mdp.n_states, mdp.n_actions))
    visits = np.zeros_like(Q)
    s, t = mdp.start, 0
    for _ in range(steps):
        a = int(rng.integers(mdp.n_actions)) if rng.random() < epsilon else int(Q[s].argmax())
        s2, r, term = mdp.step(s, a, rng)
        visits[s, a] += 1
        target = r + (0.0 if term else mdp.gamma * Q[s2].max())
        Q[s, a] += visits[s, a] ** -power * (target - Q[s, a])
        s, t = s2, t + 1
        if term or t >= max_episode_steps:
            s, t = int(rng.integers(mdp.n_states - 1)), 0  # exploring starts: every pair keeps being visited
    return Q


def linear_dqn(mdp: MDP, features: np.ndarray, steps: int, *, lr: float = 0.05, batch: int = 32,
               capacity: int = 5_000, target_period: int = 100, learning_starts: int = 500,
               epsilon: float = 1.0, seed: int = 0, max_episode_steps: int = 100) -> np.ndarray:
    r"""DQN with a linear Q-function :math:`Q(s, a; w) = \phi(s, a)^\top w` on the MDP: every
    step acts ε-greedily, stores the transition in a replay memory of ``capacity``, samples a
    minibatch of ``batch`` transitions uniformly, and takes a gradient step on

    .. math:: L(w) = \tfrac{1}{2B}\sum_i \bigl(y_i - \phi(s_i, a_i)^\top w\bigr)^2, \quad
              y_i = r_i + \gamma (1 - \text{term}_i) \max_{a'} \phi(s'_i, a')^\top w^-

    with the target weights :math:`w^-` copied from :math:`w` every ``target_period`` steps.
    ``features`` has shape ``(n_states, n_actions, d)``. Returns the learned :math:`Q` table
    :math:`\Phi w`, shape ``(n_states, n_actions)``.
    """
    features = np.asarray(features, dtype=float)
    if features.ndim != 3 or features.shape[:2] != (mdp.n_states, mdp.n_actions):
        raise ValueError(f"features must have shape ({mdp.n_states}, {mdp.n_actions}, d), got {features.shape}")
    if capacity < batch:
        raise ValueError(f"replay capacity {capacity} is smaller than the batch size {batch}")
    rng = np.random.default_rng(seed)
    w = np.zeros(features.shape[2])
    w_target = w.copy()
    S = np.zeros(capacity, int)
    A = np.zeros(capacity, int)
    Rw = np.zeros(capacity)
    S2 = np.zeros(capacity, int)
    T = np.zeros(capacity, bool)
    size = pos = 0
    s, t = mdp.start, 0
    for step in range(steps):
        q = features[s] @ w
        a = int(rng.integers(mdp.n_actions)) if rng.random() < epsilon else int(q.argmax())
        s2, r, term = mdp.step(s, a, rng)
        S[pos], A[pos], Rw[pos], S2[pos], T[pos] = s, a, r, s2, term
        pos, size = (pos + 1) % capacity, min(size + 1, capacity)
        s, t = s2, t + 1
        if term or t >= max_episode_steps:
            s, t = int(rng.integers(mdp.n_states - 1)), 0
        if step >= learning_starts:
            j = rng.integers(size, size=batch)
            phi = features[S[j], A[j]]                                  # (B, d)
            next_q = features[S2[j]] @ w_target                         # (B, n_actions)
            y = Rw[j] + mdp.gamma * (~T[j]) * next_q.max(axis=1)
            delta = y - phi @ w
            w += lr * (phi * delta[:, None]).mean(axis=0)               # -grad of L(w)
        if (step + 1) % target_period == 0:
            w_target = w.copy()
    return features @ w
