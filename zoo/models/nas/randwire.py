"""RandWire (Xie, Kirillov, Girshick, He 2019, "Exploring Randomly Wired Neural Networks for Image
Recognition", arXiv 1904.01569). There is no official code; this follows the paper (Table 1, §3.2–§4) and
the two public PyTorch ports (JiaminRen/RandWireNN, seungwonpark/RandWireNN) where the paper is silent.

- Node: a weighted sum of its in-edges with one learnable weight per edge, sigmoid(w_i) (w_i = 1 at init, as
  JiaminRen's port; a node with a single input uses it unweighted), then ReLU -> 3x3 separable conv -> BN
  (`zoo.layers.nas_ops.ReluSepConvBN`). Nodes reading the stage input (in-degree 0) have stride 2.
- Stage: one random graph oriented by node index (`randwire_graphs`); output = unweighted mean of the nodes
  with no out-edge.
- Regimes (paper Table 1), C channels, N nodes:
    small:   conv1 3x3 conv C/2 s2 + BN; conv2 ReLU-3x3 conv-BN C s2; stages N:C, N:2C, N:4C
    regular: conv1 3x3 conv C/2 s2 + BN; stages N/2:C, N:2C, N:4C, N:8C
  then ReLU -> 1x1 conv 1280 -> BN -> ReLU -> global average pool -> dropout -> fc. The small regime's
  conv3 has N nodes (not N/2): that gives the paper's 583M multiply-adds for C=78 (N/2 gives 497M) and its
  5.6M parameters.
- BatchNorm: PyTorch's defaults as the ports (Keras momentum 0.9, epsilon 1e-5). Convolutions have no bias.
- No auxiliary head; no drop path (the paper uses none): `drop_path_rate` must be 0.
"""

import keras
from keras import ops

from zoo.errors import ZooError
from zoo.layers.config import Configurable
from zoo.layers.nas_ops import ReluSepConvBN
from zoo.layers.normalization import synchronize_batch_norm
from zoo.models.nas.randwire_graphs import (check_graph, generate_graph, input_nodes, output_nodes, predecessors,
                                            validate_generator)

BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5
HEAD_CHANNELS = 1280
REGIMES = ("small", "regular")


