"""Continual learning: Deep Generative Replay (registered as dgr, dgr_generator, dgr_critic, dgr_solver).

Each builder takes `preset` ("mnist", the default, "svhn" or "digits"; see `DGR_PRESETS`) and keyword
overrides of that preset's config.
"""

from zoo.errors import ZooError
from zoo.models.continual.dgr_presets import DGR_PRESETS
from zoo.models.continual.dgr_scholar import Scholar
from zoo.models.continual.dgr_solver import DgrSolver
from zoo.models.continual.wgan_critic import WganCritic
from zoo.models.continual.wgan_generator import WganGenerator
from zoo.registry import register


def _preset(preset):
    if preset not in DGR_PRESETS:
        raise ZooError(f"unknown DGR preset {preset!r}; choose one of: {', '.join(DGR_PRESETS)}")
    return DGR_PRESETS[preset]


@register("dgr_generator")
def dgr_generator(preset="mnist", **overrides):
    """`WganGenerator` with the preset's config (mnist: 3,582,849 parameters)."""
    return WganGenerator(**{**_preset(preset)["generator"], **overrides})


@register("dgr_critic")
def dgr_critic(preset="mnist", **overrides):
    """`WganCritic` with the preset's config."""
    return WganCritic(**{**_preset(preset)["critic"], **overrides})


@register("dgr_solver")
def dgr_solver(preset="mnist", **overrides):
    """`DgrSolver` with the preset's config (mnist: 6,363,658 parameters)."""
    return DgrSolver(**{**_preset(preset)["solver"], **overrides})


@register("dgr")
def dgr(preset="mnist", with_generator=True, generator=None, critic=None, solver=None, **scholar_args):
    """A `Scholar`: the preset's networks (dicts `generator`, `critic`, `solver` override their configs).

    `with_generator=False` builds a solver-only scholar, enough for the no-replay and exact-replay
    baselines. Other keyword arguments go to `Scholar` (replay_ratio, critic_steps, role, seed, ...).
    """
    config = _preset(preset)
    # The solver is built first, so it starts from the same weights with or without a generator.
    nets = {"solver": DgrSolver(**{**config["solver"], **(solver or {})})}
    if with_generator:
        nets["generator"] = WganGenerator(**{**config["generator"], **(generator or {})})
        nets["critic"] = WganCritic(**{**config["critic"], **(critic or {})})
    return Scholar(**nets, **scholar_args)


__all__ = ["DGR_PRESETS", "DgrSolver", "Scholar", "WganCritic", "WganGenerator"]
