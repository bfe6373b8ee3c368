"""Draw the per-sample PPO-equivalent and BPO losses against ρ (paper Figures 3-4) and π0 next to π*.

    python docs/make_loss_figure.py            # writes docs/img/losses.png
"""

from pathlib import Path
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from common import brrl  # noqa: E402

EPS = 0.2


def main(out: Path = Path(__file__).resolve().parent / "img" / "losses.png") -> None:
    rho = torch.linspace(0.4, 1.6, 601, dtype=torch.float64)
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    for ax, sign in zip(axes[:2], (1.0, -1.0)):
        adv = torch.full_like(rho, sign)  # |A| = 1, Ã of the same sign
        ax.plot(rho, brrl.ppo_equivalent_loss(rho, adv, EPS), label="PPO-equivalent $l'$", lw=2)
        ax.plot(rho, brrl.bpo_loss(rho, adv, adv, EPS), "--", label=r"BPO $l^{BPO}$", lw=2)
        ax.plot(rho, brrl.bpo_loss(rho, adv, adv, EPS, temperature=0.5), ":", label=r"BPO, $\lambda=0.5$, $\tilde A=\pm1$")
        for bound in (1 - EPS, 1 + EPS):
            ax.axvline(bound, color="grey", lw=0.8)
        ax.set(title=f"A {'>' if sign > 0 else '<'} 0 (|A| = 1, ε = {EPS})", xlabel=r"ratio $\rho = \pi/\pi_0$", ylabel="loss")
        ax.legend(fontsize=8)
    q = torch.tensor([-6.0, 0.0, 0.5, 0.8, 1.0, 4.0], dtype=torch.float64)
    pi0 = torch.tensor([0.10, 0.25, 0.15, 0.20, 0.20, 0.10], dtype=torch.float64)
    pi_star = pi0 * brrl.optimal_ratio(q, pi0, EPS)
    x = torch.arange(len(q))
    ax = axes[2]
    ax.bar(x - 0.2, pi0, 0.4, label=r"$\pi_0$")
    ax.bar(x + 0.2, pi_star, 0.4, label=r"$\pi^*$ (Thm 4.1)")
    mu = (q - brrl.median_advantage(q, pi0))[0].item()
    ax.set_xticks(x, [f"Q={v:g}" for v in q.tolist()])
    v = (pi0 * q).sum().item()
    ax.set(title=f"π* (ε = {EPS}): threshold is the median\nμ = {mu:g}, not the mean V = {v:.3g}", ylabel="probability")
    ax.annotate("A > 0 but Ã < 0:\nPPO raises it, π* lowers it", (2.2, pi_star[2].item()), (2.6, 0.225), fontsize=8,
                arrowprops=dict(arrowstyle="->"))
    ax.legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
