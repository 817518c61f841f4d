"""BERT pretraining examples (masked LM + next sentence) made as google-research/bert's
`create_pretraining_data.py` makes them, and a deterministic `tf.data` pipeline over them.

Each example is `[CLS] A [SEP] B [SEP]` padded to `seq_length`. A and B are runs of whole sentences; half the
time B is taken from a random other document (`nsp_labels` 1 = random, 0 = B really follows A). Of the real
tokens, `min(max_predictions, max(1, round(masked_lm_prob * n)))` non-[CLS]/[SEP] positions are chosen; each
becomes [MASK] with probability 0.8, else stays unchanged or becomes a random vocabulary token with
probability 0.5 each. The random draws follow the original's order (a `random.Random(seed)` used call for
call as the original uses it), so the same tokens and seed give the same examples.

With `whole_word_mask` (the original's `--do_whole_word_mask`, off by default there and here) the candidates
are whole words: a piece that does not start a word (WordPiece `##x`; SentencePiece: no leading "▁") joins the
candidate before it; the words are shuffled and taken in turn, a word skipped when it would take the count
past `num_to_predict`, so exactly as many pieces as without it are predicted at most. Without it every
candidate is one piece and the draws are the same as before.

Example:
```python
documents = text_sources.load_documents()
vocabulary = wordpiece.train_vocabulary(documents, 8000, "/tmp/vocab.txt")   # or a BertVocabulary
examples = create_examples(documents, vocabulary, seq_length=128, max_predictions=20, whole_word_mask=True)
dataset = make_dataset(examples, global_batch_size=32)
batch = next(iter(dataset))   # dict of the 7 FEATURES, first dimension 32
```
"""

import collections
import random
import weakref

import numpy as np

from zoo.data import bert_vocabulary
from zoo.data.distribute import per_replica_batch_size
from zoo.errors import ZooError

FEATURES = ("token_ids", "segment_ids", "padding_mask", "mask_positions", "mask_ids", "mask_weights", "nsp_labels")

# One sequence before padding: token ids, length of [CLS] A [SEP], the NSP label, masked positions and their
# original token ids.
_Instance = collections.namedtuple("_Instance", ["tokens", "first_length", "is_random_next", "positions", "labels"])


def create_examples(
    documents,
    tokenizer_or_vocab,
    seq_length,
    max_predictions,
    *,
    dupe_factor=5,
    short_seq_prob=0.1,
    masked_lm_prob=0.15,
    seed=12345,
    tokenize_batch_size=4096,
    whole_word_mask=False,
):
    """Makes static-shape pretraining examples from documents of sentences.

    Args:
        documents: list of documents, each a list of sentence strings (see `zoo.data.text_sources`).
        tokenizer_or_vocab: a `BertVocabulary` (WordPiece or SentencePiece), a keras-hub `WordPieceTokenizer`,
            a WordPiece vocabulary (list of tokens) or a vocabulary path (vocab.txt or .model).
        seq_length: tokens per example, including [CLS] and the two [SEP].
        max_predictions: masked positions per example (padded with weight 0).
        dupe_factor: passes over the corpus, each with different pairs and masks.
        short_seq_prob: probability of aiming at a random shorter length instead of `seq_length`.
        masked_lm_prob: fraction of tokens to predict.
        seed: seed of the one random generator that makes every choice.
        tokenize_batch_size: sentences per tokenizer call.
        whole_word_mask: mask whole words (see the module docstring).

    Returns:
        A dict of numpy arrays, N examples: `token_ids`, `segment_ids`, `padding_mask` (1 = real token)
        [N, seq_length] int32; `mask_positions`, `mask_ids` (original tokens) [N, max_predictions] int32;
        `mask_weights` [N, max_predictions] float32; `nsp_labels` [N] int32.
    """
    check_arguments(seq_length, max_predictions, dupe_factor, short_seq_prob, masked_lm_prob)
    tokenizer, vocabulary = tokenizer_and_vocabulary(tokenizer_or_vocab)
    ids = vocabulary.special_ids
    all_documents = tokenize_documents(documents, tokenizer, tokenize_batch_size)
    if len(all_documents) < 2:
        raise ZooError(
            f"next-sentence prediction needs at least 2 documents with text, found {len(all_documents)}; "
            "separate documents with a blank line in --input_files or give a larger corpus"
        )
    instances = create_instances(
        all_documents, random.Random(seed), len(vocabulary), ids, seq_length=seq_length,
        max_predictions=max_predictions, dupe_factor=dupe_factor, short_seq_prob=short_seq_prob,
        masked_lm_prob=masked_lm_prob, word_starts=vocabulary.word_starts if whole_word_mask else None,
    )
    return _to_arrays(instances, seq_length, max_predictions, ids["pad"])


