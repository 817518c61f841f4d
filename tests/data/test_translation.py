"""Translation data: the embedded task, sources and their errors, training and evaluation pipelines."""

import re
import time

import numpy as np
import pytest
import tensorflow as tf

from zoo.data import number_words, subword, translation
from zoo.data.subword import EOS_ID
from zoo.errors import ZooError



def _subset():
    return number_words.embedded_pairs("train")[:600]  # generated on first use (cached), not at collection


def _numbers(text):
    return {int(n.replace(",", "")) for n in re.findall(r"\d[\d,]*\d|\d", text)}


def _subset_data():
    """A small TranslationData over the first 600 embedded training pairs (train) and 100 validation pairs."""
    splits = {"train": _subset(), "validation": number_words.embedded_pairs("validation")[:100]}

    def read(split, shuffle_files=False, seed=0):
        pairs = splits[split]
        return tf.data.Dataset.from_tensor_slices(([s for s, _ in pairs], [t for _, t in pairs]))

    return translation.TranslationData("subset", "digits", "en", read, {k: len(v) for k, v in splits.items()})


@pytest.fixture(scope="module")
def tokenizer():
    return subword.train_subword_model([t for pair in _subset() for t in pair], 250, split_digits=True)


def test_embedded_task_is_deterministic_and_disjoint():
    start = time.perf_counter()
    fresh = number_words._generate.__wrapped__(0)  # bypass the cache: a second, independent generation
    elapsed = time.perf_counter() - start
    assert elapsed < 5  # about 0.3 s alone on one core
    splits = {split: number_words.embedded_pairs(split) for split in number_words.SIZES}
    assert {k: len(v) for k, v in splits.items()} == {"train": 20_000, "validation": 500, "test": 500}
    assert all(list(fresh[k]) == splits[k] for k in splits)
    sources = {k: {s for s, _ in v} for k, v in splits.items()}
    assert len(sources["train"]) == 20_000
    assert not sources["train"] & sources["validation"] and not sources["train"] & sources["test"]
    assert not sources["validation"] & sources["test"]
    big = {k: {n for s in v for n in _numbers(s) if n >= 1000} for k, v in sources.items()}
    assert big["validation"] and not big["validation"] & big["train"] and not big["test"] & big["train"]


def test_digits_become_words():
    assert number_words.cardinal_words(0) == "zero"
    assert number_words.cardinal_words(4521) == "four thousand five hundred twenty-one"
    assert number_words.cardinal_words(999_999) == "nine hundred ninety-nine thousand nine hundred ninety-nine"
    assert number_words.cardinal_words(100_010) == "one hundred thousand ten"
    assert [number_words.ordinal_words(n) for n in (1, 2, 3, 12, 20, 21, 100, 1204)] == [
        "first", "second", "third", "twelfth", "twentieth", "twenty-first", "one hundredth",
        "one thousand two hundred fourth"]
    assert [number_words.ordinal_suffix(n) for n in (1, 2, 3, 11, 12, 13, 22, 101)] == [
        "1st", "2nd", "3rd", "11th", "12th", "13th", "22nd", "101st"]
    assert number_words.decimal_words("12.05") == "twelve point zero five"
    for source, target in number_words.embedded_pairs("validation"):
        assert _numbers(source) and not re.search(r"\d", target)
        words = re.findall(r"[A-Za-z]{4,}", source)  # not the "st" of "21st"
        assert all(w in target for w in words), (source, target)  # the rest of the sentence is kept


def test_train_batches_fixed_size(tokenizer):
    data = _subset_data()
    lengths = [max(len(tokenizer.encode(s)), len(tokenizer.encode(t))) + 1 for s, t in _subset()]
    max_length = 20
    assert sum(n > max_length for n in lengths) > 50  # the filter below has something to drop
    ds = translation.train_dataset(data, tokenizer, global_batch_size=32, max_length=max_length, seed=3)
    for batch in ds.take(6):
        source, target = batch["source_ids"].numpy(), batch["target_ids"].numpy()
        assert source.dtype == target.dtype == np.int32 and len(source) == len(target) == 32
        for ids in list(source) + list(target):
            n = int(np.sum(ids != 0))
            assert 2 <= n <= max_length and ids[n - 1] == EOS_ID and not ids[n:].any() and EOS_ID not in ids[:n - 1]
        assert (target != 0).sum(1).max() == target.shape[1]  # padded to the batch's longest
    static = translation.train_dataset(data, tokenizer, global_batch_size=8, max_length=max_length, static_shapes=True)
    assert static.element_spec["target_ids"].shape.as_list() == [8, max_length]
    with pytest.raises(ZooError, match="--global_batch_size=33 must be a multiple"):
        translation.train_dataset(data, tokenizer, global_batch_size=33, max_length=20,
                                  input_context=tf.distribute.InputContext(1, 0, 2))
    with pytest.raises(ZooError, match="exactly one of --global_batch_size and --max_tokens_per_batch"):
        translation.train_dataset(data, tokenizer, max_length=20)


