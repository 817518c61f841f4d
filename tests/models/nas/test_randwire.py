"""RandWire: graph generation and DAG properties, seeds, config round trip of the wiring, exact counts, errors,
the stage PNGs."""

import json

import keras
import networkx as nx
import numpy as np
import pytest

from tests.layers.policy_helpers import assert_policy_round_trip
from zoo.errors import ZooError
from zoo.models.nas import graph_plot
from zoo.models.nas.graph_plot import draw_stage_graphs
from zoo.models.nas.randwire import RandWire, stage_plan
from zoo.models.nas.randwire_graphs import (check_graph, generate_graph, input_nodes, output_nodes, predecessors,
                                            validate_generator)
from zoo.registry import trainable_params

TINY = dict(regime="small", channels=8, num_nodes=6, image_size=32, num_classes=10)


def analytic_params(regime, channels, graphs, num_classes=1000):
    """Trainable parameters from the architecture alone: full 3x3 stem convs, per node a 3x3 depthwise +
    pointwise kernel + BN γβ and one aggregation weight per in-edge (in-degree > 1), 1x1 head conv + BN, fc."""
    c = channels
    count, width = 27 * (c // 2) + 2 * (c // 2), c // 2
    if regime == "small":
        count, width = count + 9 * width * c + 2 * c, c
    for (_, _, filters), graph in zip(stage_plan(regime, channels, 32), graphs):
        for preds in predecessors(graph):
            cin = filters if preds else width
            count += 9 * cin + cin * filters + 2 * filters + (len(preds) if len(preds) > 1 else 0)
        width = filters
    return count + width * 1280 + 2 * 1280 + 1281 * num_classes


def test_verified_ws_anchor():
    graph = generate_graph("ws", 32, seed=0, k=4, p=0.75)
    assert len(graph["edges"]) == 64
    assert input_nodes(graph) == [0, 5, 7]
    assert output_nodes(graph) == [22, 23, 24, 26, 30, 31]
    assert nx.is_directed_acyclic_graph(nx.DiGraph([tuple(e) for e in graph["edges"]]))


@pytest.mark.parametrize("generator,params", [("ws", {}), ("er", {}), ("ba", {}), ("er", {"p": 0.05}),
                                              ("ws", {"k": 6, "p": 0.0}), ("ba", {"m": 1})])
def test_dag_properties(generator, params):
    for seed in range(5):
        graph = generate_graph(generator, 32, seed, **params)
        edges = [tuple(e) for e in graph["edges"]]
        assert all(a < b for a, b in edges) and len(set(edges)) == len(edges) == len(graph["edges"])
        digraph = nx.DiGraph(edges)
        digraph.add_nodes_from(range(32))
        assert nx.is_directed_acyclic_graph(digraph)
        assert input_nodes(graph) == [n for n in range(32) if digraph.in_degree(n) == 0] and input_nodes(graph)
        assert output_nodes(graph) == [n for n in range(32) if digraph.out_degree(n) == 0] and output_nodes(graph)
        assert check_graph(graph) == graph
        if generator == "ba":  # each added node brings m edges
            m = params.get("m", 5)
            assert len(edges) == m * (32 - m)


def test_seeds_reproduce_the_same_edges():
    for generator in ("ws", "er", "ba"):
        assert generate_graph(generator, 32, 3) == generate_graph(generator, 32, 3)
        assert generate_graph(generator, 32, 3) != generate_graph(generator, 32, 4)


@pytest.mark.parametrize("call,match", [
    (lambda: validate_generator("ws", 32, {"k": 3}), "even integer k"),
    (lambda: validate_generator("ws", 4, {"k": 4}), "k < number of nodes"),
    (lambda: validate_generator("ws", 32, {"p": 1.5}), r"in \[0, 1\]"),
    (lambda: validate_generator("er", 32, {"p": -0.1}), r"in \[0, 1\]"),
    (lambda: validate_generator("ba", 32, {"m": 0}), "m >= 1"),
    (lambda: validate_generator("ba", 5, {"m": 5}), "m < number of nodes"),
    (lambda: validate_generator("er", 1), "nodes >= 2"),
    (lambda: validate_generator("grid", 32), "unknown graph generator"),
    (lambda: validate_generator("er", 32, {"k": 4}), "no parameter"),
    (lambda: check_graph({"num_nodes": 3, "edges": [[2, 1]]}), "lower to a higher"),
    (lambda: check_graph({"num_nodes": 3, "edges": [[0, 1], [0, 1]]}), "duplicate"),
    (lambda: RandWire(**TINY, generator_params={"k": 5}), "even integer k"),
    (lambda: RandWire(**TINY, aux_head=True), "no auxiliary head"),
    (lambda: RandWire(**TINY, drop_path_rate=0.1), "no drop path"),
    (lambda: RandWire(**TINY, seeds=[0, 1]), "give 3 seeds"),
    (lambda: RandWire(**{**TINY, "image_size": 16}), "image_size >= 32"),
    (lambda: RandWire(**{**TINY, "regime": "large"}), "unknown RandWire regime"),
    (lambda: RandWire(**{**TINY, "regime": "regular"}), "k < number of nodes"),  # first stage: 6 // 2 nodes
    (lambda: RandWire(**TINY, graphs=[generate_graph("ws", 8, s) for s in range(3)]), "stored graph has 8"),
])
def test_errors_are_one_line(call, match):
    with pytest.raises(ZooError, match=match) as error:
        call()
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("regime,num_nodes,k", [("small", 6, 4), ("regular", 6, 2)])
def test_tiny_network_forward_and_exact_count(regime, num_nodes, k):
    keras.utils.set_random_seed(0)
    net = RandWire(**{**TINY, "regime": regime, "num_nodes": num_nodes}, generator_params={"k": k})
    assert trainable_params(net) == analytic_params(regime, 8, net.graphs, num_classes=10)
    assert not any("bias" in v.path for v in net.weights if "logits" not in v.path)
    assert len({v.path for v in net.weights}) == len(net.weights)  # e.g. conv3/node_4/edge_weights
    out = net(np.zeros((2, 32, 32, 3), "float32"))
    assert list(out) == ["logits"] and out["logits"].shape == (2, 10) and out["logits"].dtype == "float32"
    for stage in net.stages:  # input nodes down-sample, the others keep the resolution
        for i, node in enumerate(stage.node_layers):
            assert node.strides == (2 if i in input_nodes(stage.graph) else 1)
            assert (node.edge_weights is None) == (len(predecessors(stage.graph)[i]) <= 1)
    weights = [n.edge_weights for s in net.stages for n in s.node_layers if n.edge_weights is not None]
    assert weights and all(np.all(keras.ops.convert_to_numpy(w) == 1.0) for w in weights)  # sigmoid(1) at init


def test_config_round_trip_rebuilds_the_same_wiring_without_networkx(monkeypatch):
    net = RandWire(**TINY, generator="er", generator_params={"p": 0.5}, seeds=[5, 6, 7])
    config = json.loads(json.dumps(net.get_config()))
    assert config["graphs"] == [generate_graph("er", 6, s, p=0.5) for s in (5, 6, 7)]

    def no_generation(*args, **kwargs):
        raise AssertionError("from_config must not generate graphs")

    monkeypatch.setattr("zoo.models.nas.randwire.generate_graph", no_generation)
    clone = RandWire.from_config(config)
    assert clone.graphs == net.graphs and clone.get_config() == config
    assert [v.path for v in clone.weights] == [v.path for v in net.weights]


def test_mixed_precision_policy_round_trip():
    clone = assert_policy_round_trip(lambda: RandWire(**TINY))
    assert clone(np.zeros((1, 32, 32, 3), "float32"))["logits"].dtype == "float32"


def test_small_ws_count_over_seeds_matches_the_paper():
    """Analytic counts (equal to the built model's, see above) of C=78 WS(4, 0.75) over 10 seed triples."""
    counts = [analytic_params("small", 78, [generate_graph("ws", 32, 3 * s + i) for i in range(3)])
              for s in range(10)]
    assert 5.4e6 < np.mean(counts) < 5.7e6 and np.std(counts) < 0.1e6  # paper: 5.6 ± 0.1M


@pytest.mark.slow
def test_small_full_size_count_for_the_fixed_seeds():
    net = RandWire("small", channels=78, num_nodes=32, seeds=[0, 1, 2])
    assert trainable_params(net) == analytic_params("small", 78, net.graphs) == 5_651_922
    assert 5.4e6 <= trainable_params(net) <= 5.7e6
    assert tuple(net.outputs[0].shape) == (None, 1000)


def test_stage_pngs_are_written(tmp_path):
    net = RandWire(**TINY)
    paths = draw_stage_graphs(net, str(tmp_path / "wiring" / "tiny_"))
    assert [p.rsplit("/", 1)[1] for p in paths] == ["tiny_conv3.png", "tiny_conv4.png", "tiny_conv5.png"]
    for path in paths:
        with open(path, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert graph_plot._config(net.get_config()) == graph_plot._config(net)  # a config draws the same
    with pytest.raises(ZooError, match="RandWire network or config"):
        draw_stage_graphs({"name": "x"}, str(tmp_path / "bad_"))
