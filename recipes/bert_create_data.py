"""BERT pretraining data: text files or a tensorflow-datasets corpus -> sharded TFRecord files, as the original
`create_pretraining_data.py` makes them (same examples, draw for draw), streamed in bounded memory.

    python recipes/bert_create_data.py --input_files='wiki/*.txt' --output_dir=/data/bert128 \
        --seq_length=128 --max_predictions=20 --num_shards=64 --num_workers=4 --eval_fraction=0.01
    python recipes/bert_pretrain.py --train_files='/data/bert128/*.tfrecord' --vocab_file=/data/bert128/vocab.txt

Without --vocab_file a WordPiece vocabulary is trained on the first --vocab_documents documents. Either way the
vocabulary is saved as <output_dir>/vocab.txt, beside the shards and their metadata.json.
"""

import itertools

from absl import flags

from zoo import flags as zoo_flags

flags.DEFINE_list("input_files", None, "Text files or globs: one sentence per line, blank line between documents.")
flags.DEFINE_string("tfds_name", None, "A tensorflow-datasets text dataset in --data_dir, e.g. wikipedia/20230601.en.")
flags.DEFINE_string("tfds_text_key", "text", "The text feature of --tfds_name.")
flags.DEFINE_string("tfds_split", "train", "The split of --tfds_name.")
flags.DEFINE_string("data_dir", None, "tensorflow-datasets directory holding --tfds_name.")
flags.DEFINE_bool("download", False, "Let tensorflow-datasets download and prepare a missing dataset.")
flags.DEFINE_integer("max_documents", None, "Use at most this many documents.")
flags.DEFINE_string("output_dir", None, "Where the shards, vocab.txt and metadata.json are written (required).")
flags.DEFINE_string("vocab_file", None, "WordPiece vocabulary (one token per line). Default: train one on the data.")
flags.DEFINE_integer("vocab_size", 8000, "Size of the vocabulary trained when --vocab_file is not given.")
flags.DEFINE_integer("vocab_documents", 20000, "Documents (the first ones) a missing vocabulary is trained on.")
flags.DEFINE_integer("seq_length", 128, "Tokens per example, [CLS] and [SEP]s included.")
flags.DEFINE_integer("max_predictions", 20, "Masked positions per example (BERT: 20 for 128, 76 for 512).")
flags.DEFINE_integer("dupe_factor", 5, "Passes over the data with different masks, as in the original.")
flags.DEFINE_float("short_seq_prob", 0.1, "Probability of aiming at a shorter sequence, as in the original.")
flags.DEFINE_float("masked_lm_prob", 0.15, "Fraction of tokens to predict, as in the original.")
flags.DEFINE_integer("num_shards", 16, "Training shards (examples are dealt round-robin over them).")
flags.DEFINE_integer("num_workers", 1, "Processes that tokenise and make examples.")
flags.DEFINE_integer("seed", 12345, "Seed of the example-making random generators (the original's default).")
flags.DEFINE_float("eval_fraction", 0.0, "Fraction of documents held out for <output_dir>/eval/ shards.")
flags.DEFINE_integer("num_eval_shards", 1, "Shards of the held-out split.")
flags.DEFINE_integer("chunk_mb", 4, "Megabytes of text made into examples at a time (memory bound per process).")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    import os

    from zoo.data import bert_shard_format, bert_shards, text_sources, wordpiece
    from zoo.errors import ZooError

    if not FLAGS.output_dir:
        raise ZooError("--output_dir is required: the shards, vocab.txt and metadata.json are written there")
    if bert_shard_format.read_metadata(FLAGS.output_dir) is not None:  # before any slow work
        raise ZooError(f"--output_dir={FLAGS.output_dir} already holds complete shards "
                       f"({bert_shard_format.METADATA_FILE}); choose another --output_dir or delete that one")
    if FLAGS.chunk_mb < 1:
        raise ZooError(f"--chunk_mb must be at least 1, got {FLAGS.chunk_mb}")
    source = dict(input_files=FLAGS.input_files, tfds_name=FLAGS.tfds_name, tfds_text_key=FLAGS.tfds_text_key,
                  tfds_split=FLAGS.tfds_split, data_dir=FLAGS.data_dir, download=FLAGS.download,
                  max_documents=FLAGS.max_documents)
    if not FLAGS.input_files and not FLAGS.tfds_name:
        print("no --input_files or --tfds_name: using the embedded default corpus", flush=True)
    if FLAGS.vocab_file:
        vocabulary = wordpiece.load_vocabulary(FLAGS.vocab_file)
    else:
        if FLAGS.vocab_documents < 1:
            raise ZooError(f"--vocab_documents must be at least 1, got {FLAGS.vocab_documents}")
        sample = list(itertools.islice(text_sources.iter_documents(**source), FLAGS.vocab_documents))
        vocabulary = wordpiece.train_vocabulary(sample, FLAGS.vocab_size)
        print(f"trained a {len(vocabulary)}-token vocabulary on {len(sample)} documents", flush=True)
        del sample
    metadata = bert_shards.write_pretraining_shards(
        source, vocabulary, FLAGS.output_dir, seq_length=FLAGS.seq_length, max_predictions=FLAGS.max_predictions,
        dupe_factor=FLAGS.dupe_factor, seed=FLAGS.seed, num_shards=FLAGS.num_shards, num_workers=FLAGS.num_workers,
        eval_fraction=FLAGS.eval_fraction, num_eval_shards=FLAGS.num_eval_shards,
        short_seq_prob=FLAGS.short_seq_prob, masked_lm_prob=FLAGS.masked_lm_prob, chunk_bytes=FLAGS.chunk_mb << 20)
    out = FLAGS.output_dir
    summary = ", ".join(f"{split} {metadata['examples'][split]:,} examples from {metadata['documents'][split]:,} "
                        "documents" for split in metadata["examples"])
    print(f"wrote {summary} to {out}", flush=True)
    command = (f"python recipes/bert_pretrain.py --train_files='{os.path.join(out, metadata['train_files'])}' "
               f"--vocab_file={os.path.join(out, 'vocab.txt')} --seq_length={FLAGS.seq_length} "
               f"--max_predictions={FLAGS.max_predictions}")
    if metadata["eval_files"]:
        command += f" --eval_files='{os.path.join(out, metadata['eval_files'])}'"
    print(f"train with: {command}", flush=True)


if __name__ == "__main__":
    zoo_flags.run(main)
