"""Exact bounded-ratio policy iteration on gymnasium's tabular (toy-text) environments.

The theory of Ao et al., "Bounded Ratio Reinforcement Learning" (arXiv 2604.18578, 2026), shown on real
environments with known dynamics (notation and equations: shared/docs/brrl-math.md and common/brrl.py).
FrozenLake, FrozenLake8x8, CliffWalking and Taxi expose their full transition model (`env.unwrapped.P`),
so Q of any policy is one linear solve away. Starting from a uniform (or given) policy, the script iterates
exact updates and records the expected discounted return η = E_{s~d0}[V(s)] after each one:

- bounded-ratio iteration π_{k+1} = π*(π_k) of Theorem 4.1 (`brrl.optimal_ratio`), for several ε;
- the PPO-target iteration π_{k+1} ∝ (1 + ε·sign(A))·π_k with the mean baseline A = Q − V;
- asymmetric bounds c_low ≤ ρ ≤ c_high, and the CEM limit c_low = 0, c_high = 1/α (paper §4.6);
- classic policy iteration (greedy in Q), the ceiling.

For every bounded-ratio step it checks Theorem 4.2 exactly: η(π*) − η(π0) = E_{d_{π*}}[E_{π0}[ρ*Q] − V]
and, for symmetric bounds, = ε·B with B = E_{d_{π*}}E_{π0}|Q − μ|; the largest deviation is printed and
the run fails if it exceeds 1e-8.

    python brrl_tabular.py                       # all four environments; writes docs/img/tabular.png and docs/tabular.md
    python brrl_tabular.py --env-ids Taxi-v4 --eps 0.1 0.3 --iterations 200 --out-dir /tmp/tab

The model is the infinite-horizon discounted MDP of `env.unwrapped.P`: the TimeLimit wrapper is not part
of it, and a transition flagged `terminated` pays its reward and then ends in an absorbing state of value 0.
"""

import dataclasses
import math
import os
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
import tyro
from torch import Tensor
from torch.utils.tensorboard import SummaryWriter

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the repository root, for `common`
from common import brrl  # noqa: E402

THEOREM_TOL = 1e-8
"""largest allowed |measured improvement − predicted improvement| (absolute, in units of return)"""
ROUNDING = 1e-12
"""distances below this are reported as 0 (float64 rounding of ratios)"""


@dataclass
class Args:
    exp_name: str = os.path.basename(__file__)[: -len(".py")]
    """the name of this experiment (part of the run name)"""
    seed: int = 1
    """seed of NumPy and torch (used by --init-policy random)"""
    env_ids: tuple[str, ...] = ("FrozenLake-v1", "FrozenLake8x8-v1", "CliffWalking-v1", "Taxi-v4")
    """gymnasium ids of environments with a tabular model (env.unwrapped.P and a discrete state space)"""
    eps: tuple[float, ...] = (0.1, 0.2, 0.4)
    """ratio bounds ε of the bounded-ratio (and PPO-target) iterations, each in (0, 1)"""
    ppo_target: bool = True
    """also run the PPO-target iteration π ∝ (1 + ε·sign(Q − V))·π_k for every ε"""
    asym_bounds: tuple[tuple[float, float], ...] = ((0.9, 1.5),)
    """asymmetric bounds as pairs `c_low c_high` (0 <= c_low < 1 < c_high); give several pairs in a row"""
    cem_alpha: tuple[float, ...] = (0.3,)
    """elite fractions α in (0, 1) of the CEM limit (c_low = 0, c_high = 1/α)"""
    policy_iteration: bool = True
    """also run classic policy iteration (greedy in Q), the ceiling"""
    iterations: int = 100
    """number of exact updates of every method"""
    gamma: float = 0.99
    """the discount factor gamma, in (0, 1)"""
    init_policy: str = "uniform"
    """initial policy: `uniform`, `random` (Dirichlet(1) per state, from --seed), or a .npy file of shape (states, actions)"""
    out_dir: str = "docs"
    """where the picture (OUT_DIR/img/tabular.png) and the summary (OUT_DIR/tabular.md) go, relative to the working directory"""
    plot: bool = True
    """draw the PNG (needs matplotlib); --no-plot writes the summary only"""


