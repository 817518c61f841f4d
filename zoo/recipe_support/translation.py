"""What recipes/transformer_translate.py needs beyond the flags: the run's subword model, BLEU of decoded
output (during training, as a `Trainer` evaluation extra, and in the final table), example translations.

    model = run_subword_model(model_dir, data, vocab_file=None, vocab_size=8000, chief=True)
    sources = SourceBatches(model, texts, max_length=128, batch_size=64)
    bleu = corpus_bleu(translate_texts(translator, model, sources, beam_size=4), references)
"""

import os
import time

import numpy as np

from zoo.errors import ZooError

SUBWORD_FILE = "subword.model"  # under --model_dir


def run_subword_model(model_dir, data, *, vocab_file, vocab_size, chief, max_sentences=1_000_000, wait=3600.0):
    """The run's shared SentencePiece model: `--vocab_file` (the chief copies it to `<model_dir>/subword.model`
    when there is none yet, so the run keeps its vocabulary); else `<model_dir>/subword.model` (a resumed run
    keeps its vocabulary); else the chief trains one on the training pairs (source and target sentences, at
    most `max_sentences` pairs) and saves it there, while the other workers wait for it. A vocabulary other
    than the run's is refused later by the run's config check (its SHA-1)."""
    import tensorflow as tf

    from zoo.data import subword, translation

    own = os.path.join(model_dir, SUBWORD_FILE)
    if vocab_file:
        model = subword.load_subword_model(vocab_file)
        if chief and not tf.io.gfile.exists(own):
            model.save(own)
        return model
    if not chief:
        start = time.monotonic()
        while not tf.io.gfile.exists(own):
            if time.monotonic() - start > wait:
                raise ZooError(f"the chief did not write {own} within {wait:g} s; check its log, or pass --vocab_file")
            time.sleep(2.0)
    if tf.io.gfile.exists(own):
        return subword.load_subword_model(own)

    started = time.monotonic()
    model = subword.train_subword_model(translation.subword_texts(data, limit=max_sentences), vocab_size, own,
                                        split_digits=data.split_digits)
    print(f"trained a shared {model.vocabulary_size}-piece BPE vocabulary in {time.monotonic() - started:.1f} s: "
          f"{own}", flush=True)
    return model


class SourceBatches:
    """Source sentences tokenized once (ids + EOS, truncated to `max_length`, as the training pipeline does),
    in right-padded int32 batches of at most `batch_size`, for decoding."""

    def __init__(self, subword_model, texts, *, max_length, batch_size):
        from zoo.data.subword import EOS_ID

        rows = [(ids[:max_length - 1] + [EOS_ID]) for ids in subword_model.encode(list(texts))]
        self.batches = []
        for start in range(0, len(rows), batch_size):
            chunk = rows[start:start + batch_size]
            batch = np.zeros((len(chunk), max(map(len, chunk))), "int32")
            for i, ids in enumerate(chunk):
                batch[i, :len(ids)] = ids
            self.batches.append(batch)

    def __len__(self):
        return sum(len(b) for b in self.batches)


def make_decoder(translator, *, beam_size, alpha, extra_length):
    """A compiled `source_ids -> (ids, lengths)` of `translator.translate` (one trace for every shape)."""
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32)])
    def decode(source_ids):
        out = translator.translate(source_ids, beam_size=beam_size, alpha=alpha, extra_length=extra_length)
        return out["ids"], out["lengths"]

    return decode


def translate_texts(decode, subword_model, sources):
    """Detokenized translations of `sources` (`SourceBatches`) with `decode` (from `make_decoder`)."""
    texts = []
    for batch in sources.batches:
        ids, lengths = decode(batch)
        ids, lengths = np.asarray(ids), np.asarray(lengths)
        texts.extend(subword_model.decode(row[:n]) for row, n in zip(ids, lengths))
    return texts


def corpus_bleu(hypotheses, references):
    """sacreBLEU's corpus BLEU (13a tokenization, exp smoothing: its defaults, the WMT convention)."""
    import sacrebleu

    return float(sacrebleu.corpus_bleu(list(hypotheses), [list(references)]).score)


def bleu_extra(translator, subword_model, sources, references, *, beam_size, alpha, extra_length):
    """A `Trainer` evaluation extra: `{"bleu": ...}` of beam-search output on `sources` against `references`."""
    decode = make_decoder(translator, beam_size=beam_size, alpha=alpha, extra_length=extra_length)

    def bleu():
        return {"bleu": corpus_bleu(translate_texts(decode, subword_model, sources), references)}

    return bleu


def final_table(translator, subword_model, sources, references, *, split, beam_size, alpha, extra_length):
    """Lines of a BLEU table (greedy and beam) on `split`, and the beam translations."""
    rows, beam_texts = [], None
    for name, beam in (("greedy", 1), (f"beam {beam_size}, alpha {alpha:g}", beam_size)):
        decode = make_decoder(translator, beam_size=beam, alpha=alpha, extra_length=extra_length)
        decode(sources.batches[0][:1])  # trace outside the timing
        started = time.monotonic()
        texts = translate_texts(decode, subword_model, sources)
        seconds = time.monotonic() - started
        rows.append(f"| {name} | {corpus_bleu(texts, references):.2f} | {len(texts) / seconds:.1f} |")
        beam_texts = texts
    header = [f"BLEU on {len(sources)} {split} sentences (sacreBLEU, detokenized):",
              "| decoding | BLEU | sentences/s |", "|---|---|---|"]
    return header + rows, beam_texts
