"""PNG pictures of the random graphs of a RandWire network, one per stage (matplotlib, Agg backend).

Nodes are laid out left to right by depth in the DAG (input nodes in the first column, each other node one
column after its deepest predecessor), top to bottom by index within a column; every edge points from left to
right. An extra "in" square feeds the input nodes (green), an extra "out" square averages the output nodes
(red), as in the paper's figures.

Example:
    net = zoo.create_model("randwire_small", channels=8, num_nodes=6, image_size=32, num_classes=10)
    paths = draw_stage_graphs(net, "/tmp/randwire_")   # ['/tmp/randwire_conv3.png', ... conv5.png]
"""

import os

from zoo.errors import ZooError
from zoo.models.nas.randwire_graphs import input_nodes, output_nodes, topological_depths

_FIELDS = ("regime", "channels", "num_nodes", "generator", "generator_params", "seeds", "graphs")


def _config(network_or_config):
    if isinstance(network_or_config, dict):
        config = network_or_config.get("config", network_or_config)  # a serialized model or its get_config()
    elif hasattr(network_or_config, "get_config"):
        config = network_or_config.get_config()
    else:
        raise ZooError(f"draw_stage_graphs takes a RandWire network or its config, got {type(network_or_config)}")
    if "graphs" not in config or "regime" not in config:
        raise ZooError("draw_stage_graphs needs a RandWire network or config (with 'regime' and 'graphs')")
    return {k: config.get(k) for k in _FIELDS}


def _layout(graph):
    depths = topological_depths(graph)
    columns = {}
    for node, depth in enumerate(depths):
        columns.setdefault(depth, []).append(node)
    position = {}
    for depth, nodes in columns.items():
        for row, node in enumerate(nodes):
            position[node] = (depth + 1.0, (len(nodes) - 1) / 2.0 - row)
    return position, max(depths) + 2.0, max(len(n) for n in columns.values())


def draw_stage_graph(graph, path, title=""):
    """Writes one stage's graph {"num_nodes", "edges"} as a PNG at `path`; returns `path`."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    position, out_x, height = _layout(graph)
    inputs, outputs = input_nodes(graph), output_nodes(graph)
    width = max(6.0, 1.1 * (out_x + 1.0))
    figure, axes = plt.subplots(figsize=(width, max(4.0, 1.0 * height + 2.0)))
    arrow = dict(arrowstyle="-|>", color="0.45", lw=0.8, shrinkA=7, shrinkB=7, mutation_scale=9)
    for a, b in graph["edges"]:
        (xa, ya), (xb, yb) = position[a], position[b]
        bend = 0.25 if xb - xa > 1.0 else 0.0  # long edges bend so they do not run through columns
        axes.annotate("", (xb, yb), (xa, ya), arrowprops={**arrow, "connectionstyle": f"arc3,rad={bend}"})
    dashed = {**arrow, "linestyle": "--", "color": "0.7"}
    for node in inputs:
        axes.annotate("", position[node], (0.0, 0.0), arrowprops=dashed)
    for node in outputs:
        axes.annotate("", (out_x, 0.0), position[node], arrowprops=dashed)
    for node, (x, y) in position.items():
        color = "#7fc97f" if node in inputs else "#f0027f" if node in outputs else "#beaed4"
        if node in inputs and node in outputs:
            color = "#fdc086"
        axes.scatter([x], [y], s=260, color=color, edgecolors="black", linewidths=0.6, zorder=3)
        axes.text(x, y, str(node), ha="center", va="center", fontsize=7, zorder=4)
    for x, label in ((0.0, "in"), (out_x, "out")):
        axes.scatter([x], [0.0], s=420, marker="s", color="white", edgecolors="black", zorder=3)
        axes.text(x, 0.0, label, ha="center", va="center", fontsize=7, zorder=4)
    axes.set_title(f"{title}\n{graph['num_nodes']} nodes, {len(graph['edges'])} edges; "
                   f"green: input nodes (stride 2), red: output nodes (averaged)", fontsize=9)
    axes.set_xlim(-0.6, out_x + 0.6)
    axes.set_ylim(-height / 2.0 - 0.6, height / 2.0 + 0.6)
    axes.axis("off")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def draw_stage_graphs(network_or_config, path_prefix):
    """Writes `<path_prefix><stage>.png` for every random stage of a RandWire network (or its config, or a
    serialized model dict); returns the paths in stage order. Creates the prefix's folder if needed."""
    from zoo.models.nas.randwire import stage_plan

    config = _config(network_or_config)
    plan = stage_plan(config["regime"], config["channels"], config["num_nodes"])
    folder = os.path.dirname(path_prefix)
    if folder:
        os.makedirs(folder, exist_ok=True)
    params = ", ".join(f"{k}={v}" for k, v in (config["generator_params"] or {}).items())
    paths = []
    for i, ((stage, _, filters), graph) in enumerate(zip(plan, config["graphs"])):
        seed = config["seeds"][i] if config["seeds"] else "?"
        title = f"{stage}: {str(config['generator']).upper()}({params}), seed {seed}, {filters} channels"
        paths.append(draw_stage_graph(graph, f"{path_prefix}{stage}.png", title))
    return paths
