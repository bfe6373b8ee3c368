"""Side-by-side speed of this project's PPO scripts and CleanRL's (issue 18): whole processes timed in turn.

    python benchmarks/speed_vs_cleanrl.py --cleanrl-script ~/cleanrl/cleanrl/ppo_continuous_action.py
    python benchmarks/speed_vs_cleanrl.py --cleanrl-script ~/cleanrl/cleanrl/ppo_atari.py --ours ppo_atari.py \\
        --env-id BreakoutNoFrameskip-v4 --total-timesteps 16384
    python benchmarks/speed_vs_cleanrl.py --report-only       # rewrite the README from the records kept

CleanRL's script is the user's copy (from github.com/vwxyzjn/cleanrl at a commit they name with --cleanrl-commit);
its code is never committed here. Both scripts run at their own defaults (CleanRL's), on the same env and number of
steps, with the same torch thread count (OMP_NUM_THREADS and MKL_NUM_THREADS for both, and --torch-threads for ours),
each in a fresh scratch folder, in turn: pair i runs ours then CleanRL's when i is even, the reverse when odd, so a
drift in the machine's speed falls on both. Speed ratio of a pair: CleanRL's wall time / ours (> 1: ours is faster).

CleanRL's scripts are written for gymnasium 0.29; this runner applies the few renames gymnasium 1.x needs to a
scratch copy (COMPAT below, each listed in the record), which change no arithmetic of the training loop.
--cleanrl-python names the interpreter (environment) to run it in (default: this one, whose gymnasium and MuJoCo
are then the same for both scripts).

Each measurement is one JSON record in benchmarks/results/speed_vs_cleanrl/ (commit, machine, threads, commands,
per-run wall and CPU times, the 1-minute load average before each run), and README.md there lists them all.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import tyro

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.run import ROOT, RESULTS, commit, machine  # noqa: E402

OUT = RESULTS / "speed_vs_cleanrl"

# (pattern, replacement, why): gymnasium 1.x renames, applied to CleanRL's scratch copy where the pattern occurs
# (the last one only to its Atari script).
COMPAT = (
    (r"gym\.wrappers\.TransformObservation\(env, (lambda obs: [^\n]*?)\)\n",
     r"gym.wrappers.TransformObservation(env, \1, env.observation_space)\n",
     "gymnasium 1.x: TransformObservation needs the observation space"),
    (r"gym\.wrappers\.GrayScaleObservation\(", "gym.wrappers.GrayscaleObservation(", "gymnasium 1.x: GrayScaleObservation renamed"),
    (r"gym\.wrappers\.FrameStack\(", "gym.wrappers.FrameStackObservation(", "gymnasium 1.x: FrameStack renamed"),
    (r"\nimport gymnasium as gym\n(?=(?s:.*)atari_wrappers)", "\nimport gymnasium as gym\nimport ale_py\ngym.register_envs(ale_py)\n",
     "gymnasium 1.x: ALE ids are registered by ale_py"),
)


@dataclass
class Args:
    cleanrl_script: str | None = None
    """path of CleanRL's script (ppo_continuous_action.py or ppo_atari.py in its repository's cleanrl/ folder)"""
    cleanrl_commit: str = "unknown"
    """the CleanRL commit the script comes from, recorded with the result"""
    cleanrl_python: str = sys.executable
    """the Python interpreter (environment) CleanRL's script runs in"""
    ours: str = "ppo_continuous.py"
    """this project's script, relative to the repository root"""
    env_id: str = "Hopper-v4"
    total_timesteps: int = 40_960
    pairs: int = 3
    """runs of each script, in turn"""
    threads: int = 1
    """torch / OpenMP threads for both"""
    timeout: float = 3600.0
    """seconds one run may take"""
    report_only: bool = False
    """only rewrite README.md from the records in benchmarks/results/speed_vs_cleanrl/"""


