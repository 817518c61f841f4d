"""SUMBT belief tracker (registered as `sumbt`; see `sumbt_presets`), its frozen ontology encoding and metrics."""

from zoo.models.sumbt.sumbt import SUMBT
from zoo.models.sumbt.sumbt_metrics import joint_goal_accuracy, per_slot_accuracy, slot_accuracy
from zoo.models.sumbt.sumbt_ontology import encode_ontology
from zoo.models.sumbt.sumbt_presets import build_sumbt  # importing it registers the presets

__all__ = ["SUMBT", "build_sumbt", "encode_ontology", "joint_goal_accuracy", "slot_accuracy", "per_slot_accuracy"]
