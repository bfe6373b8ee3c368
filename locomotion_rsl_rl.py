"""Legged locomotion with rsl_rl's PPO or BPO (bpo_rsl_rl.py) on MuJoCo Playground's joystick tasks, through envpool, on the CPU.

Ao et al., "Bounded Ratio Reinforcement Learning", arXiv 2604.18578 (2026): the paper's legged-robot results are rough-
terrain velocity tracking trained with rsl_rl in Isaac Lab. Isaac Sim does not run on a CPU; this script trains the same
algorithms (rsl_rl's PPO, or BPO selected as rsl_rl's ``class_name="bpo_rsl_rl:BPO"``) on envpool's C++ port of MuJoCo
Playground's legged tasks (Go1JoystickRoughTerrain-v1, G1JoystickRoughTerrain-v1, their flat variants, ...): the actor
sees the noisy proprioceptive "state", the critic the "privileged_state" (Playground's asymmetric actor-critic).

    python locomotion_rsl_rl.py --algo bpo                         # train on Go1 rough terrain; logs in runs/{run_name}/
    python locomotion_rsl_rl.py --algo ppo --env-id G1JoystickFlatTerrain-v1 --save-model
    python locomotion_rsl_rl.py --eval-checkpoint runs/X/locomotion_rsl_rl.cleanrl_model   # evaluate a saved policy
    python locomotion_rsl_rl.py --resume runs/X/locomotion_rsl_rl.cleanrl_model            # continue a cut-off run

Needs ``pip install "brrl[locomotion]"`` (rsl-rl-lib, envpool).
"""

import math
import os
import random
import signal
import sys
import tempfile
import time
from collections import deque
from copy import deepcopy
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import tyro
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

try:
    from rsl_rl.env import VecEnv
    from rsl_rl.utils import resolve_callable
    from tensordict import TensorDict
except ImportError:  # said in one line when the script runs, not at import (tests import the adapter's logic too)
    VecEnv = object


