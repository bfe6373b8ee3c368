"""GBPO against GRPO: group-relative RL fine-tuning of a language-model policy with verifiable rewards, in one file.

Ao et al., "Bounded Ratio Reinforcement Learning", arXiv 2604.18578 (2026), the LLM experiment: for each
prompt the policy samples a group of G responses, each gets a scalar reward, and the update uses only
group statistics (no critic). GRPO (Shao et al. 2024) weights a clipped ratio objective by the group-normalised
advantage A_i = (r_i − mean)/(std + 1e-6). GBPO replaces the clipping by the bounded-ratio target of the
paper: every token's ratio ρ_t = π(y_t|·)/π_old(y_t|·) is pulled toward
ρ*_i = 1 − ε_low + (ε_low + ε_high)·σ(z_i/T), z_i = (r_i − median)/(std + 1e-6), with the V-shaped loss |ρ_t − ρ*_i|·|A_i| (shared/docs/brrl-math.md §5).
By default the target is the theory's exact one instead (Theorem 4.1 over the group), whose fractional value at
ties keeps the group's mean target ratio at exactly 1; with binary rewards most responses tie at the median, where
the sigmoid gives half the band. --no-exact-ties uses the sigmoid (the default before study gbpo_llm_ties, in which
the exact target scored higher on each of 5 seeds).
Both losses are averaged over all response tokens of a minibatch; ratios use log-probabilities at the sampling
temperature, against those of the sampling policy (recomputed by a forward pass before the update epochs).

Rewards: --reward majority (the default; Test-Time RL, Zuo et al. 2025: agreement with the majority vote of
the group's own answers, no labels) or --reward label (exact match with the known answer).

The task is n-digit addition ("07+45=" → "52"), with held-out test prompts. The default policy is a small
character-level causal transformer defined below, first trained briefly by supervised learning so that RL
starts from a competent but imperfect policy (held-out mean@4 about 0.65, maj@4 about 0.88 at the defaults),
as from a base LLM. The warm-up checkpoint is cached in --cache-dir, keyed by everything that shapes it, so
every RL run, whatever its --seed or --loss, starts from the same policy. --model-name-or-path fine-tunes a
Hugging Face causal LM instead, as loaded (`pip install transformers`; a folder without a tokenizer gets the
character one).

    python gbpo_llm.py --loss gbpo                  # warm-up (cached) + 200 RL iterations; logs in runs/{run_name}/
    python gbpo_llm.py --loss grpo --clip-low 0.3 --clip-high 0.3 --update-epochs 10
    python gbpo_llm.py --loss gbpo --rl-prompts test   # TTRL proper: label-free RL on the test prompts
    python gbpo_llm.py --model-name-or-path path/to/causal-lm --prompts-per-batch 4 --group-size 8 --save-model

TensorBoard scalars, by RL iteration: eval/accuracy (held-out mean@k, also at iteration 0: the starting
policy), eval/majority_accuracy (maj@k), train/reward_mean, train/accuracy (exact match of the samples, even
when the reward is the vote), train/informative_groups (share of groups whose rewards differ),
train/response_length, losses/policy_loss, losses/entropy, losses/approx_kl (to the sampling policy),
losses/clipfrac (GRPO: share of tokens whose clipped term is active), gbpo/target_ratio_mean and
gbpo/ratio_target_gap (GBPO: mean ρ* and mean |ρ − ρ*|), losses/kl_ref (with --kl-coef), charts/learning_rate,
charts/SPS (sampled responses per second of RL, evaluations included). The last line printed gives the final
held-out accuracy.

The paper's comparison (GRPO and GBPO at (ε, epochs) ∈ {(0.2, 1), (0.2, 10), (0.3, 10)}, majority-vote reward,
3 seeds) is the benchmark study `gbpo_llm`; its results are committed in benchmarks/results/gbpo_llm/:

    python benchmarks/run.py gbpo_llm && python benchmarks/report.py gbpo_llm
"""

import copy
import hashlib
import inspect
import json
import math
import os
import random
import re
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import tyro
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

LOSSES = ("gbpo", "grpo")
REWARDS = ("label", "majority")
RL_PROMPTS = ("train", "test")


