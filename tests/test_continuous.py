"""ppo_continuous.py and bpo_continuous.py: rollout/GAE logic, parity with common/, logging, saving, bad input."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import bpo_continuous
import ppo_continuous
import tests.toy_envs  # noqa: F401  (registers StepCounter-v0 and NaNAfter3000-v0)
from benchmarks.tb import read_scalars
from tests.scripts import BPO_TAGS, CLEANRL_TAGS, ROOT, run_dir

SCRIPTS = [ppo_continuous, bpo_continuous]
TINY = dict(total_timesteps=1024, num_steps=512, num_minibatches=4, update_epochs=2, progress=False)


# ---------------------------------------------------------------- rollout, autoreset and bootstrap


class FixedValueAgent(torch.nn.Module):
    """V(s) = 100 + s[0]; actions 0; stands in for the network so the expected numbers are known."""

    def __init__(self, with_median: bool):
        super().__init__()
        self.with_median = with_median

    def get_value(self, x):
        return 100.0 + x[..., 0]

    def get_action_and_value(self, x, action=None):
        n = x.shape[0]
        outputs = (torch.zeros(n, 1), torch.zeros(n), torch.zeros(n), self.get_value(x))
        return outputs + (torch.zeros(n),) if self.with_median else outputs


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda m: m.__name__)
@pytest.mark.parametrize("bootstrap", [True, False])
def test_rollout_never_crosses_an_episode_boundary_and_bootstraps_truncations(script, bootstrap):
    gamma, num_steps = 0.9, 16
    envs = gym.vector.SyncVectorEnv([lambda: gym.wrappers.RecordEpisodeStatistics(gym.make("StepCounter-v0"))] * 2,
                                    autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    args = script.Args(num_envs=2, num_steps=num_steps, gamma=gamma, bootstrap_truncated=bootstrap)
    storage = {k: torch.zeros((num_steps, 2) + shape) for k, shape in
               dict(obs=(1,), actions=(1,), logprobs=(), rewards=(), dones=(), values=()).items()}
    next_obs, _ = envs.reset(seed=0)
    episodes = []
    next_obs, next_done = script.collect_rollout(envs, FixedValueAgent(script is bpo_continuous), storage, torch.as_tensor(next_obs), torch.zeros(2),
                                                 1000, args, "cpu", episodes)
    # Episodes alternate: 3 steps then terminated, 5 steps then truncated: t = 0 1 2 | 0 1 2 3 4 | 0 1 2 | ...
    t = np.array([0, 1, 2, 0, 1, 2, 3, 4] * 2, dtype=np.float32)
    starts = (t == 0).astype(np.float32)
    starts[0] = 0.0  # the rollout began with next_done = 0
    truncated_at = np.array([i for i in range(num_steps) if t[i] == 4])
    expected_rewards = np.ones(num_steps)
    if bootstrap:
        expected_rewards[truncated_at] += gamma * (100.0 + 5.0)  # V of the final observation [5]
    for env in range(2):
        np.testing.assert_array_equal(storage["obs"][:, env, 0].numpy(), t)  # a final observation is never stored
        np.testing.assert_array_equal(storage["dones"][:, env].numpy(), starts)
        np.testing.assert_allclose(storage["rewards"][:, env].numpy(), expected_rewards, rtol=1e-6)
    assert next_done.tolist() == [1.0, 1.0] and next_obs[:, 0].tolist() == [0.0, 0.0]
    # Episodes end at rollout steps 3, 8, 11, 16 (1-based), in both envs: global step = 1000 + 2·k.
    assert sorted(episodes) == sorted((1000 + 2 * k, 3.0 if k in (3, 11) else 5.0, 3 if k in (3, 11) else 5)
                                      for k in (3, 8, 11, 16) for _ in range(2))


def reference_gae(rewards, values, starts, next_value, next_done, gamma, lam):
    """GAE written out per transition, independently of the script's vectorised deltas."""
    n = len(rewards)
    advantages = np.zeros(n)
    for t in range(n):
        total, discount = 0.0, 1.0
        for k in range(t, n):
            ends = next_done if k == n - 1 else starts[k + 1]
            v_next = next_value if k == n - 1 else values[k + 1]
            total += discount * (rewards[k] + gamma * v_next * (1 - ends) - values[k])
            if ends:
                break
            discount *= gamma * lam
        advantages[t] = total
    return advantages


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda m: m.__name__)
def test_compute_gae_matches_the_per_transition_sum_and_cuts_at_episode_starts(script):
    rng = np.random.default_rng(0)
    n, gamma, lam = 40, 0.97, 0.9
    rewards, values = rng.normal(size=(n, 3)), rng.normal(size=(n, 3))
    starts = (rng.random((n, 3)) < 0.15).astype(float)
    next_value, next_done = rng.normal(size=3), np.array([0.0, 1.0, 0.0])
    advantages, returns = script.compute_gae(*(torch.as_tensor(a) for a in (rewards, values, starts, next_value, next_done)), gamma, lam)
    for env in range(3):
        expected = reference_gae(rewards[:, env], values[:, env], starts[:, env], next_value[env], next_done[env], gamma, lam)
        np.testing.assert_allclose(advantages[:, env].numpy(), expected, rtol=1e-10)
    np.testing.assert_allclose(returns.numpy(), advantages.numpy() + values)