def check_args(args: Args) -> None:
    """Reject bad settings before anything starts: one line naming the problem, non-zero exit.
    Every numeric flag has its range here (written so that NaN fails too); tests/test_faults.py walks them all."""
    problems = [
        (not 0 <= args.seed < 2**32, f"--seed must lie in [0, 2**32 - 1] (NumPy's seed range), got {args.seed}"),
        (not args.exp_name or "/" in args.exp_name or "\\" in args.exp_name,  # it names a folder under runs/
         f"--exp-name must be a plain name, without '/' or '\\', got '{args.exp_name}'"),
        (len(args.env_ids) == 0, "--env-ids needs at least one environment"),
        (len(args.eps) == 0 and not args.asym_bounds and not args.cem_alpha,
         "nothing bounded to run: give --eps, --asym-bounds or --cem-alpha"),
        *((not 0.0 < eps < 1.0, f"--eps values must lie in (0, 1), got {eps}") for eps in args.eps),
        *((not 0.0 <= lo < 1.0 < hi < math.inf, f"--asym-bounds pairs must satisfy 0 <= c_low < 1 < c_high, got {lo} {hi}")
          for lo, hi in args.asym_bounds),
        *((not 0.0 < alpha < 1.0, f"--cem-alpha values must lie in (0, 1), got {alpha}") for alpha in args.cem_alpha),
        (args.iterations <= 0, f"--iterations must be positive, got {args.iterations}"),
        (not 0.0 < args.gamma < 1.0, f"--gamma must lie in (0, 1), got {args.gamma}"),
    ]
    for bad, message in problems:
        if bad:
            sys.exit(f"error: {message}")


def check_writable(folder) -> None:
    """Exit with one line naming `folder` if a scratch file cannot be written in it, or in the nearest folder above it
    that exists: found now, not after the work, and nothing is created for a run that fails."""
    folder = Path(folder).absolute()
    try:
        tempfile.TemporaryFile(dir=next(p for p in (folder, *folder.parents) if p.exists())).close()
    except OSError as e:
        sys.exit(f"error: cannot write to {folder}: {e.strerror or e}")


# ---------------------------------------------------------------- the exact model


@dataclass
class TabularModel:
    """P[s, a, s'] (sub-stochastic: the mass of terminating transitions leaves), R[s, a], d0[s]; float64."""

    env_id: str
    transitions: Tensor
    rewards: Tensor
    d0: Tensor

    @property
    def n_states(self) -> int:
        return self.rewards.shape[0]

    @property
    def n_actions(self) -> int:
        return self.rewards.shape[1]


def build_model(env_id: str) -> TabularModel:
    """Read the full model of a toy-text environment from env.unwrapped.P and its initial distribution.

    P[s][a] lists (probability, next state, reward, terminated). Rewards are expected values R[s, a];
    a terminated transition pays its reward and moves to an absorbing zero-value state, which is left out
    (its probability is missing from P[s, a, :]), so the states where an episode ends never get visited.
    """
    try:
        env = gym.make(env_id)
    except Exception as e:  # unknown id, deprecated version, missing dependency, ...
        sys.exit(f"error: cannot make environment '{env_id}': {str(e).strip().splitlines()[0]}")
    env_u = env.unwrapped
    table = getattr(env_u, "P", None)
    d0 = getattr(env_u, "initial_state_distrib", getattr(env_u, "isd", None))
    spaces_ok = isinstance(env.observation_space, gym.spaces.Discrete) and isinstance(env.action_space, gym.spaces.Discrete)
    env.close()
    if not isinstance(table, dict) or d0 is None or not spaces_ok:
        sys.exit(f"error: {env_id} has no tabular model (needs discrete spaces, env.unwrapped.P and an initial state distribution)")
    n_states, n_actions = int(env.observation_space.n), int(env.action_space.n)

    # Flatten the nested dict once (reading Python containers), then scatter with numpy.
    rows = [(s, a, p, s_next, r, term) for s, by_action in table.items() for a, outcomes in by_action.items()
            for p, s_next, r, term in outcomes]
    s, a, p, s_next, r, term = (np.array(column) for column in zip(*rows))
    s, a, s_next, term = s.astype(int), a.astype(int), s_next.astype(int), term.astype(bool)
    total = np.zeros((n_states, n_actions))
    np.add.at(total, (s, a), p)
    if not np.allclose(total, 1.0, atol=1e-9):
        sys.exit(f"error: {env_id}: env.unwrapped.P is not a complete model (some P[s][a] do not sum to 1)")
    rewards = np.zeros((n_states, n_actions))
    np.add.at(rewards, (s, a), p * r)
    transitions = np.zeros((n_states, n_actions, n_states))
    np.add.at(transitions, (s, a, s_next), np.where(term, 0.0, p))
    d0 = np.asarray(d0, dtype=np.float64)
    return TabularModel(env_id, *(torch.as_tensor(x, dtype=torch.float64) for x in (transitions, rewards, d0 / d0.sum())))


