"""Record the MBDPO release's own outputs as small golden fixtures for `tests/test_release_golden.py`.

Run once, by hand; the tests never fetch or import the release. How the committed fixtures were made:

    git clone https://github.com/Edmond1Cheng/MBDPO release && git -C release checkout 5ff5a06
    python -m venv relenv && relenv/bin/pip install torch==2.13.0 tensordict==0.15.3 numpy safetensors
    relenv/bin/python scripts/make_release_fixtures.py --release release/MBDPO --out tests/fixtures/release

It builds the release's world model and agent on the CPU at a tiny size (the release hard-codes
``cuda:0``, so the agent's attributes are set here instead of by its constructor), gives every
weight a seeded random value (the release's init zeroes the heads, which would make the comparison
blind), and with every random draw replaced by `tests/release_noise.py`'s fixed patterns records:

* ``outputs.safetensors``: encoder, dynamics, reward, Q (all heads), policy (action, mean, scaled
  entropy) and F outputs on fixed inputs; the score network on a noisy sequence; one Monte-Carlo
  score target; the losses, the clipped gradients of one update and of the policy step, and F's
  running statistics after it; every level of one diffusion plan (candidates, values) and its result,
  once with the Monte-Carlo score and once guided by the score network;
* ``mbdpo.pt``: the weights those outputs came from, saved as the release's ``save`` writes them
  (``torch.save({"model": state_dict})``). The golden tests read them through our importer, so they test it too.
* ``tdmpc2.pt``: a world model built by TD-MPC2's own code (github nicklashansen/tdmpc2, commit e9f5932,
  ``--tdmpc2 tdmpc2/tdmpc2``) at the same size, seeded random weights, saved the same way; without
  ``--tdmpc2``, the release's model without its F and score heads stands in for it.

One deliberate change: the release pairs the latents of its energy loss (flattened time-major) with
actions flattened batch-major. We pair each latent with its own action, so the batch handed to the
release's energy loss is reordered such that its flattening yields the time-major order.
"""
from __future__ import annotations

import argparse
import sys
import types
from pathlib import Path

import torch
from safetensors.torch import save_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from release_noise import fixed_noise  # noqa: E402

OBS, ACT, H, B = 6, 2, 3, 4  # reacher-easy's sizes, so the checkpoints import for a real task
TINY = dict(enc_dim=32, mlp_dim=32, latent_dim=16, num_q=3, num_enc_layers=2, levels=4, samples=16, elites=4,
            pi_trajs=3, score_samples=8)


def release_cfg() -> types.SimpleNamespace:
    """The release's config fields that its world model, agent and planner read."""
    return types.SimpleNamespace(
        task="reacher-easy", obs="state", episodic=False, multitask=False, tasks=["reacher-easy"],
        obs_shape={"state": (OBS,)}, action_dim=ACT, episode_length=500, num_enc_layers=TINY["num_enc_layers"],
        enc_dim=TINY["enc_dim"], mlp_dim=TINY["mlp_dim"], latent_dim=TINY["latent_dim"], simnorm_dim=8,
        num_q=TINY["num_q"], num_bins=101, vmin=-10.0, vmax=10.0, bin_size=0.2, dropout=0.0, task_dim=0,
        log_std_min=-10.0, log_std_max=2.0, horizon=H, action_dims=[ACT], diffusion_time_embed_dim=64,
        lr=3e-4, enc_lr_scale=0.3, compile=False, tau=0.01, rho=0.5, batch_size=B, discount_denom=5,
        discount_min=0.95, discount_max=0.995, entropy_coef=1e-4, grad_clip_norm=20.0, consistency_coef=20.0,
        reward_coef=0.1, value_coef=0.1, termination_coef=1.0, diffusion_steps=TINY["levels"],
        diffusion_beta0=1e-4, diffusion_betaT=1e-2, diffusion_num_samples=TINY["samples"],
        diffusion_num_elites=TINY["elites"], diffusion_num_pi_trajs=TINY["pi_trajs"], diffusion_temperature=0.5,
        diffusion_action_noise=0.05, diffusion_eval_compile=False, use_score_network=True, score_loss_coef=1.0,
        contrastive_eta=0.01, diffusion_num_samples_mf=TINY["score_samples"])


class GradRecorder:
    """Stands in for an optimizer: `step` keeps the (clipped) gradients, nothing is changed."""

    def __init__(self, params):
        self.params = dict(params)
        self.grads: dict[str, torch.Tensor] = {}

    def step(self):
        self.grads = {k: p.grad.detach().clone() for k, p in self.params.items() if p.grad is not None}

    def zero_grad(self, set_to_none=True):
        for p in self.params.values():
            p.grad = None