def test_make_envs_uses_same_step_autoreset():
    envs = ppo_continuous.make_envs("Hopper-v4", 2, 0.99)
    assert envs.metadata["autoreset_mode"] == gym.vector.AutoresetMode.SAME_STEP


# ---------------------------------------------------------------- parity with torch.distributions


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda m: m.__name__)
def test_closed_form_gaussian_equals_torch_distributions(script):
    torch.manual_seed(0)
    envs = script.make_envs("Hopper-v4", 1, 0.99)
    agent = script.Agent(envs)
    agent.actor_logstd.data.uniform_(-1, 0.5)
    x, actions = torch.randn(64, 11), torch.randn(64, 3)
    _, log_prob, entropy, *_ = agent.get_action_and_value(x, actions)
    reference = torch.distributions.Normal(agent.actor_mean(x), agent.actor_logstd.exp())
    torch.testing.assert_close(log_prob, reference.log_prob(actions).sum(1))
    torch.testing.assert_close(entropy, reference.entropy().sum(1).expand(64))


# ---------------------------------------------------------------- training runs (tiny budgets)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda m: m.__name__)
def test_training_logs_cleanrl_tags_and_same_seed_gives_identical_losses(script, tmp_path, monkeypatch):
    losses = []
    for attempt in ("a", "b"):
        (tmp_path / attempt).mkdir()
        monkeypatch.chdir(tmp_path / attempt)
        script.main(script.Args(env_id="Hopper-v4", seed=3, **TINY))
        scalars = read_scalars(run_dir(tmp_path / attempt))
        expected = CLEANRL_TAGS | (BPO_TAGS if script is bpo_continuous else set())
        assert expected <= set(scalars)
        assert [step for step, _ in scalars["losses/value_loss"]] == [512, 1024]
        assert all(np.isfinite(v) for _, v in scalars["losses/policy_loss"])
        losses.append({tag: [v for _, v in scalars[tag]] for tag in scalars if tag.startswith(("losses/", "bpo/"))}
                      | {"charts/episodic_return": [v for _, v in scalars["charts/episodic_return"]]})
    assert losses[0] == losses[1]


def test_bpo_target_tags_follow_the_temperature_and_its_unit(tmp_path, monkeypatch):
    tags = {}
    for name, kwargs in {"sign": dict(temperature=0.0), "raw": dict(temperature=1.0, norm_median_adv=False),
                         "unitless": dict(temperature=1.0, norm_median_adv=True)}.items():
        (tmp_path / name).mkdir()
        monkeypatch.chdir(tmp_path / name)
        bpo_continuous.main(bpo_continuous.Args(env_id="Hopper-v4", seed=3, **(TINY | kwargs)))
        tags[name] = {t: np.array([v for _, v in s]) for t, s in read_scalars(run_dir(tmp_path / name)).items()}
    np.testing.assert_allclose(tags["sign"]["bpo/target_saturation"], 1.0, rtol=1e-6)  # λ = 0: every target at 1 ± ε
    for name in ("raw", "unitless"):
        assert ((tags[name]["bpo/target_saturation"] > 0) & (tags[name]["bpo/target_saturation"] < 1)).all()
    # in units of Ã's std: E|tanh(z/2λ)| ≤ tanh(E|z|/2λ) ≤ tanh(1/2λ) for unit-variance z, whatever the return scale
    assert (tags["unitless"]["bpo/target_saturation"] <= np.tanh(0.5)).all()
    assert (tags["unitless"]["bpo/median_adv_std"] > 0).all()
    assert not np.allclose(tags["unitless"]["bpo/target_saturation"], tags["raw"]["bpo/target_saturation"])


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda m: m.__name__)
def test_save_then_evaluate_uses_the_saved_normalisation(script, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    script.main(script.Args(env_id="Hopper-v4", seed=1, save_model=True, **TINY))
    (checkpoint_path,) = (tmp_path / "runs").glob(f"*/{script.__name__}.cleanrl_model")
    checkpoint = torch.load(checkpoint_path, weights_only=False)
    assert checkpoint["script"] == script.__name__ and checkpoint["obs_rms"]["count"] > 1000

    # The evaluation env normalises with exactly the saved statistics, and keeps them frozen.
    rms = gym.wrappers.utils.RunningMeanStd(shape=(11,))
    rms.mean, rms.var, rms.count = (checkpoint["obs_rms"][k] for k in ("mean", "var", "count"))
    envs = script.make_envs("Hopper-v4", 1, 0.99, obs_rms=rms)
    obs, _ = envs.reset(seed=5)
    raw_obs, _ = gym.make("Hopper-v4").reset(seed=5)
    expected = np.clip((raw_obs - checkpoint["obs_rms"]["mean"]) / np.sqrt(checkpoint["obs_rms"]["var"] + 1e-8), -10, 10)
    np.testing.assert_allclose(obs[0], expected, rtol=1e-5)
    for _ in range(20):
        envs.step(np.zeros((1, 3), dtype=np.float32))
    np.testing.assert_array_equal(envs.envs[0].get_wrapper_attr("obs_rms").mean, checkpoint["obs_rms"]["mean"])

    returns = script.evaluate(script.Args(eval_checkpoint=str(checkpoint_path), eval_episodes=3))
    assert returns.shape == (3,) and np.isfinite(returns).all()
    assert "over 3 episodes" in capsys.readouterr().out
    # Other statistics give another policy input, hence other returns: the saved ones are really used.
    checkpoint["obs_rms"]["mean"] = checkpoint["obs_rms"]["mean"] + 3.0
    torch.save(checkpoint, tmp_path / "shifted.cleanrl_model")
    shifted = script.evaluate(script.Args(eval_checkpoint=str(tmp_path / "shifted.cleanrl_model"), eval_episodes=3))
    assert not np.allclose(shifted, returns)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda m: m.__name__)
