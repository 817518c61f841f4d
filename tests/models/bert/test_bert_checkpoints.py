"""Loading Hugging Face (safetensors) and keras-hub BERT checkpoints, against a NumPy forward pass written here
from the Hugging Face layout and against keras-hub's own outputs. Checkpoints are written in the test from
random weights; nothing is downloaded."""

import json
import os

import keras
import keras_hub
import ml_dtypes
import numpy as np
import pytest
from safetensors.numpy import save_file
from scipy.special import erf

import zoo
from zoo.models.bert import BertBackbone, BertPretrainer
from zoo.models.bert.bert_checkpoints import backbone_config, checkpoint_vocabulary, load_bert_weights

TOY = dict(vocab_size=40, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=32,
           max_position_embeddings=24, type_vocab_size=2, hidden_act="gelu", layer_norm_eps=1e-12)


@pytest.fixture(autouse=True)
def _clear():
    yield
    keras.backend.clear_session()


# === Checkpoints in the Hugging Face layout, and a NumPy BERT that reads that layout ===


def hf_tensors(config, seed=0, heads=True, pooler=True, prefix="bert.", old_layer_norm=False):
    """Random tensors named and shaped as `BertForPreTraining.state_dict()` (Linear weights [out, in])."""
    rng = np.random.default_rng(seed)
    V, H, I = config["vocab_size"], config["hidden_size"], config["intermediate_size"]
    g, b = ("gamma", "beta") if old_layer_norm else ("weight", "bias")
    t = {}

    def linear(name, n_out, n_in):
        t[f"{name}.weight"] = rng.normal(0, 1.2 / np.sqrt(n_in), (n_out, n_in)).astype("float32")
        t[f"{name}.bias"] = rng.normal(0, 0.1, (n_out,)).astype("float32")

    def layer_norm(name, n):
        t[f"{name}.{g}"] = (1 + rng.normal(0, 0.1, (n,))).astype("float32")
        t[f"{name}.{b}"] = rng.normal(0, 0.1, (n,)).astype("float32")

    p = prefix
    t[f"{p}embeddings.word_embeddings.weight"] = rng.normal(0, 0.5, (V, H)).astype("float32")
    t[f"{p}embeddings.position_embeddings.weight"] = rng.normal(0, 0.5, (config["max_position_embeddings"], H))
    t[f"{p}embeddings.token_type_embeddings.weight"] = rng.normal(0, 0.5, (config["type_vocab_size"], H))
    t[f"{p}embeddings.position_ids"] = np.arange(config["max_position_embeddings"])[None].astype("int64")
    layer_norm(f"{p}embeddings.LayerNorm", H)
    for i in range(config["num_hidden_layers"]):
        layer = f"{p}encoder.layer.{i}"
        for name in ("query", "key", "value"):
            linear(f"{layer}.attention.self.{name}", H, H)
        linear(f"{layer}.attention.output.dense", H, H)
        layer_norm(f"{layer}.attention.output.LayerNorm", H)
        linear(f"{layer}.intermediate.dense", I, H)
        linear(f"{layer}.output.dense", H, I)
        layer_norm(f"{layer}.output.LayerNorm", H)
    if pooler:
        linear(f"{p}pooler.dense", H, H)
    if heads:
        linear("cls.predictions.transform.dense", H, H)
        layer_norm("cls.predictions.transform.LayerNorm", H)
        t["cls.predictions.bias"] = rng.normal(0, 0.1, (V,)).astype("float32")
        t["cls.predictions.decoder.weight"] = t[f"{p}embeddings.word_embeddings.weight"]
        t["cls.predictions.decoder.bias"] = t["cls.predictions.bias"]
        linear("cls.seq_relationship", 2, H)
    return {k: np.ascontiguousarray(v.astype("float32") if v.dtype == "float64" else v) for k, v in t.items()}


def write_hf(directory, config, tensors, dtype=None):
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump({"model_type": "bert", "architectures": ["BertForPreTraining"], **config}, f)
    if dtype is not None:
        tensors = {k: v.astype(dtype) if v.dtype == "float32" else v for k, v in tensors.items()}
    save_file(tensors, os.path.join(directory, "model.safetensors"))
    return str(directory)


