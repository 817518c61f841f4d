"""Transformer-XL language models (Dai et al. 2019): segment-level recurrence with memories carried across
steps on every replica, relative positions, adaptive softmax (word level) or a plain softmax over bytes (char
level), under any tf.distribute strategy, with a TF Serving export that streams.

    python recipes/transformer_xl_lm.py                  # transformer_xl_tiny, word level, embedded corpus: minutes
    python recipes/transformer_xl_lm.py --config=transformer_xl_enwik8_base --enwik8_file=/data/enwik8.zip
                                                         # the paper's enwik8 run and evaluation protocol
    python recipes/transformer_xl_lm.py --config=transformer_xl_wt103_base --text_files=wt103/wiki.train.tokens \
        --validation_files=wt103/wiki.valid.tokens --test_files=wt103/wiki.test.tokens

Data: the embedded corpus (default), text files, tensorflow-datasets `lm1b`, `pg19` or `tiny_shakespeare` from
--data_dir, or --enwik8_file (the raw file or enwik8.zip, prepared as the paper: the first 90M bytes train, 5M
validation, 5M test, newlines dropped, 204 byte symbols; see zoo.data.enwik8). Word level (--level=word) has
two --tokenizer modes: whitespace_eos (the default with --text_files) is Transformer-XL's WikiText-103 reading:
each file one stream, every line (blank ones too) split at whitespace plus <eos>, so `<unk>` and `@,@` stay
single tokens and wiki.*.tokens give the paper's 267,735-token vocabulary; words (the default for the
embedded corpus and tensorflow-datasets, raw text) splits punctuation off, <eos> per non-blank line, a blank
line starting a document. Case is kept unless --lowercase; all tokens seen --min_count times are kept (or
the --vocab_size most frequent). Char level (--level=char) reads UTF-8 bytes (implied by --enwik8_file and
the enwik8 presets; rnn_lm's char level is Unicode code points). The vocabulary is <model_dir>/vocab.txt.
Every split is cut into --global_batch_size contiguous streams (validation and test: --eval_batch_size; the
original's LMOrderedIterator); a training step reads --tgt_len tokens of each with --mem_len memories per
layer carried from the step before.

Training: NLL per token, Adam (PyTorch's epsilon 1e-8) at --learning_rate, cosine decay to --min_learning_rate
over --max_step steps after --warmup_step steps of linear warm-up, the global gradient norm clipped to
--clip_norm, as pytorch/train.py. The --config's PAPER_TRAINING entry (transformer_xl_presets.py: the run
scripts' train.py and eval.py flags; CPU-sized for transformer_xl_tiny) gives every training and evaluation
flag not given; --train_steps defaults to the preset's max_step, and --train_steps alone also sets
--max_step. Evaluation (every --eval_every steps: 100 for transformer_xl_tiny, train.py's 4000 for the paper
presets, also their --checkpoint_every; at the end, then on the test split) uses --eval_tgt_len,
--eval_mem_len, --eval_clamp_len, --eval_same_length (wt103 base: 64/640/400/same_length) and
--eval_batch_size streams (eval.py's 10 for the paper presets) and reports perplexity (word) or bits per
character (char) beside the add-one unigram baseline. Written: <model_dir>/results.json, perplexity.png, and
<export_dir>/<version>/ whose `serving_default` takes token_ids [B,T], memories [layers,B,eval_mem_len,H] and
memory_length [B] and returns log_probs [B,T,V], memories and memory_length for the next segment
(`log_probs`: token_ids only), with assets/vocab.txt. Stopped and started again, a run resumes; a finished
run trains on when started again with a larger --train_steps (--train_steps and --max_step are not part of
the recorded config; the cosine then spans the new --max_step, default the new --train_steps).
"""

import dataclasses

from zoo import flags as zoo_flags
from zoo.flags import FREE, MODEL, Bool, Enum, Float, Int, List, String
from zoo.recipe_support.transformer_xl import PAPER_EVAL_EVERY

CONFIGS = ("transformer_xl_tiny", "transformer_xl_wt103_base", "transformer_xl_wt103_large",
           "transformer_xl_enwik8_base", "transformer_xl_enwik8_large")
