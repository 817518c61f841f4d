"""BERT pretraining (masked LM + next sentence) under any tf.distribute strategy, then a TF Serving export.

    python recipes/bert_pretrain.py --strategy=mirrored
    python recipes/bert_pretrain.py --config=base --input_files='wiki/*.txt' --vocab_file=vocab.txt \
        --global_batch_size=256 --train_steps=1000000 --jit_compile --mixed_precision=mixed_bfloat16

With no data flags it trains `bert_tiny` on the corpus shipped in the package, with a WordPiece vocabulary
trained on it (saved as <model_dir>/vocab.txt). Stopped and started again with the same flags, it resumes.
"""

import hashlib
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from absl import flags  # noqa: E402

from zoo import flags as zoo_flags  # noqa: E402

zoo_flags.define_common_flags(train_steps=600, global_batch_size=32, learning_rate=1e-3,
                              model_dir="runs/bert_pretrain", export_dir="runs/bert_pretrain/export",
                              checkpoint_every=100, log_every=50)
flags.DEFINE_string("config", "tiny", "Model size: tiny, base or large (the bert_<config> preset).")
flags.DEFINE_float("dropout", 0.1, "Hidden and attention dropout (0.1 in BERT).")
flags.DEFINE_integer("seq_length", 128, "Tokens per example, [CLS] and [SEP]s included (at most 512).")
flags.DEFINE_integer("max_predictions", 20, "Masked positions per example (BERT: 20 for 128, 76 for 512).")
flags.DEFINE_integer("warmup_steps", 60, "Linear warm-up steps before the linear decay to 0.")
flags.DEFINE_float("weight_decay", 0.01, "AdamW weight decay (not applied to biases and layer norms).")
flags.DEFINE_float("clip_norm", 1.0, "Clip the global gradient norm to this (0: off), as the original BERT.")
flags.DEFINE_list("input_files", None, "Text files or globs: one sentence per line, blank line between documents.")
flags.DEFINE_string("tfds_name", None, "A tensorflow-datasets text dataset in --data_dir, e.g. wikipedia/20230601.en.")
flags.DEFINE_string("tfds_text_key", "text", "The text feature of --tfds_name.")
flags.DEFINE_string("tfds_split", "train", "The split of --tfds_name.")
flags.DEFINE_integer("max_documents", None, "Use at most this many documents.")
flags.DEFINE_string("vocab_file", None, "WordPiece vocabulary (one token per line). Default: train one on the data.")
flags.DEFINE_integer("vocab_size", 8000, "Size of the vocabulary trained when --vocab_file is not given.")
flags.DEFINE_integer("dupe_factor", 5, "Passes over the data with different masks, as in the original.")
FLAGS = flags.FLAGS

CONFIGS = ("tiny", "base", "large")


