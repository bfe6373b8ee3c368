"""brrl_tabular.py: exact models of gymnasium's toy-text environments, Theorem 4.2 at every step, the PPO target
against π*, the CEM limit, bad input and a smoke run of the script."""

from __future__ import annotations

import dataclasses
import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import brrl_tabular as bt
from benchmarks.tb import read_scalars
from common import brrl
from tests.tabular import evaluate as reference_evaluate
from tests.tabular import visitation as reference_visitation

ROOT = Path(__file__).resolve().parents[1]
ENVS = ["FrozenLake-v1", "FrozenLake8x8-v1", "CliffWalking-v1", "Taxi-v4"]
GAMMA = 0.99


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """The 500-state LU factorisations run several times faster on one thread on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def models() -> dict[str, bt.TabularModel]:
    return {env_id: bt.build_model(env_id) for env_id in ENVS}


def uniform(model: bt.TabularModel) -> torch.Tensor:
    return torch.full((model.n_states, model.n_actions), 1.0 / model.n_actions, dtype=torch.float64)


def np64(x: torch.Tensor) -> np.ndarray:
    return x.numpy()


# ---------------------------------------------------------------- the exact model and its evaluation


def test_frozenlake_model_hand_values(models):
    model = models["FrozenLake-v1"]
    P, R = np64(model.transitions), np64(model.rewards)
    assert P.shape == (16, 4, 16) and R.shape == (16, 4)
    np.testing.assert_array_equal(np64(model.d0), np.eye(16)[0])
    # Slippery: from the start, LEFT (0) slides left (stays), up (stays) or down (to 4), 1/3 each.
    np.testing.assert_allclose(P[0, 0], np.eye(16)[0] * 2 / 3 + np.eye(16)[4] / 3, atol=1e-15)
    # From 14, RIGHT (2) reaches the goal 15 with 1/3 (reward 1, terminated: the mass leaves), else 10 or 14.
    assert R[14, 2] == pytest.approx(1 / 3, abs=1e-15)
    np.testing.assert_allclose(P[14, 2], np.eye(16)[10] / 3 + np.eye(16)[14] / 3, atol=1e-15)
    # Holes and the goal end the episode: no outgoing mass, no reward; the start row keeps all of its mass.
    ends = [5, 7, 11, 12, 15]
    np.testing.assert_array_equal(P[ends], 0.0)
    np.testing.assert_array_equal(R[ends], 0.0)
    np.testing.assert_allclose(P[0].sum(-1), 1.0, atol=1e-15)


def test_evaluate_matches_the_independent_numpy_reference(models):
    model = models["Taxi-v4"]
    rng = np.random.default_rng(0)
    pi = rng.dirichlet(np.ones(model.n_actions), size=model.n_states)
    ev = bt.evaluate(model, torch.as_tensor(pi), GAMMA)
    P, R, d0 = np64(model.transitions), np64(model.rewards), np64(model.d0)
    v, q = reference_evaluate(P, R, GAMMA, pi)
    np.testing.assert_allclose(np64(ev.v), v, rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(np64(ev.q), q, rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(np64(ev.d), reference_visitation(P, GAMMA, pi, d0), rtol=1e-10, atol=1e-12)
    assert ev.eta == pytest.approx(d0 @ v, abs=1e-9)
    r_pi = (torch.as_tensor(pi) * model.rewards).sum(1)
    assert float(ev.d @ r_pi) == pytest.approx(ev.eta, abs=1e-9)  # η = d0·V_π = d_π·r_π


def test_policy_iteration_finds_the_13_step_cliff_path(models):
    model = models["CliffWalking-v1"]
    history = bt.run_method(model, uniform(model), bt.Method("pi", "pi", "policy_iteration"), 8, GAMMA)
    # Up, eleven times right, down: 13 steps of reward −1, then the goal ends the episode.
    assert history.eta[-1] == pytest.approx(-(1 - GAMMA**13) / (1 - GAMMA), abs=1e-9)
    # Bellman optimality at the end: V = max_a Q.
    ev = bt.evaluate(model, history.policy, GAMMA)
    torch.testing.assert_close(ev.v, ev.q.max(-1).values, rtol=0, atol=1e-9)


# ---------------------------------------------------------------- monotone improvement and Theorem 4.2


BOUNDED = [bt.Method("b", "b", "bounded", eps=0.2), bt.Method("a", "a", "asymmetric", c_low=0.5, c_high=1.3),
           bt.Method("c", "c", "cem", c_low=0.0, c_high=1 / 0.3)]


@pytest.mark.parametrize("env_id", ENVS)
def test_bounded_ratio_iterations_improve_monotonically(models, env_id):
    model = models[env_id]
    for method in BOUNDED:
        history = bt.run_method(model, uniform(model), method, 12, GAMMA)
        improvements = history.improvements
        assert (improvements >= -1e-10).all(), (method.kind, improvements.min())
        assert improvements[0] > 1e-4 * abs(history.eta[0]) + 1e-4
        assert max(history.gain_deviation) <= bt.THEOREM_TOL
        assert max(history.band_excess) <= bt.ROUNDING


@pytest.mark.parametrize("env_id", ENVS)
def test_theorem_4_2_identity_at_every_step_against_an_independent_evaluation(models, env_id):
    """Δη = ε·B with B = E_{d_{π*}}E_{π0}|Q − μ|, every step, with η, Q and d from tests/tabular.py."""
    model, eps, steps = models[env_id], 0.2, 6 if env_id == "Taxi-v4" else 10
    history = bt.run_method(model, uniform(model), bt.Method("b", "b", "bounded", eps=eps), steps, GAMMA)
    P, R, d0 = np64(model.transitions), np64(model.rewards), np64(model.d0)
    pi = np64(uniform(model))
    v, q = reference_evaluate(P, R, GAMMA, pi)
    etas = [d0 @ v]
    for k in range(steps):
        new_pi = pi * brrl.optimal_ratio(torch.as_tensor(q), torch.as_tensor(pi), eps).numpy()
        new_v, new_q = reference_evaluate(P, R, GAMMA, new_pi)
        d_new = reference_visitation(P, GAMMA, new_pi, d0)
        b = d_new @ (pi * np.abs(brrl.median_advantage(torch.as_tensor(q), torch.as_tensor(pi)).numpy())).sum(1)
        assert d0 @ new_v - d0 @ v == pytest.approx(eps * b, abs=1e-8), k
        assert history.b[k] == pytest.approx(b, rel=1e-9)
        pi, v, q = new_pi, new_v, new_q
        etas.append(d0 @ v)
    np.testing.assert_allclose(history.eta, etas, rtol=1e-10, atol=1e-10)
    assert max(history.eps_b_deviation + history.gain_deviation) <= 1e-8
    assert min(history.b) > 0


def test_the_theorem_check_fails_loudly_when_the_ratio_is_wrong(monkeypatch, tmp_path):
    """Swap π* for the renormalised PPO target inside the script: Δη ≠ ε·B and the run must stop."""

    def ppo_ratio(q, pi0, eps=None, *, c_low=None, c_high=None):
        return bt.ppo_target_update(q, pi0, eps) / pi0

    monkeypatch.setattr(brrl, "optimal_ratio", ppo_ratio)
    monkeypatch.chdir(tmp_path)
    args = bt.Args(env_ids=("FrozenLake-v1",), eps=(0.2,), ppo_target=False, asym_bounds=(), cem_alpha=(),
                   policy_iteration=False, iterations=3, plot=False)
    with pytest.raises(SystemExit, match=r"^error: Theorem 4.2 check failed on FrozenLake-v1, bounded ratio π\*, ε=0.2, step "):
        bt.main(args)
    assert not (tmp_path / "docs").exists()  # nothing is written for a failed run


# ---------------------------------------------------------------- the PPO target against π*


def bandit(q: list[float]) -> bt.TabularModel:
    """One state whose every action ends the episode with reward Q(a): Q_π = R for every π."""
    n = len(q)
    return bt.TabularModel("bandit", torch.zeros(1, n, 1, dtype=torch.float64),
                           torch.tensor([q], dtype=torch.float64), torch.ones(1, dtype=torch.float64))


def test_ppo_target_leaves_the_ratio_band_on_a_skewed_state_and_pi_star_does_not():
    # One disastrous action drags the mean V = −2.375 far below the median μ = 0.1.
    model, eps = bandit([-10.0, 0.0, 0.2, 0.3]), 0.2
    pi0 = uniform(model)
    q = bt.evaluate(model, pi0, GAMMA).q
    ppo_ratio = bt.ppo_target_update(q, pi0, eps) / pi0
    star_ratio = bt.bounded_ratio_update(q, pi0, eps) / pi0
    # PPO target: (1 + ε·sign(A))/Z with Z = 1 + ε(P+ − P−) = 1.1; action 0 drops to 0.8/1.1 < 1 − ε.
    torch.testing.assert_close(ppo_ratio, torch.tensor([[0.8, 1.2, 1.2, 1.2]], dtype=torch.float64) / 1.1)
    torch.testing.assert_close(star_ratio, torch.tensor([[0.8, 0.8, 1.2, 1.2]], dtype=torch.float64))
    assert bt.band_excess(pi0 * ppo_ratio, pi0, (1 - eps, 1 + eps)) == pytest.approx(0.8 - 0.8 / 1.1, abs=1e-12)
    assert bt.band_excess(pi0 * star_ratio, pi0, (1 - eps, 1 + eps)) == 0.0
    assert ppo_ratio[0, 1] > 1 > star_ratio[0, 1]  # above the mean, below the median: PPO raises it, π* lowers it
    # The same through the main loop, and Theorem 4.2 on this state: Δη = ε·E|Q − μ| = 0.2·(10.1 + 0.1 + 0.1 + 0.2)/4.
    star = bt.run_method(model, pi0, bt.Method("b", "b", "bounded", eps=eps), 1, GAMMA)
    ppo = bt.run_method(model, pi0, bt.Method("p", "p", "ppo_target", eps=eps), 1, GAMMA)
    assert star.improvements[0] == pytest.approx(0.525, abs=1e-12) and star.b[0] == pytest.approx(2.625, abs=1e-12)
    assert star.band_excess == [0.0] and ppo.band_excess[0] == pytest.approx(0.8 - 0.8 / 1.1, abs=1e-12)


@pytest.mark.parametrize("env_id", ["FrozenLake-v1", "CliffWalking-v1"])
def test_on_real_environments_only_the_ppo_target_leaves_the_band(models, env_id):
    model = models[env_id]
    for eps in (0.1, 0.3):
        star = bt.run_method(model, uniform(model), bt.Method("b", "b", "bounded", eps=eps), 15, GAMMA)
        ppo = bt.run_method(model, uniform(model), bt.Method("p", "p", "ppo_target", eps=eps), 15, GAMMA)
        assert max(star.band_excess) <= bt.ROUNDING
        assert max(ppo.band_excess) > eps / 4


# ---------------------------------------------------------------- the CEM limit


def test_cem_update_is_pi0_restricted_to_the_elite_actions(models):
    """On Taxi's Q values: a π0 holding mass α on the two best actions of every state becomes π0 on them, renormalised."""
    model, alpha = models["Taxi-v4"], 0.3
    rng = np.random.default_rng(1)
    q = bt.evaluate(model, torch.as_tensor(rng.dirichlet(np.ones(6), size=model.n_states)), GAMMA).q
    order = torch.argsort(q, dim=-1, descending=True)
    elite = torch.zeros_like(q, dtype=torch.bool).scatter_(-1, order[:, :2], True)
    q_sorted = torch.gather(q, -1, order)
    separated = (q_sorted[:, 1] - q_sorted[:, 2]) > 1e-9  # the elite is unambiguous
    assert separated.sum() > 100
    inside = torch.as_tensor(rng.dirichlet(np.ones(2), size=model.n_states))
    outside = torch.as_tensor(rng.dirichlet(np.ones(4), size=model.n_states))
    pi0 = torch.zeros_like(q)
    pi0[elite] = (alpha * inside).flatten()
    pi0[~elite] = ((1 - alpha) * outside).flatten()
    pi_star = bt.cem_update(q, pi0, alpha)
    torch.testing.assert_close(pi_star[separated], (pi0 * elite / alpha)[separated], rtol=0, atol=1e-12)
    torch.testing.assert_close(pi_star.sum(-1), torch.ones(model.n_states, dtype=torch.float64), rtol=0, atol=1e-12)


