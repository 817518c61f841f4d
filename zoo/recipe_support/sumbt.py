"""What recipes/sumbt_train.py needs beyond the flags: the run's data (official SUMBT format or the embedded
restaurant dialogues), its BERT vocabulary, the two encoders (fine-tuned utterance BERT and the frozen copy
that encodes the ontology), and the test report.

    data = run_data(model_dir, data_dir=None, unknown_values="error")           # DialogueStateData
    vocab = run_vocabulary(model_dir, data, vocab_file=None, init_checkpoint=None, config="bert_tiny",
                           vocab_size=1000, chief=True)
    backbone, kwargs = make_encoders("bert_tiny", vocab, init_checkpoint=None, dropout=0.1)
    frozen = frozen_copy("bert_tiny", kwargs, backbone, init_checkpoint=None)
    lines = report_lines(results, baseline, split="test")
"""

import os
import tempfile

from zoo.errors import ZooError

DATA_DIR = "data"  # under --model_dir: the embedded dialogues, written once
ONTOLOGY_FILE = "ontology.json"  # under --model_dir: the label lists in the model's order (an export asset)
RESULTS_FILE = "test_results.json"  # under --model_dir
CONFIGS = ("bert_tiny", "bert_base", "bert_large", "kobert_tiny", "kobert")


def run_data(model_dir, *, data_dir, unknown_values, verbose=True):
    """`--data_dir` in the official format, else the embedded restaurant dialogues (written to
    `<model_dir>/data/` on the first run), read through the same reader."""
    from zoo.data import dialogue_state, restaurant_dialogues

    if not data_dir:
        data_dir = restaurant_dialogues.write_default(os.path.join(model_dir, DATA_DIR))
    data = dialogue_state.open_dialogue_state(data_dir, unknown_values=unknown_values)
    mapped = {split: counts for split, counts in data.unknown.items() if counts}
    if mapped and verbose:
        print("values not in the ontology mapped to \"none\" (--unknown_values=none): " + "; ".join(
            f"{split} " + ", ".join(f"{slot} {n}" for slot, n in counts.items()) for split, counts in mapped.items()),
            flush=True)
    return data


def run_vocabulary(model_dir, data, *, vocab_file, init_checkpoint, config, vocab_size, chief):
    """The run's `BertVocabulary`, in order: `--vocab_file`; the one in `--model_dir` of a recorded run (one
    with config.json: a resumed run keeps its own); the `vocab.txt`/`spiece.model` beside `--init_checkpoint`;
    else one trained on the training dialogues and the ontology (WordPiece; SentencePiece for a `kobert*`
    config). Unless the run is recorded, the chief saves it in `--model_dir` (atomically), replacing what an
    aborted first run left there (config.json then keeps its SHA-1, so a different one is refused)."""
    from zoo.data import dialogue_state, wordpiece
    from zoo.data.bert_vocabulary import FILE_NAMES, BertVocabulary, load_bert_vocabulary
    from zoo.data.bert_vocabulary import train_sentencepiece_vocabulary, vocabulary_file_in
    from zoo.recipe_support.bert_data import check_uncased, checkpoint_run_vocabulary
    from zoo.training.trainer import CONFIG_FILE

    if init_checkpoint and not os.path.exists(init_checkpoint):
        raise ZooError(f"--init_checkpoint={init_checkpoint} does not exist; give a Hugging Face BERT directory "
                       "(config.json + model.safetensors) or keras-hub BertBackbone weights")
    recorded = os.path.exists(os.path.join(model_dir, CONFIG_FILE))
    own = vocabulary_file_in(model_dir) if recorded else None
    if vocab_file:
        vocab = load_bert_vocabulary(vocab_file, flag="--vocab_file")
    elif own:
        vocab = load_bert_vocabulary(own, flag="--model_dir")
    elif init_checkpoint:
        vocab = checkpoint_run_vocabulary(init_checkpoint)
    else:
        texts = dialogue_state.vocabulary_texts(data)
        if config.startswith("kobert"):
            vocab = train_sentencepiece_vocabulary(texts, vocab_size)
        else:
            vocab = BertVocabulary.from_wordpiece(wordpiece.train_vocabulary([texts], vocab_size))
    if init_checkpoint:
        check_uncased(init_checkpoint, vocab)
    if chief and not recorded:
        for name in FILE_NAMES.values():  # an aborted run's vocabulary of the other kind
            if name != vocab.file_name and os.path.exists(os.path.join(model_dir, name)):
                os.remove(os.path.join(model_dir, name))
        vocab.save(model_dir)
    return vocab


