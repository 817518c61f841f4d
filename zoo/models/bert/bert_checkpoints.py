"""Pretrained BERT weights a user has locally, read without network and without unpickling.

Two formats:
- Hugging Face: a directory with `config.json` and `model.safetensors` (or a sharded
  `model.safetensors.index.json`), or the path of the `.safetensors` file with `config.json` beside it.
  Tensor names as `BertModel` / `BertForPreTraining` write them, with or without the `bert.` prefix; Linear
  weights are [out, in]. The heads of a `BertPretrainer` come from `cls.predictions.*` (decoder tied to the
  word embeddings) and `cls.seq_relationship.*` (label 0 = IsNext, 1 = random, as ours).
- keras-hub `BertBackbone`: a preset directory (`config.json` registered as `keras_hub>BertBackbone` and
  `model.weights.h5`), or a `.weights.h5` file of one; ported variable by variable through its paths, which
  are ours.

`pytorch_model.bin`, `.pt`, `.ckpt` and other pickles are refused with the command that converts them.

Example:
    from zoo.models.bert import BertBackbone, BertPretrainer
    from zoo.models.bert.bert_checkpoints import backbone_config, checkpoint_vocabulary, load_bert_weights
    backbone = BertBackbone(**backbone_config("kobert-safetensors/"))      # shapes and GELU from config.json
    model = BertPretrainer(backbone)
    load_bert_weights(model, "kobert-safetensors/")  # a BertModel checkpoint: {"format": "huggingface",
    #   "tensors": 199, "not_in_checkpoint": ["mlm_head", "nsp_head"]}
    vocabulary = checkpoint_vocabulary("kobert-safetensors/")    # ".../spiece.model"
"""

import json
import os

import numpy as np

from zoo.errors import ZooError

# Hugging Face `hidden_act` -> BertBackbone `activation`.
HF_ACTIVATIONS = {"gelu": "gelu", "gelu_python": "gelu", "gelu_new": "gelu_approximate",
                  "gelu_pytorch_tanh": "gelu_approximate", "gelu_fast": "gelu_approximate"}
# BertBackbone argument -> Hugging Face config.json field.
HF_FIELDS = {"vocabulary_size": "vocab_size", "num_layers": "num_hidden_layers", "num_heads": "num_attention_heads",
             "hidden_dim": "hidden_size", "intermediate_dim": "intermediate_size",
             "max_sequence_length": "max_position_embeddings", "num_segments": "type_vocab_size"}
KERAS_HUB_FIELDS = ("vocabulary_size", "num_layers", "num_heads", "hidden_dim", "intermediate_dim", "dropout",
                    "max_sequence_length", "num_segments")
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
CONVERT = ("convert it to safetensors where torch and transformers are installed: python -c \"from transformers "
           "import BertModel; BertModel.from_pretrained('DIR').save_pretrained('OUT', safe_serialization=True)\" "
           "(BertForPreTraining instead of BertModel keeps the pretraining heads)")
# Tensors of heads a BertBackbone or BertPretrainer has no use for (fine-tuned task heads).
IGNORED_PREFIXES = ("classifier.", "qa_outputs.")
# SentencePiece first: KoBERT ports ship tokenizer_*.model beside a vocab.txt that only lists its pieces.
SENTENCEPIECE_FILES = ("spiece.model", "sentencepiece.model", "tokenizer.model", "assets/tokenizer/vocabulary.spm")
WORDPIECE_FILES = ("vocab.txt", "assets/tokenizer/vocabulary.txt")


def _is_keras_hub_bert(config):
    """True for a keras-hub config.json of a BertBackbone (not DistilBertBackbone and the like)."""
    return str(config.get("registered_name", "")).split(">")[-1] == "BertBackbone"


def _read_json(path, flag):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, ValueError) as e:
        raise ZooError(f"{flag}: cannot read {path}: {e}") from None


def _refuse_pickle(path, flag):
    name = os.path.basename(path)
    if ".ckpt." in name and (name.endswith(".index") or ".data-" in name):
        raise ZooError(f"{flag}={path} is a TensorFlow 1 checkpoint (google-research/bert), which zoo does not read; "
                       f"load it with transformers (BertForPreTraining.from_pretrained(DIR, from_tf=True)) and save "
                       f"it with save_pretrained('OUT', safe_serialization=True)")
    raise ZooError(f"{flag}={path} is a pickled (PyTorch) checkpoint, which zoo never unpickles; {CONVERT}")