@dataclass
class Args:
    exp_name: str = os.path.basename(__file__)[: -len(".py")]
    """the name of this experiment (part of the run name)"""
    seed: int = 1
    """seed of the experiment (Python, NumPy, torch and envpool)"""
    torch_threads: int = 1
    """CPU threads for torch"""
    envpool_threads: int = 1
    """envpool's worker threads (0: one per core); 1 lets runs share cores"""
    save_model: bool = False
    """if toggled, save the policy, the median head (BPO) and the optimizer to runs/{run_name}/ every 10% of training"""
    resume: str | None = None
    """continue a cut-off --save-model run from its checkpoint, with the saved run's arguments, in its folder"""
    progress: bool = True
    """show a progress bar on the terminal"""
    eval_checkpoint: str | None = None
    """evaluate this saved model (a .cleanrl_model file) instead of training"""
    eval_episodes: int = 10
    """episodes to run with --eval-checkpoint (played in parallel, one per env)"""

    # Environment
    env_id: str = "Go1JoystickRoughTerrain-v1"
    """an envpool id of a MuJoCo Playground task with a continuous action space (envpool.list_all_envs())"""
    total_timesteps: int = 5_000_000
    """total environment steps of the experiment"""
    num_envs: int = 64
    """the number of parallel environments"""
    num_steps: int = 24
    """steps per environment per rollout (rsl_rl's num_steps_per_env)"""
    asymmetric_critic: bool = True
    """the critic sees the privileged state (Playground's setting); --no-asymmetric-critic gives it the actor's state"""

    # Algorithm (rsl_rl's PPO arguments; defaults: Isaac Lab's rough-terrain Go1 agent, except --init-std, the learning
    # rate that goes with it, and normalised observations: Playground's own setting, its observations are not scaled)
    algo: Literal["ppo", "bpo"] = "bpo"
    """rsl_rl's PPO, or BPO (bpo_rsl_rl:BPO)"""
    learning_rate: float = 1e-4
    """the initial learning rate of Adam (Isaac Lab's 1e-3 goes with std 1.0: at 0.2 its first update moved the policy 4-9 nats)"""
    schedule: Literal["adaptive", "fixed"] = "adaptive"
    """adaptive: rsl_rl's KL-adaptive learning rate (toward --desired-kl); fixed: constant"""
    desired_kl: float = 0.01
    """the KL divergence the adaptive schedule aims at"""
    gamma: float = 0.99
    """the discount factor gamma"""
    gae_lambda: float = 0.95
    """the lambda for the general advantage estimation"""
    num_minibatches: int = 4
    """the number of mini-batches"""
    update_epochs: int = 5
    """the K epochs to update the policy"""
    clip_coef: float = 0.2
    """PPO's clipping ε, and the value-clipping range of both algorithms (rsl_rl's clip_param)"""
    ent_coef: float = 0.01
    """coefficient of the entropy"""
    vf_coef: float = 1.0
    """coefficient of the value loss"""
    max_grad_norm: float = 1.0
    """the maximum norm for the gradient clipping (of each network)"""
    init_std: float = 0.2
    """the initial std of the Gaussian policy, in [1e-6, 1e6] (rsl_rl's range); rsl_rl's 1.0 learns nothing on Go1, whose reward Playground clips at 0 each step"""
    hidden_sizes: tuple[int, ...] = (512, 256, 128)
    """hidden layers of the actor and the critic (ELU)"""

    # BPO (bpo_rsl_rl.BPO's arguments; ignored by PPO)
    epsilon: float = 0.3
    """BPO only: the ratio bound ε: π* keeps π/π0 within [1−ε, 1+ε] (the authors' Go1 value; bpo_continuous.py's default is 0.4)"""
    temperature: float = 0.01
    """BPO only: λ of the smoothed target 1 + ε·tanh(Ã/2λ) and of the median loss, in units of the return; 0 is the sign target"""
    median_temperature: float | None = None
    """BPO only: λ of the median head's log-cosh loss if not --temperature (the authors' rsl_rl code: 1.0)"""
    median_coef: float = 0.5
    """BPO only: coefficient of the median head's loss"""
    use_median: bool = True
    """BPO only: threshold the target at the learned median u(s); --no-use-median uses V(s) (the paper's ablation)"""
    distance: Literal["sqrt", "tv", "log"] = "sqrt"
    """BPO only: the gap to the target ratio: 2|√ρ − √ρ*|, the paper's |ρ − ρ*|, or |log ρ − log ρ*|"""
    norm_median_adv: bool = False
    """BPO only: measure --temperature in units of Ã's std over the minibatch instead of the return's"""
    online_advantage: bool = True
    """BPO only: weight by |Q̂ − V(s)| from the current critic, divided by its std; --no-online-advantage: |normalised GAE advantage|"""

    # filled in at runtime
    batch_size: tyro.conf.Suppress[int] = 0
    num_iterations: tyro.conf.Suppress[int] = 0


EVAL_FLAGS = ("eval_checkpoint", "eval_episodes", "seed", "torch_threads", "envpool_threads", "progress")
"""the flags --eval-checkpoint uses; the others come from the checkpoint"""
HOW_TO_RUN = ("resume", "torch_threads", "envpool_threads", "progress")
"""the flags --resume takes from the command line; the others come from the checkpoint"""


def given_flags(args: Args, keep) -> list[str]:
    """The flags given on the command line or set away from their defaults, except `keep` (and the fields filled in
    at runtime): a mode that ignores them says so in one line."""
    default = Args()
    typed = {a.split("=")[0].removeprefix("--no-").removeprefix("--").replace("-", "_")  # given with its default value
             for a in sys.argv[1:] if a.startswith("--")}
    return [f"--{'no-' if v is False else ''}{k.replace('_', '-')}" for k, v in vars(args).items()
            if k not in (*keep, "batch_size", "num_iterations") and (k in typed or v != getattr(default, k))]


