"""bpo_rsl_rl.BPO inside rsl_rl's OnPolicyRunner on a toy VecEnv: selection by class_name, the loss against
common/brrl.py, the median head in the optimizer and in save/load, the logged quantities, learning, and the settings it
rejects. No simulator needed."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch

rsl_rl = pytest.importorskip("rsl_rl")
from rsl_rl.env import VecEnv  # noqa: E402
from rsl_rl.runners import OnPolicyRunner  # noqa: E402
from rsl_rl.utils import resolve_callable  # noqa: E402
from tensordict import TensorDict  # noqa: E402

import bpo_rsl_rl  # noqa: E402
from common import brrl  # noqa: E402


class TargetEnv(VecEnv):
    """Toy VecEnv: obs x ~ U(-1, 1)^3 redrawn every step, reward 1 − (a0 − x0)² − a1² (best: a = (x0, 0)), episodes of
    `horizon` steps ended by a time-out (dones = 1 and extras["time_outs"] = 1)."""

    def __init__(self, num_envs=16, horizon=8, device="cpu"):
        self.num_envs, self.num_actions, self.max_episode_length, self.device, self.cfg = num_envs, 2, horizon, device, {}
        self.gen = torch.Generator().manual_seed(0)
        self.episode_length_buf = torch.zeros(num_envs, dtype=torch.long)
        self.obs = self._draw()

    def _draw(self):
        return torch.rand(self.num_envs, 3, generator=self.gen) * 2 - 1

    def get_observations(self):
        return TensorDict({"policy": self.obs}, batch_size=[self.num_envs])

    def step(self, actions):
        reward = 1 - (actions[:, 0] - self.obs[:, 0]) ** 2 - actions[:, 1] ** 2
        self.episode_length_buf += 1
        dones = self.episode_length_buf >= self.max_episode_length
        self.episode_length_buf[dones] = 0
        self.obs = self._draw()
        return self.get_observations(), reward, dones.long(), {"time_outs": dones.long()}


@pytest.fixture(autouse=True)
def one_torch_thread():
    """These networks are tiny: one thread is fastest, and the tests share the machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def train_cfg(class_name="bpo_rsl_rl:BPO", **algorithm):
    return {
        "num_steps_per_env": 16, "save_interval": 1000, "obs_groups": {"actor": ["policy"], "critic": ["policy"]},
        "actor": {"class_name": "MLPModel", "hidden_dims": [32, 32], "activation": "elu", "obs_normalization": True,
                  "distribution_cfg": {"class_name": "GaussianDistribution", "init_std": 0.5}},
        "critic": {"class_name": "MLPModel", "hidden_dims": [32, 32], "activation": "elu", "obs_normalization": True},
        "algorithm": {"class_name": class_name, "num_learning_epochs": 4, "num_mini_batches": 4, "learning_rate": 1e-3,
                      "schedule": "adaptive", "desired_kl": 0.01, "entropy_coef": 0.0, **algorithm},
    }


def make_runner(class_name="bpo_rsl_rl:BPO", seed=0, **algorithm):
    torch.manual_seed(seed)
    return OnPolicyRunner(TargetEnv(), train_cfg(class_name, **algorithm), log_dir=None, device="cpu")


def mean_reward(runner, steps=32):
    """Mean reward of the deterministic policy (the Gaussian's mean) on fresh observations."""
    env, policy = TargetEnv(), runner.get_inference_policy()
    env.gen.manual_seed(123)
    total = 0.0
    with torch.no_grad():
        for _ in range(steps):
            _, reward, _, _ = env.step(policy(env.get_observations()))
            total += reward.mean().item()
    return total / steps


def test_the_class_name_resolves_to_bpo():
    assert resolve_callable("bpo_rsl_rl:BPO") is bpo_rsl_rl.BPO
    assert issubclass(bpo_rsl_rl.BPO, rsl_rl.algorithms.PPO)


