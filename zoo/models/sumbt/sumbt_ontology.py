"""The frozen slot/value encoding of SUMBT: last-layer [CLS] vectors of a BERT that is never trained."""

import numpy as np

from zoo.errors import ZooError

INPUTS = ("token_ids", "segment_ids", "padding_mask")


def _cls_vectors(backbone, inputs, batch_size):
    """float32 [N, H]: `sequence_output[:, 0]` of `backbone` in inference mode, `batch_size` rows at a time."""
    count = len(inputs["token_ids"])
    vectors = []
    for start in range(0, count, batch_size):
        batch = {k: np.asarray(inputs[k][start:start + batch_size], "int32") for k in INPUTS}
        vectors.append(np.asarray(backbone(batch, training=False)["sequence_output"][:, 0], "float32"))
    return np.concatenate(vectors) if vectors else np.zeros((0, backbone.hidden_dim), "float32")


def encode_ontology(frozen_backbone, slot_inputs, value_inputs, batch_size=64):
    """Encodes slot names and values once, as SKTBrain/SUMBT `initialize_slot_value_lookup`: the frozen
    encoder's last-layer `[CLS]` token vector (`sequence_output[:, 0]`, not the tanh-pooled output), in
    inference mode (`sv_encoder.eval()`), segment ids 0. The vectors become fixed tables of the model;
    `frozen_backbone` is not kept, so its weights cost nothing after this call.

    Args:
        frozen_backbone: a `BertBackbone` (typically the same pretrained weights as the utterance encoder).
        slot_inputs: dict `token_ids`, `segment_ids`, `padding_mask`, int32 [S, L] (one row per slot name).
        value_inputs: the same, int32 [S, Vmax, L]; a slot with fewer values has all-padding rows
            (`padding_mask` all 0) after its last value.
        batch_size: rows per forward pass.

    Returns:
        slot_vectors float32 [S, H], value_vectors float32 [S, Vmax, H] (zeros in missing rows),
        value_mask bool [S, Vmax].

    Example:
        frozen = zoo.create_model("bert_tiny", vocabulary_size=100)
        ids = np.array([[2, 5, 3]], "int32")                        # [CLS] area [SEP]
        slot_inputs = {"token_ids": ids, "segment_ids": 0 * ids, "padding_mask": np.ones_like(ids)}
        value_ids = np.array([[[2, 7, 3], [2, 8, 3]]], "int32")     # two values of the one slot
        value_inputs = {"token_ids": value_ids, "segment_ids": 0 * value_ids,
                        "padding_mask": np.ones_like(value_ids)}
        slots, values, mask = encode_ontology(frozen, slot_inputs, value_inputs)   # [1, 128], [1, 2, 128]
    """
    for name, inputs, rank in (("slot_inputs", slot_inputs, 2), ("value_inputs", value_inputs, 3)):
        shapes = {k: np.shape(inputs[k]) if k in inputs else None for k in INPUTS}
        if any(s is None or len(s) != rank or s != shapes["token_ids"] for s in shapes.values()):
            raise ZooError(f"{name} must hold int32 token_ids, segment_ids, padding_mask of one shape of rank "
                           f"{rank}; got {shapes}")
    num_slots, max_values, length = np.shape(value_inputs["token_ids"])
    if np.shape(slot_inputs["token_ids"])[0] != num_slots:
        raise ZooError(f"slot_inputs has {np.shape(slot_inputs['token_ids'])[0]} slots but value_inputs has "
                       f"{num_slots}; give every slot its values")
    value_mask = np.asarray(value_inputs["padding_mask"]).reshape(num_slots, max_values, length).any(-1)
    flat = {k: np.asarray(value_inputs[k]).reshape(-1, length) for k in INPUTS}
    real = value_mask.reshape(-1)
    encoded = _cls_vectors(frozen_backbone, {k: v[real] for k, v in flat.items()}, batch_size)
    value_vectors = np.zeros((num_slots * max_values, encoded.shape[-1]), "float32")
    value_vectors[real] = encoded
    slot_vectors = _cls_vectors(frozen_backbone, slot_inputs, batch_size)
    return slot_vectors, value_vectors.reshape(num_slots, max_values, -1), value_mask