def vocabulary_file(model_dir, vocab, chief):
    """The vocabulary file for the export's assets: the run's own; other workers save a private copy."""
    from zoo.data.bert_vocabulary import vocabulary_file_in

    own = vocabulary_file_in(model_dir) if chief else None
    if own:
        return own
    return vocab.save(tempfile.mkdtemp(prefix="zoo-vocab-"))


def ontology_file(model_dir, data, chief):
    """`<model_dir>/ontology.json`: {slot: label list} in the order of the model's slots and value ids (the
    serving outputs index into it); other workers write a private copy."""
    from zoo.paths import write_file_atomically

    directory = model_dir if chief else tempfile.mkdtemp(prefix="zoo-ontology-")
    path = os.path.join(directory, ONTOLOGY_FILE)
    write_file_atomically(path, data.ontology_json())
    return path


def make_encoders(config, vocab, *, init_checkpoint, dropout):
    """The utterance backbone: the `config` preset (the checkpoint's own config when `--init_checkpoint` is
    given) sized to `vocab`, with the checkpoint's weights; build it inside the strategy's scope. Returns it
    and the keyword arguments that built it (for `frozen_copy`)."""
    import zoo

    kwargs = {"vocabulary_size": len(vocab), "dropout": dropout}
    if init_checkpoint:
        from zoo.models.bert.bert_checkpoints import backbone_config, load_bert_weights

        kwargs = {**backbone_config(init_checkpoint), **kwargs}
    backbone = zoo.create_model(config, **kwargs)
    if init_checkpoint:
        load_bert_weights(backbone, init_checkpoint, flag="--init_checkpoint")
    return backbone, kwargs


def frozen_copy(config, kwargs, backbone, *, init_checkpoint):
    """The frozen slot/value encoder, outside any strategy: the checkpoint's weights, or the utterance
    backbone's initial ones."""
    import zoo

    frozen = zoo.create_model(config, **kwargs)
    if init_checkpoint:
        from zoo.models.bert.bert_checkpoints import load_bert_weights

        load_bert_weights(frozen, init_checkpoint, flag="--init_checkpoint")
    else:
        frozen.set_weights([w.numpy() if hasattr(w, "numpy") else w for w in backbone.get_weights()])
    frozen.trainable = False
    return frozen


def report_lines(results, slots, *, split, baseline=None, best=None):
    """Lines of the final report: joint, slot and per-slot accuracy (and the majority baseline)."""
    from zoo.models.sumbt.sumbt_metrics import metric_name

    lines = [f"{split}: joint goal accuracy {results['joint_accuracy']:.4f}, slot accuracy "
             f"{results['slot_accuracy']:.4f}, loss {results['loss']:.4f}"]
    lines.append("  per slot: " + ", ".join(f"{slot} {results[metric_name(slot)]:.4f}" for slot in slots))
    if baseline:
        lines.append(f"  majority baseline (most frequent training state / value): joint "
                     f"{baseline['joint_accuracy']:.4f}, slot {baseline['slot_accuracy']:.4f}")
    if best:
        lines.append(f"  weights of step {best['step']} (best dev joint accuracy {best['joint_accuracy']:.4f})")
    return lines


def write_results(model_dir, results, slots, *, baseline, best, extra=None):
    """`<model_dir>/test_results.json` (atomically): the test metrics, per-slot accuracies by slot name,
    the majority baseline and the step of the weights."""
    from zoo.models.sumbt.sumbt_metrics import metric_name
    from zoo.paths import write_json_atomically

    report = {"joint_accuracy": results["joint_accuracy"], "slot_accuracy": results["slot_accuracy"],
              "loss": results["loss"], "per_slot_accuracy": {s: results[metric_name(s)] for s in slots},
              "majority_baseline": baseline, "best": best, **(extra or {})}
    return write_json_atomically(os.path.join(model_dir, RESULTS_FILE), report)
