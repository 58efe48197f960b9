"""Shared fixtures: small, fast objects built from the `tiny` preset."""
from __future__ import annotations

import os

import pytest
import torch

import mbdpo_lab  # noqa: F401  (chooses MUJOCO_GL before anything imports mujoco)
from mbdpo_lab.agent import MBDPO
from mbdpo_lab.config import make_config

torch.set_num_threads(int(os.environ.get("MBDPO_TEST_THREADS", "1")))


@pytest.fixture
def tiny_cfg():
    return make_config("tiny", device="cpu")


@pytest.fixture
def tiny_agent(tiny_cfg):
    torch.manual_seed(0)
    return MBDPO(tiny_cfg, obs_dim=5, act_dim=2)