def locate(path, flag="--init_checkpoint"):
    """(format, directory, weights) of a checkpoint: format "huggingface" (weights: list of .safetensors
    files) or "keras_hub" (weights: the .weights.h5 file); ZooError naming `flag` otherwise."""
    if not path or not os.path.exists(path):
        raise ZooError(f"{flag}={path!r}: no such file or directory; give a Hugging Face directory (config.json + "
                       f"model.safetensors) or a keras-hub BertBackbone preset directory or .weights.h5")
    if os.path.isfile(path):
        directory = os.path.dirname(os.path.abspath(path))
        if path.endswith(".safetensors"):
            return "huggingface", directory, [path]
        if path.endswith(".weights.h5"):
            return "keras_hub", directory, path
        if path.endswith(PICKLE_SUFFIXES) or ".ckpt" in os.path.basename(path):
            _refuse_pickle(path, flag)
        raise ZooError(f"{flag}={path}: not a .safetensors or keras-hub .weights.h5 file")
    files = set(os.listdir(path))
    if "config.json" in files:
        config = _read_json(os.path.join(path, "config.json"), flag)
        if _is_keras_hub_bert(config) and "model.weights.h5" in files:
            return "keras_hub", path, os.path.join(path, "model.weights.h5")
    if "model.safetensors.index.json" in files:
        index = _read_json(os.path.join(path, "model.safetensors.index.json"), flag)
        shards = sorted(set(index.get("weight_map", {}).values()))
        return "huggingface", path, [os.path.join(path, shard) for shard in shards]
    if "model.safetensors" in files:
        return "huggingface", path, [os.path.join(path, "model.safetensors")]
    pickles = sorted(f for f in files if f.endswith(PICKLE_SUFFIXES) or ".ckpt" in f)
    if pickles:
        _refuse_pickle(os.path.join(path, pickles[0]), flag)
    raise ZooError(f"{flag}={path}: no model.safetensors (Hugging Face) or model.weights.h5 (keras-hub preset) in "
                   f"the directory")


def _hf_config(directory, flag):
    config_path = os.path.join(directory, "config.json")
    if not os.path.exists(config_path):
        raise ZooError(f"{flag}: no config.json beside the safetensors weights in {directory}; put the checkpoint's "
                       f"Hugging Face config.json there")
    config = _read_json(config_path, flag)
    if config.get("model_type", "bert") != "bert":
        raise ZooError(f"{flag}: config.json has model_type {config['model_type']!r}; only BERT checkpoints load")
    if config.get("position_embedding_type", "absolute") != "absolute":
        raise ZooError(f"{flag}: config.json has position_embedding_type {config['position_embedding_type']!r}; "
                       f"BertBackbone has absolute positions only")
    missing = [field for field in HF_FIELDS.values() if field not in config]
    if missing:
        raise ZooError(f"{flag}: config.json lacks {', '.join(missing)}; is it a Hugging Face BERT config?")
    hidden_act = config.get("hidden_act", "gelu")
    if hidden_act not in HF_ACTIVATIONS:
        raise ZooError(f"{flag}: config.json has hidden_act {hidden_act!r}; BertBackbone supports "
                       f"{', '.join(HF_ACTIVATIONS)}")
    kwargs = {name: config[field] for name, field in HF_FIELDS.items()}
    return {**kwargs, "dropout": config.get("hidden_dropout_prob", 0.1), "activation": HF_ACTIVATIONS[hidden_act],
            "layer_norm_epsilon": config.get("layer_norm_eps", 1e-12)}


def _h5_config(weights_path, flag):
    """keras-hub BertBackbone kwargs read from the shapes in its .weights.h5 (when no config.json is beside)."""
    import h5py

    def shape(f, key):
        if key not in f:
            raise ZooError(f"{flag}={weights_path} is not the weights of a keras-hub BertBackbone (no {key})")
        return f[key].shape

    try:
        f = h5py.File(weights_path, "r")
    except OSError as e:
        raise ZooError(f"{flag}={weights_path}: cannot read it as HDF5 ({e})") from None
    with f:
        vocabulary_size, hidden_dim = shape(f, "layers/reversible_embedding/vars/0")
        block = "layers/transformer_encoder"
        return dict(vocabulary_size=vocabulary_size, hidden_dim=hidden_dim,
                    max_sequence_length=shape(f, "layers/position_embedding/vars/0")[0],
                    num_segments=shape(f, "layers/embedding/vars/0")[0],
                    num_layers=sum(1 for k in f["layers"] if k.startswith("transformer_encoder")),
                    num_heads=shape(f, f"{block}/_self_attention_layer/query_dense/vars/0")[1],
                    intermediate_dim=shape(f, f"{block}/_feedforward_intermediate_dense/vars/0")[1])


