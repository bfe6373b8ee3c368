"""The side-by-side speed runner (benchmarks/speed_vs_cleanrl.py) with stand-in scripts: no training runs here."""

from __future__ import annotations

import json
import sys

import pytest

from benchmarks import speed_vs_cleanrl as speed

# A stand-in for CleanRL's script: fails unless the runner gave it the gymnasium 1.x argument, its flags and the threads.
FAKE_CLEANRL = '''import os, sys
import gymnasium as gym
source = open(__file__).read()
assert "lambda obs: np.clip(obs, -10, 10), env.observation_space)" in source, "not patched"
assert "import " + "ale_py" not in source, "patched for Atari"
assert sys.argv[1:] == ["--env-id", "Hopper-v4", "--total-timesteps", "64", "--no-cuda"], sys.argv
assert os.environ["OMP_NUM_THREADS"] == "2"
def make_env():
    env = gym.wrappers.TransformObservation(env, lambda obs: np.clip(obs, -10, 10))
'''
FAKE_OURS = '''import os, sys
assert sys.argv[1:] == ["--env-id", "Hopper-v4", "--total-timesteps", "64", "--torch-threads", "2", "--no-progress"], sys.argv
assert os.environ["OMP_NUM_THREADS"] == "2"
'''


@pytest.fixture
def fakes(tmp_path, monkeypatch):
    (tmp_path / "ours.py").write_text(FAKE_OURS)
    (tmp_path / "cleanrl").mkdir()
    (tmp_path / "cleanrl" / "ppo_continuous_action.py").write_text(FAKE_CLEANRL)
    monkeypatch.setattr(speed, "ROOT", tmp_path)
    monkeypatch.setattr(speed, "OUT", tmp_path / "results")
    return speed.Args(cleanrl_script=str(tmp_path / "cleanrl" / "ppo_continuous_action.py"), ours="ours.py",
                      total_timesteps=64, pairs=2, threads=2, cleanrl_commit="abc1234")


def test_runs_both_in_turn_and_writes_a_record_and_readme(fakes, capsys):
    speed.main(fakes)
    (path,) = (speed.OUT).glob("*.json")
    record = json.loads(path.read_text())
    assert len(record["runs"]["ours"]) == len(record["runs"]["cleanrl"]) == 2
    assert all(r["wall_s"] > 0 and r["cpu_s"] >= 0 for r in record["runs"]["ours"] + record["runs"]["cleanrl"])
    ratios = [c["wall_s"] / o["wall_s"] for o, c in zip(record["runs"]["ours"], record["runs"]["cleanrl"])]
    assert record["speed_ratios"] == [round(r, 3) for r in ratios]
    assert record["compat"] == ["gymnasium 1.x: TransformObservation needs the observation space (1×)"]
    assert record["threads"] == 2 and record["cleanrl_commit"] == "abc1234" and record["env_id"] == "Hopper-v4"
    out = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in out[:4]] == ["pair 1/2 ours", "pair 1/2 cleanrl", "pair 2/2 cleanrl", "pair 2/2 ours"]
    readme = (speed.OUT / "README.md").read_text()
    (row,) = [line for line in readme.splitlines() if line.startswith("| 20")]
    assert f"**{record['median_speed_ratio']:.2f}×**" in row and "(abc1234, " in row
    assert "TransformObservation needs the observation space" in readme


def test_a_second_record_of_the_same_minute_keeps_the_first(fakes, monkeypatch):
    fakes.pairs = 1
    monkeypatch.setattr(speed.datetime, "datetime", type("Frozen", (speed.datetime.datetime,), {
        "now": classmethod(lambda cls, tz=None: speed.datetime.datetime(2026, 11, 30, 7, 14, 5, tzinfo=tz))}))
    speed.main(fakes)
    speed.main(fakes)
    names = sorted(p.name for p in speed.OUT.glob("*.json"))
    assert names == ["2026-11-30_0714_ours_Hopper-v4.json", "2026-11-30_0714_ours_Hopper-v4_2.json"]
    rows = [line for line in (speed.OUT / "README.md").read_text().splitlines() if line.startswith("| 20")]
    assert len(rows) == 2


def test_an_unwritable_results_folder_stops_before_the_runs(fakes, tmp_path, capsys):
    speed.OUT.parent.mkdir(parents=True, exist_ok=True)
    speed.OUT.write_text("a file where the results folder goes")
    with pytest.raises(SystemExit) as exit_info:
        speed.main(fakes)
    assert str(exit_info.value).startswith(f"error: cannot write to {speed.OUT}: ")
    assert "pair 1" not in capsys.readouterr().out


@pytest.mark.parametrize("text", ["{broken", "[1]", '{"no": "date"}'], ids=["not-json", "a-list", "no-date"])
def test_a_broken_record_is_one_error_line_naming_it(fakes, text):
    speed.OUT.mkdir(parents=True)
    (speed.OUT / "broken.json").write_text(text)
    with pytest.raises(SystemExit) as exit_info:
        speed.main(speed.Args(report_only=True))
    assert str(exit_info.value).startswith(f"error: {speed.OUT / 'broken.json'} is not a record of this runner")


def test_atari_script_gets_the_ale_registration_and_renames(tmp_path):
    script = tmp_path / "ppo_atari.py"
    script.write_text("import os\nimport gymnasium as gym\nfrom cleanrl_utils.atari_wrappers import NoopResetEnv\n"
                      "env = gym.wrappers.GrayScaleObservation(env)\nenv = gym.wrappers.FrameStack(env, 4)\n")
    (tmp_path / "out").mkdir()
    copy, applied = speed.compat_copy(script, tmp_path / "out")
    text = copy.read_text()
    assert "import gymnasium as gym\nimport ale_py\ngym.register_envs(ale_py)\n" in text
    assert "gym.wrappers.GrayscaleObservation(env)" in text and "gym.wrappers.FrameStackObservation(env, 4)" in text
    assert len(applied) == 3


@pytest.mark.parametrize("change, message", [
    (dict(pairs=0), "error: --pairs must be at least 1, got 0"),
    (dict(threads=0), "error: --threads must be at least 1, got 0"),
    (dict(timeout=float("inf")), "error: --timeout must be positive and finite, got inf"),
    (dict(timeout=float("nan")), "error: --timeout must be positive and finite, got nan"),
    (dict(cleanrl_script=None), "error: --cleanrl-script is required (the path of CleanRL's script)"),
    (dict(cleanrl_script="/nonexistent/ppo.py"), "error: --cleanrl-script: no such file: /nonexistent/ppo.py"),
    (dict(ours="missing.py"), "error: --ours: no such script in "),
    (dict(cleanrl_python="/nonexistent/python"), "error: --cleanrl-python: no such interpreter: /nonexistent/python"),
])
def test_bad_flags_exit_with_one_error_line(fakes, change, message):
    for key, value in change.items():
        setattr(fakes, key, value)
    with pytest.raises(SystemExit) as exit_info:
        speed.main(fakes)
    assert str(exit_info.value).startswith(message) and "\n" not in str(exit_info.value)


def test_a_failing_script_is_one_error_line(fakes, tmp_path):
    (tmp_path / "ours.py").write_text("import sys\nsys.exit('error: boom')\n")
    with pytest.raises(SystemExit) as exit_info:
        speed.main(fakes)
    assert str(exit_info.value) == "error: ours.py failed (exit 1): error: boom"
    assert not list(speed.OUT.glob("*.json"))


def test_help_exits_cleanly():
    import subprocess
    out = subprocess.run([sys.executable, str(speed.Path(speed.__file__)), "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "--cleanrl-script" in out.stdout
