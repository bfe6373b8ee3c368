"""gbpo_llm.py: group statistics, GRPO/GBPO losses, majority vote, parity with common/, KV-cache generation, runs, bad input."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import gbpo_llm
from benchmarks.tb import read_scalars
from common import brrl

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(warmup_steps=20, warmup_batch_size=16, d_model=16, n_heads=2, n_layers=1, total_iterations=2,
            prompts_per_batch=4, group_size=4, num_minibatches=2, update_epochs=2, num_test_prompts=16, eval_k=2,
            eval_every=1, progress=False)
COMMON_TAGS = {"eval/accuracy", "eval/majority_accuracy", "train/reward_mean", "train/accuracy", "train/informative_groups",
               "train/response_length", "losses/policy_loss", "losses/entropy", "losses/approx_kl",
               "charts/learning_rate", "charts/SPS"}
BINARY_3_OF_8 = torch.tensor([[1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0]])


def run_dir(cwd: Path) -> Path:
    (found,) = (cwd / "runs").iterdir()
    return found


# ---------------------------------------------------------------- group statistics on hand-computed groups


def test_group_advantage_on_hand_computed_groups():
    scores = torch.tensor([[1.0, 0.0, 0.0, 0.0], [1.0, 2.0, 3.0, 2.0], [5.0, 5.0, 5.0, 5.0]])
    # row 0: mean 1/4, unbiased std sqrt((9/16 + 3/16)/3) = 1/2; row 1: mean 2, std sqrt(2/3); row 2: no signal
    expected = torch.tensor([[0.75, -0.25, -0.25, -0.25], [-1.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    expected /= torch.tensor([[0.5 + 1e-6], [(2 / 3) ** 0.5 + 1e-6], [1.0]])
    advantage = gbpo_llm.group_advantage(scores)
    torch.testing.assert_close(advantage, expected)
    assert (advantage[2] == 0).all()  # exactly zero, not a rounding residue


def test_gbpo_target_on_binary_scores_default_and_exact_ties():
    # 3 correct of 8: the median is 0. Default target: correct 1 + ε, wrong ones sit at the median: σ(0) = 1/2 → 1.
    default = gbpo_llm.gbpo_target_ratio(BINARY_3_OF_8, 0.2, 0.2)
    torch.testing.assert_close(default, torch.where(BINARY_3_OF_8 > 0, 1.2, 1.0))
    # Exact ties: the top half (4 of 8) gets 1 + ε: the 3 correct ones, and the 5 tied wrong ones share the
    # remaining 1 slot: ratio 1 − ε + 2ε·(1/5) = 0.88. The group's mean ratio is exactly 1.
    exact = gbpo_llm.gbpo_target_ratio(BINARY_3_OF_8, 0.2, 0.2, exact_ties=True)
    torch.testing.assert_close(exact, torch.where(BINARY_3_OF_8 > 0, 1.2, 0.88))
    assert exact.mean().item() == pytest.approx(1.0, abs=1e-6)
    assert default.mean().item() == pytest.approx(1.075)  # the default target's mean is not 1

    # 5 correct of 8: the median is 1, the correct ones tie at it: default 1, exact 1 − ε + 2ε·(4/5) = 1.12.
    five = 1.0 - BINARY_3_OF_8
    torch.testing.assert_close(gbpo_llm.gbpo_target_ratio(five, 0.2, 0.2), torch.where(five > 0, 1.0, 0.8))
    torch.testing.assert_close(gbpo_llm.gbpo_target_ratio(five, 0.2, 0.2, exact_ties=True), torch.where(five > 0, 1.12, 0.8))

    # Asymmetric band (ε_low 0.2, ε_high 0.28): α = 0.2/0.48 of the group gets 1.28, i.e. 10/3 responses: the 3 correct
    # ones and 1/15 of each wrong one's share: 0.8 + 0.48/15 = 0.832. The default's tie value is 0.8 + 0.48/2 = 1.04.
    exact = gbpo_llm.gbpo_target_ratio(BINARY_3_OF_8, 0.2, 0.28, exact_ties=True)
    torch.testing.assert_close(exact, torch.where(BINARY_3_OF_8 > 0, 1.28, 0.832))
    assert exact.mean().item() == pytest.approx(1.0, abs=1e-6)
    torch.testing.assert_close(gbpo_llm.gbpo_target_ratio(BINARY_3_OF_8, 0.2, 0.28), torch.where(BINARY_3_OF_8 > 0, 1.28, 1.04))


def test_gbpo_target_without_ties_is_the_median_split_and_all_equal_scores_give_ratio_one():
    scores = torch.tensor([[0.1, 0.5, 0.9, 0.3]])  # median 0.4
    for exact_ties in (False, True):
        torch.testing.assert_close(gbpo_llm.gbpo_target_ratio(scores, 0.3, 0.3, exact_ties=exact_ties),
                                   torch.tensor([[0.7, 1.3, 1.3, 0.7]]))
        torch.testing.assert_close(gbpo_llm.gbpo_target_ratio(torch.full((2, 5), 3.0), 0.2, 0.2, exact_ties=exact_ties),
                                   torch.ones(2, 5))
    # Odd group: the middle response is the median, and gets σ(0) = 1/2 (default) or the whole tie share (exact).
    odd = torch.tensor([[2.0, 1.0, 3.0]])
    torch.testing.assert_close(gbpo_llm.gbpo_target_ratio(odd, 0.2, 0.2), torch.tensor([[1.0, 0.8, 1.2]]))
    torch.testing.assert_close(gbpo_llm.gbpo_target_ratio(odd, 0.2, 0.2, exact_ties=True), torch.tensor([[1.0, 0.8, 1.2]]))


def test_exact_ties_target_keeps_every_group_mean_at_one():
    gen = torch.Generator().manual_seed(0)
    scores = torch.randint(0, 3, (500, 6), generator=gen).double()  # many ties
    for clip_low, clip_high in [(0.2, 0.2), (0.2, 0.28), (0.3, 0.1)]:
        target = gbpo_llm.gbpo_target_ratio(scores, clip_low, clip_high, exact_ties=True)
        torch.testing.assert_close(target.mean(-1), torch.ones(500, dtype=torch.float64))
        assert (target >= 1 - clip_low - 1e-12).all() and (target <= 1 + clip_high + 1e-12).all()


# ---------------------------------------------------------------- both losses on hand-computed values


def test_losses_and_their_gradients_on_hand_computed_values():
    ratio = torch.tensor([1.3, 0.7, 0.7, 1.3, 1.0], requires_grad=True)
    advantage = torch.tensor([1.5, 1.5, -0.5, -0.5, 1.5])
    grpo = gbpo_llm.grpo_loss(ratio, advantage, 0.2, 0.2)
    # −min(ρA, clip(ρ)·A): clipped at 1.2 (no gradient); 0.7·1.5; clipped at 0.8 (no gradient); 1.3·0.5; 1.0·1.5
    torch.testing.assert_close(grpo, torch.tensor([-1.8, -1.05, 0.4, 0.65, -1.5]))
    (grad,) = torch.autograd.grad(grpo.sum(), ratio)
    torch.testing.assert_close(grad, torch.tensor([0.0, -1.5, 0.0, 0.5, -1.5]))

    target = torch.tensor([1.2, 1.2, 0.8, 0.8, 1.2])
    gbpo = gbpo_llm.gbpo_loss(ratio, advantage, target)
    torch.testing.assert_close(gbpo, torch.tensor([0.15, 0.75, 0.05, 0.25, 0.3]))
    (grad,) = torch.autograd.grad(gbpo.sum(), ratio)
    # V-shaped, no clipping anywhere: a ratio past its target is pulled back (entries 0 and 2: above 1.2, below 0.8)
    torch.testing.assert_close(grad, torch.tensor([1.5, -1.5, -0.5, 0.5, -1.5]))


@pytest.mark.parametrize("exact_ties", [False, True])
def test_all_equal_scores_give_zero_loss_and_zero_gradient(exact_ties):
    logp = torch.randn(8, 5, requires_grad=True)  # 8 responses of 5 tokens, one group
    old = logp.detach() + 0.1 * torch.randn(8, 5)
    scores = torch.full((1, 8), 0.7)
    advantage = gbpo_llm.group_advantage(scores).view(8, 1)
    target = gbpo_llm.gbpo_target_ratio(scores, 0.2, 0.2, exact_ties=exact_ties).view(8, 1)
    for loss_of in (lambda ratio: gbpo_llm.gbpo_loss(ratio, advantage, target),
                    lambda ratio: gbpo_llm.grpo_loss(ratio, advantage, 0.2, 0.2)):
        loss = loss_of((logp - old).exp())
        assert (loss == 0).all()
        (grad,) = torch.autograd.grad(loss.mean(), logp)
        assert (grad == 0).all()


# ---------------------------------------------------------------- parity with common/brrl.py


def test_inline_group_statistics_and_losses_equal_common_brrl():
    gen = torch.Generator().manual_seed(0)
    continuous = torch.randn(300, 8, generator=gen, dtype=torch.float64)
    tied = torch.randint(0, 3, (300, 7), generator=gen).double()  # odd groups with ties
    binary = torch.randint(0, 2, (300, 8), generator=gen).double()
    for scores in (continuous, tied, binary):
        torch.testing.assert_close(gbpo_llm.group_advantage(scores), brrl.group_advantage(scores), rtol=0, atol=0)
        for clip_low, clip_high in [(0.2, 0.2), (0.2, 0.28)]:
            for exact_ties in (False, True):
                for temperature in (1e-4, 0.5):
                    torch.testing.assert_close(
                        gbpo_llm.gbpo_target_ratio(scores, clip_low, clip_high, temperature, exact_ties),
                        brrl.gbpo_target_ratio(scores, clip_low, clip_high, temperature, exact_ties), rtol=1e-12, atol=1e-12)
    ratio = torch.rand(300, 8, 5, generator=gen, dtype=torch.float64) * 2
    advantage = brrl.group_advantage(continuous).unsqueeze(-1)
    target = brrl.gbpo_target_ratio(continuous, 0.2, 0.2).unsqueeze(-1)
    torch.testing.assert_close(gbpo_llm.gbpo_loss(ratio, advantage, target), brrl.gbpo_loss(ratio, advantage, target),
                               rtol=0, atol=0)
    torch.testing.assert_close(gbpo_llm.grpo_loss(ratio, advantage, 0.2, 0.2), brrl.ppo_loss(ratio, advantage, 0.2),
                               rtol=0, atol=0)


# ---------------------------------------------------------------- answers and rewards


def test_extract_answer():
    texts = ["52", " 7+1", "-3", "0012", "", "+=", "x5"]
    assert [gbpo_llm.extract_answer(t) for t in texts] == [52, 7, -3, 12, None, None, None]


def test_majority_vote_on_hand_made_answer_lists():
    answers = [3, 3, 5, None,  # plain majority
               5, 3, 3, 5,  # tie 2–2: the answer that appears first wins
               None, None, None, None,  # nobody answered: no majority
               None, 7, 8, 8]  # a missing answer does not vote
    assert gbpo_llm.majority_answers(answers, 4) == [3, 5, None, 8]
    rewards = gbpo_llm.compute_rewards(answers, [3] * 16, 4, "majority")
    assert rewards == [1, 1, 0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 1]
    assert gbpo_llm.compute_rewards(answers, [3] * 16, 4, "label") == [float(a == 3) for a in answers]
    assert gbpo_llm.majority_answers([1, 2, 3], 3) == [1]  # all different: the first


def test_task_split_and_prompts():
    task = gbpo_llm.AdditionTask(2, 100, seed=0)
    assert len(set(task.test_pairs.tolist())) == 100
    train = task.sample_train(np.random.default_rng(0), 5000)
    assert not np.isin(train, task.test_pairs).any()
    pair = np.array([7 * 100 + 45])
    assert task.prompts(pair) == ["07+45="] and task.answers(pair) == [52]
    np.testing.assert_array_equal(gbpo_llm.AdditionTask(2, 100, seed=0).test_pairs, task.test_pairs)  # same split again


def test_tokenizer_padding_and_decoding():
    tok = gbpo_llm.CharTokenizer()
    ids, mask = gbpo_llm.encode_prompts(tok, ["1+2=", "12+34="], "cpu")
    assert mask.tolist() == [[0, 0, 1, 1, 1, 1], [1] * 6] and ids[0, :2].tolist() == [tok.pad_id] * 2
    assert tok.decode(ids[1].tolist()) == "12+34="
    response = torch.tensor([tok.encode("52") + [tok.eos_id, tok.pad_id], tok.encode("1234")])
    mask = gbpo_llm.response_mask_of(response, tok.eos_id)
    assert mask.tolist() == [[1, 1, 1, 0], [1, 1, 1, 1]]
    assert gbpo_llm.decode_responses(tok, response, mask) == ["52", "1234"]


# ---------------------------------------------------------------- the transformer and its KV cache


def make_prompts(tok):
    return gbpo_llm.encode_prompts(tok, ["3+4=", "12+34=", "999+1=", "5="] * 3, "cpu")  # left padding of 0–3 tokens


def assert_cached_generation_equals_recomputation(policy, tok):
    prompt_ids, prompt_mask = make_prompts(tok)
    runs = [gbpo_llm.generate(policy, prompt_ids, prompt_mask, 6, 1.0, tok.eos_id, tok.pad_id,
                              torch.Generator().manual_seed(3), use_cache=use_cache, return_logits=True)
            for use_cache in (True, False)]
    (tokens, mask, logits), (tokens_nc, mask_nc, logits_nc) = runs
    assert torch.equal(tokens, tokens_nc) and torch.equal(mask, mask_nc)
    torch.testing.assert_close(logits, logits_nc, rtol=1e-5, atol=1e-5)
    # The teacher-forced log-probabilities used by the update are those of the sampling distribution.
    logp, _ = gbpo_llm.response_logprobs(policy, prompt_ids, prompt_mask, tokens, 1.0)
    sampled = torch.log_softmax(logits, -1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(logp * mask, sampled * mask, rtol=1e-5, atol=1e-5)


def test_kv_cache_generation_equals_generation_without_cache():
    torch.manual_seed(0)
    tok = gbpo_llm.CharTokenizer()
    policy = gbpo_llm.CausalTransformer(tok.vocab_size, 16, 32, 2, 4).eval()
    for p in policy.parameters():
        p.data.normal_(0, 0.3)  # sharper than the init, so that sampling differences would show
    assert_cached_generation_equals_recomputation(policy, tok)


def test_left_padding_does_not_change_the_logits():
    torch.manual_seed(0)
    tok = gbpo_llm.CharTokenizer()
    policy = gbpo_llm.CausalTransformer(tok.vocab_size, 16, 32, 2, 4).eval()
    alone = torch.tensor([tok.encode("3+4=")])
    padded, mask = gbpo_llm.encode_prompts(tok, ["3+4=", "123+456="], "cpu")
    logits_alone, _ = policy(alone, torch.ones_like(alone))
    logits_padded, _ = policy(padded, mask)
    torch.testing.assert_close(logits_padded[0, -4:], logits_alone[0])


# ---------------------------------------------------------------- training runs (tiny budgets)


@pytest.mark.parametrize("loss, rl_prompts", [("gbpo", "train"), ("grpo", "test")])
def test_smoke_training_logs_the_tags(loss, rl_prompts, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    gbpo_llm.main(gbpo_llm.Args(loss=loss, rl_prompts=rl_prompts, cache_dir=str(tmp_path / "cache"), **TINY))
    scalars = read_scalars(run_dir(tmp_path))
    expected = COMMON_TAGS | ({"losses/clipfrac"} if loss == "grpo" else {"gbpo/target_ratio_mean", "gbpo/ratio_target_gap"})
    assert expected <= set(scalars)
    assert [step for step, _ in scalars["eval/accuracy"]] == [0, 1, 2]
    assert [step for step, _ in scalars["losses/policy_loss"]] == [1, 2]
    assert all(np.isfinite(v) for _, v in scalars["losses/policy_loss"])
    assert "held-out accuracy mean@2" in capsys.readouterr().out


def test_warmup_is_cached_and_same_seed_gives_identical_runs(tmp_path, monkeypatch, capsys):
    args = dict(TINY, loss="gbpo", exact_ties=True, reward="label", kl_coef=0.1, ent_coef=0.01, save_model=True,
                cache_dir=str(tmp_path / "cache"))
    results = []
    for attempt in ("a", "b"):
        (tmp_path / attempt).mkdir()
        monkeypatch.chdir(tmp_path / attempt)
        gbpo_llm.main(gbpo_llm.Args(**args))
        scalars = read_scalars(run_dir(tmp_path / attempt))
        results.append({tag: [v for _, v in values] for tag, values in scalars.items() if tag != "charts/SPS"})
    out = capsys.readouterr().out
    assert "warm-up policy trained and cached in" in out and "warm-up policy loaded from" in out
    assert len(list((tmp_path / "cache").glob("warmup_*.pt"))) == 1
    assert results[0] == results[1]
    assert results[0]["gbpo/target_ratio_mean"] == pytest.approx([1.0, 1.0], abs=1e-6)  # exact ties: mean ratio 1
    assert "losses/kl_ref" in results[0]
    (checkpoint_path,) = (tmp_path / "a" / "runs").glob("*/gbpo_llm.cleanrl_model")
    checkpoint = torch.load(checkpoint_path, weights_only=False)
    assert checkpoint["args"]["loss"] == "gbpo" and "head.weight" in checkpoint["model"]
    # Other warm-up arguments make another cache entry.
    monkeypatch.chdir(tmp_path)
    gbpo_llm.main(gbpo_llm.Args(**dict(args, warmup_steps=21, total_iterations=0, save_model=False)))
    assert len(list((tmp_path / "cache").glob("warmup_*.pt"))) == 2


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(loss="ppo"), "--loss must be one of gbpo, grpo, got 'ppo'"),
        (dict(reward="votes"), "--reward must be one of label, majority, got 'votes'"),
        (dict(clip_low=1.0), "--clip-low must lie in (0, 1), got 1.0"),
        (dict(clip_low=0.0), "--clip-low must lie in (0, 1), got 0.0"),
        (dict(clip_high=-0.1), "--clip-high must be positive and finite, got -0.1"),
        (dict(group_size=1), "--group-size must be at least 2"),
        (dict(num_minibatches=3), "does not divide into --num-minibatches 3"),
        (dict(rl_prompts="test", reward="label"), "only fair without labels: use --reward majority"),
        (dict(gbpo_temperature=0.0), "--gbpo-temperature must be positive"),
        (dict(kl_coef=-1.0), "--kl-coef must be >= 0"),
        (dict(num_test_prompts=60, num_digits=1), "--num-test-prompts must lie in [1, 50]"),
        (dict(model_name_or_path="/no/such/model"), "--model-name-or-path: no such folder: /no/such/model"),
        (dict(model_name_or_path="./missing"), "--model-name-or-path: no such folder: ./missing"),
    ],
)
def test_check_args_rejects_bad_input(overrides, message):
    with pytest.raises(SystemExit) as exc:
        gbpo_llm.check_args(dataclasses.replace(gbpo_llm.Args(), **overrides))
    assert str(exc.value).startswith("error: ") and message in str(exc.value)


def test_model_path_without_transformers_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)  # import fails as if not installed
    with pytest.raises(SystemExit, match=r"^error: --model-name-or-path needs transformers: pip install transformers$"):
        gbpo_llm.load_hf_policy(str(tmp_path), "cpu")


def test_cli_bad_input_is_one_line_and_exit_1(tmp_path):
    bad = subprocess.run([sys.executable, str(ROOT / "gbpo_llm.py"), "--loss", "ppo"], cwd=tmp_path,
                         capture_output=True, text=True)
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert bad.stderr.strip().splitlines() == ["error: --loss must be one of gbpo, grpo, got 'ppo'"]


# ---------------------------------------------------------------- Hugging Face backend (a tiny model built here)


@pytest.fixture
def tiny_hf_model(tmp_path):
    """A 2-layer GPT-2 with the character vocabulary, saved with a character-level tokenizer (nothing downloaded)."""
    transformers = pytest.importorskip("transformers")
    tokenizers = pytest.importorskip("tokenizers")
    chars = gbpo_llm.CharTokenizer()
    config = transformers.GPT2Config(n_layer=2, n_embd=32, n_head=2, n_positions=32, vocab_size=chars.vocab_size,
                                     bos_token_id=chars.eos_id, eos_token_id=chars.eos_id, pad_token_id=chars.pad_id)
    torch.manual_seed(0)
    model_dir = tmp_path / "tiny-gpt2"
    transformers.GPT2LMHeadModel(config).save_pretrained(model_dir)
    vocab = {"<pad>": chars.pad_id, "<eos>": chars.eos_id, **{c: i + 2 for i, c in enumerate(chars.chars)}}
    tokenizer = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="<pad>"))
    tokenizer.pre_tokenizer = tokenizers.pre_tokenizers.Split(tokenizers.Regex("."), "isolated")
    tokenizer.decoder = tokenizers.decoders.Fuse()
    with_tokenizer = tmp_path / "tiny-gpt2-tok"
    transformers.GPT2LMHeadModel(config).save_pretrained(with_tokenizer)
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="<eos>", pad_token="<pad>")
    fast.save_pretrained(with_tokenizer)
    return model_dir, with_tokenizer


def test_hf_model_kv_cache_generation_equals_generation_without_cache(tiny_hf_model, capsys):
    model_dir, with_tokenizer = tiny_hf_model
    policy, tok = gbpo_llm.load_hf_policy(str(model_dir), "cpu")
    assert isinstance(tok, gbpo_llm.CharTokenizer) and "has no tokenizer" in capsys.readouterr().err
    assert_cached_generation_equals_recomputation(policy.eval(), tok)
    policy, tok = gbpo_llm.load_hf_policy(str(with_tokenizer), "cpu")
    assert isinstance(tok, gbpo_llm.HFTokenizer) and tok.encode("12+3=") == gbpo_llm.CharTokenizer().encode("12+3=")
    assert_cached_generation_equals_recomputation(policy.eval(), tok)


def test_smoke_hf_model_trains_through_model_name_or_path(tiny_hf_model, tmp_path, monkeypatch):
    transformers = pytest.importorskip("transformers")
    _, with_tokenizer = tiny_hf_model
    monkeypatch.chdir(tmp_path)
    gbpo_llm.main(gbpo_llm.Args(model_name_or_path=str(with_tokenizer), loss="grpo", save_model=True,
                                cache_dir=str(tmp_path / "cache"), **TINY))
    run = run_dir(tmp_path)
    assert COMMON_TAGS | {"losses/clipfrac"} <= set(read_scalars(run))
    assert not (tmp_path / "cache").exists()  # no warm-up for a Hugging Face model
    reloaded = transformers.AutoModelForCausalLM.from_pretrained(run / "model")
    assert reloaded.config.n_layer == 2 and (run / "model" / "tokenizer.json").is_file()


def test_unloadable_hf_model_is_one_error_line(tmp_path):
    pytest.importorskip("transformers")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(SystemExit, match=r"^error: cannot load a causal LM from '.*': "):
        gbpo_llm.load_hf_policy(str(tmp_path), "cpu")
