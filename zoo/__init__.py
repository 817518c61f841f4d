"""zoo: exact Keras 3 / TensorFlow models with distributed recipes and TF Serving exports."""

__version__ = "0.1.0"

from zoo.errors import ZooError  # noqa: E402
from zoo.registry import create_model, list_models  # noqa: E402

__all__ = ["ZooError", "create_model", "list_models", "__version__"]
