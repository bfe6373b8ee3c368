"""Bad hyperparameters and bad --resume input in the four training scripts: one `error: ...` line each, before anything starts."""

from __future__ import annotations

import dataclasses

import pytest
import torch

import bpo_atari
import bpo_continuous
import ppo_atari
import ppo_continuous

SCRIPTS = [ppo_continuous, bpo_continuous, ppo_atari, bpo_atari]
COMMON_CASES = [
    (dict(clip_coef=1.5), "--clip-coef must lie in (0, 1), got 1.5"),
    (dict(clip_coef=0.0), "--clip-coef must lie in (0, 1), got 0.0"),
    (dict(num_minibatches=3), "does not divide into --num-minibatches 3"),
    (dict(total_timesteps=100), "--total-timesteps 100 is smaller than one batch ({batch} steps)"),
    (dict(learning_rate=-1.0), "--learning-rate must be positive"),
    (dict(gamma=1.5), "--gamma must lie in (0, 1]"),
]
CASES = (
    [(script, overrides, message) for script in SCRIPTS for overrides, message in COMMON_CASES]
    + [(script, dict(repeat_action_probability=1.5), "--repeat-action-probability must lie in [0, 1], got 1.5")
       for script in (ppo_atari, bpo_atari)]
    + [(script, overrides, message) for script in (bpo_continuous, bpo_atari) for overrides, message in
       [(dict(temperature=-0.1), "--temperature must be >= 0 and finite, got -0.1"),
        (dict(temperature=float("nan")), "--temperature must be >= 0 and finite, got nan"),
        (dict(temperature=float("inf")), "--temperature must be >= 0 and finite, got inf"),
        (dict(median_coef=-1.0), "--median-coef must be >= 0 and finite, got -1.0")]]
)


@pytest.mark.parametrize("script, overrides, message", CASES, ids=lambda x: getattr(x, "__name__", None))
def test_check_args_rejects_bad_hyperparameters(script, overrides, message):
    args = script.Args()
    with pytest.raises(SystemExit) as exc:
        script.check_args(dataclasses.replace(args, **overrides))
    assert str(exc.value).startswith("error: ") and message.format(batch=args.num_envs * args.num_steps) in str(exc.value)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda m: m.__name__)
def test_resume_rejects_missing_and_weights_only_checkpoints_and_eval_at_the_same_time(script, tmp_path):
    with pytest.raises(SystemExit, match=r"^error: checkpoint not found: .*nope.cleanrl_model$"):
        script.main(script.Args(resume=str(tmp_path / "nope.cleanrl_model")))
    with pytest.raises(SystemExit) as folder:  # the run's folder instead of the file in it
        script.main(script.Args(resume=str(tmp_path)))
    assert str(folder.value) == (f"error: {tmp_path} is a folder; give the checkpoint file, e.g. "
                                 f"runs/<run_name>/{script.__name__}.cleanrl_model")
    torch.save({"script": script.__name__, "args": {}, "model": {}}, tmp_path / "old.cleanrl_model")  # no training state
    with pytest.raises(SystemExit, match=r"^error: .*old.cleanrl_model holds weights only .*; it cannot be resumed$"):
        script.main(script.Args(resume=str(tmp_path / "old.cleanrl_model")))
    with pytest.raises(SystemExit, match=r"^error: --eval-checkpoint and --resume exclude each other$"):
        script.check_args(script.Args(resume="a", eval_checkpoint="b"))
