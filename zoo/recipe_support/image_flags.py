"""The flags that choose image data, declared once for `recipes/image_classify.py` and
`recipes/automl_search.py` (imports nothing heavy: recipes declare flags before TensorFlow loads).

    PARAMS, CHECKS = image_data_flags()
    SPEC = zoo_flags.declare(*zoo_flags.common(...), *PARAMS, ..., checks=[*CHECKS, ...])
"""

from zoo.flags import Enum, Float, Int, String

DATASETS = ("embedded", "folder", "cifar10", "cifar100", "imagenet2012", "imagenette")


def image_data_flags():
    """`(params, checks)`: --dataset, --image_dir, --validation_fraction, --image_size and their checks."""
    params = (
        Enum("dataset", "embedded", DATASETS, "embedded (offline shapes), a tensorflow-datasets name in "
             "--data_dir, or folder (--image_dir)."),
        String("image_dir", None, "Folder of <class>/*.jpg|png images (or train/<class>, validation/<class>)."),
        Float("validation_fraction", 0.1, "Share of each class of --image_dir held out when it has no "
              "validation/.", at_least=0, below=1),
        Int("image_size", None, "Input side; default 32 for embedded and CIFAR, 224 otherwise.", at_least=32),
    )
    checks = [
        lambda hp: None if not (hp.image_dir and hp.dataset not in ("embedded", "folder")) else
        f"give either --image_dir or --dataset={hp.dataset}, not both",
        lambda hp: None if hp.image_dir or hp.dataset != "folder" else "--dataset=folder needs --image_dir",
    ]
    return params, checks
