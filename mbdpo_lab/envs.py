"""DMControl suite tasks by ``domain-task`` name, with action repeat and flat float32 observations.

Names use dashes (``finger-turn-easy``) and ``cup`` for ball_in_cup. Actions are in [-1, 1] and
scaled to the task's bounds; rewards over the repeated steps are summed, so a 500-step episode of
a DMControl task returns 0..1000.

Goal-directed manipulation comes from dm_control's own manipulation suite (a Kinova Jaco arm with state
features: ``jaco-reach-site``, ``jaco-reach-duplo``, ``jaco-lift-brick``). MetaWorld, the paper's suite,
pins mujoco 3.3.0, which dm-control 1.0.50 cannot use; these install with what we have. Their episodes
last 10 s (``natural_episode_length``: 125 agent steps at action repeat 2), and they report ``success``:
the arm is at its goal (the task's reward is 1) when the episode ends.

dm_control's reach pays almost nothing beyond 15 cm from the target (a Gaussian tolerance of 5 cm width
around the 5 cm target), so an agent finds reward only by chance. ``jaco-reach-site-shaped`` is the same task
with MetaWorld's reach reward instead: a long-tailed tolerance of the hand-to-target distance, so every
step says whether the hand came closer. Its margin is fixed (``REACH_MARGIN``, about the median start),
so the reward is a function of the state: MetaWorld's margin, the distance from a fixed start to the
target, is one too, while the distance from this task's random start would not be. It is 1 inside the
target, as dm_control's, so ``success`` means the same in both.
``jaco-reach-site-hand`` is the shaped reach with MetaWorld's kind of action as well: a 3-D velocity of
the hand (`hand_control`) instead of nine joint velocities.
"""
from __future__ import annotations

import difflib
from functools import lru_cache

import numpy as np

from . import rendering
from .errors import UnknownTaskError

rendering.configure_gl()

DOMAIN_ALIASES = {"ball_in_cup": "cup"}
MANIPULATION_TASKS = {"jaco-reach-site": "reach_site_features", "jaco-reach-duplo": "reach_duplo_features",
                      "jaco-lift-brick": "lift_brick_features", "jaco-reach-site-shaped": "reach_site_features",
                      "jaco-reach-site-hand": "reach_site_features"}
SHAPED_TASKS = {"jaco-reach-site-shaped", "jaco-reach-site-hand"}  # reward: MetaWorld's reach shaping (module doc)
HAND_CONTROL_TASKS = {"jaco-reach-site-hand"}  # action: a hand velocity, as MetaWorld's (`hand_control`)
TARGET_RADIUS = 0.05  # dm_control's reach target (metres): reward 1 inside it
REACH_MARGIN = 0.25  # the shaped reward's margin (m): about the median start (27 cm; 7-48 cm over 100 resets)


def is_manipulation(task: str) -> bool:
    return resolve_task(task)[0] == "manipulation"


def natural_episode_length(task: str, action_repeat: int = 2) -> int:
    """Agent steps in one of the task's own episodes: 1000 simulator steps for the DMControl suite,
    250 control steps (10 s) for the manipulation tasks, divided by the action repeat."""
    return (250 if is_manipulation(task) else 1000) // action_repeat


@lru_cache(maxsize=1)
def _task_table() -> dict[str, tuple[str, str]]:
    from dm_control import suite

    table = {}
    for domain, task in suite.ALL_TASKS:
        name = f"{DOMAIN_ALIASES.get(domain, domain)}-{task}".replace("_", "-")
        table[name] = (domain, task)
    table.update({name: ("manipulation", env_name) for name, env_name in MANIPULATION_TASKS.items()})
    return table


def list_tasks() -> list[str]:
    """All task names (the DMControl suite and the manipulation tasks), sorted."""
    return sorted(_task_table())


