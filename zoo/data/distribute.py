"""How every input pipeline splits its work under `tf.distribute` (one implementation, used by all of them).

A `dataset_fn(input_context)` given to `strategy.distribute_datasets_from_function` runs once per input
pipeline (one per worker): it reads its own shard and batches for ONE replica of its worker.

    ds = shard(records, input_context)                                # disjoint pipelines
    ds = ds.shuffle(buffer, seed=stream_seed(seed, pipeline_id(input_context)))
    ds = ds.batch(per_replica_batch_size(global_batch_size, input_context), drop_remainder=True)
"""

import numpy as np

from zoo.errors import ZooError


def shard(ds, input_context):
    """`ds` cut to this input pipeline's share (every n-th element), unchanged for one pipeline or none."""
    if input_context is not None and input_context.num_input_pipelines > 1:
        ds = ds.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
    return ds


def pipeline_id(input_context):
    """This input pipeline's index (0 without a context or with one pipeline)."""
    if input_context is None or input_context.num_input_pipelines <= 1:
        return 0
    return input_context.input_pipeline_id


def per_replica_batch_size(global_batch_size, input_context=None):
    """`global_batch_size` split over the replicas of `input_context`, with one-line errors naming the flag."""
    if global_batch_size < 1:
        raise ZooError(f"--global_batch_size must be positive, got {global_batch_size}")
    if input_context is None:
        return global_batch_size
    replicas = input_context.num_replicas_in_sync
    if global_batch_size % replicas:
        raise ZooError(f"--global_batch_size={global_batch_size} must be a multiple of the {replicas} replicas; use "
                       f"e.g. {max(1, global_batch_size // replicas) * replicas}")
    return global_batch_size // replicas


def stream_seed(seed, pipeline):
    """The seed of input pipeline `pipeline`'s shuffle and augmentation: `seed` itself for pipeline 0 (and
    single-pipeline runs), a derived one for the others; below 2**31 - 1, so that seed + 1 is an int32."""
    if pipeline:
        seed = int(np.random.SeedSequence([seed, pipeline]).generate_state(1)[0])
    return seed % (2 ** 31 - 2)
