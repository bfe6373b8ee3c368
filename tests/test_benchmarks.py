"""The benchmark harness on a tiny study: runs, resumes, goes through submitit's local executor, reports."""

from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest
import torch

from benchmarks import report, run
from benchmarks.tb import read_scalars

TOY = "tests.toy_envs:StepCounter-v0"  # episodes of 3 and 5 steps, reward 1 per step: returns 3 and 5


@pytest.fixture
def tiny_study(tmp_path, monkeypatch):
    monkeypatch.setattr(run, "RESULTS", tmp_path)
    args = ("--num-steps", "64", "--num-minibatches", "2", "--update-epochs", "1")
    jobs = run.grid(["ppo_continuous", "bpo_continuous"], [TOY], [1], 256, args, {"bpo_continuous": "bpo"})
    monkeypatch.setitem(run.STUDIES, "tiny", jobs)
    return jobs


def test_runner_runs_each_job_once_and_restarts_cut_off_ones(tiny_study, capsys):
    cli = run.Cli(study="tiny", workers=2)
    run.main(cli)
    for job in tiny_study:
        record = json.loads((job.folder("tiny") / "done.json").read_text())
        assert record["job"]["env_id"] == TOY and record["raw_env_steps_per_s"] > 0
        assert len(record["raw_env_readings"]) == 2 and record["raw_env_steps_per_s"] == max(record["raw_env_readings"])
        assert record["command"].endswith(f"{job.script}.py --env-id {TOY} --seed 1 --total-timesteps 256 --no-progress "
                                          "--num-steps 64 --num-minibatches 2 --update-epochs 1")
    assert run.pending_jobs(cli) == []
    # A job cut off mid-run leaves a folder without done.json: only it is run again, from a clean folder.
    cut = tiny_study[1]
    (cut.folder("tiny") / "done.json").unlink()
    (cut.folder("tiny") / "stale.txt").write_text("left by a killed run")
    assert run.pending_jobs(cli) == [cut]
    capsys.readouterr()
    run.main(cli)
    assert "tiny: 1 of 2 jobs to run" in capsys.readouterr().out
    assert not (cut.folder("tiny") / "stale.txt").exists() and (cut.folder("tiny") / "done.json").exists()
    assert not (cut.folder("tiny") / run.UNFINISHED_MARKER).exists()  # only unfinished jobs carry the marker


def test_runner_resumes_a_cut_off_resumable_job_from_its_checkpoint(tmp_path, monkeypatch):
    monkeypatch.setattr(run, "RESULTS", tmp_path)
    args = ("--num-envs", "2", "--num-steps", "64", "--num-minibatches", "2", "--update-epochs", "1", "--save-model", "--no-cuda")
    (job,) = run.grid(["ppo_atari"], ["BreakoutNoFrameskip-v4"], [1], 512, args, resumable=True)
    monkeypatch.setitem(run.STUDIES, "tiny_atari", [job])
    monkeypatch.setattr(run, "commit", lambda: "first")
    run.main(run.Cli(study="tiny_atari", workers=1))
    # Make the finished job look cut off after its second checkpoint (step 256).
    folder = job.folder("tiny_atari")
    (folder / "done.json").unlink()
    (checkpoint_path,) = folder.glob("runs/*/ppo_atari.cleanrl_model")
    checkpoint = torch.load(checkpoint_path, weights_only=False)
    torch.save(checkpoint | {"iteration": 2, "global_step": 256}, checkpoint_path)
    monkeypatch.setattr(run, "commit", lambda: "second")  # the code changed between the two segments
    run.main(run.Cli(study="tiny_atari", workers=1))
    record = json.loads((folder / "done.json").read_text())
    assert record["segments"] == 2 and "--resume" not in record["command"]
    assert record["segment_commits"] == ["first", "second"] and record["commit"] == "second"
    log = (folder / "log.txt").read_text()
    assert log.count("done: 512 steps") == 2 and f"resuming {checkpoint_path.parent} at step 256" in log
    assert [step for step, _ in read_scalars(checkpoint_path.parent)["losses/value_loss"]] == [128, 256, 384, 512]


def git(repo, *args) -> str:
    """run git in a test's scratch repository (with an identity, so commits work anywhere) and return its output"""
    return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=repo,
                          check=True, capture_output=True, text=True).stdout.strip()