def test_inline_loss_equals_common_brrl():
    gen = torch.Generator().manual_seed(0)
    ratio = torch.rand(1000, generator=gen, dtype=torch.float64) * 2 + 1e-3
    adv, median_adv = torch.randn(1000, generator=gen, dtype=torch.float64), torch.randn(1000, generator=gen, dtype=torch.float64)
    median_adv[:10] = 0.0
    for temperature in (0.0, 1e-3, 0.01, 1.0):
        for distance in ("tv", "sqrt", "log"):
            torch.testing.assert_close(bpo_rsl_rl.bpo_loss(ratio.log(), adv, median_adv, 0.3, temperature, distance),
                                       brrl.bpo_loss(ratio, adv, median_adv, 0.3, temperature, distance), rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(bpo_rsl_rl.bpo_target_ratio(median_adv, 0.3, temperature),
                                   brrl.smoothed_target_ratio(median_adv, 0.3, temperature), rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(bpo_rsl_rl.median_loss(adv, median_adv, temperature),
                                   brrl.median_loss(adv, median_adv, temperature), rtol=1e-12, atol=1e-12)


def test_bpo_trains_in_the_on_policy_runner_and_logs_its_quantities():
    runner = make_runner()
    alg = runner.alg
    assert isinstance(alg, bpo_rsl_rl.BPO)
    assert (alg.epsilon, alg.temperature, alg.median_temperature, alg.distance) == (0.3, 0.01, 0.01, "sqrt")
    # the median head: the critic's architecture with its own weights, in the optimizer as a second group
    assert type(alg.median_head) is type(alg.critic) and alg.median_head.mlp is not alg.critic.mlp
    assert alg.median_head.obs_normalizer is alg.critic.obs_normalizer
    assert len(alg.optimizer.param_groups) == 2
    head = {id(p) for p in alg.optimizer.param_groups[1]["params"]}
    assert head == {id(p) for p in alg.median_head.mlp.parameters()}
    before = copy.deepcopy(alg.median_head.mlp.state_dict())

    losses = {}
    original_update = alg.update
    alg.update = lambda: losses.update(original_update()) or losses
    runner.learn(3)
    assert set(losses) == {"value", "surrogate", "entropy", "median", "approx_kl", "clip_fraction", "bpo_target_ratio",
                           "bpo_frac_above_median", "bpo_ratio_target_gap", "bpo_target_saturation", "bpo_median_adv_std"}
    assert all(torch.isfinite(torch.tensor(v)) for v in losses.values())
    assert 1 - 0.3 <= losses["bpo_target_ratio"] <= 1 + 0.3
    assert 0 <= losses["bpo_frac_above_median"] <= 1 and 0 <= losses["bpo_target_saturation"] <= 1
    assert losses["median"] > 0 and losses["bpo_median_adv_std"] > 0
    after = alg.median_head.mlp.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)  # the head is trained
    assert runner.current_learning_iteration == 2


def test_the_median_head_is_saved_and_loaded(tmp_path):
    runner = make_runner()
    runner.learn(2)
    path = tmp_path / "model.pt"
    runner.save(str(path))
    saved = torch.load(path, weights_only=False)
    assert "median_state_dict" in saved and saved["iter"] == 1
    assert len(saved["optimizer_state_dict"]["param_groups"]) == 2

    other = make_runner(seed=1)
    assert not torch.equal(other.alg.median_head.mlp[0].weight, runner.alg.median_head.mlp[0].weight)
    other.load(str(path))
    for key, value in runner.alg.median_head.state_dict().items():
        torch.testing.assert_close(other.alg.median_head.state_dict()[key], value, rtol=0, atol=0)
    assert other.current_learning_iteration == 1
    other.learn(1)  # and it trains on from there


def test_a_ppo_checkpoint_does_not_load_strictly_into_bpo(tmp_path):
    ppo = make_runner("PPO")
    ppo.learn(1)  # rsl-rl-lib 5.0's runner saves only after its logger has started
    path = tmp_path / "ppo.pt"
    ppo.save(str(path))
    with pytest.raises(KeyError, match="no 'median_state_dict'"):
        make_runner().load(str(path))
    bpo = make_runner()
    bpo.load(str(path), load_cfg={"actor": True}, strict=True)  # the actor alone (fine-tuning a PPO policy with BPO)
    torch.testing.assert_close(bpo.alg.actor.mlp[0].weight, ppo.alg.actor.mlp[0].weight, rtol=0, atol=0)


@pytest.mark.parametrize("algorithm", [
    {}, {"distance": "tv", "median_temperature": 1.0, "median_loss_coef": 1.0},  # the authors' rsl_rl choices
    {"online_advantage": False, "use_median": False, "normalize_median_advantage": True, "temperature": 0.0},
], ids=["defaults", "authors", "options"])
def test_bpo_learns_the_toy_task(algorithm):
    runner = make_runner(**algorithm)
    start = mean_reward(runner)
    runner.learn(15)
    end = mean_reward(runner)
    # at start the policy's mean is near 0: reward about 1 − E[x0²] = 2/3; the optimum is 1
    assert start < 0.75 and end > 0.9, (start, end)


def test_unsupported_settings_are_rejected_in_one_message():
    env = TargetEnv()
    with pytest.raises(ValueError) as error:
        OnPolicyRunner(env, train_cfg(epsilon=1.5, distance="kl", normalize_advantage_per_mini_batch=True,
                                      symmetry_cfg={"use_data_augmentation": True}), log_dir=None, device="cpu")
    message = str(error.value)
    assert message.startswith("bpo_rsl_rl.BPO does not support: ") and "\n" not in message
    for part in ("epsilon must lie in (0, 1), got 1.5", "distance must be one of tv, sqrt, log, got 'kl'",
                 "normalize_advantage_per_mini_batch=True with online_advantage=True", "symmetry_cfg"):
        assert part in message
    alg = make_runner().alg  # rsl_rl resolves an rnd_cfg against a real env before BPO sees it: build BPO directly
    with pytest.raises(ValueError, match="rnd_cfg"):
        bpo_rsl_rl.BPO(alg.actor, alg.critic, alg.storage, rnd_cfg={"weight": 1.0})
    with pytest.raises(ValueError, match="use_mixed_precision"):
        bpo_rsl_rl.BPO(alg.actor, alg.critic, alg.storage, use_mixed_precision=True)
    with pytest.raises(ValueError, match="temperature must be >= 0 and finite, got -1"):
        OnPolicyRunner(env, train_cfg(temperature=-1), log_dir=None, device="cpu")
    # an Isaac Lab config passes the unused extensions as None: accepted
    assert isinstance(OnPolicyRunner(env, train_cfg(rnd_cfg=None, symmetry_cfg=None), log_dir=None, device="cpu").alg,
                      bpo_rsl_rl.BPO)


@pytest.mark.parametrize("setting, part", [
    ({"temperature": None}, "temperature must be a number, got None"),
    ({"epsilon": "0.3"}, "epsilon must be a number, got '0.3'"),
    ({"median_loss_coef": True}, "median_loss_coef must be a number, got True"),
    ({"use_median": "no"}, "use_median must be True or False, got 'no'"),
    ({"online_advantage": 1}, "online_advantage must be True or False, got 1"),
])
def test_settings_of_the_wrong_type_are_rejected_when_built_not_in_the_first_update(setting, part):
    with pytest.raises(ValueError) as error:
        OnPolicyRunner(TargetEnv(), train_cfg(**setting), log_dir=None, device="cpu")
    assert str(error.value) == f"bpo_rsl_rl.BPO does not support: {part}"


def test_mjlab_trains_bpo_for_two_iterations_on_the_cpu(tmp_path, monkeypatch):
    """mjlab (1.6 pins rsl-rl-lib 5.4.2 and mujoco 3.11) is not in this project's environment: the test skips without it.
    Run in a separate venv: pip install -c <(echo torch==2.13.0) torch==2.13.0 mjlab==1.6.0 pytest -e . (about 30 s)."""
    pytest.importorskip("mjlab")
    import mjlab.tasks  # noqa: F401  (fills mjlab's task registry)
    from mjlab.scripts.train import TrainConfig, launch_training

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # launch_training sets it; restored after the test
    cfg = dataclasses.replace(TrainConfig.from_task("Mjlab-Velocity-Flat-Unitree-Go1"), gpu_ids=None, log_root=str(tmp_path))
    cfg.env.scene.num_envs, cfg.agent.max_iterations, cfg.agent.logger = 4, 2, "tensorboard"  # mjlab's default: wandb
    cfg.agent.algorithm.class_name = "bpo_rsl_rl:BPO"
    launch_training("Mjlab-Velocity-Flat-Unitree-Go1", cfg)
    saved = torch.load(max(tmp_path.rglob("model_*.pt")), weights_only=False)
    assert "median_state_dict" in saved and saved["iter"] == 1  # BPO's checkpoint after iterations 0 and 1
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(next(tmp_path.rglob("events.out.tfevents.*")).parent)).Reload()
    assert [event.step for event in events.Scalars("Loss/median")] == [0, 1]  # the median head's loss, each iteration
