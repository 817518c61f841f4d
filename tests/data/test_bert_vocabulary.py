"""BERT vocabularies: KoBERT's SentencePiece layout and normalisation, WordPiece wrapped, files, word starts."""

import io
import pickle
import random
import unicodedata

import numpy as np
import pytest
import tensorflow as tf

from zoo.data import bert_shards, bert_vocabulary, wordpiece
from zoo.data.bert_pretraining import FEATURES, create_examples
from zoo.data.bert_vocabulary import BertVocabulary, load_bert_vocabulary, train_sentencepiece_vocabulary
from zoo.errors import ZooError

KOREAN = [
    "한국어 모델을 공유합니다.",
    "대한민국은 민주공화국이다.",
    "모든 국민은 법 앞에 평등하다.",
    "국가는 국민의 기본적 인권을 보장할 의무를 진다.",
    "근로자는 근로조건의 향상을 위하여 자주적인 단결권을 가진다.",
    "이 법은 공포한 날부터 시행한다.",
]
# Latin accents, Hangul syllables and conjoining Jamo, compatibility Jamo, full-width forms, ligatures,
# superscripts and Arabic/Hangul digits, quotes, and whitespace of every kind.
VARIED = [
    "Café  naïve\tcoöperate  Ångström ﬁne", "  한국어\u3000모델을\u00a0공유합니다.  ", "\u1112\u1161\u11ab 글",
    "ㄱㄴㄷ ㅏㅑ", "ＡＢＣ１２３ｶﾀｶﾅ", "x² ½ ① ㈜ ㎏", "``quoted'' text", "é\u0301 e\u0327\u0301", "0123456789 ٣",
    "line\nbreak\r\nand\x0bvertical\x1cfile", "",
]


def reference(text):
    """KoBERT's preprocess_text (XLNetTokenizer: remove_space, keep_accents=False, do_lower_case=False)."""
    text = " ".join(text.strip().split()).replace("``", '"').replace("''", '"')
    text = unicodedata.normalize("NFKD", text)
    return "".join(c for c in text if not unicodedata.combining(c))


@pytest.fixture(scope="module")
def korean():
    return train_sentencepiece_vocabulary([KOREAN] * 4, 120)


def test_kobert_special_layout(korean):
    assert korean.kind == "sentencepiece" and korean.tokens[:5] == ["[UNK]", "[PAD]", "[CLS]", "[SEP]", "[MASK]"]
    assert korean.special_ids == {"unk": 0, "pad": 1, "cls": 2, "sep": 3, "mask": 4}
    assert 20 < len(korean) <= 120 and korean.file_name == "spiece.model"


def test_special_pieces_never_come_from_text(korean):
    ids = korean.tokenizer(tf.constant(["[CLS] 한국어 [SEP] [MASK] [PAD] 모델 [UNK]"]))
    assert not set(ids[0]) & {1, 2, 3, 4}


def test_normalisation_matches_the_python_reference():
    got = [t.decode("utf-8") for t in bert_vocabulary.normalize(tf.constant(VARIED)).numpy()]
    assert got == [reference(t) for t in VARIED]
    assert [bert_vocabulary.python_normalize(t) for t in VARIED] == [reference(t) for t in VARIED]
    assert got[0] == "Cafe naive cooperate Angstrom fine" and got[-3] == "0123456789 ٣"


def test_hangul_round_trips_nfkd_then_nfkc():
    for text in KOREAN:
        decomposed = reference(text)
        assert decomposed != text and unicodedata.normalize("NFKC", decomposed) == text


def test_korean_round_trip_ids_pieces_text(korean):
    ids = korean.tokenizer(tf.constant(KOREAN))
    for text, row in zip(KOREAN, ids):
        row = [int(i) for i in row]
        assert 0 not in row  # every character was in the training text
        pieces = [korean.tokens[i] for i in row]
        assert "".join(pieces).replace("\u2581", " ").strip() == text
        assert korean.detokenize(row) == unicodedata.normalize("NFKC", reference(text)) == text


def test_tokenizer_is_tf_data_safe(korean):
    eager = [list(map(int, row)) for row in korean.tokenizer(tf.constant(KOREAN))]
    ds = tf.data.Dataset.from_tensor_slices(KOREAN).batch(3).map(korean.tokenizer)
    assert [row for batch in ds for row in batch.to_list()] == eager


