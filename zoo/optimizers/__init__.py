"""Optimizers as Keras 3 optimizers: heavy ball, Nesterov (FGM), OGM and saddle-free Newton."""

from zoo.optimizers.heavy_ball import HeavyBall
from zoo.optimizers.nesterov import Nesterov
from zoo.optimizers.ogm import OGM
from zoo.optimizers.saddle_free_newton import SaddleFreeNewton

__all__ = ["HeavyBall", "Nesterov", "OGM", "SaddleFreeNewton"]
