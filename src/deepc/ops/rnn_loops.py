"""Loop IR of the recurrent ops: per direction, batch row and time step, the gate sums,
activations and state updates of lstm, gru and rnn.

Each direction is one loop nest over batch rows (rows are independent, so the nest may run
in parallel; its scratch state is allocated inside the row loop for that reason). A row runs
its time steps in order, skipping those at or past its sequence length (their Y is zero and
the state stays frozen), then writes the final states. Before the steps, the input parts of
the gate pre-activations, `x_t . W[row] + Wb[row]`, are summed for every step at once (each
row of W is read once, not once per step). One step then adds `h . R[row] + Rb[row]` into a
scratch vector, reducing over contiguous rows of R, and applies clip and activations
elementwise over the hidden units.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from deepc.errors import VerifyError
from deepc.ir import expr as E
from deepc.ir.expr import INDEX, Const, Expr, Var
from deepc.ir.graph import Attrs
from deepc.ir.loop import Allocate, Buffer, For, ForKind, IfThenElse, Stmt, Store, seq
from deepc.ir.types import itemsize
from deepc.ops.elementwise import UNARY_TE

# The inputs of a recurrence in ONNX order, and its outputs.
INPUTS = ("x", "w", "r", "b", "lens", "h0", "c0", "p")
OUTPUTS = ("y", "y_h", "y_c")
LOCAL_SCRATCH_BYTES = 16 * 1024  # larger scratch vectors are "global" (heap) buffers
ROW_BLOCK = 4  # gate rows whose dot products share one pass over their common operand
# Gate rows per pass over h in a step's recurrent sums: each row's dot product is one chain of
# multiply-adds, and 8 chains cover a 4-cycle multiply-add issued twice a cycle (LATENCY_CHAINS
# in schedule/cpu_reduction). The shared lstm, 1 thread: 4 rows 0.647 ms, 8 rows 0.593 ms, 16
# rows 0.818 ms (16 accumulators and h's 16 vectors spill from 32 registers).
RECURRENT_ROW_BLOCK = 8
STEP_BLOCK = 4  # time steps whose input sums share each load of W (a row block's)

Unary = Callable[[Expr], Expr]


def _c(like: Expr, value: float) -> Expr:
    return E.as_expr(value, like)


def activation(name: str, alpha: float, beta: float) -> Unary:
    """An activation as an expression builder; the ones that are also elementwise ops share
    that op's compute definition."""
    if name == "affine":
        return lambda x: _c(x, alpha) * x + _c(x, beta)
    if name == "scaled_tanh":
        return lambda x: _c(x, alpha) * E.call("tanh", _c(x, beta) * x)
    te = UNARY_TE[name]
    params = {"alpha": alpha, "beta": beta}
    return lambda x: te(x, params)


@dataclass(frozen=True)
class Recurrence:
    """The static facts of one recurrent node that its loops depend on."""

    kind: str  # "lstm" | "gru" | "rnn"
    attrs: Attrs
    gates: int
    seq: int
    batch: int
    input_size: int
    dtype: str
    inputs: tuple[str, ...]  # names (from INPUTS) of the inputs present, in order
    outputs: tuple[str, ...]  # names (from OUTPUTS) of the outputs produced, in order
    shapes: tuple[tuple[int, ...], ...]  # of the outputs produced

    @property
    def hidden(self) -> int:
        return int(self.attrs["hidden_size"])

    @property
    def rows(self) -> int:
        return self.gates * self.hidden

    @property
    def dirs(self) -> int:
        return 2 if self.attrs["direction"] == "bidirectional" else 1

    def build(self, in_buffers: Sequence[Buffer], out_buffers: Sequence[Buffer]) -> Stmt:
        """The extern's loops: one nest per direction."""
        bufs: dict[str, Buffer] = dict(zip(self.inputs, in_buffers))
        bufs.update(zip(self.outputs, _in_output_order(out_buffers, self.shapes, self.kind)))
        taken = frozenset(b.name for b in [*in_buffers, *out_buffers])
        base = out_buffers[0].name if out_buffers else self.kind
        return seq(*(_Direction(self, bufs, d, _Names(base, taken)).nest()
                     for d in range(self.dirs)))


