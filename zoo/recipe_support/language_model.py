"""What recipes/rnn_lm.py needs beyond the flags: the paper's training settings, the run's vocabulary, the
learning-rate schedule, the optimizer, a printed sample and the learning-curve plot.

    training = paper_training(hp, PAPER_TRAINING[hp.model], explicit=lambda name: FLAGS[name].present)
    vocab = run_vocabulary(model_dir, corpus.documents("train"), level="word", vocab_size=10000, min_count=2,
                           lowercase=True, chief=True)                   # <model_dir>/vocab.txt
    schedule = zaremba_schedule(1.0, lr_decay=0.5, decay_after_epochs=4, steps_per_epoch=76, train_steps=988)
"""

import os

from zoo.errors import ZooError

VOCAB_FILE = "vocab.txt"  # under --model_dir, and in the export's assets
TRAINING_KEYS = ("seq_length", "global_batch_size", "optimizer", "learning_rate", "lr_decay", "decay_after_epochs",
                 "epochs", "clip_norm")


def paper_training(hp, paper, explicit, use_paper=True, keys=TRAINING_KEYS):
    """The training settings (`keys`, default `TRAINING_KEYS`) of the run: each flag's value, or, with
    `use_paper`, the value in `paper` (a `PAPER_TRAINING` entry) for every flag the user did not give
    (`explicit(name)` is False)."""
    values = {key: hp[key] for key in keys}
    if use_paper:
        values.update({key: paper[key] for key in keys if key in paper and not explicit(key)})
    return values


def run_vocabulary(model_dir, train_documents, *, level, vocab_size, min_count, lowercase, chief):
    """The run's vocabulary, built from the training documents (deterministic, so every worker builds the same
    one). The chief writes it to `<model_dir>/vocab.txt`; a vocab.txt already there that differs (other data
    or flags in the same --model_dir) is a one-line error."""
    from zoo.data.lm_vocabulary import LMVocabulary

    vocab = LMVocabulary.build(train_documents, level, vocab_size=vocab_size,
                               min_count=min_count if level == "word" else 1, lowercase=lowercase)
    return keep_vocabulary(model_dir, vocab, lambda path: LMVocabulary.load(path, level, lowercase), chief=chief)


def keep_vocabulary(model_dir, vocab, load, *, chief):
    """`vocab` (anything with `sha1` and `save(path)`), checked against `<model_dir>/vocab.txt` read with
    `load(path)` when that exists (a different one is a one-line error), else written there by the chief."""
    import tensorflow as tf

    path = os.path.join(model_dir, VOCAB_FILE)
    if tf.io.gfile.exists(path):
        saved = load(path)
        if saved.sha1 != vocab.sha1:
            raise ZooError(f"{path} holds another vocabulary ({saved.size} tokens, SHA-1 {saved.sha1[:12]}) than "
                           f"this data and flags give ({vocab.size} tokens, {vocab.sha1[:12]}); use a new "
                           "--model_dir, or the data and flags of that run to resume it")
    elif chief:
        vocab.save(path)
    return vocab


