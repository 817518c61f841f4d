"""Dialogue state tracking data for SUMBT: WOZ 2.0 / MultiWOZ in the official SUMBT tsv + ontology format,
tokenized into fixed-shape arrays (dialogues x turns x tokens) with a `BertVocabulary`.

The format, as SKTBrain/SUMBT ships and converts it (code/main-multislot.py `Processor`,
`convert_examples_to_features`, `get_label_embedding`; data/woz/original/convert_to_glue_format.py):

- `train.tsv`, `dev.tsv`, `test.tsv`, tab-separated, one line per turn, the turns of a dialogue consecutive.
  Columns: 0 dialogue id, 1 turn index, 2 user utterance (text_a), 3 system utterance (text_b: the system turn
  BEFORE the user's, empty at turn 0), 4.. the turn's ACCUMULATED belief state, one value per slot, slots in
  sorted order, "none" when unset and "dontcare" for "do not care". Lines starting with "#" are comments;
  MultiWOZ's first line is such a header naming the columns (`# Dialogue ID<TAB>Turn Index<TAB>User
  Utterance<TAB>System Response<TAB>attraction-area<TAB>...`); WOZ's files have none.
- The ontology: `ontology.json` (MultiWOZ: {"domain-slot": [values]}; the processor appends "none") or WOZ's
  `ontology_dstc2_en.json` ({"informable": {"area": [...], "food": [...], "price range": [...], "request": ...}};
  "request" is dropped, "do not care" then "none" are appended to every slot). Slots are sorted by name;
  a slot's label list (the class ids) is its values in file order followed by the appended ones. A tsv
  "dontcare" is the label "do not care". The slot-name text for the slot vector is the slot key, with
  "pricerange" written "price range".
- A turn is `[CLS] user [SEP] system [SEP]`, segment ids 0 then 1, `[CLS] user [SEP]` alone when the system
  text is empty; the pair is cut to `max_seq_length` (default 64) by dropping the last token of the longer
  side (the system side on a tie), as BERT's `_truncate_seq_pair`. Slot names and values are `[CLS] text
  [SEP]` padded to `max_label_length` (the original asserts they fit; here: an error naming the flag).
- Dialogues are padded to `min(max_turn_length, longest dialogue)` turns (the original's
  `min(max_turn + 1, max_turn_length)`, default 22) with all-padding turns labelled -1. Longer dialogues keep
  their first `max_turn_length` turns (what the original's code means to do; its off-by-one then trips an
  assertion) and the cut is reported. The original pads each split to its own longest dialogue; here one
  turn length serves every split so shapes are static and the model compiles once.
- Values not in the ontology: the original raises KeyError (and its converters drop or map them to "none");
  here they are counted per slot and refused, or mapped to "none" and reported with
  `unknown_values="none"` (`--unknown_values`).

Arrays per split: `token_ids`, `segment_ids`, `padding_mask` int32 [N, T, L] and `labels` int32 [N, T, S]
(the index in the slot's label list; -1 on padded turns).

Example:
    from zoo.data import restaurant_dialogues, wordpiece
    from zoo.data.bert_vocabulary import BertVocabulary
    data = open_dialogue_state(restaurant_dialogues.write_default("/tmp/woz_like"))   # or SUMBT's data/woz
    vocab = BertVocabulary.from_wordpiece(wordpiece.train_vocabulary([vocabulary_texts(data)], 500))
    turns = data.turn_length(22)                                    # 8: the longest dialogue
    train = encode_dialogues(data, "train", vocab, max_seq_length=64, max_turn_length=turns)
    slot_inputs, value_inputs = encode_ontology_inputs(data, vocab, max_label_length=32)
    batch = next(iter(train_dataset(train, global_batch_size=4)))  # token_ids [4, 8, 64], labels [4, 8, 3]
"""

import collections
import dataclasses
import hashlib
import json
import os

import numpy as np

from zoo.data.distribute import per_replica_batch_size, pipeline_id, shard, stream_seed
from zoo.errors import ZooError