def check_args(args: Args) -> None:
    """Exit with one `error:` line for a bad flag (before anything runs)."""
    problems = [
        (args.pairs < 1, f"--pairs must be at least 1, got {args.pairs}"),
        (args.threads < 1, f"--threads must be at least 1, got {args.threads}"),
        (args.total_timesteps < 1, f"--total-timesteps must be at least 1, got {args.total_timesteps}"),
        (not 0 < args.timeout < float("inf"), f"--timeout must be positive and finite, got {args.timeout}"),
        (args.cleanrl_script is None, "--cleanrl-script is required (the path of CleanRL's script)"),
        (args.cleanrl_script is not None and not Path(args.cleanrl_script).is_file(), f"--cleanrl-script: no such file: {args.cleanrl_script}"),
        (not (ROOT / args.ours).is_file(), f"--ours: no such script in {ROOT}: {args.ours}"),
        (shutil.which(args.cleanrl_python) is None and not Path(args.cleanrl_python).is_file(),
         f"--cleanrl-python: no such interpreter: {args.cleanrl_python}"),
    ]
    for bad, message in problems:
        if bad:
            sys.exit(f"error: {message}")


def compat_copy(script: Path, folder: Path) -> tuple[Path, list[str]]:
    """Copy CleanRL's script into `folder` with COMPAT applied; returns the copy and the reasons of the changes made."""
    text, applied = script.read_text(), []
    for pattern, replacement, why in COMPAT:
        text, n = re.subn(pattern, replacement, text)
        if n:
            applied.append(f"{why} ({n}×)")
    copy = folder / script.name
    copy.write_text(text)
    return copy, applied


def timed_run(command: list[str], cwd: Path, env: dict, timeout: float) -> dict:
    """Run one whole process; its wall and CPU seconds (user + system, of it and its children) and the load before it.
    Raises SystemExit with one line when it fails."""
    load = os.getloadavg()[0]
    before = os.times()
    start = time.perf_counter()
    try:
        proc = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        sys.exit(f"error: {' '.join(command)} took more than {timeout:.0f} s")
    wall = time.perf_counter() - start
    after = os.times()
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        sys.exit(f"error: {Path(command[1]).name} failed (exit {proc.returncode}): {tail}")
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    return {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "load_1min_before": round(load, 2)}


def measure(args: Args) -> dict:
    """Time `pairs` runs of each script in turn; returns the record written to OUT."""
    cleanrl = Path(args.cleanrl_script).resolve()
    env = os.environ | {"OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    env.pop("PYTHONPATH", None)
    common = ["--env-id", args.env_id, "--total-timesteps", str(args.total_timesteps)]
    ours_cmd = [sys.executable, str(ROOT / args.ours), *common, "--torch-threads", str(args.threads), "--no-progress"]
    runs = {"ours": [], "cleanrl": []}
    with tempfile.TemporaryDirectory() as scratch:
        copy, applied = compat_copy(cleanrl, Path(scratch))
        # CleanRL's scripts import their helpers from the repository (cleanrl_utils), the folder above the script's
        clean_env = env | {"PYTHONPATH": str(cleanrl.parent.parent)}
        clean_cmd = [args.cleanrl_python, str(copy), *common, "--no-cuda"]
        for i in range(args.pairs):
            order = (("ours", ours_cmd, env), ("cleanrl", clean_cmd, clean_env))
            for name, command, run_env in (order if i % 2 == 0 else order[::-1]):
                cwd = Path(tempfile.mkdtemp(dir=scratch))  # runs/ and videos/ land here and are discarded
                result = timed_run(command, cwd, run_env, args.timeout)
                runs[name].append(result)
                print(f"pair {i + 1}/{args.pairs} {name}: {result['wall_s']} s wall, {result['cpu_s']} s CPU", flush=True)
    ratios = [c["wall_s"] / o["wall_s"] for o, c in zip(runs["ours"], runs["cleanrl"])]
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit(), "machine": machine(), "threads": args.threads,
        "ours": args.ours, "env_id": args.env_id, "total_timesteps": args.total_timesteps,
        "cleanrl_script": cleanrl.name, "cleanrl_commit": args.cleanrl_commit,
        "cleanrl_sha256": hashlib.sha256(cleanrl.read_bytes()).hexdigest()[:16], "compat": applied,
        "commands": {"ours": " ".join([Path(ours_cmd[0]).name, args.ours, *ours_cmd[2:]]),
                     "cleanrl": " ".join([Path(clean_cmd[0]).name, cleanrl.name, *clean_cmd[2:]])},
        "runs": runs, "speed_ratios": [round(r, 3) for r in ratios], "median_speed_ratio": round(statistics.median(ratios), 3),
    }


