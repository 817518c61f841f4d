"""The cell search space of Progressive NAS (Liu et al. 2018, "Progressive Neural Architecture Search").

A cell is a tuple of blocks `(input_1, input_2, op_1, op_2)`: block j (0-based) reads two of the states
`0 .. 1 + j` (0 = H_{c-1}, 1 = H_{c-2}, then the outputs of earlier blocks), applies one op to each and adds
them. Ops are names from `zoo.layers.nas_ops.OPS` (or a subset given by `ops`). A cell converts to and
from `zoo.models.nas.cell.CellSpec` whose output concatenates every block's output, read or not, as PNASNet's
cells do (slim's `used_hiddenstates = [1, 1, 0, ...]`: only the cell inputs are left out).

Symmetric duplicates are dropped: block (i1, i2, o1, o2) computes the same as (i2, i1, o2, o1), so only the
canonical order `(i1, o1) <= (i2, o2)` (by index, then op position) is generated. With all 8 ops that is
136 cells of one block instead of the paper's 256 (`num_cells(1)`); a cell of b blocks has n(n+1)/2
expansions, n = (2 + b)·|ops| (input, op) sides.

The surrogate encoding (`encode`) gives token ids per block, padded to `max_blocks` with 0:
`inputs[n, j] = (input_1 + 1, input_2 + 1)` and `ops[n, j] = (op_1 + 1, op_2 + 1)`, embedded separately.

Example:
    space = SearchSpace(ops=["identity", "sep_3x3", "max_pool_3x3"], max_blocks=2)
    level_1 = space.cells(1)                 # 21 cells
    children = space.expand(level_1[0])      # every cell with one more block
    spec_json = space.to_json(children[0])   # CellSpec JSON, what a trial's "cell" value holds
    assert space.from_json(spec_json) == children[0]
"""

import itertools
import json

import numpy as np

from zoo.errors import ZooError
from zoo.layers.nas_ops import ALIASES, OPS


