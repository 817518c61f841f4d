"""Helpers shared by the NASNet-A and PNASNet-5 tests: parameter counts and TF-slim's variable shapes."""

import collections
import json
import os

import numpy as np


def trainable(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def total(model):
    return sum(int(np.prod(w.shape)) for w in model.weights)


def slim_shapes(model, name):
    """(ours, TF-slim's) multisets of trainable and moving-variable shapes, TF-slim's from
    tests/models/nas/data/slim_variable_shapes.json: TF-slim's own nasnet/pnasnet definitions built offline
    with tf-slim (1000 classes, 10 for CIFAR; no aux head)."""
    with open(os.path.join(os.path.dirname(__file__), "data", "slim_variable_shapes.json")) as f:
        reference = json.load(f)[name]
    count = lambda variables: dict(collections.Counter("x".join(map(str, v.shape)) for v in variables))  # noqa: E731
    return ((count(model.trainable_weights), count(model.non_trainable_weights)),
            (reference["trainable"], reference["moving"]))
