"""tensorflow-datasets access that never touches the network unless asked to."""

import os

from zoo.errors import ZooError


def load(name, split, data_dir=None, download=False, **kwargs):
    """`tfds.load` that fails at once, with the flag to fix it, when the data is not in `data_dir`.

    tfds' own download path retries for minutes when offline, so it runs only with `download=True`.
    """
    import tensorflow_datasets as tfds

    if data_dir is None and not download:
        raise ZooError(
            f"dataset {name!r} was requested but no --data_dir was given; point --data_dir at a "
            "tensorflow-datasets directory that holds it (or add --download to fetch it)"
        )
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception as e:  # unknown name or config
        raise ZooError(f"tensorflow-datasets has no dataset {name!r}: {str(e).splitlines()[0]}") from None
    if not download and not builder.is_prepared():
        where = os.path.join(data_dir, *name.split("/"))
        raise ZooError(
            f"dataset {name!r} is not present in --data_dir={data_dir} (looked for {where}); prepare it there "
            "with tensorflow-datasets, point --data_dir at a directory that has it, or add --download"
        )
    if download:
        builder.download_and_prepare()
    try:
        return builder.as_dataset(split=split, **kwargs)
    except (ValueError, KeyError) as e:
        raise ZooError(f"dataset {name!r} has no split {split!r}: {str(e).splitlines()[0]}") from None
