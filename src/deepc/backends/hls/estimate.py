"""Scheduled kernels to a resource and latency estimate against the FPGA target's budgets.

Cycles come from the loop nest: a serial loop runs its body `extent` times (plus one cycle
of loop control), a pipelined loop takes (trips - 1) * II + its body's depth, an unrolled
loop runs its copies side by side. Operators cost DSPs and LUTs once per unrolled copy
(serial code shares one). Local arrays of more than 64 elements take BRAM36 blocks (URAM
past 64 blocks). A kernel also cannot beat DDR: it moves its arguments once at the
target's memory bandwidth. Constants are Vitis' float32 operators at 200-300 MHz; in fixed16
a 16x16-bit multiply is one DSP48 and the 48-bit sums are fabric adders of one cycle, and
on-chip tiles hold 2-byte values.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from deepc.errors import FitError
from deepc.ir.expr import Binary, Call, Expr, Load
from deepc.ir.loop import (
    Allocate,
    Buffer,
    For,
    ForKind,
    IfThenElse,
    LetStmt,
    PrimFunc,
    Seq,
    Stmt,
    Store,
    stmt_children,
    walk_stmts,
)
from deepc.ir.tensor import children, walk
from deepc.ir.types import itemsize

# per precision, each operator on float32 IR values: (latency cycles, DSP48, LUT)
_OPS = {
    "float32": {"add": (4, 2, 220), "sub": (4, 2, 220), "mul": (3, 3, 110),
                "div": (12, 0, 800), "min": (1, 0, 60), "max": (1, 0, 60)},
    "fixed16": {"add": (1, 0, 48), "sub": (1, 0, 48), "mul": (2, 1, 30),
                "div": (36, 0, 1400), "min": (1, 0, 48), "max": (1, 0, 48)},
}
# bytes of an on-chip element: a tensor's value, and a running sum (fixed16: ap_fixed<48>)
_TILE_ITEM_BYTES = {"float32": 4, "fixed16": 2}
_SUM_ITEM_BYTES = {"float32": 4, "fixed16": 6}


def op_costs(precision: str) -> dict[str, tuple[int, int, int]]:
    """(latency cycles, DSP48, LUT) of each arithmetic operator in `precision`."""
    return _OPS[precision]
_CALL = (20, 7, 1500)  # exp, tanh, sqrt, ...: a core of a few DSPs
_LOAD_CYCLES = 2
_KERNEL_LUT = 400  # control state machine and the AXI adapter of one function
_LOOP_LUT = 40
_BRAM_BYTES = 4608  # one BRAM36
_URAM_BYTES = 36864
_LOCAL_IN_REGISTERS = 64  # elements: smaller arrays become registers/LUTRAM


@dataclass(frozen=True)
class KernelEstimate:
    kernel: str
    cycles: int
    seconds: float  # max(cycles at the clock, its DDR traffic at the bandwidth)
    dsp: int
    bram36: int
    uram: int
    lut: int
    pipelines: tuple[str, ...]  # "loop II=n x trips"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _expr_cost(e: Expr, ops: dict[str, tuple[int, int, int]]) -> tuple[int, int, int]:
    """(depth in cycles, DSPs, LUTs) of one evaluation of `e`."""
    dsp = lut = 0
    for x in walk(e):
        if isinstance(x, Binary) and x.a.dtype.startswith("float"):
            _, d, u = ops.get(x.op, (1, 0, 100))
        elif isinstance(x, Call):
            _, d, u = _CALL
        else:
            continue
        dsp, lut = dsp + d, lut + u
    return _depth(e, ops), dsp, lut


def _depth(e: Expr, ops: dict[str, tuple[int, int, int]]) -> int:
    own = 0
    if isinstance(e, Binary) and e.a.dtype.startswith("float"):
        own = ops.get(e.op, (1, 0, 0))[0]
    elif isinstance(e, Call):
        own = _CALL[0]
    elif isinstance(e, Load):
        own = _LOAD_CYCLES
    return own + max((_depth(k, ops) for k in children(e)), default=0)


class _Walker:
    def __init__(self, ii: dict[str, int], precision: str):
        self.ii, self.dsp, self.lut, self.bram, self.uram = ii, 0, _KERNEL_LUT, 0, 0
        self.ops, self.tile_bytes = _OPS[precision], _TILE_ITEM_BYTES[precision]
        self.sum_bytes, self.sums = _SUM_ITEM_BYTES[precision], set[str]()
        self.pipelines: list[str] = []

    def cycles(self, s: Stmt, copies: int = 1) -> int:
        """Cycles of `s`; `copies` unrolled instances of it exist in hardware."""
        if isinstance(s, For):
            trips = s.extent if isinstance(s.extent, int) else 1
            self.lut += _LOOP_LUT * copies
            if s.kind is ForKind.UNROLLED:
                return self.cycles(s.body, copies * trips)
            body = self.cycles(s.body, copies)
            if s.kind is ForKind.PIPELINED:
                ii = self.ii.get(s.var.name, 1)
                self.pipelines.append(f"{s.var.name} II={ii} x{trips}")
                return (trips - 1) * ii + body
            return trips * (body + 1)
        if isinstance(s, Store | LetStmt):
            depth, dsp, lut = _expr_cost(s.value, self.ops)
            self.dsp, self.lut = self.dsp + dsp * copies, self.lut + lut * copies
            return depth + (self.cycles(s.body, copies) if isinstance(s, LetStmt) else 1)
        if isinstance(s, Allocate):
            self.memory(s)
            return self.cycles(s.body, copies)
        if isinstance(s, Seq):
            return sum(self.cycles(x, copies) for x in s.stmts)
        if isinstance(s, IfThenElse):
            return 1 + max(self.cycles(x, copies) for x in stmt_children(s))
        return 1

    def memory(self, s: Allocate) -> None:
        size = len(s.data) if s.data is not None else s.buffer.size
        if size <= _LOCAL_IN_REGISTERS:
            return
        item = (itemsize(s.buffer.dtype) if s.buffer.dtype != "float32" else
                self.sum_bytes if s.buffer.name in self.sums else self.tile_bytes)
        nbytes = size * item
        blocks = -(-nbytes // _BRAM_BYTES)
        if blocks > 64:
            self.uram += -(-nbytes // _URAM_BYTES)
        else:
            self.bram += blocks


def estimate_kernel(name: str, f: PrimFunc, scratch: tuple[Buffer, ...], target: Any,
                    precision: str = "float32") -> KernelEstimate:
    w = _Walker(f.attrs.get("pipeline_ii", {}), precision)
    w.sums = {s.buffer.name for s in walk_stmts(f.body) if isinstance(s, Store)
              and any(isinstance(e, Load) and e.source == s.buffer for e in walk(s.value))}
    cycles = w.cycles(f.body)
    traffic = sum(b.size * itemsize(b.dtype) for b in (*f.params, *scratch))
    bandwidth = (target.bandwidth_gbps or 0) * 1e9
    seconds = max(cycles / (target.clock_mhz * 1e6), traffic / bandwidth if bandwidth else 0)
    return KernelEstimate(name, cycles, seconds, w.dsp, w.bram, w.uram, w.lut,
                          tuple(w.pipelines))


# what each budget is called in the target file, and how its use is spelt
_BUDGETS = (("dsp", "dsp", "DSP48 slices"), ("bram36", "bram", "BRAM36 blocks"),
            ("uram", "uram", "URAM blocks"), ("lut", "lut", "LUTs"))
_TOP_BRAM, _TOP_LUT = 4, 2500  # the top function's m_axi adapter and AXI-lite registers


def model_estimate(kernels: list[KernelEstimate], target: Any, unroll: int,
                   precision: str = "float32") -> dict[str, Any]:
    """Per-kernel estimates, their totals against the target's budgets, and the latency."""
    totals = {"dsp": 0, "bram36": _TOP_BRAM, "uram": 0, "lut": _TOP_LUT}
    for k in kernels:
        for key, _, _ in _BUDGETS:
            totals[key] += getattr(k, key)
    budgets = {key: getattr(target, attr) for key, attr, _ in _BUDGETS}
    seconds = sum(k.seconds for k in kernels)
    return {"clock_mhz": target.clock_mhz, "unroll": unroll, "precision": precision,
            "totals": totals,
            "budgets": budgets, "latency_ms": round(seconds * 1e3, 4),
            "cycles": sum(k.cycles for k in kernels), "estimate": True,
            "kernels": [k.to_dict() for k in kernels]}


