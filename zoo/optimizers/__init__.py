"""Optimizers as Keras 3 optimizers: heavy ball, Nesterov (FGM), OGM and saddle-free Newton.

`SaddleFreeNewton` needs the loss, so a model trained with it through `fit` or `zoo.training.Trainer`
opts in: `SecondOrderSequential([...])`, or a model class with `SecondOrderTraining` first in its bases.
"""

from zoo.optimizers.heavy_ball import HeavyBall
from zoo.optimizers.nesterov import Nesterov
from zoo.optimizers.ogm import OGM
from zoo.optimizers.saddle_free_newton import SaddleFreeNewton, SecondOrderSequential, SecondOrderTraining

__all__ = ["HeavyBall", "Nesterov", "OGM", "SaddleFreeNewton", "SecondOrderSequential", "SecondOrderTraining"]
