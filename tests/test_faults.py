"""Bad input and faults in every script (issue 21), by kind: numbers out of range, folders that cannot be written,
names that become paths, environments that cannot be made, games that end inside a reset, Ctrl-C, ignored flags.
Each is one line (`error: ...` and exit 1; Ctrl-C: exit 130), never a traceback. Budgets are tiny."""

from __future__ import annotations

import dataclasses
import math
import os
import re
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
import tyro

import bpo_atari
import bpo_continuous
import brrl_tabular
import gbpo_llm
import ppo_atari
import ppo_continuous
from tests.scripts import ROOT

ENV_SCRIPTS = [ppo_continuous, bpo_continuous, ppo_atari, bpo_atari]
SCRIPTS = ENV_SCRIPTS + [gbpo_llm, brrl_tabular]
ATARI = [ppo_atari, bpo_atari]
TINY = {ppo_continuous: dict(num_steps=256, num_minibatches=2, update_epochs=1, total_timesteps=512, progress=False),
        ppo_atari: dict(num_envs=2, num_steps=32, num_minibatches=2, update_epochs=1, total_timesteps=128, cuda=False,
                        progress=False)}
TINY |= {bpo_continuous: TINY[ppo_continuous], bpo_atari: TINY[ppo_atari]}
GBPO_TINY = dict(num_digits=1, num_test_prompts=8, d_model=16, n_layers=1, n_heads=2, warmup_steps=2, warmup_batch_size=8,
                 total_iterations=1, prompts_per_batch=2, group_size=2, num_minibatches=1, eval_k=1, progress=False)
nan, inf = math.nan, math.inf
name = lambda m: getattr(m, "__name__", None)  # noqa: E731  (test ids)


def fails(call, *args, **kwargs) -> str:
    """The one-line message `call` exits with; sys.exit with a message means exit status 1."""
    with pytest.raises(SystemExit) as exc:
        call(*args, **kwargs)
    message = exc.value.code
    assert isinstance(message, str) and message.startswith("error: ") and "\n" not in message, message
    return message


def cli(script: str, *flags, cwd) -> tuple[int, list[str]]:
    """Run a script's command line: its exit code and the lines of its stderr, which must hold no traceback."""
    proc = subprocess.run([sys.executable, str(ROOT / script), *map(str, flags)], cwd=cwd, capture_output=True, text=True)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, proc.stderr.strip().splitlines()


# ---------------------------------------------------------------- every numeric flag has a range


ENV_COMMON = {
    "seed": [-1, 2**32], "torch_threads": [0, -2], "eval_episodes": [0], "total_timesteps": [0, -5],
    "learning_rate": [0.0, -1e-3, nan, inf], "num_envs": [0], "num_steps": [0], "gamma": [0.0, 1.5, nan],
    "gae_lambda": [-0.1, 1.5, nan], "num_minibatches": [0], "update_epochs": [0], "clip_coef": [0.0, 1.0, nan],
    "ent_coef": [-0.01, nan, inf], "vf_coef": [-0.5, nan, inf], "max_grad_norm": [0.0, nan, inf], "target_kl": [0.0, -1.0, nan, inf],
}
BPO_EXTRA = {"temperature": [-0.1, nan, inf], "median_coef": [-1.0, nan, inf]}
ATARI_EXTRA = {"repeat_action_probability": [-0.1, 1.5, nan]}
OUT_OF_RANGE = {  # an explicit table: a numeric flag added to a script without a range here fails the first test below
    ppo_continuous: ENV_COMMON,
    bpo_continuous: ENV_COMMON | BPO_EXTRA,
    ppo_atari: ENV_COMMON | ATARI_EXTRA,
    bpo_atari: ENV_COMMON | ATARI_EXTRA | BPO_EXTRA,
    gbpo_llm: {
        "seed": [-1, 2**32], "torch_threads": [0], "num_digits": [0, 10], "num_test_prompts": [0, 10**6], "task_seed": [-1, 2**32],
        "d_model": [0, 30], "n_layers": [0], "n_heads": [0], "warmup_steps": [-1], "warmup_batch_size": [0],
        "warmup_lr": [0.0, nan, inf], "warmup_noise": [-0.1, 1.5, nan], "max_new_tokens": [0], "total_iterations": [-1],
        "prompts_per_batch": [0], "group_size": [1], "temperature": [0.0, nan, inf], "learning_rate": [0.0, nan, inf],
        "update_epochs": [0], "num_minibatches": [0, 3], "clip_low": [0.0, 1.0, nan], "clip_high": [0.0, nan, inf],
        "gbpo_temperature": [0.0, nan, inf], "kl_coef": [-0.1, nan, inf], "ent_coef": [-0.1, nan, inf],
        "max_grad_norm": [0.0, nan, inf], "eval_every": [0], "eval_k": [0],
    },
    brrl_tabular: {
        "seed": [-1, 2**32], "iterations": [0], "gamma": [0.0, 1.0, nan], "eps": [(1.5,), (0.0,), (0.2, nan)],
        "asym_bounds": [((1.2, 1.5),), ((0.5, nan),), ((0.5, inf),), ((-0.1, 1.5),)], "cem_alpha": [(0.0,), (1.0,), (nan,)],
    },
}
RUNTIME = {"batch_size", "minibatch_size", "num_iterations"}  # computed by the scripts: not flags at all