def initial_policy(spec: str, model: TabularModel, rng: np.random.Generator) -> Tensor:
    """π0 from --init-policy: uniform, random (Dirichlet), or a saved (states, actions) array."""
    shape = (model.n_states, model.n_actions)
    if spec == "uniform":
        pi = np.full(shape, 1.0 / model.n_actions)
    elif spec == "random":
        pi = rng.dirichlet(np.ones(model.n_actions), size=model.n_states)
    else:
        try:
            pi = np.asarray(np.load(spec), dtype=np.float64)
        except Exception as e:
            sys.exit(f"error: --init-policy must be uniform, random or a readable .npy file; {spec}: {type(e).__name__}: {e}")
        if pi.shape != shape:
            sys.exit(f"error: --init-policy {spec} has shape {pi.shape}; {model.env_id} needs {shape}")
        if (pi < 0).any() or not np.allclose(pi.sum(1), 1.0, atol=1e-9):
            sys.exit(f"error: --init-policy {spec}: every row must be a probability distribution")
    return torch.as_tensor(pi / pi.sum(1, keepdims=True), dtype=torch.float64)


# ---------------------------------------------------------------- exact evaluation


@dataclass
class Evaluation:
    v: Tensor  # V_π[s]
    q: Tensor  # Q_π[s, a]
    d: Tensor  # unnormalised discounted visitation d_π[s] = Σ_t γ^t Pr(s_t = s) from d0
    eta: float  # η(π) = d0·V_π = d_π·r_π


def evaluate(model: TabularModel, pi: Tensor, gamma: float) -> Evaluation:
    """V, Q and the visitation of π from one LU factorisation of (I − γ P_π)."""
    p_pi = torch.einsum("sa,sat->st", pi, model.transitions)
    r_pi = (pi * model.rewards).sum(1)
    lu, pivots = torch.linalg.lu_factor(torch.eye(model.n_states, dtype=torch.float64) - gamma * p_pi)
    v = torch.linalg.lu_solve(lu, pivots, r_pi[:, None])[:, 0]
    d = torch.linalg.lu_solve(lu, pivots, model.d0[:, None], adjoint=True)[:, 0]  # (I − γP_π)ᵀ d = d0
    q = model.rewards + gamma * model.transitions @ v
    return Evaluation(v, q, d, float(model.d0 @ v))


# ---------------------------------------------------------------- the update rules


def bounded_ratio_update(q: Tensor, pi: Tensor, eps=None, c_low=None, c_high=None) -> Tensor:
    """π* = π0·ρ*, the exact solution of the bounded-ratio problem in every state (Theorem 4.1)."""
    return pi * brrl.optimal_ratio(q, pi, eps, c_low=c_low, c_high=c_high)


def cem_update(q: Tensor, pi: Tensor, alpha: float) -> Tensor:
    """CEM limit (§4.6): c_low = 0, c_high = 1/α keeps the top-α mass of π0 (the elite) and renormalises it."""
    return bounded_ratio_update(q, pi, c_low=0.0, c_high=1.0 / alpha)


def ppo_target_update(q: Tensor, pi: Tensor, eps: float) -> Tensor:
    """PPO's fixed point π ∝ (1 + ε·sign(A))·π0 with the mean baseline A = Q − E_{π0}Q, renormalised."""
    advantage = q - (pi * q).sum(-1, keepdim=True)
    unnormalised = pi * (1.0 + eps * torch.sign(advantage))
    return unnormalised / unnormalised.sum(-1, keepdim=True)


