"""Registered GAN configs: the official sizes; keyword overrides shrink them for quick runs."""

from zoo.errors import ZooError
from zoo.models.gan.cyclegan import CycleGAN
from zoo.models.gan.cyclegan_generator import ResnetGenerator
from zoo.models.gan.discogan import DiscoGAN
from zoo.models.gan.discogan_discriminator import DiscoGANDiscriminator
from zoo.models.gan.discogan_generator import DiscoGANGenerator
from zoo.models.gan.patchgan_discriminator import PatchGANDiscriminator

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
