"""ppo_atari.py and bpo_atari.py: the Atari pipeline on real ALE games, rollout/GAE logic, parity with common/,
logging, saving, bad input. Budgets are tiny (2 envs x 64 steps): these check the plumbing, not learning."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import bpo_atari
import ppo_atari
import ppo_continuous
from benchmarks.tb import read_scalars
from tests.scripts import BPO_TAGS, CLEANRL_TAGS, ROOT, run_dir

SCRIPTS = [ppo_atari, bpo_atari]
TINY = dict(num_envs=2, num_steps=64, total_timesteps=512, num_minibatches=2, update_epochs=1, cuda=False, progress=False)


# ---------------------------------------------------------------- the Atari pipeline, on real ALE games


class RawRecorder(gym.Wrapper):
    """Sits right on the emulator, under the whole pipeline: records every emulator reset and every frame's
    (action, raw reward, terminated)."""

    def __init__(self, env, log):
        super().__init__(env)
        self.log = log

    def reset(self, **kwargs):
        self.log.append("reset")
        return self.env.reset(**kwargs)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.log.append((int(action), float(reward), terminated))
        return obs, reward, terminated, truncated, info


def recorded_env(env_id, monkeypatch, log, repeat_action_probability=0.0):
    make = gym.make
    with monkeypatch.context() as m:
        m.setattr(gym, "make", lambda *a, **k: RawRecorder(make(*a, **k), log))
        return ppo_atari.make_env(env_id, repeat_action_probability)()


@pytest.mark.parametrize("env_id, policy, fires, points_per_hit", [
    ("BreakoutNoFrameskip-v4", "noop", True, None),  # NOOP only: the game still runs because FIRE follows every reset
    ("ALE/Asterix-v5", "random", False, 50.0),       # every point is worth 50: clipping shows
])
def test_life_loss_ends_a_training_episode_but_the_logged_return_is_the_whole_unclipped_game(
        env_id, policy, fires, points_per_hit, monkeypatch):
    frames = []
    env = recorded_env(env_id, monkeypatch, frames)
    obs, _ = env.reset(seed=7)
    assert obs.shape == (4, 84, 84) and obs.dtype == np.uint8 and obs in env.observation_space
    assert all((frame == obs[0]).all() for frame in obs)  # the stack starts filled with the first frame
    lives = [env.unwrapped.ale.lives()]
    rng = np.random.default_rng(0)
    clipped = []
    for _ in range(5000):
        action = 0 if policy == "noop" else int(rng.integers(env.action_space.n))
        previous, (obs, reward, terminated, truncated, info) = obs, env.step(action)
        np.testing.assert_array_equal(obs[:3], previous[1:])  # a rolling stack of 4 frames
        clipped.append(reward)
        assert not truncated
        if "episode" in info:
            break
        if terminated:  # a life is lost: the training episode ends, the game does not
            lives.append(env.unwrapped.ale.lives())
            assert lives[-1] == lives[-2] - 1 and not env.unwrapped.ale.game_over()
            obs, _ = env.reset()  # as the vector env does
    assert terminated and env.unwrapped.ale.game_over()
    assert lives == list(range(lives[0], 0, -1)) and lives[0] > 1  # one training episode per life, all lives played

    # The learner sees clipped rewards; the logged return is the raw score of the whole game.
    raw_rewards = [frame[1] for frame in frames if frame != "reset"]
    assert set(clipped) <= {-1.0, 0.0, 1.0}
    assert info["episode"]["r"] == sum(raw_rewards)
    if points_per_hit is not None:
        assert info["episode"]["r"] > sum(clipped) > 0 and info["episode"]["r"] % points_per_hit == 0
    # Its length counts agent steps, including the no-op (and FIRE, action 2) steps that start each life.
    starts = len(lives) - 1 + fires * 2 * len(lives)
    assert info["episode"]["l"] == len(clipped) + starts
    assert frames.count("reset") == 1  # the emulator was never reset between lives

    # Replaying the frames on a bare emulator (deterministic without sticky actions) gives the same game.
    replay = gym.make(env_id, repeat_action_probability=0.0, **({"frameskip": 1} if env_id.startswith("ALE/") else {}))
    replay.reset(seed=7)
    total = 0.0
    for action, _, _ in (frame for frame in frames if frame != "reset"):
        _, reward, terminated, truncated, _ = replay.step(action)
        total += reward
    assert terminated and not truncated and total == info["episode"]["r"]


@pytest.mark.parametrize("env_id, repeat_action_probability, expected_sticky", [
    ("BreakoutNoFrameskip-v4", None, 0.0),
    ("ALE/Breakout-v5", None, 0.25),
    ("ALE/Breakout-v5", 0.1, 0.1),
])
def test_both_id_styles_give_the_same_pipeline(env_id, repeat_action_probability, expected_sticky):
    envs = ppo_atari.make_envs(env_id, 2, repeat_action_probability)
    assert envs.metadata["autoreset_mode"] == gym.vector.AutoresetMode.SAME_STEP
    assert envs.single_observation_space == gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)
    assert envs.single_action_space == gym.spaces.Discrete(4)
    env = envs.envs[0]
    preprocessing = env
    while not isinstance(preprocessing, gym.wrappers.AtariPreprocessing):
        preprocessing = preprocessing.env
    assert (preprocessing.noop_max, preprocessing.frame_skip, preprocessing.screen_size) == (30, 4, (84, 84))
    assert preprocessing.grayscale_obs and not preprocessing.terminal_on_life_loss  # lives are handled by EpisodicLife
    assert env.unwrapped._frameskip == 1  # the emulator itself skips nothing: AtariPreprocessing does, with max-pooling
    assert env.unwrapped.ale.getFloat("repeat_action_probability") == pytest.approx(expected_sticky)
    obs, _ = envs.reset(seed=0)
    assert obs.shape == (2, 4, 84, 84) and obs.dtype == np.uint8
    envs.close()


# ---------------------------------------------------------------- rollout, autoreset and bootstrap (hand-made env)


class StepCounterImageEnv(gym.Env):
    """Frames filled with t = steps taken in this episode; reward 1 per step. Odd-numbered episodes terminate
    after 3 steps, even-numbered ones run until the TimeLimit (5 steps) truncates them."""

    observation_space = gym.spaces.Box(0, 255, (4, 2, 2), np.uint8)
    action_space = gym.spaces.Discrete(3)

    def __init__(self):
        self.episode, self.t = 0, 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.episode, self.t = self.episode + 1, 0
        return np.full((4, 2, 2), self.t, np.uint8), {}

    def step(self, action):
        self.t += 1
        return np.full((4, 2, 2), self.t, np.uint8), 1.0, self.episode % 2 == 1 and self.t == 3, False, {}


class FixedValueAgent(torch.nn.Module):
    """V(s) = 100 + s[0, 0, 0]; actions 0; stands in for the network so the expected numbers are known."""

    def __init__(self, with_median: bool):
        super().__init__()
        self.with_median = with_median

    def get_value(self, x):
        return 100.0 + x[:, 0, 0, 0].float()

    def get_action_and_value(self, x, action=None):
        n = x.shape[0]
        outputs = (torch.zeros(n, dtype=torch.long), torch.zeros(n), torch.zeros(n), self.get_value(x))
        return outputs + (torch.zeros(n),) if self.with_median else outputs


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda m: m.__name__)
@pytest.mark.parametrize("bootstrap", [True, False])
def test_rollout_never_crosses_an_episode_boundary_and_bootstraps_truncations(script, bootstrap):
    gamma, num_steps = 0.9, 16
    make = lambda: gym.wrappers.RecordEpisodeStatistics(gym.wrappers.TimeLimit(StepCounterImageEnv(), 5))  # noqa: E731
    envs = gym.vector.SyncVectorEnv([make] * 2, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP, copy=False)
    args = script.Args(num_envs=2, num_steps=num_steps, gamma=gamma, bootstrap_truncated=bootstrap)
    storage = {"obs": torch.zeros((num_steps, 2, 4, 2, 2), dtype=torch.uint8),
               "actions": torch.zeros((num_steps, 2), dtype=torch.long),
               **{k: torch.zeros((num_steps, 2)) for k in ("logprobs", "rewards", "dones", "values")}}
    next_obs, _ = envs.reset(seed=0)
    episodes = []
    next_obs, next_done = script.collect_rollout(envs, FixedValueAgent(script is bpo_atari), storage, torch.as_tensor(next_obs),
                                                 torch.zeros(2), 1000, args, "cpu", episodes)
    # Episodes alternate: 3 steps then terminated, 5 steps then truncated: t = 0 1 2 | 0 1 2 3 4 | 0 1 2 | ...
    t = np.array([0, 1, 2, 0, 1, 2, 3, 4] * 2)
    starts = (t == 0).astype(np.float32)
    starts[0] = 0.0  # the rollout began with next_done = 0
    expected_rewards = np.ones(num_steps)
    if bootstrap:
        expected_rewards[t == 4] += gamma * (100.0 + 5.0)  # V of the final observation, frames of 5
    for env in range(2):
        np.testing.assert_array_equal(storage["obs"][:, env, 0, 0, 0].numpy(), t)  # a final observation is never stored
        np.testing.assert_array_equal(storage["dones"][:, env].numpy(), starts)
        np.testing.assert_allclose(storage["rewards"][:, env].numpy(), expected_rewards, rtol=1e-6)
    assert storage["obs"].dtype == torch.uint8 and next_obs.dtype == torch.uint8
    assert next_done.tolist() == [1.0, 1.0] and next_obs[:, 0, 0, 0].tolist() == [0, 0]
    assert sorted(episodes) == sorted((1000 + 2 * k, 3.0 if k in (3, 11) else 5.0, 3 if k in (3, 11) else 5)
                                      for k in (3, 8, 11, 16) for _ in range(2))


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda m: m.__name__)
def test_compute_gae_is_the_continuous_scripts(script):
    rng = np.random.default_rng(0)
    rewards, values = rng.normal(size=(40, 3)), rng.normal(size=(40, 3))
    inputs = (rewards, values, (rng.random((40, 3)) < 0.15).astype(float), rng.normal(size=3), np.array([0.0, 1.0, 0.0]))
    inputs = [torch.as_tensor(a) for a in inputs]
    for mine, reference in zip(script.compute_gae(*inputs, 0.97, 0.9), ppo_continuous.compute_gae(*inputs, 0.97, 0.9)):
        torch.testing.assert_close(mine, reference, rtol=0, atol=0)


# ---------------------------------------------------------------- parity with torch.distributions


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda m: m.__name__)
def test_closed_form_categorical_equals_torch_distributions_and_uint8_frames_are_scaled(script):
    torch.manual_seed(0)
    envs = script.make_envs("BreakoutNoFrameskip-v4", 1)
    agent = script.Agent(envs)
    agent.actor.weight.data.normal_(0, 0.1)  # a policy far from uniform
    x = torch.randint(0, 256, (16, 4, 84, 84), dtype=torch.uint8)
    actions = torch.randint(0, 4, (16,))
    _, log_prob, entropy, value, *_ = agent.get_action_and_value(x, actions)
    hidden = agent.network(x.float() / 255.0)
    reference = torch.distributions.Categorical(logits=agent.actor(hidden))
    torch.testing.assert_close(log_prob, reference.log_prob(actions))
    torch.testing.assert_close(entropy, reference.entropy())
    torch.testing.assert_close(value, agent.critic(hidden)[:, 0])
    torch.testing.assert_close(agent.get_value(x), value)
    sampled = agent.get_action_and_value(x)[0]
    assert sampled.dtype == torch.long and ((0 <= sampled) & (sampled < 4)).all()
    envs.close()


# ---------------------------------------------------------------- training runs (tiny budgets)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda m: m.__name__)
def test_smoke_training_logs_cleanrl_tags_and_same_seed_gives_identical_losses(script, tmp_path, monkeypatch):
    losses = []
    for attempt in ("a", "b"):
        (tmp_path / attempt).mkdir()
        monkeypatch.chdir(tmp_path / attempt)
        script.main(script.Args(seed=3, **TINY))
        scalars = read_scalars(run_dir(tmp_path / attempt))
        expected = CLEANRL_TAGS | (BPO_TAGS if script is bpo_atari else set())
        assert expected <= set(scalars)
        assert [step for step, _ in scalars["losses/value_loss"]] == [128, 256, 384, 512]
        assert all(np.isfinite(v) for _, v in scalars["losses/policy_loss"])
        assert all(v == int(v) >= 0 for _, v in scalars["charts/episodic_return"])  # Breakout scores, unclipped sums
        losses.append({tag: [v for _, v in scalars[tag]] for tag in scalars if tag.startswith(("losses/", "bpo/"))}
                      | {"charts/episodic_return": [v for _, v in scalars["charts/episodic_return"]]})
    assert losses[0] == losses[1]


def play_constant_action(env_id, action, seed):
    """The return of one whole game played with one action throughout, through the training pipeline."""
    envs = ppo_atari.make_envs(env_id, 1)
    envs.reset(seed=seed)
    while True:
        _, _, _, _, infos = envs.step(np.array([action]))
        if "final_info" in infos and "episode" in infos["final_info"]:
            envs.close()
            return infos["final_info"]["episode"]["r"][0]


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda m: m.__name__)
def test_save_then_evaluate_plays_whole_games_with_the_saved_weights(script, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    script.main(script.Args(seed=1, save_model=True, **(TINY | dict(total_timesteps=128))))
    (checkpoint_path,) = (tmp_path / "runs").glob(f"*/{script.__name__}.cleanrl_model")
    checkpoint = torch.load(checkpoint_path, weights_only=False)
    assert checkpoint["script"] == script.__name__ and checkpoint["args"]["env_id"] == "BreakoutNoFrameskip-v4"

    returns = script.evaluate(script.Args(eval_checkpoint=str(checkpoint_path), eval_episodes=2))
    assert returns.shape == (2,) and np.isfinite(returns).all()
    assert "over 2 episodes" in capsys.readouterr().out
    # The saved weights pick the actions: an actor that always prefers RIGHT scores what RIGHT-only games score.
    checkpoint["model"]["actor.weight"].zero_()
    checkpoint["model"]["actor.bias"] = torch.tensor([0.0, 0.0, 1.0, 0.0])
    torch.save(checkpoint, tmp_path / "right.cleanrl_model")
    right = script.evaluate(script.Args(eval_checkpoint=str(tmp_path / "right.cleanrl_model"), eval_episodes=1, seed=5))
    assert right[0] == play_constant_action("BreakoutNoFrameskip-v4", 2, seed=5)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda m: m.__name__)
def test_non_finite_loss_stops_the_run_and_keeps_the_last_good_checkpoint(script, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    calls = []

    def poisoned_gae(*args):  # the second batch carries NaN returns and advantages
        calls.append(1)
        advantages, returns = ppo_continuous.compute_gae(*args)
        return (advantages, returns) if len(calls) < 2 else (advantages * np.nan, returns * np.nan)

    monkeypatch.setattr(script, "compute_gae", poisoned_gae)
    args = script.Args(**(TINY | dict(total_timesteps=256)), save_model=True)
    with pytest.raises(SystemExit, match=r"error: non-finite loss at step 256 .*the last good checkpoint is runs/") as exc:
        script.main(args)
    checkpoint_path = Path(str(exc.value).split("checkpoint is ")[1])
    model = torch.load(checkpoint_path, weights_only=False)["model"]
    assert all(torch.isfinite(p).all() for p in model.values())


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda m: m.__name__)
def test_resume_continues_a_cut_off_run_with_its_optimizer_and_without_duplicate_logs(script, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    save = script.save_checkpoint

    def cut_before_third_save(path, agent, args, optimizer, iteration, global_step):  # killed after logging iteration 3
        if iteration == 3:
            raise KeyboardInterrupt
        save(path, agent, args, optimizer, iteration, global_step)

    monkeypatch.setattr(script, "save_checkpoint", cut_before_third_save)
    with pytest.raises(KeyboardInterrupt):
        script.main(script.Args(seed=2, save_model=True, **TINY))  # 4 iterations of 128 steps, a checkpoint after each
    (checkpoint_path,) = (tmp_path / "runs").glob(f"*/{script.__name__}.cleanrl_model")
    assert torch.load(checkpoint_path, weights_only=False)["global_step"] == 256
    assert [s for s, _ in read_scalars(checkpoint_path.parent)["losses/value_loss"]] == [128, 256, 384]

    monkeypatch.setattr(script, "save_checkpoint", save)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # the run's own folder is used, wherever the command runs
    script.main(script.Args(resume=str(checkpoint_path), total_timesteps=10**6, cuda=False, progress=False))
    checkpoint = torch.load(checkpoint_path, weights_only=False)
    assert checkpoint["global_step"] == 512 and checkpoint["iteration"] == 4  # the saved budget, not the new flag's
    assert all(state["step"] == 8 for state in checkpoint["optimizer"]["state"].values())  # 4 iterations × 2 minibatches
    scalars = read_scalars(checkpoint_path.parent)
    assert [s for s, _ in scalars["losses/value_loss"]] == [128, 256, 384, 512]  # the cut run's 384 is purged
    assert not (tmp_path / "elsewhere" / "runs").exists()


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("env_id, message", [
    ("NoSuchEnv-v0", "error: cannot make environment 'NoSuchEnv-v0': Environment `NoSuchEnv` doesn't exist."),
    ("Hopper-v4", "error: Hopper-v4 has a Box(-1.0, 1.0, (3,), float32) action space; this script needs a discrete (Discrete) one"),
    ("CartPole-v1", "error: CartPole-v1 is not an Atari game; use an ALE id such as BreakoutNoFrameskip-v4 or ALE/Breakout-v5"),
    ("Breakout-v4", "error: Breakout-v4 skips a random number of frames; use the NoFrameskip-v4 or the ALE/...-v5 id of the game"),
])
def test_make_envs_rejects_unknown_continuous_and_non_atari_envs(env_id, message):
    with pytest.raises(SystemExit) as exc:
        ppo_atari.make_envs(env_id, 1)
    assert str(exc.value) == message


def test_evaluate_rejects_missing_foreign_and_mismatched_checkpoints(tmp_path):
    with pytest.raises(SystemExit, match=r"^error: checkpoint not found: .*nope.cleanrl_model$"):
        ppo_atari.evaluate(ppo_atari.Args(eval_checkpoint=str(tmp_path / "nope.cleanrl_model")))
    (tmp_path / "junk.cleanrl_model").write_text("not a checkpoint")
    with pytest.raises(SystemExit, match=r"^error: .*junk.cleanrl_model is not a checkpoint of this library"):
        ppo_atari.evaluate(ppo_atari.Args(eval_checkpoint=str(tmp_path / "junk.cleanrl_model")))
    envs = bpo_atari.make_envs("BreakoutNoFrameskip-v4", 1)
    agent = bpo_atari.Agent(envs)
    bpo_atari.save_checkpoint(tmp_path / "bpo.cleanrl_model", agent, bpo_atari.Args(), torch.optim.Adam(agent.parameters()), 1, 1024)
    envs.close()
    with pytest.raises(SystemExit, match=r"^error: .*bpo.cleanrl_model was saved by bpo_atari.py; use it with that script"):
        ppo_atari.evaluate(ppo_atari.Args(eval_checkpoint=str(tmp_path / "bpo.cleanrl_model")))
    checkpoint = torch.load(tmp_path / "bpo.cleanrl_model", weights_only=False)
    checkpoint["args"]["env_id"] = "PongNoFrameskip-v4"  # 6 actions: the saved 4-action head does not fit
    torch.save(checkpoint, tmp_path / "pong.cleanrl_model")
    with pytest.raises(SystemExit, match=r"^error: .*pong.cleanrl_model does not match PongNoFrameskip-v4 and this network"):
        bpo_atari.evaluate(bpo_atari.Args(eval_checkpoint=str(tmp_path / "pong.cleanrl_model")))


def test_smoke_cli_from_another_directory_trains_or_fails_in_one_line(tmp_path):
    """Smoke test of the command line: runs from any directory; bad input is one line, exit 1, no traceback."""
    ok = subprocess.run([sys.executable, str(ROOT / "bpo_atari.py"), "--env-id", "ALE/Breakout-v5", "--num-envs", "2",
                         "--num-steps", "64", "--total-timesteps", "128", "--num-minibatches", "2", "--update-epochs", "1"],
                        cwd=tmp_path, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "done: 128 steps" in ok.stdout and run_dir(tmp_path).name.startswith("ALE_Breakout-v5__bpo_atari__1__")
    bad = subprocess.run([sys.executable, str(ROOT / "ppo_atari.py"), "--env-id", "Hopper-v4"], cwd=tmp_path,
                         capture_output=True, text=True)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().splitlines()[-1] == (
        "error: Hopper-v4 has a Box(-1.0, 1.0, (3,), float32) action space; this script needs a discrete (Discrete) one")