def row_block(rows: int, widest: int) -> int:
    """Rows per block: `widest`, else ROW_BLOCK, else 1, the first that divides `rows`."""
    return next(b for b in (widest, ROW_BLOCK, 1) if rows % b == 0)


def _in_output_order(buffers: Sequence[Buffer], shapes: Sequence[tuple[int, ...]],
                     kind: str) -> list[Buffer]:
    """The output buffers ordered as `shapes`. Callers may pass them in another order (the
    kernel builder collects a node's results in a set), so Y, the only one of rank 4, is found
    by its shape; the states keep their relative order, as they have one shape."""
    ordered = sorted(buffers, key=lambda b: len(b.shape) != 4)
    if sorted(b.shape for b in ordered) != sorted(shapes) or len(ordered) != len(shapes):
        raise VerifyError(f"{kind}: output buffers of shapes {[b.shape for b in buffers]} "
                          f"given for outputs of shapes {list(shapes)}")
    return ordered


@dataclass(frozen=True)
class _Names:
    """Names of scratch buffers (prefixed with `base`) and loop variables that differ from
    the parameter buffers' names, so that no renderer sees one shadow another."""

    base: str
    taken: frozenset[str]

    def fresh(self, stem: str) -> str:
        candidate, k = stem, 1
        while candidate in self.taken:
            k += 1
            candidate = f"{stem}_{k}"
        return candidate

    def var(self, stem: str) -> Var:
        return Var(self.fresh(stem))

    def scratch(self, stem: str, n: int, dtype: str) -> Buffer:
        """A scratch vector: on the stack when small, else a heap ("global") buffer."""
        scope = "local" if n * itemsize(dtype) <= LOCAL_SCRATCH_BYTES else "global"
        return Buffer(self.fresh(f"{self.base}_{stem}"), (n,), dtype, scope)


