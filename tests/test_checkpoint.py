import json
import os
import struct

import numpy as np
import pytest
import torch

from mbdpo_lab.checkpoint import CheckpointError, file_sha256, load_checkpoint, load_pretrained, save_checkpoint
from mbdpo_lab.config import ConfigError


def _act(agent, seed):
    gen = torch.Generator().manual_seed(seed)
    obs = np.linspace(-1, 1, 5).astype(np.float32)
    return agent.act(obs, t0=True, eval_mode=False, generator=gen)


def test_round_trip_gives_identical_actions(tiny_agent, tmp_path):
    with torch.no_grad():
        for p in tiny_agent.wm.parameters():
            p.add_(0.01 * torch.randn_like(p))
    path = save_checkpoint(tiny_agent, tmp_path / "a.safetensors", {"env_step": 123, "eval_return": 4.5})
    ckpt = load_checkpoint(path)
    assert ckpt.meta["env_step"] == 123 and ckpt.meta["task"] == tiny_agent.cfg.task
    assert ckpt.meta["code_version"]
    # the device it was saved on is a record; it loads where the user is (auto)
    assert ckpt.meta["saved_on"] == "cpu" and ckpt.agent.cfg.device == "auto"
    assert ckpt.agent.cfg.replace(device=tiny_agent.cfg.device) == tiny_agent.cfg
    np.testing.assert_array_equal(_act(ckpt.agent, 7), _act(tiny_agent, 7))
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]


def test_optimizer_state_round_trip(tiny_agent, tmp_path):
    H, B = tiny_agent.cfg.horizon, 8
    batch = dict(obs=torch.randn(H + 1, B, 5), action=torch.rand(H, B, 2) * 2 - 1, reward=torch.rand(H, B))
    tiny_agent.update(batch)
    path = save_checkpoint(tiny_agent, tmp_path / "b", include_optimizer=True)
    ckpt = load_checkpoint(path)
    assert ckpt.has_optimizer
    s0, s1 = tiny_agent.optim.state_dict()["state"], ckpt.agent.optim.state_dict()["state"]
    assert s0.keys() == s1.keys()
    torch.testing.assert_close(s0[0]["exp_avg"], s1[0]["exp_avg"])


def test_flipped_byte_is_refused(tiny_agent, tmp_path):
    path = save_checkpoint(tiny_agent, tmp_path / "c.safetensors")
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF  # inside the tensor data
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="integrity"):
        load_checkpoint(path)


def test_truncated_file_is_refused(tiny_agent, tmp_path):
    path = save_checkpoint(tiny_agent, tmp_path / "d.safetensors")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(path)


def test_edited_config_is_refused(tiny_agent, tmp_path):
    path = save_checkpoint(tiny_agent, tmp_path / "e.safetensors")
    raw = path.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    cfg = json.loads(header["__metadata__"]["config"])
    cfg["eta"] = 0.5  # a quiet change of behaviour
    header["__metadata__"]["config"] = json.dumps(cfg, sort_keys=True)
    new = json.dumps(header).encode()
    new += b" " * ((8 - len(new) % 8) % 8)
    path.write_bytes(struct.pack("<Q", len(new)) + new + raw[8 + n:])
    with pytest.raises(CheckpointError, match="integrity"):
        load_checkpoint(path)


def test_missing_file_and_foreign_file(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope.safetensors")
    from safetensors.torch import save_file

    save_file({"x": torch.zeros(2)}, str(tmp_path / "foreign.safetensors"))
    with pytest.raises(CheckpointError, match="not an mbdpo-lab checkpoint"):
        load_checkpoint(tmp_path / "foreign.safetensors")


def test_architecture_override_mismatch_is_refused(tiny_agent, tmp_path):
    path = save_checkpoint(tiny_agent, tmp_path / "f.safetensors")
    with pytest.raises(ConfigError, match="mlp_dim cannot be changed when loading"):
        load_checkpoint(path, overrides={"mlp_dim": 48})
    with pytest.raises(ConfigError, match="task cannot be changed .* task=cartpole-swingup"):
        load_checkpoint(path, overrides=["task=walker-walk"])
    # acting knobs can be changed when loading
    assert load_checkpoint(path, overrides=["eta=0"]).agent.cfg.eta == 0.0
    with pytest.raises(CheckpointError, match="is a directory"):
        load_checkpoint(tmp_path)


@pytest.mark.parametrize("trained_on", ["cuda", "cuda:0", "cuda:1", "cpu"])
def test_a_checkpoint_loads_where_the_user_is_whatever_it_was_trained_on(tiny_agent, tmp_path, trained_on):
    tiny_agent.cfg.device = trained_on  # as if trained there (cuda:1: a second GPU this machine may lack)
    path = save_checkpoint(tiny_agent, tmp_path / "gpu.safetensors")
    agent = load_checkpoint(path).agent
    here = f"cuda:{torch.cuda.current_device()}" if torch.cuda.is_available() else "cpu"
    assert str(agent.device) == here  # auto, resolved to an explicit device
    assert str(load_checkpoint(path, device="cpu").agent.device) == "cpu"
    assert str(load_checkpoint(path, overrides=["device=cpu"]).agent.device) == "cpu"


def test_pretrained_registry_checks_name_and_sha(tiny_agent, tmp_path):
    path = save_checkpoint(tiny_agent, tmp_path / "toy-agent.safetensors")
    manifest = {"agents": {"toy-agent": {"file": path.name, "sha256": file_sha256(path), "task": "x", "eta": 0.01}}}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    assert load_pretrained("toy-agent", directory=tmp_path).agent.cfg.replace(device="cpu") == tiny_agent.cfg
    with pytest.raises(CheckpointError, match="Available: toy-agent"):
        load_pretrained("toy-agnet", directory=tmp_path)
    manifest["agents"]["toy-agent"]["sha256"] = "0" * 64
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointError, match="damaged or replaced"):
        load_pretrained("toy-agent", directory=tmp_path)


def test_acting_only_checkpoint_is_smaller_and_acts_the_same(tiny_agent, tmp_path):
    full = save_checkpoint(tiny_agent, tmp_path / "full.safetensors")
    small = save_checkpoint(tiny_agent, tmp_path / "small.safetensors", acting_only=True)
    assert small.stat().st_size < full.stat().st_size
    agent = load_checkpoint(small).agent
    np.testing.assert_array_equal(_act(agent, 3), _act(tiny_agent, 3))
    for p, tp in zip(agent.wm.q_heads.parameters(), agent.wm.target_q_heads.parameters()):
        torch.testing.assert_close(p, tp)
