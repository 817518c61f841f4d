"""Trains a tiny BERT pretrainer for a few steps with the shared Trainer and saves its weights.

    python mwms_worker.py STRATEGY MODEL_DIR OUT.npz     (TF_CONFIG set for STRATEGY=multi_worker)
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import zoo  # noqa: E402
from zoo.models.bert import BertPretrainer  # noqa: E402
from zoo.training.strategy import from_flag, is_chief  # noqa: E402
from zoo.training.trainer import Trainer  # noqa: E402

TINY = dict(vocabulary_size=40, num_layers=1, num_heads=2, hidden_dim=8, intermediate_dim=16, dropout=0.0,
            max_sequence_length=16)
GLOBAL_BATCH = 8
EVAL_KEYS = ("mlm_accuracy", "nsp_accuracy", "mlm_loss", "nsp_loss")


def examples(n=64, seq=12, predictions=3, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, TINY["vocabulary_size"], size=(n, seq)).astype("int32")
    pos = np.sort(np.stack([rng.choice(np.arange(1, seq - 1), predictions, replace=False) for _ in range(n)]), 1)
    return {"token_ids": ids, "segment_ids": np.zeros_like(ids), "padding_mask": np.ones_like(ids),
            "mask_positions": pos.astype("int32"), "mask_ids": np.take_along_axis(ids, pos, 1).astype("int32"),
            "mask_weights": (rng.random((n, predictions)) > 0.3).astype("float32"),
            "nsp_labels": rng.integers(0, 2, n).astype("int32")}


def main(strategy_name, model_dir, out):
    strategy = from_flag(strategy_name)
    data = examples()

    def dataset_fn(ctx):
        ds = tf.data.Dataset.from_tensor_slices(data).repeat()
        ds = ds.shard(ctx.num_input_pipelines, ctx.input_pipeline_id)
        return ds.batch(ctx.get_per_replica_batch_size(GLOBAL_BATCH), drop_remainder=True)

    held_out = examples(n=21, seed=1)

    def eval_dataset_fn(ctx):  # 21 examples in batches of 4: workers get unequal rows and batch counts
        ds = tf.data.Dataset.from_tensor_slices(held_out)
        return ds.shard(ctx.num_input_pipelines, ctx.input_pipeline_id).batch(4)

    keras.utils.set_random_seed(7)
    with strategy.scope():
        model = BertPretrainer(zoo.create_model("bert_tiny", **TINY))
        model.compile(optimizer=keras.optimizers.AdamW(1e-2, weight_decay=0.01))
    logs = Trainer(model, strategy=strategy, model_dir=model_dir, dataset_fn=dataset_fn,
                   global_batch_size=GLOBAL_BATCH, train_steps=4, checkpoint_every=2, log_every=2,
                   steps_per_loop=2, eval_dataset_fn=eval_dataset_fn, verbose=False).train()
    np.savez(out, replicas=strategy.num_replicas_in_sync, chief=is_chief(strategy), loss=logs["loss"],
             eval=np.array([logs[f"eval/{k}"] for k in EVAL_KEYS]), *model.get_weights())


if __name__ == "__main__":
    main(*sys.argv[1:4])
