"""BERT pretraining data: text files or a tensorflow-datasets corpus -> sharded TFRecord files, as the original
`create_pretraining_data.py` makes them (same examples, draw for draw), streamed in bounded memory.

    python recipes/bert_create_data.py --input_files='wiki/*.txt' --output_dir=/data/bert128 \
        --seq_length=128 --max_predictions=20 --num_shards=64 --num_workers=4 --eval_fraction=0.01
    python recipes/bert_pretrain.py --train_files='/data/bert128/*.tfrecord' --vocab_file=/data/bert128/vocab.txt

    python recipes/bert_create_data.py --tokenizer=sentencepiece --corpus=ko --output_dir=/data/ko128 --whole_word_mask

Without --vocab_file a vocabulary of kind --tokenizer (WordPiece, or SentencePiece in KoBERT's layout) is trained
on the first --vocab_documents documents. Either way the vocabulary is saved as <output_dir>/vocab.txt or
<output_dir>/spiece.model, beside the shards and their metadata.json.
"""

from zoo import flags as zoo_flags
from zoo.flags import FREE, Bool, Enum, Float, Int, List, String

SPEC = zoo_flags.declare(
    List("input_files", None, "Text files or globs: one sentence per line, blank line between documents."),
    String("tfds_name", None, "A tensorflow-datasets text dataset in --data_dir, e.g. wikipedia/20230601.en."),
    String("tfds_text_key", "text", "The text feature of --tfds_name."),
    String("tfds_split", "train", "The split of --tfds_name."),
    String("data_dir", None, "tensorflow-datasets directory holding --tfds_name."),
    Bool("download", False, "Let tensorflow-datasets download and prepare a missing dataset."),
    Int("max_documents", None, "Use at most this many documents.", at_least=1),
    String("output_dir", None, "Where the shards, vocab.txt and metadata.json are written.",
           required="the shards, vocab.txt and metadata.json are written there"),
    Enum("corpus", "en", ("en", "ko"), "Embedded corpus used without --input_files/--tfds_name (ko: Korean)."),
    Enum("tokenizer", "wordpiece", ("wordpiece", "sentencepiece"), "Kind of the vocabulary trained when "
         "--vocab_file is not given (sentencepiece: KoBERT's layout)."),
    String("vocab_file", None, "Vocabulary: WordPiece vocab.txt or SentencePiece .model. Default: train one."),
    Int("vocab_size", None, "Size of the vocabulary trained when --vocab_file is not given. Default: 8000 "
        "(WordPiece), 8002 (SentencePiece).", at_least=6),
    Int("vocab_documents", 20000, "Documents (the first ones) a missing vocabulary is trained on.", at_least=1),
    Int("seq_length", 128, "Tokens per example, [CLS] and [SEP]s included (at most 512).", at_least=8, at_most=512),
    Int("max_predictions", 20, "Masked positions per example (BERT: 20 for 128, 76 for 512).", at_least=1),
    Int("dupe_factor", 5, "Passes over the data with different masks, as in the original.", at_least=1),
    Float("short_seq_prob", 0.1, "Probability of aiming at a shorter sequence, as in the original.", at_least=0,
          at_most=1),
    Float("masked_lm_prob", 0.15, "Fraction of tokens to predict, as in the original.", above=0, below=1),
    Bool("whole_word_mask", False, "Mask whole words (the original's --do_whole_word_mask, off there too)."),
    Int("num_shards", 16, "Training shards (examples are dealt round-robin over them).", at_least=1),
    Int("num_workers", 1, "Processes that tokenise and make examples.", at_least=1, role=FREE),
    Int("seed", 12345, "Seed of the example-making random generators (the original's default).", at_least=0),
    Float("eval_fraction", 0.0, "Fraction of documents held out for <output_dir>/eval/ shards.", at_least=0, below=1),
    Int("num_eval_shards", 1, "Shards of the held-out split.", at_least=1),
    Int("chunk_mb", 4, "Megabytes of text made into examples at a time (memory bound per process).", at_least=1,
        role=FREE),
    checks=[
        lambda hp: None if not (hp.input_files and hp.tfds_name) else "give either --input_files or --tfds_name, "
        "not both",
        lambda hp: None if hp.max_predictions <= hp.seq_length - 3 else
        f"--max_predictions={hp.max_predictions} must leave room for [CLS] and two [SEP]s in "
        f"--seq_length={hp.seq_length}; use at most {hp.seq_length - 3}",
        lambda hp: None if hp.corpus == "en" or not (hp.input_files or hp.tfds_name) else
        f"--corpus={hp.corpus} picks an embedded corpus; drop it with --input_files/--tfds_name",
    ],
)


def main(argv):
    del argv
    import os

    from zoo.data import bert_shard_format, bert_shards, bert_vocabulary
    from zoo.recipe_support import bert_data
    from zoo.errors import ZooError

    hp = SPEC.values()
    if bert_shard_format.read_metadata(hp.output_dir) is not None:  # before any slow work
        raise ZooError(f"--output_dir={hp.output_dir} already holds complete shards "
                       f"({bert_shard_format.METADATA_FILE}); choose another --output_dir or delete that one")
    source = dict(input_files=hp.input_files, tfds_name=hp.tfds_name, tfds_text_key=hp.tfds_text_key,
                  tfds_split=hp.tfds_split, data_dir=hp.data_dir, download=hp.download,
                  max_documents=hp.max_documents)
    if not hp.input_files and not hp.tfds_name:
        print(f"no --input_files or --tfds_name: using the embedded {hp.corpus} corpus", flush=True)
        if hp.corpus != "en":
            source["corpus"] = hp.corpus
    if hp.vocab_file:
        vocabulary = bert_vocabulary.load_bert_vocabulary(hp.vocab_file)
    else:
        vocab_size = hp.vocab_size or bert_data.default_vocab_size(hp.tokenizer)
        vocabulary = bert_data.train_run_vocabulary(source, vocab_size, hp.vocab_documents, hp.tokenizer)
        print(f"trained a {len(vocabulary)}-token {vocabulary.kind} vocabulary on at most {hp.vocab_documents} "
              "documents", flush=True)
    metadata = bert_shards.write_pretraining_shards(
        source, vocabulary, hp.output_dir, seq_length=hp.seq_length, max_predictions=hp.max_predictions,
        dupe_factor=hp.dupe_factor, seed=hp.seed, num_shards=hp.num_shards, num_workers=hp.num_workers,
        eval_fraction=hp.eval_fraction, num_eval_shards=hp.num_eval_shards,
        short_seq_prob=hp.short_seq_prob, masked_lm_prob=hp.masked_lm_prob, chunk_bytes=hp.chunk_mb << 20,
        whole_word_mask=hp.whole_word_mask)
    out = hp.output_dir
    summary = ", ".join(f"{split} {metadata['examples'][split]:,} examples from {metadata['documents'][split]:,} "
                        "documents" for split in metadata["examples"])
    print(f"wrote {summary} to {out}", flush=True)
    command = (f"python recipes/bert_pretrain.py --train_files='{os.path.join(out, metadata['train_files'])}' "
               f"--vocab_file={os.path.join(out, vocabulary.file_name)} --seq_length={hp.seq_length} "
               f"--max_predictions={hp.max_predictions}")
    if metadata["eval_files"]:
        command += f" --eval_files='{os.path.join(out, metadata['eval_files'])}'"
    print(f"train with: {command}", flush=True)


if __name__ == "__main__":
    zoo_flags.run(main)