def test_non_finite_loss_stops_the_run_and_keeps_the_last_good_checkpoint(script, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = script.Args(env_id="NaNAfter3000-v0", total_timesteps=8192, num_steps=512, num_minibatches=2, update_epochs=1,
                       save_model=True, progress=False)
    with pytest.raises(SystemExit, match=r"error: non-finite loss at step 3072 .*the last good checkpoint is runs/") as exc:
        script.main(args)
    checkpoint_path = Path(str(exc.value).split("checkpoint is ")[1])
    model = torch.load(checkpoint_path, weights_only=False)["model"]
    assert all(torch.isfinite(p).all() for p in model.values())


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda m: m.__name__)
def test_resume_continues_a_cut_off_run_with_its_optimizer_and_normalisation(script, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    save = script.save_checkpoint

    def cut_before_third_save(path, agent, envs, args, optimizer, iteration, global_step):  # killed after logging iteration 3
        if iteration == 3:
            raise KeyboardInterrupt
        save(path, agent, envs, args, optimizer, iteration, global_step)

    monkeypatch.setattr(script, "save_checkpoint", cut_before_third_save)
    with pytest.raises(KeyboardInterrupt):  # 4 iterations of 512 steps, a checkpoint after each
        script.main(script.Args(seed=2, save_model=True, **(TINY | dict(total_timesteps=2048))))
    (checkpoint_path,) = (tmp_path / "runs").glob(f"*/{script.__name__}.cleanrl_model")
    assert torch.load(checkpoint_path, weights_only=False)["global_step"] == 1024
    assert [s for s, _ in read_scalars(checkpoint_path.parent)["losses/value_loss"]] == [512, 1024, 1536]

    monkeypatch.setattr(script, "save_checkpoint", save)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # the run's own folder is used, wherever the command runs
    script.main(script.Args(resume=str(checkpoint_path), total_timesteps=10**6, progress=False))
    checkpoint = torch.load(checkpoint_path, weights_only=False)
    assert checkpoint["global_step"] == 2048 and checkpoint["iteration"] == 4  # the saved budget, not the new flag's
    assert all(state["step"] == 32 for state in checkpoint["optimizer"]["state"].values())  # 4 iterations × 4 × 2 updates
    # the normalisation went on from the saved statistics: one count per step (and per reset) over all 2048 steps
    assert checkpoint["normalisation"][0]["obs_rms"]["count"] > 2048 and checkpoint["normalisation"][0]["return_rms"]["count"] > 2048
    assert [s for s, _ in read_scalars(checkpoint_path.parent)["losses/value_loss"]] == [512, 1024, 1536, 2048]
    assert not (tmp_path / "elsewhere" / "runs").exists()


@pytest.mark.parametrize("saved_flags, expected", [
    ({}, (False, "tv")),  # before issue 16: neither flag
    ({"norm_median_adv": True, "log_distance": True}, (True, "log")),  # the boolean flag that --distance replaced
    ({"norm_median_adv": True, "log_distance": False}, (True, "tv")),
], ids=["before-issue-16", "log-distance-on", "log-distance-off"])
def test_resuming_a_bpo_run_saved_before_the_issue_16_flags_keeps_its_algorithm(tmp_path, monkeypatch, saved_flags, expected):
    monkeypatch.chdir(tmp_path)
    save = bpo_continuous.save_checkpoint

    def cut_before_second_save(path, agent, envs, args, optimizer, iteration, global_step):
        if iteration == 2:
            raise KeyboardInterrupt
        save(path, agent, envs, args, optimizer, iteration, global_step)

    monkeypatch.setattr(bpo_continuous, "save_checkpoint", cut_before_second_save)
    with pytest.raises(KeyboardInterrupt):
        bpo_continuous.main(bpo_continuous.Args(seed=2, save_model=True, **TINY))
    (checkpoint_path,) = (tmp_path / "runs").glob("*/bpo_continuous.cleanrl_model")
    old = torch.load(checkpoint_path, weights_only=False)
    del old["args"]["norm_median_adv"], old["args"]["distance"]  # as saved before those flags existed
    old["args"].update(saved_flags)
    torch.save(old, checkpoint_path)
    monkeypatch.setattr(bpo_continuous, "save_checkpoint", save)
    bpo_continuous.main(bpo_continuous.Args(resume=str(checkpoint_path), progress=False))
    resumed = torch.load(checkpoint_path, weights_only=False)
    assert resumed["iteration"] == 2
    assert (resumed["args"]["norm_median_adv"], resumed["args"]["distance"]) == expected
    assert "log_distance" not in resumed["args"]


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("env_id, message", [
    ("NoSuchEnv-v0", "error: cannot make environment 'NoSuchEnv-v0': Environment `NoSuchEnv` doesn't exist."),
    ("CartPole-v1", "error: CartPole-v1 has a Discrete(2) action space; this script needs a continuous (Box) one"),
])
def test_make_envs_rejects_unknown_and_discrete_envs(env_id, message):
    with pytest.raises(SystemExit) as exc:
        ppo_continuous.make_envs(env_id, 1, 0.99)
    assert str(exc.value) == message


def test_evaluate_rejects_missing_foreign_and_mismatched_checkpoints(tmp_path):
    with pytest.raises(SystemExit, match=r"^error: checkpoint not found: .*nope.cleanrl_model$"):
        ppo_continuous.evaluate(ppo_continuous.Args(eval_checkpoint=str(tmp_path / "nope.cleanrl_model")))
    (tmp_path / "junk.cleanrl_model").write_text("not a checkpoint")
    with pytest.raises(SystemExit, match=r"^error: .*junk.cleanrl_model is not a checkpoint of this library"):
        ppo_continuous.evaluate(ppo_continuous.Args(eval_checkpoint=str(tmp_path / "junk.cleanrl_model")))
    envs = bpo_continuous.make_envs("Hopper-v4", 1, 0.99)
    agent = bpo_continuous.Agent(envs)
    bpo_continuous.save_checkpoint(tmp_path / "bpo.cleanrl_model", agent, envs, bpo_continuous.Args(),
                                   torch.optim.Adam(agent.parameters()), 1, 2048)
    with pytest.raises(SystemExit, match=r"^error: .*bpo.cleanrl_model was saved by bpo_continuous.py; use it with that script"):
        ppo_continuous.evaluate(ppo_continuous.Args(eval_checkpoint=str(tmp_path / "bpo.cleanrl_model")))
    checkpoint = torch.load(tmp_path / "bpo.cleanrl_model", weights_only=False)
    checkpoint["args"]["env_id"] = "Walker2d-v4"  # 17-dim observations: the saved 11-input network does not fit
    torch.save(checkpoint, tmp_path / "walker.cleanrl_model")
    with pytest.raises(SystemExit, match=r"^error: .*walker.cleanrl_model does not match Walker2d-v4 and this network"):
        bpo_continuous.evaluate(bpo_continuous.Args(eval_checkpoint=str(tmp_path / "walker.cleanrl_model")))


@pytest.mark.parametrize("script", ["ppo_continuous.py", "bpo_continuous.py"])
def test_smoke_cli_from_another_directory_trains_or_fails_in_one_line(script, tmp_path):
    """Smoke test of the command line: runs from any directory; bad input is one line, exit 1, no traceback."""
    ok = subprocess.run([sys.executable, str(ROOT / script), "--total-timesteps", "256", "--num-steps", "128",
                         "--num-minibatches", "2", "--update-epochs", "1"], cwd=tmp_path, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert "done: 256 steps" in ok.stdout and (tmp_path / "runs").is_dir()
    bad = subprocess.run([sys.executable, str(ROOT / script), "--env-id", "CartPole-v1"], cwd=tmp_path, capture_output=True, text=True)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().splitlines()[-1] == "error: CartPole-v1 has a Discrete(2) action space; this script needs a continuous (Box) one"