def backbone_config(path, flag="--init_checkpoint"):
    """`BertBackbone` keyword arguments for the checkpoint at `path` (see `locate`).

    Hugging Face: from config.json (`hidden_act` "gelu" -> activation "gelu", "gelu_new" / "gelu_pytorch_tanh"
    / "gelu_fast" -> "gelu_approximate"; `layer_norm_eps`; `hidden_dropout_prob` as dropout). keras-hub: from
    its config.json, or the weight shapes of a bare .weights.h5 (activation "gelu_approximate", epsilon 1e-12).
    """
    fmt, directory, weights = locate(path, flag)
    if fmt == "huggingface":
        return _hf_config(directory, flag)
    config_path = os.path.join(directory, "config.json")
    config = _read_json(config_path, flag) if os.path.exists(config_path) else {}
    if _is_keras_hub_bert(config):
        kwargs = {k: config["config"][k] for k in KERAS_HUB_FIELDS if k in config["config"]}
    else:
        kwargs = _h5_config(weights, flag)
    return {**kwargs, "activation": "gelu_approximate", "layer_norm_epsilon": 1e-12}


def _check_config(backbone, kwargs, fmt, directory, flag):
    """ZooError naming the first config field where the checkpoint and `backbone` differ (dropout aside)."""
    raw, names = {}, dict(HF_FIELDS, activation="hidden_act", layer_norm_epsilon="layer_norm_eps")
    if fmt == "huggingface":
        raw = _read_json(os.path.join(directory, "config.json"), flag)
    for name, value in kwargs.items():
        ours = getattr(backbone, name)
        if name != "dropout" and ours != value:
            field = names[name] if fmt == "huggingface" else name
            where = "the checkpoint's config.json" if fmt == "huggingface" else "the checkpoint"
            raise ZooError(f"{flag}: {field} {raw.get(field, value)!r} in {where} but the model "
                           f"has {name}={ours!r}; build it with zoo.models.bert.bert_checkpoints.backbone_config(path)")


def _backbone_and_heads(model):
    from zoo.models.bert.bert_backbone import BertBackbone
    from zoo.models.bert.bert_pretrainer import BertPretrainer

    if isinstance(model, BertPretrainer):
        return model.backbone, model
    if isinstance(model, BertBackbone):
        return model, None
    raise TypeError(f"load_bert_weights takes a BertBackbone or BertPretrainer, got {type(model).__name__}")


def load_bert_weights(model, path, flag="--init_checkpoint"):
    """Copies the checkpoint at `path` into `model` (a `BertBackbone` or `BertPretrainer`).

    The checkpoint's config must match the model's (sizes, activation, layer norm epsilon), every tensor
    must have the shape the model needs (float16 / bfloat16 are cast), and nothing is assigned unless all
    of them do; a mismatch is a ZooError naming `flag`. Parts the checkpoint does not hold keep their
    initialization and are listed in the result: the pooler (BertForMaskedLM saves none), the MLM and NSP
    heads of a `BertPretrainer` (all heads from keras-hub weights, which hold the backbone only).

    Returns:
        {"format": "huggingface" | "keras_hub", "tensors": number of tensors copied,
         "not_in_checkpoint": names of the parts left as initialized}.
    """
    backbone, pretrainer = _backbone_and_heads(model)
    fmt, directory, weights = locate(path, flag)
    _check_config(backbone, backbone_config(path, flag), fmt, directory, flag)
    if fmt == "huggingface":
        assignments, absent = _hf_assignments(backbone, pretrainer, weights, flag)
    else:
        assignments = _keras_hub_assignments(backbone, weights, flag)
        absent = ["mlm_head", "nsp_head"] if pretrainer is not None else []
    for variable, value in assignments:
        variable.assign(value)
    return {"format": fmt, "tensors": len(assignments), "not_in_checkpoint": absent}


