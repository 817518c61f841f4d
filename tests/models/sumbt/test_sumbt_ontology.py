import numpy as np
import pytest

from tests.models.sumbt.sumbt_cases import TINY_BERT
from zoo.errors import ZooError
from zoo.models.bert import BertBackbone
from zoo.models.sumbt import encode_ontology


def _rows(ids):
    ids = np.asarray(ids, "int32")
    mask = (ids > 0).astype("int32")
    return {"token_ids": ids, "segment_ids": np.zeros_like(ids), "padding_mask": mask}


SLOTS = _rows([[2, 5, 3, 0], [2, 6, 7, 3]])
VALUES = _rows([[[2, 8, 3, 0], [2, 9, 10, 3], [2, 11, 3, 0]],
                [[2, 12, 3, 0], [0, 0, 0, 0], [0, 0, 0, 0]]])  # slot 1 has one value


def test_last_layer_cls_vectors_in_inference_mode():
    backbone = BertBackbone(**{**TINY_BERT, "dropout": 0.5})  # dropout must be off
    slots, values, mask = encode_ontology(backbone, SLOTS, VALUES, batch_size=2)
    np.testing.assert_array_equal(mask, [[True, True, True], [True, False, False]])
    expected_slots = np.asarray(backbone(SLOTS, training=False)["sequence_output"][:, 0])
    np.testing.assert_allclose(slots, expected_slots, atol=1e-6)
    flat = {k: v.reshape(6, 4) for k, v in VALUES.items()}
    expected_values = np.asarray(backbone(flat, training=False)["sequence_output"][:, 0]).reshape(2, 3, -1)
    np.testing.assert_allclose(values[mask], expected_values[mask], atol=1e-6)
    np.testing.assert_array_equal(values[~mask], 0.0)
    assert slots.dtype == values.dtype == np.float32 and values.shape == (2, 3, TINY_BERT["hidden_dim"])
    again = encode_ontology(backbone, SLOTS, VALUES, batch_size=64)
    for a, b in zip(again, (slots, values, mask)):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_mismatched_inputs_say_what_is_wrong():
    backbone = BertBackbone(**TINY_BERT)
    with pytest.raises(ZooError, match="slot_inputs has 1 slots but value_inputs has 2"):
        encode_ontology(backbone, {k: v[:1] for k, v in SLOTS.items()}, VALUES)
    with pytest.raises(ZooError, match="value_inputs must hold"):
        encode_ontology(backbone, SLOTS, {k: v[0] for k, v in VALUES.items()})
