"""zoo: exact Keras 3 / TensorFlow models with distributed recipes and TF Serving exports.

    import zoo
    zoo.list_models("bert_*")                          # ['bert_base', 'bert_large', 'bert_tiny']
    zoo.model_info("bert_base").params                 # 109482240, checked by a test
    backbone = zoo.create_model("bert_tiny", dropout=0.0)

`python -m zoo list` prints every registered model with its parameters and references.
"""

__version__ = "0.1.0"

from zoo.errors import ZooError  # noqa: E402
from zoo.registry import create_model, list_models, model_info  # noqa: E402

__all__ = ["ZooError", "create_model", "list_models", "model_info", "__version__"]
