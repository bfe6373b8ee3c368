"""--capture-video (issue 22): env 0's real episodes on video, in training and evaluation, without changing the training.

Budgets are tiny; VideoHopper-v4 (tests/toy_envs.py) is Hopper-v4 with 96×64 frames and episodes cut at 10 steps.
Videos are read back with imageio's ffmpeg plugin (imageio and imageio-ffmpeg come with moviepy).
"""

from __future__ import annotations

import sys

import gymnasium as gym
import imageio
import numpy as np
import pytest
from gymnasium.envs.mujoco import mujoco_rendering

import bpo_atari
import bpo_continuous
import ppo_atari
import ppo_continuous
import tests.toy_envs  # noqa: F401  (registers VideoHopper-v4 and StepCounter-v0)
from benchmarks.tb import read_scalars
from tests.scripts import run_dir

CONTINUOUS = [ppo_continuous, bpo_continuous]
ATARI = [ppo_atari, bpo_atari]
CONTINUOUS_TINY = dict(env_id="VideoHopper-v4", num_steps=64, num_minibatches=2, update_epochs=1, total_timesteps=128,
                       progress=False)
ATARI_TINY = dict(num_envs=1, num_steps=128, num_minibatches=2, update_epochs=1, total_timesteps=384, cuda=False,
                  progress=False)
name = lambda m: getattr(m, "__name__", None)  # noqa: E731  (test ids)


def video(path) -> tuple[int, tuple[int, int]]:
    """(frame count, (width, height)) of a video file, read back with imageio."""
    reader = imageio.get_reader(path, "ffmpeg")
    frames, size = reader.count_frames(), reader.get_meta_data()["size"]
    reader.close()
    return frames, size


def train(script, cwd, monkeypatch, **kwargs) -> dict:
    """Train in `cwd`; the logged losses and episodes of the run."""
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    script.main(script.Args(seed=3, **kwargs))
    scalars = read_scalars(run_dir(cwd))
    return {tag: [v for _, v in scalars[tag]] for tag in scalars if tag.startswith(("losses/", "bpo/", "charts/episodic"))}


@pytest.mark.parametrize("script", CONTINUOUS, ids=name)
def test_mujoco_training_records_env_0s_real_episodes_and_changes_no_loss(script, tmp_path, monkeypatch):
    plain = train(script, tmp_path / "plain", monkeypatch, **CONTINUOUS_TINY)
    recorded = train(script, tmp_path / "recorded", monkeypatch, capture_video=True, **CONTINUOUS_TINY)
    assert recorded == plain  # same seed: the same losses, episodes and returns with and without recording

    (folder,) = (tmp_path / "recorded" / "videos").iterdir()
    assert folder.name == run_dir(tmp_path / "recorded").name  # CleanRL's videos/{run_name}/
    # gymnasium's default trigger over 13 episodes (12 whole, the last cut by the end of training): 0, 1 and 8
    assert sorted(p.name for p in folder.iterdir()) == [f"rl-video-episode-{i}.mp4" for i in (0, 1, 8)]
    lengths = recorded["charts/episodic_length"]
    for i in (0, 1, 8):
        assert video(folder / f"rl-video-episode-{i}.mp4") == (lengths[i] + 1, (96, 64))  # the reset frame and one per step
    assert not (tmp_path / "plain" / "videos").exists()


def test_only_env_0_records(tmp_path):
    envs = ppo_continuous.make_envs("VideoHopper-v4", 2, 0.99, video_dir=tmp_path / "v")
    wrappers = [[type(e).__name__ for e in iter_wrappers(env)] for env in envs.envs]
    assert "RecordVideo" in wrappers[0] and "RecordVideo" not in wrappers[1]
    # right on gym.make's env, below every wrapper of the script: the episode as it is played
    assert wrappers[0][wrappers[0].index("RecordVideo") + 1:] == ["TimeLimit", "OrderEnforcing", "PassiveEnvChecker"]
    envs.close()


def iter_wrappers(env):
    while isinstance(env, gym.Wrapper):
        yield env
        env = env.env


@pytest.mark.parametrize("script", ATARI, ids=name)
def test_atari_training_records_whole_games_in_colour_and_changes_no_loss(script, tmp_path, monkeypatch):
    plain = train(script, tmp_path / "plain", monkeypatch, **ATARI_TINY)
    recorded = train(script, tmp_path / "recorded", monkeypatch, capture_video=True, **ATARI_TINY)
    assert recorded == plain  # same seed: the same losses and logged (unclipped, whole-game) returns

    (folder,) = (tmp_path / "recorded" / "videos").iterdir()
    assert folder.name == run_dir(tmp_path / "recorded").name
    assert {p.name for p in folder.iterdir()} == {"rl-video-episode-0.mp4", "rl-video-episode-1.mp4"}  # game 1 unfinished
    frames, size = video(folder / "rl-video-episode-0.mp4")
    assert size == (160, 210)  # the emulator's colour screen, not the learner's 84×84 grey frames
    # every emulator frame of the whole first game: the reset frame, 1-30 no-ops, 4 frames per agent step (the
    # last step may stop early); one life's worth would be a fraction of this
    length = recorded["charts/episodic_length"][0]
    assert 4 * length - 3 + 1 <= frames - 1 <= 4 * length + 30


