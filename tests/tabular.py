"""Exact tabular policy evaluation (numpy, float64): the independent reference for the theory tests."""

from __future__ import annotations

import numpy as np


def random_mdp(rng: np.random.Generator, n_states: int, n_actions: int):
    """A random MDP: transitions P[s, a, s'], rewards R[s, a], initial distribution d0."""
    transitions = rng.dirichlet(np.full(n_states, 0.5), size=(n_states, n_actions))
    rewards = rng.normal(size=(n_states, n_actions))
    d0 = rng.dirichlet(np.ones(n_states))
    return transitions, rewards, d0


def random_policy(rng: np.random.Generator, n_states: int, n_actions: int) -> np.ndarray:
    return rng.dirichlet(np.ones(n_actions), size=n_states)


def evaluate(transitions, rewards, gamma: float, pi: np.ndarray):
    """Exact V_π and Q_π by a linear solve of the Bellman equation."""
    n_states = rewards.shape[0]
    p_pi = np.einsum("sa,sat->st", pi, transitions)
    r_pi = (pi * rewards).sum(1)
    v = np.linalg.solve(np.eye(n_states) - gamma * p_pi, r_pi)
    q = rewards + gamma * transitions @ v
    return v, q


def visitation(transitions, gamma: float, pi: np.ndarray, d0: np.ndarray) -> np.ndarray:
    """Unnormalised discounted state visitation d_π(s) = Σ_t γ^t Pr(s_t = s)."""
    n_states = d0.shape[0]
    p_pi = np.einsum("sa,sat->st", pi, transitions)
    return np.linalg.solve((np.eye(n_states) - gamma * p_pi).T, d0)