def numeric_fields(script) -> set[str]:
    return {f.name for f in dataclasses.fields(script.Args) if re.search(r"\b(int|float)\b", str(f.type)) and f.name not in RUNTIME}


@pytest.mark.parametrize("script", SCRIPTS, ids=name)
def test_every_numeric_flag_has_a_range_and_the_defaults_pass(script):
    assert numeric_fields(script) == set(OUT_OF_RANGE[script])
    script.check_args(script.Args())  # the defaults are in range


@pytest.mark.parametrize("script, field, value", [(s, f, v) for s in SCRIPTS for f, values in OUT_OF_RANGE[s].items() for v in values],
                         ids=lambda x: name(x) or str(x))
def test_check_args_rejects_every_out_of_range_number_in_one_line_naming_the_flag(script, field, value):
    message = fails(script.check_args, dataclasses.replace(script.Args(), **{field: value}))
    assert f"--{field.replace('_', '-')}" in message


@pytest.mark.parametrize("script", ENV_SCRIPTS, ids=name)
def test_the_computed_sizes_are_not_flags(script):
    with pytest.raises(SystemExit):  # tyro: unrecognized option (a value would be overwritten anyway)
        tyro.cli(script.Args, args=["--batch-size", "3"])
    assert tyro.cli(script.Args, args=[]).batch_size == 0


# ---------------------------------------------------------------- case 1: a minibatch of one sample


@pytest.mark.parametrize("script", ENV_SCRIPTS, ids=name)
def test_a_minibatch_of_one_sample_is_rejected(script):
    args = script.Args(num_envs=1, num_steps=8, num_minibatches=8, total_timesteps=16, update_epochs=1)
    assert fails(script.check_args, args) == (
        "error: a minibatch needs at least 2 samples (advantages are normalised by their std): the batch of 8 "
        "in --num-minibatches 8 gives 1")


def test_cli_a_minibatch_of_one_sample_is_one_line_and_exit_1(tmp_path):
    code, lines = cli("bpo_continuous.py", "--env-id", "Pendulum-v1", "--num-steps", "8", "--num-minibatches", "8",
                      "--total-timesteps", "16", "--update-epochs", "1", cwd=tmp_path)
    assert code == 1 and lines == ["error: a minibatch needs at least 2 samples (advantages are normalised by their std): "
                                   "the batch of 8 in --num-minibatches 8 gives 1"]
    assert not (tmp_path / "runs").exists()


# ---------------------------------------------------------------- case 2: seeds and threads out of range


