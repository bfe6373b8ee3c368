"""The bounded-ratio math module against independent solutions (LP solver, exact tabular evaluation)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import linprog

from common import brrl
from tests.tabular import evaluate, random_mdp, random_policy, visitation


def t64(x) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x), dtype=torch.float64)


# ---------------------------------------------------------------- optimal_ratio vs. an LP solver


def lp_optimum(q: np.ndarray, pi0: np.ndarray, c_low: float, c_high: float) -> float:
    """max Σ π0·ρ·Q s.t. c_low ≤ ρ ≤ c_high, Σ π0·ρ = 1, solved by HiGHS."""
    res = linprog(-(pi0 * q), A_eq=pi0[None], b_eq=[1.0], bounds=[(c_low, c_high)] * len(q), method="highs")
    assert res.status == 0
    return -res.fun


def random_case(rng: np.random.Generator, kind: str):
    n = int(rng.integers(2, 9))
    if kind == "continuous":
        q = rng.normal(size=n)
    elif kind == "ties":
        q = rng.integers(0, 3, size=n).astype(float)
    else:  # binary
        q = rng.integers(0, 2, size=n).astype(float)
    pi0 = rng.dirichlet(np.ones(n))
    if rng.random() < 0.4:  # zero-probability actions, keeping at least one positive
        zero = rng.random(n) < 0.3
        zero[rng.integers(n)] = False
        pi0 = np.where(zero, 0.0, pi0)
        pi0 /= pi0.sum()
    if rng.random() < 0.5:
        eps = float(rng.uniform(0.05, 0.95))
        bounds = dict(eps=eps)
        c_low, c_high = 1 - eps, 1 + eps
    else:
        c_low, c_high = float(rng.uniform(0.0, 0.95)), float(rng.uniform(1.05, 5.0))
        bounds = dict(c_low=c_low, c_high=c_high)
    return q, pi0, bounds, c_low, c_high


@pytest.mark.parametrize("kind", ["continuous", "ties", "binary"])
def test_optimal_ratio_is_feasible_and_matches_lp_optimum(kind):
    rng = np.random.default_rng({"continuous": 0, "ties": 1, "binary": 2}[kind])
    for _ in range(200):
        q, pi0, bounds, c_low, c_high = random_case(rng, kind)
        ratio = brrl.optimal_ratio(t64(q), t64(pi0), **bounds).numpy()
        assert ratio.min() >= c_low - 1e-12 and ratio.max() <= c_high + 1e-12
        assert (pi0 * ratio).sum() == pytest.approx(1.0, abs=1e-12)
        assert (pi0 * ratio * q).sum() == pytest.approx(lp_optimum(q, pi0, c_low, c_high), abs=1e-9)


def test_optimal_ratio_tie_value_is_the_papers_fraction():
    # Q = [0, 1, 1, 2], π0 uniform, ε = 0.3: P− = 1/4, P0 = 1/2, P+ = 1/4 → ρ_m = 1.
    ratio = brrl.optimal_ratio(t64([0, 1, 1, 2]), t64([0.25] * 4), 0.3)
    torch.testing.assert_close(ratio, t64([0.7, 1.0, 1.0, 1.3]))
    # P− = 0.5, P0 = 0.3, P+ = 0.2: ρ_m = 1 + 0.3·(0.5 − 0.2)/0.3 = 1.3 (all of the tie mass fits on top).
    ratio = brrl.optimal_ratio(t64([0, 1, 2]), t64([0.5, 0.3, 0.2]), 0.3)
    torch.testing.assert_close(ratio, t64([0.7, 1.3, 1.3]))
    # P− = 0.1, P0 = 0.6, P+ = 0.3: ρ_m = 1 + 0.3·(0.1 − 0.3)/0.6 = 0.9.
    ratio = brrl.optimal_ratio(t64([0, 1, 2]), t64([0.1, 0.6, 0.3]), 0.3)
    torch.testing.assert_close(ratio, t64([0.7, 0.9, 1.3]))


def test_optimal_ratio_is_one_plus_eps_sign_of_median_advantage_off_the_median():
    rng = np.random.default_rng(3)
    for n in (2, 3, 4, 5, 8):  # even n with uniform π0 hits the exact-half convention
        q = t64(rng.normal(size=(50, n)))  # distinct values: no ties between actions
        for pi0 in (t64(rng.dirichlet(np.ones(n), size=50)), torch.full((50, n), 1.0 / n, dtype=torch.float64)):
            median_adv = brrl.median_advantage(q, pi0)
            ratio = brrl.optimal_ratio(q, pi0, 0.2)
            off = median_adv != 0
            torch.testing.assert_close(ratio[off], 1 + 0.2 * torch.sign(median_adv[off]))
            # The one action whose mass straddles the median gets 1 + ε(P− − P+)/P0.
            p_minus = (pi0 * (median_adv < 0)).sum(-1)
            p_plus = (pi0 * (median_adv > 0)).sum(-1)
            rows, cols = torch.nonzero(~off, as_tuple=True)
            tie = 1 + 0.2 * (p_minus[rows] - p_plus[rows]) / pi0[rows, cols]
            torch.testing.assert_close(ratio[rows, cols], tie)
            if n % 2 == 0 and (pi0 == 1.0 / n).all():
                assert off.all()  # uniform π0, even n: the midpoint convention leaves no action at μ


def test_optimal_ratio_batched_equals_row_by_row_and_keeps_dtype():
    rng = np.random.default_rng(4)
    q = torch.as_tensor(rng.integers(0, 4, size=(3, 4, 6)), dtype=torch.float32)
    pi0 = torch.as_tensor(rng.dirichlet(np.ones(6), size=(3, 4)), dtype=torch.float32)
    batched = brrl.optimal_ratio(q, pi0, c_low=0.5, c_high=2.0)
    assert batched.shape == (3, 4, 6) and batched.dtype == torch.float32
    for i in range(3):
        for j in range(4):
            torch.testing.assert_close(batched[i, j], brrl.optimal_ratio(q[i, j], pi0[i, j], c_low=0.5, c_high=2.0))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(eps=0.0), "eps must lie in"),
        (dict(eps=1.0), "eps must lie in"),
        (dict(c_low=0.5), "give eps, or both"),
        (dict(c_low=1.1, c_high=2.0), "0 <= c_low < 1 < c_high"),
        (dict(eps=0.2, c_low=0.5, c_high=2.0), "not both"),
    ],
)
def test_optimal_ratio_rejects_bad_bounds(kwargs, message):
    with pytest.raises(ValueError, match=message):
        brrl.optimal_ratio(t64([0.0, 1.0]), t64([0.5, 0.5]), **kwargs)


# ---------------------------------------------------------------- median_advantage


def test_median_advantage_uniform_weights_match_numpy_median():
    rng = np.random.default_rng(5)
    for n in range(1, 10):
        q = rng.normal(size=(20, n))
        mu = (t64(q) - brrl.median_advantage(t64(q), torch.full((20, n), 1.0 / n, dtype=torch.float64))).numpy()
        np.testing.assert_allclose(mu, np.repeat(np.median(q, axis=1, keepdims=True), n, 1), atol=1e-12)


def test_median_advantage_weighted_median_splits_mass_and_ignores_zero_probability_actions():
    rng = np.random.default_rng(6)
    for _ in range(200):
        n = int(rng.integers(2, 8))
        q = rng.integers(0, 5, size=n).astype(float) + (rng.random() < 0.5) * rng.normal(size=n)
        pi0 = rng.dirichlet(np.ones(n))
        pi0[rng.integers(n)] = 0.0
        pi0 /= pi0.sum()
        mu = q[0] - brrl.median_advantage(t64(q), t64(pi0))[0].item()
        assert pi0[q < mu - 1e-9].sum() <= 0.5 + 1e-12 and pi0[q > mu + 1e-9].sum() <= 0.5 + 1e-12
        # μ is one of the Q values of actions with mass, or the midpoint of two of them.
        support = np.unique(q[pi0 > 0])
        candidates = np.concatenate([support, (support[:-1] + support[1:]) / 2])
        assert np.isclose(candidates, mu, atol=1e-12).any()


def test_median_advantage_exact_half_takes_the_midpoint():
    adv = brrl.median_advantage(t64([3.0, 0.0, 1.0, 10.0]), t64([0.1, 0.4, 0.1, 0.4]))
    # Sorted: 0 (0.4), 1 (0.1), 3 (0.1), 10 (0.4): the mass reaches 1/2 exactly at 1, so μ = (1 + 3)/2.
    torch.testing.assert_close(adv, t64([3.0, 0.0, 1.0, 10.0]) - 2.0)


# ---------------------------------------------------------------- Theorem 4.2 on random tabular MDPs


def improvement_and_bound(seed: int, **bounds):
    rng = np.random.default_rng(seed)
    n_states, n_actions, gamma = int(rng.integers(2, 7)), int(rng.integers(2, 6)), 0.9
    transitions, rewards, d0 = random_mdp(rng, n_states, n_actions)
    pi0 = random_policy(rng, n_states, n_actions)
    v0, q0 = evaluate(transitions, rewards, gamma, pi0)
    ratio = brrl.optimal_ratio(t64(q0), t64(pi0), **bounds).numpy()
    pi_star = pi0 * ratio
    v_star, _ = evaluate(transitions, rewards, gamma, pi_star)
    d_star = visitation(transitions, gamma, pi_star, d0)
    return d0 @ v_star - d0 @ v0, d_star, pi0, q0, v0, ratio


@pytest.mark.parametrize("seed", range(30))
def test_theorem_4_2_improvement_equals_eps_times_b(seed):
    eps = 0.05 + 0.9 * seed / 30
    improvement, d_star, pi0, q0, _, _ = improvement_and_bound(seed, eps=eps)
    b = d_star @ (pi0 * np.abs(brrl.median_advantage(t64(q0), t64(pi0)).numpy())).sum(1)
    assert improvement == pytest.approx(eps * b, abs=1e-8)
    assert b > 0


@pytest.mark.parametrize("seed", range(30))
def test_theorem_4_2_asymmetric_bounds_improve_by_the_expected_gain(seed):
    rng = np.random.default_rng(1000 + seed)
    c_low, c_high = float(rng.uniform(0, 0.9)), float(rng.uniform(1.1, 4.0))
    improvement, d_star, pi0, q0, v0, ratio = improvement_and_bound(seed, c_low=c_low, c_high=c_high)
    gain = d_star @ ((pi0 * ratio * q0).sum(1) - v0)
    assert improvement == pytest.approx(gain, abs=1e-8)
    assert improvement > 0


# ---------------------------------------------------------------- losses


def test_ppo_loss_hand_values():
    ratio, adv = t64([1.5, 0.5, 1.1, 0.5]), t64([2.0, -2.0, 1.0, 2.0])
    torch.testing.assert_close(brrl.ppo_loss(ratio, adv, 0.2), t64([-2.4, 1.6, -1.1, -1.0]))


def test_ppo_equivalent_loss_differs_from_ppo_by_a_constant_in_ratio():
    rng = np.random.default_rng(7)
    adv = t64(rng.normal(size=500))
    ratio = t64(rng.uniform(0.2, 2.0, size=500)).requires_grad_()
    l_ppo, l_eq = brrl.ppo_loss(ratio, adv, 0.2), brrl.ppo_equivalent_loss(ratio, adv, 0.2)
    # l′ − l_PPO = A·(1 + ε·sign(A)), independent of ρ.
    torch.testing.assert_close(l_eq - l_ppo, adv * (1 + 0.2 * torch.sign(adv)))
    (g_ppo,) = torch.autograd.grad(l_ppo.sum(), ratio)
    (g_eq,) = torch.autograd.grad(l_eq.sum(), ratio)
    torch.testing.assert_close(g_ppo, g_eq)
    assert (g_eq != 0).any() and (g_eq == 0).any()
    assert (l_eq >= 0).all()


def test_bpo_loss_hand_values_and_v_shape():
    ratio = t64([1.0, 1.5, 0.5, 1.0]).requires_grad_()
    adv, median_adv = t64([2.0, 2.0, -1.0, 3.0]), t64([1.0, 1.0, -1.0, -0.5])
    loss = brrl.bpo_loss(ratio, adv, median_adv, 0.2)
    torch.testing.assert_close(loss.detach(), t64([2 * 0.2, 2 * 0.3, 1 * 0.3, 3 * 0.2]))
    (grad,) = torch.autograd.grad(loss.sum(), ratio)
    # Below the target it pushes up, above it pushes back down (PPO's loss would be flat there).
    torch.testing.assert_close(grad, t64([-2.0, 2.0, -1.0, 3.0]))


def test_bpo_log_and_sqrt_distances_hand_values_and_their_pull_in_log_ratio():
    ratio = t64([1.0, 1.5, 0.5, 1.0]).requires_grad_()
    adv, median_adv = t64([2.0, 2.0, -1.0, 3.0]), t64([1.0, 1.0, -1.0, -0.5])
    loss = brrl.bpo_loss(ratio, adv, median_adv, 0.2, distance="log")
    expected = [2 * np.log(1.2), 2 * np.log(1.5 / 1.2), 1 * np.log(0.8 / 0.5), 3 * np.log(1 / 0.8)]
    torch.testing.assert_close(loss.detach(), t64(expected))
    loss = brrl.bpo_loss(ratio, adv, median_adv, 0.2, distance="sqrt")
    r = np.sqrt
    expected = [2 * 2 * (r(1.2) - 1), 2 * 2 * (r(1.5) - r(1.2)), 1 * 2 * (r(0.8) - r(0.5)), 3 * 2 * (1 - r(0.8))]
    torch.testing.assert_close(loss.detach(), t64(expected))
    # d/d log ρ: the total variation pulls with |A|·ρ (0.04 for a ratio crushed to 0.04, 4 for one grown to 4), the
    # square-root distance with |A|·√ρ (0.2 and 2), the log distance with |A| on both sides of the target.
    log_ratio = t64([np.log(0.04), np.log(4.0)]).requires_grad_()
    adv, median_adv = t64([1.0, 1.0]), t64([1.0, 1.0])  # target 1.2
    grads = {d: torch.autograd.grad(brrl.bpo_loss(log_ratio.exp(), adv, median_adv, 0.2, distance=d).sum(), log_ratio)[0]
             for d in ("tv", "sqrt", "log")}
    torch.testing.assert_close(grads["tv"], t64([-0.04, 4.0]))
    torch.testing.assert_close(grads["sqrt"], t64([-0.2, 2.0]))
    torch.testing.assert_close(grads["log"], t64([-1.0, 1.0]))
    with pytest.raises(ValueError, match="distance must be 'tv', 'sqrt' or 'log', got 'kl'"):
        brrl.bpo_loss(ratio, adv[:1].expand(4), median_adv[:1].expand(4), 0.2, distance="kl")


def test_smoothed_target_tends_to_sign_target_as_temperature_goes_to_zero():
    median_adv = t64(np.concatenate([np.linspace(-3, -0.01, 50), [0.0], np.linspace(0.01, 3, 50)]))
    sign_target = brrl.smoothed_target_ratio(median_adv, 0.25, 0.0)
    gaps = [(brrl.smoothed_target_ratio(median_adv, 0.25, lam) - sign_target).abs().max().item() for lam in (1.0, 1e-1, 1e-2, 1e-4)]
    assert gaps == sorted(gaps, reverse=True) and gaps[0] > 0.1 and gaps[-1] < 1e-12
    # λ > 0 is 1 − ε + 2ε·σ(Ã/λ), and bpo_loss uses it.
    torch.testing.assert_close(brrl.smoothed_target_ratio(median_adv, 0.25, 0.5), 0.75 + 0.5 * torch.sigmoid(median_adv / 0.5))
    ratio, adv = torch.ones_like(median_adv), torch.full_like(median_adv, -2.0)
    torch.testing.assert_close(brrl.bpo_loss(ratio, adv, median_adv, 0.25, 0.5), 2.0 * (1 - brrl.smoothed_target_ratio(median_adv, 0.25, 0.5)).abs())
    with pytest.raises(ValueError, match="temperature must be >= 0"):
        brrl.smoothed_target_ratio(median_adv, 0.25, -1.0)


def fit_softmax_policy(loss_fn, pi0: torch.Tensor, steps: int = 4000, lr: float = 0.003) -> torch.Tensor:
    """Minimise E_{a~π0}[loss(ρ(a))] by plain gradient descent on softmax logits; return the final ratio."""
    logits = pi0.log().clone().requires_grad_()
    opt = torch.optim.SGD([logits], lr=lr)
    for _ in range(steps):
        ratio = torch.softmax(logits, -1) / pi0
        loss = (pi0 * loss_fn(ratio)).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return (torch.softmax(logits, -1) / pi0).detach()


def test_gradient_descent_on_bpo_loss_reaches_pi_star_and_ppo_loss_does_not():
    # Skewed bandit: one disastrous action drags the mean far below the median.
    q = t64([-10.0, 0.0, 0.2, 0.3])
    pi0 = t64([0.25, 0.25, 0.25, 0.25])
    eps = 0.2
    adv = q - (pi0 * q).sum()  # mean baseline: A > 0 for actions 1, 2, 3
    median_adv = brrl.median_advantage(q, pi0)  # median 0.1: Ã < 0 for actions 0, 1
    pi_star_ratio = brrl.optimal_ratio(q, pi0, eps)
    torch.testing.assert_close(pi_star_ratio, t64([0.8, 0.8, 1.2, 1.2]))

    bpo_ratio = fit_softmax_policy(lambda r: brrl.bpo_loss(r, adv, median_adv, eps), pi0)
    torch.testing.assert_close(bpo_ratio, pi_star_ratio, atol=1e-2, rtol=0)
    for distance in ("sqrt", "log"):  # the same minimiser
        other_ratio = fit_softmax_policy(lambda r: brrl.bpo_loss(r, adv, median_adv, eps, distance=distance), pi0)
        torch.testing.assert_close(other_ratio, pi_star_ratio, atol=1e-2, rtol=0)

    ppo_ratio = fit_softmax_policy(lambda r: brrl.ppo_loss(r, adv, eps), pi0)
    # PPO drives every A > 0 action to 1 + ε (including action 1, which π* lowers to 1 − ε) ...
    torch.testing.assert_close(ppo_ratio[1:], t64([1.2, 1.2, 1.2]), atol=1e-2, rtol=0)
    # ... and, since 1 + ε·sign(A) is not a distribution here, action 0 absorbs the rest, far outside the band.
    assert ppo_ratio[0].item() == pytest.approx(1 - 3 * eps, abs=2e-2)
    assert (ppo_ratio[1] - pi_star_ratio[1]).abs() > 2 * eps - 1e-2


def test_cem_limit_is_pi0_conditioned_on_the_top_alpha_actions():
    rng = np.random.default_rng(8)
    for _ in range(100):
        n = int(rng.integers(3, 9))
        q, pi0 = rng.normal(size=n), rng.dirichlet(np.ones(n))
        order = np.argsort(-q)
        k = int(rng.integers(1, n))
        elite = order[:k]
        alpha = pi0[elite].sum()
        pi_star = pi0 * brrl.optimal_ratio(t64(q), t64(pi0), c_low=0.0, c_high=1.0 / alpha).numpy()
        expected = np.zeros(n)
        expected[elite] = pi0[elite] / alpha
        np.testing.assert_allclose(pi_star, expected, atol=1e-12)


def minimise_median_loss(returns: torch.Tensor, start: float, temperature: float) -> float:
    """argmin_u of the mean median loss over a scalar u, by L-BFGS."""
    u = torch.tensor(start, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([u], max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = brrl.median_loss(returns, u, temperature).mean()
        loss.backward()
        return loss

    opt.step(closure)
    return u.item()


def test_median_loss_minimiser_is_near_the_median_not_the_mean():
    rng = np.random.default_rng(9)
    returns = t64(rng.lognormal(mean=3.0, sigma=1.2, size=4001))
    median, mean = returns.median().item(), returns.mean().item()
    assert mean - median > 10  # skewed sample with a large spread
    assert abs(minimise_median_loss(returns, mean, temperature=1.0) - median) < 0.05 * (mean - median)
    # λ = 0 is half the absolute error; large λ tends to a quadratic whose minimiser is the mean.
    torch.testing.assert_close(brrl.median_loss(t64([3.0, -1.0]), t64([1.0, 1.0]), 0.0), t64([1.0, 1.0]))
    assert abs(minimise_median_loss(returns, median, temperature=1e4) - mean) < 0.05 * (mean - median)


# ---------------------------------------------------------------- GBPO


def test_group_advantage_hand_values_and_all_equal_group():
    adv = brrl.group_advantage(t64([[1.0, 0.0, 0.0, 1.0], [0.5, 0.5, 0.5, 0.5]]))
    s = 0.5 / np.sqrt(1 / 3)  # unbiased std of [1, 0, 0, 1] is sqrt(1/3)
    torch.testing.assert_close(adv, t64([[s, -s, -s, s], [0.0, 0.0, 0.0, 0.0]]), atol=1e-5, rtol=0)


def test_gbpo_target_binary_scores_sigmoid_and_exact_ties():
    scores = t64([1.0, 1.0, 1.0, 0.0])  # median 1: three responses tie at the median
    smoothed = brrl.gbpo_target_ratio(scores, 0.2, 0.2)
    torch.testing.assert_close(smoothed, t64([1.0, 1.0, 1.0, 0.8]))  # σ(0) = 1/2 at the tie
    exact = brrl.gbpo_target_ratio(scores, 0.2, 0.2, exact_ties=True)
    tie = 1 + 0.2 * (0.25 - 0.0) / 0.75  # 1 + ε(P− − P+)/P0
    torch.testing.assert_close(exact, t64([tie, tie, tie, 0.8]))
    assert exact.mean().item() == pytest.approx(1.0, abs=1e-12) and smoothed.mean().item() == pytest.approx(0.95)
    # No tie at the median, symmetric band: both give 1 ± ε.
    balanced = t64([1.0, 0.0, 0.0, 1.0])
    for exact_ties in (False, True):
        torch.testing.assert_close(brrl.gbpo_target_ratio(balanced, 0.2, 0.2, exact_ties=exact_ties), t64([1.2, 0.8, 0.8, 1.2]))
    # Asymmetric band (0.8, 1.3): the sigmoid target keeps the median split (mean ratio 1.05); the exact
    # target moves the threshold to the α = 0.2/0.5 = 0.4 quantile: the top group gets 0.8 + 0.5·0.8 = 1.2.
    torch.testing.assert_close(brrl.gbpo_target_ratio(balanced, 0.2, 0.3), t64([1.3, 0.8, 0.8, 1.3]))
    exact = brrl.gbpo_target_ratio(balanced, 0.2, 0.3, exact_ties=True)
    torch.testing.assert_close(exact, t64([1.2, 0.8, 0.8, 1.2]))


def test_gbpo_loss_hand_values_and_no_gradient_for_an_all_equal_group():
    scores = t64([[2.0, 0.0, 1.0], [0.7, 0.7, 0.7]])
    adv = brrl.group_advantage(scores)
    target = brrl.gbpo_target_ratio(scores, 0.2, 0.2)
    ratio = t64(np.full((2, 3, 5), 1.1)).requires_grad_()  # 5 tokens per response
    loss = brrl.gbpo_loss(ratio, adv[..., None], target[..., None])
    # group 0: std 1, A = [1, -1, 0], target [1.2, 0.8, 1.0] → |1.1 − target|·|A| = [0.1, 0.3, 0]
    torch.testing.assert_close(loss[0, :, 0], t64([0.1, 0.3, 0.0]), atol=1e-6, rtol=0)
    torch.testing.assert_close(loss[1], torch.zeros(3, 5, dtype=torch.float64))
    (grad,) = torch.autograd.grad(loss.mean(), ratio)
    assert (grad[1] == 0).all() and (grad[0, 0] < 0).all() and (grad[0, 1] > 0).all()
