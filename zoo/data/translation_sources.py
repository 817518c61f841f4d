"""Sources of sentence pairs for translation: the embedded task, tensorflow-datasets, parallel text files.

`open_translation(...)` checks the source at once (one-line `ZooError`s naming the flag) and returns a
`TranslationData` whose `pairs(split)` is a finite, ordered `tf.data.Dataset` of (source, target) strings.

- "embedded" (the default, offline): digits -> English words, see `zoo.data.number_words`.
- tensorflow-datasets in `--data_dir` (through `zoo.data.tfds_offline`, which fails at once offline):
  `<builder>/<xx>-<yy>` (e.g. `wmt14_translate/de-en`, `wmt_t2t_translate/de-en`) or `<builder>/<xx>_to_<yy>`
  (e.g. `ted_hrlr_translate/pt_to_en`); the direction is the config's order unless `source_language` /
  `target_language` say otherwise (en -> de for `wmt14_translate/de-en`); splits as tfds names them.
- parallel text files: `source_files` / `target_files` (paths or globs, one sentence per line, UTF-8, line
  for line), optional validation (and test) files, else a seeded hold-out of `validation_fraction` of the
  lines. The files are read once at open time to count lines and check the encoding.

Example:
    data = open_translation()                                     # the embedded task
    data = open_translation("wmt14_translate/de-en", source_language="en", target_language="de",
                            data_dir="~/tensorflow_datasets")
    data = open_translation(source_files=["train.en"], target_files=["train.de"], validation_fraction=0.01)
    next(iter(data.pairs("validation")))                          # (b'...', b'...') string tensors
"""

import codecs
import dataclasses
import re
from typing import Callable

import numpy as np
import tensorflow as tf

from zoo.data import number_words, tfds_offline
from zoo.data.text_sources import resolve_files
from zoo.errors import ZooError


@dataclasses.dataclass(frozen=True)
class TranslationData:
    """A translation source: `pairs(split)` gives its (source, target) string pairs in a fixed order.

    `sizes` maps each available split to its number of pairs (None where unknown); `vocab_size` and
    `split_digits` are the suggested shared-vocabulary settings for this data (`zoo.data.subword`).
    """

    name: str
    source_language: str
    target_language: str
    read: Callable  # (split, shuffle_files, seed) -> tf.data.Dataset of (source, target)
    sizes: dict
    vocab_size: int = 32_000
    split_digits: bool = False

    def pairs(self, split, *, shuffle_files=False, seed=0):
        """The (source, target) tf.string pairs of `split`; `shuffle_files` (tfds only) reads a sharded
        training set in a seeded file order, the same in every input pipeline."""
        if split not in self.sizes:
            raise ZooError(f"{self.name} has no {split!r} split; it has {', '.join(self.sizes)}")
        return self.read(split, shuffle_files, seed)


def open_translation(dataset="embedded", *, source_language=None, target_language=None, data_dir=None,
                     download=False, source_files=None, target_files=None, validation_source_files=None,
                     validation_target_files=None, test_source_files=None, test_target_files=None,
                     validation_fraction=0.01):
    """The `TranslationData` of `--dataset` (or of `--source_files/--target_files`); see the module."""
    if source_files or target_files:
        if dataset not in ("embedded", "files", None):
            raise ZooError(f"give either --dataset={dataset} or --source_files/--target_files, not both")
        return _files(source_files, target_files, validation_source_files, validation_target_files,
                      test_source_files, test_target_files, validation_fraction, source_language, target_language)
    if dataset in ("embedded", None):
        return _embedded(source_language, target_language)
    if dataset == "files":
        raise ZooError("--dataset=files reads --source_files and --target_files; pass both")
    return _tfds(dataset, source_language, target_language, data_dir, download)


# === embedded ===


def _embedded(source_language, target_language):
    asked = (source_language or "digits", target_language or "en")
    if asked != ("digits", "en"):
        raise ZooError(f"--dataset=embedded translates digits -> en, not {asked[0]} -> {asked[1]}; drop "
                       "--source_language/--target_language")

    def read(split, shuffle_files=False, seed=0):
        pairs = number_words.embedded_pairs(split)
        return tf.data.Dataset.from_tensor_slices(([s for s, _ in pairs], [t for _, t in pairs]))

    return TranslationData("embedded", "digits", "en", read, dict(number_words.SIZES), vocab_size=1000,
                           split_digits=True)


