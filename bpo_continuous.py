"""BPO (Bounded Policy Optimization) for continuous-action (MuJoCo) environments, in one file, CleanRL-style.

Ao et al., "Bounded Ratio Reinforcement Learning", arXiv 2604.18578 (2026). The same script as
ppo_continuous.py except for the algorithm: a median head u(s) on the critic, its loss, and the BPO
policy loss that pulls the ratio toward the exact bounded-ratio policy π* (Theorem 4.1): 2|A|·|√ρ − √ρ*|
by default, the paper's |A|·|ρ − ρ*| with --distance tv (why: docs/bpo-recipe.md).

    python bpo_continuous.py --env-id Hopper-v4                 # train; logs in runs/{run_name}/
    python bpo_continuous.py --eval-checkpoint runs/X/bpo_continuous.cleanrl_model   # evaluate a saved run
    python bpo_continuous.py --resume runs/X/bpo_continuous.cleanrl_model          # continue a cut-off --save-model run
"""

import ctypes.util
import math
import os
import random
import signal
import sys
import tempfile
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim
import tyro
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm


@dataclass
class Args:
    exp_name: str = os.path.basename(__file__)[: -len(".py")]
    """the name of this experiment (part of the run name)"""
    seed: int = 1
    """seed of the experiment (Python, NumPy, torch and the environments)"""
    torch_deterministic: bool = True
    """if toggled, `torch.backends.cudnn.deterministic=True` (CPU runs are deterministic for a given seed anyway)"""
    cuda: bool = False
    """if toggled, use the GPU when one is present (the small MLPs here usually run faster on the CPU)"""
    torch_threads: int = 1
    """CPU threads for torch; 1 is fastest for these small networks and lets runs share cores"""
    track: bool = False
    """if toggled, track the run with Weights and Biases (needs `pip install wandb`)"""
    wandb_project_name: str = "brrl"
    """the Weights and Biases project name"""
    wandb_entity: str | None = None
    """the entity (team) of the Weights and Biases project"""
    save_model: bool = False
    """if toggled, save the weights, the normalisation statistics and the training state to runs/{run_name}/ every 10% of training"""
    capture_video: bool = False
    """if toggled, record env 0's episodes to videos/{run_name}/ with gymnasium's RecordVideo and its default trigger (capped_cubic_video_schedule: episodes 0, 1, 8, 27, ..., 1000, 2000, ...); with --eval-checkpoint, every evaluation episode to videos/{run_name}-eval/ (needs `pip install "brrl[video]"`)"""
    progress: bool = True
    """show a progress bar on the terminal"""
    eval_checkpoint: str | None = None
    """evaluate this saved model (a .cleanrl_model file) instead of training"""
    eval_episodes: int = 10
    """episodes to run with --eval-checkpoint"""
    eval_deterministic: bool = True
    """evaluate with the mean action (--no-eval-deterministic samples from the policy)"""
    resume: str | None = None
    """continue the run saved in this checkpoint (--save-model), with its own arguments, logging into its own runs/ folder"""

    # Algorithm specific arguments
    env_id: str = "Hopper-v4"
    """the id of the environment (a gymnasium id with a continuous, Box action space)"""
    total_timesteps: int = 1000000
    """total environment steps of the experiment"""
    learning_rate: float = 3e-4
    """the learning rate of the optimizer"""
    num_envs: int = 1
    """the number of parallel game environments"""
    num_steps: int = 2048
    """the number of steps to run in each environment per policy rollout"""
    anneal_lr: bool = True
    """toggle learning rate annealing for policy and value networks"""
    gamma: float = 0.99
    """the discount factor gamma"""
    gae_lambda: float = 0.95
    """the lambda for the general advantage estimation"""
    num_minibatches: int = 32
    """the number of mini-batches"""
    update_epochs: int = 10
    """the K epochs to update the policy"""
    norm_adv: bool = True
    """toggles dividing the advantage weight |A| by its std (a scale only: the threshold stays put)"""
    clip_coef: float = 0.4
    """the ratio bound ε: π* keeps π/π0 within [1−ε, 1+ε]; also the value-clipping range, as in PPO (whose default is 0.2)"""
    temperature: float = 0.01
    """λ of the smoothed target ratio 1 + ε·tanh(Ã/2λ) and of the median loss (Ã = Q̂ − u(s), the median advantage), in units of the normalised return (of Ã's std with --norm-median-adv): the targets soften as Ã's spread shrinks; 0 gives the sign target"""
    median_coef: float = 0.5
    """coefficient of the median-head loss"""
    use_median: bool = True
    """threshold the target at the learned median u(s); --no-use-median uses V(s) (the paper's ablation)"""
    distance: Literal["tv", "sqrt", "log"] = "sqrt"
    """how the loss measures the gap to the target ratio: 2|√ρ − √ρ*|, |log ρ − log ρ*|, or the paper's |ρ − ρ*| (tv); their pull on log ρ is ∝ √ρ, 1, ρ: tv shrinks the std fastest, log slowest"""
    norm_median_adv: bool = False
    """measure --temperature in units of Ã's std over the minibatch, so the targets do not soften as training goes on (off: in units of the normalised return)"""
    clip_vloss: bool = True
    """toggles whether or not to use a clipped loss for the value function, as per the paper"""
    ent_coef: float = 0.0
    """coefficient of the entropy"""
    vf_coef: float = 0.5
    """coefficient of the value function"""
    max_grad_norm: float = 0.5
    """the maximum norm for the gradient clipping"""
    target_kl: float | None = None
    """the target KL divergence threshold (stop the epochs of an update early above it)"""
    bootstrap_truncated: bool = True
    """bootstrap truncated episodes (time limits) from V(final observation) instead of treating them as terminal"""

    # to be filled in runtime (not flags: a value given on the command line would be overwritten)
    batch_size: tyro.conf.Suppress[int] = 0
    """the batch size (computed in runtime)"""
    minibatch_size: tyro.conf.Suppress[int] = 0
    """the mini-batch size (computed in runtime)"""
    num_iterations: tyro.conf.Suppress[int] = 0
    """the number of iterations (computed in runtime)"""


