"""The hls backend registered: each kernel scheduled for the FPGA (schedule/fpga.py),
estimated against the part's budgets, and rendered with the top function as one Vitis HLS
C++ file through the C-style renderer. Nothing is built here: the bundle carries the source
(C simulation builds it with g++; vitis_hls synthesises it)."""

from __future__ import annotations

from typing import Any

from deepc.backends.base import BACKENDS, Backend, CompileOptions, KernelSchedule, Module, Report
from deepc.backends.cstyle import Renderer, index_type_for
from deepc.backends.cstyle_module import helpers, intrinsic_helpers
from deepc.backends.cstyle_text import cstyle_text
from deepc.backends.hls.dialect import HLS
from deepc.backends.hls.estimate import (
    check_fits,
    estimate_kernel,
    fits,
    model_estimate,
    op_costs,
    report_text,
)
from deepc.backends.hls.fixed import (
    FixedRenderer,
    acc_integer_bits,
    fixed_prelude,
    kernel_formats,
)
from deepc.backends.hls.top import arena_layout, render_header, render_top
from deepc.ir.expr import Binary
from deepc.ir.loop import Allocate, Buffer, PrimFunc, Stmt, Store, walk_stmts
from deepc.ir.loop_verify import verify_func
from deepc.ir.tensor import walk
from deepc.lowering.kernels import Kernel
from deepc.lowering.plan import Plan
from deepc.schedule.fpga import fpga_schedule
from deepc.schedule.stmt_rewrite import map_stmt

# DSP48 slices of one multiply-add: float32's multiply takes 3 and its add 2; a 16x16-bit
# fixed multiply fits one (its 48-bit sum runs in the fabric)
_DSP_PER_MAC = {"float32": 5, "fixed16": 1}
_DSP_SHARE = 0.8  # of the part's DSPs, what the kernels' tiles may take
_TILE_BYTES = 32 * 1024  # largest on-chip tile of one parameter: 8 BRAM36 (7 at most used)


def _multiplies(f: PrimFunc) -> bool:
    return any(isinstance(e, Binary) and e.op == "mul" and e.dtype.startswith("float")
               for s in walk_stmts(f.body) if isinstance(s, Store) for e in walk(s.value))


def hoist_scratch(f: PrimFunc) -> tuple[PrimFunc, tuple[Buffer, ...]]:
    """`f` without its global allocations (a conv's padded input: too big for the chip),
    which become extra parameters in the arena's scratch region."""
    found: list[Buffer] = []

    def visit(s: Stmt) -> Stmt | None:
        if isinstance(s, Allocate) and s.buffer.scope == "global" and s.data is None:
            found.append(s.buffer)
            return s.body
        return None

    return f.with_body(map_stmt(f.body, visit)), tuple(found)


def unroll_budget(funcs: list[PrimFunc], target: Any, precision: str = "float32") -> int:
    """Unroll factor of every kernel's tile: the DSPs shared among the kernels that multiply
    (each is its own hardware), at most 64 (not a power of two: a 3x3 window is 9)."""
    n = max(sum(_multiplies(f) for f in funcs), 1)
    return max(1, min(int(target.dsp * _DSP_SHARE / (n * _DSP_PER_MAC[precision])), 64))


class HlsBackend(Backend):
    name = "hls"
    precisions = ("float32", "fixed16")

    def schedule(self, kernels: list[Kernel], target: Any,
                 options: CompileOptions) -> list[KernelSchedule]:
        """Every kernel at the unroll the DSPs allow, narrowed by a quarter at a time while the
        estimate exceeds another budget (fixed16's fabric adders fill the LUTs first)."""
        funcs = [verify_func(k.func) for k in kernels]
        unroll = unroll_budget(funcs, target, options.precision)
        add_cycles = op_costs(options.precision)["add"][0]
        while True:
            out = []
            for k, f in zip(kernels, funcs):
                sch = fpga_schedule(f, unroll, _TILE_BYTES // 4, add_cycles)
                out.append(KernelSchedule(k, (sch,), hoist_scratch(sch.apply(f))))
            estimate = model_estimate([estimate_kernel(s.kernel.name, *s.state, target,
                                                       options.precision) for s in out],
                                      target, unroll, options.precision)
            if unroll == 1 or fits(estimate):
                return out
            unroll = max(1, unroll * 3 // 4)

    def build(self, name: str, scheduled: list[KernelSchedule], plan: Plan, target: Any,
              options: CompileOptions, report: Report) -> Module:
        report("estimate", 0, 1)
        called = {k.name for k in plan.calls}
        funcs = [s.state[0] for s in scheduled]
        scratch = {s.kernel.name: s.state[1] for s in scheduled}
        estimates = [estimate_kernel(s.kernel.name, *s.state, target, options.precision)
                     for s in scheduled if s.kernel.name in called]
        unroll = scheduled[0].launches[0].knobs["unroll"] if scheduled else 1
        estimate = model_estimate(estimates, target, unroll, options.precision)
        check_fits(estimate, target.part)
        report("render", 0, 1)
        layout = arena_layout(plan, scratch)
        fixed = options.precision == "fixed16"
        formats = kernel_formats(plan, options.ranges, scratch) if fixed else {}
        r = (FixedRenderer if fixed else Renderer)(HLS, index_type_for(funcs))
        parts = []
        for s in scheduled:
            text = (r.fixed(*s.state, formats.get(s.kernel.name, {})) if fixed  # type: ignore[attr-defined]
                    else r.function(*s.state))
            parts += [f"// {s.kernel.name}: {' '.join(s.kernel.ops)}", text]
        head = [HLS.prelude, helpers(HLS), *([fixed_prelude(acc_integer_bits(formats))]
                                             if fixed else []),
                *intrinsic_helpers(funcs, HLS), *r.tables.declarations()]
        source = "\n".join([*head, *parts, render_top(plan, layout, scratch)]) + "\n"
        return Module(self.name, b"", source,
                      settings={"precision": options.precision, "clock_mhz": target.clock_mhz,
                                **({"formats": formats} if fixed else {})},
                      report={"estimate": estimate, "layout": layout,
                              "header": render_header(layout)})

    def source_of(self, module: Module, kernel: Kernel) -> str:
        return cstyle_text(module.source, kernel.name)

    def report_of(self, module: Module, kernel: Kernel | None) -> str:
        return report_text(module.report["estimate"], kernel.name if kernel else None)


BACKENDS.add("hls", HlsBackend())
