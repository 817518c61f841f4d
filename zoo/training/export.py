"""The one exporter: SavedModels in TF Serving's layout, written atomically.

    path = export_saved_model(
        "/tmp/export/bert", model,
        endpoints={"serving_default": (serve_fn, [tf.TensorSpec([None, None], tf.int32, name="token_ids")])},
        assets={"vocab.txt": "/tmp/run/vocab.txt"},
    )
    # -> /tmp/export/bert/1/saved_model.pb, variables/, assets/vocab.txt

TF Serving watches `<export_dir>` and serves the highest integer version. The model is written into a
hidden temporary directory beside the versions and renamed into place only when complete, so a crash never
leaves a half-written version, and an existing version is never overwritten.
"""

import os
import shutil
import tempfile
import uuid

import keras
import tensorflow as tf

from zoo.errors import ZooError
from zoo.paths import check_directory
from zoo.training.strategy import is_chief


def export_saved_model(export_dir, model, endpoints, assets=None, version=None, strategy=None):
    """Writes `<export_dir>/<version>/` and returns its path.

    Under MultiWorkerMirroredStrategy call it on every worker with `strategy`: reading synchronised
    variables may need all workers, so the others write a throw-away copy to a temporary directory.

    Args:
        export_dir: the model's base path for TF Serving (`--model_base_path`).
        model: a built Keras layer/model, or a list of them, whose variables the endpoints use.
        endpoints: dict name -> (fn, input_signature); `serving_default` is required. `input_signature`
            is a list of `tf.TensorSpec` (or of dicts of them) as for `tf.function`; name the specs, they
            become the signature's input names. Return a dict of tensors to name the outputs.
        assets: dict file name -> local path, copied into the SavedModel's `assets/`.
        version: integer version; default one more than the highest already in `export_dir`.
        strategy: the training strategy, in multi-worker runs.
    """
    if strategy is not None and not is_chief(strategy):
        scratch = tempfile.mkdtemp(prefix="zoo-worker-export-")
        try:
            return export_saved_model(scratch, model, endpoints, assets, version)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    if "serving_default" not in endpoints:
        raise ValueError("endpoints must include 'serving_default'")
    _check_finite(model)
    check_export_dir(export_dir)
    version = next_version(export_dir) if version is None else int(version)
    final = os.path.join(export_dir, str(version))
    if tf.io.gfile.exists(final):
        raise ZooError(f"export version {final} already exists; it is left untouched (choose another version)")

    archive = keras.export.ExportArchive()
    for layer in model if isinstance(model, (list, tuple)) else [model]:
        archive.track(layer)
    for name, (fn, signature) in endpoints.items():
        archive.add_endpoint(name, fn, input_signature=signature)
    asset_dir = None
    if assets:
        # Assets are copied from a private staging folder so the SavedModel records stable file names.
        asset_dir = os.path.join(export_dir, f".assets-{uuid.uuid4().hex}")
        tf.io.gfile.makedirs(asset_dir)
        tracked = {}
        for filename, path in assets.items():
            if not tf.io.gfile.exists(path):
                raise ZooError(f"asset {path} does not exist")
            staged = os.path.join(asset_dir, filename)
            tf.io.gfile.copy(path, staged, overwrite=True)
            tracked[filename] = tf.saved_model.Asset(staged)
        archive._tf_trackable.assets = tracked  # saved with the model; copied into assets/

    tmp = os.path.join(export_dir, f".tmp-{version}-{uuid.uuid4().hex}")
    try:
        archive.write_out(tmp, verbose=False)
        try:
            tf.io.gfile.rename(tmp, final, overwrite=False)
        except tf.errors.OpError as e:
            raise ZooError(f"could not move the export into {final} ({e.message}); another export may have "
                           "taken that version at the same time") from None
    finally:
        for path in (tmp, asset_dir):
            if path and tf.io.gfile.exists(path):
                tf.io.gfile.rmtree(path)
    return final


def check_export_dir(export_dir):
    """Creates `export_dir` or raises a one-line `ZooError` when it cannot hold exports. (Recipes check
    their directories before any work in `zoo.flags`; this guards the exporter's own callers.)"""
    check_directory("export_dir", export_dir)
    try:
        tf.io.gfile.makedirs(export_dir)
        probe = os.path.join(export_dir, f".write-test-{uuid.uuid4().hex}")
        with tf.io.gfile.GFile(probe, "w") as f:
            f.write("")
        tf.io.gfile.remove(probe)
    except (tf.errors.OpError, OSError) as e:
        message = getattr(e, "message", None) or str(e)
        raise ZooError(f"--export_dir={export_dir} is not writable ({message.splitlines()[0][:200]}); choose "
                       "another --export_dir") from None


def _check_finite(model):
    """Refuses to publish a model with NaN or infinite weights."""
    bad = [v.path for layer in (model if isinstance(model, (list, tuple)) else [model]) for v in layer.weights
           if "float" in str(v.dtype) and not bool(tf.reduce_all(tf.math.is_finite(tf.convert_to_tensor(v))))]
    if bad:
        raise ZooError(f"the model has non-finite weights ({', '.join(bad[:3])}{', ...' if len(bad) > 3 else ''}); "
                       "nothing was exported. Retrain from an earlier checkpoint with a lower learning rate")


def next_version(export_dir):
    """One more than the highest integer version directory in `export_dir` (1 when there is none)."""
    if not tf.io.gfile.isdir(export_dir):
        return 1
    versions = [int(n.rstrip("/")) for n in tf.io.gfile.listdir(export_dir) if n.rstrip("/").isdigit()]
    return max(versions, default=0) + 1
