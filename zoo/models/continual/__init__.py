"""Continual learning: Deep Generative Replay (registered as dgr, dgr_generator, dgr_critic, dgr_solver in
`dgr_presets`).

Each builder takes `preset` ("mnist", the default, "svhn" or "digits"; see `DGR_PRESETS`) and keyword
overrides of that preset's config.
"""

from zoo.models.continual.dgr_presets import DGR_PRESETS
from zoo.models.continual.dgr_scholar import Scholar
from zoo.models.continual.dgr_solver import DgrSolver
from zoo.models.continual.wgan_critic import WganCritic
from zoo.models.continual.wgan_generator import WganGenerator

__all__ = ["DGR_PRESETS", "DgrSolver", "Scholar", "WganCritic", "WganGenerator"]