_DEFAULTS = {
    "eval_every": dict(default=100, help="Steps between evaluations on the validation split (default 100; the "
                       f"paper presets: train.py's {PAPER_EVAL_EVERY})."),
    "checkpoint_every": dict(help=f"Steps between checkpoints (default 200; the paper presets: {PAPER_EVAL_EVERY})."),
    "train_steps": dict(default=None, help="Global steps to train (default the --config's PAPER_TRAINING max_step, "
                        "400 for transformer_xl_tiny); a resumed run continues up to this, a finished one trains on."),
}
_COMMON = [dataclasses.replace(p, **_DEFAULTS.get(p.name, {})) for p in zoo_flags.common(
    global_batch_size=16, learning_rate=1e-3, model_dir="runs/transformer_xl_lm",
    checkpoint_every=200, log_every=50)]
SPEC = zoo_flags.declare(
    *_COMMON,
    Enum("config", "transformer_xl_tiny", CONFIGS, "Preset: transformer_xl_tiny (CPU minutes) or a paper model, "
         "whose PAPER_TRAINING fills the training and evaluation flags not given."),
    Enum("level", None, ("word", "char"), "Tokens: words (adaptive softmax) or UTF-8 bytes (plain softmax); "
         "default char for --enwik8_file and the enwik8 presets, else word."),
    Enum("dataset", "embedded", ("embedded", "tiny_shakespeare", "lm1b", "pg19"), "The embedded corpus, or a "
         "tensorflow-datasets text set in --data_dir (ignored with --text_files)."),
    List("text_files", None, "Training text files (paths or globs; with --tokenizer=words a blank line starts a "
         "document)."),
    Enum("tokenizer", None, ("whitespace_eos", "words"), "Word level: whitespace_eos (Transformer-XL's: split at "
         "whitespace, <eos> on every line, each file one stream; default with --text_files) or words "
         "(punctuation split off; default for the embedded corpus and --dataset)."),
    List("validation_files", None, "Validation text files (default: a held-out --validation_fraction)."),
    List("test_files", None, "Test text files (default: the dataset's test split, else validation)."),
    Float("validation_fraction", 0.1, "Share of training documents held out when there is no validation split.",
          above=0, below=1),
    Int("max_documents", 0, "Read at most this many documents per tensorflow-datasets split (0: all).", at_least=0),
    String("enwik8_file", None, "enwik8 or enwik8.zip (http://mattmahoney.net/dc/enwik8.zip), read at char level.",
           role=FREE),
    Int("enwik8_heldout_bytes", 5_000_000, "Bytes of --enwik8_file's validation and test splits, each (the "
        "standard 5,000,000).", at_least=1),
    Int("vocab_size", 0, "Word level: keep the most frequent tokens, <unk> and <eos> included (0: all).",
        at_least=0),
    Int("min_count", 1, "Word level: keep only words seen at least this often (WikiText-103 keeps all).",
        at_least=1),
    Bool("lowercase", False, "Word level: lowercase the text (WikiText-103 keeps case)."),
    List("cutoffs", None, "Adaptive softmax cluster bounds, word level (default the preset's; empty: a plain "
         "softmax)."),
    Int("div_val", None, "Adaptive input/softmax: each cluster's width divided by div_val^i (default the "
        "preset's).", role=MODEL, at_least=1),
    Float("dropout", None, "Dropout (default the preset's).", role=MODEL, at_least=0, below=1),
    Float("attention_dropout", None, "Attention-probability dropout, dropatt (default the preset's).", role=MODEL,
          at_least=0, below=1),
    Int("tgt_len", None, "Tokens per stream per training step (segment length; default the preset's).",
        at_least=1),
    Int("mem_len", None, "Memory slots per layer carried across training steps (0: none; default the preset's).",
        at_least=0),
    Int("clamp_len", -1, "Relative distances clipped to this (-1: never).", at_least=-1),
    Bool("same_length", False, "Training: every query attends to the same number of keys."),
    Int("eval_tgt_len", None, "Evaluation segment length (default the preset's, else --tgt_len).", at_least=1),
    Int("eval_mem_len", None, "Evaluation memory (default the preset's, else --mem_len + --tgt_len - "
        "--eval_tgt_len).", at_least=0),
    Int("eval_clamp_len", None, "Evaluation clamp_len (default the preset's, else --clamp_len).", at_least=-1),
    Bool("eval_same_length", None, "Evaluation same_length (default the preset's, else --same_length)."),
    Int("warmup_step", None, "Steps of linear warm-up before the cosine decay (default the preset's).",
        at_least=0),
    Int("max_step", None, "Length of the cosine decay in steps (default --train_steps when given, else the "
        "preset's, which is then also --train_steps); not recorded, so a resumed run may raise it.", role=FREE,
        at_least=1),
    Int("eval_batch_size", None, "Streams of the validation and test splits (default: eval.py's 10 for the paper "
        "presets, else --global_batch_size); a multiple of the replicas, at most --global_batch_size.",
        role=FREE, at_least=1),
    Float("min_learning_rate", 0.0, "The cosine's end rate (eta_min).", at_least=0),
    Float("clip_norm", None, "Clip the global gradient norm to this (0: off; default the preset's, 0.25).",
          at_least=0),
    checks=[lambda hp: "give one source: --enwik8_file, --text_files or --dataset" if hp.enwik8_file and (
                hp.text_files or hp.dataset != "embedded") else None,
            lambda hp: "--enwik8_file is read as bytes; drop --level=word" if hp.enwik8_file and hp.level == "word"
            else None,
            lambda hp: _enwik8_conflict(hp),
            lambda hp: "--tokenizer is for word level; drop it or give --level=word" if hp.tokenizer and
            _level(hp) == "char" else None],
)


