"""RNN/LSTM/GRU language models (Zaremba et al. 2014; char-rnn) trained by truncated backpropagation through time
with the hidden state carried across batches, under any tf.distribute strategy, with a TF Serving export.

    python recipes/rnn_lm.py                          # word-level LSTM on the embedded corpus, minutes on a CPU
    python recipes/rnn_lm.py --model=gru_lm_small --dropout=0.2
    python recipes/rnn_lm.py --model=char_rnn --dataset=tiny_shakespeare --data_dir=~/tensorflow_datasets \
        --paper_training                             # char-rnn: seq 50, batch 50, RMSprop 2e-3, decay 0.97 after 10
    python recipes/rnn_lm.py --text_files=ptb.train.txt --validation_files=ptb.valid.txt \
        --test_files=ptb.test.txt --model=lstm_lm_medium --paper_training --min_count=1   # Zaremba medium on PTB

Data: the embedded corpus (default; 130 short articles, held-out documents for validation and test), text
files (a blank line starts a document), or tensorflow-datasets `tiny_shakespeare`, `lm1b` or `pg19` from
--data_dir. --level=word splits words and punctuation with <eos> after each line (PTB style), keeping the
--vocab_size most frequent tokens seen --min_count times; --level=char models every character (char_rnn implies
it). The vocabulary is written to <model_dir>/vocab.txt. Batches are --global_batch_size parallel streams of
--seq_length tokens; the state is reset at document starts (--document_boundaries=reset) or only at epoch starts
(continue: the PTB reader's layout); see zoo.data.language_modeling.

Training: NLL per token with --optimizer, the rate --learning_rate decayed by --lr_decay every epoch after
--decay_after_epochs (Zaremba's schedule), the global gradient norm clipped to --clip_norm. The defaults (Adam
2e-3, 900 steps: about 12 epochs of the embedded corpus) suit a short CPU run; --paper_training takes seq_length,
batch, optimizer (SGD 1.0 for Zaremba), rates, decay, epochs and clipping from the preset's paper recipe for
every one of those flags not given. Validation perplexity (bits per character at char level) every --eval_every
steps and at the end, beside the add-one unigram baseline; then test perplexity, a generated sample, <model_dir>/perplexity.png (the
learning curves), and <export_dir>/<version>/ with
`serving_default` (token_ids, lengths -> log_probs, next_log_probs) and `sample` (prompt_ids, prompt_lengths,
num_tokens, temperature, seed -> token_ids), assets/vocab.txt. Stopped and started again, a run resumes.
"""

import dataclasses

from zoo import flags as zoo_flags
from zoo.flags import FREE, MODEL, Bool, Enum, Float, Int, List

MODELS = tuple(f"{cell}_lm_{size}" for cell in ("lstm", "gru", "simple_rnn") for size in ("small", "medium", "large")
               ) + ("char_rnn",)
_COMMON = [dataclasses.replace(p, default=100) if p.name == "eval_every" else p for p in zoo_flags.common(
    train_steps=900, global_batch_size=20, learning_rate=2e-3, model_dir="runs/rnn_lm", checkpoint_every=300,
    log_every=50)]