def build_agent(release: Path):
    sys.path.insert(0, str(release))
    from common.scale import RunningScale
    from common.world_model import WorldModel
    from diffusion import Diffusion
    from mbdpo import MBDPO

    cfg = release_cfg()
    torch.manual_seed(0)
    agent = MBDPO.__new__(MBDPO)
    torch.nn.Module.__init__(agent)
    agent.cfg, agent.device = cfg, torch.device("cpu")
    agent.model = WorldModel(cfg)
    with torch.no_grad():  # seeded random weights everywhere, so that no output is trivially zero
        for name, p in agent.model.named_parameters():
            p.copy_(torch.randn_like(p) * (0.3 if p.dim() > 1 else 0.1) + (1.0 if ".ln." in name else 0.0))
        agent.model._target_Qs_params.data.copy_(agent.model._Qs.params.data * 0.9)
    agent.optim = GradRecorder((n, p) for n, p in agent.model.named_parameters() if not n.startswith("_pi."))
    agent.pi_optim = GradRecorder((n, p) for n, p in agent.model.named_parameters() if n.startswith("_pi."))
    agent.scale = RunningScale.__new__(RunningScale)
    torch.nn.Module.__init__(agent.scale)
    agent.scale.cfg = cfg
    agent.scale.value = torch.nn.Buffer(torch.ones(1))
    agent.scale._percentiles = torch.nn.Buffer(torch.tensor([5.0, 95.0]))
    agent._contrastive_eta, agent._contrastive_coef = cfg.contrastive_eta, 1.0
    agent._contrastive_clip, agent._contrastive_momentum = 5.0, 0.99
    agent.register_buffer("_contrastive_mean", torch.full((1,), 0.2))
    agent.register_buffer("_contrastive_std", torch.full((1,), 1.5))
    agent.discount = agent._get_discount(cfg.episode_length)
    agent._prev_mean = torch.nn.Buffer(torch.zeros(H, ACT))
    agent._diffusion_planner = Diffusion(cfg)
    agent._compiled_update_core = agent._update_core
    original = agent._contrastive_loss

    def paired_contrastive_loss(zs, actions, task):  # see the module docstring
        return original(zs, actions.reshape(-1, actions.shape[-1]).reshape(B, H, -1).transpose(0, 1), task)

    agent._contrastive_loss = paired_contrastive_loss
    return agent


def record(agent) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    out: dict[str, torch.Tensor] = {}
    m = agent.model
    obs = torch.randn(B, OBS, generator=g)
    act = torch.rand(B, ACT, generator=g) * 2 - 1
    out.update(in_obs=obs, in_act=act)
    with torch.no_grad(), fixed_noise():
        z = m.encode(obs, None)
        pi_action, info = m.pi(z, None)
        x = torch.randn(1, H, ACT) * 0.5
        out.update(z=z, next=m.next(z, act, None), reward=m.reward(z, act, None), q_all=m.Q(z, act, None, "all"),
                   pi_action=pi_action, pi_mean=info["mean"], pi_scaled_entropy=info["scaled_entropy"],
                   pi_entropy=info["entropy"], f=m.F(z, act, None), in_score_x=x,
                   score=m.score(z[:1], x, torch.tensor([2]), None))
        x_tau, tau, target = agent._mc_score_target(z[:1], None)
        out.update(score_target_x=x_tau, score_target_tau=tau.reshape(1).float(), score_target=target)
    batch_obs = torch.randn(H + 1, B, OBS, generator=g)
    batch_act = torch.rand(H, B, ACT, generator=g) * 2 - 1
    batch_rew = torch.rand(H, B, 1, generator=g) * 2
    out.update(batch_obs=batch_obs, batch_action=batch_act, batch_reward=batch_rew)
    with fixed_noise():
        info = agent._update(batch_obs, batch_act, batch_rew, torch.zeros_like(batch_rew))
    for key in ("consistency_loss", "reward_loss", "value_loss", "contrastive_loss", "score_loss", "total_loss",
                "grad_norm", "pi_loss", "pi_scale"):
        out[f"loss_{key}"] = torch.as_tensor(info[key]).reshape(1).float()
    out.update({f"grad.{k}": v for k, v in agent.optim.grads.items()})
    out.update({f"grad.{k}": v for k, v in agent.pi_optim.grads.items()})
    out.update(contrastive_mean=agent._contrastive_mean.clone(), contrastive_std=agent._contrastive_std.clone())

    estimate = agent._estimate_value
    agent._prev_mean.copy_(torch.linspace(-0.8, 0.8, H * ACT).reshape(H, ACT))
    out["plan_prev_mean"] = agent._prev_mean.clone()
    for prefix, guided in (("plan", False), ("guided_plan", True)):  # Monte-Carlo score, then the network's
        levels: list[tuple[torch.Tensor, torch.Tensor]] = []

        def recording_estimate(z, actions, task):
            value = estimate(z, actions, task)
            levels.append((actions.permute(1, 0, 2).clone(), value.squeeze(-1).clone()))
            return value

        agent._estimate_value = recording_estimate
        agent.cfg.use_score_network = guided
        agent._prev_mean.copy_(out["plan_prev_mean"])
        with torch.no_grad(), fixed_noise():
            action = agent._diffusion_planner.plan(agent, obs[:1], t0=False, eval_mode=True)
        out.update({f"{prefix}_action": action, f"{prefix}_x0": agent._prev_mean.clone(),
                    f"{prefix}_candidates": torch.stack([c for c, _ in levels]),
                    f"{prefix}_values": torch.stack([v for _, v in levels])})
    agent._estimate_value = estimate
    return {k: v.detach().float().contiguous() for k, v in out.items()}


