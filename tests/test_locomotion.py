"""locomotion_rsl_rl.py: the envpool -> rsl_rl VecEnv adapter on a scripted env with known episode boundaries and on a
real Playground task, a short run of the script (PPO and BPO) with its logs, checkpoint and evaluation, and bad input."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("rsl_rl")
envpool = pytest.importorskip("envpool")

import locomotion_rsl_rl as loco  # noqa: E402
from benchmarks.tb import read_scalars  # noqa: E402
from tests.scripts import BPO_TAGS, CLEANRL_TAGS, ROOT, run_dir  # noqa: E402


class Box:
    def __init__(self, n):
        self.shape, self.low, self.high = (n,), -np.ones(n), np.ones(n)


class ScriptedEnvpool:
    """envpool's synchronous API and autoreset, scripted: env i's episodes have the lengths in `lengths[i]` (cycled),
    ending by termination when the length is odd and by truncation when even. Reward 1 per real step; as in envpool, a
    step that follows a done without a reset ignores its action, resets and returns reward 0. Observations
    {"state": [env id, episode, t], "privileged_state": [-t]}; rows come back in a shuffled env order."""

    def __init__(self, lengths):
        self.lengths, self.n = lengths, len(lengths)
        self.action_space = Box(2)
        self.episode, self.t, self.needs_reset = np.zeros(self.n, int), np.zeros(self.n, int), np.zeros(self.n, bool)
        self.applied = []  # (env id, episode, t before the step, action) of every action that moved an env
        self.rng = np.random.default_rng(0)

    def _obs(self, ids):
        state = np.stack([ids, self.episode[ids], self.t[ids]], 1).astype(np.float64)
        return {"state": state, "privileged_state": -self.t[ids, None].astype(np.float64)}

    def _length(self, i):
        return self.lengths[i][self.episode[i] % len(self.lengths[i])]

    def reset(self, env_id):
        ids = np.asarray(env_id)
        for i in ids:
            if self.needs_reset[i] or self.t[i] > 0:
                self.episode[i] += 1
            self.t[i], self.needs_reset[i] = 0, False
        return self._obs(ids), {"env_id": ids}

    def step(self, action, env_id):
        ids = np.asarray(env_id)
        reward, term, trunc = np.zeros(len(ids)), np.zeros(len(ids), bool), np.zeros(len(ids), bool)
        for row, i in enumerate(ids):
            if self.needs_reset[i]:  # envpool's autoreset step
                self.episode[i] += 1
                self.t[i], self.needs_reset[i] = 0, False
                continue
            self.applied.append((i, self.episode[i], self.t[i], action[row].copy()))
            self.t[i] += 1
            reward[row] = 1.0
            if self.t[i] == self._length(i):
                term[row], trunc[row] = self._length(i) % 2 == 1, self._length(i) % 2 == 0
                self.needs_reset[i] = True
        order = self.rng.permutation(len(ids))
        obs = {k: v[order] for k, v in self._obs(ids).items()}
        return obs, reward[order], term[order], trunc[order], {"env_id": ids[order]}


def test_adapter_never_trains_across_a_reset_and_reports_time_outs():
    lengths = [[3, 4], [2], [5, 6, 1]]
    fake = ScriptedEnvpool(lengths)
    env = loco.EnvpoolVecEnv(fake, num_envs=3, max_episode_length=6)
    obs = env.get_observations()
    assert set(obs.keys()) == {"policy", "critic"} and obs["policy"].shape == (3, 3) and obs["critic"].shape == (3, 1)
    assert obs["policy"][:, 2].tolist() == [0, 0, 0]
    transitions = []
    for step in range(30):
        actions = torch.full((3, 2), 5.0 if step == 7 else step / 100)  # step 7's actions lie outside the action space
        before = obs["policy"].clone()
        obs, rewards, dones, extras = env.step(actions)
        transitions.append((before, rewards, dones, extras["time_outs"], obs["policy"].clone()))
    # every step was a real step of the env that received the agent's action (no ignored action)
    assert len(fake.applied) == 30 * 3
    assert all(np.all(np.abs(a) <= 1) for *_, a in fake.applied)  # actions clipped to the action space
    for before, rewards, dones, time_outs, after in transitions:
        assert rewards.tolist() == [1.0, 1.0, 1.0]  # never envpool's reward-0 reset step
        for i in range(3):
            env_id, episode, t = before[i].tolist()
            assert env_id == i and after[i, 0] == i
            length = lengths[i][int(episode) % len(lengths[i])]
            if dones[i]:  # the last step of an episode: the next episode's first observation is already there
                assert t + 1 == length and after[i, 1:].tolist() == [episode + 1, 0]
                assert time_outs[i] == (length % 2 == 0)
            else:  # inside an episode
                assert after[i, 1:].tolist() == [episode, t + 1] and time_outs[i] == 0
    # finished episodes: (undiscounted return, length), in the order they ended
    ended = _lengths_ended(transitions, lengths)
    assert len(ended) > 10 and env.finished == [(float(length), length) for length in ended]


def _lengths_ended(transitions, lengths):
    ended = []
    for before, _, dones, _, _ in transitions:
        for i in np.flatnonzero(dones.numpy()):
            episode = int(before[i, 1])
            ended.append(lengths[i][episode % len(lengths[i])])
    return ended


class Spy:
    """Records envpool's elapsed_step of every env at every step: 0 would be an autoreset step that ignored its action."""

    def __init__(self, env):
        self.env, self.action_space, self.elapsed = env, env.action_space, []

    def reset(self, env_id):
        return self.env.reset(env_id)

    def step(self, action, env_id):
        out = self.env.step(action, env_id)
        self.elapsed.append(out[4]["elapsed_step"][np.argsort(out[4]["env_id"])].copy())
        return out