def numpy_bert(t, config, inputs, mask_positions=None, prefix="bert."):
    """BERT forward pass (post-LN, erf or tanh GELU per `hidden_act`) on the HF tensors `t`."""
    eps, A = config["layer_norm_eps"], config["num_attention_heads"]
    exact = config["hidden_act"] == "gelu"

    def gelu(x):
        if exact:
            return 0.5 * x * (1 + erf(x / np.sqrt(2)))
        return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))

    def ln(x, name):
        g = t.get(f"{name}.weight", t.get(f"{name}.gamma"))
        b = t.get(f"{name}.bias", t.get(f"{name}.beta"))
        mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + eps) * g + b

    def lin(x, name):
        return x @ t[f"{name}.weight"].astype("float64").T + t[f"{name}.bias"]

    p, ids = prefix, inputs["token_ids"]
    B, T = ids.shape
    x = (t[f"{p}embeddings.word_embeddings.weight"][ids] + t[f"{p}embeddings.position_embeddings.weight"][:T]
         + t[f"{p}embeddings.token_type_embeddings.weight"][inputs["segment_ids"]]).astype("float64")
    x = ln(x, f"{p}embeddings.LayerNorm")
    bias = np.where(inputs["padding_mask"][:, None, None, :] > 0, 0.0, -1e9)
    for i in range(config["num_hidden_layers"]):
        layer = f"{p}encoder.layer.{i}"
        heads = [lin(x, f"{layer}.attention.self.{n}").reshape(B, T, A, -1).transpose(0, 2, 1, 3)
                 for n in ("query", "key", "value")]
        q, k, v = heads
        scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(q.shape[-1]) + bias
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        context = (probs @ v).transpose(0, 2, 1, 3).reshape(B, T, -1)
        x = ln(x + lin(context, f"{layer}.attention.output.dense"), f"{layer}.attention.output.LayerNorm")
        h = lin(gelu(lin(x, f"{layer}.intermediate.dense")), f"{layer}.output.dense")
        x = ln(x + h, f"{layer}.output.LayerNorm")
    out = {"sequence_output": x, "pooled_output": np.tanh(lin(x[:, 0], f"{p}pooler.dense"))}
    if mask_positions is not None:
        picked = np.take_along_axis(x, mask_positions[:, :, None], axis=1)
        h = ln(gelu(lin(picked, "cls.predictions.transform.dense")), "cls.predictions.transform.LayerNorm")
        out["mlm_logits"] = h @ t[f"{p}embeddings.word_embeddings.weight"].T + t["cls.predictions.bias"]
        out["nsp_logits"] = lin(out["pooled_output"], "cls.seq_relationship")
    return out


