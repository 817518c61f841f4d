"""XLNet's SentencePiece vocabulary: special ids, foreign models by piece names, preprocess_text and the
digit-comma re-split against direct ports of prepro_utils.py, TF tokenization == Python encoding."""

import io
import pickle
import random
import unicodedata

import pytest
import tensorflow as tf

from zoo.data import subword, xlnet_vocabulary
from zoo.data.xlnet_vocabulary import XLNetVocabulary, load_xlnet_vocabulary, train_xlnet_vocabulary
from zoo.errors import ZooError

SPIECE_UNDERLINE = "\u2581"
_rng = random.Random(0)
NUMBERS = [f"In {_rng.randint(1900, 1999)}, the town had {_rng.randint(1, 99)},{_rng.randint(100, 999)} people, up "
           f"from {_rng.randint(10, 99)}. The café (old) cost £{_rng.randint(1, 9)} - or €{_rng.randint(1, 9)}."
           for _ in range(300)]
EDGE = ["Café  naïve\tcoöperate  Ångström ﬁne", "  leading\u3000and\u00a0trailing  ", "``quoted'' text",
        "é\u0301 e\u0327\u0301", "ＡＢＣ１２３", "x² ½ ①", "line\nbreak\r\nand\x0bvertical", "",
        "In 1990, 12,345 and 7,", "tab\tseparated, 2000,"]


def original_preprocess_text(inputs, lower=False, remove_space=True, keep_accents=False):
    """prepro_utils.preprocess_text (Python 3 branch), verbatim."""
    outputs = " ".join(inputs.strip().split()) if remove_space else inputs
    outputs = outputs.replace("``", '"').replace("''", '"')
    if not keep_accents:
        outputs = unicodedata.normalize("NFKD", outputs)
        outputs = "".join([c for c in outputs if not unicodedata.combining(c)])
    if lower:
        outputs = outputs.lower()
    return outputs


def original_encode_ids(sp_model, text):
    """prepro_utils.encode_pieces + encode_ids (sample=False), verbatim."""
    pieces = sp_model.EncodeAsPieces(text)
    new_pieces = []
    for piece in pieces:
        if len(piece) > 1 and piece[-1] == "," and piece[-2].isdigit():
            cur_pieces = sp_model.EncodeAsPieces(piece[:-1].replace(SPIECE_UNDERLINE, ""))
            if piece[0] != SPIECE_UNDERLINE and cur_pieces[0][0] == SPIECE_UNDERLINE:
                if len(cur_pieces[0]) == 1:
                    cur_pieces = cur_pieces[1:]
                else:
                    cur_pieces[0] = cur_pieces[0][1:]
            cur_pieces.append(piece[-1])
            new_pieces.extend(cur_pieces)
        else:
            new_pieces.append(piece)
    return [sp_model.PieceToId(piece) for piece in new_pieces]


@pytest.fixture(scope="module")
def vocab():
    return train_xlnet_vocabulary(NUMBERS, 200)


def test_special_ids_and_user_defined_pieces(vocab):
    assert vocab.pieces[:9] == ["<unk>", "<s>", "</s>", "<cls>", "<sep>", "<pad>", "<mask>", "<eod>", "<eop>"]
    assert vocab.special_ids == {"unk": 0, "bos": 1, "eos": 2, "cls": 3, "sep": 4, "pad": 5, "mask": 6, "eod": 7,
                                 "eop": 8}
    assert vocab.pieces[9:17] == [".", "(", ")", '"', "-", "\u2013", "\u00a3", "\u20ac"]
    assert vocab.standard_layout and vocab.vocabulary_size == len(vocab) == 200
    ids = vocab.encode("<cls> <sep> <pad> <mask> <eod> text<eop>")
    assert not set(ids) & {1, 2, 3, 4, 5, 6, 7} and 8 in ids  # control pieces never from text; <eop> is
    assert vocab.functional_ids == (4, 3)
    assert vocab.start_pieces[[0, 3, 8, 9, 10]].all()  # "<...>" pieces and punctuation start a word
    assert vocab.start_pieces[vocab.pieces.index("\u2581t")] and not vocab.start_pieces[vocab.pieces.index("h")]


def test_preprocess_text_matches_the_original():
    assert [xlnet_vocabulary.preprocess_text(t) for t in EDGE] == [original_preprocess_text(t) for t in EDGE]
    assert xlnet_vocabulary.preprocess_text(EDGE[0]) == "Cafe naive cooperate Angstrom fine"  # NFKD splits the ligature