def test_adapter_on_a_real_playground_task_resets_at_the_time_limit():
    spy = Spy(envpool.make_gymnasium("Go1JoystickFlatTerrain-v1", num_envs=3, seed=0, max_episode_steps=4, num_threads=1))
    env = loco.EnvpoolVecEnv(spy, num_envs=3, max_episode_length=4)
    assert env.get_observations()["policy"].shape == (3, 48) and env.get_observations()["critic"].shape == (3, 123)
    for step in range(12):
        obs, rewards, dones, extras = env.step(torch.zeros(3, 12))
        assert obs["policy"].dtype == torch.float32 and rewards.shape == (3,) and (rewards >= 0).all()
        falls = dones.bool() & ~extras["time_outs"].bool()
        expected = (spy.elapsed[-1] == 4) | falls.numpy()
        assert dones.numpy().astype(bool).tolist() == expected.tolist()
    elapsed = np.stack(spy.elapsed)
    assert (elapsed >= 1).all()  # no step was envpool's action-ignoring reset step
    assert len(env.finished) >= 9 and all(length <= 4 for _, length in env.finished)


def test_smoke_locomotion_script_trains_saves_and_evaluates_on_go1(tmp_path, monkeypatch, capsys):
    """Smoke test: PPO and BPO a few iterations each on Go1 rough terrain, the project's tags, --save-model, evaluation."""
    tiny = dict(num_envs=8, num_steps=8, total_timesteps=128, hidden_sizes=(32, 32), num_minibatches=2, update_epochs=1,
                progress=False, save_model=True)
    for algo in ("ppo", "bpo"):
        (tmp_path / algo).mkdir()
        monkeypatch.chdir(tmp_path / algo)
        loco.main(loco.Args(algo=algo, **tiny))
        assert "done: 128 steps" in capsys.readouterr().out
        scalars = read_scalars(run_dir(tmp_path / algo))
        expected = CLEANRL_TAGS - {"charts/episodic_return", "charts/episodic_length", "losses/explained_variance"}
        expected |= BPO_TAGS if algo == "bpo" else set()
        assert expected <= set(scalars) <= CLEANRL_TAGS | BPO_TAGS | {"charts/action_std"}
        kl = np.array([v for _, v in scalars["losses/approx_kl"]])
        assert ((kl > 0) & (kl < 1)).all()  # the update moved the policy, by a small step
        assert [step for step, _ in scalars["losses/value_loss"]] == [64, 128]
        checkpoint = torch.load(next(run_dir(tmp_path / algo).glob("*.cleanrl_model")), weights_only=False)
        assert checkpoint["args"]["algo"] == algo and ("median_state_dict" in checkpoint["rsl_rl"]) == (algo == "bpo")
    saved = next(run_dir(tmp_path / "bpo").glob("*.cleanrl_model"))
    returns = loco.evaluate(loco.Args(eval_checkpoint=str(saved), eval_episodes=2, env_id="Hopper-v4"))
    assert returns.shape == (2,) and (returns >= 0).all()  # Playground's rewards are clipped at 0
    captured = capsys.readouterr()
    assert "eval Go1JoystickRoughTerrain-v1" in captured.out  # the saved run's task, and it says --env-id is ignored
    assert "note: --eval-checkpoint uses the saved run's arguments; ignoring --env-id" in captured.err.splitlines()


