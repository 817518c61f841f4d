"""BERT pretraining (masked LM + next sentence) under any tf.distribute strategy, then a TF Serving export.

    python recipes/bert_pretrain.py --strategy=mirrored
    python recipes/bert_create_data.py --input_files='wiki/*.txt' --output_dir=/data/b128 --eval_fraction=0.01
    python recipes/bert_pretrain.py --config=base --train_files='/data/b128/*.tfrecord' \
        --eval_files='/data/b128/eval/*.tfrecord' --global_batch_size=256 --train_steps=1000000 \
        --warmup_steps=10000 --learning_rate=1e-4 --steps_per_loop=100 --eval_every=10000 --eval_steps=100 \
        --jit_compile --mixed_precision=mixed_bfloat16 --model_dir=gs://bucket/bert
    python recipes/bert_pretrain.py --config=kobert_tiny          # Korean: SentencePiece, embedded Korean corpus
    python recipes/bert_pretrain.py --config=kobert --init_checkpoint=kobert-safetensors/ --input_files=ko/*.txt

Training always streams TFRecord shards. `--train_files` names shards made by recipes/bert_create_data.py (their
vocab.txt is used unless --vocab_file is given). Without it, the documents (the corpus shipped in the package,
or --input_files / --tfds_name) become shards in <model_dir>/data/ on the first run, with --eval_fraction of
them held out, and a vocabulary is trained on them (saved as <model_dir>/vocab.txt or spiece.model). The
tokenizer follows --config: WordPiece (uncased) for BERT, SentencePiece in KoBERT's layout for kobert and
kobert_tiny, whose default corpus is the embedded Korean one (--tokenizer and --corpus override). With
--init_checkpoint the model's shape and weights come from a local Hugging Face or keras-hub BERT checkpoint,
and its vocabulary from beside it (unless --vocab_file; a cased WordPiece checkpoint is refused: zoo's WordPiece
is uncased). The held-out masked-LM and next-sentence accuracies are evaluated every --eval_every steps and at
the end. Stopped and started again with the same flags, a run resumes (--init_checkpoint is read by a new run
only: a resumed one keeps the checkpoint's shape in config.json).
"""

from zoo import flags as zoo_flags
from zoo.flags import FREE, MODEL, Bool, Enum, Float, Int, List, String

CONFIGS = ("tiny", "base", "large", "kobert", "kobert_tiny")

