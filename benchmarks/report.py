"""Benchmark reporter: a markdown table and learning curves from a study's TensorBoard files.

    python benchmarks/report.py mujoco        # writes benchmarks/results/mujoco/README.md and curves_*.png

Score of a run: the mean episodic return of the episodes that ended in the last 10% of training.
The table gives mean ± std of that score over seeds, and training steps/s next to the raw env stepping
rate measured just before and after each run (see benchmarks/run.py), so speed compares across machines.
A study of gbpo_llm.py runs (no env steps) gets a table of held-out accuracy instead: final and peak
eval/accuracy, mean ± std over seeds, and its curves by RL iteration.
A study with runs of both ppo_continuous and bpo_continuous also gets a suite section (suite_report): per-task
scores, the IQM of PPO-normalised scores and the probability of improvement over tasks with 95% stratified-bootstrap
intervals (Agarwal et al., "Deep RL at the Edge of the Statistical Precipice", NeurIPS 2021), performance profiles.
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
    """Every finished job of the study and of the configs it borrows (run.BORROWED, on the study's envs and
    run.STUDY_ENVS): its done.json
    record plus its episodic returns and final SPS (or, for a job without env steps, its held-out accuracy curve)."""
    env_ids = {job.env_id for job in run.STUDIES[study]} | set(run.STUDY_ENVS.get(study, ()))
    jobs = [(study, job, job.name) for job in run.STUDIES[study]] + [
        (other, job, here[0] if here else label) for other, label, *here in run.BORROWED.get(study, ()) for job in run.STUDIES[other]
        if job.name == label and job.env_id in env_ids]
    runs = []
    for source, job, name in jobs:
        folder = job.folder(source)
        if not (folder / "done.json").is_file():
            continue
        record = json.loads((folder / "done.json").read_text())
        (run_dir,) = (folder / "runs").iterdir()
        scalars = read_scalars(run_dir)
        if not job.is_env_job:
            runs.append(record | {"name": name, "env_id": job.env_id, "seed": job.seed,
                                  "accuracy": np.array(scalars["eval/accuracy"], dtype=float)})
            continue
        returns = np.array(scalars.get("charts/episodic_return", []), dtype=float).reshape(-1, 2)
        runs.append(record | {"name": name, "env_id": job.env_id, "seed": job.seed, "total": job.total_timesteps,
                              "returns": returns, "sps": scalars["charts/SPS"][-1][1],
                              "kl": np.mean([v for _, v in scalars["losses/approx_kl"]])})
    return runs


def final_score(returns: np.ndarray, total: int) -> float:
    """Mean return of the episodes that ended in the last 10% of training."""
    last = returns[returns[:, 0] >= 0.9 * total, 1]
    return float(last.mean()) if len(last) else float("nan")


def decimals(*values: float) -> int:
    """Digits after the point for returns of this size: none from 100 up, 1 from 10, else 2 (Reacher's -5.3 is not -5)."""
    top = max((abs(v) for v in values if np.isfinite(v)), default=0.0)
    return 0 if top >= 100 else 1 if top >= 10 else 2


def seed_scores(group: list[dict]) -> tuple[np.ndarray, str]:
    """Final scores of one config's runs on one env in seed order, and their text ("s1: 2755, s2: 2631")."""
    group = sorted(group, key=lambda r: r["seed"])
    scores = np.array([final_score(r["returns"], r["total"]) for r in group])
    d = decimals(*scores)
    return scores, ", ".join(f"s{r['seed']}: {score:.{d}f}" for r, score in zip(group, scores))


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


# The configs (labels) a suite section compares, whenever a study has runs of both: (baseline, candidate).
SUITE_CONFIGS = ("ppo_continuous", "bpo_continuous")

# CleanRL's published PPO, not our runs: their ppo_continuous_action.py benchmark at 1M steps (MuJoCo v4, mean ± std
# over seeds; docs.cleanrl.dev/rl-algorithms/ppo, openrlbenchmark tag pr-424), as quoted in the project's docs
# (README: Hopper, Humanoid) and in issue 17 (HalfCheetah, Walker2d).
CLEANRL_PPO_1M = {"HalfCheetah-v4": (1443, 46), "Hopper-v4": (2383, 272), "Humanoid-v4": (716, 49), "Walker2d-v4": (2288, 572)}

# The zero of the suite's normalised scores: mean return of a uniform-random policy, random_policy_score(env_id) with
# its defaults (10 episodes, seed 0), measured 2026-11-29 with gymnasium 1.4.0 and mujoco 4.0.0.
RANDOM_SCORES = {"InvertedPendulum-v4": 6.4, "InvertedDoublePendulum-v4": 58.13, "Reacher-v4": -41.51, "Swimmer-v4": -2.63,
                 "Hopper-v4": 29.96, "Walker2d-v4": 6.02, "HalfCheetah-v4": -244.85, "Pusher-v5": -150.79, "Ant-v4": -16.83,
                 "Humanoid-v4": 101.03, "HumanoidStandup-v4": 32566.04}


def random_policy_score(env_id: str, episodes: int = 10, seed: int = 0) -> float:
    """Mean undiscounted return of `episodes` episodes of gym.make(env_id) (its own time limit) with actions drawn
    uniformly from its action space; the env and the action space are seeded once with `seed`. Regenerate RANDOM_SCORES:
    python -c "from benchmarks.report import *; print({e: round(random_policy_score(e), 2) for e in RANDOM_SCORES})"
    """
    import gymnasium as gym

    env = gym.make(env_id)
    env.action_space.seed(seed)
    returns = []
    for episode in range(episodes):
        env.reset(seed=seed if episode == 0 else None)  # seeded once: later episodes continue the env's generator
        total, done = 0.0, False
        while not done:
            _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
            total, done = total + float(reward), terminated or truncated
        returns.append(total)
    env.close()
    return float(np.mean(returns))


def iqm(scores: list[np.ndarray]) -> float:
    """Interquartile mean (Agarwal et al. 2021): the mean of all runs' scores pooled over tasks once ⌊n/4⌋ are cut
    from each end (scipy.stats.trim_mean(·, 0.25), as rliable's aggregate_iqm). scores: one 1-D array of runs per task."""
    pooled = np.sort(np.concatenate(scores))
    cut = len(pooled) // 4
    return float(pooled[cut:len(pooled) - cut].mean())


def probability_of_improvement(x: list[np.ndarray], y: list[np.ndarray]) -> float:
    """P(X > Y) of Agarwal et al. 2021: per task, the fraction of (x run, y run) pairs where x scores higher, a tie
    counting 1/2 (Mann-Whitney U / (n·m)), averaged over tasks. x, y: one 1-D array of run scores per task, same tasks."""
    return float(np.mean([(np.sign(a[:, None] - b[None, :]) + 1).mean() / 2 for a, b in zip(x, y, strict=True)]))


def performance_profile(scores: list[np.ndarray], taus: np.ndarray) -> np.ndarray:
    """Fraction of all runs (pooled over tasks) whose score exceeds each τ; shape of taus."""
    return (np.concatenate(scores)[:, None] > taus).mean(0)


def stratified_bootstrap_ci(statistic, samples: list[np.ndarray], reps: int = 2000, seed: int = 0,
                            level: float = 0.95) -> np.ndarray:
    """Percentile interval of statistic(samples) under the stratified bootstrap (Agarwal et al. 2021): each sample (one
    algorithm's runs on one task) is resampled with replacement to its own size, independently of the others.
    samples: list of 1-D arrays; statistic: such a list -> float or 1-D array. Returns [low, high], each statistic-shaped.
    (numpy rather than scipy.stats.bootstrap, which refuses a sample of one run: a task with one seed so far.)"""
    rng = np.random.default_rng(seed)
    stats = [statistic([s[rng.integers(len(s), size=len(s))] for s in samples]) for _ in range(reps)]
    return np.percentile(stats, [50 * (1 - level), 50 * (1 + level)], axis=0)


def suite_report(study: str, runs: list[dict], plt) -> list[str]:
    """The README's suite section of a study with runs of both SUITE_CONFIGS: a per-task table, the IQM of normalised
    scores and P(BPO > PPO) over tasks with 95% stratified-bootstrap intervals, performance profiles (profile_suite.png),
    one figure of learning curves (curves_suite.png), the tasks where BPO's mean is below PPO's and issue 17's targets.
    Tasks of the study without runs of both configs are listed as pending and left out of the aggregates."""
    base, cand = SUITE_CONFIGS
    out = run.RESULTS / study
    groups: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for record in runs:
        if record["name"] in SUITE_CONFIGS:
            groups[record["env_id"], record["name"]].append(record)
    tasks = sorted({env for env, _ in groups} | {j.env_id for j in run.STUDIES.get(study, ()) if j.name in SUITE_CONFIGS})
    scores = {key: seed_scores(group) for key, group in groups.items()}  # (env, config) -> (by seed, their text)
    mean = {key: s.mean() for key, (s, _) in scores.items()}
    both = [env for env in tasks if (env, base) in scores and (env, cand) in scores]
    left_out = {env: f"no {' or '.join(c for c in SUITE_CONFIGS if (env, c) not in scores)} runs yet"
                for env in tasks if env not in both}
    for env in both:
        if env not in RANDOM_SCORES:
            left_out[env] = "no random-policy score in report.RANDOM_SCORES"
        elif mean[env, base] <= RANDOM_SCORES[env]:  # the normalisation's unit would be zero or negative
            left_out[env] = "PPO's mean is not above a random policy's"
    included = [env for env in both if env not in left_out]

    def normalised(env: str, values):  # 0: a random policy, 1: PPO's mean on the task
        return (values - RANDOM_SCORES[env]) / (mean[env, base] - RANDOM_SCORES[env])

    def ratio(env):  # BPO's mean over PPO's: "BPO's share of PPO's score" only where both are above 0, else None
        return mean[env, cand] / mean[env, base] if mean[env, cand] > 0 and mean[env, base] > 0 else None

    lines = ["## Suite: `ppo_continuous` against `bpo_continuous`", "",
             "Score as above, mean ± std over seeds and per seed. BPO / PPO: the ratio of the two means where both are "
             "positive (with negative returns a ratio reads backwards: see the normalised score). Normalised BPO: "
             "(BPO's mean − random) / (PPO's mean − random), where random is the mean return of a uniform-random policy "
             "(report.RANDOM_SCORES, 10 episodes); the target of no task below 0.8× PPO is read on it, being sign-safe. "
             "The last column is CleanRL's published PPO score, their report, not our run.", "",
             "| task | PPO | PPO per seed | BPO | BPO per seed | BPO / PPO | normalised BPO "
             "| *CleanRL's PPO, their report, 1M steps* |",
             "|---|---|---|---|---|---|---|---|"]
    digits = {env: decimals(*[mean[key] for key in mean if key[0] == env]) for env, _ in groups}
    for env in sorted({env for env, _ in groups}):
        d = digits[env]
        cells = [f"{mean[env, c]:.{d}f} ± {scores[env, c][0].std():.{d}f} | {scores[env, c][1]}" if (env, c) in scores
                 else "– | –" for c in SUITE_CONFIGS]
        share = f"{ratio(env):.2f}" if env in both and ratio(env) is not None else "–"
        normalised_mean = f"{normalised(env, mean[env, cand]):.2f}" if env in included else "–"
        theirs = f"*{CLEANRL_PPO_1M[env][0]} ± {CLEANRL_PPO_1M[env][1]}*" if env in CLEANRL_PPO_1M else ""
        lines.append(f"| {env} | {' | '.join(cells)} | {share} | {normalised_mean} | {theirs} |")
    lines.append("")
    if left_out:
        lines += ["Left out of the aggregates (pending): " + "; ".join(f"{env} ({why})" for env, why in left_out.items())
                  + ".", ""]
    if not included:
        return lines + ["No task has runs of both configs yet: no aggregates.", ""]

    norm = {c: [normalised(env, scores[env, c][0]) for env in included] for c in SUITE_CONFIGS}  # runs per task
    k = len(included)
    iqms = {c: (iqm(norm[c]), stratified_bootstrap_ci(iqm, norm[c])) for c in SUITE_CONFIGS}
    poi = probability_of_improvement(norm[cand], norm[base])
    poi_ci = stratified_bootstrap_ci(lambda s: probability_of_improvement(s[:k], s[k:]), norm[cand] + norm[base])
    lines += [f"**Aggregates over {k} tasks** ({', '.join(included)}). Normalised score of a run: (score − random) / "
              "(PPO's mean on the task − random), so a random policy scores 0 and PPO's mean 1 on every task. "
              "95% intervals: percentile stratified bootstrap (each algorithm's runs resampled with replacement within "
              "each task, 2000 resamples), the estimators of Agarwal et al., \"Deep RL at the Edge of the Statistical "
              "Precipice\" (NeurIPS 2021), implemented in report.py with numpy (rliable 1.2.0 needs arch < 8, and arch "
              "7.2.0 fails to import with pandas 3).", "",
              "| aggregate | PPO | BPO |", "|---|---|---|",
              "| IQM of normalised scores [95% CI] | " + " | ".join(
                  f"{point:.2f} [{ci[0]:.2f}, {ci[1]:.2f}]" for point, ci in iqms.values()) + " |", "",
              f"P(BPO > PPO) = {poi:.2f} [95% CI {poi_ci[0]:.2f}, {poi_ci[1]:.2f}]: the probability that a BPO run "
              "scores above a PPO run on a task (ties count 1/2), averaged over tasks.", ""]

    # performance profiles with their bootstrap bands, and one small panel of learning curves per task
    taus = np.linspace(0, max(1.5, max(np.concatenate(norm[c]).max() for c in SUITE_CONFIGS)), 101)
    fig, ax = plt.subplots(figsize=(6, 4))
    for c in SUITE_CONFIGS:
        low, high = stratified_bootstrap_ci(lambda s: performance_profile(s, taus), norm[c])
        ax.plot(taus, performance_profile(norm[c], taus), label=c)
        ax.fill_between(taus, low, high, alpha=0.2)
    ax.set(title=f"performance profiles over {k} tasks ({study})", xlabel="normalised score τ",
           ylabel="fraction of runs with score > τ")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "profile_suite.png", dpi=100)
    plt.close(fig)
    panels = sorted({env for env, _ in groups})
    cols = min(4, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.5 * cols, 2.8 * rows), squeeze=False)
    for ax, env in zip(axes.flat, panels):
        plot_curves(ax, {c: groups[env, c] for c in SUITE_CONFIGS if (env, c) in groups}, fontsize=6)
        ax.set_title(env, fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in axes.flat[len(panels):]:
        ax.axis("off")
    fig.supxlabel("environment steps")
    fig.supylabel("episodic return")
    fig.tight_layout()
    fig.savefig(out / "curves_suite.png", dpi=100)
    plt.close(fig)
    lines += ["![performance profiles](profile_suite.png)", "", "![learning curves per task](curves_suite.png)", ""]

    trailing = [env for env in both if mean[env, cand] < mean[env, base]]
    lines.append("BPO's mean below PPO's:" + ("" if trailing else " none."))
    lines += [f"- {env}: {mean[env, cand]:.{digits[env]}f} against {mean[env, base]:.{digits[env]}f}, "
              + (f"{ratio(env):.2f}× PPO's mean, " if ratio(env) is not None else "")
              + f"{mean[env, cand] - mean[env, base]:+.{digits[env]}f}"
              + (f", normalised {normalised(env, mean[env, cand]):.2f}" if env in included else "") for env in trailing]
    lines.append("")
    # the seed rule: 5 seeds where the two means lie within one standard deviation (the larger of the two)
    close = [f"{env} (|Δ| {abs(mean[env, cand] - mean[env, base]):.{digits[env]}f}, std {spread:.{digits[env]}f})" for env in both
             if 3 <= min(len(scores[env, c][0]) for c in SUITE_CONFIGS) < 5
             and abs(mean[env, cand] - mean[env, base]) <= (spread := max(scores[env, c][0].std() for c in SUITE_CONFIGS))]
    lines += ["5 seeds where the two means lie within one standard deviation (the larger of the two), as issue 17 asks: "
              + (f"seeds 4–5 still to run on {'; '.join(close)}." if close else "no task needs more seeds."), ""]
    few = [f"{env} ({', '.join(f'{c} {len(scores[env, c][0])}' for c in SUITE_CONFIGS)})" for env in included
           if min(len(scores[env, c][0]) for c in SUITE_CONFIGS) < 3]
    if few:
        return lines + [f"**Issue 17's targets: nothing is ranked**: fewer than 3 seeds per config on {'; '.join(few)}.", ""]
    below = [env for env in included if normalised(env, mean[env, cand]) < 0.8]
    targets = {"IQM(BPO) ≥ IQM(PPO)": (iqms[cand][0] >= iqms[base][0], f"{iqms[cand][0]:.2f} against {iqms[base][0]:.2f}"),
               "P(BPO > PPO) > 0.5 with the lower end of its 95% CI above 0.5": (
                   poi > 0.5 and poi_ci[0] > 0.5, f"{poi:.2f}, CI {poi_ci[0]:.2f}–{poi_ci[1]:.2f}"),
               "no task with BPO below 0.8× PPO (normalised BPO < 0.8)": (not below, ", ".join(below) or "none")}
    pending = f", {len(left_out)} pending" if left_out else ""
    return lines + [f"**Issue 17's targets** on the {k} tasks in the aggregates{pending}: " + "; ".join(
        f"{name}: **{'met' if ok else 'not met'}** ({detail})" for name, (ok, detail) in targets.items())
        + f". All met: **{'yes' if all(ok for ok, _ in targets.values()) else 'no'}**.", ""]


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
    out.mkdir(parents=True, exist_ok=True)  # a study whose finished runs are all borrowed has no folder yet
    if "accuracy" in runs[0]:
        (out / "README.md").write_text("\n".join(accuracy_report(study, runs, plt)))
        print(f"wrote {out / 'README.md'}")
        return
    by_env: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for record in runs:
        by_env[record["env_id"]][record["name"]].append(record)
    envpool = any(job.script in run.ENVPOOL_SCRIPTS for job in run.STUDIES[study])  # as run.raw_env_rate measured it
    raw_env = "one env of `envpool.make_gymnasium(env_id)` on one thread" if envpool else "`gym.make(env_id)`"

    lines = [f"# Benchmark study `{study}`", "",
             f"Made by `python benchmarks/run.py {study}` then `python benchmarks/report.py {study}`.",
             *[f"The finished `{label}` runs of study `{other}` on the same envs are included in `{here[0] if here else label}`'s "
               "rows and curves." for other, label, *here in run.BORROWED.get(study, ())],
             "Score: mean episodic return over the episodes that ended in the last 10% of training; mean ± std over seeds.",
             f"SPS: training steps per second at the end of the run; raw: {raw_env} stepped with random actions "
             "on the same machine just before and after the run, the higher reading (the yardstick that makes SPS comparable across machines).", "",
             "KL: losses/approx_kl averaged over the run's updates, mean over seeds (how far each update moves the policy).", "",
             "| env | config | steps | seeds | score | per seed | KL | SPS | raw env steps/s | SPS / raw |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for env_id, configs in by_env.items():
        for name, group in configs.items():
            scores, per_seed = seed_scores(group)
            sps, raw = np.mean([r["sps"] for r in group]), np.mean([r["raw_env_steps_per_s"] for r in group])
            kl = np.mean([r["kl"] for r in group])
            d = decimals(*scores)
            lines.append(f"| {env_id} | {name} | {group[0]['total']:,} | {len(group)} | {scores.mean():.{d}f} ± {scores.std():.{d}f} "
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
    if all(any(r["name"] == c for r in runs) for c in SUITE_CONFIGS):
        lines += suite_report(study, runs, plt)
    (out / "README.md").write_text("\n".join(lines))
    print(f"wrote {out / 'README.md'}")


if __name__ == "__main__":
    tyro.cli(main)
