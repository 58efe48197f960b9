"""The Jaco arm driven by where its hand should go, as MetaWorld's arm is: an action is a hand velocity.

dm_control's Jaco takes joint velocities (six arm joints, three fingers). MetaWorld, the paper's suite,
moves the gripper in Cartesian space instead, so a reach is a 3-D decision at every step and not an
inverse-kinematics problem the agent must learn first. `HandVelocityControl` gives the Jaco the same
kind of action: a = (vx, vy, vz) in [-1, 1]^3, scaled to `HAND_SPEED`, turned into the arm's joint
velocities at every control step by damped least squares on the hand's position Jacobian
(q̇ = Jᵀ (J Jᵀ + λ² I)⁻¹ v), clipped to the joints' limits; the fingers are held still. The hand's
orientation is left free.
"""
from __future__ import annotations

import numpy as np

HAND_SPEED = 0.2  # m/s of the tool centre point at |a| = 1 (the arm's joints top out at ~0.6-0.8 rad/s)
DAMPING = 0.05  # λ of the damped least squares: bounded joint speeds near singular poses


class HandVelocityControl:
    """Joint-velocity commands for a Cartesian hand velocity, for one dm_control manipulation env (whose
    physics may be rebuilt at a reset: the indices are looked up again for each new one)."""

    def __init__(self, env):
        self._env = env
        self._bound_to = None

    def _bind(self, physics) -> None:
        task = self._env.task
        self._site = int(physics.bind(task.hand.tool_center_point).element_id)
        self._dofs = np.asarray(physics.bind(task._arm.joints).dofadr, int)  # dm_control keeps the arm private
        actuators = physics.bind(task._arm.actuators)
        self._actuators = np.asarray(actuators.element_id, int)
        self._low, self._high = actuators.ctrlrange[:, 0].copy(), actuators.ctrlrange[:, 1].copy()
        self._jacp = np.zeros((3, physics.model.nv))
        self._bound_to = physics

    def control(self, action: np.ndarray) -> np.ndarray:
        """The ctrl vector (every actuator of the model) that moves the hand at ``action`` x HAND_SPEED."""
        import mujoco

        physics = self._env.physics
        if physics is not self._bound_to:
            self._bind(physics)
        v = np.clip(np.asarray(action, np.float64)[:3], -1.0, 1.0) * HAND_SPEED
        mujoco.mj_jacSite(physics.model.ptr, physics.data.ptr, self._jacp, None, self._site)
        jac = self._jacp[:, self._dofs]
        qdot = jac.T @ np.linalg.solve(jac @ jac.T + DAMPING ** 2 * np.eye(3), v)
        ctrl = np.zeros(physics.model.nu)
        ctrl[self._actuators] = np.clip(qdot, self._low, self._high)
        return ctrl