def greedy_update(q: Tensor, pi: Tensor) -> Tensor:
    """Policy iteration: deterministic argmax of Q (first index on ties)."""
    return torch.nn.functional.one_hot(q.argmax(-1), q.shape[-1]).to(q.dtype)


@dataclass(frozen=True)
class Method:
    name: str  # for TensorBoard tags
    label: str  # for the plot and the summary
    kind: str  # "bounded", "asymmetric", "cem", "ppo_target" or "policy_iteration"
    eps: float | None = None
    c_low: float | None = None
    c_high: float | None = None

    @property
    def is_bounded(self) -> bool:
        """A bounded-ratio iteration: Theorem 4.2 applies and is checked."""
        return self.kind in ("bounded", "asymmetric", "cem")

    @property
    def band(self) -> tuple[float, float] | None:
        """The ratio band the update is meant to respect."""
        if self.eps is not None:
            return 1.0 - self.eps, 1.0 + self.eps
        return None if self.c_low is None else (self.c_low, self.c_high)

    def update(self, q: Tensor, pi: Tensor) -> Tensor:
        if self.kind == "bounded":
            return bounded_ratio_update(q, pi, self.eps)
        if self.kind in ("asymmetric", "cem"):
            return bounded_ratio_update(q, pi, c_low=self.c_low, c_high=self.c_high)
        if self.kind == "ppo_target":
            return ppo_target_update(q, pi, self.eps)
        return greedy_update(q, pi)


def methods_from_args(args: Args) -> list[Method]:
    methods = [Method(f"bounded_eps{eps:g}", f"bounded ratio π*, ε={eps:g}", "bounded", eps=eps) for eps in args.eps]
    if args.ppo_target:
        methods += [Method(f"ppo_target_eps{eps:g}", f"PPO target, ε={eps:g}", "ppo_target", eps=eps) for eps in args.eps]
    methods += [Method(f"asym_{lo:g}_{hi:g}", f"asymmetric [{lo:g}, {hi:g}]", "asymmetric", c_low=lo, c_high=hi)
                for lo, hi in args.asym_bounds]
    methods += [Method(f"cem_alpha{alpha:g}", f"CEM limit, α={alpha:g}", "cem", c_low=0.0, c_high=1.0 / alpha)
                for alpha in args.cem_alpha]
    if args.policy_iteration:
        methods.append(Method("policy_iteration", "policy iteration", "policy_iteration"))
    return methods


# ---------------------------------------------------------------- the main loop


@dataclass
class History:
    """Per-iteration record of one method on one environment (index k: the step π_k → π_{k+1})."""

    method: Method
    eta: list[float] = field(default_factory=list)  # η(π_0), ..., η(π_K)
    gain_deviation: list[float] = field(default_factory=list)  # |Δη − E_{d_{π+}}[E_{π_k}[ρQ] − V]|
    eps_b_deviation: list[float] = field(default_factory=list)  # |Δη − ε·B| (symmetric bounds only)
    b: list[float] = field(default_factory=list)  # B = E_{d_{π+}}E_{π_k}|Q − μ| (symmetric bounds only)
    band_excess: list[float] = field(default_factory=list)  # how far the ratio leaves the band (0 inside)
    policy: Tensor | None = None  # the last policy

    @property
    def improvements(self) -> np.ndarray:
        return np.diff(self.eta)

    @property
    def step_deviation(self) -> list[float]:
        """The larger of the two Theorem 4.2 deviations at each step (empty for rules it does not cover)."""
        if not self.eps_b_deviation:
            return list(self.gain_deviation)
        return [max(a, b) for a, b in zip(self.gain_deviation, self.eps_b_deviation)]

    @property
    def max_deviation(self) -> float:
        return max(self.step_deviation, default=0.0)


def band_excess(new_pi: Tensor, pi: Tensor, band: tuple[float, float]) -> float:
    """max over (s, a) with π(a|s) > 0 of the distance of ρ = π_new/π to the band (0 when inside)."""
    support = pi > 0
    ratio = new_pi[support] / pi[support]
    return float(torch.clamp(torch.maximum(band[0] - ratio, ratio - band[1]), min=0.0).max())