def test_unfinished_job_keeps_its_checkpoint_visible_to_git_and_a_finished_one_does_not(tmp_path):
    git(tmp_path, "init", "-q")
    shutil.copy(run.ROOT / ".gitignore", tmp_path / ".gitignore")  # the repository's own rules
    folder = tmp_path / "benchmarks" / "results" / "study" / "ppo_atari" / "Env" / "seed1"
    (folder / "runs" / "r").mkdir(parents=True)
    for name in ("ppo_atari.cleanrl_model", "events.out.tfevents.1"):
        (folder / "runs" / "r" / name).write_text("x")
    untracked = lambda: sorted(git(tmp_path, "ls-files", "--others", "--exclude-standard").split())  # noqa: E731
    results = "benchmarks/results/study/ppo_atari/Env/seed1"
    run.mark_unfinished(folder)
    assert untracked() == [".gitignore", f"{results}/.gitignore", f"{results}/runs/r/events.out.tfevents.1",
                           f"{results}/runs/r/ppo_atari.cleanrl_model"]
    (folder / run.UNFINISHED_MARKER).unlink()  # what run_job does once done.json is written
    assert untracked() == [".gitignore", f"{results}/runs/r/events.out.tfevents.1"]


def test_commit_is_dirty_for_changed_code_but_not_for_changed_results(tmp_path, monkeypatch):
    git(tmp_path, "init", "-q")
    log = tmp_path / "benchmarks" / "results" / "study" / "seed1" / "log.txt"
    log.parent.mkdir(parents=True)
    for path in (log, tmp_path / "ppo_atari.py"):
        path.write_text("a")
    git(tmp_path, "add", ".")
    git(tmp_path, "commit", "-q", "-m", "c")
    monkeypatch.setattr(run, "ROOT", tmp_path)
    head = git(tmp_path, "rev-parse", "--short", "HEAD")
    log.write_text("b")  # a resumed job's tracked log grows while another job starts
    assert run.commit() == head
    (tmp_path / "ppo_atari.py").write_text("b")
    assert run.commit() == head + "+dirty"


def test_done_paths_lists_only_finished_job_folders(tiny_study, capsys):
    tiny_study[1].folder("tiny").mkdir(parents=True)
    (tiny_study[1].folder("tiny") / "done.json").write_text("{}")
    run.main(run.Cli(study="tiny", done_paths=True))
    assert capsys.readouterr().out.split() == [str(tiny_study[1].folder("tiny"))]


def test_runner_through_submitit_local_executor(tiny_study):
    run.main(run.Cli(study="tiny", executor="submitit-local", only=("bpo",)))
    assert [run.is_done(job, "tiny") for job in tiny_study] == [False, True]


def test_only_selects_jobs_by_script_label_or_env_id(tmp_path, monkeypatch):
    monkeypatch.setattr(run, "RESULTS", tmp_path)  # nothing done yet
    pending = lambda *only: [(j.name, j.env_id) for j in run.pending_jobs(run.Cli(study="mujoco_1m", only=only))]  # noqa: E731
    assert pending("Humanoid-v4") == [(s, "Humanoid-v4") for _ in range(3) for s in ("ppo_continuous", "bpo_continuous")]
    assert pending("bpo_continuous") == [("bpo_continuous", e) for e in ("Hopper-v4", "Ant-v4", "Humanoid-v4") for _ in range(3)]
    assert pending("no-such-thing") == []


def test_report_writes_table_with_scores_and_curves(tiny_study):
    run.main(run.Cli(study="tiny", workers=2))
    report.main("tiny")
    text = (run.RESULTS / "tiny" / "README.md").read_text()
    rows = [line for line in text.splitlines() if line.startswith(f"| {TOY} |")]
    assert [row.split(" | ")[1] for row in rows] == ["ppo_continuous", "bpo"]
    for row in rows:
        score = float(row.split(" | ")[4].split(" ± ")[0])
        assert 3 <= score <= 5  # every episode returns 3 or 5
        assert row.split(" | ")[5].startswith("s1: ")  # the per-seed scores
        assert 0 <= float(row.split(" | ")[6]) < 1  # the mean approx KL per update
    assert (run.RESULTS / "tiny" / f"curves_{TOY.replace('/', '_')}.png").stat().st_size > 1000