class _Direction:
    """The loop nest of direction `d`: over batch rows `n`, then time steps (`t` is the step
    index, running backwards in reverse), then hidden units `j` or gate rows `row`."""

    def __init__(self, rec: Recurrence, bufs: dict[str, Buffer], d: int, names: _Names):
        self.rec, self.bufs, self.d = rec, bufs, d
        self.layout = int(rec.attrs["layout"])
        self.n, self.tv, self.j, self.row, self.k = (
            names.var(v) for v in ("n", "t", "j", "row", "k"))
        reverse = rec.attrs["direction"] == "reverse" or d == 1
        self.t: Expr = Const(rec.seq - 1, INDEX) - self.tv if reverse else self.tv
        dtype, hidden = rec.dtype, rec.hidden
        self.h = names.scratch("h", hidden, dtype)
        self.c = names.scratch("c", hidden, dtype) if rec.kind == "lstm" else None
        self.gates = names.scratch("gates", rec.rows, dtype)
        # gru without linear_before_reset sums r * h over the h gate's rows of R
        self.rh = (names.scratch("rh", hidden, dtype)
                   if rec.kind == "gru" and not rec.attrs["linear_before_reset"] else None)
        # the most steps up to STEP_BLOCK (or the target's, passes/rnn_blocks.py) that divide
        # the sequence (no tail to guard)
        most = int(rec.attrs["step_block"]) if "step_block" in rec.attrs else STEP_BLOCK
        self.step_block = max(s for s in range(1, most + 1) if rec.seq % s == 0)
        cells = max(ROW_BLOCK * self.step_block, RECURRENT_ROW_BLOCK)
        self.acc = Buffer(names.fresh(f"{names.base}_acc"), (cells,), dtype, "local")
        # x_t . W[row] + Wb[row] for every step, summed before the recurrence (a GEMM-like
        # pass that reuses each row of W across the steps, leaving R alone in cache per step)
        self.xw = names.scratch("xw", max(rec.seq * rec.rows, 1), dtype)
        per_dir = len(rec.attrs["activations"]) // rec.dirs
        k = slice(d * per_dir, (d + 1) * per_dir)
        self.acts = tuple(activation(*t) for t in zip(
            rec.attrs["activations"][k], rec.attrs["activation_alpha"][k],
            rec.attrs["activation_beta"][k]))
        bound = rec.attrs["clip"]
        self.clip: Unary = (lambda v: v) if bound is None else (
            lambda v: E.minimum(E.maximum(v, _c(v, -bound)), _c(v, bound)))

    # -- indexing, layout aware -------------------------------------------------------------
    def x(self, t: Expr, i: Expr) -> Expr:
        idx = (self.n, t, i) if self.layout else (t, self.n, i)
        return self.bufs["x"][idx]

    def y_index(self, j: Expr) -> tuple[Expr, ...]:
        d = Const(self.d, INDEX)
        return (self.n, self.t, d, j) if self.layout else (self.t, d, self.n, j)

    def state_index(self, j: Expr) -> tuple[Expr, ...]:
        d = Const(self.d, INDEX)
        return (self.n, d, j) if self.layout else (d, self.n, j)

    def zero(self) -> Expr:
        return E.const(0, self.rec.dtype)

    def bias(self, row: Expr, recurrent: bool) -> Expr | None:
        """B's input (Wb) or recurrent (Rb) bias of a gate row; None when B is omitted."""
        if "b" not in self.bufs:
            return None
        offset = Const(self.rec.rows, INDEX) if recurrent else Const(0, INDEX)
        return self.bufs["b"][Const(self.d, INDEX), row + offset]

    # -- the nest ---------------------------------------------------------------------------
    def nest(self) -> Stmt:
        rec = self.rec
        length = (self.bufs["lens"][self.n].astype(INDEX) if "lens" in self.bufs
                  else Const(rec.seq, INDEX))
        step = self.step()
        if "lens" in self.bufs:
            zero_y = (For(self.j, rec.hidden, ForKind.SERIAL,
                          Store(self.bufs["y"], self.y_index(self.j), self.zero()))
                      if "y" in self.bufs else None)
            step = IfThenElse(self.t < length, step, zero_y)
        body = seq(self.input_sums(), self.init_states(),
                   For(self.tv, rec.seq, ForKind.SERIAL, step), self.final_states(length))
        for buf in (self.acc, self.xw, self.rh, self.gates, self.c, self.h):
            if buf is not None:
                body = Allocate(buf, body)
        return For(self.n, rec.batch, ForKind.SERIAL, body)

    def states(self) -> list[tuple[Buffer, str, str]]:
        """(scratch, initial-value input, final-value output) of each state."""
        pairs = [(self.h, "h0", "y_h")]
        if self.c is not None:
            pairs.append((self.c, "c0", "y_c"))
        return pairs

    def init_states(self) -> Stmt:
        j = self.j
        stores = [Store(s, (j,), self.bufs[i][self.state_index(j)] if i in self.bufs
                        else self.zero()) for s, i, _ in self.states()]
        return For(j, self.rec.hidden, ForKind.SERIAL, seq(*stores))

    def final_states(self, length: Expr) -> Stmt | None:
        """An empty sequence ends with zero states (as onnxruntime does)."""
        j = self.j
        stores = []
        for s, _, out in self.states():
            if out in self.bufs:
                value = s[j]
                if "lens" in self.bufs or self.rec.seq == 0:
                    value = E.select(length > Const(0, INDEX), value, self.zero())
                stores.append(Store(self.bufs[out], self.state_index(j), value))
        return For(j, self.rec.hidden, ForKind.SERIAL, seq(*stores)) if stores else None

    def y_at(self, j: Expr) -> Stmt | None:
        return Store(self.bufs["y"], self.y_index(j), self.h[j]) if "y" in self.bufs else None

    def step(self) -> Stmt:
        return {"lstm": self.lstm_step, "gru": self.gru_step, "rnn": self.rnn_step}[
            self.rec.kind]()

    # -- reductions -------------------------------------------------------------------------
    def dot(self, init: Expr, terms: Sequence[tuple[int, Callable[[Expr], Expr]]],
            out: Callable[[Expr], Stmt]) -> Stmt:
        """acc = init + sum over each (n, term) of term(k) for k < n; then out(acc)."""
        zero = Const(0, INDEX)
        stmts: list[Stmt] = [Store(self.acc, (zero,), init)]
        for n, term in terms:
            stmts.append(For(self.k, n, ForKind.SERIAL, Store(
                self.acc, (zero,), self.acc[zero] + term(self.k))))
        stmts.append(out(self.acc[zero]))
        return seq(*stmts)

    def row_dots(self, rows: int, n: int, init: Callable[[Expr], Expr],
                 term: Callable[[Expr, Expr], Expr], out: Callable[[Expr, Expr], Stmt],
                 backwards: Expr | None = None) -> Stmt:
        """For every row < rows: out(row, init(row) + sum over k < n of term(row, k)), the
        rows RECURRENT_ROW_BLOCK at a time so that each k step loads the shared operand once
        for all (and their reductions run side by side); where `backwards` holds, the blocks
        run last to first."""
        rv = self.row
        block = row_block(rows, RECURRENT_ROW_BLOCK)
        first: Expr = rv if backwards is None else E.select(
            backwards, Const(rows // block - 1, INDEX) - rv, rv)
        row = [first * Const(block, INDEX) + q if block > 1 else first for q in range(block)]
        return For(rv, rows // block, ForKind.SERIAL, self.block_dots(row, n, init, term, out))

    def block_dots(self, cells: Sequence[Any], n: int, init: Callable[[Any], Expr],
                   term: Callable[[Any, Expr], Expr], out: Callable[[Any, Expr], Stmt]) -> Stmt:
        """One accumulator per cell (a gate row, or a row and a step): out(cell, init(cell) +
        sum over k < n of term(cell, k)), all cells in one pass over k, so that an operand
        that several cells share is loaded once per k."""
        k = self.k
        slots = [Const(q, INDEX) for q in range(len(cells))]
        return seq(*(Store(self.acc, (q,), init(c)) for q, c in zip(slots, cells)),
                   For(k, n, ForKind.SERIAL, seq(*(
                       Store(self.acc, (q,), self.acc[q] + term(c, k))
                       for q, c in zip(slots, cells)))),
                   *(out(c, self.acc[q]) for q, c in zip(slots, cells)))

    def input_sums(self) -> Stmt:
        """xw[t, row] = x_t . W[row] + Wb[row] for all steps t and gate rows, in blocks of
        ROW_BLOCK rows by `step_block` steps: each k step's loads of W and x feed a
        multiply-add per pair of the block (4 x 4: 16 per 8 loads, where rows alone took 4
        per 5, and the pass was bound by loads; the shared lstm 0.661 -> 0.634 ms at 1
        thread), and the block's rows of W stay in L1 while the steps go past."""
        d, rows, seq_len = Const(self.d, INDEX), self.rec.rows, self.rec.seq
        rv, tv = self.row, self.tv
        block = row_block(rows, ROW_BLOCK)
        steps = self.step_block
        zero = self.zero()
        cells = [(rv * Const(block, INDEX) + q if block > 1 else rv,
                  tv * Const(steps, INDEX) + s if steps > 1 else tv)
                 for q in range(block) for s in range(steps)]

        def init(cell: tuple[Expr, Expr]) -> Expr:
            wb = self.bias(cell[0], False)
            return zero if wb is None else wb

        body = self.block_dots(
            cells, self.rec.input_size, init,
            lambda c, i: self.x(c[1], i) * self.bufs["w"][d, c[0], i],
            lambda c, acc: Store(self.xw, (c[1] * Const(rows, INDEX) + c[0],), acc))
        return For(rv, rows // block, ForKind.SERIAL,
                   For(tv, seq_len // steps, ForKind.SERIAL, body))

    def gate_sums(self, first: int, count: int, recurrent: bool) -> Stmt:
        """gates[row] = x_t . W[row] + Wb[row] (+ h . R[row] + Rb[row] when `recurrent`)
        for `count` rows from `first`; the input part comes from `input_sums`."""
        d, rv, offset = Const(self.d, INDEX), self.row, Const(first, INDEX)

        def init(r: Expr) -> Expr:
            pre: Expr = self.xw[self.t * Const(self.rec.rows, INDEX) + r + offset]
            rb = self.bias(r + offset, True) if recurrent else None
            return pre if rb is None else pre + rb

        if not recurrent:
            return For(rv, count, ForKind.SERIAL, Store(self.gates, (rv + offset,), init(rv)))
        # every step reads all of R, which may not fit the cache (1 MiB for 256 hidden units
        # of lstm): read in one order each step, it would miss on every line (the least
        # recently used is always the next one read); every other step runs backwards to
        # start on the rows the last step left in cache
        odd = (self.tv % Const(2, INDEX)).eq(Const(1, INDEX))
        return self.row_dots(count, self.rec.hidden, init,
                             lambda r, k: self.h[k] * self.bufs["r"][d, r + offset, k],
                             lambda r, acc: Store(self.gates, (r + offset,), acc),
                             backwards=odd)

    def gate(self, g: int, j: Expr) -> Expr:
        return self.gates[j + Const(g * self.rec.hidden, INDEX)]

    def set_gate(self, g: int, j: Expr, value: Expr) -> Stmt:
        return Store(self.gates, (j + Const(g * self.rec.hidden, INDEX),), value)

    # -- cells ------------------------------------------------------------------------------
    def rnn_step(self) -> Stmt:
        (f,) = self.acts
        j = self.j
        update = Store(self.h, (j,), f(self.clip(self.gate(0, j))))
        return seq(self.gate_sums(0, self.rec.rows, True),
                   For(j, self.rec.hidden, ForKind.SERIAL, seq(update, self.y_at(j))))

    def lstm_step(self) -> Stmt:
        """Gates in ONNX order i, o, f, c; peepholes read the old cell state for i and f and
        the new one for o."""
        f, g, hact = self.acts
        c, j, d = self.c, self.j, Const(self.d, INDEX)
        assert c is not None
        hid = self.rec.hidden

        def with_peep(pre: Expr, k: int, state: Expr) -> Expr:
            if "p" not in self.bufs:
                return pre
            return pre + self.bufs["p"][d, j + Const(k * hid, INDEX)] * state

        i_gate = self.set_gate(0, j, f(self.clip(with_peep(self.gate(0, j), 0, c[j]))))
        forget = (_c(self.gate(0, j), 1.0) - self.gate(0, j) if self.rec.attrs["input_forget"]
                  else f(self.clip(with_peep(self.gate(2, j), 2, c[j]))))
        f_gate = self.set_gate(2, j, forget)
        cell = Store(c, (j,), self.gate(2, j) * c[j] + self.gate(0, j)
                     * g(self.clip(self.gate(3, j))))
        out = f(self.clip(with_peep(self.gate(1, j), 1, c[j])))
        hidden = Store(self.h, (j,), out * hact(c[j]))
        return seq(self.gate_sums(0, self.rec.rows, True),
                   For(j, hid, ForKind.SERIAL,
                       seq(i_gate, f_gate, cell, hidden, self.y_at(j))))

    def gru_step(self) -> Stmt:
        """Gates in ONNX order z, r, h. The h gate's recurrent sum reads r * h, or (with
        linear_before_reset) is scaled by r after its bias."""
        f, g = self.acts
        hid, d = self.rec.hidden, Const(self.d, INDEX)
        lbr = bool(self.rec.attrs["linear_before_reset"])
        j = self.j
        zr = [self.set_gate(0, j, f(self.clip(self.gate(0, j)))),
              self.set_gate(1, j, f(self.clip(self.gate(1, j))))]
        if self.rh is not None:
            zr.append(Store(self.rh, (j,), self.gate(1, j) * self.h[j]))
        source = self.h if self.rh is None else self.rh
        row = j + Const(2 * hid, INDEX)
        rb = self.bias(row, True)

        def finish(acc: Expr) -> Stmt:
            rec_part = acc if rb is None else acc + rb
            if lbr:
                rec_part = self.gate(1, j) * rec_part
            return self.set_gate(2, j, self.gate(2, j) + rec_part)

        h_pre = self.dot(self.zero(), [(hid, lambda k: source[k] * self.bufs["r"][d, row, k])],
                         finish)
        z = self.gate(0, j)
        update = Store(self.h, (j,), (_c(z, 1.0) - z) * g(self.clip(self.gate(2, j)))
                       + z * self.h[j])
        return seq(self.gate_sums(0, 2 * hid, True), self.gate_sums(2 * hid, hid, False),
                   For(j, hid, ForKind.SERIAL, seq(*zr)),
                   For(j, hid, ForKind.SERIAL, h_pre),
                   For(j, hid, ForKind.SERIAL, seq(update, self.y_at(j))))