def create_instances(all_documents, rng, vocab_size, ids, *, seq_length, max_predictions, dupe_factor,
                     short_seq_prob, masked_lm_prob, convert=None, word_starts=None):
    """The original's example loop over tokenised documents, every random draw taken from `rng` in its order.

    Shuffles `all_documents` (in place), makes `dupe_factor` passes of sentence-pair instances over them and
    shuffles the result. `convert(instance)`, when given, turns each instance into what is kept (e.g. a
    serialised record) as soon as it is made; it draws nothing, so the draws do not depend on it.
    `word_starts` (bool [vocab_size], `BertVocabulary.word_starts`) turns on whole-word masking.
    `create_examples` and the TFRecord writer (`zoo.data.bert_shards`) both make their examples here.
    """
    rng.shuffle(all_documents)
    instances = []
    for _ in range(dupe_factor):
        for document_index in range(len(all_documents)):
            made = _document_instances(
                all_documents, document_index, seq_length, short_seq_prob, masked_lm_prob, max_predictions,
                vocab_size, ids, rng, word_starts,
            )
            instances.extend(map(convert, made) if convert else made)
    rng.shuffle(instances)
    return instances


def instance_features(instance, seq_length, max_predictions, pad_id):
    """One instance as padded lists, keyed by `FEATURES` (the rows `create_examples` returns)."""
    length, count = len(instance.tokens), len(instance.positions)
    pad = max_predictions - count
    return {
        "token_ids": instance.tokens + [pad_id] * (seq_length - length),
        "segment_ids": [0] * instance.first_length + [1] * (length - instance.first_length) + [0] * (seq_length - length),
        "padding_mask": [1] * length + [0] * (seq_length - length),
        "mask_positions": instance.positions + [0] * pad,
        "mask_ids": instance.labels + [0] * pad,
        "mask_weights": [1.0] * count + [0.0] * pad,
        "nsp_labels": [int(instance.is_random_next)],
    }


def tokenize_documents(documents, tokenizer, batch_size=4096):
    """Tokenises every sentence (in batches) and returns documents of id lists without empty sentences/documents."""
    sentences = [s for document in documents for s in document]
    # A graph is 5x faster per sentence but costs a trace: worth it past one batch.
    tokenize = _compiled_tokenizer(tokenizer) if len(sentences) > batch_size else _eager_tokenizer(tokenizer)
    tokens = []
    for start in range(0, len(sentences), batch_size):
        tokens.extend(tokenize(sentences[start : start + batch_size]))
    tokenized, start = [], 0
    for document in documents:
        pieces = [t for t in tokens[start : start + len(document)] if len(t)]
        start += len(document)
        if pieces:
            tokenized.append(pieces)
    return tokenized


def _eager_tokenizer(tokenizer):
    import tensorflow as tf

    def tokenize(sentences):
        out = tokenizer(sentences)
        if isinstance(out, tf.RaggedTensor):
            out = out.to_list()
        elif hasattr(out, "tolist"):
            out = out.tolist()
        return [list(t) for t in out]

    return tokenize


_COMPILED = weakref.WeakKeyDictionary()


def _compiled_tokenizer(tokenizer):
    """`strings -> lists of ids` through the tokenizer in a `tf.function` (5x faster than eager calls)."""
    import tensorflow as tf

    if tokenizer not in _COMPILED:
        graph = tf.function(tokenizer.tokenize, input_signature=[tf.TensorSpec([None], tf.string)])

        def tokenize(sentences):
            out = graph(tf.constant(sentences, tf.string))
            flat, splits = out.flat_values.numpy().tolist(), out.row_splits.numpy().tolist()
            return [flat[a:b] for a, b in zip(splits[:-1], splits[1:])]

        _COMPILED[tokenizer] = tokenize
    return _COMPILED[tokenizer]