def test_resume_continues_a_cut_off_run_with_its_optimizer_and_normaliser(tmp_path, monkeypatch, capsys, sigint_handler):
    monkeypatch.chdir(tmp_path)
    save = loco.save_checkpoint

    def cut_before_third_save(path, alg, args, iteration, global_step):  # killed after logging iteration 3
        if iteration == 3:
            raise KeyboardInterrupt
        save(path, alg, args, iteration, global_step)

    monkeypatch.setattr(loco, "save_checkpoint", cut_before_third_save)
    tiny = dict(num_envs=8, num_steps=8, total_timesteps=256, hidden_sizes=(32, 32), num_minibatches=2, update_epochs=1,
                progress=False, save_model=True)  # 4 iterations of 64 steps, a checkpoint after each
    with pytest.raises(KeyboardInterrupt):
        loco.main(loco.Args(algo="bpo", **tiny))
    (checkpoint_path,) = (tmp_path / "runs").glob("*/locomotion_rsl_rl.cleanrl_model")
    cut = torch.load(checkpoint_path, weights_only=False)
    assert cut["global_step"] == 128 and cut["iteration"] == 2
    assert [s for s, _ in read_scalars(checkpoint_path.parent)["losses/value_loss"]] == [64, 128, 192]

    monkeypatch.setattr(loco, "save_checkpoint", save)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")  # the run's own folder is used, wherever the command runs
    loco.main(loco.Args(resume=str(checkpoint_path), total_timesteps=10**6, progress=False))
    captured = capsys.readouterr()
    assert f"resuming {checkpoint_path.parent} at step 128" in captured.out and "done: 256 steps" in captured.out
    assert "note: --resume continues with the saved run's arguments; ignoring --total-timesteps" in captured.err
    resumed = torch.load(checkpoint_path, weights_only=False)
    assert resumed["global_step"] == 256 and resumed["iteration"] == 4  # the saved budget, not the new flag's
    assert resumed["args"]["algo"] == "bpo" and resumed["args"]["hidden_sizes"] == (32, 32)
    optimizer = resumed["rsl_rl"]["optimizer_state_dict"]
    assert all(state["step"] == 8 for state in optimizer["state"].values())  # 4 iterations × 2 minibatches, one Adam
    assert resumed["rsl_rl"]["actor_state_dict"]["obs_normalizer.count"] == 256  # 4 rollouts of 64, none forgotten
    assert [s for s, _ in read_scalars(checkpoint_path.parent)["losses/value_loss"]] == [64, 128, 192, 256]  # 192 purged
    assert not (tmp_path / "elsewhere" / "runs").exists()

    saved_at = checkpoint_path.stat().st_mtime_ns
    loco.main(loco.Args(resume=str(checkpoint_path), progress=False))  # now finished: it says so and trains nothing
    assert capsys.readouterr().out.strip().splitlines()[-1] == (
        f"{checkpoint_path} is a finished run (256 of 256 steps); nothing to resume. Evaluate it with --eval-checkpoint "
        f"{checkpoint_path}")
    assert checkpoint_path.stat().st_mtime_ns == saved_at


