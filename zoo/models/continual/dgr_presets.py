"""Deep Generative Replay presets, registered as `dgr`, `dgr_generator`, `dgr_critic` and `dgr_solver`.

Each builder takes `preset` ("mnist", the default, "svhn" or "digits"; see `DGR_PRESETS`) and keyword
overrides of that preset's config. "mnist" and "svhn" are the reference's (kuc2477/pytorch-deep-generative-
replay `main.py`) for 32×32 inputs with 1 and 3 channels; "digits" is a small config for scikit-learn's 8×8
digits, the offline default.

    scholar = zoo.create_model("dgr", preset="digits")
    solver = zoo.create_model("dgr_solver")            # mnist: 6,363,658 parameters
"""

import numpy as np

from zoo.errors import ZooError
from zoo.models.continual.dgr_scholar import Scholar
from zoo.models.continual.dgr_solver import DgrSolver
from zoo.models.continual.wgan_critic import WganCritic
from zoo.models.continual.wgan_generator import WganGenerator
from zoo.registry import Family, register

DGR = Family(
    "dgr",
    "Deep Generative Replay scholar: WGAN-GP generator and critic plus a solver, presets `mnist` (32×32, the "
    "default), `svhn`, `digits`; no official code, follows an unofficial PyTorch one",
    paper="https://arxiv.org/abs/1705.08690",
    code="https://github.com/kuc2477/pytorch-deep-generative-replay",
)

DGR_PRESETS = {
    # Generator 3,582,849, critic 2,759,105 (true flatten), solver 6,363,658 trainable parameters.
    "mnist": dict(
        generator=dict(image_size=32, image_channels=1, noise_dim=100, channels=64, num_upsamples=3),
        critic=dict(image_size=32, image_channels=1, channels=64, num_downsamples=3),
        solver=dict(image_size=32, image_channels=1, num_classes=10, depth=5, channels=1024, reducing_layers=3),
    ),
    # MNIST padded and coloured to 32×32×3, and SVHN: generator 3,584,003, critic 2,761,153, solver 6,365,962.
    "svhn": dict(
        generator=dict(image_size=32, image_channels=3, noise_dim=100, channels=64, num_upsamples=3),
        critic=dict(image_size=32, image_channels=3, channels=64, num_downsamples=3),
        solver=dict(image_size=32, image_channels=3, num_classes=10, depth=5, channels=1024, reducing_layers=3),
    ),
    # 8×8×1 digits: the same layer pattern with two up/down-sampling stages and narrow layers, so that a
    # task trains in seconds on a CPU: generator 49,825, critic 164,705, solver 98,186 parameters. (A
    # 16-channel critic often never reaches the gradient-norm target and the generator collapses.)
    "digits": dict(
        generator=dict(image_size=8, image_channels=1, noise_dim=32, channels=16, num_upsamples=2),
        critic=dict(image_size=8, image_channels=1, channels=32, num_downsamples=2),
        solver=dict(image_size=8, image_channels=1, num_classes=10, depth=4, channels=128, reducing_layers=2),
    ),
}


def _preset(preset):
    if preset not in DGR_PRESETS:
        raise ZooError(f"unknown DGR preset {preset!r}; choose one of: {', '.join(DGR_PRESETS)}")
    return DGR_PRESETS[preset]


def image_inputs(model, batch_size=2, seed=0):
    """Random images in [0, 1] for a solver, critic or scholar."""
    net = getattr(model, "solver", model)
    shape = (batch_size, net.image_size, net.image_size, net.image_channels)
    return np.random.default_rng(seed).uniform(size=shape).astype("float32")


def noise_inputs(generator, batch_size=2, seed=0):
    """Noise z ~ N(0, 1)·0.1 (the reference's scale) for a `WganGenerator`."""
    return (0.1 * np.random.default_rng(seed).normal(size=(batch_size, generator.noise_dim))).astype("float32")


_SMALL = dict(preset="digits")


@register("dgr", family=DGR, params=12_705_612, small=_SMALL, example_inputs=image_inputs,
          description="DGR scholar (mnist): dgr_generator + dgr_critic + dgr_solver; call() runs the solver")
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


@register("dgr_generator", family=DGR, params=3_582_849, small=_SMALL, example_inputs=noise_inputs,
          description="DGR's WGAN-GP generator (mnist): noise -> 32×32×1 images")
def dgr_generator(preset="mnist", **overrides):
    """`WganGenerator` with the preset's config."""
    return WganGenerator(**{**_preset(preset)["generator"], **overrides})


@register("dgr_critic", family=DGR, params=2_759_105, small=_SMALL, example_inputs=image_inputs,
          description="DGR's WGAN-GP critic (mnist), flattening its true 3×3 map")
def dgr_critic(preset="mnist", **overrides):
    """`WganCritic` with the preset's config."""
    return WganCritic(**{**_preset(preset)["critic"], **overrides})


@register("dgr_solver", family=DGR, params=6_363_658, small=_SMALL, example_inputs=image_inputs,
          description="DGR's solver (mnist): 5-deep CNN classifier")
def dgr_solver(preset="mnist", **overrides):
    """`DgrSolver` with the preset's config."""
    return DgrSolver(**{**_preset(preset)["solver"], **overrides})