def make_dataset(examples, global_batch_size, input_context=None, seed=0):
    """A repeated, deterministically shuffled `tf.data.Dataset` of per-replica batches of `examples`.

    The global order is one stateless permutation of the examples per epoch (from `seed` and the epoch number,
    independent of TensorFlow's global seed). Per-replica batch k of the single-pipeline dataset is the k-th
    slice of that order, and input pipeline `i` of `p` yields slices i, i+p, i+2p, ... So one global step holds the
    same examples for any replica and worker count, and skipping k batches resumes exactly.
    """
    import tensorflow as tf

    n = _check_examples(examples)
    batch_size = per_replica_batch_size(global_batch_size, input_context)
    tensors = {name: tf.constant(examples[name]) for name in FEATURES}

    seed = tf.constant(seed, tf.int64)

    def epoch_order(epoch):  # a stateless permutation per epoch: the same in every process
        return tf.random.experimental.stateless_shuffle(tf.range(n, dtype=tf.int64), seed=tf.stack([seed, epoch]))

    ds = tf.data.Dataset.counter().map(epoch_order).unbatch().batch(batch_size, drop_remainder=True)
    if input_context is not None and input_context.num_input_pipelines > 1:
        ds = ds.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
    ds = ds.map(
        lambda index: {name: tf.gather(value, index) for name, value in tensors.items()},
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    return ds.prefetch(tf.data.AUTOTUNE)


def unigram_baseline(examples):
    """MLM accuracy of always predicting the most frequent masked token (over real masked positions)."""
    labels = np.asarray(examples["mask_ids"])[np.asarray(examples["mask_weights"]) > 0]
    if labels.size == 0:
        return 0.0
    return float(np.bincount(labels).max() / labels.size)


def _document_instances(all_documents, document_index, seq_length, short_seq_prob, masked_lm_prob,
                        max_predictions, vocab_size, ids, rng, word_starts=None):
    """Sentence-pair instances from one document, as the original's `create_instances_from_document`."""
    document = all_documents[document_index]
    max_num_tokens = seq_length - 3  # room for [CLS], [SEP], [SEP]
    # Usually fill the sequence; sometimes (short_seq_prob) aim shorter to match fine-tuning inputs.
    target_length = max_num_tokens
    if rng.random() < short_seq_prob:
        target_length = rng.randint(2, max_num_tokens)
    instances = []
    chunk, chunk_length, i = [], 0, 0
    while i < len(document):
        chunk.append(document[i])
        chunk_length += len(document[i])
        if i == len(document) - 1 or chunk_length >= target_length:
            # The first a_end sentences of the chunk form A.
            a_end = rng.randint(1, len(chunk) - 1) if len(chunk) >= 2 else 1
            tokens_a = [t for sentence in chunk[:a_end] for t in sentence]
            tokens_b = []
            if len(chunk) == 1 or rng.random() < 0.5:
                is_random_next = True
                target_b_length = target_length - len(tokens_a)
                for _ in range(10):  # try to pick another document
                    random_index = rng.randint(0, len(all_documents) - 1)
                    if random_index != document_index:
                        break
                random_document = all_documents[random_index]
                for sentence in random_document[rng.randint(0, len(random_document) - 1) :]:
                    tokens_b.extend(sentence)
                    if len(tokens_b) >= target_b_length:
                        break
                # The chunk's unused sentences go back to be used by the next chunk.
                i -= len(chunk) - a_end
            else:
                is_random_next = False
                tokens_b = [t for sentence in chunk[a_end:] for t in sentence]
            _truncate_pair(tokens_a, tokens_b, max_num_tokens, rng)
            tokens = [ids["cls"], *tokens_a, ids["sep"], *tokens_b, ids["sep"]]
            tokens, positions, labels = _mask_tokens(tokens, masked_lm_prob, max_predictions, vocab_size, ids, rng,
                                                     word_starts)
            instances.append(_Instance(tokens, len(tokens_a) + 2, is_random_next, positions, labels))
            chunk, chunk_length = [], 0
        i += 1
    return instances


def _truncate_pair(tokens_a, tokens_b, max_num_tokens, rng):
    """Drops tokens from the front or back (at random) of the longer sequence until the pair fits."""
    while len(tokens_a) + len(tokens_b) > max_num_tokens:
        longer = tokens_a if len(tokens_a) > len(tokens_b) else tokens_b
        if rng.random() < 0.5:
            del longer[0]
        else:
            longer.pop()


def _mask_tokens(tokens, masked_lm_prob, max_predictions, vocab_size, ids, rng, word_starts=None):
    """Chooses positions to predict and corrupts them 80% [MASK] / 10% unchanged / 10% random token, as the
    original's `create_masked_lm_predictions` (whole words when `word_starts` is given)."""
    groups = []
    for i, t in enumerate(tokens):
        if t == ids["cls"] or t == ids["sep"]:
            continue
        if word_starts is not None and groups and not word_starts[t]:
            groups[-1].append(i)  # continues the word before it
        else:
            groups.append([i])
    rng.shuffle(groups)
    count = min(max_predictions, max(1, int(round(len(tokens) * masked_lm_prob))))
    output, chosen = list(tokens), []
    for group in groups:
        if len(chosen) >= count:
            break
        if len(chosen) + len(group) > count:
            continue  # the whole word would not fit
        for index in group:
            chosen.append(index)
            if rng.random() < 0.8:
                output[index] = ids["mask"]
            elif rng.random() < 0.5:
                pass  # keep the original token
            else:
                output[index] = rng.randint(0, vocab_size - 1)  # any vocabulary entry, as the original
    chosen.sort()
    return output, chosen, [tokens[i] for i in chosen]


def _to_arrays(instances, seq_length, max_predictions, pad_id):
    rows = [instance_features(instance, seq_length, max_predictions, pad_id) for instance in instances]
    arrays = {}
    for name in FEATURES:
        dtype = np.float32 if name == "mask_weights" else np.int32
        width = seq_length if name in ("token_ids", "segment_ids", "padding_mask") else max_predictions
        shape = (len(rows),) if name == "nsp_labels" else (len(rows), width)
        arrays[name] = np.array([row[name] for row in rows], dtype).reshape(shape)
    return arrays


def tokenizer_and_vocabulary(tokenizer_or_vocab):
    """`(tokenizer, BertVocabulary)` of what `create_examples` accepts."""
    if hasattr(tokenizer_or_vocab, "get_vocabulary"):  # a keras-hub WordPiece tokenizer
        if getattr(tokenizer_or_vocab, "sequence_length", None):
            raise ZooError("give create_examples a tokenizer without sequence_length (it packs sentences itself)")
        return tokenizer_or_vocab, bert_vocabulary.BertVocabulary.from_wordpiece(tokenizer_or_vocab.get_vocabulary())
    vocabulary = bert_vocabulary.as_vocabulary(tokenizer_or_vocab)
    return vocabulary.tokenizer, vocabulary


def check_arguments(seq_length, max_predictions, dupe_factor, short_seq_prob, masked_lm_prob):
    if seq_length < 5:
        raise ZooError(f"--seq_length must be at least 5 ([CLS] A [SEP] B [SEP] with 2 text tokens), got {seq_length}")
    if max_predictions < 1:
        raise ZooError(f"--max_predictions must be at least 1, got {max_predictions}")
    if dupe_factor < 1:
        raise ZooError(f"dupe_factor must be at least 1, got {dupe_factor}")
    if not 0.0 <= short_seq_prob <= 1.0:
        raise ZooError(f"short_seq_prob must be in [0, 1], got {short_seq_prob}")
    if not 0.0 < masked_lm_prob <= 1.0:
        raise ZooError(f"masked_lm_prob must be in (0, 1], got {masked_lm_prob}")


def _check_examples(examples):
    missing = [name for name in FEATURES if name not in examples]
    if missing:
        raise ZooError(f"examples lack the features {missing}; make them with create_examples")
    n = len(examples["nsp_labels"])
    if n == 0:
        raise ZooError("there are no pretraining examples; give a larger corpus")
    if any(len(examples[name]) != n for name in FEATURES):
        raise ZooError("the example features have different numbers of rows")
    return n