def stage_plan(regime, channels, num_nodes):
    """[(stage name, number of nodes, output channels)] of the random-wiring stages of `regime`."""
    if regime == "small":
        return [("conv3", num_nodes, channels), ("conv4", num_nodes, 2 * channels),
                ("conv5", num_nodes, 4 * channels)]
    if regime == "regular":
        return [("conv2", num_nodes // 2, channels), ("conv3", num_nodes, 2 * channels),
                ("conv4", num_nodes, 4 * channels), ("conv5", num_nodes, 8 * channels)]
    raise ZooError(f"unknown RandWire regime {regime!r}; choose one of {', '.join(REGIMES)}")


def _first_shape(input_shape):
    """The shape of the first input, for a single shape or a list of shapes (all equal in a stage)."""
    if isinstance(input_shape, (list, tuple)) and input_shape and isinstance(input_shape[0], (list, tuple)):
        return input_shape[0]
    return input_shape


@keras.saving.register_keras_serializable(package="zoo")
class RandWireNode(Configurable, keras.layers.Layer):
    """One node: sigmoid-weighted sum of `num_inputs` tensors, then ReLU -> 3x3 separable conv -> BN.

    Args:
        filters: output channels.
        num_inputs: in-degree (1 for an input node, which reads the stage input unweighted).
        strides: 2 for an input node of a down-sampling stage, else 1.
        bn_momentum, bn_epsilon: of the BatchNormalization.

    Example:
        node = RandWireNode(16, num_inputs=2)
        y = node([keras.random.normal((2, 8, 8, 16)), keras.random.normal((2, 8, 8, 16))])   # (2, 8, 8, 16)
    """

    def __init__(self, filters, num_inputs=1, strides=1, bn_momentum=BN_MOMENTUM, bn_epsilon=BN_EPSILON, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.num_inputs, self.strides = filters, num_inputs, strides
        self.bn_momentum, self.bn_epsilon = bn_momentum, bn_epsilon
        self.unit = ReluSepConvBN(filters, 3, strides=strides, bn_momentum=bn_momentum, bn_epsilon=bn_epsilon,
                                  name="unit", dtype=self.dtype_policy)
        self.edge_weights = None

    def build(self, input_shape):
        shape = _first_shape(input_shape)
        if self.num_inputs > 1:  # created here, inside the stage's name scope: paths like conv3/node_4/edge_weights
            self.edge_weights = self.add_weight(name="edge_weights", shape=(self.num_inputs,), initializer="ones")
        self.unit.build(shape)
        self.built = True

    def call(self, inputs, training=None):
        inputs = inputs if isinstance(inputs, (list, tuple)) else [inputs]
        if len(inputs) != self.num_inputs:
            raise ValueError(f"{self.name} takes {self.num_inputs} inputs, got {len(inputs)}")
        if self.edge_weights is None:
            x = inputs[0]
        else:
            w = ops.cast(ops.sigmoid(self.edge_weights), inputs[0].dtype)
            x = w[0] * inputs[0]
            for i in range(1, self.num_inputs):
                x = x + w[i] * inputs[i]
        return self.unit(x, training=training)

    def compute_output_shape(self, input_shape):
        return self.unit.compute_output_shape(_first_shape(input_shape))


@keras.saving.register_keras_serializable(package="zoo")
class RandWireStage(Configurable, keras.layers.Layer):
    """A random-wiring stage: one input tensor, the DAG of `RandWireNode`s, the mean of its output nodes.

    Args:
        graph: {"num_nodes", "edges"} (see `randwire_graphs`), edges [low, high].
        filters: channels of every node.
        strides: stride of the input nodes (2 down-samples the stage).
        bn_momentum, bn_epsilon: of the nodes' BatchNormalization.

    Example:
        graph = generate_graph("ws", 6, seed=0, k=4, p=0.75)
        y = RandWireStage(graph, 16)(keras.random.normal((2, 16, 16, 8)))   # (2, 8, 8, 16)
    """

    def __init__(self, graph, filters, strides=2, bn_momentum=BN_MOMENTUM, bn_epsilon=BN_EPSILON, **kwargs):
        super().__init__(**kwargs)
        self.graph = check_graph(graph)
        self.filters, self.strides = filters, strides
        self.bn_momentum, self.bn_epsilon = bn_momentum, bn_epsilon
        self.preds = predecessors(self.graph)
        self.outputs_ = output_nodes(self.graph)
        self.node_layers = [
            RandWireNode(filters, num_inputs=max(1, len(p)), strides=1 if p else strides, bn_momentum=bn_momentum,
                         bn_epsilon=bn_epsilon, name=f"node_{i}", dtype=self.dtype_policy)
            for i, p in enumerate(self.preds)
        ]

    def build(self, input_shape):
        node_shape = None
        for node, preds in zip(self.node_layers, self.preds):
            if preds:
                node.build([node_shape] * len(preds))
            else:
                node.build(input_shape)
                node_shape = node.compute_output_shape(input_shape)
        self.built = True

    def call(self, inputs, training=None):
        results = []
        for node, preds in zip(self.node_layers, self.preds):
            results.append(node([results[p] for p in preds] if preds else inputs, training=training))
        out = results[self.outputs_[0]]
        for i in self.outputs_[1:]:
            out = out + results[i]
        if len(self.outputs_) > 1:
            out = out / ops.cast(len(self.outputs_), out.dtype)
        return out

    def compute_output_shape(self, input_shape):
        return self.node_layers[input_nodes(self.graph)[0]].compute_output_shape(input_shape)


def _conv_bn(x, filters, name, relu, momentum, epsilon, dtype):
    if relu:
        x = keras.layers.ReLU(dtype=dtype, name=f"{name}_relu")(x)
    x = keras.layers.Conv2D(filters, 3, strides=2, padding="same", use_bias=False, dtype=dtype, name=f"{name}_conv")(x)
    return keras.layers.BatchNormalization(momentum=momentum, epsilon=epsilon, dtype=dtype, name=f"{name}_bn")(x)


@keras.saving.register_keras_serializable(package="zoo")
class RandWire(Configurable, keras.Model):
    """Randomly wired image classifier (see the module docstring for the architecture).

    Input: float images [batch, image_size, image_size, 3] (no rescaling inside). Output: {"logits": float32
    [batch, num_classes]}. The graphs of the stages are generated from `generator`, `generator_params` and
    `seeds` unless `graphs` is given; the config always holds the graphs, so `from_config` (and a saved
    `.keras` file) rebuilds exactly the same wiring without calling networkx.

    Args:
        regime: "small" (3 random stages) or "regular" (4).
        channels: C (paper: 78 small; 109 or 154 regular).
        num_nodes: N, nodes per stage (the regular regime's first stage has N // 2). Paper: 32.
        generator: "ws", "er" or "ba".
        generator_params: the generator's parameters (ws: k, p; er: p; ba: m); missing ones take the paper's
            WS(4, 0.75), ER(0.2), BA(5).
        seeds: one integer seed per stage (default 0, 1, 2[, 3]).
        graphs: stored graphs, one {"num_nodes", "edges"} per stage, overriding generation.
        num_classes: classifier outputs.
        image_size: height = width of the input images (>= 32; five stride-2 steps).
        dropout: before the classifier.
        aux_head: must be False (RandWire has no auxiliary head).
        drop_path_rate: must be 0 (RandWire uses no drop path).
        bn_momentum, bn_epsilon: of every BatchNormalization (PyTorch's defaults).
        sync_batch_norm: every BatchNormalization computes training statistics over all replicas (TF
            backend), so N replicas train as one device at the same global batch.
        dtype: dtype policy of every layer; logits are float32.

    Example:
        net = RandWire("small", channels=8, num_nodes=6, num_classes=10, image_size=32)
        net(np.zeros((2, 32, 32, 3), "float32"))["logits"].shape   # (2, 10)
    """

    def __init__(self, regime="small", channels=78, num_nodes=32, generator="ws", generator_params=None, seeds=None,
                 graphs=None, num_classes=1000, image_size=224, dropout=0.0, aux_head=False, drop_path_rate=0.0,
                 bn_momentum=BN_MOMENTUM, bn_epsilon=BN_EPSILON, sync_batch_norm=False, dtype=None, **kwargs):
        plan = stage_plan(regime, channels, num_nodes)
        params = validate_generator(generator, min(n for _, n, _ in plan), generator_params)
        if aux_head:
            raise ZooError("RandWire has no auxiliary head; set aux_head=False")
        if drop_path_rate:
            raise ZooError(f"RandWire uses no drop path; set drop_path_rate=0 (got {drop_path_rate!r})")
        if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 32:
            raise ZooError(f"RandWire needs an integer image_size >= 32 (five stride-2 steps), got {image_size!r}")
        if isinstance(channels, bool) or not isinstance(channels, int) or channels < 2:
            raise ZooError(f"RandWire needs an integer channels >= 2, got {channels!r}")
        seeds = list(range(len(plan))) if seeds is None else [s for s in seeds]
        if len(seeds) != len(plan):
            raise ZooError(f"the {regime} regime has {len(plan)} random stages; give {len(plan)} seeds, got {seeds}")
        if graphs is None:
            graphs = [generate_graph(generator, n, seed, **params) for (_, n, _), seed in zip(plan, seeds)]
        else:
            if len(graphs) != len(plan):
                raise ZooError(f"the {regime} regime has {len(plan)} random stages; got {len(graphs)} graphs")
            graphs = [check_graph(g) for g in graphs]
            for (stage, n, _), graph in zip(plan, graphs):
                if graph["num_nodes"] != n:
                    raise ZooError(f"stage {stage} of the {regime} regime with num_nodes={num_nodes} has {n} nodes, "
                                   f"but its stored graph has {graph['num_nodes']}")

        # === Layers ===
        bn = dict(momentum=bn_momentum, epsilon=bn_epsilon, dtype=dtype)
        self.stages = [RandWireStage(graph, filters, strides=2, bn_momentum=bn_momentum, bn_epsilon=bn_epsilon,
                                     dtype=dtype, name=stage)
                       for (stage, _, filters), graph in zip(plan, graphs)]

        # === Functional Model ===
        images = keras.Input((image_size, image_size, 3), name="images")
        x = _conv_bn(images, channels // 2, "conv1", False, bn_momentum, bn_epsilon, dtype)
        if regime == "small":
            x = _conv_bn(x, channels, "conv2", True, bn_momentum, bn_epsilon, dtype)
        for stage in self.stages:
            x = stage(x)
        x = keras.layers.ReLU(dtype=dtype, name="head_relu")(x)
        x = keras.layers.Conv2D(HEAD_CHANNELS, 1, use_bias=False, dtype=dtype, name="head_conv")(x)
        x = keras.layers.BatchNormalization(**bn, name="head_bn")(x)
        x = keras.layers.ReLU(dtype=dtype, name="head_relu2")(x)
        x = keras.layers.GlobalAveragePooling2D(dtype=dtype, name="pool")(x)
        x = keras.layers.Dropout(dropout, dtype=dtype, name="dropout")(x)
        logits = keras.layers.Dense(num_classes, dtype="float32", name="logits")(x)
        kwargs.setdefault("name", "randwire")
        super().__init__(inputs=images, outputs={"logits": logits}, dtype=dtype, **kwargs)
        if sync_batch_norm:
            synchronize_batch_norm(self)

        # === Config ===
        self.regime, self.channels, self.num_nodes = regime, channels, num_nodes
        self.generator, self.generator_params, self.seeds = generator, params, seeds
        self.graphs = graphs
        self.num_classes, self.image_size, self.dropout = num_classes, image_size, dropout
        self.aux_head, self.drop_path_rate = False, 0.0
        self.bn_momentum, self.bn_epsilon, self.sync_batch_norm = bn_momentum, bn_epsilon, sync_batch_norm