def canonical_task(name: str) -> str:
    """The task's name as `list_tasks` spells it (``ball_in_cup-catch`` -> ``cup-catch``)."""
    table = _task_table()
    key = name.strip().lower().replace("_", "-").replace("ball-in-cup", "cup")
    lowered = {k.lower(): k for k in table}
    if key in lowered:
        return lowered[key]
    close = difflib.get_close_matches(key, list(table), n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise UnknownTaskError(f"unknown task {name!r}.{hint} Valid tasks: {', '.join(list_tasks())}")


def resolve_task(name: str) -> tuple[str, str]:
    """``domain-task`` -> (dm_control domain, task); an unknown name lists close and valid names."""
    return _task_table()[canonical_task(name)]


class DMControlEnv:
    """A DMControl task as a small gym-like env: reset() -> obs, step(a) -> (obs, reward, done)."""

    def __init__(self, task: str, seed: int = 0, action_repeat: int = 2, episode_length: int = 500):
        from dm_control import suite

        domain, task_name = resolve_task(task)
        self.name = task
        self.action_repeat, self.episode_length = action_repeat, episode_length
        self.manipulation = domain == "manipulation"
        self.shaped = canonical_task(task) in SHAPED_TASKS
        self.success: bool | None = None if not self.manipulation else False  # at the goal now (manipulation)
        with _quiet_model_compiler():
            if self.manipulation:
                from dm_control import manipulation

                self._env = manipulation.load(task_name, seed=seed)
            else:
                self._env = suite.load(domain, task_name, task_kwargs={"random": seed},
                                       environment_kwargs={"flat_observation": False})
        spec = self._env.action_spec()
        self._low, self._high = spec.minimum.astype(np.float32), spec.maximum.astype(np.float32)
        self.act_dim = int(spec.shape[0])
        self._hand = None
        if canonical_task(task) in HAND_CONTROL_TASKS:
            from .hand_control import HandVelocityControl

            self._hand, self.act_dim = HandVelocityControl(self._env), 3
        self.obs_dim = int(sum(int(np.prod(s.shape)) for s in self._env.observation_spec().values()))
        self._t = 0

    @staticmethod
    def _flatten(observation) -> np.ndarray:
        return np.concatenate([np.asarray(v, np.float32).ravel() for v in observation.values()])

    def reset(self) -> np.ndarray:
        self._t = 0
        if self.manipulation:
            self.success = False
            with _quiet_model_compiler():  # its initialiser's inverse kinematics retries, and logs each miss
                return self._flatten(self._env.reset().observation)
        return self._flatten(self._env.reset().observation)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool]:
        a = np.clip(np.asarray(action, np.float32), -1.0, 1.0)
        scaled = self._low + (a + 1.0) * 0.5 * (self._high - self._low) if self._hand is None else None
        reward = 0.0
        for _ in range(self.action_repeat):
            ts = self._env.step(scaled if self._hand is None else self._hand.control(a))
            step_reward = self._shaped_reward() if self.shaped else (ts.reward or 0.0)
            reward += step_reward
            if ts.last():
                break
        if self.manipulation:  # the last control step's reward is 1 exactly when the goal is reached
            self.success = bool(step_reward >= 1.0 - 1e-6)
        self._t += 1
        done = self._t >= self.episode_length or ts.last()
        return self._flatten(ts.observation), float(reward), bool(done)

    def hand_to_target(self) -> float:
        """Distance (m) from the Jaco hand's tool centre point to the reach target."""
        physics, task = self._env.physics, self._env.task
        hand = physics.bind(task.hand.tool_center_point).xpos
        return float(np.linalg.norm(hand - physics.bind(task._target).xpos))  # dm_control keeps it private

    def _shaped_reward(self) -> float:
        from dm_control.utils import rewards

        return float(rewards.tolerance(self.hand_to_target(), bounds=(0.0, TARGET_RADIUS), margin=REACH_MARGIN,
                                       sigmoid="long_tail"))

    def reseed(self, seed: int) -> "DMControlEnv":
        """Draw the following episodes' initial states from ``seed`` (as a new env with that seed would)."""
        (self._env.random_state if self.manipulation else self._env.task.random).seed(seed)
        return self

    def copy(self, seed: int = 0) -> "DMControlEnv":
        """Another instance of the same task and settings (for episodes run in lock-step)."""
        return make_env(self.name, seed=seed, action_repeat=self.action_repeat, episode_length=self.episode_length)

    def branch_step(self, action: np.ndarray) -> tuple[np.ndarray, float]:
        """Try ``action`` from the current state and come back: (next observation, reward)."""
        obs, rewards, _ = self.branch(np.asarray(action)[None])
        return obs[1], float(rewards[0])

    def branch(self, actions: np.ndarray, frame_size: tuple[int, int] | None = None
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Try a sequence of actions [H, A] from the current state and come back: observations [H+1]
        (the current one first), rewards [H] and, with ``frame_size``, frames [H+1] of what happened.

        The full MuJoCo integration state and the step counters are saved and restored, so the
        episode continues exactly as if the branch had not happened. A branch that reaches the end
        of the episode stops there (fewer rewards).
        """
        import mujoco

        if self.manipulation:
            raise NotImplementedError(f"{self.name}: trying actions and coming back needs a DMControl suite task "
                                      "(the manipulation tasks buffer their observations)")
        physics, sig = self._env.physics, mujoco.mjtState.mjSTATE_INTEGRATION
        state = physics.get_state(sig)
        counters = (self._env._step_count, self._env._reset_next_step, self._t)
        obs = [self._flatten(self._env.task.get_observation(physics))]
        rewards, frames = [], [self.render(*frame_size)] if frame_size else []
        try:
            for action in actions:
                o, r, done = self.step(action)
                obs.append(o)
                rewards.append(r)
                if frame_size:
                    frames.append(self.render(*frame_size))
                if done:
                    break
        finally:
            physics.set_state(state, sig)
            physics.forward()
            self._env._step_count, self._env._reset_next_step, self._t = counters
        return (np.asarray(obs, np.float32), np.asarray(rewards, np.float64),
                np.asarray(frames, np.uint8) if frame_size else None)

    def physics_state(self) -> np.ndarray:
        """MuJoCo's physical state now (time, positions, velocities, actuator activations): enough to
        render this instant again (`render_state`), a fifth of the size of the full integration state."""
        import mujoco

        return self._env.physics.get_state(mujoco.mjtState.mjSTATE_FULLPHYSICS).astype(np.float64)

    def render_state(self, state: np.ndarray, height: int = 240, width: int = 320) -> np.ndarray:
        """The frame of a recorded `physics_state`; the episode's own state is restored afterwards."""
        import mujoco

        physics, sig = self._env.physics, mujoco.mjtState.mjSTATE_INTEGRATION
        saved = physics.get_state(sig)
        try:
            physics.set_state(np.asarray(state, np.float64), mujoco.mjtState.mjSTATE_FULLPHYSICS)
            physics.forward()
            return self.render(height, width)
        finally:
            physics.set_state(saved, sig)
            physics.forward()

    def render(self, height: int = 240, width: int = 320, camera: int | str = 0) -> np.ndarray:
        """An RGB frame [height, width, 3] uint8; a GL failure names the packages to install."""
        try:
            return self._env.physics.render(height=height, width=width, camera_id=camera)
        except Exception as exc:  # noqa: BLE001
            if isinstance(exc, (ValueError, IndexError)) and "camera" in str(exc).lower():
                raise
            raise rendering.RenderingUnavailable(f"{rendering.HINT}\n(underlying error: {exc})") from exc

    def random_action(self, rng: np.random.Generator) -> np.ndarray:
        return rng.uniform(-1, 1, self.act_dim).astype(np.float32)

    def close(self) -> None:
        """Free MuJoCo's native data and GL contexts now (a long notebook session makes many envs)."""
        if self._env is not None:
            self._env.physics.free()
            self._env = None

    def __enter__(self) -> "DMControlEnv":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# Environments beside the training one are seeded with the run's seed plus an offset, so their initial
# states never coincide with training's: the trainer's evaluation, `mbdpo-lab eval` and the anchoring
# measurements, and `mbdpo-lab latents`. Named once here; every caller uses these.
EVAL_SEED_OFFSET = 10_000
MEASURE_SEED_OFFSET = 20_000
LATENTS_SEED_OFFSET = 30_000


class _quiet_model_compiler:
    """Hide two absl warnings of dm_control's own: MuJoCo 3.17 deprecates the ``settotalmass`` attribute
    that its walker and cheetah files use, and the Jaco tasks' initialiser logs every inverse-kinematics
    attempt that misses before one fits. They are theirs to change, not the user's, and in a notebook their
    red text reads as a failure. Other messages pass."""

    def __enter__(self):
        import logging

        self._logger = logging.getLogger("absl")
        self._logger.addFilter(self._drop)

    def __exit__(self, *exc):
        self._logger.removeFilter(self._drop)

    @staticmethod
    def _drop(record) -> bool:
        message = record.getMessage()
        return "settotalmass" not in message and "Failed to converge after" not in message


def make_env(task: str, seed: int = 0, action_repeat: int = 2, episode_length: int = 500) -> DMControlEnv:
    return DMControlEnv(task, seed=seed, action_repeat=action_repeat, episode_length=episode_length)