# === Hugging Face tensors ===


def _linear(layer, prefix, inputs=1):
    """{HF name: (variable, how)} of a Linear, whose weight is [out, in]; `inputs`: leading kernel dims that
    are the input (1; 2 for an attention output [heads, head_dim, hidden])."""
    return {f"{prefix}.weight": (layer.kernel, ("linear", inputs)), f"{prefix}.bias": (layer.bias, ("bias",))}


def _layer_norm(layer, prefix, names):
    """{HF name: (variable, how)} of a LayerNorm; `names` holds the checkpoint's names (weight/bias or the old
    gamma/beta)."""
    old = f"{prefix}.gamma" in names
    return {f"{prefix}.{'gamma' if old else 'weight'}": (layer.gamma, ("copy",)),
            f"{prefix}.{'beta' if old else 'bias'}": (layer.beta, ("copy",))}


def _hf_groups(backbone, pretrainer, names, prefix):
    """[(part, required, {HF name: (variable, how)})] for the model: the encoder must be in the checkpoint,
    the pooler and heads may be absent (then all their tensors are)."""
    p = prefix
    encoder = {f"{p}embeddings.word_embeddings.weight": (backbone.token_embedding.embeddings, ("copy",)),
               f"{p}embeddings.position_embeddings.weight": (backbone.position_embedding.embeddings, ("copy",)),
               f"{p}embeddings.token_type_embeddings.weight": (backbone.segment_embedding.embeddings, ("copy",)),
               **_layer_norm(backbone.embeddings_layer_norm, f"{p}embeddings.LayerNorm", names)}
    for i, block in enumerate(backbone.transformer_layers):
        layer, attention = f"{p}encoder.layer.{i}", block._self_attention_layer
        for name, dense in (("query", attention.query_dense), ("key", attention.key_dense),
                            ("value", attention.value_dense)):
            encoder.update(_linear(dense, f"{layer}.attention.self.{name}"))
        encoder.update(_linear(attention.output_dense, f"{layer}.attention.output.dense", inputs=2))
        encoder.update(_layer_norm(block._self_attention_layer_norm, f"{layer}.attention.output.LayerNorm", names))
        encoder.update(_linear(block._feedforward_intermediate_dense, f"{layer}.intermediate.dense"))
        encoder.update(_linear(block._feedforward_output_dense, f"{layer}.output.dense"))
        encoder.update(_layer_norm(block._feedforward_layer_norm, f"{layer}.output.LayerNorm", names))
    groups = [("encoder", True, encoder), ("pooler", False, _linear(backbone.pooled_dense, f"{p}pooler.dense"))]
    if pretrainer is not None:
        head = pretrainer.mlm_head
        groups.append(("mlm_head", False, {
            **_linear(head.intermediate_dense, "cls.predictions.transform.dense"),
            **_layer_norm(head.intermediate_layer_norm, "cls.predictions.transform.LayerNorm", names),
            "cls.predictions.bias": (head.output_bias, ("copy",))}))
        groups.append(("nsp_head", False, _linear(pretrainer.nsp_head, "cls.seq_relationship")))
    return groups


def _expected_shape(variable, how):
    """The tensor's shape in the checkpoint: [out, in] for a Linear weight, flat for a bias."""
    shape = tuple(int(d) for d in variable.shape)
    if how[0] == "linear":
        inputs = how[1]
        return (int(np.prod(shape[inputs:])), int(np.prod(shape[:inputs])))
    return (int(np.prod(shape)),) if how[0] == "bias" else shape


def _convert(tensor, variable, how):
    value = np.asarray(tensor).astype(np.float32)
    if how[0] == "linear":
        value = value.T
    return value.reshape(tuple(int(d) for d in variable.shape)).astype(variable.dtype)