def _enwik8_conflict(hp):
    """--enwik8_file has its own splits and bytes: the text-only flags given with it are an error."""
    if not hp.enwik8_file:
        return None
    given = [f"--{name}" for name in ("validation_files", "test_files", "lowercase", "tokenizer")
             if hp[name] not in (None, False, [])]
    return f"--enwik8_file has its own splits and reads bytes; drop {', '.join(given)}" if given else None


def _level(hp):
    return hp.level or ("char" if hp.enwik8_file or "enwik8" in hp.config else "word")


def main(argv):
    del argv
    import os
    import time

    import keras

    from zoo import create_model, recipe_support
    from zoo.data import language_modeling as lm
    from zoo.errors import ZooError
    from zoo.models.transformer_xl import TransformerXLLanguageModel
    from zoo.models.transformer_xl.transformer_xl_presets import PAPER_TRAINING, PRESETS
    from zoo.models.transformer_xl.transformer_xl_serving import serving_endpoints
    from zoo.recipe_support import language_model as support
    from zoo.recipe_support import transformer_xl as txl
    from zoo.registry import trainable_params
    from zoo.paths import write_json_atomically
    from zoo.training.trainer import Trainer

    hp = SPEC.values()
    level = _level(hp)
    s = txl.training_settings(hp, PAPER_TRAINING.get(hp.config), zoo_flags.given, hp.train_steps)
    B = s["global_batch_size"]
    paper = hp.config != "transformer_xl_tiny"
    eval_B = txl.eval_batch_size(hp.eval_batch_size, B, paper=paper)
    strategy, chief = recipe_support.setup(hp)
    replicas = strategy.num_replicas_in_sync
    for flag, value in (("global_batch_size", B), ("eval_batch_size", eval_B)):
        if value % replicas:
            raise ZooError(f"--{flag}={value} must be a multiple of the {replicas} replicas; use e.g. "
                           f"--{flag}={max(1, value // replicas) * replicas}")
    started = time.monotonic()
    data = txl.load_data(hp, level, chief=chief)
    vocab = data.vocab
    layouts = txl.stream_layouts(data.ids, global_batch_size=B, tgt_len=s["tgt_len"], eval_tgt_len=s["eval_tgt_len"],
                                 eval_batch_size=eval_B)
    unigram = lm.unigram_perplexity(layouts["train"], layouts["validation"], vocab.size)
    if hp.cutoffs is not None:
        try:
            cutoffs = [int(c) for c in hp.cutoffs]
        except ValueError:
            raise ZooError(f"--cutoffs={','.join(hp.cutoffs)} must be integers, e.g. --cutoffs=2000,4000") from None
    else:
        cutoffs = [] if level == "char" else list(PRESETS[hp.config].get("cutoffs", ()))
    cutoffs = txl.check_cutoffs(cutoffs, vocab.size, level)

    overrides = {k: v for k, v in hp.model_args().items() if v is not None}
    overrides.update(vocabulary_size=vocab.size, cutoffs=tuple(cutoffs), mem_len=s["mem_len"],
                     clamp_len=s["clamp_len"], same_length=s["same_length"])
    if not cutoffs:
        overrides["div_val"] = 1
    with strategy.scope():
        backbone = create_model(hp.config, **overrides)
        model = TransformerXLLanguageModel(
            backbone, per_replica_batch_size=B // replicas, mem_len=s["mem_len"], clamp_len=s["clamp_len"],
            same_length=s["same_length"], eval_mem_len=s["eval_mem_len"], eval_clamp_len=s["eval_clamp_len"],
            eval_same_length=s["eval_same_length"], clip_norm=s["clip_norm"] or None)
        schedule = txl.cosine_schedule(s["learning_rate"], warmup_step=s["warmup_step"], max_step=s["max_step"],
                                       min_learning_rate=hp.min_learning_rate)
        model.compile(optimizer=keras.optimizers.Adam(schedule, epsilon=1e-8))
    params = trainable_params(backbone)
    if chief:
        sizes = ", ".join(f"{layouts[k].tokens:,} {k}" for k in layouts)
        softmax = f"adaptive softmax cutoffs {cutoffs}" if cutoffs else "softmax"
        print(f"{hp.config} ({level} level, {softmax}): {params:,} parameters; {data.name}: {sizes} tokens; "
              f"vocabulary {vocab.size:,}; {B} streams x {s['tgt_len']} tokens, memory {s['mem_len']}, "
              f"{layouts['train'].steps} steps per epoch; {s['train_steps']} steps (cosine over {s['max_step']}, "
              f"warm-up {s['warmup_step']}); adam lr {s['learning_rate']:g}; evaluation tgt_len "
              f"{s['eval_tgt_len']} mem_len {s['eval_mem_len']} clamp_len {s['eval_clamp_len']} same_length "
              f"{s['eval_same_length']}, {eval_B} streams; {replicas} replica(s); data ready in "
              f"{time.monotonic() - started:.1f} s", flush=True)
        print(f"unigram baseline (add-one, train counts) on validation: {support.describe(unigram, level)}",
              flush=True)

    def dataset_fn(ctx):
        return lm.lm_dataset(layouts["train"], ctx)

    def eval_fn(split):
        return lambda ctx: lm.lm_dataset(layouts[split], ctx, repeat=False)

    config = hp.run_config(**{k: v for k, v in s.items() if k not in txl.FREE_SETTINGS}, level=level,
                           cutoffs=cutoffs, vocabulary_size=vocab.size, vocab_sha1=vocab.sha1, dataset=data.name)
    trainer_args = txl.intervals({**hp.trainer_args(), "global_batch_size": B, "train_steps": s["train_steps"]},
                                 paper=paper, explicit=zoo_flags.given)
    trainer = Trainer(model, strategy=strategy, model_dir=hp.model_dir, dataset_fn=dataset_fn, config=config,
                      eval_dataset_fn=eval_fn("validation"), **trainer_args)
    train_started = time.monotonic()
    logs = trainer.train()
    seconds = time.monotonic() - train_started
    test_split = "test" if "test" in layouts else "validation"
    test = trainer.evaluate(eval_fn(test_split))
    if chief:
        validation = logs.get("eval/perplexity", float("nan"))
        print(f"trained in {seconds:.0f} s; validation {support.describe(validation, level)} (unigram baseline "
              f"{support.describe(unigram, level)}); {test_split} {support.describe(test['perplexity'], level)}",
              flush=True)
        results = {"config": hp.config, "level": level, "dataset": data.name, "vocabulary_size": vocab.size,
                   "parameters": params, "steps": s["train_steps"], "train_seconds": round(seconds, 1),
                   "settings": {**s, "eval_batch_size": eval_B}, "unigram_perplexity": unigram,
                   "validation": {k.removeprefix("eval/"): v for k, v in logs.items() if k.startswith("eval/")},
                   test_split: {k: v for k, v in test.items() if isinstance(v, float)}}
        print(f"wrote {write_json_atomically(os.path.join(hp.model_dir, txl.RESULTS_FILE), results)}", flush=True)
        png = support.plot_curves(hp.model_dir, os.path.join(hp.model_dir, "perplexity.png"), level=level,
                                  unigram=unigram)
        print(f"wrote {png}", flush=True)
    if hp.export_dir:
        path = support.export_language_model(hp.export_dir, backbone, serving_endpoints(model), vocab,
                                             model_dir=hp.model_dir, chief=chief, strategy=strategy)
        if chief:
            print(f"exported {path}", flush=True)


if __name__ == "__main__":
    zoo_flags.run(main)
