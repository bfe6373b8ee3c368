"""What the script tests share: the repository root, CleanRL's scalar tags and finding a run's folder."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CLEANRL_TAGS = {
    "charts/episodic_return", "charts/episodic_length", "charts/SPS", "charts/learning_rate", "losses/value_loss",
    "losses/policy_loss", "losses/entropy", "losses/approx_kl", "losses/clipfrac", "losses/explained_variance",
}
BPO_TAGS = {"losses/median_loss", "bpo/target_ratio_mean", "bpo/frac_above_median", "bpo/ratio_target_gap",
            "bpo/target_saturation", "bpo/median_adv_std"}


def run_dir(cwd: Path) -> Path:
    """The one run folder a script wrote under cwd/runs/."""
    (found,) = (cwd / "runs").iterdir()
    return found