SPLITS = ("train", "dev", "test")
NONE, DONTCARE, DONTCARE_TSV = "none", "do not care", "dontcare"
ONTOLOGY_FILES = ("ontology.json", "ontology_dstc2_en.json")  # MultiWOZ-style first, then WOZ's DSTC2 file
UNKNOWN_VALUES = ("error", "none")
FEATURES = ("token_ids", "segment_ids", "padding_mask")


@dataclasses.dataclass
class Dialogue:
    id: str
    turns: list  # [(user, system, [label index per slot])]


@dataclasses.dataclass
class DialogueStateData:
    """Read dialogues and their ontology. `labels[s]` is slot `s`'s label list (class ids); `unknown[split]`
    counts the values mapped to "none" per slot (with `unknown_values="none"`)."""

    directory: str
    slots: list
    slot_texts: list
    labels: list
    splits: dict
    unknown: dict
    files_sha1: str = ""  # SHA-1 of the split files' bytes, in SPLITS order (config.json pins the data)

    @property
    def ontology(self):
        """{slot: label list}, in the model's slot order (what `ontology_json` writes)."""
        return collections.OrderedDict(zip(self.slots, self.labels))

    def ontology_json(self):
        return json.dumps(self.ontology, indent=1, ensure_ascii=False) + "\n"

    @property
    def sha1(self):
        return hashlib.sha1(self.ontology_json().encode("utf-8")).hexdigest()

    def turn_length(self, max_turn_length):
        """The padded turn count: `min(max_turn_length, the longest dialogue of any split)`."""
        longest = max((len(d.turns) for ds in self.splits.values() for d in ds), default=1)
        return max(1, min(max_turn_length, longest))

    def sizes(self):
        return {split: (len(ds), sum(len(d.turns) for d in ds)) for split, ds in self.splits.items()}


def open_dialogue_state(data_dir, *, unknown_values="error", splits=SPLITS, flag="--data_dir"):
    """Reads `<data_dir>/{train,dev,test}.tsv` and the ontology (see the module); one-line `ZooError`s."""
    if unknown_values not in UNKNOWN_VALUES:
        raise ZooError(f"unknown --unknown_values={unknown_values!r}; choose one of: {', '.join(UNKNOWN_VALUES)}")
    if not os.path.isdir(data_dir):
        raise ZooError(f"{flag}={data_dir} is not a directory; give one holding train.tsv, dev.tsv, test.tsv and "
                       "ontology.json (the SUMBT format)")
    ontology = read_ontology(data_dir, flag=flag)
    slots = list(ontology)
    labels = [ontology[s] for s in slots]
    index = [{value: i for i, value in enumerate(values)} for values in labels]
    read, unknown, examples = {}, {}, {}
    digest = hashlib.sha1()
    for split in splits:
        path = os.path.join(data_dir, f"{split}.tsv")
        if not os.path.isfile(path):
            raise ZooError(f"{flag}={data_dir} has no {split}.tsv; the SUMBT format needs train.tsv, dev.tsv and "
                           "test.tsv beside the ontology")
        dialogues, counts, seen = _read_tsv(path, slots, index, flag, digest)
        read[split], unknown[split], examples[split] = dialogues, counts, seen
    total = collections.Counter()
    for counts in unknown.values():
        total.update(counts)
    if total and unknown_values == "error":
        parts = [f"{slot} {n} (e.g. {', '.join(repr(v) for v in examples_of(examples, slot))})"
                 for slot, n in total.most_common()]
        raise ZooError(f"{sum(total.values())} belief-state values in {flag}={data_dir} are not in the ontology: "
                       f"{'; '.join(parts[:4])}{'; ...' if len(parts) > 4 else ''}; add them to the ontology, or "
                       "pass --unknown_values=none to map them to \"none\" as the original SUMBT preprocessing does")
    texts = ["price range" if s == "pricerange" else s for s in slots]
    return DialogueStateData(data_dir, slots, texts, labels, read, unknown, digest.hexdigest())


