"""gbpo_trl.py: parity of its group statistics and loss with common/, the trainer's loss against a hand computation
(gradient accumulation, several iterations per generation, each aggregation), rejected options, the majority vote
across processes, a toy reward that rises, and the script's bad input. A tiny Qwen2 model with random weights and a
character-level tokenizer are built here; nothing is downloaded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from benchmarks.tb import read_scalars
from common import brrl

trl = pytest.importorskip("trl")
transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")
datasets = pytest.importorskip("datasets")
import gbpo_trl  # noqa: E402  (needs trl)

ROOT = Path(__file__).resolve().parents[1]
CHARS = "abcdefgh"


def char_tokenizer():
    """A character-level fast tokenizer over CHARS, with <pad> 0 and <eos> 1."""
    vocab = {"<pad>": 0, "<eos>": 1, **{c: i + 2 for i, c in enumerate(CHARS)}}
    tok = tokenizers.Tokenizer(tokenizers.models.WordLevel(vocab, unk_token="<pad>"))
    tok.pre_tokenizer = tokenizers.pre_tokenizers.Split(tokenizers.Regex("."), "isolated")
    tok.decoder = tokenizers.decoders.Fuse()
    return transformers.PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<eos>", pad_token="<pad>")


def tiny_qwen2(seed=0):
    """A 1-layer Qwen2 causal LM with random weights over the character vocabulary."""
    config = transformers.Qwen2Config(vocab_size=len(CHARS) + 2, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64,
                                      bos_token_id=1, eos_token_id=1, pad_token_id=0, tie_word_embeddings=True)
    torch.manual_seed(seed)
    return transformers.Qwen2ForCausalLM(config)


def a_share(completions, **kwargs):
    """Toy reward: the share of 'a' characters in the completion (0 when empty)."""
    return [c.count("a") / max(len(c), 1) for c in completions]


def config(tmp_path, **overrides):
    base = dict(output_dir=str(tmp_path / "out"), report_to=[], save_strategy="no", use_cpu=True, disable_tqdm=True,
                logging_steps=1, per_device_train_batch_size=8, num_generations=4, max_completion_length=6,
                learning_rate=1e-3, max_steps=2, seed=0, temperature=1.0)
    return gbpo_trl.GBPOConfig(**base | overrides)


def prompts(n=16):
    return datasets.Dataset.from_list([{"prompt": "abc"[: 1 + i % 3]} for i in range(n)])


# ---------------------------------------------------------------- the math: parity with common/brrl.py


TIES = torch.tensor([[1.0, 0.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0],
                     [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0], [0.5, 0.5, 0.2, 0.9, 0.5, 0.5, 0.5, 0.1]])


@pytest.mark.parametrize("exact_ties", [False, True])
@pytest.mark.parametrize("eps", [(0.2, 0.2), (0.2, 0.28)])
def test_group_statistics_equal_common_brrl(exact_ties, eps):
    scores = torch.cat([TIES, torch.randn(5, 8, generator=torch.Generator().manual_seed(0))])
    torch.testing.assert_close(gbpo_trl.group_advantage(scores), brrl.group_advantage(scores), rtol=0, atol=0)
    expected = brrl.gbpo_target_ratio(scores, *eps, temperature=1e-4, exact_ties=exact_ties)
    torch.testing.assert_close(gbpo_trl.gbpo_target_ratio(scores, *eps, 1e-4, exact_ties), expected, rtol=0, atol=1e-7)
    advantages, targets = gbpo_trl.group_statistics(scores.flatten(), 8, *eps, 1e-4, exact_ties)
    torch.testing.assert_close(advantages, brrl.group_advantage(scores).flatten(), rtol=0, atol=0)
    torch.testing.assert_close(targets, expected.flatten(), rtol=0, atol=1e-7)
    ratio = torch.rand(scores.shape[0], 5) + 0.5
    torch.testing.assert_close(gbpo_trl.gbpo_loss(ratio, advantages[::8, None], targets[::8, None]),
                               brrl.gbpo_loss(ratio, advantages[::8, None], targets[::8, None]))


def test_exact_ties_keep_the_group_mean_target_at_one():
    targets = gbpo_trl.gbpo_target_ratio(TIES, 0.2, 0.28, exact_ties=True)
    torch.testing.assert_close(targets.mean(-1), torch.ones(4))
    assert targets[0, 0] == pytest.approx(1.28) and targets[0, 1] == pytest.approx(0.8 + 0.48 * (0.2 / 0.48 * 8 - 3) / 5)


def test_unscorable_completions_leave_their_group_statistics_and_get_zero_advantage():
    rewards = torch.tensor([1.0, float("nan"), 0.0, 0.0, float("nan"), 1.0, float("nan"), float("nan")])
    advantages, targets = gbpo_trl.group_statistics(rewards, 4, 0.2, 0.2, exact_ties=True)
    kept = torch.tensor([[1.0, 0.0, 0.0]])
    torch.testing.assert_close(advantages[[0, 2, 3]], brrl.group_advantage(kept)[0], rtol=0, atol=0)
    torch.testing.assert_close(targets[[0, 2, 3]], brrl.gbpo_target_ratio(kept, 0.2, 0.2, exact_ties=True)[0])
    assert advantages[1] == 0 and advantages[4:].eq(0).all()  # one scorable completion: no group statistics
    with pytest.raises(ValueError, match="groups of num_generations=3"):
        gbpo_trl.group_statistics(rewards, 3, 0.2, 0.2)


# ---------------------------------------------------------------- rewards


def test_majority_vote_reward_within_one_process():
    reward = gbpo_trl.MajorityVoteReward(num_generations=4)
    completions = ["x = 7", "7", "so 8", "no answer", "\\boxed{3}", "3", "4", "4"]
    assert reward(completions=completions) == [1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0]  # tie 3/4: the first seen wins
    chat = [[{"role": "assistant", "content": c}] for c in completions]
    assert reward(completions=chat) == reward(completions=completions) and reward.__name__ == "majority_vote"
    assert gbpo_trl.label_reward(["7", "x 8"], answer=["7", None]) == [1.0, None]


def test_majority_vote_reward_votes_on_groups_that_span_processes(monkeypatch):
    """Process 1 of 2 holds the last two completions of a group of 4 whose first two are on process 0."""

    class Rank1:
        num_processes, process_index = 2, 1

    rank0_answers = ["5", "6"]
    monkeypatch.setattr(gbpo_trl, "PartialState", Rank1)
    monkeypatch.setattr(gbpo_trl, "gather_object", lambda local: rank0_answers + local)
    reward = gbpo_trl.MajorityVoteReward(num_generations=4)
    assert reward(completions=["6", "7"]) == [1.0, 0.0]  # votes 5, 6, 6, 7: the majority 6 is seen on both processes


# ---------------------------------------------------------------- the trainer


class Recording(gbpo_trl.GBPOTrainer):
    """Records each generation batch (gathered rewards, advantages, targets, token count) and each micro-batch loss next
    to a hand computation from the model's own logits."""

    def _generate_and_score_completions(self, inputs):
        out = super()._generate_and_score_completions(inputs)
        self.generations.append(dict(rewards=self._gbpo_rewards_per_func.clone(), advantages=out["advantages"].clone(),
                                     targets=out["gbpo_target_ratio"].clone(), tokens=out["completion_mask"].sum()))
        return out

    def _compute_loss(self, model, inputs):
        loss = super()._compute_loss(model, inputs)
        with torch.no_grad():
            P = inputs["prompt_ids"].size(1)
            ids = torch.cat([inputs["prompt_ids"], inputs["completion_ids"]], 1)
            logits = model(input_ids=ids, attention_mask=torch.cat([inputs["prompt_mask"], inputs["completion_mask"]], 1)).logits
            logp = torch.log_softmax(logits[:, P - 1 : -1].float() / self.args.temperature, -1)
            logp = logp.gather(-1, inputs["completion_ids"].unsqueeze(-1)).squeeze(-1)
            ratio = torch.exp(logp - inputs.get("old_per_token_logps", logp))  # TRL omits π_old when it equals π
            per_token = inputs["advantages"][:, None].abs() * (ratio - inputs["gbpo_target_ratio"][:, None]).abs()
            m = inputs["completion_mask"].float()
            GA = self.args.gradient_accumulation_steps
            hand = {"grpo": ((per_token * m).sum(1) / m.sum(1).clamp(min=1)).mean() / GA,
                    "bnpo": (per_token * m).sum() / m.sum() / GA,
                    "dr_grpo": (per_token * m).sum() / (m.shape[0] * self.args.max_completion_length) / GA,
                    # the generation batch's tokens, spread over its steps_per_generation micro-batches (= GA here)
                    "dapo": (per_token * m).sum() / self.generations[-1]["tokens"]}[self.args.loss_type]
            self.losses.append((loss.detach().clone(), hand, (ratio - 1).abs().mul(m).max().item()))
        return loss


