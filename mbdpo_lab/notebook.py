"""What every lesson notebook needs in its first cells: rendering check, fast mode, agents, video.

``lab = setup()`` renders one frame (MuJoCo's GL backend is chosen when `mbdpo_lab` is imported,
before mujoco) and stops the notebook with the fix when GL is missing; ``lab.fast`` is True when
the environment variable ``MBDPO_FAST=1`` is set (CI runs every notebook that way), and
``lab.budget(normal, fast)`` picks the budget for the mode.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from . import rendering


@dataclass
class Lab:
    fast: bool
    gl_backend: str

    def budget(self, normal, fast):
        """``fast`` in fast mode (MBDPO_FAST=1), else ``normal``."""
        return fast if self.fast else normal

    def agent(self, name: str):
        """A shipped pretrained agent by name (checksum verified)."""
        from .checkpoint import load_pretrained

        return load_pretrained(name).agent  # the GPU when there is one


def _warm_plotting_imports() -> None:
    """Import plotly's widget machinery in the background: its first import pulls nbformat and jsonschema,
    whose IRI grammar alone takes 3 s to build on an idle 2-core laptop (10 s or more on a busy one), and
    a lesson's first figure would otherwise wait for it after the cells before it."""
    import threading

    def work() -> None:
        try:
            import plotly.graph_objects as go

            go.FigureWidget  # noqa: B018 - the attribute access is the (lazy) import
        except Exception:  # noqa: BLE001 - only a head start: the cell that needs it imports it again
            pass

    threading.Thread(target=work, name="warm-plotly-imports", daemon=True).start()


def setup(quiet: bool = False) -> Lab:
    fast = os.environ.get("MBDPO_FAST", "0") not in ("", "0", "false", "False")
    try:
        rendering.check_rendering()
    except rendering.RenderingUnavailable as exc:
        raise SystemExit(str(exc)) from None
    _warm_plotting_imports()
    lab = Lab(fast=fast, gl_backend=os.environ.get("MUJOCO_GL", "?"))
    if not quiet:
        mode = "FAST mode (MBDPO_FAST=1): tiny budgets" if fast else "normal mode"
        print(f"rendering OK (MUJOCO_GL={lab.gl_backend}); {mode}")
    return lab


def show_mp4(data: bytes, width: int = 288) -> None:
    """Show mp4 bytes as an inline, looping video (a shipped lesson video needs no re-encoding)."""
    import base64

    from IPython.display import HTML, display

    src = base64.b64encode(data).decode("ascii")
    display(HTML(f'<video width="{width}" controls loop autoplay muted playsinline '
                 f'src="data:video/mp4;base64,{src}"></video>'))


def rollout_frames(agent, episodes_steps: int = 200, size: int = 192, seed: int = 0, planner: str | None = None):
    """Run the agent (no exploration noise) and return (frames [T, size, size, 3], total reward)."""
    import torch

    from .envs import make_env
    from .episodes import run_episode

    cfg = agent.cfg
    gen = torch.Generator(device=agent.device).manual_seed(seed)
    with make_env(cfg.task, seed=seed, action_repeat=cfg.action_repeat, episode_length=cfg.episode_length) as env:
        episode = run_episode(agent, env, gen, planner=planner, max_steps=episodes_steps, frame_size=size)
    return episode.frames, episode.total_return