def token_batch(vocab, batch=3, seq=10, seed=0, pad_id=0):
    rng = np.random.default_rng(seed)
    lengths = np.array([seq, seq - 3, 4])[:batch]
    mask = (np.arange(seq)[None, :] < lengths[:, None]).astype("int32")
    ids = np.where(mask > 0, rng.integers(2, vocab, size=(batch, seq)), pad_id).astype("int32")
    return {"token_ids": ids, "segment_ids": ((np.arange(seq)[None, :] >= lengths[:, None] // 2) * mask).astype(
        "int32"), "padding_mask": mask}


def assert_outputs_close(ours, reference, keys=("sequence_output", "pooled_output"), atol=1e-5):
    for key in keys:
        np.testing.assert_allclose(np.asarray(ours[key]), reference[key], atol=atol, rtol=1e-5, err_msg=key)


# === Hugging Face format ===


def test_hf_backbone_matches_numpy_reference_with_padding(tmp_path):
    tensors = hf_tensors(TOY)
    path = write_hf(tmp_path / "hf", TOY, tensors)
    config = backbone_config(path)
    assert config == dict(vocabulary_size=40, num_layers=2, num_heads=2, hidden_dim=16, intermediate_dim=32,
                          max_sequence_length=24, num_segments=2, dropout=0.1, activation="gelu",
                          layer_norm_epsilon=1e-12)
    model = BertBackbone(**{**config, "dropout": 0.0})
    summary = load_bert_weights(model, path)
    # 5 embedding tensors + 16 per layer + 2 pooler
    assert summary == {"format": "huggingface", "tensors": 5 + 2 * 16 + 2, "not_in_checkpoint": []}
    inputs = token_batch(40)
    assert_outputs_close(model(inputs), numpy_bert(tensors, TOY, inputs))


def test_hf_pretrainer_heads_match_reference_and_file_path_loads(tmp_path):
    tensors = hf_tensors(TOY, seed=1)
    write_hf(tmp_path / "hf", TOY, tensors)
    model = BertPretrainer(BertBackbone(**{**backbone_config(str(tmp_path / "hf")), "dropout": 0.0}))
    summary = load_bert_weights(model, str(tmp_path / "hf" / "model.safetensors"), flag="--bert_checkpoint")
    assert summary["not_in_checkpoint"] == [] and summary["tensors"] == 39 + 5 + 2
    inputs = token_batch(40)
    positions = np.array([[1, 2], [0, 5], [3, 1]], "int32")
    reference = numpy_bert(tensors, TOY, inputs, mask_positions=positions)
    ours = model({**inputs, "mask_positions": positions})
    assert_outputs_close(ours, reference, keys=("mlm_logits", "nsp_logits"), atol=2e-5)


def test_sharded_checkpoint(tmp_path):
    tensors = hf_tensors(TOY, seed=5, heads=False)
    names = sorted(tensors)
    shards = {"model-00001-of-00002.safetensors": names[::2], "model-00002-of-00002.safetensors": names[1::2]}
    os.makedirs(tmp_path / "hf")
    for shard, keys in shards.items():
        save_file({k: tensors[k] for k in keys}, str(tmp_path / "hf" / shard))
    index = {"metadata": {}, "weight_map": {k: shard for shard, keys in shards.items() for k in keys}}
    (tmp_path / "hf" / "model.safetensors.index.json").write_text(json.dumps(index))
    (tmp_path / "hf" / "config.json").write_text(json.dumps(TOY))
    model = BertBackbone(**{**backbone_config(str(tmp_path / "hf")), "dropout": 0.0})
    assert load_bert_weights(model, str(tmp_path / "hf"))["tensors"] == 39
    inputs = token_batch(40)
    assert_outputs_close(model(inputs), numpy_bert(tensors, TOY, inputs))


def test_kobert_tiny_shaped_checkpoint_without_prefix(tmp_path):
    kobert = {**TOY, "vocab_size": 8002, "hidden_size": 128, "intermediate_size": 512,
              "max_position_embeddings": 512, "pad_token_id": 1}
    tensors = hf_tensors(kobert, heads=False, prefix="", old_layer_norm=True)
    path = write_hf(tmp_path / "kobert", kobert, tensors)
    (tmp_path / "kobert" / "spiece.model").write_bytes(b"\0")
    model = zoo.create_model("kobert_tiny", dropout=0.0)
    assert load_bert_weights(model, path)["tensors"] == 39
    inputs = token_batch(8002, pad_id=1)
    assert_outputs_close(model(inputs), numpy_bert(tensors, kobert, inputs, prefix=""))
    assert checkpoint_vocabulary(path) == os.path.join(path, "spiece.model")


def test_tanh_gelu_and_other_epsilon_from_config(tmp_path):
    # eps 0.5: far from 1e-12, so a loader that dropped the epsilon would miss the tolerance by a wide margin.
    config = {**TOY, "hidden_act": "gelu_pytorch_tanh", "layer_norm_eps": 0.5}
    tensors = hf_tensors(config, seed=2)
    path = write_hf(tmp_path / "hf", config, tensors)
    kwargs = backbone_config(path)
    assert (kwargs["activation"], kwargs["layer_norm_epsilon"]) == ("gelu_approximate", 0.5)
    model = BertBackbone(**{**kwargs, "dropout": 0.0})
    load_bert_weights(model, path)
    inputs = token_batch(40)
    assert_outputs_close(model(inputs), numpy_bert(tensors, config, inputs))


@pytest.mark.parametrize("dtype", ["float16", ml_dtypes.bfloat16])
def test_half_precision_checkpoints_are_cast(tmp_path, dtype):
    tensors = hf_tensors(TOY, heads=False)
    path = write_hf(tmp_path / "hf", TOY, tensors, dtype=dtype)
    model = BertBackbone(**{**backbone_config(path), "dropout": 0.0})
    load_bert_weights(model, path)
    rounded = {k: v.astype(dtype).astype("float32") if v.dtype == "float32" else v for k, v in tensors.items()}
    assert model.weights[0].dtype == "float32"
    inputs = token_batch(40)
    assert_outputs_close(model(inputs), numpy_bert(rounded, TOY, inputs))


def test_parts_absent_from_the_checkpoint_keep_their_initialization(tmp_path):
    path = write_hf(tmp_path / "mlm", TOY, hf_tensors(TOY, pooler=False, heads=False))
    model = BertPretrainer(BertBackbone(**backbone_config(path)))
    before = model.backbone.pooled_dense.kernel.numpy()
    summary = load_bert_weights(model, path)
    assert summary["not_in_checkpoint"] == ["pooler", "mlm_head", "nsp_head"]
    np.testing.assert_array_equal(model.backbone.pooled_dense.kernel.numpy(), before)


def test_keras_hub_hf_loader_agrees_with_ours(tmp_path):
    """Second oracle: keras-hub reads the same directory offline (its BertBackbone is always tanh GELU, so the
    checkpoint says gelu_new)."""
    config = {**TOY, "hidden_act": "gelu_new"}
    tensors = hf_tensors(config, seed=3, heads=False)
    path = write_hf(tmp_path / "hf", config, tensors)
    hub = keras_hub.models.BertBackbone.from_preset(path, dropout=0.0)
    ours = BertBackbone(**{**backbone_config(path), "dropout": 0.0})
    load_bert_weights(ours, path)
    inputs = token_batch(40)
    assert_outputs_close(ours(inputs), {k: np.asarray(v) for k, v in hub(inputs).items()})
    assert_outputs_close(ours(inputs), numpy_bert(tensors, config, inputs))


# === keras-hub BertBackbone weights ===


def test_keras_hub_preset_and_weights_file_load(tmp_path):
    keras.utils.set_random_seed(4)
    hub_config = dict(vocabulary_size=40, num_layers=2, num_heads=2, hidden_dim=16, intermediate_dim=32,
                      dropout=0.0, max_sequence_length=24)
    hub = keras_hub.models.BertBackbone(**hub_config)
    rng = np.random.default_rng(4)
    for v in hub.weights:
        v.assign(rng.normal(0, 0.3, v.shape).astype("float32"))
    hub.save_to_preset(str(tmp_path / "preset"))
    os.makedirs(tmp_path / "bare")
    hub.save_weights(str(tmp_path / "bare" / "bert.weights.h5"))
    inputs = token_batch(40)
    expected = {k: np.asarray(v) for k, v in hub(inputs).items()}
    shapes = {**hub_config, "num_segments": 2, "activation": "gelu_approximate", "layer_norm_epsilon": 1e-12}
    for path, saved in ((str(tmp_path / "preset"), shapes), (str(tmp_path / "bare" / "bert.weights.h5"),
                                                              {k: v for k, v in shapes.items() if k != "dropout"})):
        config = backbone_config(path)  # a bare weights file has no dropout: read from the shapes
        assert config == saved
        model = BertPretrainer(BertBackbone(**{**config, "dropout": 0.0}))
        summary = load_bert_weights(model, path)
        assert summary == {"format": "keras_hub", "tensors": 39, "not_in_checkpoint": ["mlm_head", "nsp_head"]}
        assert_outputs_close(model.backbone(inputs), expected)


# === Errors: one line, naming the flag ===


def _one_line_error(match, fn, *args, **kwargs):
    with pytest.raises(zoo.ZooError, match=match) as info:
        fn(*args, **kwargs)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_missing_and_pickled_checkpoints_are_refused(tmp_path):
    model = BertBackbone(**{**backbone_config(write_hf(tmp_path / "hf", TOY, hf_tensors(TOY))), "dropout": 0.0})
    _one_line_error(r"--init_checkpoint='/nope': no such file", load_bert_weights, model, "/nope")
    (tmp_path / "torch").mkdir()
    (tmp_path / "torch" / "config.json").write_text(json.dumps(TOY))
    (tmp_path / "torch" / "pytorch_model.bin").write_bytes(b"\x80\x04not unpickled")
    for path in (tmp_path / "torch", tmp_path / "torch" / "pytorch_model.bin"):
        message = _one_line_error(r"--ckpt=.*pytorch_model.bin is a pickled .* never unpickles; convert it",
                                  load_bert_weights, model, str(path), flag="--ckpt")
        assert "save_pretrained('OUT', safe_serialization=True)" in message
    (tmp_path / "tf1").mkdir()
    (tmp_path / "tf1" / "bert_model.ckpt.index").write_bytes(b"")
    _one_line_error(r"bert_model.ckpt.index is a TensorFlow 1 checkpoint", load_bert_weights, model,
                    str(tmp_path / "tf1"))


def test_config_and_tensor_mismatches_name_the_flag(tmp_path):
    path = write_hf(tmp_path / "kobert", {**TOY, "vocab_size": 8002}, hf_tensors({**TOY, "vocab_size": 8002}))
    model = BertBackbone(**{**backbone_config(path), "vocabulary_size": 30522})
    _one_line_error(r"--init_checkpoint: vocab_size 8002 in the checkpoint's config.json but the model has "
                    r"vocabulary_size=30522", load_bert_weights, model, path)
    exact = BertBackbone(**{**backbone_config(path), "activation": "gelu_approximate"})
    _one_line_error(r"hidden_act 'gelu' in the checkpoint's config.json but the model has "
                    r"activation='gelu_approximate'", load_bert_weights, exact, path)
    tanh = write_hf(tmp_path / "tanh", {**TOY, "hidden_act": "gelu_new"}, hf_tensors(TOY))
    _one_line_error(r"hidden_act 'gelu_new' in the checkpoint's config.json but the model has activation='gelu'",
                    load_bert_weights, BertBackbone(**{**backbone_config(tanh), "activation": "gelu"}), tanh)

    tensors = hf_tensors(TOY)
    tensors["bert.encoder.layer.1.intermediate.dense.weight"] = np.zeros((31, 16), "float32")
    path = write_hf(tmp_path / "bad_shape", TOY, tensors)
    model = BertBackbone(**backbone_config(path))
    before = [w.numpy() for w in model.weights]
    _one_line_error(r"tensor bert.encoder.layer.1.intermediate.dense.weight has shape \(31, 16\) in the checkpoint "
                    r"but the model needs \(32, 16\)", load_bert_weights, model, path)
    for w, b in zip(model.weights, before):  # nothing was assigned
        np.testing.assert_array_equal(w.numpy(), b)

    tensors = hf_tensors(TOY)
    del tensors["bert.encoder.layer.0.attention.self.key.bias"]
    _one_line_error(r"lacks 1 encoder tensor\(s\), e.g. bert.encoder.layer.0.attention.self.key.bias",
                    load_bert_weights, model, write_hf(tmp_path / "missing", TOY, tensors))
    tensors = {**hf_tensors(TOY), "bert.encoder.layer.2.output.dense.weight": np.zeros((1,), "float32")}
    _one_line_error(r"has 1 tensor\(s\) the model has no place for, e.g. bert.encoder.layer.2.output.dense.weight",
                    load_bert_weights, model, write_hf(tmp_path / "extra", TOY, tensors))

    tensors = hf_tensors(TOY)
    tensors["cls.predictions.decoder.weight"] = tensors["cls.predictions.decoder.weight"] + 1
    path = write_hf(tmp_path / "untied", TOY, tensors)
    _one_line_error(r"cls.predictions.decoder.weight differs from bert.embeddings.word_embeddings.weight",
                    load_bert_weights, BertPretrainer(BertBackbone(**backbone_config(path))), path)
    load_bert_weights(BertBackbone(**backbone_config(path)), path)  # the backbone alone loads


def test_unsupported_configs_are_refused(tmp_path):
    for change, match in (({"hidden_act": "relu"}, r"hidden_act 'relu'; BertBackbone supports gelu, gelu_python, gelu_new"),
                          ({"model_type": "roberta"}, r"model_type 'roberta'; only BERT"),
                          ({"position_embedding_type": "relative_key"}, r"absolute positions only")):
        path = write_hf(tmp_path / next(iter(change)), {**TOY, **change}, hf_tensors(TOY))
        _one_line_error(match, backbone_config, path)
    (tmp_path / "empty").mkdir()
    _one_line_error(r"no model.safetensors .* or model.weights.h5", backbone_config, str(tmp_path / "empty"))


def test_checkpoint_vocabulary(tmp_path):
    assert checkpoint_vocabulary(str(tmp_path)) is None and checkpoint_vocabulary(None) is None
    (tmp_path / "model.safetensors").write_bytes(b"")
    (tmp_path / "tokenizer_78b3253a26.model").write_bytes(b"")
    assert checkpoint_vocabulary(str(tmp_path / "model.safetensors")) == str(tmp_path / "tokenizer_78b3253a26.model")
    # A KoBERT port with tokenizer_*.model and a vocab.txt listing its pieces: the SentencePiece model wins.
    (tmp_path / "vocab.txt").write_text("[PAD]\n")
    assert checkpoint_vocabulary(str(tmp_path)) == str(tmp_path / "tokenizer_78b3253a26.model")
    (tmp_path / "tokenizer_78b3253a26.model").unlink()
    assert checkpoint_vocabulary(str(tmp_path)) == str(tmp_path / "vocab.txt")