def write_readme() -> Path:
    """README.md of OUT: one row per record, oldest first."""
    records = []
    for path in sorted(OUT.glob("*.json")):
        try:
            record = json.loads(path.read_text())
            why = None if isinstance(record, dict) and "date" in record else "not an object with a date"
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            why = f"{type(e).__name__}: {e}"
        if why:
            sys.exit(f"error: {path} is not a record of this runner ({why}); move it away and rerun with --report-only")
        records.append(record)
    records.sort(key=lambda r: r["date"])
    lines = ["# This project's PPO scripts against CleanRL's, side by side", "",
             "Made by `python benchmarks/speed_vs_cleanrl.py` (its docstring says how). Speed ratio: CleanRL's wall time / ours "
             "for each pair of whole runs (> 1: ours is faster); each pair ran in turn on the same machine, with the same "
             "torch thread count. CleanRL's code is not in this repository; its commit and the sha256 of the script run "
             "are recorded. Load: the 1-minute load average before each run (the machine's cores: see machine).", "",
             "| date | ours | CleanRL's script (commit, sha256) | env, steps | threads | wall s, ours | wall s, CleanRL | "
             "speed ratio per pair | median | load before runs | commit | machine |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        ours = ", ".join(f"{x['wall_s']:.1f}" for x in r["runs"]["ours"])
        clean = ", ".join(f"{x['wall_s']:.1f}" for x in r["runs"]["cleanrl"])
        loads = ", ".join(f"{x['load_1min_before']:.1f}" for x in r["runs"]["ours"] + r["runs"]["cleanrl"])
        lines.append(f"| {r['date']} | `{r['ours']}` | `{r['cleanrl_script']}` ({r['cleanrl_commit']}, {r['cleanrl_sha256']}) | "
                     f"{r['env_id']}, {r['total_timesteps']:,} | {r['threads']} | {ours} | {clean} | "
                     f"{', '.join(f'{x:.2f}' for x in r['speed_ratios'])} | **{r['median_speed_ratio']:.2f}×** | {loads} | "
                     f"{r['commit']} | {r['machine']} |")
    changes = sorted({c for r in records for c in r["compat"]})
    if changes:
        lines += ["", "Changes made to CleanRL's scratch copy to run on this gymnasium (no arithmetic of its training loop "
                      "changes): " + "; ".join(changes) + "."]
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "README.md").write_text("\n".join(lines) + "\n")
    return OUT / "README.md"


def record_path(record: dict, args: Args) -> Path:
    """A new file of OUT for the record: its date (to the minute), script and env, and _2, _3, ... when a record of the
    same minute exists (never overwritten)."""
    stem = f"{record['date'][:16].replace(' ', '_').replace(':', '')}_{Path(args.ours).stem}_{args.env_id.replace('/', '_')}"
    path, n = OUT / f"{stem}.json", 1
    while path.exists():
        n += 1
        path = OUT / f"{stem}_{n}.json"
    return path


def main(args: Args) -> None:
    if not args.report_only:
        check_args(args)
        try:  # an unwritable results folder is found now, not after the measurement
            OUT.mkdir(parents=True, exist_ok=True)
            tempfile.TemporaryFile(dir=OUT).close()
        except OSError as e:
            sys.exit(f"error: cannot write to {OUT}: {e.strerror or e}")
        record = measure(args)
        path = record_path(record, args)
        path.write_text(json.dumps(record, indent=1) + "\n")
        print(f"median speed ratio {record['median_speed_ratio']:.2f}× (CleanRL's wall time / ours); record {path}")
    print(f"wrote {write_readme()}")


if __name__ == "__main__":
    try:
        main(tyro.cli(Args))
    except KeyboardInterrupt:
        print("interrupted: no record written (the runs of an unfinished measurement are discarded)", file=sys.stderr)
        sys.exit(130)