@pytest.mark.parametrize("script", CONTINUOUS, ids=name)
def test_mujoco_evaluation_records_one_video_per_episode(script, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    script.main(script.Args(seed=1, save_model=True, **CONTINUOUS_TINY))
    (checkpoint_path,) = (tmp_path / "runs").glob(f"*/{script.__name__}.cleanrl_model")
    returns = script.evaluate(script.Args(eval_checkpoint=str(checkpoint_path), eval_episodes=3, capture_video=True))
    folder = tmp_path / "videos" / f"{checkpoint_path.parent.name}-eval"  # CleanRL's videos/{run_name}-eval/
    assert sorted(p.name for p in folder.iterdir()) == [f"rl-video-episode-{i}.mp4" for i in range(3)]
    for i in range(3):
        assert video(folder / f"rl-video-episode-{i}.mp4") == (11, (96, 64))  # 10 steps (the time limit) and the reset
    captured = capsys.readouterr()
    assert f"over 3 episodes; videos in videos/{folder.name}" in captured.out and "ignoring" not in captured.err
    # recording changes no evaluation return
    assert np.array_equal(returns, script.evaluate(script.Args(eval_checkpoint=str(checkpoint_path), eval_episodes=3)))


@pytest.mark.parametrize("script", ATARI, ids=name)
def test_atari_evaluation_records_one_video_per_game(script, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    script.main(script.Args(seed=1, save_model=True, **(ATARI_TINY | dict(total_timesteps=128))))
    (checkpoint_path,) = (tmp_path / "runs").glob(f"*/{script.__name__}.cleanrl_model")
    script.evaluate(script.Args(eval_checkpoint=str(checkpoint_path), eval_episodes=2, capture_video=True, seed=5))
    folder = tmp_path / "videos" / f"{checkpoint_path.parent.name}-eval"
    assert sorted(p.name for p in folder.iterdir()) == ["rl-video-episode-0.mp4", "rl-video-episode-1.mp4"]
    for i in range(2):
        frames, size = video(folder / f"rl-video-episode-{i}.mp4")
        assert size == (160, 210) and frames > 100  # whole games of five lives, not the start of a third game


# ---------------------------------------------------------------- what recording needs, one line each


@pytest.mark.parametrize("script", CONTINUOUS + ATARI, ids=name)
def test_capture_video_without_moviepy_names_the_extra(script, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "moviepy", None)  # `import moviepy` raises ImportError
    tiny = CONTINUOUS_TINY if script in CONTINUOUS else ATARI_TINY
    with pytest.raises(SystemExit) as exc:
        script.main(script.Args(capture_video=True, **tiny))
    assert exc.value.code == 'error: --capture-video needs moviepy: pip install "brrl[video]"'


def test_capture_video_needs_an_environment_that_draws_frames(tmp_path):
    with pytest.raises(SystemExit) as exc:
        ppo_continuous.make_envs("StepCounter-v0", 1, 0.99, video_dir=tmp_path)
    assert exc.value.code == "error: --capture-video needs frames, but StepCounter-v0 has no rgb_array render mode (it has: none)"


def test_mujoco_gl_is_chosen_egl_then_osmesa_and_a_backend_that_fails_names_what_to_install(tmp_path, monkeypatch):
    monkeypatch.delenv("MUJOCO_GL", raising=False)
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setattr(ppo_continuous.ctypes.util, "find_library", {"EGL": "libEGL.so.1", "OSMesa": "libOSMesa.so.8"}.get)
    ppo_continuous.choose_mujoco_gl()
    assert ppo_continuous.os.environ["MUJOCO_GL"] == "egl"

    monkeypatch.delenv("MUJOCO_GL")
    monkeypatch.setattr(ppo_continuous.ctypes.util, "find_library", {"OSMesa": "libOSMesa.so.8"}.get)  # no EGL
    ppo_continuous.choose_mujoco_gl()
    assert ppo_continuous.os.environ["MUJOCO_GL"] == "osmesa"

    def no_osmesa(width, height):  # what a machine without the library answers (not imported for real: it would
        raise ImportError("libOSMesa.so.8: cannot open shared object file")  # fix PyOpenGL's platform for the process)

    monkeypatch.setitem(mujoco_rendering._ALL_RENDERERS, "osmesa", no_osmesa)
    with pytest.raises(SystemExit) as exc:
        ppo_continuous.make_envs("VideoHopper-v4", 1, 0.99, video_dir=tmp_path)
    assert exc.value.code.startswith("error: --capture-video cannot render VideoHopper-v4 off-screen (MUJOCO_GL=osmesa: "
                                     "libOSMesa.so.8: cannot open shared object file); install EGL")
    assert "\n" not in exc.value.code

    monkeypatch.setenv("MUJOCO_GL", "egl")  # the user's choice is kept
    monkeypatch.setattr(ppo_continuous.ctypes.util, "find_library", {"OSMesa": "libOSMesa.so.8"}.get)
    ppo_continuous.choose_mujoco_gl()
    assert ppo_continuous.os.environ["MUJOCO_GL"] == "egl"