@dataclass
class Args:
    exp_name: str = os.path.basename(__file__)[: -len(".py")]
    """the name of this experiment (part of the run name)"""
    seed: int = 1
    """seed of the RL run (prompts, samples, minibatch order); the task split and the warm-up use --task-seed"""
    cuda: bool = False
    """if toggled, use the GPU when one is present (the small built-in transformer runs fine on the CPU)"""
    torch_threads: int = 1
    """CPU threads for torch; 1 is fastest for the small built-in transformer and lets runs share cores"""
    track: bool = False
    """if toggled, track the run with Weights and Biases (needs `pip install wandb`)"""
    wandb_project_name: str = "brrl"
    """the Weights and Biases project name"""
    wandb_entity: str | None = None
    """the entity (team) of the Weights and Biases project"""
    save_model: bool = False
    """if toggled, save the fine-tuned policy to runs/{run_name}/ at the end"""
    progress: bool = True
    """show a progress bar on the terminal"""
    cache_dir: str = os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "brrl", "gbpo_llm")
    """folder of the cached warm-up checkpoints (one file per set of warm-up arguments)"""

    # Task: n-digit addition with an exact integer answer, train prompts and held-out test prompts
    num_digits: int = 2
    """digits of each operand ("07+45=" for 2); the answer has up to num_digits + 1 digits"""
    num_test_prompts: int = 256
    """held-out prompts for evaluation; never trained on unless --rl-prompts test"""
    task_seed: int = 0
    """seed of the train/test split and of the warm-up (fixed, so every RL run starts from the same policy)"""

    # Policy: the built-in character-level transformer, or a Hugging Face causal LM
    model_name_or_path: str | None = None
    """fine-tune this Hugging Face causal LM (a folder or a hub id; needs transformers) instead of the built-in transformer"""
    d_model: int = 64
    """width of the built-in transformer"""
    n_layers: int = 2
    """layers of the built-in transformer"""
    n_heads: int = 4
    """attention heads of the built-in transformer"""
    warmup_steps: int = 800
    """supervised warm-up steps of the built-in transformer (a Hugging Face model starts RL as loaded)"""
    warmup_batch_size: int = 128
    """prompts per supervised warm-up step"""
    warmup_lr: float = 3e-3
    """Adam learning rate of the supervised warm-up"""
    warmup_noise: float = 0.3
    """fraction of warm-up answers with one digit changed at random: the warm-up policy is imperfect, with diverse mistakes"""
    max_new_tokens: int | None = None
    """longest response in tokens (default: the longest answer plus the end-of-sequence token)"""

    # RL
    loss: str = "gbpo"
    """policy loss: gbpo (bounded-ratio target, |A| weight, no clipping) or grpo (clipped ratio objective)"""
    reward: str = "majority"
    """reward: label (exact match with the answer) or majority (agreement with the group's majority answer, no labels)"""
    rl_prompts: str = "train"
    """prompts RL samples from: train (evaluated on held-out ones) or test (TTRL's test-time setting; majority reward only)"""
    total_iterations: int = 200
    """RL iterations (one batch of groups sampled, then --update-epochs passes over it)"""
    prompts_per_batch: int = 32
    """prompts per iteration"""
    group_size: int = 8
    """G: responses sampled per prompt (at least 2)"""
    temperature: float = 1.0
    """sampling temperature of training and evaluation; the ratios use log-probabilities at the same temperature"""
    learning_rate: float = 1e-4
    """Adam learning rate of the RL updates (constant)"""
    update_epochs: int = 1
    """passes over each sampled batch"""
    num_minibatches: int = 4
    """minibatches per pass (responses are shuffled across groups; advantages are computed on whole groups first)"""
    clip_low: float = 0.2
    """ε_low: the ratio's lower bound 1 − ε_low (GRPO's clip; GBPO's target band)"""
    clip_high: float = 0.2
    """ε_high: the ratio's upper bound 1 + ε_high (GRPO's clip; GBPO's target band)"""
    gbpo_temperature: float = 1e-4
    """T of GBPO's target 1 − ε_low + (ε_low + ε_high)·σ(z/T); small T is near-binary"""
    exact_ties: bool = True
    """GBPO only: the exact target of Theorem 4.1 over the group, whose tie value keeps the mean target ratio at 1;
    --no-exact-ties: the sigmoid target σ(z/T) (the default before study gbpo_llm_ties)"""
    kl_coef: float = 0.0
    """coefficient of the KL penalty to the reference policy (the starting policy), k3 estimator per token"""
    ent_coef: float = 0.0
    """coefficient of the entropy bonus (token entropy at the sampling temperature)"""
    max_grad_norm: float = 1.0
    """the maximum norm for the gradient clipping"""
    eval_every: int = 20
    """evaluate on the held-out prompts every this many iterations (and before the first and after the last)"""
    eval_k: int = 4
    """k of the held-out accuracy mean@k (samples per test prompt); maj@k is logged too"""


def check_args(args: Args) -> None:
    """Reject bad settings before anything starts: one line naming the problem, non-zero exit.
    Every numeric flag has its range here (written so that NaN fails too); tests/test_faults.py walks them all."""
    batch = args.prompts_per_batch * args.group_size
    path = args.model_name_or_path
    # A hub id is "name" or "org/name"; anything else, or a path in an existing folder, is a folder that has to exist.
    looks_local = path is not None and (path.startswith((".", "/", "~")) or path.count("/") > 1 or os.path.isabs(path)
                                        or ("/" in path and os.path.isdir(path.split("/")[0])))
    problems = [
        (not 0 <= args.seed < 2**32, f"--seed must lie in [0, 2**32 - 1] (NumPy's seed range), got {args.seed}"),
        (not 0 <= args.task_seed < 2**32, f"--task-seed must lie in [0, 2**32 - 1] (NumPy's seed range), got {args.task_seed}"),
        (args.torch_threads < 1, f"--torch-threads must be at least 1, got {args.torch_threads}"),
        (not args.exp_name or "/" in args.exp_name or "\\" in args.exp_name,  # it names a folder under runs/ and a file
         f"--exp-name must be a plain name, without '/' or '\\', got '{args.exp_name}'"),
        (args.loss not in LOSSES, f"--loss must be one of {', '.join(LOSSES)}, got '{args.loss}'"),
        (args.reward not in REWARDS, f"--reward must be one of {', '.join(REWARDS)}, got '{args.reward}'"),
        (args.rl_prompts not in RL_PROMPTS, f"--rl-prompts must be one of {', '.join(RL_PROMPTS)}, got '{args.rl_prompts}'"),
        (args.rl_prompts == "test" and args.reward == "label",
         "--rl-prompts test trains on the held-out prompts, which is only fair without labels: use --reward majority"),
        (not 0.0 < args.clip_low < 1.0, f"--clip-low must lie in (0, 1), got {args.clip_low}"),
        (not 0.0 < args.clip_high < math.inf, f"--clip-high must be positive and finite, got {args.clip_high}"),
        (args.group_size < 2, f"--group-size must be at least 2 (group statistics need two responses), got {args.group_size}"),
        (args.prompts_per_batch < 1, f"--prompts-per-batch must be at least 1, got {args.prompts_per_batch}"),
        (args.num_minibatches < 1 or batch % args.num_minibatches != 0,
         f"the batch (--prompts-per-batch {args.prompts_per_batch} x --group-size {args.group_size} = {batch}) "
         f"does not divide into --num-minibatches {args.num_minibatches}"),
        (args.update_epochs < 1, f"--update-epochs must be at least 1, got {args.update_epochs}"),
        (args.total_iterations < 0, f"--total-iterations must be >= 0, got {args.total_iterations}"),
        (not 0.0 < args.temperature < math.inf, f"--temperature must be positive and finite, got {args.temperature}"),
        (not 0.0 < args.gbpo_temperature < math.inf, f"--gbpo-temperature must be positive and finite, got {args.gbpo_temperature}"),
        (not 0.0 <= args.kl_coef < math.inf, f"--kl-coef must be >= 0 and finite, got {args.kl_coef}"),
        (not 0.0 <= args.ent_coef < math.inf, f"--ent-coef must be >= 0 and finite, got {args.ent_coef}"),
        (not 0.0 < args.learning_rate < math.inf, f"--learning-rate must be positive and finite, got {args.learning_rate}"),
        (not 0.0 < args.warmup_lr < math.inf, f"--warmup-lr must be positive and finite, got {args.warmup_lr}"),
        (not 0.0 < args.max_grad_norm < math.inf, f"--max-grad-norm must be positive and finite, got {args.max_grad_norm}"),
        (args.eval_every < 1 or args.eval_k < 1, "--eval-every and --eval-k must be at least 1"),
        (not 1 <= args.num_digits <= 9, f"--num-digits must lie in [1, 9], got {args.num_digits}"),
        (not 1 <= args.num_test_prompts <= 10 ** (2 * args.num_digits) // 2,
         f"--num-test-prompts must lie in [1, {10 ** (2 * min(max(args.num_digits, 1), 9)) // 2}] (half of the "
         f"{args.num_digits}-digit pairs at most), got {args.num_test_prompts}"),
        (args.warmup_steps < 0 or args.warmup_batch_size < 1, "--warmup-steps must be >= 0 and --warmup-batch-size >= 1"),
        (not 0.0 <= args.warmup_noise <= 1.0, f"--warmup-noise must lie in [0, 1], got {args.warmup_noise}"),
        (args.d_model < 1 or args.n_layers < 1 or args.n_heads < 1 or args.d_model % args.n_heads != 0,
         f"--d-model ({args.d_model}) must be a positive multiple of --n-heads ({args.n_heads}), and --n-layers >= 1"),
        (args.max_new_tokens is not None and args.max_new_tokens < 1,
         f"--max-new-tokens must be at least 1, got {args.max_new_tokens}"),
        (looks_local and not os.path.isdir(os.path.expanduser(path)), f"--model-name-or-path: no such folder: {path}"),
    ]
    for bad, message in problems:
        if bad:
            sys.exit(f"error: {message}")


