"""BPO (Bounded Policy Optimization) as an rsl_rl algorithm, for rsl-rl-lib >= 5.0, < 6 (Isaac Lab, mjlab).

Ao et al., "Bounded Ratio Reinforcement Learning", arXiv 2604.18578 (2026). ``BPO`` subclasses rsl_rl's ``PPO`` and
changes only what the algorithm needs: a median head u(s) (a copy of the critic's network with its own weights, trained
with a log-cosh loss), the BPO policy loss that pulls the ratio ρ = π/π0 toward the exact bounded-ratio policy π*
(Theorem 4.1), and the median head in the optimizer, ``save``/``load``, train/eval mode and the multi-GPU reductions.
Rollouts, returns, the value loss, the KL-adaptive learning rate and everything else are rsl_rl's PPO.

rsl_rl >= 5.0 resolves ``algorithm.class_name`` with ``resolve_callable``, so no fork is needed::

    cfg["algorithm"] = {"class_name": "bpo_rsl_rl:BPO", "epsilon": 0.3, ...the usual PPO arguments...}
    runner = OnPolicyRunner(env, cfg, log_dir, device)

Isaac Lab: subclass ``RslRlPpoAlgorithmCfg`` with ``class_name = "bpo_rsl_rl:BPO"`` (and the BPO fields below);
mjlab: ``train <task> --agent.algorithm.class-name bpo_rsl_rl:BPO`` (BPO's defaults). See README, "Legged robots".

Defaults follow this project's BPO (bpo_continuous.py) as of its distance study: ε 0.3 (the authors' Go1 value;
bpo_continuous.py's MuJoCo default is 0.4 since its step probe, not tried on legged robots), λ 0.01, the square-root
distance, median coefficient 0.5, the weight |Q̂ − V(s)| from the current critic divided by its std. The authors'
rsl_rl choices are options: ``distance="tv"``, ``median_temperature=1.0``, ``median_loss_coef=1.0``,
``online_advantage=False`` (their Go1 setting).
"""

from __future__ import annotations

import copy
import inspect
import math
from numbers import Real

import torch
import torch.nn as nn
from rsl_rl.algorithms import PPO

__all__ = ["BPO", "bpo_target_ratio", "bpo_loss", "median_loss"]

# rsl-rl-lib < 5.5 updates the observation normalisers at every env step (in process_env_step), 5.5 once per update:
# BPO keeps whichever the installed PPO does, so PPO and BPO runs differ only in the algorithm
_NORMALIZE_IN_UPDATE = "update_normalization" in inspect.getsource(PPO.update)

DISTANCES = ("tv", "sqrt", "log")


def bpo_target_ratio(median_advantage: torch.Tensor, eps: float, temperature: float) -> torch.Tensor:
    """Target ratio ρ*_λ = 1 + ε·tanh(Ã/2λ) = 1 − ε + 2ε·σ(Ã/λ); λ = 0 gives π*/π0 = 1 + ε·sign(Ã) (Theorem 4.1).

    ``median_advantage`` Ã = Q̂ − u(s), any shape; returns the same shape (brrl-math.md §3)."""
    if temperature == 0:
        return 1 + eps * torch.sign(median_advantage)
    return 1 + eps * torch.tanh(median_advantage / (2 * temperature))


def bpo_loss(logratio: torch.Tensor, weight: torch.Tensor, median_advantage: torch.Tensor, eps: float,
             temperature: float, distance: str = "sqrt") -> torch.Tensor:
    """Per-sample BPO loss |A|·|ρ − ρ*| (tv, the paper's l^BPO, Corollary 4.5), 2|A|·|√ρ − √ρ*| (sqrt) or
    |A|·|log ρ − log ρ*| (log, the authors' log-TV), with ρ = exp(logratio); all three have the minimiser ρ = ρ*_λ.

    Shapes: all (N,); returns (N,), no reduction. ``weight`` and ``median_advantage`` are used as given (detach them)."""
    target = bpo_target_ratio(median_advantage, eps, temperature)
    if distance == "log":
        gap = logratio - target.log()
    elif distance == "sqrt":
        gap = 2 * ((logratio / 2).exp() - target.sqrt())
    else:
        gap = logratio.exp() - target
    return weight.abs() * gap.abs()


def median_loss(returns: torch.Tensor, median: torch.Tensor, temperature: float) -> torch.Tensor:
    """λ·log(2cosh((Q̂ − u)/2λ)) = λ·softplus((Q̂ − u)/λ) − (Q̂ − u)/2, a smooth |Q̂ − u|/2 whose minimiser u(s) is the
    conditional median of Q̂ (brrl-math.md §4); λ = 0 gives |Q̂ − u|/2. Shapes (N,) -> (N,), no reduction."""
    x = returns - median
    if temperature == 0:
        return 0.5 * x.abs()
    return temperature * nn.functional.softplus(x / temperature) - 0.5 * x


