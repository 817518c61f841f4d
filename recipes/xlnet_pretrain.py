"""XLNet permutation language-model pretraining (Yang et al. 2019) under any tf.distribute strategy, with the
memories carried across segments, held-out evaluation and a TF Serving export of the backbone.

    python recipes/xlnet_pretrain.py                    # xlnet_tiny on the embedded corpus, minutes on a CPU
    python recipes/xlnet_pretrain.py --input_files='books/*.txt' --vocab_size=32000 --config=xlnet_base \
        --paper_training --global_batch_size=64 --train_steps=100000 --strategy=mirrored
    python recipes/xlnet_pretrain.py --tfds_name=wikipedia/20230601.en --data_dir=~/tensorflow_datasets \
        --config=xlnet_large --paper_training --strategy=tpu --tpu=local         # XLNet-Large's recipe

Data (`zoo.data.xlnet_pretraining`, as the original data_utils.py): the documents (the embedded corpus, text
files with one sentence per line and a blank line between documents, or a tensorflow-datasets text set) are
encoded with a SentencePiece unigram vocabulary with XLNet's special ids (`--spiece_model`, else one trained
on the training documents and kept as <model_dir>/spiece.model). --validation_fraction of the documents are
held out. Each row of a batch is one stream: sequences of --seq_len = [--reuse_len tokens continuing the
stream | A <sep> B <sep> <cls>] (B the true continuation or a random span, half each), --num_predict targets
chosen as n-gram spans (--mask_alpha, --mask_beta) and a factorisation order permuted within blocks of
--perm_size; with --bi_data the second half of every replica's rows reads the streams backwards.

Model: `XLNetPretrainer` (two-stream attention over perm_mask / target_mapping, tied softmax + bias), the
memories of --mem_len positions (the first --reuse_len of each segment) carried from step to step per replica.
Training: AdamW (--weight_decay, --adam_epsilon) with linear warm-up over --warmup_steps then linear decay to 0,
the global gradient norm clipped at --clip_norm. --paper_training takes XLNet-Large's values
(zoo.models.xlnet.PAPER_TRAINING and zoo.recipe_support.xlnet.PAPER_OPTIMIZATION) for each of those flags not
given. The held-out loss, perplexity and target accuracy are evaluated every --eval_every steps and at the end
(memories start empty), beside the unigram baseline (always the most frequent training target): the default run
(xlnet_tiny, 1,500 steps) took 1 min 33 s on 2 CPU cores (peak RSS 1.1 GB): held-out target accuracy stays at the
baseline up to step ~800, then rises to 0.144 (perplexity 109) against the unigram baseline's 0.078. The export's
`serving_default` takes token_ids, segment_ids, padding_mask [batch, seq] and returns the content stream
`sequence_output`; assets/spiece.model.
Stopped and started again with the same flags, a run resumes (memories included).
"""

import dataclasses

from zoo import flags as zoo_flags
from zoo.flags import FREE, MODEL, Bool, Enum, Float, Int, List, String

CONFIGS = ("xlnet_tiny", "xlnet_base", "xlnet_large")
_COMMON = [dataclasses.replace(p, default=500) if p.name == "eval_every" else p
           for p in zoo_flags.common(train_steps=1500, global_batch_size=16, learning_rate=1e-3,
                                     model_dir="runs/xlnet_pretrain", checkpoint_every=250, log_every=50)]