# === tensorflow-datasets ===


def parse_language_pair(dataset):
    """'wmt14_translate/de-en' -> ('wmt14_translate', 'de-en', ('de', 'en')); also '<builder>/<xx>_to_<yy>'."""
    builder, _, config = dataset.partition("/")
    if not builder or not config:
        raise ZooError(f"--dataset={dataset} needs a language-pair config, e.g. wmt14_translate/de-en or "
                       "ted_hrlr_translate/pt_to_en")
    if "_to_" in config:
        languages = tuple(config.split("_to_", 1))
    elif config.count("-") == 1:
        languages = tuple(config.split("-"))
    else:
        raise ZooError(f"--dataset={dataset}: cannot read a language pair from config {config!r}; use a "
                       "<builder>/<xx>-<yy> or <builder>/<xx>_to_<yy> config")
    if not all(languages) or languages[0] == languages[1]:
        raise ZooError(f"--dataset={dataset}: config {config!r} does not name two languages")
    return builder, config, languages


def choose_direction(dataset, languages, source_language=None, target_language=None):
    """(source, target) language of a dataset that pairs `languages`: the config's order by default; one
    of the two flags picks the other language; an unknown language is a ZooError naming the flags."""
    a, b = languages
    source = source_language or (b if target_language == a else a)
    target = target_language or (a if source == b else b)
    if {source, target} != {a, b}:
        raise ZooError(f"--source_language={source}/--target_language={target} is not a direction of "
                       f"--dataset={dataset}, which pairs {a} and {b}; use {a} -> {b} or {b} -> {a}")
    return source, target


def check_config(dataset, builder, config, known_configs):
    """A ZooError naming --dataset when the tfds builder has no such language-pair config."""
    known = sorted(known_configs)
    if known and config not in known:
        more = ", ..." if len(known) > 12 else ""
        raise ZooError(f"--dataset={dataset}: {builder} has no language pair {config!r}; choose one of "
                       f"{', '.join(known[:12])}{more}")


def _tfds(dataset, source_language, target_language, data_dir, download):
    import tensorflow_datasets as tfds

    builder_name, config, languages = parse_language_pair(dataset)
    try:
        builder_cls = tfds.builder_cls(builder_name)
    except Exception:  # tfds' DatasetNotFoundError
        raise ZooError(f"unknown --dataset={dataset}: tensorflow-datasets has no builder {builder_name!r}; "
                       "use e.g. wmt14_translate/de-en, wmt_t2t_translate/de-en or ted_hrlr_translate/pt_to_en")
    check_config(dataset, builder_name, config, [c.name for c in getattr(builder_cls, "BUILDER_CONFIGS", [])])
    source, target = choose_direction(dataset, languages, source_language, target_language)
    first = tfds_offline.load(dataset, "train", data_dir=data_dir, download=download)  # fails fast if absent
    features = first.element_spec
    missing = [lang for lang in (source, target) if not isinstance(features, dict) or lang not in features]
    if missing:
        names = sorted(features) if isinstance(features, dict) else []
        raise ZooError(f"--dataset={dataset} has no text feature {missing[0]!r} (it has {', '.join(names)}); "
                       "set --source_language/--target_language to those names")
    info = tfds.builder(dataset, data_dir=data_dir).info
    sizes = {}
    for split in ("train", "validation", "test"):
        if split in info.splits:
            sizes[split] = int(info.splits[split].num_examples) or None

    def read(split, shuffle_files=False, seed=0):
        ds = tfds_offline.load(dataset, split, data_dir=data_dir, download=download, shuffle_files=shuffle_files,
                               read_config=tfds.ReadConfig(shuffle_seed=seed))
        return ds.map(lambda ex: (ex[source], ex[target]), num_parallel_calls=tf.data.AUTOTUNE)

    return TranslationData(dataset, source, target, read, sizes, vocab_size=37_000 if "wmt" in builder_name
                           else 8_000)