def test_word_starts(korean):
    starts = korean.word_starts
    assert starts.dtype == bool and starts.shape == (len(korean),)
    # [UNK]=0 has no "▁": unknown characters continue the word before them; the other special pieces are words.
    assert starts[:5].tolist() == [False, True, True, True, True]
    assert all(starts[i] == korean.tokens[i].startswith("\u2581") for i in range(5, len(korean)))
    words = BertVocabulary.from_wordpiece(wordpiece.RESERVED_TOKENS + ["a", "##b", "c"])
    assert words.word_starts.tolist() == [True] * 5 + [True, False, True]


def test_unknown_characters_continue_the_word(korean):
    """'한😀국어' is one word: `▁ 한 [UNK] 국 어`, only the first piece starts it, so whole-word masking masks the
    five pieces together or not at all: with room for 3 predictions (7 tokens * 0.43), for none of them."""
    import random

    from zoo.data import bert_pretraining

    ids = korean.tokenizer(tf.constant(["한😀국어"]))[0]
    assert [korean.tokens[i] for i in ids] == ["\u2581", "한", "[UNK]", "국", "어"]
    assert korean.word_starts[ids].tolist() == [True, False, False, False, False]
    tokens = [korean.special_ids["cls"], *ids, korean.special_ids["sep"]]
    chosen = {tuple(bert_pretraining._mask_tokens(tokens, 0.43, 20, len(korean), korean.special_ids,
                                                  random.Random(seed), korean.word_starts)[1])
              for seed in range(50)}
    assert chosen == {()}  # before: [UNK] started a word, and `▁ 한` or `[UNK] 국 어` was masked alone


def test_module_docstring_example_runs(tmp_path):
    """The example in zoo.data.bert_vocabulary's docstring runs as written (its /tmp/run moved to tmp_path)."""
    doc = bert_vocabulary.__doc__
    code = doc.split("```python\n")[1].split("```")[0].replace("/tmp/run", str(tmp_path / "run"))
    namespace = {}
    exec(compile(code, "bert_vocabulary example", "exec"), namespace)
    assert namespace["vocab"].kind == "sentencepiece" and namespace["vocab"].special_ids["mask"] == 4
    assert namespace["vocab"].detokenize(namespace["ids"][0]) == "한국어 모델"
    assert namespace["path"] == str(tmp_path / "run" / "spiece.model")


def test_save_load_and_sha1(korean, tmp_path):
    path = korean.save(str(tmp_path / "run"))
    assert path.endswith("spiece.model")
    again = load_bert_vocabulary(path)
    assert again.tokens == korean.tokens and again.sha1 == korean.sha1 and again.proto == korean.proto
    assert train_sentencepiece_vocabulary([KOREAN] * 4, 120).proto == korean.proto  # reproducible
    copy = pickle.loads(pickle.dumps(korean))
    assert copy.tokenizer(tf.constant(KOREAN[:1]))[0] == korean.tokenizer(tf.constant(KOREAN[:1]))[0]

    tokens = wordpiece.RESERVED_TOKENS + ["hello", "world", "##s"]
    words = BertVocabulary.from_wordpiece(tokens)
    assert words.sha1 == bert_shards.vocabulary_sha1(tokens) == bert_shards.vocabulary_sha1(words)
    path = words.save(str(tmp_path / "en"))
    assert path.endswith("vocab.txt") and load_bert_vocabulary(path).tokens == tokens
    assert words.special_ids == {"pad": 0, "cls": 1, "sep": 2, "unk": 3, "mask": 4}
    assert words.tokenizer(["Hello worlds"]) == [[5, 6, 7]]


def _foreign_model(user_defined):
    import sentencepiece as spm

    writer = io.BytesIO()
    spm.SentencePieceTrainer.train(sentence_iterator=iter(KOREAN * 4), model_writer=writer, vocab_size=80,
                                   model_type="unigram", user_defined_symbols=user_defined, hard_vocab_limit=False,
                                   minloglevel=2)
    return writer.getvalue()


def test_foreign_model_is_read_by_piece_names(tmp_path):
    proto = _foreign_model(["[MASK]", "[SEP]", "[CLS]", "[PAD]", "[UNK]"])  # <unk> <s> </s> come first
    path = tmp_path / "tokenizer_78b3253a26.model"
    path.write_bytes(proto)
    vocab = load_bert_vocabulary(str(path))
    assert vocab.special_ids == {"unk": 7, "pad": 6, "cls": 5, "sep": 4, "mask": 3}
    with pytest.raises(ZooError, match=r"lacks the BERT special pieces \['\[MASK\]'\].*--vocab_file") as e:
        BertVocabulary.from_sentencepiece(_foreign_model(["[SEP]", "[CLS]", "[PAD]", "[UNK]"]))
    assert "\n" not in str(e.value)