SPEC = zoo_flags.declare(
    *zoo_flags.common(train_steps=600, global_batch_size=32, learning_rate=1e-3, model_dir="runs/bert_pretrain",
                      checkpoint_every=100, log_every=50),
    Enum("config", "tiny", CONFIGS, "Model: tiny, base or large (the bert_<config> preset), or kobert / kobert_tiny "
         "(KoBERT-base, or its L=2 H=128 shape; SentencePiece vocabulary, Korean corpus)."),
    Enum("tokenizer", None, ("wordpiece", "sentencepiece"), "Vocabulary kind. Default: the config's (kobert: "
         "sentencepiece, else wordpiece); a --vocab_file decides by its content."),
    Enum("corpus", None, ("en", "ko"), "Embedded corpus used without --input_files/--tfds_name. Default: the "
         "config's (kobert: ko, else en)."),
    Bool("whole_word_mask", False, "Mask whole words (google-research/bert --do_whole_word_mask; off there too)."),
    String("init_checkpoint", None, "Start from a local BERT checkpoint: a Hugging Face directory (config.json + "
           "model.safetensors) or keras-hub BertBackbone weights; its shape replaces --config's. Read by a new run "
           "only (a resumed one has its shape in config.json).", role=FREE),
    Float("dropout", 0.1, "Hidden and attention dropout (0.1 in BERT).", role=MODEL, at_least=0, below=1),
    Int("seq_length", 128, "Tokens per example, [CLS] and [SEP]s included (at most 512, the position table).",
        at_least=8, at_most=512),
    Int("max_predictions", 20, "Masked positions per example (BERT: 20 for 128, 76 for 512).", at_least=1),
    Int("warmup_steps", 60, "Linear warm-up steps before the linear decay to 0.", at_least=0),
    Float("weight_decay", 0.01, "AdamW weight decay (not applied to biases and layer norms).", at_least=0),
    Float("clip_norm", 1.0, "Clip the global gradient norm to this (0: off), as the original BERT.", at_least=0),
    String("train_files", None, "TFRecord shards from recipes/bert_create_data.py, e.g. '/data/b128/*.tfrecord'. "
           "Default: shards of the documents below, made in <model_dir>/data/."),
    String("eval_files", None, "Held-out shards, e.g. '/data/b128/eval/*.tfrecord'. Default: the held-out split "
           "made in <model_dir>/data/ (none with --train_files).", role=FREE),
    List("input_files", None, "Text files or globs: one sentence per line, blank line between documents."),
    String("tfds_name", None, "A tensorflow-datasets text dataset in --data_dir, e.g. wikipedia/20230601.en."),
    String("tfds_text_key", "text", "The text feature of --tfds_name."),
    String("tfds_split", "train", "The split of --tfds_name."),
    Int("max_documents", None, "Use at most this many documents.", at_least=1),
    Float("eval_fraction", 0.1, "Fraction of the documents held out for evaluation (not with --train_files).",
          at_least=0, below=1),
    String("vocab_file", None, "Vocabulary: WordPiece vocab.txt or a SentencePiece .model. Default: the one beside "
           "--train_files or --init_checkpoint, or one trained on the data.", role=FREE),
    Int("vocab_size", None, "Size of the vocabulary trained when there is none (a small corpus gives fewer). "
        "Default: 8000 (WordPiece), 8002 (SentencePiece, KoBERT's).", at_least=6),
    Int("vocab_documents", 20000, "Documents (the first ones) a vocabulary is trained on.", at_least=1),
    Int("dupe_factor", 5, "Passes over the data with different masks, as in the original.", at_least=1),
    checks=[
        lambda hp: None if hp.warmup_steps <= hp.train_steps else
        f"--warmup_steps={hp.warmup_steps} exceeds --train_steps={hp.train_steps}; lower --warmup_steps",
        lambda hp: None if hp.max_predictions <= hp.seq_length - 3 else
        f"--max_predictions={hp.max_predictions} must leave room for [CLS] and two [SEP]s in "
        f"--seq_length={hp.seq_length}; use at most {hp.seq_length - 3}",
        lambda hp: None if not (hp.input_files and hp.tfds_name) else "give either --input_files or --tfds_name, "
        "not both",
        lambda hp: None if not (hp.train_files and (hp.input_files or hp.tfds_name)) else
        "--train_files are made already; drop --input_files/--tfds_name (recipes/bert_create_data.py reads those)",
        lambda hp: None if not (hp.corpus and (hp.input_files or hp.tfds_name or hp.train_files)) else
        "--corpus picks an embedded corpus; drop it with --input_files/--tfds_name/--train_files",
        lambda hp: None if not (hp.whole_word_mask and hp.train_files) else "--whole_word_mask applies when shards "
        "are made; drop it with --train_files (pass it to recipes/bert_create_data.py)",
    ],
)


