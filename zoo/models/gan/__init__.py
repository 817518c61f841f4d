"""Unpaired image-to-image GANs: DiscoGAN (`discogan`, `discogan_bottleneck`, `discogan_recongan`,
`discogan_gan`) and CycleGAN (`cyclegan`, `cyclegan_6blocks`)."""

import functools

from zoo.models.gan.cyclegan import CycleGAN
from zoo.models.gan.cyclegan_generator import ReflectionPadding2D, ResnetGenerator
from zoo.models.gan.discogan import DiscoGAN
from zoo.models.gan.discogan_discriminator import DiscoGANDiscriminator
from zoo.models.gan.discogan_generator import DiscoGANGenerator
from zoo.models.gan.gan_presets import CYCLEGAN_PRESETS, DISCOGAN_PRESETS, build_cyclegan, build_discogan
from zoo.models.gan.image_pool import ImagePool
from zoo.models.gan.patchgan_discriminator import PatchGANDiscriminator
from zoo.registry import register

for _name in DISCOGAN_PRESETS:
    register(_name)(functools.partial(build_discogan, _name))
for _name in CYCLEGAN_PRESETS:
    register(_name)(functools.partial(build_cyclegan, _name))

__all__ = [
    "CycleGAN",
    "DiscoGAN",
    "DiscoGANDiscriminator",
    "DiscoGANGenerator",
    "ImagePool",
    "PatchGANDiscriminator",
    "ReflectionPadding2D",
    "ResnetGenerator",
]