SPEC = zoo_flags.declare(
    *_COMMON,
    Enum("config", "xlnet_tiny", CONFIGS, "Backbone preset: xlnet_tiny, xlnet_base or xlnet_large."),
    Bool("paper_training", False, "Take XLNet-Large's pretraining values (seq_len 512, reuse_len 256, mem_len 384, "
         "perm_size 256, num_predict 85, bi_data, batch 2048, lr 4e-4, 500K steps, ...) for every one of those "
         "flags not given."),
    String("spiece_model", None, "A SentencePiece model with XLNet's special pieces (e.g. XLNet's spiece.model); "
           "default: the run's own, or one trained on the training documents.", role=FREE),
    Int("vocab_size", 1000, "Pieces of the SentencePiece model trained when there is none (XLNet: 32,000).",
        at_least=16),
    List("input_files", None, "Text files or globs: one sentence per line, blank line between documents."),
    String("tfds_name", None, "A tensorflow-datasets text dataset in --data_dir, e.g. wikipedia/20230601.en."),
    String("tfds_text_key", "text", "The text feature of --tfds_name."),
    String("tfds_split", "train", "The split of --tfds_name."),
    Int("max_documents", None, "Use at most this many documents.", at_least=1),
    Float("validation_fraction", 0.1, "Share of the documents held out for evaluation.", above=0, below=1),
    Int("seq_len", 64, "Tokens per sequence (XLNet: 512).", at_least=8),
    Int("reuse_len", 32, "Leading tokens of a sequence that continue the previous one and are cached as memory "
        "(XLNet: 256).", at_least=0),
    Int("mem_len", 32, "Memory positions carried across segments (XLNet: 384; 0: none).", at_least=0),
    Int("perm_size", None, "Block length of the permuted factorisation order (XLNet: 256); default: the largest "
        "dividing --reuse_len and --seq_len - --reuse_len.", at_least=1),
    Int("num_predict", 20, "Prediction targets per sequence, half in the reused part (XLNet: 85 of 512).",
        at_least=1),
    Int("mask_alpha", 6, "Tokens per span context: a span of n tokens sits in n * alpha / beta (XLNet: 6).",
        at_least=1),
    Int("mask_beta", 1, "Predicted tokens per span context (XLNet: 1).", at_least=1),
    Enum("span_rule", "word", ("word", "piece"), "n-gram targets span n words (word), or n sub-word pieces as the "
         "released data_utils.py does by its known seg[beg] slip (piece)."),
    Int("num_passes", 3, "Passes over the training text, each with its own A/B pairs and target spans "
        "(data_utils.py --num_passes; XLNet: 20).", at_least=1),
    Bool("bi_data", False, "Half of every replica's rows read their stream backwards (XLNet: on; needs an even "
         "per-replica batch)."),
    Float("dropout", 0.1, "Hidden dropout (XLNet: 0.1).", role=MODEL, at_least=0, below=1),
    Float("attention_dropout", 0.1, "Dropout on attention probabilities (XLNet: 0.1).", role=MODEL, at_least=0,
          below=1),
    Int("warmup_steps", 80, "Linear warm-up steps before the linear decay to 0 (XLNet-Large: 40,000).", at_least=0),
    Float("weight_decay", 0.0, "AdamW weight decay, not on biases and layer norms (XLNet-Large: 0.01).",
          at_least=0),
    Float("adam_epsilon", 1e-6, "Adam epsilon (XLNet-Large: 1e-6).", above=0),
    Float("clip_norm", 1.0, "Clip the global gradient norm to this (0: off; the original: 1.0).", at_least=0),
    checks=[
        lambda hp: None if not (hp.input_files and hp.tfds_name) else "give either --input_files or --tfds_name, "
        "not both",
    ],
)