def zaremba_schedule(learning_rate, *, lr_decay, decay_after_epochs, steps_per_epoch, train_steps):
    """The PTB tutorial's rate: `learning_rate * lr_decay ** max(epoch + 1 - decay_after_epochs, 0)` in (0-based)
    epoch `epoch`, as a `PiecewiseConstantDecay` over steps (a float when it never decays within train_steps)."""
    import keras

    epochs = -(-train_steps // steps_per_epoch)
    changes = list(range(decay_after_epochs, epochs)) if lr_decay != 1.0 else []
    if not changes:
        return float(learning_rate)
    # The optimizer's step counts the updates already made: step e*spe is the first of epoch e.
    boundaries = [e * steps_per_epoch - 1 for e in changes]
    values = [float(learning_rate * lr_decay ** k) for k in range(len(changes) + 1)]
    return keras.optimizers.schedules.PiecewiseConstantDecay(boundaries, values)


def describe(perplexity, level):
    """"perplexity P" (word level), or "B bits per character (perplexity P)" (char level: log2 P)."""
    import math

    if level == "char":
        return f"{math.log2(perplexity):.3f} bits per character (perplexity {perplexity:.2f})"
    return f"perplexity {perplexity:.1f}"


def make_optimizer(name, schedule):
    """sgd (Zaremba), adam, or rmsprop with rho 0.95 (char-rnn's decay_rate)."""
    import keras

    if name == "sgd":
        return keras.optimizers.SGD(schedule)
    if name == "adam":
        return keras.optimizers.Adam(schedule)
    if name == "rmsprop":
        return keras.optimizers.RMSprop(schedule, rho=0.95)
    raise ZooError(f"unknown --optimizer={name!r}; choose sgd, adam or rmsprop")


def sample_text(backbone, vocab, prompt_text, *, num_tokens, temperature, seed, prompt_tokens):
    """(prompt, continuation) strings: `num_tokens` tokens sampled after the first `prompt_tokens` tokens of
    `prompt_text` (`zoo.models.sequence.rnn_lm_serving.generate`, seeded)."""
    import numpy as np

    from zoo.models.sequence.rnn_lm_serving import generate

    ids = vocab.encode(prompt_text)[:prompt_tokens]
    if vocab.level == "word" and len(ids) and ids[-1] == vocab.eos_id:
        ids = ids[:-1]
    if not len(ids):
        ids = np.array([vocab.eos_id if vocab.eos_id is not None else 0], np.int32)
    out = generate(backbone, ids[None], np.array([len(ids)], np.int32), num_tokens=num_tokens,
                   temperature=temperature, seed=seed)
    return vocab.decode(ids), vocab.decode(out[0])


def read_scalars(log_dir):
    """{tag: [(step, value), ...]} of the scalar summaries in a TensorBoard directory (every run appended)."""
    import tensorflow as tf
    from tensorflow.core.util import event_pb2

    scalars = {}
    for name in sorted(tf.io.gfile.listdir(log_dir)) if tf.io.gfile.isdir(log_dir) else []:
        for record in tf.data.TFRecordDataset(os.path.join(log_dir, name)):
            event = event_pb2.Event.FromString(record.numpy())
            for v in event.summary.value:
                if v.HasField("tensor"):
                    scalars.setdefault(v.tag, {})[event.step] = float(tf.make_ndarray(v.tensor))
    return {tag: sorted(points.items()) for tag, points in scalars.items()}


def plot_curves(model_dir, path, *, level, unigram):
    """A PNG of training and validation perplexity (bits per character at char level) against the step, from
    the run's TensorBoard logs (so a resumed run shows its whole history), with the unigram baseline."""
    import math

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def convert(p):
        return math.log2(p) if level == "char" else p

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for split, style in (("train", "-"), ("eval", "o-")):
        points = read_scalars(os.path.join(model_dir, split)).get("perplexity", [])
        if points:
            ax.plot([s for s, _ in points], [convert(p) for _, p in points], style,
                    label="training (mean over the log interval)" if split == "train" else "validation")
    ax.axhline(convert(unigram), color="gray", linestyle="--", label="unigram baseline")
    ax.set_xlabel("step")
    ax.set_ylabel("bits per character" if level == "char" else "perplexity")
    if level != "char":
        ax.set_yscale("log")
    ax.legend()
    ax.set_title(f"{os.path.basename(os.path.normpath(model_dir))}: {level}-level language model")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def export_language_model(export_dir, backbone, endpoints, vocab, *, model_dir, chief, strategy):
    """Exports `backbone` with `endpoints` and the run's vocabulary in the assets (`VOCAB_FILE`); workers other
    than the chief write a throw-away export with a copy of the vocabulary. Returns the export's path."""
    import tempfile

    from zoo.training.export import export_saved_model

    vocab_file = os.path.join(model_dir, VOCAB_FILE)
    if not chief:
        vocab_file = os.path.join(tempfile.mkdtemp(prefix="zoo-vocab-"), VOCAB_FILE)
        vocab.save(vocab_file)
    return export_saved_model(export_dir, backbone, endpoints, assets={VOCAB_FILE: vocab_file}, strategy=strategy)
