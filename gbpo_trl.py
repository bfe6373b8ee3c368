"""GBPO for Hugging Face TRL: a GRPOTrainer whose advantage and per-token loss are GBPO's, in one file.

Ao et al., "Bounded Ratio Reinforcement Learning", arXiv 2604.18578 (2026), GBPO (shared/docs/brrl-math.md §5):
for each prompt the policy samples a group of G completions; each gets a scalar reward r_i; the group advantage is
A_i = (r_i − mean)/(std + 1e-6) (unbiased std, 0 for a group whose rewards are all equal), and every completion
token's ratio ρ_t = π(y_t|·)/π_old(y_t|·) is pulled toward the bounded-ratio target
ρ*_i = 1 − ε_low + (ε_low + ε_high)·σ(z_i/T), z_i = (r_i − median)/(std + 1e-6), by the V-shaped loss
|ρ_t − ρ*_i|·|A_i| (no clipping: the V pulls an overshooting ratio back from both sides). By default
(`exact_ties=True`) the target is Theorem 4.1's exact solution over the group (uniform π_old): the tie value keeps the
group's mean target ratio at exactly 1 (`exact_ties=False`: the sigmoid above, which gives a completion tied at the
median half the band; it scored lower on each of 5 seeds in study gbpo_llm_ties). The definitions equal common/brrl.py's `group_advantage`, `gbpo_target_ratio` and
`gbpo_loss` and gbpo_llm.py's (tests/test_gbpo_trl.py checks the parity); they are inline so this file can be copied.

    from gbpo_trl import GBPOConfig, GBPOTrainer, MajorityVoteReward
    args = GBPOConfig(output_dir="runs/gbpo", num_generations=8, epsilon=0.2, loss_type="dapo")
    trainer = GBPOTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                          reward_funcs=MajorityVoteReward(num_generations=8))  # or any TRL reward function
    trainer.train()

How it sits in TRL (tested with trl 1.16; its private methods change between minor versions, hence the pin
"trl>=1.16,<1.17" of the `trl` extra and a warning on other versions). Three methods are overridden, nothing else:
  _calculate_rewards            keeps the rewards TRL gathered from all processes (groups may span processes);
  _generate_and_score_completions  replaces TRL's advantages by GBPO's, computed on whole groups of the gathered
                                rewards, and adds each completion's target ratio to the batch before TRL shuffles
                                and splits it (both travel with their completion, so groups stay intact);
  _compute_loss                 the per-token GBPO loss, aggregated as `loss_type` says (grpo, bnpo, dr_grpo, dapo).
A completion that no reward function could score (all returned None) is left out of its group's statistics and gets
advantage 0, as TRL does. Options of GRPOConfig that the GBPO loss does not implement are rejected when the trainer is
built (one ValueError naming them all), never silently ignored.

Run as a script, it fine-tunes a causal LM that you already have on disk (nothing is downloaded: point
--model-name-or-path at a local folder) on a JSON-lines prompt file ({"prompt": "...", "answer": "..."}; the answer
is optional with --reward majority), with GBPO or with TRL's own GRPO for comparison; TensorBoard logs in
runs/{run_name}/:

    pip install -e ".[trl]"
    python gbpo_trl.py --model-name-or-path path/to/causal-lm --data prompts.jsonl --loss gbpo --reward label
    python gbpo_trl.py --model-name-or-path path/to/causal-lm --data prompts.jsonl --loss grpo --reward majority
    tensorboard --logdir runs     # TRL's tags (train/reward, train/entropy, ...), train/gbpo/target_ratio_mean, train/gbpo/ratio_target_gap
"""

import math
import os
import re
import sys
import tempfile
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field

if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the script never downloads: set before huggingface_hub is imported

import torch

try:
    import trl
    from accelerate.utils import gather_object
    from accelerate import PartialState
except ImportError as e:  # the script says so in one line; an import from elsewhere raises as usual
    if __name__ == "__main__":
        sys.exit(f'error: gbpo_trl.py needs TRL ({e.name} is missing): pip install "brrl[trl]" or pip install "trl>=1.16,<1.17"')
    raise