def test_token_buckets_respect_the_budget(tokenizer):
    data = _subset_data()
    uppers, sizes = translation.bucket_batch_sizes(1000, 40, num_replicas=2)
    assert uppers[0] == 7 and uppers[-1] == 40 and all(b * u <= 500 for b, u in zip(sizes, uppers))
    ds = translation.train_dataset(data, tokenizer, max_tokens_per_batch=1000, max_length=40,
                                   input_context=tf.distribute.InputContext(1, 0, 2))
    shapes = set()
    for batch in ds.take(10):
        (b, s), t = batch["source_ids"].shape, batch["target_ids"].shape[1]
        shapes.add((b, max(s, t)))
        assert b * max(s, t) <= 500 and b >= 500 // 40
    assert len(shapes) > 2  # several buckets were used
    with pytest.raises(ZooError, match="--max_tokens_per_batch=100 gives 50 tokens per replica"):
        translation.train_dataset(data, tokenizer, max_tokens_per_batch=100, max_length=64,
                                  input_context=tf.distribute.InputContext(1, 0, 2))


def test_eval_order_matches_texts_and_truncates(tokenizer):
    data = _subset_data()
    texts = translation.eval_texts(data, "validation", limit=70)
    batches = list(translation.eval_dataset(data, tokenizer, global_batch_size=32, max_length=64, limit=70))
    assert [len(b["target_ids"]) for b in batches] == [32, 32, 6]
    decoded = [(tokenizer.decode(s), tokenizer.decode(t)) for b in batches
               for s, t in zip(b["source_ids"], b["target_ids"])]
    assert decoded == texts
    short = list(translation.eval_dataset(data, tokenizer, global_batch_size=50, max_length=6))
    target = np.concatenate([b["target_ids"].numpy() for b in short])
    assert target.shape == (100, 6) and (target[:, -1] == EOS_ID).all()  # every reference kept, cut, EOS last


def test_two_input_pipelines_read_disjoint_shards(tokenizer):
    data = _subset_data()
    seen = []
    for pipeline in (0, 1):
        context = tf.distribute.InputContext(2, pipeline, 2)
        ds = translation.train_dataset(data, tokenizer, global_batch_size=32, max_length=64, input_context=context)
        seen.append({tokenizer.decode(ids) for b in ds.take(4) for ids in b["source_ids"]})
        evaluated = translation.eval_dataset(data, tokenizer, global_batch_size=32, max_length=64,
                                             input_context=context)
        expected = [source for source, _ in translation.eval_texts(data)[pipeline::2]]
        assert [tokenizer.decode(ids) for b in evaluated for ids in b["source_ids"]] == expected
    assert seen[0] <= {s for s, _ in _subset()[0::2]} and seen[1] <= {s for s, _ in _subset()[1::2]}
    assert len(seen[0]) > 50 and len(seen[1]) > 50