def recording_trainer(tmp_path, reward=a_share, **overrides):
    trainer = Recording(model=tiny_qwen2(), reward_funcs=reward, args=config(tmp_path, **overrides),
                        train_dataset=prompts(), processing_class=char_tokenizer())
    trainer.generations, trainer.losses = [], []
    return trainer


@pytest.mark.parametrize("loss_type", ["dapo", "grpo", "bnpo", "dr_grpo"])
def test_trainer_loss_equals_hand_computation_with_accumulation_and_iterations(tmp_path, loss_type):
    # 16 completions per generation (2 micro-batches of 8, 4 prompts x 4), each used in 2 iterations: 4 micro-steps.
    trainer = recording_trainer(tmp_path, loss_type=loss_type, gradient_accumulation_steps=2, num_iterations=2,
                                max_steps=4, exact_ties=loss_type == "grpo")
    trainer.train()
    assert len(trainer.generations) == 2 and len(trainer.losses) == 8
    for loss, hand, _ in trainer.losses:
        torch.testing.assert_close(loss, hand.to(loss.dtype), rtol=1e-4, atol=1e-6)
    assert max(moved for *_, moved in trainer.losses[2:4]) > 1e-4  # the second iteration's ratios are not all 1
    assert any(loss > 0 for loss, *_ in trainer.losses)