def run_method(model: TabularModel, pi0: Tensor, method: Method, iterations: int, gamma: float) -> History:
    """Iterate one update rule from π0 and record η; for bounded-ratio rules check Theorem 4.2 at every step."""
    history = History(method)
    pi, ev = pi0, evaluate(model, pi0, gamma)
    history.eta.append(ev.eta)
    for _ in range(iterations):
        new_pi = method.update(ev.q, pi)
        new_ev = evaluate(model, new_pi, gamma)
        improvement = new_ev.eta - ev.eta
        if method.is_bounded:
            # Performance difference with E_{π0}[ρ*] = 1: Δη = E_{d_{π*}}[E_{π0}[ρ*Q] − V] (ties, asymmetric bounds).
            gain = float(new_ev.d @ ((new_pi * ev.q).sum(1) - ev.v))
            history.gain_deviation.append(abs(improvement - gain))
            if method.kind == "bounded":  # Theorem 4.2 as stated: Δη = ε·B with the median advantage
                b = float(new_ev.d @ (pi * brrl.median_advantage(ev.q, pi).abs()).sum(1))
                history.b.append(b)
                history.eps_b_deviation.append(abs(improvement - method.eps * b))
        if method.band is not None:
            history.band_excess.append(band_excess(new_pi, pi, method.band))
        pi, ev = new_pi, new_ev
        history.eta.append(ev.eta)
    history.policy = pi
    return history


def run_env(model: TabularModel, pi0: Tensor, methods: list[Method], iterations: int, gamma: float) -> list[History]:
    return [run_method(model, pi0, method, iterations, gamma) for method in methods]


# ---------------------------------------------------------------- logging, picture, summary


def log_tensorboard(writer: SummaryWriter, env_id: str, histories: list[History]) -> None:
    for h in histories:
        prefix = f"tabular/{env_id}/{h.method.name}"
        for k, eta in enumerate(h.eta):
            writer.add_scalar(f"{prefix}/eta", eta, k)
        series = {"thm42_deviation": h.step_deviation, "B": h.b, "band_excess": h.band_excess}
        for name, values in series.items():
            for k, value in enumerate(values):
                writer.add_scalar(f"{prefix}/{name}", value, k + 1)


def style(method: Method, eps_values: tuple[float, ...]) -> dict:
    if method.kind in ("bounded", "ppo_target"):
        shade = (eps_values.index(method.eps) + 1) / (len(eps_values) + 1)
        import matplotlib

        color = matplotlib.colormaps["Blues" if method.kind == "bounded" else "Oranges"](0.35 + 0.6 * shade)
        return dict(color=color, ls="-" if method.kind == "bounded" else "--", lw=1.8)
    return {"asymmetric": dict(color="tab:green", ls="-.", lw=1.6), "cem": dict(color="tab:purple", ls=":", lw=2.0),
            "policy_iteration": dict(color="black", ls="-", lw=1.2)}[method.kind]