class SearchSpace:
    """The PNAS cell space over `ops` (default all 8 of `OPS`) with at most `max_blocks` blocks.

    Args:
        ops: a list of op names (a subset of `OPS`, slim aliases allowed), a comma-separated string, or None.
        max_blocks: B, the largest number of blocks of a cell (PNAS: 5).

    Cells are tuples of `(input_1, input_2, op_1, op_2)` tuples (hashable, canonical block order).
    """

    def __init__(self, ops=None, max_blocks=5):
        if ops is None:
            ops = list(OPS)
        if isinstance(ops, str):
            ops = [op.strip() for op in ops.split(",") if op.strip()]
        ops = [ALIASES.get(op, op) for op in ops]
        unknown = [op for op in ops if op not in OPS]
        if unknown:
            raise ZooError(f"unknown operation(s) {', '.join(map(str, unknown))} in the search space; give --ops "
                           f"some of {', '.join(OPS)}")
        if not ops or len(set(ops)) != len(ops):
            raise ZooError(f"the search space needs distinct operations, got {ops}: fix --ops")
        if not isinstance(max_blocks, int) or max_blocks < 1:
            raise ZooError(f"max_blocks must be a positive integer, got {max_blocks!r}")
        self.ops = tuple(ops)
        self.max_blocks = max_blocks
        self._op_index = {op: i for i, op in enumerate(self.ops)}

    def __repr__(self):
        return f"SearchSpace(ops={list(self.ops)}, max_blocks={self.max_blocks})"

    def get_config(self):
        return {"ops": list(self.ops), "max_blocks": self.max_blocks}

    # --- blocks and cells -------------------------------------------------------------------------------
    def blocks(self, position):
        """Every canonical block at 0-based `position` (inputs in 0 .. 1 + position)."""
        pairs = [(i, op) for i in range(2 + position) for op in self.ops]
        return [(i1, i2, o1, o2) for (i1, o1), (i2, o2) in itertools.combinations_with_replacement(pairs, 2)]

    def canonical_block(self, block):
        """The block with its two sides in canonical order."""
        i1, i2, o1, o2 = block[:4]
        if (i2, self._op_index[o2]) < (i1, self._op_index[o1]):
            return (i2, i1, o2, o1)
        return (i1, i2, o1, o2)

    def cells(self, num_blocks=1):
        """Every cell of `num_blocks` blocks (only sensible for 1 or 2: the count grows fast)."""
        cells = [()]
        for position in range(num_blocks):
            cells = [cell + (block,) for cell in cells for block in self.blocks(position)]
        return cells

    def num_cells(self, num_blocks):
        """How many cells of exactly `num_blocks` blocks the space holds."""
        count = 1
        for position in range(num_blocks):
            count *= len(self.blocks(position))
        return count

    def expand(self, cell):
        """Every cell that adds one block to `cell` (empty when it already has `max_blocks`)."""
        cell = tuple(cell)
        if len(cell) >= self.max_blocks:
            return []
        return [cell + (block,) for block in self.blocks(len(cell))]

    def random_cell(self, rng, num_blocks=None):
        """A uniformly random cell; `num_blocks` None draws the size uniformly in 1 .. max_blocks.

        `rng` is a `numpy.random.Generator`.
        """
        if num_blocks is None:
            num_blocks = int(rng.integers(1, self.max_blocks + 1))
        cell = []
        for position in range(num_blocks):
            choices = self.blocks(position)
            cell.append(choices[int(rng.integers(len(choices)))])
        return tuple(cell)

    def validate(self, cell):
        """The canonical form of `cell`; ZooError when a block reads a later state or uses an unknown op."""
        cell = tuple(tuple(block[:4]) for block in cell)
        if not 1 <= len(cell) <= self.max_blocks:
            raise ZooError(f"a cell of this space has 1..{self.max_blocks} blocks, got {len(cell)}")
        for position, (i1, i2, o1, o2) in enumerate(cell):
            if not all(isinstance(i, int) and 0 <= i < 2 + position for i in (i1, i2)):
                raise ZooError(f"cell block {position} reads states {i1}, {i2}; it may read 0..{1 + position}")
            if o1 not in self._op_index or o2 not in self._op_index:
                raise ZooError(f"cell block {position} uses ops {o1}, {o2} outside this space {list(self.ops)}")
        return tuple(self.canonical_block(block) for block in cell)

    # --- CellSpec conversion ----------------------------------------------------------------------------
    def to_spec(self, cell):
        """The `CellSpec` of a cell: its blocks combined by addition, every block output concatenated (PNAS)."""
        from zoo.models.nas.cell import CellSpec
        return CellSpec([list(block) + ["add"] for block in cell], concat=list(range(2, 2 + len(cell))))

    def to_json(self, cell):
        """The CellSpec JSON string of a cell (the value of a trial's "cell" hyper-parameter)."""
        return self.to_spec(cell).to_json()

    def from_json(self, value):
        """A cell (canonical tuple) from a CellSpec, its dict or JSON string; ZooError when not in the space."""
        from zoo.models.nas.cell import CellSpec
        spec = CellSpec.get(value)
        return self.validate([block[:4] for block in spec.blocks])

    def key(self, cell):
        """A unique string of a canonical cell (compact, for sets and dicts)."""
        return json.dumps([list(block) for block in cell], separators=(",", ":"))

    # --- surrogate encoding -----------------------------------------------------------------------------
    @property
    def input_vocab(self):
        """Input-token vocabulary size (0 = padding)."""
        return self.max_blocks + 2

    @property
    def op_vocab(self):
        """Op-token vocabulary size (0 = padding)."""
        return len(self.ops) + 1

    def encode(self, cells):
        """Token ids of `cells`: `(inputs, ops)`, two int32 arrays [n, max_blocks, 2], 0-padded."""
        inputs = np.zeros((len(cells), self.max_blocks, 2), np.int32)
        ops = np.zeros((len(cells), self.max_blocks, 2), np.int32)
        for n, cell in enumerate(cells):
            for j, (i1, i2, o1, o2) in enumerate(cell):
                inputs[n, j] = (i1 + 1, i2 + 1)
                ops[n, j] = (self._op_index[o1] + 1, self._op_index[o2] + 1)
        return inputs, ops