def examples_of(examples, slot, limit=3):
    values = []
    for seen in examples.values():
        values.extend(v for v in seen.get(slot, []) if v not in values)
    return values[:limit]


def read_ontology(data_dir, flag="--data_dir"):
    """{slot: label list} sorted by slot, with "do not care"/"none" appended as the original processor does."""
    for name in ONTOLOGY_FILES:
        path = os.path.join(data_dir, name)
        if os.path.isfile(path):
            break
    else:
        raise ZooError(f"{flag}={data_dir} has no ontology.json (nor WOZ's ontology_dstc2_en.json); add the "
                       "ontology of the SUMBT format")
    try:
        with open(path, encoding="utf-8") as f:
            raw = json.load(f)
    except (ValueError, UnicodeDecodeError) as e:
        raise ZooError(f"{path} is not valid JSON ({str(e).splitlines()[0]}); fix the ontology in {flag}") from None
    woz = isinstance(raw, dict) and isinstance(raw.get("informable"), dict)
    slots = dict(raw["informable"]) if woz else raw
    if woz:
        slots.pop("request", None)
    if not isinstance(slots, dict) or not slots or not all(
            isinstance(v, list) and all(isinstance(x, str) for x in v) for v in slots.values()):
        raise ZooError(f"{path} must map each slot to a list of value strings ({flag})")
    ontology = collections.OrderedDict()
    for slot in sorted(slots):
        values = list(slots[slot])
        for extra in ((DONTCARE, NONE) if woz else (NONE,)):
            if extra not in values:
                values.append(extra)
        ontology[slot] = values
    return ontology


def _read_tsv(path, slots, index, flag, digest=None):
    """Dialogues of one tsv file; values not in the ontology become "none" and are counted per slot. The
    file's bytes go into `digest` (a hashlib object) when given."""
    with open(path, "rb") as f:
        raw = f.read()
    if digest is not None:
        digest.update(hashlib.sha1(raw).digest())
    try:
        lines = raw.decode("utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise ZooError(f"{path} is not UTF-8 (byte {e.start}: {raw[e.start:e.start + 1]!r}); convert it to UTF-8 "
                       f"(e.g. iconv -t utf-8) in {flag}") from None
    columns = None  # slot columns named by a header comment, mapped to the ontology's order
    order = list(range(len(slots)))
    dialogues, counts, seen = [], collections.Counter(), collections.defaultdict(list)
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        fields = line.split("\t")
        if line.startswith("#"):
            if columns is None and len(fields) > 4:
                columns = [c.strip() for c in fields[4:] if c.strip()]
                order = _column_order(columns, slots, path, flag)
            continue
        values = fields[4:]
        while len(values) > len(slots) and not values[-1].strip():
            values.pop()
        if len(fields) < 4 or len(values) != len(slots):
            raise ZooError(f"{path} line {number} has {max(0, len(fields) - 4)} belief-state columns but the "
                           f"ontology has {len(slots)} slots ({', '.join(slots)}); fix the data or the ontology "
                           f"in {flag}")
        label_ids = []
        for s, column in enumerate(order):
            value = values[column].strip()
            value = DONTCARE if value == DONTCARE_TSV else value
            if value not in index[s]:
                counts[slots[s]] += 1
                if value not in seen[slots[s]]:
                    seen[slots[s]].append(value)
                value = NONE
            label_ids.append(index[s][value])
        if not dialogues or dialogues[-1].id != fields[0]:
            dialogues.append(Dialogue(fields[0], []))
        dialogues[-1].turns.append((fields[2], fields[3], label_ids))
    if not dialogues:
        raise ZooError(f"{path} holds no turns; fix the file in {flag}")
    return dialogues, dict(counts), dict(seen)


def _column_order(columns, slots, path, flag):
    missing = [c for c in columns if c not in slots]
    if missing:
        raise ZooError(f"the ontology is missing slot(s) {', '.join(missing)} that {path} has; add them to the "
                       f"ontology in {flag}")
    absent = [s for s in slots if s not in columns]
    if absent:
        raise ZooError(f"{path} has no column for the ontology's slot(s) {', '.join(absent)}; drop them from the "
                       f"ontology or fix the data in {flag}")
    return [columns.index(s) for s in slots]