def main(argv):
    del argv
    import json
    import os
    import tempfile

    import keras
    import tensorflow as tf

    from zoo import create_model
    from zoo.data import bert_shards
    from zoo.models.bert import BertBackbone, BertPretrainer, bert_checkpoints
    from zoo.training.trainer import CONFIG_FILE
    from zoo.models.bert.bert_serving import serving_endpoints
    from zoo.recipe_support import bert_data
    from zoo import recipe_support
    from zoo.training.export import export_saved_model
    from zoo.training.schedules import LinearWarmupDecay
    from zoo.training.trainer import Trainer

    hp = SPEC.values()
    strategy, chief = recipe_support.setup(hp)

    korean = hp.config.startswith("kobert")
    default_tokenizer, default_corpus = bert_data.config_defaults(hp.config)
    tokenizer = hp.tokenizer or default_tokenizer
    source = dict(input_files=hp.input_files, tfds_name=hp.tfds_name, tfds_text_key=hp.tfds_text_key,
                  tfds_split=hp.tfds_split, data_dir=hp.data_dir, download=hp.download, max_documents=hp.max_documents)
    if (hp.corpus or default_corpus) == "ko" and not (hp.input_files or hp.tfds_name):
        source["corpus"] = "ko"
    vocabulary = bert_data.run_vocabulary(
        hp.model_dir, vocab_file=hp.vocab_file, vocab_size=hp.vocab_size or bert_data.default_vocab_size(tokenizer),
        train_files=hp.train_files, source=source, vocab_documents=hp.vocab_documents, tokenizer=tokenizer,
        tokenizer_flag=hp.tokenizer, init_checkpoint=hp.init_checkpoint)
    # A resumed run takes its shape from config.json: --init_checkpoint is read (and must exist) for a new one only.
    resumed = tf.train.latest_checkpoint(hp.model_dir) is not None
    init_backbone = None
    if resumed and tf.io.gfile.exists(os.path.join(hp.model_dir, CONFIG_FILE)):
        try:
            with tf.io.gfile.GFile(os.path.join(hp.model_dir, CONFIG_FILE)) as f:
                init_backbone = json.load(f).get("init_backbone")
        except (ValueError, AttributeError):
            pass  # a damaged config.json: the trainer says so
    if init_backbone is None and hp.init_checkpoint:
        init_backbone = bert_data.init_backbone_config(hp.init_checkpoint, vocabulary, hp.seq_length)
    train_files, eval_files = bert_data.run_shards(
        hp.model_dir, vocabulary, source=source, train_files=hp.train_files, eval_files=hp.eval_files,
        seq_length=hp.seq_length, max_predictions=hp.max_predictions, dupe_factor=hp.dupe_factor, seed=hp.seed,
        eval_fraction=hp.eval_fraction, verbose=chief, chief=chief, whole_word_mask=hp.whole_word_mask)
    shape = dict(seq_length=hp.seq_length, max_predictions=hp.max_predictions)
    if chief:
        metadata = bert_data.shard_metadata(train_files) or {}
        examples = metadata.get("examples", {})
        counts = ", ".join(f"{n:,} {split} examples" for split, n in examples.items()) or f"{len(train_files)} files"
        baseline = bert_data.unigram_baseline(eval_files, **shape) if eval_files else None
        print(f"{counts}, {vocabulary.kind} vocabulary {len(vocabulary)}, {strategy.num_replicas_in_sync} replica(s)"
              + (f"; unigram MLM accuracy baseline {baseline:.3f} (held out)" if baseline is not None else ""),
              flush=True)

    with strategy.scope():
        model_args = hp.model_args(vocabulary_size=len(vocabulary))
        if init_backbone is not None:
            backbone = BertBackbone(**{**init_backbone, **model_args})
        else:
            backbone = create_model(hp.config if korean else f"bert_{hp.config}", **model_args)
        model = BertPretrainer(backbone, clip_norm=hp.clip_norm or None)
        if hp.init_checkpoint and not resumed:
            summary = bert_checkpoints.load_bert_weights(model, hp.init_checkpoint, flag="--init_checkpoint")
            if chief:
                print(f"initialised from --init_checkpoint={hp.init_checkpoint}: {summary}", flush=True)
        schedule = LinearWarmupDecay(hp.learning_rate, hp.train_steps, warmup_steps=hp.warmup_steps)
        optimizer = keras.optimizers.AdamW(schedule, weight_decay=hp.weight_decay, beta_1=0.9, beta_2=0.999,
                                           epsilon=1e-6)
        optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
        model.compile(optimizer=optimizer)

    def dataset_fn(ctx):
        return bert_shards.make_shard_dataset(train_files, hp.global_batch_size, ctx, seed=hp.seed, **shape)

    def eval_dataset_fn(ctx):
        return bert_shards.make_shard_dataset(eval_files, hp.global_batch_size, ctx, eval=True, flag="--eval_files",
                                              **shape)

    config = bert_data.run_config(hp, vocabulary, backbone=init_backbone)
    trainer = Trainer(model, strategy=strategy, model_dir=hp.model_dir, dataset_fn=dataset_fn, config=config,
                      eval_dataset_fn=eval_dataset_fn if eval_files else None, **hp.trainer_args())
    own_dir = hp.model_dir if chief else tempfile.mkdtemp(prefix="zoo-vocab-")  # others: for a throw-away export
    own_vocab = os.path.join(own_dir, vocabulary.file_name)
    if not tf.io.gfile.exists(own_vocab):  # an existing one is what config.json's vocab_sha1 checks against
        vocabulary.save(own_dir)
    logs = trainer.train()
    if chief and logs:
        parts = []
        if "loss" in logs:  # absent when the run was already at --train_steps
            parts.append(f"step {hp.train_steps}: loss {logs['loss']:.4f}, MLM accuracy {logs['mlm_accuracy']:.3f}, "
                         f"NSP accuracy {logs['nsp_accuracy']:.3f}")
        if "eval/mlm_accuracy" in logs:
            parts.append(f"held out: MLM accuracy {logs['eval/mlm_accuracy']:.3f}, NSP accuracy "
                         f"{logs['eval/nsp_accuracy']:.3f}")
        print("; ".join(parts), flush=True)
    if hp.export_dir:
        path = export_saved_model(hp.export_dir, backbone, serving_endpoints(backbone),
                                  assets={vocabulary.file_name: own_vocab}, strategy=strategy)
        if chief:
            print(f"exported {path}", flush=True)


if __name__ == "__main__":
    zoo_flags.run(main)