@pytest.mark.parametrize("exact_ties", [False, True])
def test_trainer_advantages_and_targets_equal_common_brrl_on_the_stashed_rewards(tmp_path, exact_ties):
    trainer = recording_trainer(tmp_path, epsilon=0.2, epsilon_high=0.28, gbpo_temperature=1e-3, exact_ties=exact_ties,
                                gradient_accumulation_steps=2, max_steps=2)
    trainer.train()
    for g in trainer.generations:
        scores = g["rewards"].sum(1).view(-1, 4)
        torch.testing.assert_close(g["advantages"], brrl.group_advantage(scores).flatten(), rtol=0, atol=0)
        expected = brrl.gbpo_target_ratio(scores, 0.2, 0.28, temperature=1e-3, exact_ties=exact_ties).flatten()
        torch.testing.assert_close(g["targets"], expected, rtol=0, atol=1e-7)
    logged = trainer.state.log_history[0]
    assert {"gbpo/target_ratio_mean", "gbpo/ratio_target_gap", "reward", "entropy"} <= logged.keys()


def a_share_unscorable(completions, **kwargs):
    """a_share, but completions 1, 4, 7, ... of the batch cannot be scored (None)."""
    return [None if i % 3 == 1 else r for i, r in enumerate(a_share(completions))]


def test_trainer_leaves_unscorable_completions_out_of_the_group_statistics(tmp_path):
    trainer = recording_trainer(tmp_path, reward=a_share_unscorable, exact_ties=True, gradient_accumulation_steps=2,
                                max_steps=2)
    trainer.train()
    for g in trainer.generations:
        rewards = g["rewards"][:, 0].view(-1, 4)
        assert rewards.isnan().any()
        for group, advantages, targets in zip(rewards, g["advantages"].view(-1, 4), g["targets"].view(-1, 4)):
            kept = ~group.isnan()
            assert advantages[~kept].eq(0).all()
            torch.testing.assert_close(advantages[kept], brrl.group_advantage(group[kept]), rtol=0, atol=0)
            torch.testing.assert_close(targets[kept], brrl.gbpo_target_ratio(group[kept], 0.2, 0.2, exact_ties=True))


def test_trainer_keeps_its_process_slice_of_whole_group_statistics(tmp_path, monkeypatch):
    """Process 1 of 4, 2 completions each, groups of 4: its completions are the second half of group 0, whose
    statistics come from all four gathered rewards (TRL's order: process 0's completions, then process 1's, ...)."""
    trainer = recording_trainer(tmp_path)
    gathered = torch.tensor([[1.0], [0.0], [0.0], [0.5], [2.0], [2.0], [1.0], [0.0]])

    def trl_part(self, inputs):  # TRL's own work, reduced to what GBPO reads: the local batch and the gathered rewards
        self._gbpo_rewards_per_func = gathered
        return {"prompt_ids": torch.zeros(2, 3, dtype=torch.long), "advantages": torch.full((2,), float("nan"))}

    monkeypatch.setattr(trl.GRPOTrainer, "_generate_and_score_completions", trl_part)
    monkeypatch.setattr(type(trainer.accelerator), "process_index", property(lambda self: 1))
    out = gbpo_trl.GBPOTrainer._generate_and_score_completions(trainer, [])  # GBPO's override, without the recording
    scores = gathered.view(2, 4)
    torch.testing.assert_close(out["advantages"], brrl.group_advantage(scores)[0, 2:], rtol=0, atol=0)
    torch.testing.assert_close(out["gbpo_target_ratio"], brrl.gbpo_target_ratio(scores, 0.2, 0.2)[0, 2:])