HOW_TO_RUN = ("resume", "capture_video", "cuda", "torch_threads", "progress", "track", "wandb_project_name", "wandb_entity")
"""the flags --resume takes from the command line; the others come from the checkpoint"""
EVAL_FLAGS = ("eval_checkpoint", "eval_episodes", "eval_deterministic", "capture_video", "seed", "torch_threads", "progress")
"""the flags --eval-checkpoint uses; the others (--env-id included) come from the checkpoint"""


def check_args(args: Args) -> None:
    """Reject bad settings before anything starts: one line naming the problem, non-zero exit.
    Every numeric flag has its range here (written so that NaN fails too); tests/test_faults.py walks them all."""
    batch = args.num_envs * args.num_steps
    problems = [
        (not 0 <= args.seed < 2**32, f"--seed must lie in [0, 2**32 - 1] (NumPy's seed range), got {args.seed}"),
        (args.torch_threads < 1, f"--torch-threads must be at least 1, got {args.torch_threads}"),
        (not args.exp_name or "/" in args.exp_name or "\\" in args.exp_name,  # it names a folder under runs/ and a file
         f"--exp-name must be a plain name, without '/' or '\\', got '{args.exp_name}'"),
        (args.total_timesteps <= 0, f"--total-timesteps must be positive, got {args.total_timesteps}"),
        (args.num_envs < 1 or args.num_steps < 1, "--num-envs and --num-steps must be at least 1"),
        (args.num_minibatches < 1, f"--num-minibatches must be at least 1, got {args.num_minibatches}"),
        (batch % max(args.num_minibatches, 1) != 0,
         f"the batch (--num-envs {args.num_envs} x --num-steps {args.num_steps} = {batch}) "
         f"does not divide into --num-minibatches {args.num_minibatches}"),
        (batch // max(args.num_minibatches, 1) < 2,  # the std of one sample is NaN
         f"a minibatch needs at least 2 samples (advantages are normalised by their std): the batch of {batch} "
         f"in --num-minibatches {args.num_minibatches} gives {batch // max(args.num_minibatches, 1)}"),
        (args.total_timesteps < batch, f"--total-timesteps {args.total_timesteps} is smaller than one batch ({batch} steps)"),
        (not 0.0 < args.clip_coef < 1.0, f"--clip-coef must lie in (0, 1), got {args.clip_coef}"),
        (not 0 <= args.temperature < math.inf, f"--temperature must be >= 0 and finite, got {args.temperature}"),
        (not 0 <= args.median_coef < math.inf, f"--median-coef must be >= 0 and finite, got {args.median_coef}"),
        (not 0 < args.learning_rate < math.inf, f"--learning-rate must be positive and finite, got {args.learning_rate}"),
        (not 0.0 < args.gamma <= 1.0, f"--gamma must lie in (0, 1], got {args.gamma}"),
        (not 0.0 <= args.gae_lambda <= 1.0, f"--gae-lambda must lie in [0, 1], got {args.gae_lambda}"),
        (not 0 <= args.ent_coef < math.inf, f"--ent-coef must be >= 0 and finite, got {args.ent_coef}"),
        (not 0 <= args.vf_coef < math.inf, f"--vf-coef must be >= 0 and finite, got {args.vf_coef}"),
        (not 0 < args.max_grad_norm < math.inf, f"--max-grad-norm must be positive and finite, got {args.max_grad_norm}"),
        (args.target_kl is not None and not 0 < args.target_kl < math.inf,
         f"--target-kl must be positive and finite, got {args.target_kl}"),
        (args.update_epochs < 1, f"--update-epochs must be at least 1, got {args.update_epochs}"),
        (args.eval_episodes < 1, f"--eval-episodes must be at least 1, got {args.eval_episodes}"),
        (args.eval_checkpoint is not None and args.resume is not None, "--eval-checkpoint and --resume exclude each other"),
    ]
    for bad, message in problems:
        if bad:
            sys.exit(f"error: {message}")