def check_args(args: Args) -> None:
    """Reject bad settings before anything starts: one line naming the problem, non-zero exit (written so NaN fails too)."""
    batch = args.num_envs * args.num_steps
    problems = [
        (not 0 <= args.seed < 2**31, f"--seed must lie in [0, 2**31 - 1] (envpool's seed range), got {args.seed}"),
        (args.torch_threads < 1, f"--torch-threads must be at least 1, got {args.torch_threads}"),
        (args.envpool_threads < 0, f"--envpool-threads must be >= 0, got {args.envpool_threads}"),
        (not args.exp_name or "/" in args.exp_name or "\\" in args.exp_name,
         f"--exp-name must be a plain name, without '/' or '\\', got '{args.exp_name}'"),
        (args.total_timesteps <= 0, f"--total-timesteps must be positive, got {args.total_timesteps}"),
        (args.num_envs < 1 or args.num_steps < 1, "--num-envs and --num-steps must be at least 1"),
        (args.num_minibatches < 1, f"--num-minibatches must be at least 1, got {args.num_minibatches}"),
        (batch // max(args.num_minibatches, 1) < 2,
         f"a minibatch needs at least 2 samples: the batch of {batch} in --num-minibatches {args.num_minibatches} "
         f"gives {batch // max(args.num_minibatches, 1)}"),
        (args.total_timesteps < batch, f"--total-timesteps {args.total_timesteps} is smaller than one batch ({batch} steps)"),
        (not 0 < args.learning_rate < math.inf, f"--learning-rate must be positive and finite, got {args.learning_rate}"),
        (not 0 < args.desired_kl < math.inf, f"--desired-kl must be positive and finite, got {args.desired_kl}"),
        (not 0.0 < args.gamma <= 1.0, f"--gamma must lie in (0, 1], got {args.gamma}"),
        (not 0.0 <= args.gae_lambda <= 1.0, f"--gae-lambda must lie in [0, 1], got {args.gae_lambda}"),
        (args.update_epochs < 1, f"--update-epochs must be at least 1, got {args.update_epochs}"),
        (not 0.0 < args.clip_coef < 1.0, f"--clip-coef must lie in (0, 1), got {args.clip_coef}"),
        (not 0 <= args.ent_coef < math.inf, f"--ent-coef must be >= 0 and finite, got {args.ent_coef}"),
        (not 0 <= args.vf_coef < math.inf, f"--vf-coef must be >= 0 and finite, got {args.vf_coef}"),
        (not 0 < args.max_grad_norm < math.inf, f"--max-grad-norm must be positive and finite, got {args.max_grad_norm}"),
        (not 1e-6 <= args.init_std <= 1e6, f"--init-std must lie in [1e-6, 1e6] (rsl_rl clamps the std to it), got {args.init_std}"),
        (not args.hidden_sizes or min(args.hidden_sizes) < 1, f"--hidden-sizes must be positive, got {args.hidden_sizes}"),
        (not 0.0 < args.epsilon < 1.0, f"--epsilon must lie in (0, 1), got {args.epsilon}"),
        (not 0 <= args.temperature < math.inf, f"--temperature must be >= 0 and finite, got {args.temperature}"),
        (args.median_temperature is not None and not 0 <= args.median_temperature < math.inf,
         f"--median-temperature must be >= 0 and finite, got {args.median_temperature}"),
        (not 0 <= args.median_coef < math.inf, f"--median-coef must be >= 0 and finite, got {args.median_coef}"),
        (args.eval_episodes < 1, f"--eval-episodes must be at least 1, got {args.eval_episodes}"),
        (args.eval_checkpoint is not None and args.resume is not None, "--eval-checkpoint and --resume exclude each other"),
    ]
    for bad, message in problems:
        if bad:
            sys.exit(f"error: {message}")


def import_or_exit():
    """rsl_rl, tensordict and envpool, or one line saying how to install them."""
    if VecEnv is object:
        sys.exit('error: this script needs rsl_rl: pip install "brrl[locomotion]"')
    try:
        import envpool
    except ImportError:
        sys.exit('error: this script needs envpool: pip install "brrl[locomotion]"')
    return envpool