def test_parallel_files(tmp_path):
    (tmp_path / "a.en").write_text("one\ntwo\nthree\nfour\n", encoding="utf-8")
    (tmp_path / "a.de").write_text("eins\nzwei\ndrei\nvier", encoding="utf-8")  # no final newline
    (tmp_path / "b.en").write_text("five\nsix\n", encoding="utf-8")
    (tmp_path / "b.de").write_text("fuenf\n", encoding="utf-8")
    data = translation.open_translation(source_files=[str(tmp_path / "a.en")], target_files=str(tmp_path / "a.de"),
                                        validation_fraction=0.25, source_language="en", target_language="de")
    assert data.sizes == {"train": 3, "validation": 1}
    train, validation = translation.eval_texts(data, "train"), translation.eval_texts(data)
    assert sorted(train + validation) == sorted(zip(["one", "two", "three", "four"], ["eins", "zwei", "drei", "vier"]))
    with pytest.raises(ZooError, match=r"--source_files/--target_files: .*b\.en has 2 lines but .*b\.de has 1"):
        translation.open_translation(source_files=str(tmp_path / "*.en"), target_files=str(tmp_path / "*.de"))
    (tmp_path / "empty.de").write_bytes(b"")
    with pytest.raises(ZooError, match="--target_files: .*empty.de' is empty"):
        translation.open_translation(source_files=str(tmp_path / "a.en"), target_files=str(tmp_path / "empty.de"))
    (tmp_path / "latin1.de").write_bytes("f\u00fcnf\n".encode("latin-1"))
    with pytest.raises(ZooError, match="--target_files: .*latin1.de' is not UTF-8 text"):
        translation.open_translation(source_files=str(tmp_path / "b.en"), target_files=str(tmp_path / "latin1.de"))


def test_language_pairs_and_unknown_pair():
    assert translation.parse_language_pair("wmt14_translate/de-en") == ("wmt14_translate", "de-en", ("de", "en"))
    assert translation.parse_language_pair("ted_hrlr_translate/pt_to_en")[2] == ("pt", "en")
    assert translation.choose_direction("wmt14_translate/de-en", ("de", "en")) == ("de", "en")
    assert translation.choose_direction("wmt14_translate/de-en", ("de", "en"), "en", "de") == ("en", "de")
    assert translation.choose_direction("wmt14_translate/de-en", ("de", "en"), target_language="de") == ("en", "de")
    with pytest.raises(ZooError, match=r"--source_language=fr/--target_language=en is not a direction of "
                                       r"--dataset=wmt14_translate/de-en"):
        translation.choose_direction("wmt14_translate/de-en", ("de", "en"), "fr")
    with pytest.raises(ZooError, match="--dataset=wmt14_translate needs a language-pair config"):
        translation.parse_language_pair("wmt14_translate")
    with pytest.raises(ZooError, match="--dataset=wmt14_translate/xx-en: wmt14_translate has no language pair"):
        translation.check_config("wmt14_translate/xx-en", "wmt14_translate", "xx-en", ["de-en", "fr-en"])
    with pytest.raises(ZooError, match="--dataset=embedded translates digits -> en"):
        translation.open_translation(source_language="de")


@pytest.mark.slow
def test_tfds_language_pair_from_data_dir(tmp_path):
    """The real `wmt14_translate/de-en` builder reading a tiny dataset stored in a local --data_dir."""
    tfds = pytest.importorskip("tensorflow_datasets")
    columns = {split: {"de": [f"{split} Satz {i}" for i in range(n)], "en": [f"{split} sentence {i}" for i in range(n)]}
               for split, n in (("train", 12), ("validation", 5), ("test", 4))}
    tfds.dataset_builders.store_as_tfds_dataset(
        "wmt14_translate", "1.0.0", tfds.features.Translation(languages=["de", "en"]),
        {split: tf.data.Dataset.from_tensor_slices(c) for split, c in columns.items()}, config="de-en",
        data_dir=str(tmp_path))
    data = translation.open_translation("wmt14_translate/de-en", source_language="en", data_dir=str(tmp_path))
    assert (data.source_language, data.target_language) == ("en", "de")
    assert data.sizes == {"train": 12, "validation": 5, "test": 4}
    pairs = translation.eval_texts(data, "test")
    assert sorted(pairs) == sorted(zip(columns["test"]["en"], columns["test"]["de"]))
    assert len(list(data.pairs("train", shuffle_files=True, seed=1))) == 12
    with pytest.raises(ZooError, match="--source_language=fr/--target_language=de is not a direction"):
        translation.open_translation("wmt14_translate/de-en", source_language="fr", target_language="de",
                                     data_dir=str(tmp_path))
    with pytest.raises(ZooError, match="wmt14_translate has no language pair 'xx-en'"):
        translation.open_translation("wmt14_translate/xx-en", data_dir=str(tmp_path))
    with pytest.raises(ZooError, match="is not present in --data_dir"):
        translation.open_translation("wmt14_translate/fr-en", data_dir=str(tmp_path))
