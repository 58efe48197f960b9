"""Multi-task MBDPO: task embeddings read by every network, padded observations, masked actions,
a discount per task, and the task riding along with the latent through planning and learning."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from mbdpo_lab.agent import MBDPO, TaskSpec
from mbdpo_lab.checkpoint import load_checkpoint, save_checkpoint
from mbdpo_lab.config import make_config
from mbdpo_lab.datasets import DatasetWriter, EpisodeDataset
from mbdpo_lab.errors import ConfigError, ObservationError

TASKS = [TaskSpec("big", obs_dim=5, act_dim=2), TaskSpec("small", obs_dim=3, act_dim=1, episode_length=50)]


def _agent(**kw):
    torch.manual_seed(0)
    cfg = make_config("tiny", device="cpu", task_dim=4, **kw)
    return MBDPO(cfg, 5, 2, tasks=TASKS)


def _awake(wm):
    """Heads as after some training: the zero-initialised last layers drawn at random."""
    with torch.no_grad():
        for w in (wm.reward_head[-1].weight, wm.energy_head[-1].weight, wm.q_heads.out.weight):
            w.normal_(0, 0.3)
    return wm


def _batch(agent, task, B=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    H = agent.cfg.horizon
    obs = torch.randn((H + 1, B, 5), generator=g)
    action = torch.rand((H, B, 2), generator=g) * 2 - 1
    if task == 1:  # the small task's padding is zero, as EpisodeDataset gives it
        obs[..., 3:] = 0
        action[..., 1:] = 0
    return dict(obs=obs, action=action, reward=torch.rand((H, B), generator=g),
                task=torch.full((B,), task, dtype=torch.long))


def test_the_latent_carries_its_task_and_observations_are_padded():
    agent = _agent()
    wm, L = agent.wm, agent.cfg.latent_dim
    z = agent.encode(np.ones(3, np.float32), task="small")
    assert z.shape == (L + 4 + 2,)
    torch.testing.assert_close(z[L + 4:], torch.tensor([1.0, 0.0]))  # the small task's action mask
    groups = wm.latent(z).view(-1, agent.cfg.simnorm_dim).sum(-1)
    torch.testing.assert_close(groups, torch.ones_like(groups))  # SimNorm on the latent proper
    # padding: the small task's 3 entries, then zeros (what the encoder saw)
    padded = agent.encode(np.array([1, 1, 1, 0, 0], np.float32)[:3], task=1)
    torch.testing.assert_close(padded, z)
    znext = wm.next(z[None], torch.zeros(1, 2))[0]
    torch.testing.assert_close(znext[L:], z[L:])  # the dynamics keep the task


def test_the_policy_and_the_heads_ignore_the_action_entries_a_task_lacks():
    agent = _agent()
    wm = _awake(agent.wm)
    z = agent.encode_batch([np.ones(3, np.float32)] * 4, tasks=[1] * 4)
    sample = wm.pi(z)
    assert torch.all(sample.action[:, 1] == 0) and torch.all(sample.mean[:, 1] == 0)
    a = torch.rand(4, 2) * 2 - 1
    b = a.clone()
    b[:, 1] = torch.rand(4) * 2 - 1  # only the masked entry differs
    for head in (wm.reward_logits, wm.energy_logit, lambda z, a: wm.q_logits(z, a, [0, 1]), wm.next):
        torch.testing.assert_close(head(z, a), head(z, b))
    big = agent.encode_batch([np.ones(5, np.float32)] * 4, tasks=[0] * 4)
    assert not torch.allclose(wm.reward_logits(big, a), wm.reward_logits(big, b))  # the big task reads both
    # the release's scaled entropy counts the task's own action entries: one here, two for the big task
    one, two = wm.pi(z).scaled_entropy, wm.pi(big).scaled_entropy
    assert torch.isfinite(one).all() and torch.isfinite(two).all()


def test_every_network_reads_the_task_embedding():
    agent = _agent()
    wm = _awake(agent.wm)
    obs = np.ones(5, np.float32)
    z0 = agent.encode(obs, task=0)[None]
    a = torch.full((1, 2), 0.3)
    before = [wm.encode(torch.as_tensor(obs)[None], 0), wm.next(z0, a), wm.reward_logits(z0, a),
              wm.energy_logit(z0, a), wm.q_logits(z0, a, [0, 1]), wm.pi(z0).mean]
    with torch.no_grad():
        wm.task_emb.weight[0] = -wm.task_emb.weight[0]
    z1 = z0.clone()
    z1[:, agent.cfg.latent_dim:agent.cfg.latent_dim + 4] = wm.task_emb.weight[0]  # same z, the new embedding
    after = [wm.encode(torch.as_tensor(obs)[None], 0), wm.next(z1, a), wm.reward_logits(z1, a),
             wm.energy_logit(z1, a), wm.q_logits(z1, a, [0, 1]), wm.pi(z1).mean]
    names = ["encoder", "dynamics", "reward", "energy", "Q", "policy"]
    for name, x, y in zip(names, before, after):
        assert not torch.allclose(x, y), f"the {name} does not read the task embedding"


def test_an_update_trains_the_embeddings_of_the_tasks_in_the_batch_only():
    agent = _agent()
    emb = agent.wm.task_emb.weight
    start = emb.detach().clone()
    losses = agent.update(_batch(agent, task=1))
    assert all(np.isfinite(v) for v in losses.values())
    assert torch.equal(emb[0], start[0]) and not torch.equal(emb[1], start[1])
    with torch.no_grad():
        emb[1] = emb[1] * 100  # however far a step moves it, the embedding a network reads has norm <= 1
        assert float(agent.wm.context(1)[:4].norm()) <= 1.0 + 1e-5  # TD-MPC2's max_norm


def test_each_task_has_its_own_discount_in_the_td_target(monkeypatch):
    agent = _agent()
    assert agent.gamma_of(0) == pytest.approx(agent.cfg.gamma_for(500))
    assert agent.gamma_of(1) == pytest.approx(agent.cfg.gamma_for(50))
    assert agent.gamma_of(0) != agent.gamma_of(1)
    targets = []
    original = agent.wm.two_hot.cross_entropy
    monkeypatch.setattr(agent.wm.two_hot, "cross_entropy", lambda logits, target: (
        targets.append(target.detach().clone()), original(logits, target))[1])
    monkeypatch.setattr(agent.wm, "q", lambda z, *a, **k: torch.ones(z.shape[0], 1))  # Q = 1 everywhere
    batch = _batch(agent, task=0)
    batch["task"] = torch.tensor([0, 1, 0, 1, 0, 1])  # a batch that mixes the tasks
    agent.update(batch)
    value_target = targets[1][0].view(agent.cfg.horizon, 6)  # the reward's cross-entropy comes first
    gammas = torch.tensor([agent.gamma_of(int(t)) for t in batch["task"]])
    torch.testing.assert_close(value_target, batch["reward"] + gammas)


def test_one_model_learns_two_tasks_that_disagree_on_the_same_data():
    """The same observations and actions pay +1 in one task and -1 in the other: only a model that
    reads the task can predict both (a model without it settles on their mean, 0)."""
    agent = _agent(batch_size=16, lr=3e-3)
    H = agent.cfg.horizon
    g = torch.Generator().manual_seed(0)
    obs = torch.randn((H + 1, 8, 5), generator=g)
    obs[..., 3:] = 0
    action = torch.rand((H, 8, 2), generator=g) * 2 - 1
    action[..., 1:] = 0
    batch = dict(obs=torch.cat([obs, obs], 1), action=torch.cat([action, action], 1),
                 reward=torch.cat([torch.ones(H, 8), -torch.ones(H, 8)], 1), task=torch.tensor([0] * 8 + [1] * 8))
    for _ in range(500):
        agent.update(batch)
    with torch.no_grad():
        preds = [agent.wm.reward(agent.wm.encode(obs[0], task), action[0]).mean().item() for task in (0, 1)]
    assert preds[0] > 0.8 and preds[1] < -0.8, preds


def test_acting_names_the_task_and_returns_its_action_size(tmp_path):
    agent = _agent()
    a = agent.act(np.ones(3, np.float32), t0=True, eval_mode=True, task="small")
    b = agent.act(np.ones(5, np.float32), t0=True, eval_mode=True, task="big")
    assert a.shape == (1,) and b.shape == (2,)
    with pytest.raises(ObservationError, match="entries .* takes 3 \\(task small\\)"):
        agent.act(np.ones(5, np.float32), t0=True, eval_mode=True, task="small")
    with pytest.raises(ConfigError, match="pass task= \\(big, small\\)"):
        agent.act(np.ones(5, np.float32), t0=True, eval_mode=True)
    with pytest.raises(ConfigError, match="not one of this multi-task agent's: big, small"):
        agent.act(np.ones(5, np.float32), t0=True, eval_mode=True, task="walker-walk")
    for planner in ("diffusion", "mppi", "policy"):
        assert agent.act(np.ones(3, np.float32), t0=True, eval_mode=True, planner=planner, task=1).shape == (1,)


def test_a_multi_task_checkpoint_restores_its_tasks_and_embeddings(tmp_path):
    agent = _agent()
    agent.update(_batch(agent, task=0))
    save_checkpoint(agent, tmp_path / "mt.safetensors")
    loaded = load_checkpoint(tmp_path / "mt.safetensors", device="cpu").agent
    assert loaded.tasks == agent.tasks
    torch.testing.assert_close(loaded.wm.task_emb.weight, agent.wm.task_emb.weight)
    torch.testing.assert_close(loaded.task_gammas, agent.task_gammas)
    obs = np.ones(3, np.float32)
    torch.manual_seed(5)
    first = agent.act(obs, t0=True, eval_mode=True, task=1)
    torch.manual_seed(5)
    np.testing.assert_array_equal(loaded.act(obs, t0=True, eval_mode=True, task=1), first)


def test_a_multi_task_dataset_trains_the_model(tmp_path):
    """EpisodeDataset batches (padded, with task) go straight into the update."""
    rng = np.random.default_rng(0)
    with DatasetWriter(tmp_path / "ds", how="test") as writer:
        for _ in range(3):
            writer.add("big", rng.standard_normal((21, 5)).astype(np.float32),
                       rng.uniform(-1, 1, (20, 2)).astype(np.float32), rng.random(20).astype(np.float32))
            writer.add("small", rng.standard_normal((21, 3)).astype(np.float32),
                       rng.uniform(-1, 1, (20, 1)).astype(np.float32), rng.random(20).astype(np.float32))
    data = EpisodeDataset(tmp_path / "ds")
    assert [t.name for t in data.tasks] == ["big", "small"]
    agent = _agent()
    batch = agent.to_batch(data.sample(8, agent.cfg.horizon))
    assert set(batch["task"].tolist()) <= {0, 1}
    assert all(np.isfinite(v) for v in agent.update(batch).values())


def test_single_task_models_have_no_task_parts():
    agent = MBDPO(make_config("tiny", device="cpu"), 5, 2)
    assert agent.wm.context_dim == 0 and not hasattr(agent.wm, "task_emb")
    assert agent.encode(np.ones(5, np.float32)).shape == (agent.cfg.latent_dim,)
    with pytest.raises(ConfigError, match="single-task"):
        agent.act(np.ones(5, np.float32), t0=True, task=0)
