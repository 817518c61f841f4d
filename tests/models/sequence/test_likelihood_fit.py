"""LikelihoodFit: the loss is the global NLL per observed step, for the Kalman and the HMM layers alike."""

import keras
import numpy as np

from zoo.layers import CategoricalEmission, HiddenMarkovModel, LinearGaussianStateSpace
from zoo.models.sequence import LikelihoodFit


def check(layer, x, mask):
    model = LikelihoodFit(layer)
    model.compile(optimizer=keras.optimizers.SGD(0.01))
    want = -float(np.sum(layer.log_likelihood(x, mask=mask))) / float(np.sum(~mask))
    losses = [float(model.train_step({"x": x, "mask": mask})["loss"]) for _ in range(3)]
    np.testing.assert_allclose(losses[0], want, rtol=1e-5)
    assert losses[-1] < losses[0]


def test_hmm_and_kalman_losses_are_nll_per_observed_step():
    rng = np.random.default_rng(0)
    mask = np.zeros((3, 12), bool)
    mask[1, 7:] = True
    mask[2, 3] = True
    check(HiddenMarkovModel(2, CategoricalEmission(3)), rng.integers(0, 3, size=(3, 12)).astype("int32"), mask)
    check(LinearGaussianStateSpace(2, 1), rng.normal(size=(3, 12, 1)).astype("float32"), mask)