def test_resume_rejects_missing_and_mismatched_checkpoints_and_eval_at_the_same_time(tmp_path):
    with pytest.raises(SystemExit, match=r"^error: checkpoint not found: .*nope.cleanrl_model$"):
        loco.main(loco.Args(resume=str(tmp_path / "nope.cleanrl_model")))
    with pytest.raises(SystemExit, match=r"^error: --eval-checkpoint and --resume exclude each other$"):
        loco.check_args(loco.Args(resume="a", eval_checkpoint="b"))
    args = vars(loco.Args(num_envs=8, num_steps=8, total_timesteps=128, num_minibatches=2, hidden_sizes=(32, 32)))
    (run := tmp_path / "runs" / "r").mkdir(parents=True)
    path = run / "locomotion_rsl_rl.cleanrl_model"
    torch.save({"script": "locomotion_rsl_rl", "args": args, "rsl_rl": {}, "iteration": 1, "global_step": 64}, path)
    with pytest.raises(SystemExit, match=r"^error: .*locomotion_rsl_rl.cleanrl_model cannot be resumed: the checkpoint has no 'median_state_dict'"):
        loco.main(loco.Args(resume=str(path), progress=False))
    torch.save({"script": "locomotion_rsl_rl", "args": args, "rsl_rl": {}, "global_step": 64}, path)
    with pytest.raises(SystemExit, match=r"^error: .* is not a checkpoint of this script \(missing or malformed: iteration\)$"):
        loco.main(loco.Args(resume=str(path), progress=False))
    torch.save({"script": "ppo_continuous", "args": {}, "model": {}}, path)  # another script's: no rsl_rl dict
    with pytest.raises(SystemExit, match=r"^error: .* was saved by ppo_continuous.py; use it with that script"):
        loco.main(loco.Args(resume=str(path), progress=False))


@pytest.mark.parametrize("save_model", [True, False], ids=["saving", "not-saving"])
def test_ctrl_c_ends_in_one_line_saying_where_the_last_checkpoint_is(save_model, tmp_path, monkeypatch, capsys,
                                                                     sigint_handler):
    monkeypatch.chdir(tmp_path)
    calls, policy_change = [], loco.policy_change

    def ctrl_c_in_the_second_iteration(*args):
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGINT)
        return policy_change(*args)

    monkeypatch.setattr(loco, "policy_change", ctrl_c_in_the_second_iteration)
    with pytest.raises(SystemExit) as exc:
        loco.main(loco.Args(num_envs=8, num_steps=8, total_timesteps=256, hidden_sizes=(32, 32), num_minibatches=2,
                            update_epochs=1, progress=False, save_model=save_model))
    assert exc.value.code == 130
    (line,) = capsys.readouterr().err.strip().splitlines()
    if save_model:
        (path,) = Path("runs").glob("*/locomotion_rsl_rl.cleanrl_model")
        assert torch.load(path, weights_only=False)["iteration"] == 1
        assert line == f"interrupted: the last checkpoint is {path}; continue the run with python locomotion_rsl_rl.py --resume {path}"
    else:
        assert line == "interrupted before any checkpoint was saved (--save-model saves one every 10% of training)"


def test_cli_bad_input_is_one_line(tmp_path):
    bad = subprocess.run([sys.executable, str(ROOT / "locomotion_rsl_rl.py"), "--epsilon", "1.5"], cwd=tmp_path,
                         capture_output=True, text=True)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().splitlines()[-1] == "error: --epsilon must lie in (0, 1), got 1.5"


