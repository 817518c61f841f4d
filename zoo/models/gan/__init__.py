"""Unpaired image-to-image GANs: DiscoGAN (`discogan`, `discogan_bottleneck`, `discogan_recongan`,
`discogan_gan`) and CycleGAN (`cyclegan`, `cyclegan_6blocks`), registered in `gan_presets`."""

from zoo.models.gan.cyclegan import CycleGAN
from zoo.models.gan.cyclegan_generator import ReflectionPadding2D, ResnetGenerator
from zoo.models.gan.discogan import DiscoGAN
from zoo.models.gan.discogan_discriminator import DiscoGANDiscriminator
from zoo.models.gan.discogan_generator import DiscoGANGenerator
from zoo.models.gan.gan_presets import CYCLEGAN_PRESETS, DISCOGAN_PRESETS  # noqa: F401  (registers the presets)
from zoo.models.gan.image_pool import ImagePool
from zoo.models.gan.patchgan_discriminator import PatchGANDiscriminator

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