def test_trainer_rejects_options_the_gbpo_loss_does_not_implement(tmp_path):
    args = config(tmp_path, loss_type="sapo", delta=2.0, scale_rewards="batch")
    with pytest.raises(ValueError) as e:
        gbpo_trl.GBPOTrainer(model=tiny_qwen2(), reward_funcs=a_share, args=args, train_dataset=prompts(),
                             processing_class=char_tokenizer())
    message = str(e.value)
    assert message.startswith("GBPOTrainer does not implement these GRPOConfig options: loss_type='sapo'")
    assert "delta=2.0" in message and "scale_rewards='batch'" in message
    assert gbpo_trl.unsupported_options(config(tmp_path, importance_sampling_level="sequence"))[0].startswith(
        "importance_sampling_level='sequence'")
    assert gbpo_trl.unsupported_options(config(tmp_path)) == []
    with pytest.raises(ValueError, match=r"MajorityVoteReward\(num_generations=8\) votes on groups of another size"):
        gbpo_trl.GBPOTrainer(model=tiny_qwen2(), reward_funcs=[gbpo_trl.MajorityVoteReward(8)], args=config(tmp_path),
                             train_dataset=prompts(), processing_class=char_tokenizer())


def test_toy_reward_rises_within_a_few_dozen_steps_with_gbpo(tmp_path):
    trainer = gbpo_trl.GBPOTrainer(model=tiny_qwen2(), reward_funcs=a_share, train_dataset=prompts(64),
                                   args=config(tmp_path, max_steps=20, learning_rate=1e-2, num_generations=8,
                                               per_device_train_batch_size=16), processing_class=char_tokenizer())
    trainer.train()
    rewards = [log["reward"] for log in trainer.state.log_history if "reward" in log]
    assert len(rewards) == 20  # one log per step; measured: about 0.15 at the start, above 0.9 from step 15
    first, last = sum(rewards[:5]) / 5, sum(rewards[-5:]) / 5
    assert last > first + 0.3 and last > 0.5, (first, last)


# ---------------------------------------------------------------- the script


@pytest.fixture
def saved_model(tmp_path):
    folder = tmp_path / "tiny-qwen2"
    tiny_qwen2().save_pretrained(folder)
    char_tokenizer().save_pretrained(folder)
    data = tmp_path / "prompts.jsonl"
    data.write_text("".join(json.dumps({"prompt": p, "answer": "a"}) + "\n" for p in ("a", "ab", "abc", "b")))
    return folder, data


