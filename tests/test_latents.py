"""Structure metrics on synthetic paths with known answers, and projections."""
import numpy as np
import pytest

from mbdpo_lab.analysis import LatentRollouts, cyclicity, goal_directedness, project
from limits import HANG_S


def _embed(path2d, dim=64, seed=0):
    rng = np.random.default_rng(seed)
    basis, _ = np.linalg.qr(rng.standard_normal((dim, path2d.shape[1])))
    return path2d @ basis.T


def noisy_circle(T=300, period=40, noise=0.05, seed=0):
    t = np.arange(T)
    xy = np.stack([np.cos(2 * np.pi * t / period), np.sin(2 * np.pi * t / period)], 1)
    return _embed(xy, seed=seed) + noise * np.random.default_rng(seed + 1).standard_normal((T, 64)) / 8


def noisy_line(T=200, noise=0.05, seed=0):
    xy = np.stack([np.linspace(0, 3, T), np.zeros(T)], 1)
    return _embed(xy, seed=seed) + noise * np.random.default_rng(seed + 1).standard_normal((T, 64)) / 8


def random_walk(T=300, seed=0):
    return np.cumsum(np.random.default_rng(seed).standard_normal((T, 64)) * 0.1, axis=0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_circle_is_cyclic_with_right_period(seed):
    m = cyclicity(noisy_circle(period=40, seed=seed))
    assert m["cyclicity"] > 0.7 and m["period"] == pytest.approx(40, abs=1)
    assert m["recurrence"] > 0.01
    assert goal_directedness(noisy_circle(seed=seed))["goal_directedness"] < 0.2


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_line_is_goal_directed_and_not_cyclic(seed):
    z = noisy_line(seed=seed)
    g = goal_directedness(z)
    assert g["goal_directedness"] > 0.8 and g["approach"] > 0.9
    assert cyclicity(z)["cyclicity"] < 0.2


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_loop_seen_fewer_than_four_times_is_not_a_cycle(seed):
    # a loop travelled barely twice in the episode (a swing-up that passes its start state again
    # much later): fewer than four periods, so not a cycle; a faster loop on the same path counts
    once = noisy_circle(T=300, period=140, seed=seed)
    assert cyclicity(once)["cyclicity"] < 0.3
    assert cyclicity(noisy_circle(T=300, period=60, seed=seed))["cyclicity"] > 0.7


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_walk_scores_low_on_both(seed):
    z = random_walk(seed=seed)
    assert cyclicity(z)["cyclicity"] < 0.3
    assert goal_directedness(z)["goal_directedness"] < 0.3


def _rollouts():
    latents = [noisy_circle(T=61, seed=0).astype(np.float32), noisy_line(T=41, seed=1).astype(np.float32)]
    rng = np.random.default_rng(0)
    imagined = [np.stack([z[:-1], z[:-1] + 0.01 * rng.standard_normal(z[:-1].shape)], 1).astype(np.float32)
                for z in latents]
    return LatentRollouts(task="synthetic", latents=latents, imagined=imagined,
                          rewards=[np.zeros(60, np.float32), np.ones(40, np.float32)],
                          actions=[np.zeros((60, 1), np.float32), np.zeros((40, 1), np.float32)])


@pytest.mark.parametrize("method", ["pca", "umap"])
def test_projection_shapes_determinism_and_shared_coordinates(method):
    ro = _rollouts()
    p = project(ro, method=method, dims=2, seed=0, progress=False)
    assert [r.shape for r in p.real] == [(61, 2), (41, 2)]
    assert [im.shape for im in p.imagined] == [(60, 2, 2), (40, 2, 2)]
    assert project(ro, method=method, dims=2, seed=0, progress=False) is p  # cached: no refit
    ro2 = LatentRollouts(**{**ro.__dict__, "latents": [z.copy() for z in ro.latents]})
    p2 = project(ro2, method=method, dims=2, seed=0, progress=False, n_neighbors=10) if method == "umap" \
        else None
    if method == "pca":
        # imagined step 0 equals the real latent, so it lands on the same 2-D point
        np.testing.assert_allclose(p.imagined[0][:, 0], p.real[0][:-1], atol=1e-4)
    else:
        p3 = project(LatentRollouts(**{**ro.__dict__}), method="umap", dims=2, seed=0, progress=False,
                     n_neighbors=10)
        np.testing.assert_allclose(p2.real[0], p3.real[0])  # same seed, same data -> same layout
        # imagined points that coincide with real latents land near them in the fitted embedding
        spread = np.ptp(np.concatenate(p.real), axis=0).max()
        err = np.linalg.norm(p.imagined[0][:, 0] - p.real[0][:-1], axis=1)
        assert np.median(err) < 0.1 * spread


def test_rollouts_save_load(tmp_path):
    ro = _rollouts()
    path = ro.save(tmp_path / "lat.npz")
    back = LatentRollouts.load(path)
    assert back.task == "synthetic" and back.num_episodes == 2
    np.testing.assert_array_equal(back.imagined[1], ro.imagined[1])


def test_collect_latents_from_agent_and_cli(tmp_path):
    import json
    import subprocess
    import sys

    from mbdpo_lab.agent import MBDPO
    from mbdpo_lab.analysis import collect_latents
    from mbdpo_lab.checkpoint import save_checkpoint
    from mbdpo_lab.config import make_config
    from mbdpo_lab.envs import make_env

    cfg = make_config("tiny", task="reacher-easy", device="cpu")
    env = make_env(cfg.task, seed=0, episode_length=cfg.episode_length)
    agent = MBDPO(cfg, env.obs_dim, env.act_dim)
    ro = collect_latents(agent, env, episodes=2, frames=True, frame_size=32, max_steps=12)
    assert [z.shape for z in ro.latents] == [(13, cfg.latent_dim)] * 2
    assert ro.imagined[0].shape == (12, cfg.horizon + 1, cfg.latent_dim)
    np.testing.assert_allclose(ro.imagined[0][:, 0], ro.latents[0][:-1], atol=1e-6)  # branches start at z_t
    assert ro.frames[0].shape == (13, 32, 32, 3)

    ckpt = save_checkpoint(agent, tmp_path / "agent.safetensors")
    out = tmp_path / "lat"
    proc = subprocess.run([sys.executable, "-m", "mbdpo_lab.cli", "latents", "--checkpoint", str(ckpt),
                           "--episodes", "2", "--max-steps", "15", "--method", "pca", "--out", str(out)],
                          capture_output=True, text=True, timeout=HANG_S)
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["points"] == 32 and len(summary["metrics"]) == 2
    for name in ("latents.npz", "projection.npz", "projection.html", "projection.png", "metrics.json"):
        assert (out / name).stat().st_size > 0
    assert LatentRollouts.load(out / "latents.npz").num_points == 32


def test_latent_explorer_widget_reads_cached_projection():
    from mbdpo_lab.widgets.latent_explorer import LatentExplorer

    ro = _rollouts()
    ro.frames = [np.zeros((61, 8, 8, 3), np.uint8), np.full((41, 8, 8, 3), 200, np.uint8)]
    ex = LatentExplorer({"synthetic": ro}, method="pca")
    proj = ex.projection()
    assert len(ex.figure.data) == 5  # 2 paths + 2 imagined overlays + the time marker
    np.testing.assert_allclose(ex.figure.data[0].x, proj.real[0][:, 0])
    ex.episode.value = 1
    ex.time.value = 7
    marker = ex.figure.data[-1]
    np.testing.assert_allclose([marker.x[0], marker.y[0]], proj.real[1][7])
    assert ex.frame.value[:4] == b"\x89PNG"
    assert ex.projection() is proj  # moving in time did not refit
    ex.color_by.value = "reward"
    np.testing.assert_allclose(ex.figure.data[0].marker.color[:-1], ro.rewards[0])
    ex.connect.value = False
    assert ex.figure.data[0].mode == "markers" and ex.figure.data[1].mode == "lines"  # branches stay lines
    ex.dims.value = 3
    assert ex.figure.data[0].type == "scatter3d"
    assert "cyclicity" in ex.metrics.value


def test_a_latent_view_exports_as_standalone_html_and_png(tmp_path):
    from mbdpo_lab.widgets.latent_explorer import LatentExplorer

    ex = LatentExplorer({"synthetic": _rollouts()}, method="pca")
    ex.color_by.value = "reward"
    ex.save_dir.value = str(tmp_path / "views")
    ex.save_button.click()
    html_path, png_path = tmp_path / "views" / "synthetic-pca-2d.html", tmp_path / "views" / "synthetic-pca-2d.png"
    text = html_path.read_text()
    assert "<script src" not in text and "Plotly.newPlot" in text  # plotly inlined: opens offline
    assert png_path.read_bytes()[:4] == b"\x89PNG" and "saved" in ex.saved.value
    assert '"title":{"text":"reward"}' in text  # the view as shown (coloured by reward), not a fixed figure
    ex.color_by.value = "time"
    again, _ = ex.export(tmp_path / "time")
    assert '"title":{"text":"time step"}' in again.read_text() and '"title":{"text":"reward"}' not in again.read_text()
