"""GAN presets, registered as `discogan`, `discogan_bottleneck`, `discogan_recongan`, `discogan_gan`,
`cyclegan` and `cyclegan_6blocks`: the official sizes; keyword overrides shrink them for quick runs.

    model = zoo.create_model("cyclegan_6blocks", image_size=32, filters=8)
"""

import functools

import numpy as np

from zoo.errors import ZooError
from zoo.models.gan.cyclegan import CycleGAN
from zoo.models.gan.cyclegan_generator import ResnetGenerator
from zoo.models.gan.discogan import DiscoGAN
from zoo.models.gan.discogan_discriminator import DiscoGANDiscriminator
from zoo.models.gan.discogan_generator import DiscoGANGenerator
from zoo.models.gan.patchgan_discriminator import PatchGANDiscriminator
from zoo.registry import Family, register

DISCOGAN = Family(
    "discogan",
    "DiscoGAN: two 64×64 generators and two discriminators, loss variants",
    paper="https://arxiv.org/abs/1703.05192",
    code="https://github.com/SKTBrain/DiscoGAN",
)
CYCLEGAN = Family(
    "cyclegan",
    "CycleGAN: ResNet generators with 9 or 6 blocks, 70×70 PatchGAN discriminators",
    paper="https://arxiv.org/abs/1703.10593",
    code="https://github.com/junyanz/pytorch-CycleGAN-and-pix2pix",
)

# SKTBrain/DiscoGAN: 64x64, 64 filters; `extra_layers=True` adds a 100-unit bottleneck (angle tasks, whose
# script also sets the rates to 0.9/0.9 and matches only the last two discriminator features).
DISCOGAN_PRESETS = {
    "discogan": dict(arch="discogan"),
    "discogan_bottleneck": dict(arch="discogan", bottleneck_units=100),
    "discogan_recongan": dict(arch="recongan"),
    "discogan_gan": dict(arch="gan"),
}

# junyanz/pytorch-CycleGAN-and-pix2pix: resnet_9blocks for 256x256, resnet_6blocks for 128x128.
CYCLEGAN_PRESETS = {
    "cyclegan": dict(num_blocks=9, image_size=256),
    "cyclegan_6blocks": dict(num_blocks=6, image_size=128),
}

_NET_ARGS = ("image_size", "filters")


def _check_keys(name, overrides, allowed):
    unknown = sorted(set(overrides) - set(allowed))
    if unknown:
        raise ZooError(f"{name} has no option(s) {', '.join(unknown)}; it takes: {', '.join(sorted(allowed))}")


def build_discogan(name, **overrides):
    """A `DiscoGAN` with fresh nets; overrides: image_size, filters, bottleneck_units and DiscoGAN args."""
    config = {"image_size": 64, "filters": 64, "bottleneck_units": None, **DISCOGAN_PRESETS[name], **overrides}
    model_args = ("arch", "loss", "gan_weight", "feature_matching_weight", "starting_rate", "default_rate",
                  "gan_curriculum", "update_interval", "weight_decay", "name")
    _check_keys(name, config, _NET_ARGS + ("bottleneck_units",) + model_args)
    nets = {k: config.pop(k) for k in _NET_ARGS}
    units = config.pop("bottleneck_units")
    return DiscoGAN(
        generator_a=DiscoGANGenerator(**nets, bottleneck_units=units, name="generator_a"),
        generator_b=DiscoGANGenerator(**nets, bottleneck_units=units, name="generator_b"),
        discriminator_a=DiscoGANDiscriminator(**nets, name="discriminator_a"),
        discriminator_b=DiscoGANDiscriminator(**nets, name="discriminator_b"),
        **config,
    )


def build_cyclegan(name, **overrides):
    """A `CycleGAN` with fresh nets; overrides: image_size, filters, num_blocks, discriminator_filters,
    discriminator_layers and CycleGAN args."""
    config = {"filters": 64, "discriminator_filters": 64, "discriminator_layers": 3, **CYCLEGAN_PRESETS[name],
              **overrides}
    model_args = ("image_size", "lambda_a", "lambda_b", "lambda_identity", "pool_size", "seed", "name")
    _check_keys(name, config, ("filters", "num_blocks", "discriminator_filters", "discriminator_layers") + model_args)
    g = dict(filters=config.pop("filters"), num_blocks=config.pop("num_blocks"))
    d = dict(filters=config.pop("discriminator_filters"), num_layers=config.pop("discriminator_layers"))
    return CycleGAN(
        generator_a=ResnetGenerator(**g, name="generator_a"),
        generator_b=ResnetGenerator(**g, name="generator_b"),
        discriminator_a=PatchGANDiscriminator(**d, name="discriminator_a"),
        discriminator_b=PatchGANDiscriminator(**d, name="discriminator_b"),
        **config,
    )


def example_inputs(model, batch_size=2, seed=0):
    """A batch {"a", "b"} of random images in [0, 1] at the model's image size, for `model(inputs)`."""
    rng = np.random.default_rng(seed)
    shape = (batch_size, model.image_size, model.image_size, 3)
    return {"a": rng.uniform(size=shape).astype("float32"), "b": rng.uniform(size=shape).astype("float32")}


# name: (trainable parameters of the whole model, of one generator, one line); every preset has two
# generators and two discriminators (the reference's counts, `params_detail`).
_DISCOGAN_METADATA = {
    "discogan": (16_558_848, 5_513_856, "DiscoGAN: both directions, GAN + feature matching + reconstruction"),
    "discogan_recongan": (16_558_848, 5_513_856, "DiscoGAN's RECONGAN baseline: A -> B -> A only"),
    "discogan_gan": (16_558_848, 5_513_856, "DiscoGAN's GAN baseline: A -> B only, no reconstruction"),
    "discogan_bottleneck": (19_838_096, 7_153_480, "DiscoGAN with the 100-unit bottleneck (angle tasks)"),
}
_CYCLEGAN_METADATA = {
    "cyclegan": (28_285_832, 11_378_179, "CycleGAN for 256×256: ResNet generators with 9 blocks"),
    "cyclegan_6blocks": (21_204_872, 7_837_699, "CycleGAN for 128×128: ResNet generators with 6 blocks"),
}

for _name, (_params, _generator, _description) in _DISCOGAN_METADATA.items():
    register(_name, family=DISCOGAN, params=_params, description=_description,
             params_detail={"generator_a": _generator, "discriminator_a": 2_765_568}, small=dict(filters=4),
             example_inputs=example_inputs)(functools.partial(build_discogan, _name))
for _name, (_params, _generator, _description) in _CYCLEGAN_METADATA.items():
    register(_name, family=CYCLEGAN, params=_params, description=_description,
             params_detail={"generator_a": _generator, "discriminator_a": 2_764_737},
             small=dict(image_size=24, filters=2, num_blocks=1, discriminator_filters=2, pool_size=3),
             example_inputs=example_inputs)(functools.partial(build_cyclegan, _name))
