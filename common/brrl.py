"""Bounded-ratio RL math: the exact bounded-ratio policy and the BPO / PPO / GBPO losses.

Reference: Ao et al., "Bounded Ratio Reinforcement Learning", arXiv 2604.18578 (2026); the notation
and section numbers below follow ``shared/docs/brrl-math.md``.

Conventions: every function takes and returns torch tensors (float32 or float64), works on any
leading batch dimensions, and, where there is an action axis, it is the last one. Nothing loops in
Python over rows. The losses return per-sample values (no reduction): the caller takes the mean.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = [
    "optimal_ratio",
    "median_advantage",
    "smoothed_target_ratio",
    "bpo_loss",
    "ppo_loss",
    "ppo_equivalent_loss",
    "median_loss",
    "group_advantage",
    "gbpo_target_ratio",
    "gbpo_loss",
]


def _bounds(eps: float | None, c_low: float | None, c_high: float | None) -> tuple[float, float]:
    """Resolve (c_low, c_high) from either a symmetric ``eps`` or explicit asymmetric bounds."""
    if eps is not None:
        if c_low is not None or c_high is not None:
            raise ValueError("give either eps or c_low/c_high, not both")
        if not 0.0 < eps < 1.0:
            raise ValueError(f"eps must lie in (0, 1), got {eps}")
        return 1.0 - eps, 1.0 + eps
    if c_low is None or c_high is None:
        raise ValueError("give eps, or both c_low and c_high")
    if not 0.0 <= c_low < 1.0 < c_high:
        raise ValueError(f"bounds must satisfy 0 <= c_low < 1 < c_high, got c_low={c_low}, c_high={c_high}")
    return float(c_low), float(c_high)


def optimal_ratio(
    q: Tensor,
    pi0: Tensor,
    eps: float | None = None,
    *,
    c_low: float | None = None,
    c_high: float | None = None,
) -> Tensor:
    """Exact ratio π*/π0 of the bounded-ratio trust-region problem (Theorem 4.1, brrl-math.md §1).

    Solves, independently for every row, max Σ_a π0(a)·ρ(a)·Q(a) s.t. c_low ≤ ρ ≤ c_high and
    Σ_a π0(a)·ρ(a) = 1 (a fractional knapsack). The best actions holding a mass
    α = (1 − c_low)/(c_high − c_low) of π0 get c_high, the rest c_low. With symmetric bounds
    (``eps``: c = 1 ∓ ε) α = 1/2 and the threshold is the π0-weighted median of Q; with asymmetric
    bounds it is the (1 − α)-quantile.

    Ties: all actions sharing the threshold value of Q get one common fractional ratio that makes
    Σ π0·ratio = 1 exactly; with symmetric bounds it is 1 + ε(P− − P+)/P0 (brrl-math.md §1).
    Actions with π0 = 0 get c_high or c_low (their ratio does not affect the problem).

    Args:
        q: action values Q_{π0}(s, ·), shape (..., n_actions).
        pi0: old-policy probabilities, same shape, each row summing to 1.
        eps: symmetric ratio bound ε in (0, 1).
        c_low, c_high: asymmetric bounds, 0 ≤ c_low < 1 < c_high (c_low = 0, c_high = 1/α is CEM, §4.6).

    Returns:
        ratio ρ*(a) = π*(a)/π0(a), same shape as ``q``.

    The pairwise comparison below costs O(n_actions²) per row, which is what discrete action
    spaces of RL need; it needs no sorting and treats ties exactly.
    """
    c_lo, c_hi = _bounds(eps, c_low, c_high)
    q, pi0 = torch.broadcast_tensors(q, pi0)
    alpha = (1.0 - c_lo) / (c_hi - c_lo)
    # Mass of π0 on actions strictly better than / tied with each action: (..., n).
    better = q.unsqueeze(-2) > q.unsqueeze(-1)  # [..., a, b] = Q(b) > Q(a)
    tied = q.unsqueeze(-2) == q.unsqueeze(-1)
    mass_above = (better * pi0.unsqueeze(-2)).sum(-1)
    mass_tied = (tied * pi0.unsqueeze(-2)).sum(-1)
    budget = alpha * pi0.sum(-1, keepdim=True)  # the mass that gets the upper bound
    # Share of each tie group's mass that falls inside the top-α mass.
    share = ((budget - mass_above) / mass_tied.clamp_min(torch.finfo(q.dtype).tiny)).clamp(0.0, 1.0)
    share = torch.where(mass_tied > 0, share, (mass_above < budget).to(q.dtype))
    return c_lo + (c_hi - c_lo) * share


def median_advantage(q: Tensor, pi0: Tensor) -> Tensor:
    """Median advantage Ã = Q − μ, with μ the π0-weighted median of Q over the last axis (§1).

    Convention: sort Q; μ is the smallest value at which the cumulative π0 mass reaches 1/2. When
    the mass reaches exactly 1/2 at a value q_k (up to rounding), μ is the midpoint between q_k and
    the next larger value with positive mass, as numpy's median does for an even sample. With that
    choice 1 + ε·sign(Ã) equals the exact π*/π0 of ``optimal_ratio`` whenever no single atom of π0
    straddles the median; where one does, only ``optimal_ratio`` gives the exact fractional ratio.
    Actions with π0 = 0 do not influence μ.
    """
    q, pi0 = torch.broadcast_tensors(q, pi0)
    q_sorted, order = torch.sort(q, dim=-1)
    p_sorted = torch.gather(pi0, -1, order)
    cum = torch.cumsum(p_sorted, -1) / p_sorted.sum(-1, keepdim=True)
    tol = 16 * torch.finfo(q.dtype).eps
    n = q.shape[-1]
    idx = torch.arange(n, device=q.device)
    k = (cum < 0.5 - tol).sum(-1, keepdim=True).clamp_max(n - 1)  # first index with cum ≥ 1/2
    q_k = torch.gather(q_sorted, -1, k)
    exactly_half = (torch.gather(cum, -1, k) - 0.5).abs() <= tol
    after = (idx > k) & (p_sorted > 0)
    has_next = after.any(-1, keepdim=True)
    j = torch.where(has_next, after.to(torch.int8).argmax(-1, keepdim=True), k)
    q_next = torch.gather(q_sorted, -1, j)
    mu = torch.where(exactly_half & has_next, 0.5 * (q_k + q_next), q_k)
    return q - mu


def smoothed_target_ratio(median_adv: Tensor, eps: float, temperature: float = 0.0) -> Tensor:
    """Target ratio ρ*_λ = 1 − ε + 2ε·σ(Ã/λ) = 1 + ε·tanh(Ã/(2λ)); λ = 0 gives 1 + ε·sign(Ã) (§3)."""
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if temperature == 0:
        return 1.0 + eps * torch.sign(median_adv)
    return 1.0 + eps * torch.tanh(median_adv / (2.0 * temperature))


def bpo_loss(
    ratio: Tensor, advantage: Tensor, median_advantage: Tensor, eps: float, temperature: float = 0.0,
    distance: str = "tv",
) -> Tensor:
    """Per-sample BPO loss l_BPO(ρ) = |A|·|ρ − ρ*_λ(Ã)| (brrl-math.md §3, Corollary 4.5).

    The advantage-weighted total variation between the new policy and π*: the weight uses the mean
    advantage A = Q − V, the target uses the median advantage Ã = Q − μ. Both are treated as
    constants (detached): gradients flow through ``ratio`` only. No reduction.

    ``distance`` picks how the gap to the target is measured, all with the minimiser ρ = ρ*_λ:
    "tv" |ρ − ρ*| (the paper's), "sqrt" 2·|√ρ − √ρ*|, "log" |log ρ − log ρ*| (the authors' rsl_rl code has it
    as the "log-TV" variant). Their pull on log ρ is |A|·ρ^α with α = 1, 1/2, 0: equal at ρ = 1; the total
    variation's is weak on a ratio crushed toward 0 and strong on one that grows, the log distance's the same
    on both sides. Raises ValueError for another ``distance``.
    """
    target = smoothed_target_ratio(median_advantage.detach(), eps, temperature)
    if distance == "tv":
        gap = ratio - target
    elif distance == "sqrt":
        gap = 2.0 * (torch.sqrt(ratio) - torch.sqrt(target))
    elif distance == "log":
        gap = torch.log(ratio) - torch.log(target)
    else:
        raise ValueError(f"distance must be 'tv', 'sqrt' or 'log', got {distance!r}")
    return advantage.detach().abs() * gap.abs()


def ppo_loss(ratio: Tensor, advantage: Tensor, eps: float) -> Tensor:
    """Per-sample PPO clipped loss −min(ρA, clip(ρ, 1−ε, 1+ε)·A) (Schulman et al. 2017; §3). No reduction."""
    return -torch.min(ratio * advantage, torch.clamp(ratio, 1.0 - eps, 1.0 + eps) * advantage)


def ppo_equivalent_loss(ratio: Tensor, advantage: Tensor, eps: float) -> Tensor:
    """The paper's PPO-equivalent loss l′ (brrl-math.md §3, Figure 3). No reduction.

    l′ = |A|·max(0, 1+ε−ρ) for A > 0 and |A|·max(0, ρ−(1−ε)) for A < 0 (0 for A = 0). It differs
    from ``ppo_loss`` by |A|·(1 + ε·sign(A)), a constant in ρ: it pulls ρ toward 1 + ε·sign(A) and
    stops there.
    """
    up = torch.clamp(1.0 + eps - ratio, min=0.0)
    down = torch.clamp(ratio - (1.0 - eps), min=0.0)
    return advantage.abs() * torch.where(advantage > 0, up, down)  # the weight is 0 where A = 0


def median_loss(returns: Tensor, u: Tensor, temperature: float = 1.0) -> Tensor:
    """Per-sample loss for the median head u(s) (brrl-math.md §4). No reduction.

    λ·log(2·cosh((Q̂ − u)/(2λ))) = λ·softplus((Q̂ − u)/λ) − (Q̂ − u)/2, a smooth version of half the
    absolute error |Q̂ − u|/2 (exactly that at ``temperature`` λ = 0). Its minimiser over u solves
    E[σ((Q̂ − u)/λ)] = 1/2, the conditional median once the spread of Q̂ is large against λ. Using the
    same λ as the target ratio makes E[ρ*_λ] = 1 at the minimiser, as the theory asks; the authors'
    code uses λ = 1 here whatever the target's λ. ``returns`` is treated as a constant.
    """
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    x = returns.detach() - u
    if temperature == 0:
        return 0.5 * x.abs()
    return temperature * torch.nn.functional.softplus(x / temperature) - 0.5 * x


def group_advantage(scores: Tensor, std_eps: float = 1e-6) -> Tensor:
    """GRPO advantage (r − mean)/(std + 1e-6) within each group along the last axis (§5).

    The standard deviation is the unbiased one (torch's default), as in common GRPO implementations.
    A group whose scores are all equal carries no signal: its advantage is exactly 0 (no rounding residue).
    """
    centred = scores - scores.mean(-1, keepdim=True)
    all_equal = scores.amax(-1, keepdim=True) == scores.amin(-1, keepdim=True)
    return torch.where(all_equal, 0.0, centred / (scores.std(-1, keepdim=True) + std_eps))


def gbpo_target_ratio(
    scores: Tensor,
    eps_low: float,
    eps_high: float,
    temperature: float = 1e-4,
    exact_ties: bool = False,
    std_eps: float = 1e-6,
) -> Tensor:
    """GBPO target ratio for each response of a group (brrl-math.md §5).

    Default: ρ*_i = 1 − ε_low + (ε_low + ε_high)·σ(z_i/T), z_i = (r_i − median)/(std + 1e-6), with the
    group median of ``median_advantage`` under a uniform π0 and T ≈ 1e-4 (near-binary). A score equal
    to the median gets σ(0) = 1/2.

    ``exact_ties=True``: the exact solution of Theorem 4.1 over the group (uniform π0,
    c = 1 − ε_low, 1 + ε_high), whose tie value keeps the group's mean ratio at exactly 1; with binary
    rewards most responses tie at the median, and there the two differ.
    """
    if not (0.0 < eps_low < 1.0 and eps_high > 0.0):
        raise ValueError(f"need 0 < eps_low < 1 and eps_high > 0, got {eps_low}, {eps_high}")
    uniform = torch.full_like(scores, 1.0 / scores.shape[-1])
    if exact_ties:
        return optimal_ratio(scores, uniform, c_low=1.0 - eps_low, c_high=1.0 + eps_high)
    z = median_advantage(scores, uniform) / (scores.std(-1, keepdim=True) + std_eps)
    return 1.0 - eps_low + (eps_low + eps_high) * torch.sigmoid(z / temperature)


def gbpo_loss(ratio: Tensor, advantage: Tensor, target_ratio: Tensor) -> Tensor:
    """Per-token GBPO loss |ρ_t − ρ*_i|·|A_i| (§5); broadcast A and ρ* over the token axis. No reduction.

    No ratio clipping: the V-shaped loss itself pulls ρ back toward ρ* from both sides.
    """
    return advantage.detach().abs() * (ratio - target_ratio.detach()).abs()