class BPO(PPO):
    """Bounded Policy Optimization on rsl_rl's PPO (rsl-rl-lib >= 5.0, < 6); select it with ``class_name="bpo_rsl_rl:BPO"``.

    BPO's own arguments (every other keyword is rsl_rl's ``PPO``'s, with its defaults):

    Args:
        epsilon: the ratio bound ε in (0, 1): π* keeps π/π0 within [1 − ε, 1 + ε]. Separate from ``clip_param``, which
            stays the value-clipping range of rsl_rl's value loss: a PPO config switched to BPO keeps its value loss and
            gets BPO's ε 0.3 (BPO's loss pulls a ratio back into the band and PPO's does not, so BPO needs a wider ε than
            PPO's 0.2 for the same step: docs/bpo-recipe.md).
        temperature: λ ≥ 0 of the smoothed target 1 + ε·tanh(Ã/2λ), in units of the return (rsl_rl does not normalise
            rewards); 0 is the exact sign target. The authors' Isaac Lab configs use 0.01.
        median_temperature: λ of the median head's log-cosh loss; None (default) uses ``temperature``, as the theory asks
            (then the smoothed targets average to 1 at the head's optimum); the authors' rsl_rl code uses 1.0.
        median_loss_coef: weight of the median head's loss (0.5, the authors' SB3 value; their rsl_rl code uses 1.0).
        use_median: threshold the target at the learned median u(s); False uses V(s) (the paper's mean-baseline ablation).
        distance: "sqrt" (default) 2|√ρ − √ρ*|, "tv" the paper's |ρ − ρ*|, or "log" |log ρ − log ρ*|.
        normalize_median_advantage: measure λ in units of the minibatch's std of Ã instead of the return's units.
        online_advantage: weight each sample by |Q̂ − V(s)| from the current critic, divided by its minibatch std (default);
            False uses the magnitude of rsl_rl's normalised GAE advantage as PPO computes it (the authors' Go1 setting).

    Raises:
        ValueError: one message listing every unsupported setting: a recurrent actor or critic, ``rnd_cfg``,
            ``symmetry_cfg``, ``use_mixed_precision``, ``normalize_advantage_per_mini_batch`` with ``online_advantage``
            (it would have no effect), or a BPO argument out of range.

    ``update()`` returns rsl_rl's "value", "surrogate" (the BPO policy loss) and "entropy" plus "median" (the median
    head's loss), "approx_kl", "clip_fraction" (share of |ρ − 1| > ε) and the BPO diagnostics "bpo_target_ratio"
    (mean ρ*), "bpo_frac_above_median" (share of Ã > 0), "bpo_ratio_target_gap" (mean |ρ − ρ*|), "bpo_target_saturation"
    (mean |ρ* − 1|/ε) and "bpo_median_adv_std" (std of Ã); rsl_rl's logger writes them as Loss/<key>.
    """

    def __init__(
        self,
        actor,
        critic,
        storage,
        epsilon: float = 0.3,
        temperature: float = 0.01,
        median_temperature: float | None = None,
        median_loss_coef: float = 0.5,
        use_median: bool = True,
        distance: str = "sqrt",
        normalize_median_advantage: bool = False,
        online_advantage: bool = True,
        **ppo_kwargs,
    ) -> None:
        problems = []
        if actor.is_recurrent or critic.is_recurrent:
            problems.append("a recurrent actor or critic (the median head is a feed-forward copy of the critic)")
        for option in ("rnd_cfg", "symmetry_cfg"):
            if ppo_kwargs.get(option):
                problems.append(f"{option} (the BPO loss is defined for rsl_rl's plain PPO rollouts only)")
        if ppo_kwargs.get("use_mixed_precision"):
            problems.append("use_mixed_precision=True (not tested with the BPO loss)")
        if ppo_kwargs.get("normalize_advantage_per_mini_batch") and online_advantage:
            problems.append("normalize_advantage_per_mini_batch=True with online_advantage=True (BPO then never reads "
                            "the stored advantage; set online_advantage=False to weight by it)")
        values = {"epsilon": epsilon, "temperature": temperature, "median_loss_coef": median_loss_coef}
        if median_temperature is not None:
            values["median_temperature"] = median_temperature
        for name, value in values.items():  # a config system may pass None or a string: say so here, not in update()
            if isinstance(value, bool) or not isinstance(value, Real):
                problems.append(f"{name} must be a number, got {value!r}")
            elif name == "epsilon" and not 0 < value < 1:
                problems.append(f"epsilon must lie in (0, 1), got {value}")
            elif name != "epsilon" and not 0 <= value < math.inf:
                problems.append(f"{name} must be >= 0 and finite, got {value}")
        for name, value in (("use_median", use_median), ("normalize_median_advantage", normalize_median_advantage),
                            ("online_advantage", online_advantage)):
            if not isinstance(value, bool):
                problems.append(f"{name} must be True or False, got {value!r}")
        if distance not in DISTANCES:
            problems.append(f"distance must be one of {', '.join(DISTANCES)}, got {distance!r}")
        if problems:
            raise ValueError("bpo_rsl_rl.BPO does not support: " + "; ".join(problems))
        super().__init__(actor, critic, storage, **ppo_kwargs)

        self.epsilon = epsilon
        self.temperature = temperature
        self.median_temperature = temperature if median_temperature is None else median_temperature
        self.median_loss_coef = median_loss_coef
        self.use_median = use_median
        self.distance = distance
        self.normalize_median_advantage = normalize_median_advantage
        self.online_advantage = online_advantage

        # The median head: the critic's network (same class, inputs, sizes) with fresh weights; it shares the critic's
        # observation normaliser (the same inputs), so rsl_rl's normaliser updates cover it in every 5.x version
        raw_critic = getattr(self, "_raw_critic", self.critic)
        self.median_head = copy_with_fresh_weights(raw_critic)
        self.median_head.obs_normalizer = raw_critic.obs_normalizer
        self.optimizer.add_param_group({"params": list(self._median_parameters())})

    def _median_parameters(self):
        """The median head's own parameters (not the normaliser it shares with the critic)."""
        shared = {id(p) for p in self.median_head.obs_normalizer.parameters()}
        return (p for p in self.median_head.parameters() if id(p) not in shared)

    def update(self) -> dict[str, float]:
        """Run the optimisation epochs over the stored rollout with the BPO loss; returns the mean of each logged quantity."""
        keys = ("value", "surrogate", "entropy", "median", "approx_kl", "clip_fraction", "bpo_target_ratio",
                "bpo_frac_above_median", "bpo_ratio_target_gap", "bpo_target_saturation", "bpo_median_adv_std")
        sums = torch.zeros(len(keys), device=self.device)
        num_updates = 0
        for batch in self.storage.mini_batch_generator(self.num_mini_batches, self.num_learning_epochs):
            self.actor(batch.observations, stochastic_output=True)
            logprob = self.actor.get_output_log_prob(batch.actions).reshape(-1)
            entropy = self.actor.output_entropy.reshape(-1)
            values = self.critic(batch.observations).reshape(-1)
            median = self.median_head(batch.observations).reshape(-1)
            returns, old_values = batch.returns.reshape(-1), batch.values.reshape(-1)

            if self.desired_kl is not None and self.schedule == "adaptive":
                with torch.inference_mode():
                    kl = self.actor.get_kl_divergence(batch.old_distribution_params, self.actor.output_distribution_params)
                    self._adapt_learning_rate(kl.mean())

            logratio = logprob - batch.old_actions_log_prob.reshape(-1)
            # A = Q̂ − V(s) weights the loss, Ã = Q̂ − u(s) sets the target: current heads, detached (brrl-math.md §4)
            if self.online_advantage:
                weight = returns - values.detach()
                weight = weight / (weight.std() + 1e-8)  # a scale only: no mean subtracted, the weight is |A|
            else:
                weight = batch.advantages.reshape(-1)
            median_adv = returns - (median if self.use_median else values).detach()
            scale = median_adv.std() + 1e-8 if self.normalize_median_advantage else 1.0
            surrogate = bpo_loss(logratio, weight, median_adv / scale, self.epsilon, self.temperature, self.distance).mean()
            m_loss = scale * median_loss(returns / scale, median / scale, self.median_temperature).mean()

            if self.use_clipped_value_loss:  # rsl_rl's value loss, unchanged
                value_clipped = old_values + (values - old_values).clamp(-self.clip_param, self.clip_param)
                value_loss = torch.max((values - returns).pow(2), (value_clipped - returns).pow(2)).mean()
            else:
                value_loss = (returns - values).pow(2).mean()

            loss = (surrogate + self.value_loss_coef * value_loss + self.median_loss_coef * m_loss
                    - self.entropy_coef * entropy.mean())
            self.optimizer.zero_grad()
            loss.backward()
            if self.is_multi_gpu:
                self.reduce_parameters()
            nn.utils.clip_grad_norm_(self.actor.parameters(), self.max_grad_norm)
            nn.utils.clip_grad_norm_(self.critic.parameters(), self.max_grad_norm)
            nn.utils.clip_grad_norm_(list(self._median_parameters()), self.max_grad_norm)
            self.optimizer.step()

            with torch.no_grad():
                ratio = logratio.exp()
                target = bpo_target_ratio(median_adv / scale, self.epsilon, self.temperature)
                sums += torch.stack([
                    value_loss, surrogate, entropy.mean(), m_loss, ((ratio - 1) - logratio).mean(),
                    ((ratio - 1).abs() > self.epsilon).float().mean(), target.mean(), (median_adv > 0).float().mean(),
                    (ratio - target).abs().mean(), (target - 1).abs().mean() / self.epsilon, median_adv.std(),
                ]).detach().float()
            num_updates += 1

        if _NORMALIZE_IN_UPDATE:  # rsl-rl-lib >= 5.5: once per update, as its PPO does
            obs = self.storage.observations.flatten(0, 1)
            self.actor.update_normalization(obs)
            self.critic.update_normalization(obs)  # the median head shares this normaliser
        self.storage.clear()
        return dict(zip(keys, (sums / max(num_updates, 1)).tolist()))

    def _adapt_learning_rate(self, kl_mean: torch.Tensor) -> None:
        """rsl_rl's KL-adaptive schedule: lr / 1.5 above 2× desired_kl, × 1.5 below half of it (clamped to [1e-5, 1e-2])."""
        if self.is_multi_gpu:
            torch.distributed.all_reduce(kl_mean, op=torch.distributed.ReduceOp.SUM)
            kl_mean /= self.gpu_world_size
        if self.gpu_global_rank == 0:
            if kl_mean > self.desired_kl * 2.0:
                self.learning_rate = max(1e-5, self.learning_rate / 1.5)
            elif self.desired_kl / 2.0 > kl_mean > 0.0:
                self.learning_rate = min(1e-2, self.learning_rate * 1.5)
        if self.is_multi_gpu:
            lr = torch.tensor(self.learning_rate, device=self.device)
            torch.distributed.broadcast(lr, src=0)
            self.learning_rate = lr.item()
        for group in self.optimizer.param_groups:
            group["lr"] = self.learning_rate

    def train_mode(self) -> None:
        super().train_mode()
        self.median_head.train()

    def eval_mode(self) -> None:
        super().eval_mode()
        self.median_head.eval()

    def save(self) -> dict:
        """rsl_rl's checkpoint dict plus "median_state_dict" (the optimizer state already holds the head's group)."""
        saved = super().save()
        saved["median_state_dict"] = self.median_head.state_dict()
        return saved

    def load(self, loaded_dict: dict, load_cfg: dict | None, strict: bool) -> bool:
        """Load as rsl_rl's PPO does; the median head loads with the critic ("critic" in ``load_cfg``, or all when None).

        Raises KeyError (strict) when the checkpoint has no median head, e.g. one saved by rsl_rl's PPO."""
        if (load_cfg is None or load_cfg.get("critic")) and "median_state_dict" not in loaded_dict and strict:
            raise KeyError("the checkpoint has no 'median_state_dict': it was not saved by bpo_rsl_rl.BPO "
                           "(load it with strict=False, or without the optimizer and critic, to start the head afresh)")
        load_iteration = super().load(loaded_dict, load_cfg, strict)
        if (load_cfg is None or load_cfg.get("critic")) and "median_state_dict" in loaded_dict:
            self.median_head.load_state_dict(loaded_dict["median_state_dict"], strict=strict)
        return load_iteration

    def broadcast_parameters(self) -> None:
        super().broadcast_parameters()
        for tensor in self.median_head.state_dict().values():
            torch.distributed.broadcast(tensor, src=0)

    def reduce_parameters(self) -> None:
        """Average the gradients over GPUs: rsl_rl's reduction for actor and critic, then the median head's."""
        super().reduce_parameters()
        for param in self._median_parameters():
            if param.grad is not None:
                torch.distributed.all_reduce(param.grad, op=torch.distributed.ReduceOp.SUM)
                param.grad /= self.gpu_world_size


def copy_with_fresh_weights(model: nn.Module) -> nn.Module:
    """A deep copy of `model` whose layers are re-initialised with their own ``reset_parameters`` (torch's defaults)."""
    clone = copy.deepcopy(model)
    for module in clone.modules():
        if module is not clone and hasattr(module, "reset_parameters") and not hasattr(module, "update"):
            module.reset_parameters()  # layers only: a normaliser (it has update()) keeps its statistics
    return clone