def make_env(env_id, num_envs, seed, num_threads):
    """`env_id` from envpool (gymnasium-style, synchronous) wrapped as rsl_rl's VecEnv, or a one-line exit naming what is
    wrong with the id."""
    envpool = import_or_exit()
    if env_id not in envpool.list_all_envs():
        sys.exit(f"error: envpool has no environment '{env_id}' (MuJoCo Playground's legged tasks: "
                 "Go1JoystickRoughTerrain-v1, Go1JoystickFlatTerrain-v1, G1JoystickRoughTerrain-v1, ...)")
    env = envpool.make_gymnasium(env_id, num_envs=num_envs, batch_size=num_envs, seed=seed, num_threads=num_threads)
    space = env.action_space
    if not (hasattr(space, "shape") and hasattr(space, "low") and len(space.shape) == 1):
        sys.exit(f"error: {env_id} has a {space} action space; this script needs a continuous (Box) one")
    keys = list(getattr(env.observation_space, "spaces", None) or ())
    if keys and "state" not in keys:  # a Dict observation that is not Playground's {"state", "privileged_state"}
        sys.exit(f"error: {env_id}'s observations are a dict of {', '.join(keys)}; this script needs a Box observation "
                 "or MuJoCo Playground's \"state\" (and \"privileged_state\")")
    return EnvpoolVecEnv(env, num_envs, envpool.make_spec(env_id).config.max_episode_steps)


class EnvpoolVecEnv(VecEnv):
    """envpool's batched env as rsl_rl's ``VecEnv``, with rsl_rl's (Isaac Lab's) episode boundaries.

    envpool resets a finished env on the *next* step: that step ignores its action, returns the new episode's first
    observation and reward 0, and no final observation is kept. rsl_rl instead expects the step that ends an episode to
    return dones = 1 with the next episode's first observation already in place. So when envpool reports term | trunc,
    the adapter resets those envs at once (envpool's reset of a subset of env ids) and returns their first observations:
    every stored transition lies inside one episode, and none crosses a reset. A time-limit truncation that is not a
    termination is reported in extras["time_outs"] (rsl_rl's PPO then bootstraps it with γ·V(s_t)).

    Observations: a TensorDict with "policy" (the actor's input: Playground's "state", or the whole Box observation) and,
    for Playground's Dict observations, "critic" (the "privileged_state"). Actions are clipped to the action space.
    Finished episodes (undiscounted return of the env's rewards, length) are appended to ``self.finished``.

    Args:
        env: an envpool env made with ``make_gymnasium`` (batch_size = num_envs), or any object with the same
            ``step(actions, env_id)``, ``reset(env_id)`` (both with info["env_id"]) and ``action_space``.
        num_envs: the number of envs of `env` (its batch size).
        max_episode_length: the env's time limit in steps (rsl_rl's VecEnv attribute; this adapter does not use it).
        device: torch device of the returned tensors.
    """

    def __init__(self, env, num_envs, max_episode_length, device="cpu"):
        self.env, self.num_envs, self.device, self.cfg = env, num_envs, device, {}
        self.num_actions = int(np.prod(env.action_space.shape))
        self.max_episode_length = max_episode_length
        self.episode_length_buf = torch.zeros(self.num_envs, dtype=torch.long)
        self.low, self.high = env.action_space.low, env.action_space.high
        self.all_ids = np.arange(self.num_envs, dtype=np.int32)
        self.returns = np.zeros(self.num_envs)
        self.finished = []
        obs, _ = env.reset(self.all_ids)
        self.obs = self._to_tensordict(obs)

    def _to_tensordict(self, obs):
        if isinstance(obs, dict):
            groups = {"policy": obs["state"]}
            if "privileged_state" in obs:
                groups["critic"] = obs["privileged_state"]
        else:
            groups = {"policy": obs}
        return TensorDict({k: torch.as_tensor(np.asarray(v), dtype=torch.float32, device=self.device) for k, v in groups.items()},
                          batch_size=[self.num_envs])

    def get_observations(self):
        return self.obs

    def step(self, actions):
        action = np.clip(actions.detach().cpu().numpy().astype(np.float64), self.low, self.high)
        obs, reward, terminated, truncated, info = self.env.step(action, self.all_ids)
        order = np.argsort(info["env_id"])  # rows by env id (a sync envpool returns them in order already)
        obs = {k: np.asarray(v)[order] for k, v in obs.items()} if isinstance(obs, dict) else np.asarray(obs)[order]
        reward, terminated, truncated = reward[order], terminated[order], truncated[order]
        done = terminated | truncated
        self.returns += reward
        self.episode_length_buf += 1
        if done.any():
            ids = np.flatnonzero(done).astype(np.int32)
            first, first_info = self.env.reset(ids)  # the next episodes start now, not on the next step
            if isinstance(obs, dict):
                for k in obs:
                    obs[k][first_info["env_id"]] = np.asarray(first[k])
            else:
                obs[first_info["env_id"]] = np.asarray(first)
            lengths = self.episode_length_buf[torch.as_tensor(ids, dtype=torch.long)].tolist()
            self.finished.extend(zip(self.returns[ids].tolist(), lengths))
            self.returns[ids] = 0.0
            self.episode_length_buf[torch.as_tensor(ids, dtype=torch.long)] = 0
        self.obs = self._to_tensordict(obs)
        to_torch = lambda x: torch.as_tensor(np.asarray(x), device=self.device)  # noqa: E731
        return (self.obs, to_torch(reward).float(), to_torch(done).long(),
                {"time_outs": to_torch(truncated & ~terminated).long()})

    def close(self):
        close = getattr(self.env, "close", None)
        if close:
            close()