def main(argv):
    del argv
    import keras
    import tensorflow as tf

    from zoo import create_model
    from zoo.data import bert_pretraining, text_sources, wordpiece
    from zoo.errors import ZooError
    from zoo.models.bert import BertPretrainer
    from zoo.models.bert.bert_serving import serving_endpoints
    from zoo.training import precision, strategy as strategies
    from zoo.training.export import export_saved_model
    from zoo.training.schedules import LinearWarmupDecay
    from zoo.training.trainer import Trainer

    if FLAGS.config not in CONFIGS:
        raise ZooError(f"unknown --config={FLAGS.config!r}; choose one of: {', '.join(CONFIGS)}")
    if not 8 <= FLAGS.seq_length <= 512:
        raise ZooError(f"--seq_length={FLAGS.seq_length} must be between 8 and 512 (the position table)")
    if FLAGS.input_files and FLAGS.tfds_name:
        raise ZooError("give either --input_files or --tfds_name, not both")
    if not FLAGS.model_dir:
        raise ZooError("--model_dir is required: checkpoints, logs and the vocabulary are written there")
    if FLAGS.warmup_steps > FLAGS.train_steps:
        raise ZooError(f"--warmup_steps={FLAGS.warmup_steps} exceeds --train_steps={FLAGS.train_steps}")
    precision.set_policy(FLAGS.mixed_precision)
    strategy = strategies.from_flag(FLAGS.strategy, FLAGS.tpu)
    keras.utils.set_random_seed(FLAGS.seed)
    chief = strategies.is_chief(strategy)

    documents = text_sources.load_documents(
        input_files=FLAGS.input_files, tfds_name=FLAGS.tfds_name, tfds_text_key=FLAGS.tfds_text_key,
        tfds_split=FLAGS.tfds_split, data_dir=FLAGS.data_dir, download=FLAGS.download,
        max_documents=FLAGS.max_documents)
    vocab_path = os.path.join(FLAGS.model_dir, "vocab.txt")
    if FLAGS.vocab_file:
        vocabulary = wordpiece.load_vocabulary(FLAGS.vocab_file)
    elif tf.io.gfile.exists(vocab_path):  # resuming: keep the vocabulary the checkpoint was trained with
        vocabulary = wordpiece.load_vocabulary(vocab_path)
    else:
        vocabulary = wordpiece.train_vocabulary(documents, FLAGS.vocab_size)
    if not chief:  # other workers keep a private copy for their throw-away export
        vocab_path = os.path.join(tempfile.mkdtemp(prefix="zoo-vocab-"), "vocab.txt")
    vocab_hash = hashlib.sha1("\n".join(vocabulary).encode("utf-8")).hexdigest()

    examples = bert_pretraining.create_examples(
        documents, vocabulary, FLAGS.seq_length, FLAGS.max_predictions, dupe_factor=FLAGS.dupe_factor,
        seed=FLAGS.seed)
    baseline = bert_pretraining.unigram_baseline(examples)
    if chief:
        print(f"{len(documents)} documents, {len(examples['token_ids'])} examples, vocabulary {len(vocabulary)}, "
              f"{strategy.num_replicas_in_sync} replica(s); unigram MLM accuracy baseline {baseline:.3f}",
              flush=True)

    with strategy.scope():
        backbone = create_model(f"bert_{FLAGS.config}", vocabulary_size=len(vocabulary), dropout=FLAGS.dropout)
        model = BertPretrainer(backbone, clip_norm=FLAGS.clip_norm or None)
        schedule = LinearWarmupDecay(FLAGS.learning_rate, FLAGS.train_steps, warmup_steps=FLAGS.warmup_steps)
        optimizer = keras.optimizers.AdamW(schedule, weight_decay=FLAGS.weight_decay, beta_1=0.9, beta_2=0.999,
                                           epsilon=1e-6)
        optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
        model.compile(optimizer=optimizer)

    config = {
        "model": f"bert_{FLAGS.config}", "vocab_size": len(vocabulary), "vocab_sha1": vocab_hash,
        "dropout": FLAGS.dropout,
        "seq_length": FLAGS.seq_length,
        "max_predictions": FLAGS.max_predictions, "global_batch_size": FLAGS.global_batch_size,
        "mixed_precision": FLAGS.mixed_precision, "seed": FLAGS.seed, "dupe_factor": FLAGS.dupe_factor,
        "data": {"input_files": FLAGS.input_files, "tfds_name": FLAGS.tfds_name, "max_documents": FLAGS.max_documents},
    }
    trainer = Trainer(
        model, strategy=strategy, model_dir=FLAGS.model_dir,
        dataset_fn=lambda ctx: bert_pretraining.make_dataset(examples, FLAGS.global_batch_size, ctx, seed=FLAGS.seed),
        global_batch_size=FLAGS.global_batch_size, train_steps=FLAGS.train_steps,
        checkpoint_every=FLAGS.checkpoint_every, log_every=FLAGS.log_every, jit_compile=FLAGS.jit_compile,
        config=config)
    if not tf.io.gfile.exists(vocab_path):  # an existing one is what config.json's vocab_sha1 checks against
        wordpiece.write_vocabulary(vocabulary, vocab_path)
    logs = trainer.train()
    if chief and logs:
        print(f"step {FLAGS.train_steps}: loss {logs['loss']:.4f}, MLM accuracy {logs['mlm_accuracy']:.3f} "
              f"(unigram baseline {baseline:.3f}), NSP accuracy {logs['nsp_accuracy']:.3f}", flush=True)
    if FLAGS.export_dir:
        path = export_saved_model(FLAGS.export_dir, backbone, serving_endpoints(backbone),
                                  assets={"vocab.txt": vocab_path}, strategy=strategy)
        if chief:
            print(f"exported {path}", flush=True)


if __name__ == "__main__":
    zoo_flags.run(main)