def given_flags(args: Args, keep) -> list[str]:
    """The flags given on the command line or set away from their defaults, except `keep`: a mode that ignores them
    says so in one line."""
    default = Args()
    typed = {a.split("=")[0].removeprefix("--no-").removeprefix("--").replace("-", "_")  # given with its default value
             for a in sys.argv[1:] if a.startswith("--")}
    return [f"--{'no-' if v is False else ''}{k.replace('_', '-')}" for k, v in vars(args).items()
            if k not in keep and (k in typed or v != getattr(default, k))]


def check_writable(folder) -> None:
    """Create `folder` and write a scratch file in it, or exit with one line naming it: found now, not at the first save."""
    try:
        os.makedirs(folder, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
    except OSError as e:
        sys.exit(f"error: cannot write to {os.path.abspath(folder)}: {e.strerror or e}")


def exit_on_ctrl_c(checkpoint_path):
    """From here on, Ctrl-C ends the run with one line saying where its last checkpoint is (exit code 130, no traceback)."""

    def handler(signum, frame):
        if os.path.exists(checkpoint_path):
            print(f"interrupted: the last checkpoint is {checkpoint_path}; continue the run with "
                  f"python {os.path.basename(__file__)} --resume {checkpoint_path}", file=sys.stderr)
        else:
            print("interrupted before any checkpoint was saved (--save-model saves one every 10% of training)", file=sys.stderr)
        sys.exit(130)

    return signal.signal(signal.SIGINT, handler)


def choose_mujoco_gl():
    """MuJoCo's off-screen OpenGL for --capture-video, EGL else OSMesa, set before mujoco is imported: left to itself it
    finds none on a machine without a display. A MUJOCO_GL set by the user is kept; macOS and Windows need none."""
    if os.environ.get("MUJOCO_GL") or sys.platform != "linux":
        return
    for backend, library in (("egl", "EGL"), ("osmesa", "OSMesa")):
        if ctypes.util.find_library(library):
            os.environ["MUJOCO_GL"] = backend
            return


def check_capture_video(env_id):
    """--capture-video: fail now, in one line, if the recorder or an off-screen renderer is missing, not at the first frame."""
    try:
        import moviepy  # noqa: F401  (gymnasium's RecordVideo writes its mp4 files with it)
    except ImportError:
        sys.exit('error: --capture-video needs moviepy: pip install "brrl[video]"')
    modes = gym.make(env_id).metadata.get("render_modes", [])
    if "rgb_array" not in modes:
        sys.exit(f"error: --capture-video needs frames, but {env_id} has no rgb_array render mode (it has: {', '.join(modes) or 'none'})")
    hook, sys.unraisablehook = sys.unraisablehook, lambda unraisable: None  # a viewer that failed to start fails again when deleted
    try:
        env = gym.make(env_id, render_mode="rgb_array")
        env.reset(seed=0)
        env.render()
        env.close()
        failure = None
    except Exception as e:  # no OpenGL library, no device, a MUJOCO_GL that does not work here, ...
        failure = (str(e).strip().splitlines() or [type(e).__name__])[0]
    sys.unraisablehook = hook
    if failure:
        sys.exit(f"error: --capture-video cannot render {env_id} off-screen (MUJOCO_GL={os.environ.get('MUJOCO_GL', 'not set')}: {failure}); "
                 "install EGL (Debian/Ubuntu: apt install libegl1) or OSMesa (apt install libosmesa6), or set MUJOCO_GL to a backend that works")


def make_env(env_id, gamma, obs_rms=None, video_dir=None, episode_trigger=None):
    """Thunk for one environment: CleanRL's MuJoCo wrappers. With `obs_rms` the normalisation is frozen to it; with
    `video_dir` the episodes that `episode_trigger` picks (None: gymnasium's default) are recorded there."""

    def thunk():
        if video_dir is not None:  # first of all wrappers: the episode as it is played, whatever the learner sees
            env = gym.wrappers.RecordVideo(gym.make(env_id, render_mode="rgb_array"), str(video_dir), episode_trigger=episode_trigger)
        else:
            env = gym.make(env_id)
        env = gym.wrappers.FlattenObservation(env)  # deal with dm_control's Dict observation space
        env = gym.wrappers.RecordEpisodeStatistics(env)  # before normalisation: logs the real return
        env = gym.wrappers.ClipAction(env)
        env = gym.wrappers.NormalizeObservation(env)
        if obs_rms is not None:
            env.obs_rms, env.update_running_mean = obs_rms, False
        env = gym.wrappers.TransformObservation(env, lambda obs: np.clip(obs, -10, 10), env.observation_space)
        env = gym.wrappers.NormalizeReward(env, gamma=gamma)
        env = gym.wrappers.TransformReward(env, lambda reward: np.clip(reward, -10, 10))
        return env

    return thunk


def make_envs(env_id, num_envs, gamma, obs_rms=None, video_dir=None, episode_trigger=None):
    """Vector env with same-step autoreset: a finished episode's last observation arrives in infos["final_obs"]
    and the returned observation is already the next episode's first, so no transition crosses a boundary.
    With `video_dir`, env 0 records its episodes there (make_env)."""
    if video_dir is not None:
        choose_mujoco_gl()
    try:
        action_space = gym.make(env_id).action_space
    except Exception as e:  # unknown id, removed version (ImportError), missing package (ModuleNotFoundError), ...
        sys.exit(f"error: cannot make environment '{env_id}': {str(e).strip().splitlines()[0]}")
    if not isinstance(action_space, gym.spaces.Box):
        sys.exit(f"error: {env_id} has a {action_space} action space; this script needs a continuous (Box) one")
    if video_dir is not None:
        check_capture_video(env_id)
    return gym.vector.SyncVectorEnv(
        [make_env(env_id, gamma, obs_rms, video_dir if i == 0 else None, episode_trigger) for i in range(num_envs)],
        autoreset_mode=gym.vector.AutoresetMode.SAME_STEP,
        copy=False,  # observations are copied into torch tensors right away
    )


LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def layer_init(layer, std=np.sqrt(2), bias_const=0.0):
    torch.nn.init.orthogonal_(layer.weight, std)
    torch.nn.init.constant_(layer.bias, bias_const)
    return layer


class Agent(nn.Module):
    def __init__(self, envs):
        super().__init__()
        obs_dim = np.array(envs.single_observation_space.shape).prod()
        action_dim = np.prod(envs.single_action_space.shape)
        self.critic = nn.Sequential(
            layer_init(nn.Linear(obs_dim, 64)),
            nn.Tanh(),
            layer_init(nn.Linear(64, 64)),
            nn.Tanh(),
            layer_init(nn.Linear(64, 2), std=1.0),  # outputs [V(s), u(s)]: the value and the median head
        )
        self.actor_mean = nn.Sequential(
            layer_init(nn.Linear(obs_dim, 64)),
            nn.Tanh(),
            layer_init(nn.Linear(64, 64)),
            nn.Tanh(),
            layer_init(nn.Linear(64, action_dim), std=0.01),
        )
        self.actor_logstd = nn.Parameter(torch.zeros(1, action_dim))

    def get_value(self, x):
        return self.critic(x)[..., 0]

    def get_action_and_value(self, x, action=None):
        action_mean = self.actor_mean(x)
        action_logstd = self.actor_logstd.expand_as(action_mean)
        action_std = torch.exp(action_logstd)
        if action is None:
            action = action_mean + action_std * torch.randn_like(action_mean)
        # diagonal Gaussian log-density and entropy in closed form (torch.distributions costs more per call)
        log_prob = (-0.5 * ((action - action_mean) / action_std) ** 2 - action_logstd - LOG_SQRT_2PI).sum(1)
        entropy = (action_logstd + 0.5 + LOG_SQRT_2PI).sum(1)
        value, median = self.critic(x).unbind(-1)
        return action, log_prob, entropy, value, median


def bpo_target_ratio(median_advantage, eps, temperature):
    """π*/π0 = 1 + ε·sign(Ã) (Theorem 4.1), smoothed to 1 + ε·tanh(Ã/2λ) = 1 − ε + 2ε·σ(Ã/λ) when λ > 0."""
    if temperature == 0:
        return 1 + eps * torch.sign(median_advantage)
    return 1 + eps * torch.tanh(median_advantage / (2 * temperature))


def bpo_loss(logratio, advantage, median_advantage, eps, temperature, distance="tv"):
    """Per-sample BPO loss |A|·|ρ − ρ*(Ã)|, the advantage-weighted total variation to π* (l^BPO, brrl-math.md §3; Cor. 4.5),
    or 2|A|·|√ρ − √ρ*| (sqrt), or |A|·|log ρ − log ρ*| (log, the authors' log-TV variant): the same minimiser ρ = ρ*,
    a pull on log ρ of |A|·ρ, |A|·√ρ or |A| (equal at ρ = 1)."""
    target = bpo_target_ratio(median_advantage, eps, temperature)
    if distance == "log":
        return advantage.abs() * (logratio - target.log()).abs()
    if distance == "sqrt":
        return advantage.abs() * 2 * ((logratio / 2).exp() - target.sqrt()).abs()
    return advantage.abs() * (logratio.exp() - target).abs()


def median_loss(returns, median, temperature):
    """λ·log(2cosh((Q̂−u)/2λ)): a smooth |Q̂−u|/2 whose minimiser u(s) is the median of Q̂ (brrl-math.md §4)."""
    x = returns - median
    if temperature == 0:
        return 0.5 * x.abs()
    return temperature * nn.functional.softplus(x / temperature) - 0.5 * x


def collect_rollout(envs, agent, storage, next_obs, next_done, global_step, args, device, episodes):
    """Run the policy for args.num_steps steps per env, filling `storage` in place.

    storage["dones"][t] marks obs[t] as the first observation of a new episode. A time-limit truncation
    adds γ·V(final observation) to the last reward, so GAE can cut there without losing the bootstrap.
    Finished episodes are appended to `episodes` as (global step, real return, length).
    """
    for step in range(args.num_steps):
        storage["obs"][step] = next_obs
        storage["dones"][step] = next_done
        with torch.inference_mode():
            action, logprob, _, value, _ = agent.get_action_and_value(next_obs)
        storage["values"][step] = value
        storage["actions"][step] = action
        storage["logprobs"][step] = logprob

        obs, reward, terminations, truncations, infos = envs.step(action.cpu().numpy())
        reward = torch.as_tensor(reward, dtype=torch.float32, device=device)
        truncated_only = truncations & ~terminations
        if args.bootstrap_truncated and truncated_only.any():
            final_obs = torch.as_tensor(np.stack(infos["final_obs"][truncated_only]), dtype=torch.float32, device=device)
            with torch.no_grad():
                reward[torch.as_tensor(truncated_only, device=device)] += args.gamma * agent.get_value(final_obs)
        storage["rewards"][step] = reward
        next_obs = torch.as_tensor(obs, dtype=torch.float32, device=device)
        next_done = torch.as_tensor(terminations | truncations, dtype=torch.float32, device=device)
        if "final_info" in infos and "episode" in infos["final_info"]:
            finished, stats = infos["final_info"]["_episode"], infos["final_info"]["episode"]
            step_done = global_step + (step + 1) * args.num_envs
            episodes.extend((step_done, r, l) for r, l in zip(stats["r"][finished], stats["l"][finished]))
    return next_obs, next_done


def compute_gae(rewards, values, dones, next_value, next_done, gamma, gae_lambda):
    """Generalised advantage estimation (Schulman et al. 2016); dones[t] = 1 if obs[t] starts a new episode."""
    next_nonterminal = 1.0 - torch.cat([dones[1:], next_done.unsqueeze(0)])
    next_values = torch.cat([values[1:], next_value.unsqueeze(0)])
    deltas = rewards + gamma * next_values * next_nonterminal - values
    advantages = torch.zeros_like(rewards)
    lastgaelam = torch.zeros_like(next_value)
    for t in reversed(range(rewards.shape[0])):
        advantages[t] = lastgaelam = deltas[t] + gamma * gae_lambda * next_nonterminal[t] * lastgaelam
    return advantages, advantages + values


def rms_state(rms):
    return {"mean": rms.mean, "var": rms.var, "count": rms.count}


def save_checkpoint(path, agent, envs, args, optimizer, iteration, global_step):
    """Weights, arguments, normalisation statistics (env 0's for evaluation, every env's for --resume) and the
    training state (optimizer, iteration, random generators), in one file."""
    rng = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    normalisation = [{k: rms_state(env.get_wrapper_attr(k)) for k in ("obs_rms", "return_rms")} for env in envs.envs]
    try:
        torch.save({"script": Args.exp_name, "args": vars(args), "model": agent.state_dict(), "obs_rms": normalisation[0]["obs_rms"],
                    "normalisation": normalisation, "optimizer": optimizer.state_dict(), "iteration": iteration,
                    "global_step": global_step, "rng": rng}, f"{path}.tmp")
        os.replace(f"{path}.tmp", path)  # a run cut off while saving keeps the previous checkpoint
    except (OSError, RuntimeError) as e:  # disk full, folder gone: torch reports write failures as RuntimeError
        sys.exit(f"error: cannot save the checkpoint {path}: {str(e).strip().splitlines()[0]}")


def load_checkpoint(path):
    """A checkpoint saved by this script, or a one-line exit naming what is wrong with the file."""
    path = Path(path)
    if path.is_dir():
        sys.exit(f"error: {path} is a folder; give the checkpoint file, e.g. runs/<run_name>/{Args.exp_name}.cleanrl_model")
    if not path.is_file():
        sys.exit(f"error: checkpoint not found: {path}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
        script, _ = checkpoint["script"], checkpoint["args"]
    except Exception as e:  # not a torch file, or not one of ours
        sys.exit(f"error: {path} is not a checkpoint of this library ({type(e).__name__}: {e})")
    if script != Args.exp_name:
        sys.exit(f"error: {path} was saved by {script}.py; use it with that script, not {Args.exp_name}.py")
    return checkpoint


def load_weights(agent, checkpoint, path):
    try:
        agent.load_state_dict(checkpoint["model"])
    except RuntimeError as e:
        sys.exit(f"error: {path} does not match {checkpoint['args']['env_id']} and this network: {str(e).splitlines()[0]}")


def evaluate(args: Args):
    """Load a checkpoint and report the mean ± std episodic return over args.eval_episodes episodes."""
    from gymnasium.wrappers.utils import RunningMeanStd

    torch.set_num_threads(args.torch_threads)
    path = args.eval_checkpoint
    checkpoint = load_checkpoint(path)
    if ignored := given_flags(args, EVAL_FLAGS):
        print(f"note: --eval-checkpoint uses the saved run's arguments; ignoring {' '.join(ignored)}", file=sys.stderr)
    saved_args = checkpoint["args"]
    obs_rms = RunningMeanStd(shape=checkpoint["obs_rms"]["mean"].shape)
    obs_rms.mean, obs_rms.var, obs_rms.count = (checkpoint["obs_rms"][k] for k in ("mean", "var", "count"))
    video_dir = None
    if args.capture_video:  # CleanRL's videos/{run_name}-eval/
        video_dir = Path("videos") / f"{Path(path).resolve().parent.name}-eval"
        check_writable(video_dir.parent)
    # every evaluation episode is recorded, not the start of the one that follows the last
    envs = make_envs(saved_args["env_id"], 1, saved_args["gamma"], obs_rms=obs_rms, video_dir=video_dir,
                     episode_trigger=lambda episode: episode < args.eval_episodes)
    agent = Agent(envs)
    load_weights(agent, checkpoint, path)

    returns = []
    obs, _ = envs.reset(seed=args.seed)
    while len(returns) < args.eval_episodes:
        with torch.no_grad():
            x = torch.as_tensor(obs, dtype=torch.float32)
            action = agent.actor_mean(x) if args.eval_deterministic else agent.get_action_and_value(x)[0]
        obs, _, _, _, infos = envs.step(action.numpy())
        if "final_info" in infos and "episode" in infos["final_info"]:
            returns.extend(infos["final_info"]["episode"]["r"][infos["final_info"]["_episode"]])
    envs.close()
    returns = np.array(returns[: args.eval_episodes])
    print(f"eval {saved_args['env_id']} ({path}): return {returns.mean():.1f} ± {returns.std():.1f} over {len(returns)} episodes"
          + (f"; videos in {video_dir}" if video_dir else ""))
    return returns


def main(args: Args):
    checkpoint = None
    if args.resume is not None:  # the saved run's own arguments; only how it runs here may change
        checkpoint = load_checkpoint(args.resume)
        if "optimizer" not in checkpoint:
            sys.exit(f"error: {args.resume} holds weights only (saved by an older version); it cannot be resumed")
        if ignored := given_flags(args, HOW_TO_RUN):
            print(f"note: --resume continues with the saved run's arguments; ignoring {' '.join(ignored)}", file=sys.stderr)
        here = {k: getattr(args, k) for k in HOW_TO_RUN}
        saved = {"norm_median_adv": False, **checkpoint["args"]}  # a run saved before issue 16 trained with it off
        if "distance" not in saved:  # saved with the older boolean --log-distance, or before it with the total variation
            saved["distance"] = "log" if saved.pop("log_distance", False) else "tv"
        args = Args(**{**saved, **here})
    check_args(args)
    args.batch_size = int(args.num_envs * args.num_steps)
    args.minibatch_size = int(args.batch_size // args.num_minibatches)
    args.num_iterations = args.total_timesteps // args.batch_size
    if checkpoint and checkpoint["iteration"] >= args.num_iterations:  # nothing left to train: say so, touch nothing
        print(f"{args.resume} is a finished run ({checkpoint['global_step']} of {args.total_timesteps} steps); nothing to "
              f"resume. Evaluate it with --eval-checkpoint {args.resume}")
        return
    run_name = f"{args.env_id.replace('/', '_')}__{args.exp_name}__{args.seed}__{int(time.time())}"
    run_dir = Path(args.resume).parent if checkpoint else Path("runs") / run_name
    checkpoint_path = str(run_dir / f"{args.exp_name}.cleanrl_model")
    previous_handler = exit_on_ctrl_c(checkpoint_path)

    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.backends.cudnn.deterministic = args.torch_deterministic
    torch.set_num_threads(args.torch_threads)
    device = torch.device("cuda" if torch.cuda.is_available() and args.cuda else "cpu")
    if args.cuda and device.type == "cpu":
        print("--cuda: no GPU available, running on the CPU", file=sys.stderr)

    video_dir = None
    if args.capture_video:  # CleanRL's videos/{run_name}/, beside runs/; a resumed run counts episodes from 0 again: its own folder
        video_name = f"{run_dir.name}-resumed-at-{checkpoint['global_step']}" if checkpoint else run_dir.name
        video_dir = run_dir.parent.parent / "videos" / video_name
        check_writable(video_dir.parent)
    envs = make_envs(args.env_id, args.num_envs, args.gamma, video_dir=video_dir)
    check_writable(run_dir if checkpoint else run_dir.parent)  # before any training, not at the first save
    agent = Agent(envs).to(device)
    optimizer = optim.Adam(agent.parameters(), lr=args.learning_rate, eps=1e-5, fused=True)  # one kernel per step
    start_iteration, global_step = 1, 0
    if checkpoint:
        load_weights(agent, checkpoint, args.resume)
        optimizer.load_state_dict(checkpoint["optimizer"])
        start_iteration, global_step = checkpoint["iteration"] + 1, checkpoint["global_step"]
        for env, saved in zip(envs.envs, checkpoint["normalisation"]):
            for key, state in saved.items():
                rms = env.get_wrapper_attr(key)
                rms.mean, rms.var, rms.count = state["mean"], state["var"], state["count"]
        random.setstate(checkpoint["rng"]["python"])
        np.random.set_state(checkpoint["rng"]["numpy"])
        torch.set_rng_state(checkpoint["rng"]["torch"])
        print(f"resuming {run_dir} at step {global_step} (the episodes restart; the learning goes on)")

    if args.track:
        import wandb

        wandb.init(project=args.wandb_project_name, entity=args.wandb_entity, sync_tensorboard=True,
                   config=vars(args), name=run_dir.name, save_code=True)
    # on resume, purge_step hides what the cut-off run logged after its checkpoint
    writer = SummaryWriter(str(run_dir), purge_step=global_step + 1 if checkpoint else None)
    if not checkpoint:
        writer.add_text("hyperparameters", "|param|value|\n|-|-|\n%s" % "\n".join(f"|{k}|{v}|" for k, v in vars(args).items()))

    obs_shape, action_shape = envs.single_observation_space.shape, envs.single_action_space.shape
    storage = {
        "obs": torch.zeros((args.num_steps, args.num_envs) + obs_shape, device=device),
        "actions": torch.zeros((args.num_steps, args.num_envs) + action_shape, device=device),
        **{k: torch.zeros((args.num_steps, args.num_envs), device=device) for k in ("logprobs", "rewards", "dones", "values")},
    }

    start_step, start_time = global_step, time.time()
    next_obs, _ = envs.reset(seed=args.seed + start_iteration - 1)  # a resumed run starts new episodes
    envs.action_space.seed(args.seed)
    next_obs = torch.as_tensor(next_obs, dtype=torch.float32, device=device)
    next_done = torch.zeros(args.num_envs, device=device)
    recent_returns = deque(maxlen=10)
    progress = tqdm(total=args.num_iterations * args.batch_size, initial=global_step, unit="step",
                    disable=None if args.progress else True, dynamic_ncols=True)

    for iteration in range(start_iteration, args.num_iterations + 1):
        if args.anneal_lr:
            frac = 1.0 - (iteration - 1.0) / args.num_iterations
            optimizer.param_groups[0]["lr"] = frac * args.learning_rate

        episodes = []
        next_obs, next_done = collect_rollout(envs, agent, storage, next_obs, next_done, global_step, args, device, episodes)
        global_step += args.batch_size
        for step_done, episodic_return, episodic_length in episodes:
            writer.add_scalar("charts/episodic_return", episodic_return, step_done)
            writer.add_scalar("charts/episodic_length", episodic_length, step_done)
            recent_returns.append(float(episodic_return))

        with torch.no_grad():
            next_value = agent.get_value(next_obs)
        advantages, returns = compute_gae(storage["rewards"], storage["values"], storage["dones"], next_value, next_done,
                                          args.gamma, args.gae_lambda)

        # flatten the batch
        b_obs = storage["obs"].reshape((-1,) + obs_shape)
        b_logprobs = storage["logprobs"].reshape(-1)
        b_actions = storage["actions"].reshape((-1,) + action_shape)
        b_advantages = advantages.reshape(-1)
        b_returns = returns.reshape(-1)
        b_values = storage["values"].reshape(-1)

        # Optimizing the policy and value network
        # policy, value, entropy, approx_kl, clipfrac, median loss, target ratio, share above median, |ρ − target|,
        # |ρ* − 1|/ε, std of Ã; summed
        stats = torch.zeros(11, device=device)
        num_updates = 0
        for epoch in range(args.update_epochs):
            b_inds = torch.randperm(args.batch_size, device=device)
            for start in range(0, args.batch_size, args.minibatch_size):
                mb_inds = b_inds[start : start + args.minibatch_size]

                _, newlogprob, entropy, newvalue, newmedian = agent.get_action_and_value(b_obs[mb_inds], b_actions[mb_inds])
                logratio = newlogprob - b_logprobs[mb_inds]
                ratio = logratio.exp()

                with torch.no_grad():
                    # calculate approx_kl http://joschu.net/blog/kl-approx.html
                    approx_kl = ((ratio - 1) - logratio).mean()
                    clipfrac = ((ratio - 1.0).abs() > args.clip_coef).float().mean()

                # A = Q̂ − V(s) weights the loss, Ã = Q̂ − u(s) sets the target; current heads, detached (brrl-math.md §4)
                mb_advantages = b_returns[mb_inds] - newvalue.detach()
                mb_median_advantages = b_returns[mb_inds] - newmedian.detach() if args.use_median else mb_advantages
                # Ã / s in the target and (Q̂ − u) / s in the median loss, s = std(Ã): λ in units of s, both losses alike
                scale = mb_median_advantages.std() + 1e-8 if args.norm_median_adv else 1.0
                if args.norm_adv:
                    mb_advantages = mb_advantages / (mb_advantages.std() + 1e-8)

                # Policy loss
                pg_loss = bpo_loss(logratio, mb_advantages, mb_median_advantages / scale, args.clip_coef, args.temperature,
                                   args.distance).mean()
                m_loss = scale * median_loss(b_returns[mb_inds] / scale, newmedian / scale, args.temperature).mean()
                with torch.no_grad():
                    target = bpo_target_ratio(mb_median_advantages / scale, args.clip_coef, args.temperature)
                    target_stats = [target.mean(), (mb_median_advantages > 0).float().mean(), (ratio - target).abs().mean(),
                                    (target - 1).abs().mean() / args.clip_coef, mb_median_advantages.std()]

                # Value loss
                if args.clip_vloss:
                    v_loss_unclipped = (newvalue - b_returns[mb_inds]) ** 2
                    v_clipped = b_values[mb_inds] + torch.clamp(newvalue - b_values[mb_inds], -args.clip_coef, args.clip_coef)
                    v_loss_clipped = (v_clipped - b_returns[mb_inds]) ** 2
                    v_loss = 0.5 * torch.max(v_loss_unclipped, v_loss_clipped).mean()
                else:
                    v_loss = 0.5 * ((newvalue - b_returns[mb_inds]) ** 2).mean()

                entropy_loss = entropy.mean()
                loss = pg_loss - args.ent_coef * entropy_loss + v_loss * args.vf_coef + m_loss * args.median_coef

                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(agent.parameters(), args.max_grad_norm)
                optimizer.step()
                stats += torch.stack([pg_loss, v_loss, entropy_loss, approx_kl, clipfrac, m_loss, *target_stats]).detach()
                num_updates += 1

            if args.target_kl is not None and approx_kl > args.target_kl:
                break

        pg_loss, v_loss, entropy_loss, approx_kl, clipfrac, m_loss, target_mean, frac_above, gap, saturation, median_adv_std = (
            stats / num_updates).tolist()
        if not np.isfinite([pg_loss, v_loss, entropy_loss]).all():
            note = f"; the last good checkpoint is {checkpoint_path}" if args.save_model and os.path.exists(checkpoint_path) else ""
            sys.exit(f"error: non-finite loss at step {global_step} (policy {pg_loss}, value {v_loss}); stopping{note}")

        y_pred, y_true = b_values.cpu().numpy(), b_returns.cpu().numpy()
        var_y = np.var(y_true)
        explained_var = np.nan if var_y == 0 else 1 - np.var(y_true - y_pred) / var_y

        sps = int((global_step - start_step) / (time.time() - start_time))
        writer.add_scalar("charts/learning_rate", optimizer.param_groups[0]["lr"], global_step)
        writer.add_scalar("losses/value_loss", v_loss, global_step)
        writer.add_scalar("losses/policy_loss", pg_loss, global_step)
        writer.add_scalar("losses/entropy", entropy_loss, global_step)
        writer.add_scalar("losses/approx_kl", approx_kl, global_step)
        writer.add_scalar("losses/clipfrac", clipfrac, global_step)
        writer.add_scalar("losses/explained_variance", explained_var, global_step)
        writer.add_scalar("losses/median_loss", m_loss, global_step)
        writer.add_scalar("bpo/target_ratio_mean", target_mean, global_step)
        writer.add_scalar("bpo/frac_above_median", frac_above, global_step)
        writer.add_scalar("bpo/ratio_target_gap", gap, global_step)
        writer.add_scalar("bpo/target_saturation", saturation, global_step)
        writer.add_scalar("bpo/median_adv_std", median_adv_std, global_step)
        writer.add_scalar("charts/SPS", sps, global_step)
        progress.update(args.batch_size)
        progress.set_postfix(SPS=sps, ret=f"{np.mean(recent_returns):.1f}" if recent_returns else "-")

        if args.save_model and (iteration % max(1, args.num_iterations // 10) == 0 or iteration == args.num_iterations):
            writer.flush()  # the logs up to the checkpoint reach the disk with it
            save_checkpoint(checkpoint_path, agent, envs, args, optimizer, iteration, global_step)

    progress.close()
    envs.close()
    writer.close()
    recent = f"{np.mean(recent_returns):.1f}" if recent_returns else "n/a"
    print(f"done: {global_step} steps at {int((global_step - start_step) / (time.time() - start_time))} steps/s; "
          f"mean return of the last {len(recent_returns)} episodes {recent}; logs in {run_dir}"
          + (f"; videos in {video_dir}" if video_dir else ""))
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
        print("interrupted: nothing was saved", file=sys.stderr)
        sys.exit(130)
