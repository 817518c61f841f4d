"""Test set-up: two logical CPUs (for a real 2-replica MirroredStrategy) before TensorFlow initialises."""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import tensorflow as tf  # noqa: E402

try:
    tf.config.set_logical_device_configuration(
        tf.config.list_physical_devices("CPU")[0], [tf.config.LogicalDeviceConfiguration()] * 2
    )
except RuntimeError:  # already initialised by another conftest; tests that need 2 devices check
    pass


import pytest  # noqa: E402


@pytest.fixture(scope="session")
def mirrored():
    """The one 2-replica MirroredStrategy over the 2 logical CPUs, shared by every test.

    Several MirroredStrategy objects in one process reuse collective instance keys, so a second one fails
    with "Shape mismatch in the collective instance"; tests must use this fixture instead of making their own.
    """
    if len(tf.config.list_logical_devices("CPU")) < 2:
        pytest.skip("needs the 2 logical CPUs set up in tests/conftest.py")
    from zoo.training.strategy import from_flag

    return from_flag("mirrored")