def test_cem_step_from_uniform_keeps_the_best_half_of_the_actions(models):
    model = models["FrozenLake8x8-v1"]
    pi0 = uniform(model)
    q = bt.evaluate(model, pi0, GAMMA).q
    history = bt.run_method(model, pi0, bt.Method("c", "c", "cem", c_low=0.0, c_high=2.0), 1, GAMMA)
    q_sorted = torch.sort(q, -1, descending=True).values
    separated = (q_sorted[:, 1] - q_sorted[:, 2]) > 1e-9
    top2 = q >= q_sorted[:, 1:2]
    # After one step π_1 = uniform over the two best actions of Q_{π0}; η of that policy, evaluated directly.
    expected = torch.where(separated[:, None], top2 * 0.5, pi0)  # tied states keep a valid (fractional) π
    assert separated.sum() > 30
    pi1 = bt.cem_update(q, pi0, 0.5)
    torch.testing.assert_close(pi1[separated], expected[separated], rtol=0, atol=1e-12)
    assert history.eta[1] == pytest.approx(bt.evaluate(model, pi1, GAMMA).eta, abs=1e-12)


def test_policy_iteration_is_the_ceiling(models):
    model = models["FrozenLake-v1"]
    histories = bt.run_env(model, uniform(model), bt.methods_from_args(bt.Args(iterations=25)), 25, GAMMA)
    ceiling = histories[-1]
    assert ceiling.method.kind == "policy_iteration"
    for h in histories:
        assert max(h.eta) <= ceiling.eta[-1] + 1e-9, h.method.label


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("overrides, message", [
    (dict(eps=(0.2, 1.5)), "--eps values must lie in (0, 1), got 1.5"),
    (dict(eps=(0.0,)), "--eps values must lie in (0, 1), got 0.0"),
    (dict(iterations=0), "--iterations must be positive, got 0"),
    (dict(gamma=1.0), "--gamma must lie in (0, 1), got 1.0"),
    (dict(asym_bounds=((1.2, 1.5),)), "--asym-bounds pairs must satisfy 0 <= c_low < 1 < c_high, got 1.2 1.5"),
    (dict(cem_alpha=(1.0,)), "--cem-alpha values must lie in (0, 1), got 1.0"),
    (dict(env_ids=()), "--env-ids needs at least one environment"),
])
def test_check_args_rejects_bad_settings(overrides, message):
    with pytest.raises(SystemExit) as exc:
        bt.check_args(dataclasses.replace(bt.Args(), **overrides))
    assert str(exc.value) == f"error: {message}"