@pytest.mark.parametrize("script", ENV_SCRIPTS + [gbpo_llm], ids=name)
@pytest.mark.parametrize("overrides, message", [
    (dict(seed=-1), "error: --seed must lie in [0, 2**32 - 1] (NumPy's seed range), got -1"),
    (dict(seed=2**32), "error: --seed must lie in [0, 2**32 - 1] (NumPy's seed range), got 4294967296"),
    (dict(torch_threads=0), "error: --torch-threads must be at least 1, got 0"),
], ids=["seed-1", "seed2**32", "threads0"])
def test_seeds_and_threads_out_of_range_stop_before_anything_starts(script, overrides, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(gbpo_llm, "supervised_warmup", lambda *a: pytest.fail("the warm-up started"))
    extra = dict(cache_dir=str(tmp_path / "cache")) if script is gbpo_llm else {}
    assert fails(script.main, script.Args(**overrides, **extra)) == message
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("script, flags, message", [
    ("ppo_continuous.py", ["--seed", "-1"], "error: --seed must lie in [0, 2**32 - 1] (NumPy's seed range), got -1"),
    ("bpo_atari.py", ["--seed", "4294967296"], "error: --seed must lie in [0, 2**32 - 1] (NumPy's seed range), got 4294967296"),
    ("gbpo_llm.py", ["--torch-threads", "0"], "error: --torch-threads must be at least 1, got 0"),
    ("brrl_tabular.py", ["--seed", "-1"], "error: --seed must lie in [0, 2**32 - 1] (NumPy's seed range), got -1"),
])
def test_cli_seeds_and_threads_out_of_range_are_one_line_and_exit_1(script, flags, message, tmp_path):
    code, lines = cli(script, *flags, cwd=tmp_path)
    assert code == 1 and lines == [message]


# ---------------------------------------------------------------- case 3: folders that cannot be written


def deny_writes_in(monkeypatch, folder: Path):
    """Make `folder` unwritable as far as the scripts can tell (the tests may run as root, whom chmod does not stop)."""
    real = tempfile.TemporaryFile

    def temporary_file(*args, dir=None, **kwargs):
        if dir is not None and Path(dir).resolve() == folder.resolve():
            raise PermissionError(13, "Permission denied", str(dir))
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "TemporaryFile", temporary_file)