def tdmpc2_state(folder: Path, release: Path, obs: torch.Tensor, act: torch.Tensor) -> tuple[dict, dict]:
    """A TD-MPC2 world model's state dict (its own code), seeded random weights, with the bookkeeping
    entries; and its encoder, reward, Q and policy-mean outputs on ``obs``, ``act``."""
    for name in [m for m in sys.modules if m == "common" or m.startswith("common.")]:
        del sys.modules[name]  # the release's `common` package was imported first
    sys.path.remove(str(release))
    sys.path.insert(0, str(folder))
    from common.world_model import WorldModel

    torch.manual_seed(2)
    model = WorldModel(release_cfg())
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.randn_like(p) * (0.3 if p.dim() > 1 else 0.1) + (1.0 if ".ln." in name else 0.0))
        model._target_Qs_params.data.copy_(model._Qs.params.data * 0.9)
    state = dict(model.state_dict())
    for prefix in ("_Qs.params.", "_detach_Qs_params.", "_target_Qs_params."):
        state[prefix + "__batch_size"] = torch.Size([TINY["num_q"]])
        state[prefix + "__device"] = torch.device("cpu")
    model.eval()
    with torch.no_grad(), fixed_noise():
        z = model.encode(obs, None)
        outputs = dict(tdmpc2_z=z, tdmpc2_reward=model.reward(z, act, None),
                       tdmpc2_q_all=model.Q(z, act, None, "all"), tdmpc2_pi_mean=model.pi(z, None)[1]["mean"])
    return state, {k: v.float().contiguous() for k, v in outputs.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--release", type=Path, required=True, help="the release's MBDPO/ folder (commit 5ff5a06)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--tdmpc2", type=Path, default=None, help="TD-MPC2's tdmpc2/ folder (commit e9f5932)")
    args = ap.parse_args()
    agent = build_agent(args.release)
    # the weights the outputs come from (the update records gradients only, but its Polyak step moves
    # the target Q heads)
    full = {k: v.clone() for k, v in agent.model.state_dict().items()}
    outputs = record(agent)
    tdmpc2 = {k: v for k, v in full.items() if not k.startswith(("_F.", "_score."))}
    if args.tdmpc2 is not None:
        tdmpc2, tdmpc2_outputs = tdmpc2_state(args.tdmpc2, args.release, outputs["in_obs"], outputs["in_act"])
        outputs.update(tdmpc2_outputs)
    args.out.mkdir(parents=True, exist_ok=True)
    save_file(outputs, str(args.out / "outputs.safetensors"),
              metadata={"source": "Edmond1Cheng/MBDPO@5ff5a06; tdmpc2_*: nicklashansen/tdmpc2@e9f5932"})
    for prefix in ("_Qs.params.", "_detach_Qs_params.", "_target_Qs_params."):
        # the tensordict bookkeeping entries the release's checkpoints carry (see its api_model_conversion);
        # this tensordict version no longer writes them
        full[prefix + "__batch_size"] = torch.Size([TINY["num_q"]])
        full[prefix + "__device"] = torch.device("cpu")
    torch.save({"model": full}, args.out / "mbdpo.pt")
    torch.save({"model": tdmpc2}, args.out / "tdmpc2.pt")
    for f in sorted(args.out.iterdir()):
        print(f"{f.name}: {f.stat().st_size / 1024:.0f} KB")


if __name__ == "__main__":
    main()