BUILTIN_ONLY = ("cache_dir", "d_model", "n_layers", "n_heads", "warmup_steps", "warmup_batch_size", "warmup_lr", "warmup_noise")
"""the flags of the built-in transformer and its warm-up, unused with --model-name-or-path"""


def ignored_flags(args: Args) -> list[str]:
    """The flags given on the command line or set away from their defaults that this run does not use: said in one
    line, not silently dropped."""
    unused = BUILTIN_ONLY if args.model_name_or_path is not None else ()
    if args.loss == "grpo" or args.exact_ties:  # the exact target has no temperature
        unused += ("gbpo_temperature",)
    if args.loss == "grpo":  # GRPO has no target
        unused += ("exact_ties",)
    default = Args()
    typed = {a.split("=")[0].removeprefix("--").replace("-", "_") for a in sys.argv[1:] if a.startswith("--")}
    return [f"--{k.replace('_', '-')}" for k in unused if k in typed or getattr(args, k) != getattr(default, k)]


def check_writable(folder) -> None:
    """Create `folder` and write a scratch file in it, or exit with one line naming it: found now, not after the training."""
    try:
        os.makedirs(folder, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as e:
        sys.exit(f"error: cannot write to {os.path.abspath(folder)}: {e.strerror or e}")


# ---------------------------------------------------------------- task: n-digit addition


class AdditionTask:
    """Prompts "a+b=" with zero-padded n-digit operands; the answer is a + b (no leading zeros).

    The held-out test set is `num_test_prompts` distinct pairs drawn with `seed`; training prompts are every other pair.
    """

    def __init__(self, num_digits: int, num_test_prompts: int, seed: int):
        self.num_digits = num_digits
        self.num_pairs = 10 ** (2 * num_digits)  # pair index = a·10^n + b
        rng = np.random.default_rng(seed)
        test = np.empty(0, dtype=np.int64)
        while len(test) < num_test_prompts:  # distinct pairs in the order drawn
            draw = np.concatenate([test, rng.integers(0, self.num_pairs, 2 * num_test_prompts)])
            _, first = np.unique(draw, return_index=True)
            test = draw[np.sort(first)][:num_test_prompts]
        self.test_pairs = test
        self._test_sorted = np.sort(test)

    def sample_train(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """n training pair indices, uniform over the pairs outside the test set."""
        out = np.empty(0, dtype=np.int64)
        while len(out) < n:
            draw = rng.integers(0, self.num_pairs, 2 * n)
            out = np.concatenate([out, draw[~np.isin(draw, self._test_sorted)]])
        return out[:n]

    def operands(self, pairs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        base = 10**self.num_digits
        return pairs // base, pairs % base

    def prompts(self, pairs: np.ndarray) -> list[str]:
        n = self.num_digits
        return [f"{a:0{n}d}+{b:0{n}d}=" for a, b in zip(*self.operands(pairs))]

    def answers(self, pairs: np.ndarray) -> list[int]:
        a, b = self.operands(pairs)
        return (a + b).tolist()

    @property
    def max_answer_chars(self) -> int:
        return self.num_digits + 1


def extract_answer(text: str) -> int | None:
    """The integer a response starts with (after optional spaces), or None when it does not start with one."""
    match = re.match(r"\s*(-?\d+)", text)
    return int(match.group(1)) if match else None


# ---------------------------------------------------------------- tokenizers


class CharTokenizer:
    """Character-level tokenizer of the task's alphabet: 0 is padding, 1 ends a response."""

    chars = "0123456789+=-"
    pad_id, eos_id = 0, 1

    def __init__(self):
        self.vocab_size = 2 + len(self.chars)
        self._ids = {c: i + 2 for i, c in enumerate(self.chars)}

    def encode(self, text: str) -> list[int]:
        return [self._ids[c] for c in text]

    def decode(self, ids) -> str:
        return "".join(self.chars[i - 2] for i in ids if i >= 2)


class HFTokenizer:
    """The same interface over a Hugging Face tokenizer."""

    def __init__(self, tokenizer):
        if tokenizer.eos_token_id is None:
            sys.exit("error: the model's tokenizer has no end-of-sequence token")
        self.tokenizer = tokenizer
        self.eos_id = tokenizer.eos_token_id
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.vocab_size = len(tokenizer)

    def encode(self, text: str) -> list[int]:
        return self.tokenizer(text)["input_ids"]

    def decode(self, ids) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True)


def encode_prompts(tokenizer, texts: list[str], device) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded prompt ids and their attention mask (1 = real token), both (n, longest prompt)."""
    encoded = [tokenizer.encode(t) for t in texts]
    width = max(len(e) for e in encoded)
    ids = torch.full((len(texts), width), tokenizer.pad_id, dtype=torch.long)
    mask = torch.zeros((len(texts), width), dtype=torch.long)
    for i, e in enumerate(encoded):
        ids[i, width - len(e):] = torch.tensor(e, dtype=torch.long)
        mask[i, width - len(e):] = 1
    return ids.to(device), mask.to(device)


def decode_responses(tokenizer, response_ids: torch.Tensor, response_mask: torch.Tensor) -> list[str]:
    """The text of each response, up to (not including) its end-of-sequence token."""
    texts = []
    for ids, n in zip(response_ids.tolist(), response_mask.sum(1).tolist()):
        ids = ids[:n]
        if ids and ids[-1] == tokenizer.eos_id:
            ids = ids[:-1]
        texts.append(tokenizer.decode(ids))
    return texts


# ---------------------------------------------------------------- policy: a small causal transformer with a KV cache


class Block(nn.Module):
    """Pre-norm transformer block; `kv` is this layer's cached keys and values of the earlier positions."""

    def __init__(self, d_model: int, n_heads: int):
        super().__init__()
        self.n_heads = n_heads
        self.ln1, self.ln2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)
        self.mlp = nn.Sequential(nn.Linear(d_model, 4 * d_model), nn.GELU(), nn.Linear(4 * d_model, d_model))

    def forward(self, x, attn_mask, kv=None):
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, t, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
        if kv is not None:
            k, v = torch.cat([kv[0], k], 2), torch.cat([kv[1], v], 2)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        x = x + self.proj(y.transpose(1, 2).reshape(b, t, d))
        return x + self.mlp(self.ln2(x)), (k, v)


class CausalTransformer(nn.Module):
    """GPT-style decoder: token + learned position embeddings, pre-norm blocks, untied output head.

    forward(tokens, attention_mask, cache, use_cache, last_only): `tokens` (B, T) are the new positions,
    `attention_mask` (B, past + T) covers the cached and the new ones (0 = left padding); positions count real
    tokens only, so a left-padded prompt is encoded as if it were not padded. Returns the logits (of the last
    position only with `last_only`) and, with `use_cache`, the keys and values of every position so far.
    """

    def __init__(self, vocab_size: int, max_len: int, d_model: int, n_layers: int, n_heads: int):
        super().__init__()
        self.max_len = max_len
        self.tok_emb = nn.Embedding(vocab_size, d_model)
        self.pos_emb = nn.Embedding(max_len, d_model)
        self.blocks = nn.ModuleList(Block(d_model, n_heads) for _ in range(n_layers))
        self.ln_f = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, vocab_size, bias=False)
        self.apply(self._init)

    @staticmethod
    def _init(module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def forward(self, tokens, attention_mask, cache=None, use_cache=False, last_only=False):
        t, s = tokens.shape[1], attention_mask.shape[1]
        positions = (attention_mask.cumsum(1) - 1).clamp(0, self.max_len - 1)[:, s - t:]
        x = self.tok_emb(tokens) + self.pos_emb(positions)
        query_at = torch.arange(s - t, s, device=tokens.device)[:, None]
        key_at = torch.arange(s, device=tokens.device)[None]
        allowed = (key_at <= query_at) & attention_mask[:, None, :].bool()
        allowed = allowed | (key_at == query_at)  # a padding position sees itself: no empty softmax row
        new_cache = []
        for i, block in enumerate(self.blocks):
            x, kv = block(x, allowed[:, None], cache[i] if cache is not None else None)
            new_cache.append(kv)
        if last_only:  # generation needs the next-token logits only
            x = x[:, -1:]
        return self.head(self.ln_f(x)), (new_cache if use_cache else None)


class HFPolicy(nn.Module):
    """A Hugging Face causal LM behind the same forward(tokens, attention_mask, cache, use_cache, last_only) interface."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        # transformers >= 5.24 calls the key-value cache `cache`; earlier versions call it `past_key_values`
        parameters = inspect.signature(model.forward).parameters
        self.cache_name = "cache" if "cache" in parameters else "past_key_values"
        self.keep_name = next((n for n in ("logits_to_keep", "num_logits_to_keep") if n in parameters), None)

    def forward(self, tokens, attention_mask, cache=None, use_cache=False, last_only=False):
        positions = (attention_mask.cumsum(1) - 1).clamp_min(0)[:, attention_mask.shape[1] - tokens.shape[1]:]
        extra = {self.keep_name: 1} if last_only and self.keep_name else {}  # no vocabulary-sized logits for the prompt
        out = self.model(input_ids=tokens, attention_mask=attention_mask, position_ids=positions, use_cache=use_cache,
                         **{self.cache_name: cache}, **extra)
        logits = out.logits[:, -1:] if last_only else out.logits
        return logits, (out[self.cache_name] if use_cache else None)


def load_hf_policy(path: str, device) -> tuple[HFPolicy, object]:
    """Load a causal LM and its tokenizer (the built-in character tokenizer when the folder has none)."""
    try:
        import transformers
    except ImportError:
        sys.exit("error: --model-name-or-path needs transformers: pip install transformers")
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    path = os.path.expanduser(path)
    try:
        model = transformers.AutoModelForCausalLM.from_pretrained(path)
    except Exception as e:  # noqa: BLE001  (OSError, ValueError, hub errors: all mean "cannot load")
        sys.exit(f"error: cannot load a causal LM from '{path}': {str(e).strip().splitlines()[0]}")
    tokenizer_files = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")
    if os.path.isdir(path) and not any(os.path.isfile(os.path.join(path, f)) for f in tokenizer_files):
        tokenizer = CharTokenizer()
        if model.get_input_embeddings().num_embeddings < tokenizer.vocab_size:
            sys.exit(f"error: '{path}' has no tokenizer, and its vocabulary is too small for the built-in character tokenizer")
        print(f"note: '{path}' has no tokenizer; using the built-in character tokenizer", file=sys.stderr)
    else:
        try:
            tokenizer = HFTokenizer(transformers.AutoTokenizer.from_pretrained(path))
        except Exception as e:  # noqa: BLE001
            sys.exit(f"error: cannot load the tokenizer of '{path}': {str(e).strip().splitlines()[0]}")
    return HFPolicy(model.to(device=device, dtype=torch.float32)), tokenizer


# ---------------------------------------------------------------- generation and log-probabilities


@torch.no_grad()
def generate(policy, prompt_ids, prompt_mask, max_new_tokens, temperature, eos_id, pad_id, generator=None,
             use_cache=True, return_logits=False):
    """Sample responses for a batch of prompts, all at once: one forward pass per generated position.

    With `use_cache` the keys and values of earlier positions are kept and only the newest token is fed; without
    it the whole sequence is recomputed at every position (same result, for testing). A finished response is
    padded with `pad_id`. Returns (response ids, response mask: 1 up to and including the end token) and, with
    `return_logits`, the logits (B, R, V) of every sampled position.
    """
    b = prompt_ids.shape[0]
    ids, mask, cache = prompt_ids, prompt_mask, None
    step_input = prompt_ids
    done = torch.zeros(b, dtype=torch.bool, device=prompt_ids.device)
    tokens, all_logits = [], []
    for _ in range(max_new_tokens):
        if use_cache:
            logits, cache = policy(step_input, mask, cache, use_cache=True, last_only=True)
        else:
            logits, _ = policy(ids, mask, last_only=True)
        logits = logits[:, -1].float()
        if return_logits:
            all_logits.append(logits)
        token = torch.multinomial(torch.softmax(logits / temperature, -1), 1, generator=generator).squeeze(1)
        token = torch.where(done, pad_id, token)
        tokens.append(token)
        done = done | (token == eos_id)
        step_input = token[:, None]
        ids = torch.cat([ids, step_input], 1)
        mask = torch.cat([mask, torch.ones_like(step_input)], 1)
        if bool(done.all()):
            break
    response = torch.stack(tokens, 1)
    response_mask = response_mask_of(response, eos_id)
    return (response, response_mask, torch.stack(all_logits, 1)) if return_logits else (response, response_mask)


def response_mask_of(response, eos_id):
    """1 for every token up to and including the first end token (all tokens when there is none)."""
    is_eos = (response == eos_id).long()
    return ((is_eos.cumsum(1) - is_eos) == 0).long()


def response_logprobs(policy, prompt_ids, prompt_mask, response, temperature):
    """Per-token log-probabilities (and entropies) of `response` under `policy` at `temperature`, teacher-forced."""
    seq = torch.cat([prompt_ids, response], 1)
    mask = torch.cat([prompt_mask, torch.ones_like(response)], 1)
    logits, _ = policy(seq, mask)
    logits = logits[:, prompt_ids.shape[1] - 1 : -1].float() / temperature
    log_probs = torch.log_softmax(logits, -1)
    token_logp = log_probs.gather(-1, response.unsqueeze(-1)).squeeze(-1)
    entropy = -(log_probs.exp() * log_probs).sum(-1)
    return token_logp, entropy


# ---------------------------------------------------------------- supervised warm-up (cached)


def warmup_key(args: Args, tokenizer, max_len: int) -> dict:
    """Everything that shapes the warm-up checkpoint (and the format version of this file)."""
    return {"version": 1, "num_digits": args.num_digits, "num_test_prompts": args.num_test_prompts,
            "task_seed": args.task_seed, "d_model": args.d_model, "n_layers": args.n_layers, "n_heads": args.n_heads,
            "max_len": max_len, "vocab": tokenizer.chars, "warmup_steps": args.warmup_steps,
            "warmup_batch_size": args.warmup_batch_size, "warmup_lr": args.warmup_lr, "warmup_noise": args.warmup_noise}


def supervised_warmup(policy, task, tokenizer, args, device):
    """Brief teacher-forced training on training prompts: cross-entropy of the answer and its end token.

    A fraction --warmup-noise of the answers has one digit changed at random, so the policy learns to make
    diverse, rarely repeated mistakes, like a base LLM sampled at temperature 1, rather than only the
    systematic ones of an undertrained network (on which a majority vote agrees, and TTRL locks them in).
    """
    rng = np.random.default_rng(args.task_seed)
    optimizer = torch.optim.Adam(policy.parameters(), lr=args.warmup_lr)
    width = task.max_answer_chars + 1
    for _ in tqdm(range(args.warmup_steps), desc="warm-up", disable=None if args.progress else True, dynamic_ncols=True):
        pairs = task.sample_train(rng, args.warmup_batch_size)
        prompt_ids, prompt_mask = encode_prompts(tokenizer, task.prompts(pairs), device)
        response = torch.full((len(pairs), width), tokenizer.pad_id, dtype=torch.long)
        for i, answer in enumerate(task.answers(pairs)):
            text = str(answer)
            if rng.random() < args.warmup_noise:  # one digit changed: a plausible, rarely repeated mistake
                at = rng.integers(len(text))
                text = text[:at] + str((int(text[at]) + rng.integers(1, 10)) % 10) + text[at + 1 :]
            encoded = tokenizer.encode(text) + [tokenizer.eos_id]
            response[i, : len(encoded)] = torch.tensor(encoded)
        response = response.to(device)
        logp, _ = response_logprobs(policy, prompt_ids, prompt_mask, response, 1.0)
        mask = response_mask_of(response, tokenizer.eos_id)
        loss = -(logp * mask).sum() / mask.sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def warmed_up_policy(args: Args, task, tokenizer, max_len, device):
    """The built-in transformer after the supervised warm-up: from the cache when it holds this key, else trained."""
    key = warmup_key(args, tokenizer, max_len)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    path = os.path.join(args.cache_dir, f"warmup_{digest}.pt")
    torch.manual_seed(args.task_seed)
    policy = CausalTransformer(tokenizer.vocab_size, max_len, args.d_model, args.n_layers, args.n_heads).to(device)
    try:
        saved = torch.load(path, map_location=device, weights_only=True)
        if saved["key"] == key:
            policy.load_state_dict(saved["model"])
            return policy, path, True
    except Exception:  # noqa: BLE001  (no such file, or an unreadable one: train again and overwrite it)
        pass
    check_writable(args.cache_dir)  # before the warm-up trains, not after
    supervised_warmup(policy, task, tokenizer, args, device)
    tmp = f"{path}.{os.getpid()}.tmp"  # write, then rename: parallel runs never read a half-written file
    try:
        torch.save({"key": key, "model": policy.state_dict()}, tmp)
        os.replace(tmp, path)
    except (OSError, RuntimeError) as e:  # disk full: torch reports write failures as RuntimeError
        sys.exit(f"error: cannot write the warm-up checkpoint {path}: {str(e).strip().splitlines()[0]}")
    return policy, path, False


# ---------------------------------------------------------------- rewards


def majority_answers(answers: list[int | None], group_size: int) -> list[int | None]:
    """The majority answer of each consecutive group of `group_size` answers (None answers do not vote).

    Ties in the vote go to the tied answer that appears first in the group (as Counter.most_common does in
    TTRL); responses are sampled independently, so this favours no answer value. A group without any
    answer has no majority (None).
    """
    majorities = []
    for start in range(0, len(answers), group_size):
        votes = Counter(a for a in answers[start : start + group_size] if a is not None)
        majorities.append(votes.most_common(1)[0][0] if votes else None)
    return majorities


def compute_rewards(answers: list[int | None], labels: list[int], group_size: int, kind: str) -> list[float]:
    """Reward 1 or 0 per response: exact match with its label (`label`), or with its group's majority answer (`majority`)."""
    if kind == "label":
        targets = labels
    else:
        targets = [m for m in majority_answers(answers, group_size) for _ in range(group_size)]
    return [float(a is not None and a == t) for a, t in zip(answers, targets)]


# ---------------------------------------------------------------- group statistics and losses (brrl-math.md §5)


def group_advantage(scores, std_eps=1e-6):
    """GRPO advantage (r − mean)/(std + 1e-6) over the last axis (the group), unbiased std; 0 for an all-equal group."""
    centred = scores - scores.mean(-1, keepdim=True)
    all_equal = scores.amax(-1, keepdim=True) == scores.amin(-1, keepdim=True)
    return torch.where(all_equal, 0.0, centred / (scores.std(-1, keepdim=True) + std_eps))


def group_median(scores):
    """Median over the last axis; the midpoint of the two middle values for an even group (as numpy)."""
    s = scores.sort(-1).values
    n = scores.shape[-1]
    return 0.5 * (s[..., (n - 1) // 2 : (n - 1) // 2 + 1] + s[..., n // 2 : n // 2 + 1])


def gbpo_target_ratio(scores, clip_low, clip_high, temperature=1e-4, exact_ties=False, std_eps=1e-6):
    """GBPO's target ratio ρ*_i of every response of a group (last axis).

    Default: 1 − ε_low + (ε_low + ε_high)·σ(z_i/T), z_i = (r_i − median)/(std + 1e-6); a score at the median
    gets σ(0) = 1/2.
    exact_ties: Theorem 4.1 over the group with uniform π_old and bounds 1 − ε_low, 1 + ε_high. The best responses
    holding a fraction α = ε_low/(ε_low + ε_high) of the group get 1 + ε_high, the rest 1 − ε_low, and the responses
    tied at the threshold share one fractional value, so the group's mean target ratio is exactly 1.
    """
    if exact_ties:
        c_low, c_high = 1.0 - clip_low, 1.0 + clip_high
        n = scores.shape[-1]
        above = (scores.unsqueeze(-2) > scores.unsqueeze(-1)).sum(-1).to(scores.dtype)  # responses scoring higher
        tied = (scores.unsqueeze(-2) == scores.unsqueeze(-1)).sum(-1).to(scores.dtype)  # itself included
        share = ((clip_low / (clip_low + clip_high) * n - above) / tied).clamp(0.0, 1.0)
        return c_low + (c_high - c_low) * share
    z = (scores - group_median(scores)) / (scores.std(-1, keepdim=True) + std_eps)
    return 1.0 - clip_low + (clip_low + clip_high) * torch.sigmoid(z / temperature)


def gbpo_loss(ratio, advantage, target_ratio):
    """Per-token GBPO loss |ρ_t − ρ*_i|·|A_i| (no clipping; A and ρ* are constants). No reduction."""
    return advantage.detach().abs() * (ratio - target_ratio.detach()).abs()


def grpo_loss(ratio, advantage, clip_low, clip_high):
    """Per-token GRPO loss −min(ρA, clip(ρ, 1 − ε_low, 1 + ε_high)·A). No reduction."""
    return -torch.min(ratio * advantage, torch.clamp(ratio, 1.0 - clip_low, 1.0 + clip_high) * advantage)


# ---------------------------------------------------------------- evaluation


@torch.no_grad()
def evaluate(policy, task, tokenizer, args, max_new_tokens, generator, device):
    """Held-out accuracy mean@k (mean correctness of k samples per test prompt) and maj@k (of their majority answer).

    Generates in chunks of the training batch's size (--prompts-per-batch x --group-size), whose memory fits.
    """
    chunk = args.prompts_per_batch * args.group_size
    pairs = np.repeat(task.test_pairs, args.eval_k)
    labels = task.answers(pairs)
    answers = []
    for start in range(0, len(pairs), chunk):
        prompt_ids, prompt_mask = encode_prompts(tokenizer, task.prompts(pairs[start : start + chunk]), device)
        response, response_mask = generate(policy, prompt_ids, prompt_mask, max_new_tokens, args.temperature,
                                           tokenizer.eos_id, tokenizer.pad_id, generator)
        answers += [extract_answer(t) for t in decode_responses(tokenizer, response, response_mask)]
    mean_at_k = float(np.mean(compute_rewards(answers, labels, args.eval_k, "label")))
    majorities = majority_answers(answers, args.eval_k)
    maj_at_k = float(np.mean([m == label for m, label in zip(majorities, labels[:: args.eval_k])]))
    return mean_at_k, maj_at_k


# ---------------------------------------------------------------- training


def main(args: Args):
    check_args(args)
    if ignored := ignored_flags(args):
        print(f"note: this run does not use {' '.join(ignored)}", file=sys.stderr)
    check_writable("runs")  # before the warm-up and the RL run, not at the end
    torch.set_num_threads(args.torch_threads)
    device = torch.device("cuda" if torch.cuda.is_available() and args.cuda else "cpu")
    if args.cuda and device.type == "cpu":
        print("--cuda: no GPU available, running on the CPU", file=sys.stderr)

    task = AdditionTask(args.num_digits, args.num_test_prompts, args.task_seed)
    start_time = time.time()
    max_new_tokens = args.max_new_tokens or task.max_answer_chars + 1
    if args.model_name_or_path is None:
        tokenizer = CharTokenizer()
        prompt_len = len(task.prompts(task.test_pairs[:1])[0])
        policy, warmup_path, cached = warmed_up_policy(args, task, tokenizer, prompt_len + max_new_tokens, device)
        print(f"warm-up policy {'loaded from' if cached else 'trained and cached in'} {warmup_path}")
        model_name = f"add{args.num_digits}"
    else:
        policy, tokenizer = load_hf_policy(args.model_name_or_path, device)
        model_name = os.path.basename(os.path.normpath(args.model_name_or_path)).replace("/", "_")
    policy.eval()  # no dropout: the ratio of identical policies must be exactly 1
    reference = copy.deepcopy(policy).requires_grad_(False) if args.kl_coef > 0 else None
    run_name = f"{model_name}__{args.exp_name}__{args.loss}__{args.seed}__{int(time.time())}"

    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    sample_gen = torch.Generator(device).manual_seed(args.seed)  # training samples and minibatch order
    eval_gen = torch.Generator(device).manual_seed(args.seed + 10**6)  # evaluation never shifts the training samples
    optimizer = torch.optim.Adam(policy.parameters(), lr=args.learning_rate)

    if args.track:
        import wandb

        wandb.init(project=args.wandb_project_name, entity=args.wandb_entity, sync_tensorboard=True,
                   config=vars(args), name=run_name, save_code=True)
    writer = SummaryWriter(f"runs/{run_name}")
    writer.add_text("hyperparameters", "|param|value|\n|-|-|\n%s" % "\n".join(f"|{k}|{v}|" for k, v in vars(args).items()))

    def log_eval(iteration):
        accuracy, majority_accuracy = evaluate(policy, task, tokenizer, args, max_new_tokens, eval_gen, device)
        writer.add_scalar("eval/accuracy", accuracy, iteration)
        writer.add_scalar("eval/majority_accuracy", majority_accuracy, iteration)
        return accuracy

    first_accuracy = accuracy = log_eval(0)
    G, batch = args.group_size, args.prompts_per_batch * args.group_size
    minibatch = batch // args.num_minibatches
    rl_start, num_responses = time.time(), 0
    progress = tqdm(total=args.total_iterations, unit="it", disable=None if args.progress else True, dynamic_ncols=True)
    for iteration in range(1, args.total_iterations + 1):
        # Sample G responses for each of the batch's prompts and score them.
        if args.rl_prompts == "train":
            pairs = task.sample_train(rng, args.prompts_per_batch)
        else:
            pairs = rng.choice(task.test_pairs, args.prompts_per_batch, replace=args.prompts_per_batch > len(task.test_pairs))
        pairs = np.repeat(pairs, G)
        labels = task.answers(pairs)
        prompt_ids, prompt_mask = encode_prompts(tokenizer, task.prompts(pairs), device)
        response, response_mask = generate(policy, prompt_ids, prompt_mask, max_new_tokens, args.temperature,
                                           tokenizer.eos_id, tokenizer.pad_id, sample_gen)
        answers = [extract_answer(t) for t in decode_responses(tokenizer, response, response_mask)]
        rewards = torch.tensor(compute_rewards(answers, labels, G, args.reward), device=device)
        correct = np.array(compute_rewards(answers, labels, G, "label"))
        num_responses += batch

        # Group statistics: one advantage (and GBPO target ratio) per response.
        scores = rewards.view(-1, G)
        advantages = group_advantage(scores).view(-1, 1)
        targets = gbpo_target_ratio(scores, args.clip_low, args.clip_high, args.gbpo_temperature, args.exact_ties).view(-1, 1)
        mask = response_mask.float()
        with torch.no_grad():
            old_logp, _ = response_logprobs(policy, prompt_ids, prompt_mask, response, args.temperature)
            ref_logp = None
            if reference is not None:
                ref_logp, _ = response_logprobs(reference, prompt_ids, prompt_mask, response, args.temperature)

        # Update epochs over the batch, token-level ratios against the sampling policy.
        stats = torch.zeros(6, device=device)  # policy loss, entropy, approx_kl, clipfrac, |ρ − ρ*|, KL to reference
        for _ in range(args.update_epochs):
            order = torch.randperm(batch, generator=sample_gen, device=device)
            for start in range(0, batch, minibatch):
                mb = order[start : start + minibatch]
                logp, entropy = response_logprobs(policy, prompt_ids[mb], prompt_mask[mb], response[mb], args.temperature)
                logratio = logp - old_logp[mb]
                ratio = logratio.exp()
                m = mask[mb]
                tokens = m.sum()
                if args.loss == "grpo":
                    per_token = grpo_loss(ratio, advantages[mb], args.clip_low, args.clip_high)
                else:
                    per_token = gbpo_loss(ratio, advantages[mb], targets[mb])
                pg_loss = (per_token * m).sum() / tokens
                entropy_mean = (entropy * m).sum() / tokens
                loss = pg_loss - args.ent_coef * entropy_mean
                kl_ref = torch.zeros((), device=device)
                if reference is not None:
                    log_ref_ratio = ref_logp[mb] - logp  # k3 estimator of KL(π || π_ref), non-negative per token
                    kl_ref = ((log_ref_ratio.exp() - 1 - log_ref_ratio) * m).sum() / tokens
                    loss = loss + args.kl_coef * kl_ref
                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(policy.parameters(), args.max_grad_norm)
                optimizer.step()
                with torch.no_grad():
                    approx_kl = (((ratio - 1) - logratio) * m).sum() / tokens
                    adv = advantages[mb].expand_as(ratio)
                    clipped = ((ratio > 1 + args.clip_high) & (adv > 0)) | ((ratio < 1 - args.clip_low) & (adv < 0))
                    clipfrac = (clipped.float() * m).sum() / tokens
                    gap = ((ratio - targets[mb]).abs() * m).sum() / tokens
                stats += torch.stack([pg_loss, entropy_mean, approx_kl, clipfrac, gap, kl_ref]).detach()
        pg_loss, entropy_mean, approx_kl, clipfrac, gap, kl_ref = (stats / (args.update_epochs * args.num_minibatches)).tolist()
        if not np.isfinite([pg_loss, entropy_mean]).all():
            sys.exit(f"error: non-finite loss at iteration {iteration} (policy {pg_loss}, entropy {entropy_mean}); stopping")

        writer.add_scalar("train/reward_mean", rewards.mean().item(), iteration)
        writer.add_scalar("train/accuracy", correct.mean(), iteration)
        writer.add_scalar("train/informative_groups", (scores.amax(1) > scores.amin(1)).float().mean().item(), iteration)
        writer.add_scalar("train/response_length", mask.sum(1).mean().item(), iteration)
        writer.add_scalar("losses/policy_loss", pg_loss, iteration)
        writer.add_scalar("losses/entropy", entropy_mean, iteration)
        writer.add_scalar("losses/approx_kl", approx_kl, iteration)
        if args.loss == "grpo":
            writer.add_scalar("losses/clipfrac", clipfrac, iteration)
        else:
            writer.add_scalar("gbpo/target_ratio_mean", targets.mean().item(), iteration)
            writer.add_scalar("gbpo/ratio_target_gap", gap, iteration)
        if reference is not None:
            writer.add_scalar("losses/kl_ref", kl_ref, iteration)
        writer.add_scalar("charts/learning_rate", optimizer.param_groups[0]["lr"], iteration)
        sps = num_responses / (time.time() - rl_start)
        writer.add_scalar("charts/SPS", sps, iteration)  # sampled responses per second (generation + updates + evals)
        if iteration % args.eval_every == 0 or iteration == args.total_iterations:
            accuracy = log_eval(iteration)
        progress.update(1)
        progress.set_postfix(reward=f"{rewards.mean().item():.2f}", acc=f"{accuracy:.3f}")
    progress.close()

    if args.save_model:
        checkpoint_path = f"runs/{run_name}/" + (f"{args.exp_name}.cleanrl_model" if args.model_name_or_path is None else "model")
        try:
            if args.model_name_or_path is None:
                torch.save({"script": Args.exp_name, "args": vars(args), "model": policy.state_dict()}, checkpoint_path)
            else:
                policy.model.save_pretrained(checkpoint_path)
                if isinstance(tokenizer, HFTokenizer):
                    tokenizer.tokenizer.save_pretrained(checkpoint_path)
        except (OSError, RuntimeError) as e:  # disk full, folder gone: torch reports write failures as RuntimeError
            sys.exit(f"error: cannot save the model to {checkpoint_path}: {str(e).strip().splitlines()[0]}")
    writer.close()
    print(f"done: {args.total_iterations} iterations in {time.time() - start_time:.0f}s; held-out accuracy mean@{args.eval_k} "
          f"{accuracy:.3f} (start {first_accuracy:.3f}); logs in runs/{run_name}")
    if args.save_model:
        print(f"model saved to {checkpoint_path}")


if __name__ == "__main__":
    try:
        main(tyro.cli(Args))
    except KeyboardInterrupt:  # one line, not a traceback; there is no checkpoint to resume from
        print("interrupted: nothing was saved (gbpo_llm.py saves the model only at the end, with --save-model)", file=sys.stderr)
        sys.exit(130)
