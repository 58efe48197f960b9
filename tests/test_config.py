import re
import tomllib
from pathlib import Path

import pytest

from mbdpo_lab.config import MODEL_SIZES, PRESETS, Config, ConfigError, field_doc, make_config

ROOT = Path(__file__).resolve().parent.parent


def test_presets_and_model_sizes():
    for name in PRESETS:
        cfg = make_config(name)
        assert cfg.preset == name
    paper = make_config("paper")
    assert (paper.num_samples, paper.num_levels, paper.num_elites, paper.num_pi_trajs) == (512, 20, 64, 24)
    assert (paper.horizon, paper.temperature, paper.eta, paper.batch_size) == (3, 0.5, 0.01, 256)
    assert paper.gamma == pytest.approx(0.99) and paper.num_seed_steps == 2500
    for size, dims in MODEL_SIZES.items():
        cfg = make_config("paper", model_size=size)
        assert all(getattr(cfg, k) == v for k, v in dims.items())


def test_overrides_from_strings_and_kwargs():
    cfg = make_config("cpu", overrides=["eta=0", "num_samples=64", "planner_bf16=true", "task=reacher-easy"])
    assert cfg.eta == 0.0 and cfg.num_samples == 64 and cfg.planner_bf16 is True and cfg.task == "reacher-easy"
    assert make_config("paper", model_size=19, mlp_dim=333).mlp_dim == 333


def test_unknown_key_lists_close_matches():
    with pytest.raises(ConfigError, match="did you mean num_samples"):
        make_config("paper", overrides=["num_sample=3"])
    with pytest.raises(ConfigError, match="unknown preset"):
        make_config("fast")


def test_invalid_values_are_refused():
    for bad in (["num_samples=0"], ["num_elites=1000"], ["eta=-1"], ["num_samples=abc"], ["planner=foo"]):
        with pytest.raises(ConfigError):
            make_config("paper", overrides=bad)
    with pytest.raises(ConfigError, match="use_score_net=true"):
        make_config("cpu", overrides=["score_coef=1"])  # would weight a loss of a network never built
    with pytest.raises(ConfigError, match="never drops old ones"):
        make_config("cpu", overrides=["variant=lab", "steps=2000", "buffer_size=1000"])


def test_round_trip_and_docs():
    cfg = make_config("tiny", eta=0.3)
    assert Config.from_dict(cfg.to_dict()) == cfg
    assert "anchor" in field_doc("eta")


def test_configs_saved_before_the_energy_rule_option_keep_the_rule_they_were_trained_with():
    cfg = make_config("cpu")
    assert cfg.energy_negatives == "smooth"
    legacy = cfg.to_dict()
    del legacy["energy_negatives"]  # a checkpoint header written before the option existed
    assert Config.from_dict(legacy).energy_negatives == "hardest"


def _names(specs):
    return sorted(re.split(r"[<>=!~\[ ]", s, maxsplit=1)[0].lower() for s in specs)


def test_environment_yml_lists_the_same_dependencies_as_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    deps = list(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        deps += extra
    yml = (ROOT / "environment.yml").read_text()
    pip_section = yml.split("- pip:")[1]
    listed = [line.strip()[2:] for line in pip_section.splitlines() if line.strip().startswith("- ")]
    assert _names(listed) == sorted(set(_names(deps)))  # an extra may repeat another's package