def train_cfg(args: Args, has_critic_obs: bool) -> dict:
    """rsl_rl's runner configuration (the dict Isaac Lab builds from its agent config) for these arguments."""
    algorithm = {
        "class_name": "bpo_rsl_rl:BPO" if args.algo == "bpo" else "PPO", "num_learning_epochs": args.update_epochs,
        "num_mini_batches": args.num_minibatches, "clip_param": args.clip_coef, "gamma": args.gamma, "lam": args.gae_lambda,
        "value_loss_coef": args.vf_coef, "entropy_coef": args.ent_coef, "learning_rate": args.learning_rate,
        "max_grad_norm": args.max_grad_norm, "use_clipped_value_loss": True, "schedule": args.schedule,
        "desired_kl": args.desired_kl,
    }
    if args.algo == "bpo":
        algorithm |= {"epsilon": args.epsilon, "temperature": args.temperature, "median_temperature": args.median_temperature,
                      "median_loss_coef": args.median_coef, "use_median": args.use_median, "distance": args.distance,
                      "normalize_median_advantage": args.norm_median_adv, "online_advantage": args.online_advantage}
    critic_obs = ["critic"] if args.asymmetric_critic and has_critic_obs else ["policy"]
    model = {"class_name": "MLPModel", "hidden_dims": list(args.hidden_sizes), "activation": "elu", "obs_normalization": True}
    return {
        "num_steps_per_env": args.num_steps, "obs_groups": {"actor": ["policy"], "critic": critic_obs}, "multi_gpu": None,
        "actor": {**model, "distribution_cfg": {"class_name": "GaussianDistribution", "init_std": args.init_std}},
        "critic": model, "algorithm": algorithm,
    }


def build(args: Args, env: EnvpoolVecEnv):
    """The algorithm, built as rsl_rl's OnPolicyRunner builds it: resolve class_name, then its construct_algorithm."""
    cfg = train_cfg(args, "critic" in env.get_observations().keys())
    alg_class = resolve_callable(cfg["algorithm"]["class_name"])
    return alg_class.construct_algorithm(env.get_observations(), env, deepcopy(cfg), "cpu"), cfg


def policy_change(alg, bound, normaliser_before):
    """How far the gradient steps of one update moved the policy, measured alike for PPO and BPO on the rollout they
    learned from (rsl_rl's storage keeps its tensors after ``update()``), with the actor's observation normaliser as it
    was before the update (rsl-rl-lib 5.5 updates it at the end of ``update()``, which moves the policy too: by a KL
    of several nats at the first update): the mean of (ρ − 1) − log ρ, the k3 estimate of KL(π0‖π) that CleanRL logs as
    approx_kl (here after the whole update, not averaged over its minibatches), and the share of samples with
    |ρ − 1| > `bound` (the algorithm's ε). Returns two floats."""
    storage, normaliser = alg.storage, alg.actor.obs_normalizer
    with torch.inference_mode():  # rsl-rl-lib < 5.5 updates the normaliser in the rollout: its buffers are inference tensors
        normaliser_after = deepcopy(normaliser.state_dict())
        normaliser.load_state_dict(normaliser_before)
        alg.actor(storage.observations.flatten(0, 1), stochastic_output=True)
        logprob = alg.actor.get_output_log_prob(storage.actions.flatten(0, 1)).reshape(-1)
        normaliser.load_state_dict(normaliser_after)
    logratio = logprob - storage.actions_log_prob.flatten(0, 1).reshape(-1)
    ratio = logratio.exp()
    return ((ratio - 1) - logratio).mean().item(), ((ratio - 1).abs() > bound).float().mean().item()