def plot(results: dict[str, list[History]], args: Args, path: Path) -> None:
    """One column per environment: η against the iteration (top) and the gap to the optimum η* on a log scale (bottom)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(results)
    fig, axes = plt.subplots(2, n, figsize=(4.2 * n + 2.6, 7.6), squeeze=False, sharex=True)
    for col, (env_id, histories) in enumerate(results.items()):
        optimum = best_eta(histories)
        for h in histories:
            x = np.arange(len(h.eta))
            axes[0, col].plot(x, h.eta, label=h.method.label, **style(h.method, args.eps))
            gap = np.maximum(optimum - np.array(h.eta), 1e-12)
            axes[1, col].plot(x, gap, **style(h.method, args.eps))
        axes[0, col].set_title(env_id)
        axes[1, col].set_yscale("log")
        axes[1, col].set_ylim(1e-12, None)
        axes[1, col].set_xlabel("iteration k")
        for ax in axes[:, col]:
            ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel(r"expected return $\eta(\pi_k)$")
    axes[1, 0].set_ylabel(r"gap to the best, $\eta^*-\eta(\pi_k)$")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="center right", fontsize=10, frameon=False)
    init = "uniform π0" if args.init_policy == "uniform" else f"π0: {args.init_policy}"
    fig.suptitle(f"Exact iterations on gymnasium's tabular environments (γ = {args.gamma:g}, {init})", fontsize=12)
    fig.tight_layout(rect=(0, 0, 1 - 2.3 / (4.2 * n + 2.6), 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def best_eta(histories: list[History]) -> float:
    return max(max(h.eta) for h in histories)


def summary_markdown(results: dict[str, list[History]], models: dict[str, TabularModel], args: Args, png: Path | None,
                     md_path: Path) -> str:
    lines = [
        "# Exact bounded-ratio policy iteration on gymnasium's tabular environments",
        "",
        f"Made by `python brrl_tabular.py{command_suffix(args)}` ({args.iterations} exact updates per method, "
        f"γ = {args.gamma:g}, initial policy: {args.init_policy}). η is the expected discounted return from the "
        "initial state distribution, computed exactly by a linear solve; terminating transitions pay their reward "
        "and end in an absorbing state of value 0, and time limits are not part of the model.",
        "",
    ]
    if png is not None:
        lines += [f"![η against the iteration]({os.path.relpath(png, md_path.parent)})", ""]
    lines += [
        "Theorem 4.2 is checked at every bounded-ratio step: the measured improvement η(π_{k+1}) − η(π_k) against "
        "E_{d_{π_{k+1}}}[E_{π_k}[ρ*Q] − V] (all bounded-ratio rules) and against ε·B, B = E_{d_{π_{k+1}}}E_{π_k}|Q − μ| "
        f"(symmetric bounds). The run fails if any deviation exceeds {THEOREM_TOL:g}. \"Outside band\" is the largest "
        "distance of a ratio π_{k+1}/π_k to its band ([1−ε, 1+ε] or [c_low, c_high]) over all steps and states: "
        f"0 (up to rounding, < {ROUNDING:g}) for π* by construction; the renormalised PPO target leaves the band "
        "whenever P(A>0) ≠ P(A<0) in a state.",
        "",
        "Reading the picture: every bounded-ratio curve rises monotonically, as Theorem 4.2 says, and policy iteration "
        "is the ceiling. π* changes each probability by a factor within [1−ε, 1+ε] per step; the renormalised PPO "
        "target multiplies some by up to (1+ε)/(1−ε), so at the same ε its steps are larger than π*'s and it solves a "
        "different problem. The CEM limit (c_low = 0) removes the non-elite actions for good: a state whose policy has "
        "become deterministic never changes again, so CEM can stop below the optimum.",
        "",
    ]
    checkpoints = sorted({min(10, args.iterations), args.iterations})
    for env_id, histories in results.items():
        model = models[env_id]
        optimum = best_eta(histories)
        deviation = max((h.max_deviation for h in histories if h.method.is_bounded), default=0.0)
        lines += [
            f"## {env_id}",
            "",
            f"{model.n_states} states, {model.n_actions} actions; best η found η* = {optimum:.6g}; largest Theorem 4.2 "
            f"deviation {deviation:.2e}.",
            "",
            "| method | η(π0) | " + " | ".join(f"η after {k}" for k in checkpoints)
            + " | gap closed | decreases | outside band | B at k=0 | Thm 4.2 max dev |",
            "|---|---|" + "---|" * len(checkpoints) + "---|---|---|---|---|",
        ]
        for h in histories:
            eta = np.array(h.eta)
            closed = (eta[-1] - eta[0]) / (optimum - eta[0]) if optimum > eta[0] else 1.0
            decreases = int((h.improvements < -THEOREM_TOL).sum())
            band = "–" if not h.band_excess else "0" if max(h.band_excess) <= ROUNDING else f"{max(h.band_excess):.3g}"
            b0 = f"{h.b[0]:.4g}" if h.b else "–"
            dev = f"{h.max_deviation:.1e}" if h.method.is_bounded else "–"
            lines.append(f"| {h.method.label} | {eta[0]:.4g} | " + " | ".join(f"{eta[k]:.4g}" for k in checkpoints)
                         + f" | {100 * closed:.1f}% | {decreases} | {band} | {b0} | {dev} |")
        lines.append("")
    return "\n".join(lines)


def command_suffix(args: Args) -> str:
    """The flags that differ from the defaults, to reproduce the run."""
    default, parts = Args(), []
    for name in (f.name for f in dataclasses.fields(Args) if f.name != "exp_name"):
        value = getattr(args, name)
        if value == getattr(default, name):
            continue
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            parts.append(flag if value else "--no-" + name.replace("_", "-"))
        elif isinstance(value, tuple):
            flat = [x for item in value for x in (item if isinstance(item, tuple) else (item,))]
            parts.append(" ".join([flag, *map(str, flat)]))
        else:
            parts.append(f"{flag} {value}")
    return "".join(" " + p for p in parts)


def main(args: Args) -> dict[str, list[History]]:
    check_args(args)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.set_num_threads(1)
    rng = np.random.default_rng(args.seed)
    # Every environment and initial policy is checked before any work starts.
    models = {env_id: build_model(env_id) for env_id in dict.fromkeys(args.env_ids)}
    initial = {env_id: initial_policy(args.init_policy, model, rng) for env_id, model in models.items()}
    methods = methods_from_args(args)
    for folder in ("runs", args.out_dir):  # before the work, not after it
        check_writable(folder)
    run_name = f"tabular__{args.exp_name}__{args.seed}__{int(time.time())}"
    writer = SummaryWriter(f"runs/{run_name}")
    writer.add_text("hyperparameters", "|param|value|\n|-|-|\n%s" % "\n".join(f"|{k}|{v}|" for k, v in vars(args).items()))

    start = time.time()
    results: dict[str, list[History]] = {}
    for env_id, model in models.items():
        histories = run_env(model, initial[env_id], methods, args.iterations, args.gamma)
        results[env_id] = histories
        log_tensorboard(writer, env_id, histories)
        print(f"{env_id} ({model.n_states} states, {model.n_actions} actions):")
        for h in histories:
            monotone = "monotone" if (h.improvements >= -THEOREM_TOL).all() else f"{(h.improvements < -THEOREM_TOL).sum()} decreases"
            print(f"  {h.method.label:<28} η {h.eta[0]:>10.5g} -> {h.eta[-1]:>10.5g}  ({monotone})")
        bounded = [h for h in histories if h.method.is_bounded]
        worst = max(bounded, key=lambda h: h.max_deviation)
        b0 = ", ".join(f"ε={h.method.eps:g}: {h.b[0]:.4g}" for h in bounded if h.b)
        print(f"  largest Theorem 4.2 deviation: {worst.max_deviation:.2e} ({worst.method.label})"
              + (f"; B at k=0 {b0}" if b0 else ""))
        if not worst.max_deviation <= THEOREM_TOL:
            k = int(np.argmax(worst.step_deviation))
            writer.close()
            sys.exit(f"error: Theorem 4.2 check failed on {env_id}, {worst.method.label}, step {k} -> {k + 1}: "
                     f"the measured improvement differs from the predicted one by {worst.max_deviation:.3e} > {THEOREM_TOL:g}")
    writer.close()

    out_dir = Path(args.out_dir)
    png = out_dir / "img" / "tabular.png"
    if args.plot:
        try:
            plot(results, args, png)
        except ImportError:
            print("matplotlib is not installed (pip install matplotlib): no picture", file=sys.stderr)
            png = None
    else:
        png = None
    md_path = out_dir / "tabular.md"
    md_path.parent.mkdir(parents=True, exist_ok=True)
    md_path.write_text(summary_markdown(results, models, args, png, md_path))
    print(f"done in {time.time() - start:.1f} s: {'picture ' + str(png) + ', ' if png else ''}summary {md_path}; "
          f"logs in runs/{run_name}")
    return results


if __name__ == "__main__":
    try:
        main(tyro.cli(Args))
    except KeyboardInterrupt:  # one line, not a traceback; the iterations are exact and quick: run again
        print("interrupted: the picture and the summary were not written", file=sys.stderr)
        sys.exit(130)