def fits(report: dict[str, Any]) -> bool:
    return all(have is None or report["totals"][key] <= have
               for key, have in report["budgets"].items())


def check_fits(report: dict[str, Any], part: str) -> None:
    """FitError naming the largest consumer of the first budget the design exceeds."""
    for key, attr, what in _BUDGETS:
        need, have = report["totals"][key], report["budgets"][key]
        if have is None or need <= have:
            continue
        top = max(report["kernels"], key=lambda k: k[key])
        raise FitError(
            f"the design needs {need} {what} of the {have} that {part} offers (target field"
            f" fpga.{'bram36' if attr == 'bram' else attr}); the largest consumer is"
            f" {top['kernel']} with {top[key]} at unroll {report['unroll']} — choose a target"
            " with a larger part, or split the model")


def report_text(report: dict[str, Any], kernel: str | None = None) -> str:
    """`kernel`'s line (cycles, time, resources, pipelines), or with None the model's: its
    latency and the totals against the budgets."""
    for k in report["kernels"]:
        if k["kernel"] == kernel:
            return (f"{k['cycles']} cycles, {k['seconds'] * 1e3:.4f} ms (estimate at"
                    f" {report['clock_mhz']} MHz); DSP {k['dsp']}, BRAM36 {k['bram36']},"
                    f" URAM {k['uram']}, LUT {k['lut']}; pipelines:"
                    f" {', '.join(k['pipelines']) or 'none'}")
    if kernel is not None:
        return "not called (a zero-copy view): no hardware"
    used = ", ".join(f"{what} {report['totals'][key]}/{report['budgets'][key]}"
                     for key, _, what in _BUDGETS)
    return (f"{report['latency_ms']} ms, {report['cycles']} cycles (estimate at"
            f" {report['clock_mhz']} MHz); {used}; unroll {report['unroll']},"
            f" {report.get('precision', 'float32')}")