SPEC = zoo_flags.declare(
    *_COMMON,
    Enum("model", "lstm_lm_small", MODELS, "Preset: lstm|gru|simple_rnn _lm_ small|medium|large (Zaremba shapes), "
         "or char_rnn (2x128 LSTM on one-hot characters)."),
    Enum("level", "word", ("word", "char"), "Tokens: words and punctuation with <eos> per line, or characters "
         "(char_rnn implies char)."),
    Enum("dataset", "embedded", ("embedded", "tiny_shakespeare", "lm1b", "pg19"), "The embedded corpus, or a "
         "tensorflow-datasets text set in --data_dir (ignored with --text_files)."),
    List("text_files", None, "Training text files (paths or globs; a blank line starts a document)."),
    List("validation_files", None, "Validation text files (default: a held-out --validation_fraction)."),
    List("test_files", None, "Test text files (default: the dataset's test split, else validation)."),
    Float("validation_fraction", 0.1, "Share of training documents (of lines, under 10 documents) held out.",
          above=0, below=1),
    Int("max_documents", 0, "Read at most this many documents per tensorflow-datasets split (0: all; lm1b and pg19 "
        "are held in memory).", at_least=0),
    Int("vocab_size", 10000, "Most frequent tokens kept, <unk> and <eos> included (Zaremba: 10,000).", at_least=3),
    Int("min_count", 2, "Word level: keep only words seen at least this often in training.", at_least=1),
    Bool("lowercase", None, "Lowercase the text (default: word level yes, as PTB; char level no)."),
    Int("seq_length", 20, "Truncated-BPTT length: tokens per row of a batch (Zaremba small 20, char-rnn 50).",
        at_least=1),
    Enum("document_boundaries", "reset", ("reset", "continue"), "reset: zero the state at every document start; "
         "continue: join everything into --global_batch_size streams (the PTB reader; for lm1b's sentences)."),
    Enum("optimizer", "adam", ("sgd", "adam", "rmsprop"), "adam (the default: minutes on a CPU), sgd (Zaremba: "
         "--learning_rate=1), or rmsprop (char-rnn: 2e-3, rho 0.95)."),
    Float("lr_decay", 0.5, "Factor on the rate every epoch after --decay_after_epochs (Zaremba small 0.5).",
          above=0, at_most=1),
    Int("decay_after_epochs", 4, "Epochs at the full rate before the decay starts (Zaremba small 4).", at_least=0),
    Int("epochs", 0, "Train this many epochs (sets --train_steps from the steps per epoch; 0: --train_steps); "
        "may be raised to continue a run.", role=FREE, at_least=0),
    Float("clip_norm", 5.0, "Clip the global gradient norm to this (Zaremba 5, large 10; 0: off).", at_least=0),
    Float("dropout", None, "Dropout on non-recurrent connections (default: the preset's; Zaremba 0/0.5/0.65).",
          role=MODEL, at_least=0, below=1),
    Float("init_scale", None, "Uniform(+-init_scale) initial weights (default: the preset's).", role=MODEL, above=0),
    Enum("cell", None, ("lstm", "gru", "simple_rnn"), "Override the preset's recurrent cell.", role=MODEL),
    Int("hidden_dim", None, "Override the preset's units per layer.", role=MODEL, at_least=1),
    Int("num_layers", None, "Override the preset's number of layers.", role=MODEL, at_least=1),
    Bool("paper_training", False, "Take seq_length, batch, optimizer, rate, decay, epochs and clipping from the "
         "preset's paper recipe for every one of those flags not given."),
    Int("sample_tokens", 60, "Tokens generated after a validation prompt for the log (0: none).", role=FREE,
        at_least=0),
    Float("temperature", 0.8, "Sampling temperature of the logged sample (0: greedy).", role=FREE, at_least=0),
    checks=[lambda hp: None if hp.model != "char_rnn" or hp.level == "char" or not zoo_flags.given("level") else
            "--model=char_rnn reads characters; drop --level=word or choose a word-level --model"],
)