@pytest.mark.parametrize("env_id, message", [
    ("NoSuchEnv-v0", "error: cannot make environment 'NoSuchEnv-v0': Environment `NoSuchEnv` doesn't exist."),
    ("Blackjack-v1", "error: Blackjack-v1 has no tabular model (needs discrete spaces, env.unwrapped.P and an initial state distribution)"),
    ("CartPole-v1", "error: CartPole-v1 has no tabular model (needs discrete spaces, env.unwrapped.P and an initial state distribution)"),
])
def test_build_model_rejects_unknown_envs_and_envs_without_a_model(env_id, message):
    with pytest.raises(SystemExit) as exc:
        bt.build_model(env_id)
    assert str(exc.value) == message


def test_initial_policy_from_a_file_is_checked(models, tmp_path):
    model = models["FrozenLake-v1"]
    rng = np.random.default_rng(2)
    good = rng.dirichlet(np.ones(4), size=16)
    np.save(tmp_path / "good.npy", good)
    np.testing.assert_allclose(np64(bt.initial_policy(str(tmp_path / "good.npy"), model, rng)), good, atol=1e-15)
    np.save(tmp_path / "shape.npy", good[:8])
    with pytest.raises(SystemExit, match=r"^error: --init-policy .*shape.npy has shape \(8, 4\); FrozenLake-v1 needs \(16, 4\)$"):
        bt.initial_policy(str(tmp_path / "shape.npy"), model, rng)
    np.save(tmp_path / "rows.npy", good * 2)
    with pytest.raises(SystemExit, match=r"every row must be a probability distribution$"):
        bt.initial_policy(str(tmp_path / "rows.npy"), model, rng)
    with pytest.raises(SystemExit, match=r"^error: --init-policy must be uniform, random or a readable .npy file"):
        bt.initial_policy("greedy", model, rng)


