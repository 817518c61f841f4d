"""Random graphs for RandWire (Xie et al. 2019, arXiv 1904.01569): generation, DAG orientation, storage.

The three classical generators of the paper, from networkx (pinned to major version 3 in setup.cfg, since a
seed gives other graphs under another major version):

- "er": Erdős–Rényi ER(P), `networkx.erdos_renyi_graph(n, p, seed)`: every pair joined with probability P.
- "ba": Barabási–Albert BA(M), `networkx.barabasi_albert_graph(n, m, seed)`: nodes added one by one, each with
  M edges attached preferentially by degree; labels are the order of addition (the paper's index).
- "ws": Watts–Strogatz WS(K, P), `networkx.watts_strogatz_graph(n, k, p, seed)`: a ring with K/2 neighbours
  per side, each clockwise edge rewired with probability P; labels run clockwise (the paper's index). Not the
  `connected_` variant, which re-samples until connected and so changes the distribution.

A graph is oriented into a DAG by directing every edge from the lower node index to the higher. Nodes with no
in-edge are the stage's input nodes (they read the stage input), nodes with no out-edge its output nodes (the
stage output is their mean). What a model keeps is a plain JSON-able dict, so a saved model rebuilds the same
wiring whatever networkx does later:

    {"num_nodes": 32, "edges": [[0, 1], [0, 2], ...]}      # sorted, each pair [low, high]

Example:
    graph = generate_graph("ws", 32, seed=0, k=4, p=0.75)
    len(graph["edges"]), input_nodes(graph), output_nodes(graph)   # 64, [0, 5, 7], [22, 23, 24, 26, 30, 31]
"""

from zoo.errors import ZooError

# generator: its parameters and the paper's values (§4: ER(0.2), BA(5), WS(4, 0.75)).
DEFAULT_PARAMS = {
    "er": {"p": 0.2},
    "ba": {"m": 5},
    "ws": {"k": 4, "p": 0.75},
}
GENERATORS = tuple(DEFAULT_PARAMS)


def generator_params(generator, params=None):
    """The full parameter dict of `generator`: the paper's defaults updated with `params`; checks the names."""
    if generator not in DEFAULT_PARAMS:
        raise ZooError(f"unknown graph generator {generator!r}; choose one of {', '.join(GENERATORS)}")
    params = dict(params or {})
    unknown = sorted(set(params) - set(DEFAULT_PARAMS[generator]))
    if unknown:
        raise ZooError(f"graph generator {generator!r} has no parameter(s) {', '.join(unknown)}; "
                       f"it takes {', '.join(DEFAULT_PARAMS[generator])}")
    return {**DEFAULT_PARAMS[generator], **params}


def validate_generator(generator, num_nodes, params=None):
    """Checks `generator`, `num_nodes` and the parameters; returns the full parameter dict. One-line ZooErrors."""
    params = generator_params(generator, params)
    if isinstance(num_nodes, bool) or not isinstance(num_nodes, int) or num_nodes < 2:
        raise ZooError(f"a random graph needs an integer number of nodes >= 2, got {num_nodes!r}")
    if "p" in params:
        p = params["p"]
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0.0 <= p <= 1.0:
            raise ZooError(f"{generator.upper()} probability p must be in [0, 1], got {p!r}")
    if generator == "ws":
        k = params["k"]
        if isinstance(k, bool) or not isinstance(k, int) or k < 2 or k % 2:
            raise ZooError(f"WS needs an even integer k >= 2 (k/2 ring neighbours per side), got k={k!r}")
        if k >= num_nodes:
            raise ZooError(f"WS needs k < number of nodes, got k={k} with {num_nodes} nodes; lower k or add nodes")
    if generator == "ba":
        m = params["m"]
        if isinstance(m, bool) or not isinstance(m, int) or m < 1:
            raise ZooError(f"BA needs an integer m >= 1 (edges per added node), got m={m!r}")
        if m >= num_nodes:
            raise ZooError(f"BA needs m < number of nodes, got m={m} with {num_nodes} nodes; lower m or add nodes")
    return params


def generate_graph(generator, num_nodes, seed, **params):
    """A random graph as a DAG dict {"num_nodes", "edges"} (edges sorted, each [low, high]).

    Args:
        generator: "er", "ba" or "ws".
        num_nodes: N, the number of nodes (>= 2).
        seed: integer seed of the networkx generator (same seed, same networkx major version: same graph).
        **params: the generator's parameters (er: p; ba: m; ws: k, p); missing ones take the paper's values.
    """
    params = validate_generator(generator, num_nodes, params)
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ZooError(f"a graph seed must be an integer, got {seed!r}")
    import networkx as nx  # only needed to generate; a stored graph rebuilds without it

    if generator == "er":
        graph = nx.erdos_renyi_graph(num_nodes, params["p"], seed=seed)
    elif generator == "ba":
        graph = nx.barabasi_albert_graph(num_nodes, params["m"], seed=seed)
    else:
        graph = nx.watts_strogatz_graph(num_nodes, params["k"], params["p"], seed=seed)
    edges = sorted({(min(a, b), max(a, b)) for a, b in graph.edges() if a != b})
    return {"num_nodes": num_nodes, "edges": [[int(a), int(b)] for a, b in edges]}


def check_graph(graph):
    """Checks a stored graph dict (node count, edges [low, high] in range, no duplicates) and returns a clean
    copy with sorted edges; raises a one-line ZooError otherwise."""
    if not isinstance(graph, dict) or set(graph) != {"num_nodes", "edges"}:
        raise ZooError(f"a RandWire graph is a dict with keys 'num_nodes' and 'edges', got {graph!r:.80}")
    n = graph["num_nodes"]
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ZooError(f"a RandWire graph needs an integer num_nodes >= 1, got {n!r}")
    edges = []
    for edge in graph["edges"]:
        if len(edge) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in edge):
            raise ZooError(f"a RandWire graph edge is a pair of node indices, got {edge!r}")
        a, b = edge
        if not 0 <= a < b < n:
            raise ZooError(f"RandWire graph edge {list(edge)} must go from a lower to a higher index in [0, {n})")
        edges.append((a, b))
    if len(set(edges)) != len(edges):
        raise ZooError("a RandWire graph has duplicate edges; each pair of nodes is joined at most once")
    return {"num_nodes": n, "edges": [[a, b] for a, b in sorted(edges)]}


def predecessors(graph):
    """[the sorted in-neighbours of node i for each i]: what node i aggregates."""
    preds = [[] for _ in range(graph["num_nodes"])]
    for a, b in graph["edges"]:
        preds[b].append(a)
    return [sorted(p) for p in preds]


def input_nodes(graph):
    """Nodes with no in-edge (they read the stage input, with the stage's stride)."""
    preds = predecessors(graph)
    return [i for i, p in enumerate(preds) if not p]


def output_nodes(graph):
    """Nodes with no out-edge (the stage output is their unweighted mean)."""
    has_out = {a for a, _ in graph["edges"]}
    return [i for i in range(graph["num_nodes"]) if i not in has_out]


def topological_depths(graph):
    """Depth of each node: 0 for input nodes, else 1 + the largest depth of its predecessors (for layouts)."""
    depth = []
    for preds in predecessors(graph):  # indices are a topological order
        depth.append(1 + max(depth[p] for p in preds) if preds else 0)
    return depth