def main(argv):
    del argv
    import os
    import time

    from zoo import create_model, recipe_support
    from zoo.data import language_modeling as lm
    from zoo.errors import ZooError
    from zoo.models.sequence import LanguageModel
    from zoo.models.sequence.rnn_lm_presets import PAPER_TRAINING
    from zoo.models.sequence.rnn_lm_serving import serving_endpoints
    from zoo.recipe_support import language_model as support
    from zoo.registry import trainable_params
    from zoo.training.trainer import Trainer

    hp = SPEC.values()
    level = "char" if hp.model == "char_rnn" else hp.level
    lowercase = (level == "word") if hp.lowercase is None else hp.lowercase
    training = support.paper_training(hp, PAPER_TRAINING[hp.model], zoo_flags.given, use_paper=hp.paper_training)
    B, T = training["global_batch_size"], training["seq_length"]
    strategy, chief = recipe_support.setup(hp)
    replicas = strategy.num_replicas_in_sync
    if B % replicas:
        raise ZooError(f"--global_batch_size={B} must be a multiple of the {replicas} replicas; use e.g. "
                       f"--global_batch_size={max(1, B // replicas) * replicas}")
    started = time.monotonic()
    corpus = lm.open_lm_corpus(hp.dataset, text_files=hp.text_files, validation_files=hp.validation_files,
                               test_files=hp.test_files, validation_fraction=hp.validation_fraction,
                               data_dir=hp.data_dir, download=hp.download, max_documents=hp.max_documents or None,
                               seed=hp.seed)
    vocab = support.run_vocabulary(hp.model_dir, corpus.documents("train"), level=level, vocab_size=hp.vocab_size,
                                   min_count=hp.min_count, lowercase=lowercase, chief=chief)
    layouts = {split: lm.stream_layout(lm.encode_documents(vocab, docs), B, T, hp.document_boundaries)
               for split, docs in corpus.splits.items()}
    steps_per_epoch = layouts["train"].steps
    train_steps = hp.train_steps
    if training["epochs"] and not (zoo_flags.given("train_steps") and not zoo_flags.given("epochs")):
        train_steps = training["epochs"] * steps_per_epoch
    unigram = lm.unigram_perplexity(layouts["train"], layouts["validation"], vocab.size)

    overrides = {k: v for k, v in hp.model_args(vocabulary_size=vocab.size).items() if v is not None}
    with strategy.scope():
        backbone = create_model(hp.model, **overrides)
        model = LanguageModel(backbone, per_replica_batch_size=B // replicas, clip_norm=training["clip_norm"] or None)
        schedule = support.zaremba_schedule(training["learning_rate"], lr_decay=training["lr_decay"],
                                            decay_after_epochs=training["decay_after_epochs"],
                                            steps_per_epoch=steps_per_epoch, train_steps=train_steps)
        model.compile(optimizer=support.make_optimizer(training["optimizer"], schedule))
    if chief:
        sizes = ", ".join(f"{layouts[s].tokens:,} {s}" for s in layouts)
        print(f"{hp.model} ({level} level, {backbone.cell}): {trainable_params(backbone):,} parameters; "
              f"{corpus.name}: {sizes} tokens; vocabulary {vocab.size:,}; {B} streams x {T} steps, "
              f"{steps_per_epoch} steps per epoch ({layouts['train'].padding:.1%} padding), {train_steps} steps "
              f"({train_steps / steps_per_epoch:.1f} epochs); {training['optimizer']} lr "
              f"{training['learning_rate']:g}; {replicas} replica(s); data ready in "
              f"{time.monotonic() - started:.1f} s", flush=True)
        print(f"unigram baseline (add-one, train counts) on validation: {support.describe(unigram, level)}",
              flush=True)

    def dataset_fn(ctx):
        return lm.lm_dataset(layouts["train"], ctx)

    def eval_fn(split):
        return lambda ctx: lm.lm_dataset(layouts[split], ctx, repeat=False)

    config = hp.run_config(**{k: v for k, v in training.items() if k != "epochs"}, level=level, lowercase=lowercase, vocabulary_size=vocab.size,
                           vocab_sha1=vocab.sha1, dataset=corpus.name)
    trainer_args = {**hp.trainer_args(), "global_batch_size": B, "train_steps": train_steps}
    trainer = Trainer(model, strategy=strategy, model_dir=hp.model_dir, dataset_fn=dataset_fn, config=config,
                      eval_dataset_fn=eval_fn("validation"), **trainer_args)
    train_started = time.monotonic()
    logs = trainer.train()
    seconds = time.monotonic() - train_started
    test_split = "test" if "test" in layouts else "validation"
    test = trainer.evaluate(eval_fn(test_split))  # the same compiled evaluation, on the test streams
    if chief:
        validation = logs.get("eval/perplexity", float("nan"))
        print(f"trained in {seconds:.0f} s; validation {support.describe(validation, level)} (unigram baseline "
              f"{unigram:.1f}); {test_split} {support.describe(test['perplexity'], level)}", flush=True)
        if hp.sample_tokens:
            prompt, continuation = support.sample_text(
                backbone, vocab, corpus.documents("validation")[0], num_tokens=hp.sample_tokens,
                temperature=hp.temperature, seed=hp.seed, prompt_tokens=10 if level == "word" else 40)
            shown = " ".join(continuation.split()) if level == "word" else repr(continuation)
            print(f"sample (temperature {hp.temperature:g}, seed {hp.seed}):\n  prompt: {prompt.strip()}\n  "
                  f"continuation: {shown}", flush=True)
        png = support.plot_curves(hp.model_dir, os.path.join(hp.model_dir, "perplexity.png"), level=level,
                                  unigram=unigram)
        print(f"wrote {png}", flush=True)
    if hp.export_dir:
        path = support.export_language_model(hp.export_dir, backbone, serving_endpoints(backbone), vocab,
                                             model_dir=hp.model_dir, chief=chief, strategy=strategy)
        if chief:
            print(f"exported {path}", flush=True)


if __name__ == "__main__":
    zoo_flags.run(main)
