"""Tiny hand-made environments whose episode boundaries and rewards are known exactly."""

from __future__ import annotations

import gymnasium as gym
import numpy as np


class StepCounterEnv(gym.Env):
    """Observation [t] = steps taken in this episode; reward 1 per step.

    Odd-numbered episodes (1st, 3rd, ...) terminate after 3 steps; even-numbered ones run until a TimeLimit
    truncates them. With ``nan_after`` the reward becomes NaN once that many steps have been taken in total.
    """

    def __init__(self, nan_after: int | None = None, obs_dim: int = 1, action_dim: int = 1):
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32)
        self.action_space = gym.spaces.Box(-1.0, 1.0, (action_dim,), np.float32)
        self.nan_after, self.episode, self.t, self.total_steps = nan_after, 0, 0, 0

    def _obs(self):
        return np.full(self.observation_space.shape, self.t, dtype=np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.episode += 1
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        self.t += 1
        self.total_steps += 1
        reward = np.nan if self.nan_after is not None and self.total_steps > self.nan_after else 1.0
        terminated = self.episode % 2 == 1 and self.t == 3
        return self._obs(), reward, terminated, False, {}


gym.register("StepCounter-v0", entry_point=StepCounterEnv, max_episode_steps=5)
gym.register("NaNAfter3000-v0", entry_point=StepCounterEnv, kwargs=dict(nan_after=3000, obs_dim=3, action_dim=2),
             max_episode_steps=50)
# Hopper with small frames and episodes cut at 10 steps: the --capture-video tests record whole episodes in seconds
gym.register("VideoHopper-v4", entry_point="gymnasium.envs.mujoco.hopper_v4:HopperEnv", max_episode_steps=10,
             kwargs=dict(width=96, height=64))