# === parallel text files ===


def count_lines(path, flag, block_size=1 << 20):
    """The number of lines `tf.data.TextLineDataset` reads from `path`, checking that it is UTF-8 text
    with at least one non-blank line (a one-line ZooError naming `flag` otherwise)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    lines, offset, last, text = 0, 0, b"\n", False
    with tf.io.gfile.GFile(path, "rb") as f:
        while True:
            block = f.read(block_size)
            try:
                decoder.decode(block, final=not block)
            except UnicodeDecodeError as e:
                raise ZooError(f"{flag}: {path!r} is not UTF-8 text ({e.reason} near byte {offset + max(e.start, 0)})"
                               ) from None
            if not block:
                break
            lines += block.count(b"\n")
            text = text or bool(block.strip())
            offset += len(block)
            last = block[-1:]
    if not text:
        raise ZooError(f"{flag}: {path!r} is empty (expected one sentence per line)")
    return lines + (last != b"\n")


def _parallel(source_files, target_files, source_flag, target_flag):
    """(source paths, target paths, number of lines) of two line-aligned file lists."""
    flags = f"{source_flag}/{target_flag}"
    sources, targets = resolve_files(source_files, source_flag), resolve_files(target_files, target_flag)
    if not sources or not targets:
        raise ZooError(f"{flags}: give both, as paths or globs of line-aligned text files")
    if len(sources) != len(targets):
        raise ZooError(f"{flags} name {len(sources)} and {len(targets)} files; pair them one to one, in order")
    total = 0
    for source, target in zip(sources, targets):
        a, b = count_lines(source, source_flag), count_lines(target, target_flag)
        if a != b:
            raise ZooError(f"{flags}: {source} has {a} lines but {target} has {b}; parallel files must match "
                           "line for line")
        total += a
    return sources, targets, total


def _text_pairs(sources, targets):
    def lines(paths):
        return tf.data.TextLineDataset(paths).map(tf.strings.strip)

    return tf.data.Dataset.zip((lines(sources), lines(targets)))


def _files(source_files, target_files, val_source, val_target, test_source, test_target, fraction,
           source_language, target_language):
    sources, targets, count = _parallel(source_files, target_files, "--source_files", "--target_files")
    splits, sizes = {}, {}
    if val_source or val_target:
        val = _parallel(val_source, val_target, "--validation_source_files", "--validation_target_files")
        splits["validation"] = (val[0], val[1], None)
        sizes["train"], sizes["validation"] = count, val[2]
        splits["train"] = (sources, targets, None)
    else:
        held = min(count - 1, max(1, int(round(fraction * count)))) if fraction > 0 else 0
        if held < 1:
            raise ZooError(f"--source_files have {count} lines and --validation_fraction={fraction} holds none out; "
                           "raise --validation_fraction or give --validation_source_files/--validation_target_files")
        mask = np.zeros(count, bool)
        mask[np.random.default_rng(0).choice(count, held, replace=False)] = True
        splits["train"] = (sources, targets, ~mask)
        splits["validation"] = (sources, targets, mask)
        sizes["train"], sizes["validation"] = count - held, held
    if test_source or test_target:
        test = _parallel(test_source, test_target, "--test_source_files", "--test_target_files")
        splits["test"], sizes["test"] = (test[0], test[1], None), test[2]

    def read(split, shuffle_files=False, seed=0):
        paths_a, paths_b, keep = splits[split]
        ds = _text_pairs(paths_a, paths_b)
        if keep is not None:
            keep = tf.constant(keep)

            def kept(index, pair):
                return keep[index]

            def drop_index(index, pair):
                return pair

            ds = ds.enumerate().filter(kept).map(drop_index)
        return ds

    name = "files:" + ",".join(re.sub(r".*/", "", p) for p in sources[:2]) + (",..." if len(sources) > 2 else "")
    return TranslationData(name, source_language or "source", target_language or "target", read, sizes,
                           vocab_size=8_000)