TESTED_TRL = ((1, 16), (1, 17))
"""TRL versions this file is tested with: [1.16, 1.17); the overridden methods are private to TRL"""
if not TESTED_TRL[0] <= tuple(int(p) for p in re.findall(r"\d+", trl.__version__)[:2]) < TESTED_TRL[1]:
    warnings.warn(f"gbpo_trl.py is tested with trl>=1.16,<1.17, found {trl.__version__}: "
                  "it overrides private GRPOTrainer methods, which may have changed", stacklevel=1)

AGGREGATIONS = ("grpo", "bnpo", "dr_grpo", "dapo")
"""loss_type values that only choose how per-token losses are averaged; the others are different losses"""


# ---------------------------------------------------------------- group statistics and loss (brrl-math.md §5)


def group_advantage(scores, std_eps=1e-6):
    """GRPO advantage (r − mean)/(std + 1e-6) over the last axis (the group), unbiased std; 0 for an all-equal group.
    scores: (..., G). Returns (..., G). Source: common/brrl.py group_advantage."""
    centred = scores - scores.mean(-1, keepdim=True)
    all_equal = scores.amax(-1, keepdim=True) == scores.amin(-1, keepdim=True)
    return torch.where(all_equal, 0.0, centred / (scores.std(-1, keepdim=True) + std_eps))


