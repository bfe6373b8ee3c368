"""Benchmark reporter: a markdown table and learning curves from a study's TensorBoard files.

    python benchmarks/report.py mujoco        # writes benchmarks/results/mujoco/README.md and curves_*.png

Score of a run: the mean episodic return of the episodes that ended in the last 10% of training.
The table gives mean ± std of that score over seeds, and training steps/s next to the raw env stepping
rate measured just before and after each run (see benchmarks/run.py), so speed compares across machines.
A study of gbpo_llm.py runs (no env steps) gets a table of held-out accuracy instead: final and peak
eval/accuracy, mean ± std over seeds, and its curves by RL iteration.
"""

from __future__ import annotations

import json
import sys
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np
import tyro

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks import run  # noqa: E402
from benchmarks.tb import read_scalars  # noqa: E402


def load_runs(study: str) -> list[dict]:
    """Every finished job of the study and of the configs it borrows (run.BORROWED, on the study's envs): its done.json
    record plus its episodic returns and final SPS (or, for a job without env steps, its held-out accuracy curve)."""
    env_ids = {job.env_id for job in run.STUDIES[study]}
    jobs = [(study, job) for job in run.STUDIES[study]] + [
        (other, job) for other, label in run.BORROWED.get(study, ()) for job in run.STUDIES[other]
        if job.name == label and job.env_id in env_ids]
    runs = []
    for source, job in jobs:
        folder = job.folder(source)
        if not (folder / "done.json").is_file():
            continue
        record = json.loads((folder / "done.json").read_text())
        (run_dir,) = (folder / "runs").iterdir()
        scalars = read_scalars(run_dir)
        if not job.is_env_job:
            runs.append(record | {"name": job.name, "env_id": job.env_id, "seed": job.seed,
                                  "accuracy": np.array(scalars["eval/accuracy"], dtype=float)})
            continue
        returns = np.array(scalars.get("charts/episodic_return", []), dtype=float).reshape(-1, 2)
        runs.append(record | {"name": job.name, "env_id": job.env_id, "seed": job.seed, "total": job.total_timesteps,
                              "returns": returns, "sps": scalars["charts/SPS"][-1][1],
                              "kl": np.mean([v for _, v in scalars["losses/approx_kl"]])})
    return runs


def final_score(returns: np.ndarray, total: int) -> float:
    """Mean return of the episodes that ended in the last 10% of training."""
    last = returns[returns[:, 0] >= 0.9 * total, 1]
    return float(last.mean()) if len(last) else float("nan")


def seed_scores(group: list[dict]) -> tuple[np.ndarray, str]:
    """Final scores of one config's runs on one env in seed order, and their text ("s1: 2755, s2: 2631")."""
    group = sorted(group, key=lambda r: r["seed"])
    scores = np.array([final_score(r["returns"], r["total"]) for r in group])
    return scores, ", ".join(f"s{r['seed']}: {score:.0f}" for r, score in zip(group, scores))


def smoothed_curve(returns: np.ndarray, grid: np.ndarray, window: float) -> np.ndarray:
    """Mean return of the episodes that ended within `window` steps before each grid point."""
    steps, values = returns[:, 0], returns[:, 1]
    return np.array([values[(steps <= g) & (steps > g - window)].mean() if ((steps <= g) & (steps > g - window)).any()
                     else np.nan for g in grid])


def plot_curves(ax, configs: dict[str, list[dict]], fontsize: int = 8) -> None:
    """One line per config: mean ± std over seeds of smoothed_curve at 50 points, windows of 5% of training."""
    total = max(r["total"] for group in configs.values() for r in group)
    grid = np.linspace(total / 50, total, 50)
    for name, group in configs.items():
        curves = np.array([smoothed_curve(r["returns"], grid, total / 20) for r in group])
        with warnings.catch_warnings():  # grid points before any seed's first episode stay NaN, unplotted
            warnings.simplefilter("ignore", RuntimeWarning)
            mean, std = np.nanmean(curves, 0), np.nanstd(curves, 0)
        ax.plot(grid, mean, label=f"{name} ({len(group)} seeds)")
        ax.fill_between(grid, mean - std, mean + std, alpha=0.2)
    ax.legend(fontsize=fontsize)


def provenance(runs: list[dict]) -> str:
    """The commits and machines that made a study's runs."""
    commits = sorted({c for r in runs for c in r.get("segment_commits", [r["commit"]])})  # a resumed job may span several
    machines = sorted({r["machine"] for r in runs})  # runs spread over sessions land on different hosts of one class
    return f"Commits: {', '.join(commits)}. Machines: {'; '.join(machines)}."