def test_encode_matches_the_original_encode_ids_with_digit_comma_resplit(vocab):
    sp = vocab._processor
    texts = NUMBERS[:20] + EDGE
    resplit = 0
    for text in texts:
        pre = original_preprocess_text(text)
        assert vocab.encode(text) == original_encode_ids(sp, pre)
        resplit += sum(len(p) > 1 and p[-1] == "," and p[-2].isdigit() for p in sp.EncodeAsPieces(pre))
    assert resplit > 10  # the re-split really ran: "▁19 90," -> "▁19 90 ,"
    pieces = vocab.encode_pieces("In 1990, 12,345 yes")
    assert pieces.count(",") == 2 and not any(len(p) > 1 and p[-1] == "," for p in pieces)


def test_tokenize_in_tf_equals_encode(vocab):
    texts = NUMBERS[:8] + EDGE
    got = vocab.tokenize(tf.constant(texts)).to_list()
    assert got == [vocab.encode(t) for t in texts]
    assert vocab.tokenize(tf.constant(texts[0])).numpy().tolist() == vocab.encode(texts[0])
    ds = tf.data.Dataset.from_tensor_slices(texts).batch(3).map(vocab.tokenize)
    assert [row for batch in ds for row in batch.to_list()] == got


def test_foreign_model_is_read_by_piece_names(tmp_path):
    import sentencepiece as spm

    writer = io.BytesIO()  # another order: no <s>/</s> ids, specials as user-defined pieces after <unk>
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(NUMBERS), model_writer=writer, vocab_size=120, model_type="unigram", bos_id=-1,
        eos_id=-1, unk_id=0, control_symbols=["<eod>", "<mask>", "<pad>", "<sep>", "<cls>", "<s>", "</s>"],
        user_defined_symbols=["<eop>"], minloglevel=2, hard_vocab_limit=False)
    foreign = XLNetVocabulary(writer.getvalue())
    assert not foreign.standard_layout
    assert {name: foreign.pieces[i] for name, i in foreign.special_ids.items()} == {
        name: piece for name, (piece, _) in xlnet_vocabulary.SPECIALS.items()}
    assert foreign.special_ids["eod"] == 1 and foreign.special_ids["cls"] == 5
    path = tmp_path / "spiece.model"
    path.write_bytes(foreign.proto)
    assert load_xlnet_vocabulary(str(tmp_path)).sha1 == foreign.sha1  # a directory means its spiece.model

    other = subword.train_subword_model(NUMBERS, 100)  # pad/unk/bos/eos only
    with pytest.raises(ZooError, match=r"lacks XLNet's special pieces .*--spiece_model"):
        XLNetVocabulary(other.proto)
    with pytest.raises(ZooError, match="--spiece_model"):
        load_xlnet_vocabulary(str(tmp_path / "missing.model"))
    with pytest.raises(ZooError, match="does not parse"):
        XLNetVocabulary(b"not a model")


def test_save_load_sha1_pickle_and_reproducible(vocab, tmp_path):
    path = vocab.save(str(tmp_path / "run"))
    assert path.endswith("spiece.model")
    again = load_xlnet_vocabulary(path)
    assert again.proto == vocab.proto and again.sha1 == vocab.sha1 == subword.vocabulary_sha1(vocab.proto)
    assert train_xlnet_vocabulary(NUMBERS, 200).proto == vocab.proto
    copy = pickle.loads(pickle.dumps(vocab))
    assert copy.encode(NUMBERS[0]) == vocab.encode(NUMBERS[0])
    with pytest.raises(ZooError, match="--vocab_size"):
        train_xlnet_vocabulary(NUMBERS, 17)


def test_module_docstring_example_runs(tmp_path):
    doc = xlnet_vocabulary.__doc__
    code = doc.split("```python\n")[1].split("```")[0].replace("/tmp/run", str(tmp_path / "run"))
    namespace = {}
    exec(compile(code, "xlnet_vocabulary example", "exec"), namespace)
    vocab, ids = namespace["vocab"], namespace["ids"]
    assert (vocab.special_ids["cls"], vocab.special_ids["eod"]) == (3, 7)
    assert vocab.tokenize(["I was born in 1990, and this is falsé."])[0].numpy().tolist() == ids
    assert vocab.decode(ids) == "I was born in 1990, and this is false."
