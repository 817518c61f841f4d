"""The one check of a directory a run will write to (recipes' flags, the model-dir lock, the exporter), and the
one way small files (vocabularies, metadata) are written so that no reader sees half of one."""

import os

from zoo.errors import ZooError


def check_directory(flag, path):
    """Raises `ZooError` when `path` cannot become a writable directory (a file is in the way, or the
    nearest existing parent is not writable), so a blocked path is found before training, not after.
    Creates nothing; remote paths (gs://, ...) are left to their file system."""
    if not path or "://" in path:
        return
    path = os.path.abspath(os.path.expanduser(path))
    if os.path.exists(path) and not os.path.isdir(path):
        raise ZooError(f"--{flag}={path} is a file, not a directory; choose another --{flag}")
    parent = path
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise ZooError(f"--{flag}={path} cannot be made: {parent} is a file; choose another --{flag}")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ZooError(f"--{flag}={path} is not writable ({parent} is not writable by this user); choose another "
                       f"--{flag}")


def write_file_atomically(path, data):
    """Writes `data` (str as UTF-8, or bytes) to `path` through a temporary name beside it (`<path>.tmp-<hex>`)
    and a rename, creating the directory, so a reader never sees half of it."""
    import uuid

    import tensorflow as tf

    directory = os.path.dirname(path)
    if directory:
        tf.io.gfile.makedirs(directory)
    tmp = f"{path}.tmp-{uuid.uuid4().hex}"
    with tf.io.gfile.GFile(tmp, "wb") as f:
        f.write(data.encode("utf-8") if isinstance(data, str) else data)
    tf.io.gfile.rename(tmp, path, overwrite=True)


def write_json_atomically(path, value):
    """`value` as indented JSON (keys sorted, a final newline) written by `write_file_atomically`; returns
    `path`. Recipes write their results files with it."""
    import json

    write_file_atomically(path, json.dumps(value, indent=2, sort_keys=True) + "\n")
    return path