def _hf_assignments(backbone, pretrainer, files, flag):
    """[(variable, value)] for every tensor the model takes from the safetensors `files`, and the parts left
    as initialized."""
    from safetensors import safe_open

    handles, where = [], {}
    try:
        for path in files:
            handles.append(safe_open(path, framework="np"))
            where.update({name: handles[-1] for name in handles[-1].keys()})
    except Exception as e:  # safetensors raises its own SafetensorError on a corrupt header
        raise ZooError(f"{flag}: cannot read {path} as safetensors: {e}") from None
    names = set(where)
    prefix = "bert." if any(n.startswith("bert.embeddings.") for n in names) else ""
    assignments, absent, used = [], [], {f"{prefix}embeddings.position_ids"}
    for part, required, tensors in _hf_groups(backbone, pretrainer, names, prefix):
        missing = [n for n in tensors if n not in names]
        if missing and (required or len(missing) < len(tensors)):
            raise ZooError(f"{flag}: the checkpoint lacks {len(missing)} {part} tensor(s), e.g. "
                           f"{', '.join(missing[:3])}; is it a Hugging Face BERT checkpoint of this config?")
        if missing:
            absent.append(part)
            continue
        for name, (variable, how) in tensors.items():
            tensor = where[name].get_tensor(name)
            expected = _expected_shape(variable, how)
            if tuple(tensor.shape) != expected:
                raise ZooError(f"{flag}: tensor {name} has shape {tuple(tensor.shape)} in the checkpoint but the model "
                               f"needs {expected}; the checkpoint does not match its config.json")
            assignments.append((variable, _convert(tensor, variable, how)))
            used.add(name)
    if pretrainer is not None and "mlm_head" not in absent:
        _check_tied_decoder(where, backbone, prefix, flag)
        used.update({"cls.predictions.decoder.weight", "cls.predictions.decoder.bias"})
    unused = sorted(n for n in names - used if not n.startswith(IGNORED_PREFIXES)
                    and not (pretrainer is None and n.startswith("cls.")))
    if unused:
        raise ZooError(f"{flag}: the checkpoint has {len(unused)} tensor(s) the model has no place for, e.g. "
                       f"{', '.join(unused[:3])}; is it a Hugging Face BERT checkpoint?")
    return assignments, absent


def _check_tied_decoder(where, backbone, prefix, flag):
    """`cls.predictions.decoder.{weight,bias}`, when saved, must equal the word embeddings and the output bias:
    our decoder is tied."""
    pairs = (("cls.predictions.decoder.weight", f"{prefix}embeddings.word_embeddings.weight"),
             ("cls.predictions.decoder.bias", "cls.predictions.bias"))
    for decoder, tied in pairs:
        if decoder in where and not np.array_equal(np.asarray(where[decoder].get_tensor(decoder), np.float32),
                                                   np.asarray(where[tied].get_tensor(tied), np.float32)):
            raise ZooError(f"{flag}: {decoder} differs from {tied}; BertPretrainer ties its MLM decoder, so only "
                           f"checkpoints with a tied decoder load into it (load the backbone alone)")


# === keras-hub weights ===


def _keras_hub_assignments(backbone, weights_path, flag):
    """[(our variable, value)] read through a keras-hub BertBackbone loaded with the weights."""
    import keras_hub

    hub = keras_hub.models.BertBackbone(
        vocabulary_size=backbone.vocabulary_size, num_layers=backbone.num_layers, num_heads=backbone.num_heads,
        hidden_dim=backbone.hidden_dim, intermediate_dim=backbone.intermediate_dim, dropout=0.0,
        max_sequence_length=backbone.max_sequence_length, num_segments=backbone.num_segments)
    try:
        hub.load_weights(weights_path)
    except (ValueError, OSError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ZooError(f"{flag}={weights_path}: keras-hub could not load it into a BertBackbone of the model's "
                       f"config: {first}") from None
    hub_variables = {v.path: v for v in hub.weights}
    missing = [v.path for v in backbone.weights if v.path not in hub_variables]
    if missing:
        raise ZooError(f"{flag}: the keras-hub BertBackbone has no {', '.join(missing[:3])}")
    return [(v, np.asarray(hub_variables[v.path].numpy(), dtype=v.dtype)) for v in backbone.weights]


def checkpoint_vocabulary(path):
    """The vocabulary beside a checkpoint (`vocab.txt`, `spiece.model`, `sentencepiece.model`,
    `tokenizer*.model`, or a keras-hub preset's `assets/tokenizer/vocabulary.{txt,spm}`), or None."""
    if not path or not os.path.exists(path):
        return None
    directory = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
    tokenizers = sorted(f for f in os.listdir(directory) if f.startswith("tokenizer") and f.endswith(".model"))
    for name in (*SENTENCEPIECE_FILES, *tokenizers, *WORDPIECE_FILES):
        if os.path.isfile(os.path.join(directory, name)):
            return os.path.join(directory, name)
    return None