def main(argv):
    del argv
    import time

    import keras

    from zoo import create_model, recipe_support
    from zoo.data import xlnet_pretraining
    from zoo.models.xlnet import XLNetPretrainer
    from zoo.models.xlnet.xlnet_serving import backbone_endpoints
    from zoo.recipe_support import xlnet as support
    from zoo.registry import trainable_params
    from zoo.training.export import export_saved_model
    from zoo.training.schedules import LinearWarmupDecay
    from zoo.training.trainer import Trainer

    hp = SPEC.values()
    training = support.paper_training(hp, zoo_flags.given, use_paper=hp.paper_training)
    strategy, chief = recipe_support.setup(hp)
    replicas = strategy.num_replicas_in_sync
    support.check_pretraining(training, replicas)
    xlnet_pretraining.check_options(training["global_batch_size"], training["seq_len"], training["reuse_len"],
                                    training["num_predict"], training["perm_size"], training["mask_alpha"],
                                    training["mask_beta"], training["bi_data"])
    train_steps = training["train_steps"]
    started = time.monotonic()
    source = dict(input_files=hp.input_files, tfds_name=hp.tfds_name, tfds_text_key=hp.tfds_text_key,
                  tfds_split=hp.tfds_split, data_dir=hp.data_dir, download=hp.download, max_documents=hp.max_documents)
    train_docs, held_docs = support.split_documents(source, hp.validation_fraction, hp.seed)
    vocabulary = support.run_vocabulary(hp.model_dir, train_docs, spiece_model=hp.spiece_model,
                                        vocab_size=hp.vocab_size, chief=chief)
    B = training["global_batch_size"]
    shape = dict(global_batch_size=B, span_rule=hp.span_rule,
                 **{k: training[k] for k in ("seq_len", "reuse_len", "perm_size", "num_predict", "mask_alpha",
                                             "mask_beta", "bi_data")})
    layouts = {"train": xlnet_pretraining.create_layout(train_docs, vocabulary, num_passes=hp.num_passes,
                                                        seed=hp.seed, **shape),
               "validation": support.held_out_layout(held_docs, vocabulary, seed=hp.seed + 1, **shape)}
    dataset_fn = xlnet_pretraining.make_dataset_fn(layouts["train"])
    eval_dataset_fn = xlnet_pretraining.make_dataset_fn(layouts["validation"], repeat=False)

    with strategy.scope():
        backbone = create_model(hp.config, **hp.model_args(
            vocabulary_size=len(vocabulary), **{k: training[k] for k in ("bi_data", "dropout", "attention_dropout")}))
        model = XLNetPretrainer(backbone, B // replicas, mem_len=training["mem_len"],
                                reuse_len=training["reuse_len"], clip_norm=training["clip_norm"] or None)
        schedule = LinearWarmupDecay(training["learning_rate"], train_steps, warmup_steps=training["warmup_steps"])
        optimizer = keras.optimizers.AdamW(schedule, weight_decay=training["weight_decay"],
                                           epsilon=training["adam_epsilon"])
        optimizer.exclude_from_weight_decay(var_names=["bias", "gamma", "beta"])
        model.compile(optimizer=optimizer)
    baseline = support.unigram_accuracy(layouts["train"], layouts["validation"])
    if chief:
        print(f"{hp.config}: {trainable_params(backbone):,} backbone parameters; {len(train_docs):,} training and "
              f"{len(held_docs):,} held-out documents; vocabulary {len(vocabulary):,}; {B} streams x "
              f"{training['seq_len']} tokens (reuse {training['reuse_len']}, memory {training['mem_len']}, "
              f"{training['num_predict']} targets, perm {layouts['train'].perm_size}"
              f"{', bi_data' if training['bi_data'] else ''}); {replicas} replica(s); data ready in "
              f"{time.monotonic() - started:.1f} s ({layouts['train'].steps} steps per pass, {hp.num_passes} "
              f"passes); unigram target accuracy baseline {baseline:.4f} (held out)", flush=True)

    backbone_args = {k: v for k, v in backbone.get_config().items() if k not in ("name", "trainable", "dtype")}
    config = hp.run_config(**{k: v for k, v in training.items() if k != "train_steps"},
                           vocabulary_size=len(vocabulary), vocab_sha1=vocabulary.sha1,
                           **{support.BACKBONE_KEY: backbone_args})
    trainer_args = {**hp.trainer_args(), "global_batch_size": B, "train_steps": train_steps}
    trainer = Trainer(model, strategy=strategy, model_dir=hp.model_dir, dataset_fn=dataset_fn, config=config,
                      eval_dataset_fn=eval_dataset_fn, **trainer_args)
    logs = trainer.train()
    if chief and logs:
        parts = []
        if "loss" in logs:
            parts.append(f"step {train_steps}: loss {logs['loss']:.4f}, target accuracy {logs['accuracy']:.4f}")
        if "eval/accuracy" in logs:
            parts.append(f"held out: loss {logs['eval/loss']:.4f}, perplexity {logs['eval/perplexity']:.2f}, "
                         f"target accuracy {logs['eval/accuracy']:.4f} (unigram baseline {baseline:.4f})")
        print("; ".join(parts), flush=True)
    if hp.export_dir:
        assets = {support.VOCAB_FILE: support.vocabulary_file(hp.model_dir, vocabulary, chief)}
        if backbone.bi_data:  # serving reads every row forwards: a bi_data=False copy of the weights
            with strategy.scope():
                forward = type(backbone).from_config({**backbone.get_config(), "bi_data": False})
                forward.set_weights(backbone.get_weights())
            backbone = forward
        path = export_saved_model(hp.export_dir, backbone, backbone_endpoints(backbone), assets=assets,
                                  strategy=strategy)
        if chief:
            print(f"exported {path}", flush=True)


if __name__ == "__main__":
    zoo_flags.run(main)