def test_script_bad_input_is_one_error_line(tmp_path, saved_model, capsys):
    folder, data = saved_model
    (tmp_path / "bad.jsonl").write_text('{"prompt": "a"}\n{"answer": 3}\n')
    (tmp_path / "latin1.jsonl").write_bytes('{"prompt": "caf\u00e9", "answer": "a"}\n'.encode("latin-1"))
    (tmp_path / "list.jsonl").write_text('{"prompt": [1, 2], "answer": "a"}\n' * 4)
    (tmp_path / "chat.jsonl").write_text('{"prompt": [{"role": "user", "content": "ab"}], "answer": "a"}\n' * 4)
    for args, message in [(dict(model_name_or_path=str(tmp_path / "nowhere"), data=str(data)),
                           f"error: --model-name-or-path: no such folder: {tmp_path / 'nowhere'}"),
                          (dict(model_name_or_path=str(folder), data="missing.jsonl"), "error: --data: no such file: missing.jsonl"),
                          (dict(model_name_or_path=str(folder), data=str(data), loss="ppo"), "error: --loss must be gbpo or grpo, got 'ppo'"),
                          (dict(model_name_or_path=str(folder), data=str(tmp_path / "bad.jsonl")),
                           f"error: {tmp_path / 'bad.jsonl'} line 2: expected"),
                          (dict(model_name_or_path=str(folder), data=str(tmp_path / "bad.jsonl"), epsilon=1.5),
                           "error: --epsilon must lie in (0, 1), got 1.5"),
                          (dict(model_name_or_path=str(folder), data=str(data), per_device_train_batch_size=3, num_generations=4),
                           "error: generation_batch_size (3) must be divisible by num_generations (4)"),
                          (dict(model_name_or_path=str(tmp_path), data=str(data), use_cpu=True),
                           f"error: --model-name-or-path {tmp_path}: cannot load a causal LM and its tokenizer"),
                          (dict(model_name_or_path=str(folder), data=str(tmp_path / "latin1.jsonl")),
                           f"error: {tmp_path / 'latin1.jsonl'} is not UTF-8 text"),
                          (dict(model_name_or_path=str(folder), data=str(tmp_path / "list.jsonl")),
                           f"error: {tmp_path / 'list.jsonl'} line 1: expected"),
                          (dict(model_name_or_path=str(folder), data=str(tmp_path / "chat.jsonl"), use_cpu=True),
                           f"error: {tmp_path / 'chat.jsonl'} has chat-message prompts and the tokenizer in {folder} has no "
                           "chat template"),
                          # 16 completions of groups of 2 take 8 prompts; TRL's sampler would yield nothing, train 0 steps
                          (dict(model_name_or_path=str(folder), data=str(data), num_generations=2,
                                per_device_train_batch_size=16, use_cpu=True),
                           f"error: {data} has 4 prompt(s) and one generation batch takes 8")]:
        with pytest.raises(SystemExit) as e:
            gbpo_trl.main(gbpo_trl.Args(**args))
        assert str(e.value).startswith(message)
    # As a script: the same line on stderr, a non-zero exit, no traceback.
    result = subprocess.run([sys.executable, str(ROOT / "gbpo_trl.py"), "--model-name-or-path", str(tmp_path / "nowhere"),
                             "--data", str(data)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1 and result.stderr.strip().splitlines() == [
        f"error: --model-name-or-path: no such folder: {tmp_path / 'nowhere'} (point it at a model you have on disk)"]


def test_script_an_unwritable_runs_folder_is_one_error_line(tmp_path, saved_model, monkeypatch):
    folder, data = saved_model
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").write_text("a file where the runs folder goes")
    with pytest.raises(SystemExit) as e:
        gbpo_trl.main(gbpo_trl.Args(model_name_or_path=str(folder), data=str(data), use_cpu=True))
    assert str(e.value).startswith(f"error: cannot write to {tmp_path / 'runs'}/tiny-qwen2__gbpo_trl__gbpo__1__")


@pytest.mark.parametrize("loss", ["gbpo", "grpo"])
def test_script_smoke_trains_offline_and_logs_to_tensorboard(tmp_path, saved_model, loss, monkeypatch, capsys):
    folder, data = saved_model
    monkeypatch.chdir(tmp_path)
    gbpo_trl.main(gbpo_trl.Args(model_name_or_path=str(folder), data=str(data), loss=loss, reward="majority", max_steps=2,
                                num_generations=4, per_device_train_batch_size=8, max_completion_length=4, use_cpu=True))
    (run,) = (tmp_path / "runs").iterdir()
    assert run.name.startswith(f"tiny-qwen2__gbpo_trl__{loss}__1__") and list(run.glob("events.out.tfevents.*"))
    assert f"logs in runs/{run.name}" in capsys.readouterr().out
    tags = read_scalars(run).keys()
    assert {"train/reward", "train/loss", "train/entropy", "train/rewards/majority_vote/mean"} <= tags
    assert ("train/gbpo/target_ratio_mean" in tags) == (loss == "gbpo")


def test_exact_ties_is_the_default_target(tmp_path):
    # study gbpo_llm_ties: the exact tie-normalised target scored higher than the sigmoid on each of 5 seeds
    assert config(tmp_path).exact_ties is True and gbpo_trl.Args().exact_ties is True
    trainer = recording_trainer(tmp_path)
    assert trainer.exact_ties is True


def test_script_names_the_gbpo_flags_a_run_does_not_use():
    # the sigmoid's temperature is unused by the exact target (the default), and GRPO uses neither
    assert gbpo_trl.ignored_flags(gbpo_trl.Args(gbpo_temperature=0.5)) == ["--gbpo-temperature"]
    assert gbpo_trl.ignored_flags(gbpo_trl.Args(gbpo_temperature=0.5, exact_ties=False)) == []
    assert gbpo_trl.ignored_flags(gbpo_trl.Args(loss="grpo", exact_ties=False)) == ["--no-exact-ties"]
    assert gbpo_trl.ignored_flags(gbpo_trl.Args(loss="grpo")) == []