# ---------------------------------------------------------------- the script


def test_smoke_script_runs_from_another_directory_and_fails_in_one_line(tmp_path):
    ok = subprocess.run([sys.executable, str(ROOT / "brrl_tabular.py"), "--env-ids", "FrozenLake-v1", "CliffWalking-v1",
                         "--iterations", "6"], cwd=tmp_path, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    deviations = [float(x) for x in re.findall(r"largest Theorem 4\.2 deviation: (\S+)", ok.stdout)]
    assert len(deviations) == 2 and max(deviations) <= 1e-8
    summary = (tmp_path / "docs" / "tabular.md").read_text()
    assert "## FrozenLake-v1" in summary and "## CliffWalking-v1" in summary and "--iterations 6" in summary
    if importlib.util.find_spec("matplotlib") is not None:
        assert (tmp_path / "docs" / "img" / "tabular.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert "![η against the iteration](img/tabular.png)" in summary
    (run,) = (tmp_path / "runs").iterdir()
    scalars = read_scalars(run)
    eta = [v for _, v in scalars["tabular/FrozenLake-v1/bounded_eps0.2/eta"]]
    assert len(eta) == 7 and all(b >= a - 1e-7 for a, b in zip(eta, eta[1:]))  # float32 in the event file
    assert {"tabular/CliffWalking-v1/policy_iteration/eta", "tabular/CliffWalking-v1/cem_alpha0.3/thm42_deviation",
            "tabular/CliffWalking-v1/ppo_target_eps0.4/band_excess", "tabular/CliffWalking-v1/bounded_eps0.1/B"} <= set(scalars)

    bad = subprocess.run([sys.executable, str(ROOT / "brrl_tabular.py"), "--env-ids", "Taxi-v3"], cwd=tmp_path,
                         capture_output=True, text=True)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().splitlines()[-1] == (
        "error: cannot make environment 'Taxi-v3': Environment version v3 for `Taxi` is deprecated. Please use `Taxi-v4` instead.")