def group_median(scores):
    """Median over the last axis; the midpoint of the two middle values for an even group (as numpy)."""
    s = scores.sort(-1).values
    n = scores.shape[-1]
    return 0.5 * (s[..., (n - 1) // 2 : (n - 1) // 2 + 1] + s[..., n // 2 : n // 2 + 1])


def gbpo_target_ratio(scores, eps_low, eps_high, temperature=1e-4, exact_ties=False, std_eps=1e-6):
    """GBPO's target ratio ρ*_i of every completion of a group (last axis). scores: (..., G). Returns (..., G).

    Default: 1 − ε_low + (ε_low + ε_high)·σ(z_i/T), z_i = (r_i − median)/(std + 1e-6); a score at the median gets
    σ(0) = 1/2 of the band.
    exact_ties: Theorem 4.1 over the group with uniform π_old and bounds 1 − ε_low, 1 + ε_high: the best completions,
    a fraction ε_low/(ε_low + ε_high) of the group, get 1 + ε_high, the rest 1 − ε_low, and those tied at the threshold
    share one fractional value, so the group's mean target ratio is exactly 1.
    Source: common/brrl.py gbpo_target_ratio.
    """
    if exact_ties:
        n = scores.shape[-1]
        above = (scores.unsqueeze(-2) > scores.unsqueeze(-1)).sum(-1).to(scores.dtype)  # completions scoring higher
        tied = (scores.unsqueeze(-2) == scores.unsqueeze(-1)).sum(-1).to(scores.dtype)  # itself included
        share = ((eps_low / (eps_low + eps_high) * n - above) / tied).clamp(0.0, 1.0)
        return 1.0 - eps_low + (eps_low + eps_high) * share
    z = (scores - group_median(scores)) / (scores.std(-1, keepdim=True) + std_eps)
    return 1.0 - eps_low + (eps_low + eps_high) * torch.sigmoid(z / temperature)


def gbpo_loss(ratio, advantage, target_ratio):
    """Per-token GBPO loss |ρ_t − ρ*_i|·|A_i|; A and ρ* (B, 1) broadcast over the tokens of ratio (B, T), and are
    constants. No reduction, no clipping. Source: common/brrl.py gbpo_loss."""
    return advantage.detach().abs() * (ratio - target_ratio.detach()).abs()


def group_statistics(rewards, num_generations, eps_low, eps_high, temperature=1e-4, exact_ties=False):
    """Advantage and target ratio of every completion from the rewards of whole groups.

    rewards: (N,) in TRL's gathered order (N a multiple of num_generations; consecutive runs of num_generations
    completions are one prompt's group); NaN marks a completion no reward function could score. Returns two (N,)
    tensors. An unscorable completion is left out of its group's statistics and gets advantage 0 (as TRL) and
    target 1; a group with fewer than two scorable completions has advantage 0 throughout.
    Raises ValueError when N is not a multiple of num_generations.
    """
    if rewards.numel() % num_generations:
        raise ValueError(f"{rewards.numel()} rewards do not split into groups of num_generations={num_generations}")
    scores = rewards.view(-1, num_generations)
    advantages, targets = torch.zeros_like(scores), torch.ones_like(scores)
    scorable = ~torch.isnan(scores)
    whole = scorable.all(-1)
    if whole.any():  # the common case, vectorised
        advantages[whole] = group_advantage(scores[whole])
        targets[whole] = gbpo_target_ratio(scores[whole], eps_low, eps_high, temperature, exact_ties)
    for g in (~whole & (scorable.sum(-1) >= 2)).nonzero().flatten().tolist():  # groups with unscorable members
        keep = scorable[g]
        advantages[g, keep] = group_advantage(scores[g, keep])
        targets[g, keep] = gbpo_target_ratio(scores[g, keep], eps_low, eps_high, temperature, exact_ties)
    return advantages.view(-1), targets.view(-1)


# ---------------------------------------------------------------- rewards


def parse_answer(text) -> str | None:
    """The answer of a text: the content of its last \\boxed{...} if any, else its last number (commas dropped);
    None when it has neither."""
    text = str(text)
    boxed = re.findall(r"\\boxed\{([^{}]*)\}", text)
    if boxed:
        return boxed[-1].strip()
    numbers = re.findall(r"-?\d[\d,]*(?:\.\d+)?", text)
    return numbers[-1].replace(",", "") if numbers else None


def completion_text(completion) -> str:
    """A TRL completion as text: a string as is, a conversation (list of messages) as its last message's content."""
    return completion if isinstance(completion, str) else completion[-1]["content"]


class MajorityVoteReward:
    """Test-Time RL reward (Zuo et al. 2025), usable as a TRL reward function: 1.0 for a completion whose parsed
    answer equals its group's most common parsed answer (the pseudo-label), else 0.0; no labels needed.

    num_generations: G, the trainer's group size (the same in evaluation, or pass num_generations_eval's value to a
    second instance). extract_answer: text -> hashable answer or None (default `parse_answer`); None does not vote and
    earns 0. A group of G completions may span processes: the answers are gathered from all processes (in TRL's
    order), voted on whole groups, and each process keeps its own slice. Ties in the vote go to the tied answer seen
    first in the group (Counter.most_common). Raises ValueError when the gathered completions do not split into groups.
    """

    def __init__(self, num_generations: int, extract_answer=parse_answer):
        if num_generations < 2:
            raise ValueError(f"num_generations must be at least 2, got {num_generations}")
        self.num_generations = num_generations
        self.extract_answer = extract_answer
        self.__name__ = "majority_vote"  # TRL's name for the reward in its logs

    def __call__(self, completions, **kwargs) -> list[float]:
        answers = [self.extract_answer(completion_text(c)) for c in completions]
        state = PartialState()
        all_answers = gather_object(answers) if state.num_processes > 1 else answers
        offset = state.process_index * len(answers)  # TRL gives every process the same number of completions
        G = self.num_generations
        if len(all_answers) % G:
            raise ValueError(f"{len(all_answers)} completions do not split into groups of num_generations={G}")
        rewards = []
        for start in range(0, len(all_answers), G):
            group = all_answers[start : start + G]
            votes = Counter(a for a in group if a is not None)
            majority = votes.most_common(1)[0][0] if votes else None
            rewards += [float(a is not None and a == majority) for a in group]
        return rewards[offset : offset + len(answers)]


def label_reward(completions, answer=None, **kwargs) -> list[float | None]:
    """Exact-match reward against the dataset's `answer` column: 1.0 when the parsed answers agree, else 0.0; None
    (unscorable, left out of the group's statistics) for a prompt without an answer."""
    answer = answer if answer is not None else [None] * len(completions)
    return [None if a is None else float(parse_answer(completion_text(c)) == parse_answer(a))
            for c, a in zip(completions, answer)]


# ---------------------------------------------------------------- trainer


@dataclass
class GBPOConfig(trl.GRPOConfig):
    """TRL's GRPOConfig with GBPO's arguments. `epsilon` and `epsilon_high` are GBPO's ε_low and ε_high (the target
    band [1 − ε_low, 1 + ε_high]); `loss_type` chooses only the aggregation (grpo, bnpo, dr_grpo, dapo); `beta` adds
    TRL's KL penalty to the reference model and `entropy_coef` its entropy bonus, as in GRPO."""

    gbpo_temperature: float = field(default=1e-4, metadata={
        "help": "T of GBPO's target 1 − ε_low + (ε_low + ε_high)·σ(z/T); small T is near-binary (unused with exact_ties)"})
    exact_ties: bool = field(default=True, metadata={
        "help": "the exact target of Theorem 4.1 over the group, whose tie value keeps the group's mean target ratio at 1; "
                "False: the sigmoid σ(z/T) (the default before study gbpo_llm_ties, where the exact target scored higher)"})


def unsupported_options(args) -> list[str]:
    """The GRPOConfig settings that GBPOTrainer does not implement (empty when all are supported), one phrase each."""
    eps_high = args.epsilon if args.epsilon_high is None else args.epsilon_high
    temperature = getattr(args, "gbpo_temperature", 1e-4)
    checks = [
        (args.loss_type not in AGGREGATIONS,
         f"loss_type={args.loss_type!r} (GBPO replaces the loss; loss_type may only choose its aggregation: "
         f"{', '.join(AGGREGATIONS)})"),
        (args.importance_sampling_level != "token",
         f"importance_sampling_level={args.importance_sampling_level!r} (GBPO's target is for token-level ratios)"),
        (args.delta is not None, f"delta={args.delta} (GBPO does not clip the ratio: its V-shaped loss bounds it)"),
        (args.scale_rewards != "group",
         f"scale_rewards={args.scale_rewards!r} (GBPO's advantage is normalised by the group's std)"),
        (args.multi_objective_aggregation != "sum_then_normalize",
         f"multi_objective_aggregation={args.multi_objective_aggregation!r} (GBPO's group statistics are of the weighted "
         f"sum of the rewards)"),
        (args.off_policy_mask_threshold is not None, f"off_policy_mask_threshold={args.off_policy_mask_threshold}"),
        (args.top_entropy_quantile != 1.0, f"top_entropy_quantile={args.top_entropy_quantile}"),
        (args.use_adaptive_entropy, "use_adaptive_entropy=True (a fixed entropy_coef is supported)"),
        (not 0.0 < args.epsilon < 1.0, f"epsilon={args.epsilon} (GBPO's ε_low must lie in (0, 1))"),
        (not 0.0 < eps_high < math.inf, f"epsilon_high={eps_high} (GBPO's ε_high must be positive and finite)"),
        (not 0.0 < temperature < math.inf, f"gbpo_temperature={temperature} (must be positive and finite)"),
    ]
    return [message for bad, message in checks if bad]


class GBPOTrainer(trl.GRPOTrainer):
    """TRL's GRPOTrainer with GBPO's advantage, target ratio and per-token loss |ρ_t − ρ*_i|·|A_i| (brrl-math.md §5).

    Takes GRPOTrainer's arguments; `args` is a GBPOConfig (a plain GRPOConfig gets GBPO's defaults: T = 1e-4, the
    sigmoid target). Raises ValueError, before the model is touched, naming every option the GBPO loss does not
    implement (see `unsupported_options`).
    Logs, besides TRL's metrics: gbpo/target_ratio_mean (mean ρ* of the scorable completions) and
    gbpo/ratio_target_gap (token mean of |ρ − ρ*|).
    """

    def __init__(self, model, reward_funcs=None, args=None, *rest, **kwargs):
        if args is not None and (problems := unsupported_options(args)):
            raise ValueError("GBPOTrainer does not implement these GRPOConfig options: " + "; ".join(problems))
        for f in reward_funcs if isinstance(reward_funcs, list) else [reward_funcs]:
            if isinstance(f, MajorityVoteReward) and args is not None and f.num_generations != args.num_generations:
                raise ValueError(f"MajorityVoteReward(num_generations={f.num_generations}) votes on groups of another "
                                 f"size than the trainer's num_generations={args.num_generations}")
        super().__init__(model, reward_funcs, args, *rest, **kwargs)
        self.gbpo_temperature = getattr(self.args, "gbpo_temperature", 1e-4)
        self.exact_ties = getattr(self.args, "exact_ties", True)
        self._gbpo_rewards_per_func = None

    def _calculate_rewards(self, inputs, prompts, completions, completion_ids_list):
        # TRL returns the rewards of every process's completions (N, num_reward_funcs), NaN where a function returned None.
        self._gbpo_rewards_per_func = super()._calculate_rewards(inputs, prompts, completions, completion_ids_list)
        return self._gbpo_rewards_per_func

    def _generate_and_score_completions(self, inputs):
        output = super()._generate_and_score_completions(inputs)
        mode = "train" if self.model.training else "eval"
        G = self.num_generations if mode == "train" else self.num_generations_eval
        per_func = self._gbpo_rewards_per_func
        rewards = (per_func * self.reward_weights.to(per_func.device)).nansum(1)
        rewards[torch.isnan(per_func).all(1)] = torch.nan  # unscorable: out of the group's statistics, as in TRL
        advantages, targets = group_statistics(rewards, G, self.epsilon_low, self.epsilon_high, self.gbpo_temperature,
                                               self.exact_ties)
        local = output["prompt_ids"].size(0)
        part = slice(self.accelerator.process_index * local, (self.accelerator.process_index + 1) * local)
        # Per-completion tensors: TRL's shuffle and split move them with their completion.
        output["advantages"] = advantages[part]
        output["gbpo_target_ratio"] = targets[part]
        logged = self._logs["advantages"]  # TRL logged its own advantages of these completions last: show GBPO's
        for _ in range(min(len(advantages), len(logged))):
            logged.pop()
        logged.extend(advantages.tolist())
        self._metrics[mode]["gbpo/target_ratio_mean"].append(targets[~torch.isnan(rewards)].mean().item())
        return output

    def _compute_loss(self, model, inputs):
        prompt_ids, prompt_mask = inputs["prompt_ids"], inputs["prompt_mask"]
        completion_ids, completion_mask = inputs["completion_ids"], inputs["completion_mask"]
        input_ids = torch.cat([prompt_ids, completion_ids], dim=1)
        attention_mask = torch.cat([prompt_mask, completion_mask], dim=1)
        mask = completion_mask if "tool_mask" not in inputs else completion_mask * inputs["tool_mask"]
        extra = ("pixel_values", "image_grid_thw", "num_images", "pixel_attention_mask", "spatial_shapes", "num_tiles",
                 "image_sizes", "token_type_ids", "mm_token_type_ids", "image_position_ids")
        per_token_logps, entropies, aux_loss = self._get_per_token_logps_and_entropies(
            model, input_ids, attention_mask, completion_ids.size(1), compute_entropy=True,
            compute_aux_loss=self.aux_loss_enabled, **{k: inputs.get(k) for k in extra})
        # TRL skips the old log-probabilities when the batch is used once, right after sampling: then π_old = π.
        old_per_token_logps = inputs.get("old_per_token_logps")
        old_per_token_logps = per_token_logps.detach() if old_per_token_logps is None else old_per_token_logps
        ratio = torch.exp(per_token_logps - old_per_token_logps)
        advantages = inputs["advantages"].view(-1, 1)
        targets = inputs["gbpo_target_ratio"].view(-1, 1)
        per_token_loss = gbpo_loss(ratio, advantages, targets)
        if self.use_vllm and self.vllm_importance_sampling_correction:  # as TRL: reweight by π_old/π_sampler
            per_token_loss = per_token_loss * inputs["importance_sampling_ratio"]
        if self.beta != 0.0:  # TRL's k3 estimator of KL(π || π_ref)
            log_ref = inputs["ref_per_token_logps"] - per_token_logps
            per_token_kl = torch.exp(log_ref) - log_ref - 1
            if self.args.use_bias_correction_kl:
                per_token_kl = per_token_kl * ratio
            per_token_loss = per_token_loss + self.beta * per_token_kl

        mode = "train" if self.model.training else "eval"
        accumulation = self.current_gradient_accumulation_steps if mode == "train" else 1.0  # no accumulation in eval
        if self.loss_type == "grpo":  # mean over each completion's tokens, then over completions
            loss = ((per_token_loss * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).mean() / accumulation
        elif self.loss_type == "bnpo":  # mean over the micro-batch's tokens
            loss = (per_token_loss * mask).sum() / mask.sum().clamp(min=1.0) / accumulation
        elif self.loss_type == "dr_grpo":  # sum over tokens / (completions × max_completion_length)
            loss = (per_token_loss * mask).sum() / (per_token_loss.size(0) * self.max_completion_length) / accumulation
        else:  # dapo: sum over tokens / the tokens of the whole accumulated batch across processes
            normalizer = inputs["num_items_in_batch"].clamp(min=1.0) / self.accelerator.num_processes
            if mode == "train":  # num_items_in_batch counts the generation batch: rescale it to one accumulation window
                normalizer = normalizer * self.current_gradient_accumulation_steps / self.args.steps_per_generation
            loss = (per_token_loss * mask).sum() / normalizer
        if self.entropy_coef != 0.0:  # TRL's bonus: the mean token entropy, scaled for accumulation only
            loss = loss - self.entropy_coef * (entropies * mask).sum() / mask.sum().clamp(min=1.0) / accumulation
        if self.aux_loss_enabled:
            loss = loss + self.router_aux_loss_coef * aux_loss / accumulation

        def global_masked_mean(x):
            totals = self.accelerator.reduce(torch.stack([(x * mask).sum(), mask.sum().float()]), reduction="sum")
            return (totals[0] / totals[1].clamp(min=1.0)).item()

        with torch.no_grad():
            if self.beta != 0.0:
                self._metrics[mode]["kl"].append(global_masked_mean(per_token_kl))
            self._metrics[mode]["entropy"].append(global_masked_mean(entropies))
            self._metrics[mode]["gbpo/ratio_target_gap"].append(global_masked_mean((ratio - targets).abs()))
        return loss


# ---------------------------------------------------------------- script


@dataclass
class Args:
    model_name_or_path: str = ""
    """a local folder with a causal LM and its tokenizer (save_pretrained's layout); nothing is downloaded"""
    data: str = ""
    """JSON-lines prompt file: one {"prompt": str or chat messages, "answer": optional} per line"""
    exp_name: str = os.path.basename(__file__)[: -len(".py")]
    """the name of this experiment (part of the run name)"""
    seed: int = 1
    """seed of the run (TRL's sampling and data order)"""
    loss: str = "gbpo"
    """gbpo (GBPOTrainer) or grpo (TRL's own GRPOTrainer, for the comparison)"""
    reward: str = "label"
    """label (exact match of the parsed answer with the prompt's answer) or majority (agreement with the group's vote)"""
    num_generations: int = 8
    """G: completions per prompt"""
    per_device_train_batch_size: int = 8
    """completions per device per step (TRL's meaning); G completions of a prompt may span devices and steps"""
    gradient_accumulation_steps: int = 1
    """micro-batches per optimizer step"""
    num_iterations: int = 1
    """update passes over each sampled batch (TRL's num_iterations; GBPO's update epochs)"""
    max_steps: int = 100
    """optimizer steps"""
    learning_rate: float = 1e-6
    """AdamW learning rate"""
    max_completion_length: int = 256
    """longest completion in tokens"""
    temperature: float = 1.0
    """sampling temperature; the ratios use log-probabilities at the same temperature"""
    epsilon: float = 0.2
    """ε_low: GBPO's target band / GRPO's clip, lower side 1 − ε"""
    epsilon_high: float | None = None
    """ε_high (default: ε_low)"""
    gbpo_temperature: float = 1e-4
    """T of GBPO's sigmoid target (with --no-exact-ties)"""
    exact_ties: bool = True
    """GBPO only (unused by --loss grpo): Theorem 4.1's exact target over the group; --no-exact-ties: the sigmoid σ(z/T)"""
    loss_type: str = "dapo"
    """aggregation of the per-token losses: grpo, bnpo, dr_grpo or dapo (TRL's default)"""
    beta: float = 0.0
    """coefficient of the KL penalty to the starting model"""
    logging_steps: int = 1
    """log to TensorBoard every this many steps"""
    save_model: bool = False
    """if toggled, save the fine-tuned model and tokenizer to runs/{run_name}/model at the end"""
    use_cpu: bool = False
    """if toggled, train on the CPU even when a GPU is present"""
    bf16: bool = False
    """if toggled, train in bfloat16 mixed precision (a GPU that supports it)"""


def check_args(args: Args) -> None:
    """Reject bad settings before anything loads: one line naming the problem, non-zero exit."""
    problems = [
        (not args.model_name_or_path, "--model-name-or-path is required: a local folder with a causal LM (nothing is downloaded)"),
        (bool(args.model_name_or_path) and not os.path.isdir(os.path.expanduser(args.model_name_or_path)),
         f"--model-name-or-path: no such folder: {args.model_name_or_path} (point it at a model you have on disk)"),
        (not args.data, "--data is required: a JSON-lines file of prompts"),
        (bool(args.data) and not os.path.isfile(os.path.expanduser(args.data)), f"--data: no such file: {args.data}"),
        (args.loss not in ("gbpo", "grpo"), f"--loss must be gbpo or grpo, got '{args.loss}'"),
        (args.reward not in ("label", "majority"), f"--reward must be label or majority, got '{args.reward}'"),
        (args.loss_type not in AGGREGATIONS, f"--loss-type must be one of {', '.join(AGGREGATIONS)}, got '{args.loss_type}'"),
        (not 0 <= args.seed < 2**32, f"--seed must lie in [0, 2**32 - 1], got {args.seed}"),
        (not args.exp_name or "/" in args.exp_name or "\\" in args.exp_name, f"--exp-name must be a plain name, got '{args.exp_name}'"),
        (args.num_generations < 2, f"--num-generations must be at least 2, got {args.num_generations}"),
        (args.per_device_train_batch_size < 1 or args.gradient_accumulation_steps < 1 or args.num_iterations < 1
         or args.max_steps < 1 or args.max_completion_length < 1 or args.logging_steps < 1,
         "--per-device-train-batch-size, --gradient-accumulation-steps, --num-iterations, --max-steps, "
         "--max-completion-length and --logging-steps must be at least 1"),
        (not 0.0 < args.learning_rate < math.inf, f"--learning-rate must be positive and finite, got {args.learning_rate}"),
        (not 0.0 < args.temperature < math.inf, f"--temperature must be positive and finite, got {args.temperature}"),
        (not 0.0 < args.epsilon < 1.0, f"--epsilon must lie in (0, 1), got {args.epsilon}"),
        (args.epsilon_high is not None and not 0.0 < args.epsilon_high < math.inf,
         f"--epsilon-high must be positive and finite, got {args.epsilon_high}"),
        (not 0.0 < args.gbpo_temperature < math.inf, f"--gbpo-temperature must be positive and finite, got {args.gbpo_temperature}"),
        (not 0.0 <= args.beta < math.inf, f"--beta must be >= 0 and finite, got {args.beta}"),
    ]
    for bad, message in problems:
        if bad:
            sys.exit(f"error: {message}")


def ignored_flags(args: Args) -> list[str]:
    """The GBPO flags given on the command line or set away from their defaults that this run does not use (the
    temperature of the sigmoid target with the exact target; both with --loss grpo): said in one line, not dropped."""
    unused = ("gbpo_temperature",) if args.loss == "grpo" or args.exact_ties else ()
    unused += ("exact_ties",) if args.loss == "grpo" else ()
    default = Args()
    typed = {a.split("=")[0].removeprefix("--no-").removeprefix("--").replace("-", "_") for a in sys.argv[1:] if a.startswith("--")}
    return [f"--{'no-' if getattr(args, k) is False else ''}{k.replace('_', '-')}" for k in unused
            if k in typed or getattr(args, k) != getattr(default, k)]


def load_prompts(path: str, reward: str) -> list[dict]:
    """The rows of a JSON-lines prompt file as {"prompt", "answer"} (answer None when absent); exits with one line
    naming the file and line of the first bad row, or when --reward label finds no answer at all."""
    import json

    def chat(prompt):  # chat messages: a list of {"role": str, "content": str}
        return isinstance(prompt, list) and all(isinstance(m, dict) and isinstance(m.get("role"), str)
                                                and isinstance(m.get("content"), (str, list)) for m in prompt)

    rows = []
    with open(os.path.expanduser(path), encoding="utf-8") as f:
        try:
            lines = list(f)
        except UnicodeDecodeError as e:
            sys.exit(f"error: {path} is not UTF-8 text ({e.reason} at byte {e.start})")
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                sys.exit(f"error: {path} line {number}: not JSON ({e.msg})")
            if (not isinstance(row, dict) or not (isinstance(row.get("prompt"), str) or chat(row.get("prompt")))
                    or not row["prompt"]):
                sys.exit(f'error: {path} line {number}: expected {{"prompt": text or chat messages, "answer": optional}}'
                         f' (chat messages: a list of {{"role": ..., "content": text}})')
            answer = row.get("answer")
            rows.append({"prompt": row["prompt"], "answer": None if answer is None else str(answer)})
    if not rows:
        sys.exit(f"error: {path} has no prompts")
    if reward == "label" and all(r["answer"] is None for r in rows):
        sys.exit(f'error: --reward label needs "answer" fields, and {path} has none (or use --reward majority)')
    return rows


def main(args: Args) -> None:
    check_args(args)
    if ignored := ignored_flags(args):
        print(f"note: this run does not use {' '.join(ignored)}", file=sys.stderr)
    rows = load_prompts(args.data, args.reward)
    import datasets
    import transformers

    path = os.path.expanduser(args.model_name_or_path)
    model_name = os.path.basename(os.path.normpath(path))
    run_name = f"{model_name}__{args.exp_name}__{args.loss}__{args.seed}__{int(time.time())}"
    config_class, trainer_class = (GBPOConfig, GBPOTrainer) if args.loss == "gbpo" else (trl.GRPOConfig, trl.GRPOTrainer)
    gbpo = dict(gbpo_temperature=args.gbpo_temperature, exact_ties=args.exact_ties) if args.loss == "gbpo" else {}
    try:
        config = config_class(
            output_dir=f"runs/{run_name}", run_name=run_name, seed=args.seed, report_to=[],  # TensorBoard: below
            logging_steps=args.logging_steps, save_strategy="no", max_steps=args.max_steps,
            learning_rate=args.learning_rate, per_device_train_batch_size=args.per_device_train_batch_size,
            gradient_accumulation_steps=args.gradient_accumulation_steps, num_generations=args.num_generations,
            num_iterations=args.num_iterations, max_completion_length=args.max_completion_length,
            temperature=args.temperature, epsilon=args.epsilon, epsilon_high=args.epsilon_high, loss_type=args.loss_type,
            beta=args.beta, use_cpu=args.use_cpu, bf16=args.bf16, **gbpo)
    except ValueError as e:  # TRL's own checks, e.g. a batch that does not hold whole groups
        sys.exit(f"error: {str(e).strip().splitlines()[0]}")
    needed = config.generation_batch_size // config.num_generations  # TRL's sampler drops an incomplete batch of prompts
    if len(rows) < needed:
        sys.exit(f"error: {args.data} has {len(rows)} prompt(s) and one generation batch takes {needed} "
                 f"(per-device batch × devices × accumulation steps / --num-generations): add prompts or shrink the batch")
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = transformers.AutoModelForCausalLM.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as e:
        sys.exit(f"error: --model-name-or-path {args.model_name_or_path}: cannot load a causal LM and its tokenizer: "
                 f"{str(e).strip().splitlines()[0]}")
    if any(isinstance(r["prompt"], list) for r in rows) and tokenizer.chat_template is None:
        sys.exit(f"error: {args.data} has chat-message prompts and the tokenizer in {args.model_name_or_path} has no chat "
                 f"template: give plain text prompts or a tokenizer with a chat_template")
    try:  # the run folder, found unwritable now rather than after the training
        os.makedirs(f"runs/{run_name}", exist_ok=True)
        tempfile.TemporaryFile(dir=f"runs/{run_name}").close()
    except OSError as e:
        sys.exit(f"error: cannot write to {os.path.abspath(f'runs/{run_name}')}: {e.strerror or e}")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    reward = label_reward if args.reward == "label" else MajorityVoteReward(args.num_generations)
    from torch.utils.tensorboard import SummaryWriter
    from transformers.integrations import TensorBoardCallback

    writer = SummaryWriter(f"runs/{run_name}")  # in runs/{run_name}/ itself, as the other scripts (not a dated subfolder)
    trainer = trainer_class(model=model, reward_funcs=reward, args=config, processing_class=tokenizer,
                            train_dataset=datasets.Dataset.from_list(rows), callbacks=[TensorBoardCallback(writer)])
    start = time.time()
    trainer.train()
    if args.save_model:
        try:
            trainer.save_model(f"runs/{run_name}/model")
            tokenizer.save_pretrained(f"runs/{run_name}/model")
        except (OSError, RuntimeError) as e:
            sys.exit(f"error: cannot save the model to runs/{run_name}/model: {str(e).strip().splitlines()[0]}")
    print(f"done: {trainer.state.global_step} steps in {time.time() - start:.0f}s; logs in runs/{run_name}"
          + (f"; model saved to runs/{run_name}/model" if args.save_model else ""))


if __name__ == "__main__":
    import tyro

    try:
        main(tyro.cli(Args))
    except KeyboardInterrupt:
        print("interrupted: nothing was saved (gbpo_trl.py saves the model only at the end, with --save-model)", file=sys.stderr)
        sys.exit(130)
