"""Analyses of trained agents: latent trajectories, their projections and structure metrics."""
from .latents import LatentRollouts, collect_latents
from .projection import Projection, project
from .structure import cyclicity, goal_directedness, structure_metrics

__all__ = ["LatentRollouts", "collect_latents", "Projection", "project", "cyclicity", "goal_directedness",
           "structure_metrics"]