@pytest.mark.parametrize("script", ENV_SCRIPTS, ids=name)
def test_an_unwritable_runs_folder_stops_before_training(script, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(script, "collect_rollout", lambda *a: pytest.fail("training started"))
    (tmp_path / "runs").mkdir()
    deny_writes_in(monkeypatch, tmp_path / "runs")
    assert fails(script.main, script.Args(**TINY[script])) == f"error: cannot write to {tmp_path / 'runs'}: Permission denied"
    (tmp_path / "runs").rmdir()
    (tmp_path / "runs").write_text("a file where the folder should be")
    assert fails(script.main, script.Args(**TINY[script])).startswith(f"error: cannot write to {tmp_path / 'runs'}: ")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs POSIX permissions that bind (not root)")
def test_cli_an_unwritable_working_directory_is_one_line_and_exit_1(tmp_path):
    tmp_path.chmod(0o555)
    try:
        code, lines = cli("ppo_continuous.py", "--num-steps", "256", "--num-minibatches", "2", "--total-timesteps", "512",
                          cwd=tmp_path)
    finally:
        tmp_path.chmod(0o755)
    assert code == 1 and lines[-1] == f"error: cannot write to {tmp_path / 'runs'}: Permission denied"


def hand_made_checkpoint(script, folder: Path, iterations_left: int = 0) -> Path:
    """A --save-model checkpoint of a tiny run of 2 iterations, saved with `iterations_left` of them still to train
    (0: its budget is spent)."""
    args = script.Args(**TINY[script])
    args.batch_size = args.num_envs * args.num_steps
    args.minibatch_size, args.num_iterations = args.batch_size // args.num_minibatches, args.total_timesteps // args.batch_size
    iteration = args.num_iterations - iterations_left
    path = folder / f"{script.__name__}.cleanrl_model"
    folder.mkdir(parents=True, exist_ok=True)
    if script in ATARI:
        envs = script.make_envs(args.env_id, args.num_envs)
        agent = script.Agent(envs)
        script.save_checkpoint(path, agent, args, torch.optim.Adam(agent.parameters()), iteration, iteration * args.batch_size)
    else:
        envs = script.make_envs(args.env_id, args.num_envs, args.gamma)
        agent = script.Agent(envs)
        script.save_checkpoint(path, agent, envs, args, torch.optim.Adam(agent.parameters()), iteration,
                               iteration * args.batch_size)
    envs.close()
    return path


@pytest.mark.parametrize("script", ENV_SCRIPTS, ids=name)
def test_resume_into_an_unwritable_folder_stops_before_training(script, tmp_path, monkeypatch):
    path = hand_made_checkpoint(script, tmp_path / "runs" / "cut", iterations_left=1)
    deny_writes_in(monkeypatch, path.parent)
    monkeypatch.setattr(script, "collect_rollout", lambda *a: pytest.fail("training started"))
    assert fails(script.main, script.Args(resume=str(path), progress=False)) == (
        f"error: cannot write to {path.parent}: Permission denied")


@pytest.mark.parametrize("script", ENV_SCRIPTS, ids=name)
def test_resuming_a_finished_run_says_so_and_touches_nothing(script, tmp_path, monkeypatch, capsys):
    path = hand_made_checkpoint(script, tmp_path / "runs" / "done")
    before = {p: p.stat().st_mtime_ns for p in path.parent.iterdir()}
    monkeypatch.setattr(script, "make_envs", lambda *a, **k: pytest.fail("envs made for a finished run"))
    assert script.main(script.Args(resume=str(path), progress=False)) is None
    total = TINY[script]["total_timesteps"]
    assert capsys.readouterr().out.strip().splitlines() == [
        f"{path} is a finished run ({total} of {total} steps); nothing to resume. Evaluate it with --eval-checkpoint {path}"]
    assert {p: p.stat().st_mtime_ns for p in path.parent.iterdir()} == before


@pytest.mark.parametrize("script", ENV_SCRIPTS, ids=name)
def test_a_checkpoint_that_cannot_be_written_is_one_line(script, tmp_path, monkeypatch):
    def disk_full(obj, f, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(torch, "save", disk_full)
    path, agent = tmp_path / "x.cleanrl_model", torch.nn.Linear(1, 1)
    state = (script.Args(), torch.optim.SGD(agent.parameters(), lr=0.1), 1, 1)
    message = fails(script.save_checkpoint, path, agent, *state) if script in ATARI else fails(
        script.save_checkpoint, path, agent, script.make_envs("Pendulum-v1", 1, 0.99), *state)
    assert message == f"error: cannot save the checkpoint {path}: [Errno 28] No space left on device"


def test_gbpo_llm_checks_runs_and_its_cache_folder_before_the_warmup(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(gbpo_llm, "supervised_warmup", lambda *a: pytest.fail("the warm-up started"))
    (tmp_path / "blocked").write_text("a file where the cache folder should be")
    cache = tmp_path / "blocked" / "cache"
    assert fails(gbpo_llm.main, gbpo_llm.Args(cache_dir=str(cache), **GBPO_TINY)).startswith(f"error: cannot write to {cache}: ")
    (tmp_path / "cache").mkdir()
    deny_writes_in(monkeypatch, tmp_path / "cache")
    assert fails(gbpo_llm.main, gbpo_llm.Args(cache_dir=str(tmp_path / "cache"), **GBPO_TINY)) == (
        f"error: cannot write to {tmp_path / 'cache'}: Permission denied")
    assert (tmp_path / "runs").is_dir()  # made by the runs above, which checked it first
    deny_writes_in(monkeypatch, tmp_path / "runs")
    assert fails(gbpo_llm.main, gbpo_llm.Args(cache_dir=str(tmp_path / "cache"), **GBPO_TINY)) == (
        f"error: cannot write to {tmp_path / 'runs'}: Permission denied")


def test_brrl_tabular_checks_its_output_folders_before_the_work(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(brrl_tabular, "run_env", lambda *a: pytest.fail("the work started"))
    (tmp_path / "blocked").write_text("a file where the folder should be")
    assert fails(brrl_tabular.main, brrl_tabular.Args(env_ids=("FrozenLake-v1",), out_dir="blocked/out")).startswith(
        f"error: cannot write to {tmp_path / 'blocked' / 'out'}: ")
    assert not (tmp_path / "runs").exists()  # nothing is created for a run that fails
    (tmp_path / "runs").mkdir()
    deny_writes_in(monkeypatch, tmp_path / "runs")
    assert fails(brrl_tabular.main, brrl_tabular.Args(env_ids=("FrozenLake-v1",))) == (
        f"error: cannot write to {tmp_path / 'runs'}: Permission denied")


# ---------------------------------------------------------------- case 4: names that become paths


@pytest.mark.parametrize("script", SCRIPTS, ids=name)
@pytest.mark.parametrize("exp_name", ["ablation/lam0", "../x", "a\\b", ""])
def test_an_exp_name_that_is_not_a_plain_name_is_rejected(script, exp_name):
    assert fails(script.check_args, script.Args(exp_name=exp_name)) == (
        f"error: --exp-name must be a plain name, without '/' or '\\', got '{exp_name}'")


def test_cli_an_exp_name_with_a_folder_is_one_line_and_exit_1_before_training(tmp_path):
    code, lines = cli("ppo_continuous.py", "--exp-name", "ablation/lam0", "--save-model", cwd=tmp_path)
    assert code == 1 and lines == ["error: --exp-name must be a plain name, without '/' or '\\', got 'ablation/lam0'"]
    assert not (tmp_path / "runs").exists()


# ---------------------------------------------------------------- case 5: environments that cannot be made


@pytest.mark.parametrize("script", ENV_SCRIPTS, ids=name)
@pytest.mark.parametrize("env_id, message", [
    ("Hopper-v3", "The mujoco v2 and v3 based environments have been moved to the gymnasium-robotics project"),  # ImportError
    ("somepkg:SomeEnv-v0", "No module named 'somepkg'"),  # ModuleNotFoundError
], ids=["removed-version", "missing-package"])
def test_any_failure_to_make_the_env_is_one_line(script, env_id, message):
    make = (lambda: script.make_envs(env_id, 1)) if script in ATARI else (lambda: script.make_envs(env_id, 1, 0.99))
    assert fails(make).startswith(f"error: cannot make environment '{env_id}': {message}")


@pytest.mark.parametrize("script", ENV_SCRIPTS + [brrl_tabular], ids=name)
def test_whatever_the_exception_type_the_env_failure_is_one_line(script, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("emulator crashed\nwith a second line")

    monkeypatch.setattr(gym, "make", broken)
    make = {brrl_tabular: lambda: brrl_tabular.build_model("FrozenLake-v1")}.get(
        script, (lambda: script.make_envs("X-v0", 1)) if script in ATARI else (lambda: script.make_envs("X-v0", 1, 0.99)))
    env_id = "FrozenLake-v1" if script is brrl_tabular else "X-v0"
    assert fails(make) == f"error: cannot make environment '{env_id}': emulator crashed"


@pytest.mark.parametrize("script, env_id", [("bpo_continuous.py", "Hopper-v3"), ("ppo_atari.py", "somepkg:SomeEnv-v0"),
                                            ("brrl_tabular.py", "somepkg:SomeEnv-v0")])
def test_cli_an_env_that_cannot_be_made_is_one_line_and_exit_1(script, env_id, tmp_path):
    code, lines = cli(script, "--env-ids" if script == "brrl_tabular.py" else "--env-id", env_id, cwd=tmp_path)
    assert code == 1 and lines[-1].startswith(f"error: cannot make environment '{env_id}': ")


# ---------------------------------------------------------------- case 6: a game that ends inside a reset


class ScriptedGame(gym.Env):
    """An ALE-like game of 2 lives, reward 1 per step: the first life is lost on step 3 and the game ends on step
    `end_at`: 3 is an ordinary step, 4 the no-op EpisodicLife takes at reset, 5 (with FireReset) the FIRE after it."""

    observation_space = gym.spaces.Box(0, 255, (4, 84, 84), np.uint8)
    action_space = gym.spaces.Discrete(4)

    def __init__(self, end_at: int):
        self.end_at, self.games_over, self.total_steps, self.ale = end_at, 0, 0, self  # EpisodicLife reads ale.lives()

    def lives(self):
        return self.n_lives

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t, self.n_lives = 0, 2
        return np.zeros((4, 84, 84), np.uint8), {}

    def step(self, action):
        self.t, self.total_steps = self.t + 1, self.total_steps + 1
        assert self.total_steps < 2000, "the game keeps running: finished games are not being reported"
        if self.t == 3:
            self.n_lives = 1
        over = self.t >= self.end_at
        if over:
            self.n_lives, self.games_over = 0, self.games_over + 1
        return np.zeros((4, 84, 84), np.uint8), 1.0, over, False, {}


def scripted_envs(script, end_at, fire, num_envs=2):
    def make():
        env = script.EpisodicLife(gym.wrappers.RecordEpisodeStatistics(ScriptedGame(end_at)))
        return script.FireReset(env) if fire else env

    return gym.vector.SyncVectorEnv([make] * num_envs, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)


class ZeroAgent(torch.nn.Module):
    def __init__(self, with_median):
        super().__init__()
        self.with_median = with_median

    def get_value(self, x):
        return torch.zeros(x.shape[0])

    def get_action_and_value(self, x, action=None):
        n = x.shape[0]
        outputs = (torch.zeros(n, dtype=torch.long), torch.zeros(n), torch.zeros(n), torch.zeros(n))
        return outputs + (torch.zeros(n),) if self.with_median else outputs


@pytest.mark.parametrize("script", ATARI, ids=name)
@pytest.mark.parametrize("end_at, fire", [(3, False), (4, False), (5, True)], ids=["in-a-step", "in-the-no-op", "in-fire"])
def test_every_finished_game_is_reported_exactly_once_whatever_the_reset_does(script, end_at, fire):
    envs = scripted_envs(script, end_at, fire)
    num_steps = 20
    storage = {"obs": torch.zeros((num_steps, 2, 4, 84, 84), dtype=torch.uint8), "actions": torch.zeros((num_steps, 2), dtype=torch.long),
               **{k: torch.zeros((num_steps, 2)) for k in ("logprobs", "rewards", "dones", "values")}}
    next_obs, _ = envs.reset(seed=0)
    episodes = []
    script.collect_rollout(envs, ZeroAgent(script is bpo_atari), storage, torch.as_tensor(next_obs), torch.zeros(2), 0,
                           script.Args(num_envs=2, num_steps=num_steps), "cpu", episodes)
    games = sum(env.unwrapped.games_over for env in envs.envs)
    assert games >= 6 and len(episodes) == games
    assert all(r == length == end_at for _, r, length in episodes)  # the whole game: its no-op and FIRE steps included


@pytest.mark.parametrize("script", ATARI, ids=name)
def test_evaluation_finishes_when_every_game_ends_inside_a_reset(script, tmp_path, monkeypatch):
    envs = scripted_envs(script, end_at=4, fire=False, num_envs=1)
    torch.save({"script": script.__name__, "args": {"env_id": "Scripted-v0", "repeat_action_probability": None},
                "model": script.Agent(envs).state_dict()}, tmp_path / "scripted.cleanrl_model")
    monkeypatch.setattr(script, "make_envs", lambda *args, **kwargs: envs)
    returns = script.evaluate(script.Args(eval_checkpoint=str(tmp_path / "scripted.cleanrl_model"), eval_episodes=3))
    assert returns.tolist() == [4.0, 4.0, 4.0]


# ---------------------------------------------------------------- Ctrl-C


@pytest.mark.parametrize("script", ENV_SCRIPTS, ids=name)
@pytest.mark.parametrize("save_model", [True, False], ids=["saving", "not-saving"])
def test_ctrl_c_ends_in_one_line_saying_where_the_last_checkpoint_is(script, save_model, tmp_path, monkeypatch, capsys,
                                                                     sigint_handler):
    monkeypatch.chdir(tmp_path)
    calls, gae = [], script.compute_gae

    def ctrl_c_in_the_second_iteration(*args):
        calls.append(1)
        if len(calls) == 2:
            os.kill(os.getpid(), signal.SIGINT)
        return gae(*args)

    monkeypatch.setattr(script, "compute_gae", ctrl_c_in_the_second_iteration)
    with pytest.raises(SystemExit) as exc:
        script.main(script.Args(save_model=save_model, **TINY[script]))
    assert exc.value.code == 130
    (line,) = capsys.readouterr().err.strip().splitlines()
    if save_model:
        (path,) = Path("runs").glob(f"*/{script.__name__}.cleanrl_model")
        assert torch.load(path, weights_only=False)["iteration"] == 1
        assert line == (f"interrupted: the last checkpoint is {path}; continue the run with "
                        f"python {script.__name__}.py --resume {path}")
    else:
        assert line == "interrupted before any checkpoint was saved (--save-model saves one every 10% of training)"


# ---------------------------------------------------------------- ignored flags are said, not silently dropped


@pytest.mark.parametrize("script", ENV_SCRIPTS, ids=name)
def test_resume_says_which_flags_it_ignores(script, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    path = hand_made_checkpoint(script, tmp_path / "runs" / "cut")
    script.main(script.Args(resume=str(path), seed=7, total_timesteps=5000, anneal_lr=False, torch_threads=2, progress=False))
    err = capsys.readouterr().err.strip().splitlines()
    assert "note: --resume continues with the saved run's arguments; ignoring --seed --total-timesteps --no-anneal-lr" in err
    capsys.readouterr()
    script.main(script.Args(resume=str(path), torch_threads=2, progress=False))  # how to run it only: nothing to say
    assert "note:" not in capsys.readouterr().err


@pytest.mark.parametrize("script", [ppo_continuous, bpo_continuous], ids=name)
def test_eval_checkpoint_says_that_it_ignores_env_id(script, tmp_path, capsys):
    path = hand_made_checkpoint(script, tmp_path)
    returns = script.evaluate(script.Args(eval_checkpoint=str(path), eval_episodes=1, env_id="Walker2d-v4"))
    captured = capsys.readouterr()
    assert "note: --eval-checkpoint uses the saved run's arguments; ignoring --env-id" in captured.err.splitlines()
    assert "eval Hopper-v4" in captured.out and len(returns) == 1


@pytest.mark.parametrize("script", ENV_SCRIPTS, ids=name)
def test_a_flag_given_with_its_default_value_is_reported_too(script, monkeypatch):
    monkeypatch.setattr(sys, "argv", [f"{script.__name__}.py", "--eval-checkpoint", "x", "--env-id", script.Args().env_id,
                                      "--no-anneal-lr", "--seed=1"])
    assert script.given_flags(script.Args(eval_checkpoint="x", anneal_lr=False), script.EVAL_FLAGS) == ["--env-id", "--no-anneal-lr"]


@pytest.mark.parametrize("script", ATARI, ids=name)
def test_atari_eval_flags_and_resume_flags(script):
    assert script.given_flags(script.Args(env_id="ALE/Pong-v5", eval_episodes=3, seed=4), script.EVAL_FLAGS) == ["--env-id"]
    assert script.given_flags(script.Args(cuda=False, clip_coef=0.2, progress=False), script.HOW_TO_RUN) == ["--clip-coef"]


def test_gbpo_llm_says_which_flags_a_run_does_not_use(tmp_path):
    args = gbpo_llm.Args(model_name_or_path=str(tmp_path), d_model=32, warmup_steps=5, loss="grpo", gbpo_temperature=0.5)
    assert gbpo_llm.ignored_flags(args) == ["--d-model", "--warmup-steps", "--gbpo-temperature"]
    assert gbpo_llm.ignored_flags(gbpo_llm.Args(exact_ties=True, gbpo_temperature=0.5)) == ["--gbpo-temperature"]
    assert gbpo_llm.ignored_flags(gbpo_llm.Args(d_model=32)) == []
    # the exact target is the default (study gbpo_llm_ties): it has no temperature; GRPO has no target at all
    assert gbpo_llm.Args().exact_ties and gbpo_llm.ignored_flags(gbpo_llm.Args(gbpo_temperature=0.5)) == ["--gbpo-temperature"]
    assert gbpo_llm.ignored_flags(gbpo_llm.Args(exact_ties=False, gbpo_temperature=0.5)) == []
    assert gbpo_llm.ignored_flags(gbpo_llm.Args(loss="grpo", exact_ties=False)) == ["--exact-ties"]