def test_errors(tmp_path):
    with pytest.raises(ZooError, match="does not exist.*--vocab_file"):
        load_bert_vocabulary(str(tmp_path / "missing.model"))
    (tmp_path / "bad.model").write_bytes(b"\x00\xffnot a proto")
    with pytest.raises(ZooError, match="bad.model.*not a SentencePiece model"):
        load_bert_vocabulary(str(tmp_path / "bad.model"))
    with pytest.raises(ZooError, match="--vocab_size must exceed"):
        train_sentencepiece_vocabulary(KOREAN, 5)
    with pytest.raises(ZooError, match="training text is empty"):
        train_sentencepiece_vocabulary([["  "], []], 100)
    with pytest.raises(ZooError, match="special tokens"):
        BertVocabulary.from_wordpiece(["[PAD]", "a"])
    assert np.array_equal(bert_vocabulary.as_vocabulary(wordpiece.RESERVED_TOKENS + ["a"]).word_starts, [True] * 6)


# === Whole-word masking by the vocabulary's word starts (bert_pretraining.create_examples) ===


def restore(examples):
    """Token ids with the original tokens put back at the masked positions."""
    tokens = examples["token_ids"].copy()
    rows, cols = np.nonzero(examples["mask_weights"])
    tokens[rows, examples["mask_positions"][rows, cols]] = examples["mask_ids"][rows, cols]
    return tokens


def _word_groups(row, starts, skip):
    """The original's candidate words of one example: [CLS]/[SEP] skipped, a non-start piece joins the last."""
    groups = []
    for i, t in enumerate(row):
        if t in skip:
            continue
        if groups and not starts[t]:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


def _check_whole_words(examples, vocabulary, max_predictions):
    skip = (vocabulary.special_ids["cls"], vocabulary.special_ids["sep"])
    tokens, multi = restore(examples), 0
    for row, mask, weights, positions in zip(tokens, examples["padding_mask"], examples["mask_weights"],
                                              examples["mask_positions"]):
        length = int(mask.sum())
        chosen = set(positions[weights > 0].tolist())
        assert len(chosen) <= min(max_predictions, max(1, round(length * 0.15)))
        for group in _word_groups(row[:length].tolist(), vocabulary.word_starts, skip):
            inside = [i in chosen for i in group]
            assert all(inside) or not any(inside), "a word was masked in part"
            multi += all(inside) and len(group) > 1
    assert multi > 0  # words of several pieces were masked whole


def test_whole_word_masking_wordpiece():
    stems = [f"w{i}" for i in range(30)]
    vocabulary = BertVocabulary.from_wordpiece(wordpiece.RESERVED_TOKENS + stems + ["##a", "##b", "##c"])
    rng = random.Random(1)
    docs = [[" ".join(rng.choice(stems) + rng.choice(["", "a", "ab", "abc"]) for _ in range(rng.randint(3, 9)))
             for _ in range(rng.randint(3, 8))] for _ in range(30)]
    examples = create_examples(docs, vocabulary, 48, 7, dupe_factor=2, whole_word_mask=True)
    _check_whole_words(examples, vocabulary, 7)
    plain = create_examples(docs, vocabulary, 48, 7, dupe_factor=2)
    from_list = create_examples(docs, vocabulary.tokens, 48, 7, dupe_factor=2)
    assert all(np.array_equal(plain[k], from_list[k]) for k in FEATURES)
    assert not np.array_equal(plain["mask_positions"], examples["mask_positions"])


def test_whole_word_masking_sentencepiece():
    vocabulary = train_sentencepiece_vocabulary([KOREAN] * 3, 90)
    rng = random.Random(2)
    docs = [[rng.choice(KOREAN) for _ in range(rng.randint(2, 6))] for _ in range(30)]
    examples = create_examples(docs, vocabulary, 40, 6, dupe_factor=2, whole_word_mask=True)
    assert (examples["token_ids"][:, 0] == 2).all()  # KoBERT's [CLS]
    assert (examples["token_ids"][examples["padding_mask"] == 0] == 1).all()  # and [PAD]
    _check_whole_words(examples, vocabulary, 6)