def test_report_includes_the_borrowed_seeds_of_another_study(tiny_study, monkeypatch):
    run.main(run.Cli(study="tiny", workers=2))
    more_seeds = run.grid(["ppo_continuous"], [TOY], [2], 256, tiny_study[0].extra_args)
    monkeypatch.setitem(run.STUDIES, "more", more_seeds + run.grid(["ppo_continuous"], ["Hopper-v4"], [2], 256))
    monkeypatch.setitem(run.BORROWED, "more", (("tiny", "ppo_continuous"),))
    run.main(run.Cli(study="more", workers=1, only=(TOY,)))
    runs = report.load_runs("more")  # tiny's bpo runs and the unfinished Hopper job are not included
    assert sorted((r["name"], r["seed"]) for r in runs) == [("ppo_continuous", 1), ("ppo_continuous", 2)]
    report.main("more")
    text = (run.RESULTS / "more" / "README.md").read_text()
    (row,) = [line for line in text.splitlines() if line.startswith(f"| {TOY} |")]
    assert row.split(" | ")[3] == "2" and row.split(" | ")[5].startswith("s1: ")  # seeds 1 (borrowed) and 2
    assert "The finished `ppo_continuous` runs of study `tiny`" in text


def test_final_score_uses_the_last_tenth_of_training():
    returns = np.array([[100, 1.0], [850, 2.0], [900, 10.0], [1000, 20.0]])
    assert report.final_score(returns, 1000) == 15.0


def test_llm_jobs_pass_neither_env_id_nor_timesteps():
    job = next(j for j in run.STUDIES["gbpo_llm"] if j.name == "gbpo_eps0.3_ep10" and j.seed == 2)
    command = job.command()
    assert command[1].endswith("gbpo_llm.py") and "--env-id" not in command and "--total-timesteps" not in command
    assert command[2:] == ["--seed", "2", "--no-progress", "--reward", "majority", "--clip-low", "0.3", "--clip-high", "0.3",
                           "--update-epochs", "10", "--loss", "gbpo"]
    assert job.folder("gbpo_llm") == run.RESULTS / "gbpo_llm" / "gbpo_eps0.3_ep10" / "addition" / "seed2"


def test_accuracy_report_gives_final_and_peak_accuracy_over_seeds(tmp_path, monkeypatch):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    monkeypatch.setattr(run, "RESULTS", tmp_path)
    (tmp_path / "llm").mkdir()
    curve = lambda *values: np.array([(20 * i, v) for i, v in enumerate(values)])  # noqa: E731
    base = {"commit": "abc", "machine": "here"}
    runs = [base | {"name": "grpo_eps0.2_ep10", "accuracy": curve(0.5, 0.9, 0.7)},
            base | {"name": "grpo_eps0.2_ep10", "accuracy": curve(0.5, 0.8, 0.8)},
            base | {"name": "gbpo_eps0.2_ep10", "accuracy": curve(0.5, 0.6, 0.9)}]
    lines = report.accuracy_report("llm", runs, plt)
    rows = {line.split(" | ")[0][2:]: line.split(" | ")[1:] for line in lines if line.startswith("| g")}
    assert rows["grpo_eps0.2_ep10"] == ["2", "0.750 ± 0.050", "0.850 ± 0.050", "-0.100 |"]
    assert rows["gbpo_eps0.2_ep10"] == ["1", "0.900 ± 0.000", "0.900 ± 0.000", "+0.000 |"]
    assert "same warm-up policy (accuracy 0.500)" in "\n".join(lines)
    assert (tmp_path / "llm" / "curves_accuracy.png").stat().st_size > 1000


def test_suite_study_runs_all_ppo_jobs_first():
    import gymnasium as gym

    jobs = run.STUDIES["mujoco_suite_1m"]
    assert [job.name for job in jobs] == ["ppo_continuous"] * 33 + ["bpo_continuous"] * 33
    assert [(job.env_id, job.seed) for job in jobs[:33]] == [(job.env_id, job.seed) for job in jobs[33:]]
    assert all(job.total_timesteps == 1_000_000 and job.extra_args == ("--save-model",) and job.resumable for job in jobs)
    tasks = {job.env_id for job in jobs}
    assert len(tasks) == 11
    for env_id in tasks:  # every task exists in the installed gymnasium and mujoco (Pusher-v4 does not: mujoco >= 3)
        gym.make(env_id).close()