@pytest.mark.parametrize("env_id, message", [
    ("Nope-v1", "error: envpool has no environment 'Nope-v1'"),
    ("CartPole-v1", "error: CartPole-v1 has a Discrete(2) action space; this script needs a continuous (Box) one"),
    ("CheetahRun-v1", "error: CheetahRun-v1's observations are a dict of position, velocity; this script needs a Box "
                      "observation or MuJoCo Playground's \"state\" (and \"privileged_state\")"),
])
def test_make_env_rejects_unknown_and_discrete_envs(env_id, message):
    with pytest.raises(SystemExit) as exc:
        loco.make_env(env_id, 2, 0, 1)
    assert str(exc.value).startswith(message)


def test_evaluate_rejects_missing_and_foreign_checkpoints(tmp_path):
    with pytest.raises(SystemExit, match=r"^error: checkpoint not found: .*nope.cleanrl_model$"):
        loco.evaluate(loco.Args(eval_checkpoint=str(tmp_path / "nope.cleanrl_model")))
    with pytest.raises(SystemExit) as folder:  # the run's folder instead of the file in it
        loco.evaluate(loco.Args(eval_checkpoint=str(tmp_path)))
    assert str(folder.value) == (f"error: {tmp_path} is a folder; give the checkpoint file, e.g. "
                                 "runs/<run_name>/locomotion_rsl_rl.cleanrl_model")
    (tmp_path / "junk.cleanrl_model").write_text("not a checkpoint")
    with pytest.raises(SystemExit, match=r"^error: .*junk.cleanrl_model is not a checkpoint of this script"):
        loco.evaluate(loco.Args(eval_checkpoint=str(tmp_path / "junk.cleanrl_model")))
    torch.save({"script": "bpo_continuous", "args": {}, "model": {}}, tmp_path / "other.cleanrl_model")  # no rsl_rl dict
    with pytest.raises(SystemExit, match=r"^error: .*other.cleanrl_model was saved by bpo_continuous.py"):
        loco.evaluate(loco.Args(eval_checkpoint=str(tmp_path / "other.cleanrl_model")))


@pytest.mark.parametrize("field, value, message", [
    ("learning_rate", float("nan"), "--learning-rate must be positive and finite"),
    ("temperature", -1.0, "--temperature must be >= 0 and finite"),
    ("num_minibatches", 1000, "a minibatch needs at least 2 samples"),
    ("total_timesteps", 10, "is smaller than one batch"),
    ("hidden_sizes", (0,), "--hidden-sizes must be positive"),
    ("init_std", 1e-30, "--init-std must lie in [1e-6, 1e6] (rsl_rl clamps the std to it), got 1e-30"),
])
def test_check_args_rejects_out_of_range_numbers(field, value, message):
    with pytest.raises(SystemExit, match="^error: .*" + re.escape(message)):
        loco.check_args(loco.Args(**{field: value}))


def test_go1_study_compares_ppo_and_bpo_at_equal_settings_over_three_seeds():
    from benchmarks import run

    jobs = run.STUDIES["locomotion_go1_rough_5m"]
    assert {(j.name, j.seed) for j in jobs} == {(f"{a}_rsl_rl", s) for a in ("ppo", "bpo") for s in (1, 2, 3)}
    assert all(j.script == "locomotion_rsl_rl" and j.env_id == "Go1JoystickRoughTerrain-v1" and j.total_timesteps == 5_000_000
               and j.extra_args == ("--algo", j.name.split("_")[0], "--save-model") and j.resumable for j in jobs)
    assert "locomotion_rsl_rl" in run.ENVPOOL_SCRIPTS
    assert run.raw_env_rate("Go1JoystickFlatTerrain-v1", steps=50, envpool=True) > 0  # the yardstick steps envpool's env