def accuracy_report(study: str, runs: list[dict], plt) -> list[str]:
    """Table and curves of held-out accuracy (gbpo_llm.py runs): final and peak eval/accuracy, mean ± std over seeds."""
    out = run.RESULTS / study
    configs: dict[str, list[dict]] = defaultdict(list)
    for record in runs:
        configs[record["name"]].append(record)
    start = np.mean([r["accuracy"][0, 1] for r in runs])
    lines = [f"# Benchmark study `{study}`", "",
             f"Made by `python benchmarks/run.py {study}` then `python benchmarks/report.py {study}`.",
             f"Held-out accuracy (eval/accuracy, mean@k) at the last evaluation (final) and the best one (peak), "
             f"mean ± std over seeds; every run starts from the same warm-up policy (accuracy {start:.3f}).", "",
             "| config | seeds | final accuracy | peak accuracy | final − peak |", "|---|---|---|---|---|"]
    for name, group in configs.items():
        final = np.array([r["accuracy"][-1, 1] for r in group])
        peak = np.array([r["accuracy"][:, 1].max() for r in group])
        lines.append(f"| {name} | {len(group)} | {final.mean():.3f} ± {final.std():.3f} | {peak.mean():.3f} ± {peak.std():.3f} "
                     f"| {(final - peak).mean():+.3f} |")
    lines += ["", provenance(runs), ""]

    # one panel per setting, one line per loss: a label "gbpo_eps0.2_ep10" is loss "gbpo" in panel "eps0.2_ep10"
    panels = list(dict.fromkeys(name.partition("_")[2] for name in configs))
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.5), sharey=True, squeeze=False)
    for name, group in configs.items():
        loss, _, panel = name.partition("_")
        ax = axes[0, panels.index(panel)]
        steps = group[0]["accuracy"][:, 0]
        curves = np.array([r["accuracy"][:, 1] for r in group])
        mean, std = curves.mean(0), curves.std(0)
        ax.plot(steps, mean, label=f"{loss} ({len(group)} seeds)")
        ax.fill_between(steps, mean - std, mean + std, alpha=0.2)
        ax.set(title=panel or study, xlabel="RL iteration")
        ax.legend(fontsize=8)
    axes[0, 0].set_ylabel("held-out accuracy")
    fig.tight_layout()
    fig.savefig(out / "curves_accuracy.png", dpi=100)
    plt.close(fig)
    return lines + ["![accuracy](curves_accuracy.png)", ""]


def main(study: tyro.conf.Positional[str]) -> None:
    """Write the study's table and curves into benchmarks/results/<study>/."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if study not in run.STUDIES:
        sys.exit(f"error: unknown study '{study}'; known: {', '.join(run.STUDIES)}")
    runs = load_runs(study)
    if not runs:
        sys.exit(f"error: no finished runs in {run.RESULTS / study}; run `python benchmarks/run.py {study}` first")
    out = run.RESULTS / study
    if "accuracy" in runs[0]:
        (out / "README.md").write_text("\n".join(accuracy_report(study, runs, plt)))
        print(f"wrote {out / 'README.md'}")
        return
    by_env: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for record in runs:
        by_env[record["env_id"]][record["name"]].append(record)

    lines = [f"# Benchmark study `{study}`", "",
             f"Made by `python benchmarks/run.py {study}` then `python benchmarks/report.py {study}`.",
             *[f"The finished `{label}` runs of study `{other}` on the same envs are included in `{label}`'s rows and curves."
               for other, label in run.BORROWED.get(study, ())],
             "Score: mean episodic return over the episodes that ended in the last 10% of training; mean ± std over seeds.",
             "SPS: training steps per second at the end of the run; raw: `gym.make(env_id)` stepped with random actions "
             "on the same machine just before and after the run, the higher reading (the yardstick that makes SPS comparable across machines).", "",
             "KL: losses/approx_kl averaged over the run's updates, mean over seeds (how far each update moves the policy).", "",
             "| env | config | steps | seeds | score | per seed | KL | SPS | raw env steps/s | SPS / raw |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for env_id, configs in by_env.items():
        for name, group in configs.items():
            scores, per_seed = seed_scores(group)
            sps, raw = np.mean([r["sps"] for r in group]), np.mean([r["raw_env_steps_per_s"] for r in group])
            kl = np.mean([r["kl"] for r in group])
            lines.append(f"| {env_id} | {name} | {group[0]['total']:,} | {len(group)} | {scores.mean():.0f} ± {scores.std():.0f} "
                         f"| {per_seed} | {kl:.4f} | {sps:.0f} | {raw:.0f} | {sps / raw:.3f} |")
    lines += ["", provenance(runs), ""]

    for env_id, configs in by_env.items():
        fig, ax = plt.subplots(figsize=(6, 4))
        plot_curves(ax, configs)
        ax.set(title=f"{env_id} ({study})", xlabel="environment steps", ylabel="episodic return")
        fig.tight_layout()
        png = f"curves_{env_id.replace('/', '_')}.png"
        fig.savefig(out / png, dpi=100)
        plt.close(fig)
        lines += [f"![{env_id}]({png})", ""]
    (out / "README.md").write_text("\n".join(lines))
    print(f"wrote {out / 'README.md'}")


if __name__ == "__main__":
    tyro.cli(main)