# === Tokenizing ===


def _token_lists(vocab, texts):
    """Token ids (lists of int) of `texts` with `vocab.tokenizer`, each distinct text tokenized once."""
    import tensorflow as tf

    distinct = sorted(set(texts))
    ids = {}
    for start in range(0, len(distinct), 4096):
        chunk = distinct[start:start + 4096]
        out = vocab.tokenizer(tf.constant(chunk))
        rows = out.to_list() if hasattr(out, "to_list") else [np.asarray(r).tolist() for r in out]
        ids.update(zip(chunk, rows))
    return [ids[t] for t in texts]


def truncate_pair(a, b, max_length):
    """BERT's `_truncate_seq_pair`: pop the last token of the longer list (of `b` on a tie), in place."""
    while len(a) + len(b) > max_length:
        (a if len(a) > len(b) else b).pop()


def encode_dialogues(data, split, vocab, *, max_seq_length=64, max_turn_length, verbose=False):
    """Arrays of `split` (see the module): `token_ids`, `segment_ids`, `padding_mask` [N, T, L], `labels`
    [N, T, S], with T = `max_turn_length` (use `data.turn_length(flag)`) and L = `max_seq_length`."""
    if max_seq_length < 4:
        raise ZooError(f"--max_seq_length={max_seq_length} must be at least 4 ([CLS], a token and two [SEP]s)")
    special = vocab.special_ids
    dialogues = data.splits[split]
    n, t, s = len(dialogues), max_turn_length, len(data.slots)
    arrays = {name: np.zeros((n, t, max_seq_length), "int32") for name in FEATURES}
    arrays["token_ids"][:] = special["pad"]
    arrays["labels"] = np.full((n, t, s), -1, "int32")
    kept = [d.turns[:t] for d in dialogues]
    users = _token_lists(vocab, [turn[0] for turns in kept for turn in turns])
    systems = _token_lists(vocab, [turn[1] for turns in kept for turn in turns])
    k = 0
    for i, turns in enumerate(kept):
        for j, (_, system, label_ids) in enumerate(turns):
            a, b = list(users[k]), list(systems[k])
            k += 1
            if system:  # `if example.text_b:` in the original
                truncate_pair(a, b, max_seq_length - 3)
            else:
                a, b = a[:max_seq_length - 2], []
            ids = [special["cls"], *a, special["sep"]] + ([*b, special["sep"]] if b else [])
            arrays["token_ids"][i, j, :len(ids)] = ids
            arrays["segment_ids"][i, j, len(a) + 2:len(ids)] = 1
            arrays["padding_mask"][i, j, :len(ids)] = 1
            arrays["labels"][i, j] = label_ids
    cut = [len(d.turns) - t for d in dialogues if len(d.turns) > t]
    if cut and verbose:
        print(f"{split}: {len(cut)} dialogue(s) longer than --max_turn_length={t} keep their first {t} turns "
              f"({sum(cut)} turns dropped)", flush=True)
    return arrays


def encode_texts(vocab, texts, max_label_length, what):
    """`[CLS] text [SEP]` rows padded to `max_label_length`: (token_ids, padding_mask) int32 [n, L]."""
    special = vocab.special_ids
    rows = _token_lists(vocab, list(texts))
    longest = max((len(r) + 2 for r in rows), default=2)
    if longest > max_label_length:
        worst = texts[max(range(len(rows)), key=lambda i: len(rows[i]))]
        raise ZooError(f"the {what} {worst!r} is {longest} tokens with [CLS] and [SEP], over "
                       f"--max_label_length={max_label_length}; raise --max_label_length to at least {longest}")
    ids = np.full((len(rows), max_label_length), special["pad"], "int32")
    mask = np.zeros((len(rows), max_label_length), "int32")
    for i, row in enumerate(rows):
        ids[i, :len(row) + 2] = [special["cls"], *row, special["sep"]]
        mask[i, :len(row) + 2] = 1
    return ids, mask