def quietly(fn, *a):
    """rsl_rl prints the whole networks when it builds them: keep the terminal for the progress bar."""
    import contextlib
    import io

    with contextlib.redirect_stdout(io.StringIO()):
        return fn(*a)


def save_checkpoint(path, alg, args, iteration, global_step):
    """rsl_rl's checkpoint dict (networks with their normalisers, median head, optimizer), the arguments, and what
    --resume needs besides: the iteration, the step and the random generators."""
    rng = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    try:
        torch.save({"script": Args.exp_name, "args": vars(args), "rsl_rl": alg.save(), "iteration": iteration,
                    "global_step": global_step, "rng": rng}, f"{path}.tmp")
        os.replace(f"{path}.tmp", path)  # a run cut off while saving keeps the previous checkpoint
    except (OSError, RuntimeError) as e:
        sys.exit(f"error: cannot save the checkpoint {path}: {str(e).strip().splitlines()[0]}")


def load_checkpoint(path):
    path = Path(path)
    if path.is_dir():
        sys.exit(f"error: {path} is a folder; give the checkpoint file, e.g. runs/<run_name>/{Args.exp_name}.cleanrl_model")
    if not path.is_file():
        sys.exit(f"error: checkpoint not found: {path}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
        script = checkpoint["script"]
    except Exception as e:
        sys.exit(f"error: {path} is not a checkpoint of this script ({type(e).__name__}: {e})")
    if script != Args.exp_name:  # before looking for rsl_rl's dict, which the other scripts' checkpoints lack
        sys.exit(f"error: {path} was saved by {script}.py; use it with that script, not {Args.exp_name}.py")
    expected = {"args": dict, "rsl_rl": dict, "iteration": int, "global_step": int}
    if bad := [key for key, kind in expected.items() if not isinstance(checkpoint.get(key), kind)]:
        sys.exit(f"error: {path} is not a checkpoint of this script (missing or malformed: {', '.join(bad)})")
    return checkpoint


def first_line(e: Exception) -> str:
    """An exception's message in one line: a KeyError's without the quotes str() adds, and load_state_dict's heading
    ("Error(s) in loading state_dict for X:") with its first detail."""
    lines = [line.strip() for line in str(e.args[0] if isinstance(e, KeyError) and e.args else e).splitlines() if line.strip()]
    if not lines:
        return type(e).__name__
    return f"{lines[0]} {lines[1]}" if lines[0].endswith(":") and len(lines) > 1 else lines[0]


def exit_on_ctrl_c(checkpoint_path, saving):
    """From here on, Ctrl-C ends the run with one line saying where its last checkpoint is (exit code 130, no traceback)."""

    def handler(signum, frame):
        if saving and os.path.exists(checkpoint_path):
            print(f"interrupted: the last checkpoint is {checkpoint_path}; continue the run with "
                  f"python {os.path.basename(__file__)} --resume {checkpoint_path}", file=sys.stderr)
        else:
            print("interrupted before any checkpoint was saved (--save-model saves one every 10% of training)", file=sys.stderr)
        sys.exit(130)

    return signal.signal(signal.SIGINT, handler)


def evaluate(args: Args):
    """Run the saved policy's mean action for args.eval_episodes episodes (one per env); print mean ± std return."""
    import_or_exit()
    torch.set_num_threads(args.torch_threads)
    checkpoint = load_checkpoint(args.eval_checkpoint)
    if ignored := given_flags(args, EVAL_FLAGS):
        print(f"note: --eval-checkpoint uses the saved run's arguments; ignoring {' '.join(ignored)}", file=sys.stderr)
    saved = Args(**{k: v for k, v in checkpoint["args"].items() if k in Args.__dataclass_fields__})
    for k in EVAL_FLAGS:
        setattr(saved, k, getattr(args, k))
    saved.num_envs = args.eval_episodes
    torch.manual_seed(args.seed)
    env = make_env(saved.env_id, saved.num_envs, args.seed, args.envpool_threads)
    alg, _ = quietly(build, saved, env)
    try:
        alg.load(checkpoint["rsl_rl"], {"actor": True}, strict=True)
    except (RuntimeError, KeyError) as e:
        sys.exit(f"error: {args.eval_checkpoint} does not match {saved.env_id} and this network: {first_line(e)}")
    policy = alg.get_policy()
    policy.eval()
    returns, counted = [None] * saved.num_envs, np.zeros(saved.num_envs, bool)
    obs = env.get_observations()
    with torch.inference_mode():
        while not counted.all():
            before = len(env.finished)
            obs, _, dones, _ = env.step(policy(obs))  # the Gaussian's mean (rsl_rl's deterministic output)
            for env_index, (ret, _) in zip(np.flatnonzero(dones.numpy()), env.finished[before:]):
                if not counted[env_index]:  # each env's first episode: every episode starts from a fresh reset
                    returns[env_index], counted[env_index] = ret, True
    env.close()
    returns = np.array(returns)
    print(f"eval {saved.env_id} ({args.eval_checkpoint}): return {returns.mean():.2f} ± {returns.std():.2f} over "
          f"{len(returns)} episodes")
    return returns


def main(args: Args):
    import_or_exit()
    checkpoint = None
    if args.resume is not None:  # the saved run's own arguments; only how it runs here may change
        checkpoint = load_checkpoint(args.resume)
        if ignored := given_flags(args, HOW_TO_RUN):
            print(f"note: --resume continues with the saved run's arguments; ignoring {' '.join(ignored)}", file=sys.stderr)
        here = {k: getattr(args, k) for k in HOW_TO_RUN}
        args = Args(**{**{k: v for k, v in checkpoint["args"].items() if k in Args.__dataclass_fields__}, **here})
    check_args(args)
    args.batch_size = args.num_envs * args.num_steps
    args.num_iterations = args.total_timesteps // args.batch_size
    if checkpoint and checkpoint["iteration"] >= args.num_iterations:  # nothing left to train: say so, touch nothing
        print(f"{args.resume} is a finished run ({checkpoint['global_step']} of {args.total_timesteps} steps); nothing to "
              f"resume. Evaluate it with --eval-checkpoint {args.resume}")
        return
    run_name = f"{args.env_id.replace('/', '_')}__{args.exp_name}__{args.seed}__{int(time.time())}"
    run_dir = Path(args.resume).parent if checkpoint else Path("runs") / run_name
    checkpoint_path = str(run_dir / f"{args.exp_name}.cleanrl_model")
    previous_handler = exit_on_ctrl_c(checkpoint_path, args.save_model)
    start_iteration, global_step = (checkpoint["iteration"] + 1, checkpoint["global_step"]) if checkpoint else (1, 0)

    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.torch_threads)
    # envpool's state cannot be saved: a resumed run starts new episodes, from a seed of its own
    env = make_env(args.env_id, args.num_envs, (args.seed + start_iteration - 1) % 2**31, args.envpool_threads)
    try:
        os.makedirs(run_dir, exist_ok=True)
        tempfile.TemporaryFile(dir=run_dir).close()  # found now, not at the first save
    except OSError as e:
        sys.exit(f"error: cannot write to {run_dir.resolve()}: {e.strerror or e}")
    alg, cfg = quietly(build, args, env)
    if checkpoint:
        try:
            alg.load(checkpoint["rsl_rl"], None, strict=True)  # networks, normalisers, median head, Adam and its lr
            if "rng" in checkpoint:
                random.setstate(checkpoint["rng"]["python"])
                np.random.set_state(checkpoint["rng"]["numpy"])
                torch.set_rng_state(checkpoint["rng"]["torch"])
        except (RuntimeError, KeyError, ValueError, TypeError) as e:
            sys.exit(f"error: {args.resume} cannot be resumed: {first_line(e)}")
        print(f"resuming {run_dir} at step {global_step} (the episodes restart; the learning goes on)")
    # on resume, purge_step hides what the cut-off run logged after its checkpoint
    writer = SummaryWriter(str(run_dir), purge_step=global_step + 1 if checkpoint else None)
    if not checkpoint:
        writer.add_text("hyperparameters", "|param|value|\n|-|-|\n%s" % "\n".join(f"|{k}|{v}|" for k, v in vars(args).items()))

    obs = env.get_observations()
    alg.train_mode()
    start_step, start_time = global_step, time.time()
    recent_returns = deque(maxlen=20)
    progress = tqdm(total=args.num_iterations * args.batch_size, initial=global_step, unit="step",
                    disable=None if args.progress else True, dynamic_ncols=True)
    for iteration in range(start_iteration, args.num_iterations + 1):
        with torch.inference_mode():  # the rollout, as rsl_rl's OnPolicyRunner.learn runs it
            for step in range(args.num_steps):
                actions = alg.act(obs)
                obs, rewards, dones, extras = env.step(actions)
                alg.process_env_step(obs, rewards, dones, extras)
                for episodic_return, length in env.finished:
                    step_done = global_step + (step + 1) * args.num_envs
                    writer.add_scalar("charts/episodic_return", episodic_return, step_done)
                    writer.add_scalar("charts/episodic_length", length, step_done)
                    recent_returns.append(episodic_return)
                env.finished.clear()
            alg.compute_returns(obs)
        with torch.inference_mode():
            normaliser_before = deepcopy(alg.actor.obs_normalizer.state_dict())
        losses = alg.update()
        global_step += args.batch_size
        if not np.isfinite([losses["value"], losses["surrogate"]]).all():
            sys.exit(f"error: non-finite loss at step {global_step} (policy {losses['surrogate']}, value {losses['value']}); stopping")

        sps = int((global_step - start_step) / (time.time() - start_time))
        writer.add_scalar("charts/learning_rate", alg.learning_rate, global_step)
        writer.add_scalar("charts/action_std", alg.get_policy().output_std.mean().item(), global_step)
        writer.add_scalar("charts/SPS", sps, global_step)
        writer.add_scalar("losses/value_loss", losses["value"], global_step)
        writer.add_scalar("losses/policy_loss", losses["surrogate"], global_step)
        writer.add_scalar("losses/entropy", losses["entropy"], global_step)
        approx_kl, clipfrac = policy_change(alg, args.epsilon if args.algo == "bpo" else args.clip_coef, normaliser_before)
        writer.add_scalar("losses/approx_kl", approx_kl, global_step)
        writer.add_scalar("losses/clipfrac", clipfrac, global_step)
        if "median" in losses:
            writer.add_scalar("losses/median_loss", losses["median"], global_step)
            for key in ("target_ratio", "frac_above_median", "ratio_target_gap", "target_saturation", "median_adv_std"):
                writer.add_scalar(f"bpo/{'target_ratio_mean' if key == 'target_ratio' else key}", losses[f"bpo_{key}"], global_step)
        progress.update(args.batch_size)
        progress.set_postfix(SPS=sps, ret=f"{np.mean(recent_returns):.2f}" if recent_returns else "-")
        if args.save_model and (iteration % max(1, args.num_iterations // 10) == 0 or iteration == args.num_iterations):
            writer.flush()
            save_checkpoint(checkpoint_path, alg, args, iteration, global_step)

    progress.close()
    env.close()
    writer.close()
    recent = f"{np.mean(recent_returns):.2f}" if recent_returns else "n/a"
    print(f"done: {global_step} steps at {int((global_step - start_step) / (time.time() - start_time))} steps/s; mean return of the last "
          f"{len(recent_returns)} episodes {recent}; logs in {run_dir}")
    if args.save_model:
        print(f"model saved to {checkpoint_path}")
    signal.signal(signal.SIGINT, previous_handler)


if __name__ == "__main__":
    args = tyro.cli(Args)
    try:
        if args.eval_checkpoint is not None:
            check_args(args)
            evaluate(args)
        else:
            main(args)
    except KeyboardInterrupt:  # Ctrl-C in an evaluation (in training, exit_on_ctrl_c's handler answers)
        print("interrupted", file=sys.stderr)
        sys.exit(130)
