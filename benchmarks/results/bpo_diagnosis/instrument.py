"""Build an instrumented copy of bpo_continuous.py (as of commit 41f66f7, the mujoco_1m defaults) that measures why
BPO's updates are smaller than PPO's (issue 16), and summarise its runs.

    python benchmarks/results/bpo_diagnosis/instrument.py build /tmp/diag        # writes /tmp/diag/diag.py
    cd /tmp/diag && DIAG_MODE=bpo python diag.py --env-id Hopper-v4 --total-timesteps 150000 --no-progress
    cd /tmp/diag && DIAG_MODE=ppo python diag.py --env-id Hopper-v4 --total-timesteps 150000 --no-progress
    python benchmarks/results/bpo_diagnosis/instrument.py summary /tmp/diag/runs/*

DIAG_MODE=ppo trains with PPO's loss (CleanRL's mean-centred, std-divided advantage) in the same script, so both
algorithms are measured by the same code; DIAG_NORM=1 divides Ã by its minibatch std before the target (--norm-median-adv).
Every iteration logs, under diag/:
  near1_first/last, nearb_first/last  share of targets with |ρ*−1| < ε/4 (near 1) and > 3ε/4 (near the bound),
                                       in the first and the last epoch
  absmad_first/last, w_std_first/last mean |Ã| and std of the weight Q̂ − V from the current heads, first and last epoch
  mad_std_rollout, adv_std_rollout     std of Q̂ − u and of the GAE advantage over the batch (return units; λ is 0.01)
  end_absdev, end_outside, end_abs_q90, end_kl   after the update, over the whole batch: mean |ρ−1|, share with
                                       |ρ−1| > ε, 90th percentile of |ρ−1|, approx KL
  grad_cancel                          ‖mean of per-sample policy-loss gradients‖ / mean of their norms (actor
                                       parameters, first minibatch of the last epoch): 1 = all agree, → 0 = cancel
  frac_above_rollout_u, frac_above_end_u   share of samples with Q̂ above u(s) of the rollout-time and the updated head
  logstd, logstd_change, logstd_pg_grad    mean log-std, its change over the update, mean gradient of the policy loss on it
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
COMMIT = "41f66f7"

UPDATE = '''        # ---- instrumented update (benchmarks/results/bpo_diagnosis/instrument.py) ----
        from torch.func import functional_call, grad, vmap
        b_medians = storage["medians"].reshape(-1)
        stats = torch.zeros(9, device=device)
        num_updates, diag, logstd_before = 0, {}, agent.actor_logstd.detach().clone()
        logstd_grad = torch.zeros_like(agent.actor_logstd)
        for epoch in range(args.update_epochs):
            b_inds = torch.randperm(args.batch_size, device=device)
            ep_w, ep_near1, ep_nearb, ep_abs = [], [], [], []
            for start in range(0, args.batch_size, args.minibatch_size):
                mb_inds = b_inds[start : start + args.minibatch_size]
                _, newlogprob, entropy, newvalue, newmedian = agent.get_action_and_value(b_obs[mb_inds], b_actions[mb_inds])
                logratio = newlogprob - b_logprobs[mb_inds]
                ratio = logratio.exp()
                with torch.no_grad():
                    approx_kl = ((ratio - 1) - logratio).mean()
                    clipfrac = ((ratio - 1.0).abs() > args.clip_coef).float().mean()
                if MODE == "ppo":
                    a = b_advantages[mb_inds]
                    a = (a - a.mean()) / (a.std() + 1e-8)
                    pg_per, mad = ppo_loss(ratio, a, args.clip_coef), a
                    target = 1 + args.clip_coef * torch.sign(a)
                else:
                    w = b_returns[mb_inds] - newvalue.detach()
                    mad = b_returns[mb_inds] - newmedian.detach()
                    ep_w.append(w.std()); ep_abs.append(mad.abs().mean())
                    a = w / (w.std() + 1e-8)
                    t = args.temperature * (mad.std() if NORM else 1.0)
                    pg_per = bpo_loss(ratio, a, mad, args.clip_coef, t)
                    target = bpo_target_ratio(mad, args.clip_coef, t)
                    dev = (target - 1).abs() / args.clip_coef
                    ep_near1.append((dev < 0.25).float().mean()); ep_nearb.append((dev > 0.75).float().mean())
                pg_loss = pg_per.mean()
                s = mad.std() if NORM and MODE != "ppo" else 1.0  # --norm-median-adv: the median loss at temperature λ·s
                m_loss = s * median_loss(b_returns[mb_inds] / s, newmedian / s, args.temperature).mean()
                target_stats = [target.mean(), (mad > 0).float().mean(), (ratio - target).abs().mean()]
                if epoch == args.update_epochs - 1 and start == 0:
                    params = {k: v.detach() for k, v in agent.named_parameters() if k.startswith("actor")}

                    def sample_loss(p, o, ac, old, aa, tt):
                        mean = functional_call(agent.actor_mean, {k[len("actor_mean."):]: v for k, v in p.items()
                                                                  if k.startswith("actor_mean.")}, (o.unsqueeze(0),))
                        ls = p["actor_logstd"]
                        r = ((-0.5 * ((ac - mean) / ls.exp()) ** 2 - ls - LOG_SQRT_2PI).sum() - old).exp()
                        if MODE == "ppo":
                            return -torch.min(r * aa, torch.clamp(r, 1 - args.clip_coef, 1 + args.clip_coef) * aa)
                        return aa.abs() * (r - tt).abs()

                    g = vmap(grad(sample_loss), in_dims=(None, 0, 0, 0, 0, 0))(
                        params, b_obs[mb_inds], b_actions[mb_inds], b_logprobs[mb_inds], a.detach(), target.detach())
                    flat = torch.cat([v.reshape(v.shape[0], -1) for v in g.values()], 1)
                    diag["grad_cancel"] = (flat.mean(0).norm() / flat.norm(dim=1).mean()).item()
                if args.clip_vloss:
                    v_clipped = b_values[mb_inds] + torch.clamp(newvalue - b_values[mb_inds], -args.clip_coef, args.clip_coef)
                    v_loss = 0.5 * torch.max((newvalue - b_returns[mb_inds]) ** 2, (v_clipped - b_returns[mb_inds]) ** 2).mean()
                else:
                    v_loss = 0.5 * ((newvalue - b_returns[mb_inds]) ** 2).mean()
                entropy_loss = entropy.mean()
                loss = pg_loss - args.ent_coef * entropy_loss + v_loss * args.vf_coef + m_loss * args.median_coef
                optimizer.zero_grad()
                pg_loss.backward(retain_graph=True)
                logstd_grad += agent.actor_logstd.grad.detach()
                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(agent.parameters(), args.max_grad_norm)
                optimizer.step()
                stats += torch.stack([pg_loss, v_loss, entropy_loss, approx_kl, clipfrac, m_loss, *target_stats]).detach()
                num_updates += 1
            for when, epoch_of in (("first", 0), ("last", args.update_epochs - 1)):
                if MODE != "ppo" and epoch == epoch_of:
                    for name, xs in (("w_std", ep_w), ("near1", ep_near1), ("nearb", ep_nearb), ("absmad", ep_abs)):
                        diag[f"{name}_{when}"] = torch.stack(xs).mean().item()
        with torch.no_grad():
            _, nlp, _, _, nm = agent.get_action_and_value(b_obs, b_actions)
            r = (nlp - b_logprobs).exp()
            diag |= {"end_absdev": (r - 1).abs().mean().item(), "end_outside": ((r - 1).abs() > args.clip_coef).float().mean().item(),
                     "end_kl": ((r - 1) - (nlp - b_logprobs)).mean().item(), "end_abs_q90": (r - 1).abs().quantile(0.9).item(),
                     "frac_above_rollout_u": (b_returns > b_medians).float().mean().item(),
                     "frac_above_end_u": (b_returns > nm).float().mean().item(),
                     "mad_std_rollout": (b_returns - b_medians).std().item(), "adv_std_rollout": b_advantages.std().item(),
                     "logstd_change": (agent.actor_logstd - logstd_before).mean().item(),
                     "logstd_pg_grad": (logstd_grad / num_updates).mean().item(), "logstd": agent.actor_logstd.mean().item()}
        for k, v in diag.items():
            writer.add_scalar(f"diag/{k}", v, global_step)

'''


def replace_once(text: str, old: str, new: str) -> str:
    if text.count(old) != 1:
        sys.exit(f"error: the instrumented anchor was not found once in bpo_continuous.py at {COMMIT}: {old[:60]!r}")
    return text.replace(old, new)


def build(out_dir: str) -> None:
    """Write out_dir/diag.py (and ppo_continuous.py, for PPO's loss) from the pinned commit."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    show = lambda name: subprocess.run(["git", "show", f"{COMMIT}:{name}"], cwd=ROOT, check=True, capture_output=True, text=True).stdout
    src = show("bpo_continuous.py")
    start = src.index("        # Optimizing the policy and value network")
    end = src.index("        pg_loss, v_loss, entropy_loss, approx_kl, clipfrac, m_loss")
    src = src[:start] + UPDATE + src[end:]
    src = replace_once(src, '''            action, logprob, _, value, _ = agent.get_action_and_value(next_obs)
        storage["values"][step] = value''', '''            action, logprob, _, value, median = agent.get_action_and_value(next_obs)
        storage["values"][step] = value
        storage["medians"][step] = median''')
    src = replace_once(src, 'for k in ("logprobs", "rewards", "dones", "values")}',
                       'for k in ("logprobs", "rewards", "dones", "values", "medians")}')
    src = replace_once(src, "import tyro\n", "import tyro\nfrom ppo_continuous import ppo_loss\n"
                       "MODE, NORM = os.environ.get('DIAG_MODE', 'bpo'), os.environ.get('DIAG_NORM', '0') == '1'\n")
    src = replace_once(src, 'exp_name: str = os.path.basename(__file__)[: -len(".py")]',
                       'exp_name: str = "diag_" + os.environ.get("DIAG_MODE", "bpo") + os.environ.get("DIAG_NORM", "0")')
    (out / "diag.py").write_text(src)
    (out / "ppo_continuous.py").write_text(show("ppo_continuous.py"))
    print(f"wrote {out / 'diag.py'}")


def summary(run_dirs: list[str]) -> None:
    """Each diag/ tag (and KL, clipfrac, entropy) averaged over the first, middle and last third of each run."""
    import numpy as np

    sys.path.insert(0, str(ROOT))
    from benchmarks.tb import read_scalars

    for run in run_dirs:
        scalars = read_scalars(run)
        print(f"== {Path(run).name}     (thirds of training: first, middle, last)")
        for tag in sorted(t for t in scalars if t.startswith("diag/") or t in ("losses/approx_kl", "losses/clipfrac", "losses/entropy")):
            v = np.array([x[1] for x in scalars[tag]])
            print(f"  {tag:28s} " + "  ".join(f"{part.mean():9.4f}" for part in np.array_split(v, 3)))
        r = np.array([x[1] for x in scalars["charts/episodic_return"]])
        print(f"  return of the episodes in the last 10% of the run's episodes: {r[-max(1, len(r) // 10):].mean():.0f}")


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "build":
        build(sys.argv[2])
    elif len(sys.argv) >= 3 and sys.argv[1] == "summary":
        summary(sys.argv[2:])
    else:
        sys.exit("usage: instrument.py build OUT_DIR | summary RUN_DIR ...")