def encode_ontology_inputs(data, vocab, *, max_label_length=32):
    """The inputs of `zoo.models.sumbt.encode_ontology`: slot names {token_ids, segment_ids, padding_mask}
    int32 [S, L], and values [S, Vmax, L] with all-padding rows where a slot has fewer values."""
    ids, mask = encode_texts(vocab, data.slot_texts, max_label_length, "slot name")
    slot_inputs = {"token_ids": ids, "segment_ids": np.zeros_like(ids), "padding_mask": mask}
    vmax = max(len(v) for v in data.labels)
    shape = (len(data.slots), vmax, max_label_length)
    value_inputs = {"token_ids": np.full(shape, vocab.special_ids["pad"], "int32"),
                    "segment_ids": np.zeros(shape, "int32"), "padding_mask": np.zeros(shape, "int32")}
    for s, values in enumerate(data.labels):
        ids, mask = encode_texts(vocab, values, max_label_length, f"{data.slots[s]} value")
        value_inputs["token_ids"][s, :len(values)] = ids
        value_inputs["padding_mask"][s, :len(values)] = mask
    return slot_inputs, value_inputs


def vocabulary_texts(data, split="train"):
    """Every text a vocabulary should cover: the split's user and system turns, then slot names and values."""
    texts = [text for d in data.splits[split] for turn in d.turns for text in turn[:2] if text.strip()]
    return texts + list(data.slot_texts) + [v for values in data.labels for v in values]


# === Batches ===


def train_dataset(arrays, *, global_batch_size, input_context=None, seed=0):
    """Repeating, shuffled per-replica batches of whole dialogues: dicts of int32 [b, T, L] (and labels
    [b, T, S]) with b = this replica's share of `global_batch_size`; static shapes."""
    import tensorflow as tf

    batch = per_replica_batch_size(global_batch_size, input_context)
    ds = shard(tf.data.Dataset.from_tensor_slices(arrays), input_context)
    ds = ds.shuffle(len(arrays["labels"]), seed=stream_seed(seed, pipeline_id(input_context)),
                    reshuffle_each_iteration=True)
    return ds.repeat().batch(batch, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def eval_dataset(arrays, *, global_batch_size, input_context=None, pad_id=0):
    """One ordered pass in per-replica batches of static shape: the dialogues are padded with all-padding
    dialogues (labels -1, which count nowhere) to a multiple of `global_batch_size`."""
    import tensorflow as tf

    per_replica_batch_size(global_batch_size, input_context)  # the one-line check
    extra = -len(arrays["labels"]) % global_batch_size
    if extra:
        fill = {"token_ids": pad_id, "labels": -1}
        arrays = {k: np.concatenate([v, np.full((extra, *v.shape[1:]), fill.get(k, 0), v.dtype)])
                  for k, v in arrays.items()}
    ds = shard(tf.data.Dataset.from_tensor_slices(arrays), input_context)
    batch = per_replica_batch_size(global_batch_size, input_context)  # every shard holds a multiple of it
    return ds.batch(batch, drop_remainder=True).prefetch(tf.data.AUTOTUNE)


def majority_baseline(train_labels, eval_labels):
    """Accuracies of always predicting the training data's most frequent belief state: {"joint_accuracy"
    (its most frequent full state), "slot_accuracy" (each slot's most frequent value)} on `eval_labels`."""
    train = train_labels.reshape(-1, train_labels.shape[-1])
    train = train[train[:, 0] >= 0]
    evals = eval_labels.reshape(-1, eval_labels.shape[-1])
    evals = evals[evals[:, 0] >= 0]
    states, counts = np.unique(train, axis=0, return_counts=True)
    joint = states[np.argmax(counts)]
    per_slot = np.array([np.bincount(train[:, s]).argmax() for s in range(train.shape[1])])
    return {"joint_accuracy": float(np.mean(np.all(evals == joint, axis=1))),
            "slot_accuracy": float(np.mean(evals == per_slot))}
