"""The model entry point in LLVM IR: `int32_t deepc_run(inputs, outputs, params, workspace)`.

It calls every kernel in plan order with pointers computed from the plan: the caller's input
and output arrays, offsets into the params blob and into the workspace arena. Nothing is
decided at run time, so a C program on the device needs only this function.
"""

from __future__ import annotations

from llvmlite import ir

from deepc.backends.llvm.types import I8, I32, I64, PTR
from deepc.lowering.plan import Plan

ENTRY = "deepc_run"


def emit_entry(module: ir.Module, plan: Plan) -> ir.Function:
    fn = ir.Function(module, ir.FunctionType(I32, [PTR, PTR, PTR, PTR]), ENTRY)
    inputs, outputs, params, workspace = fn.args
    for arg, name in zip(fn.args, ("inputs", "outputs", "params", "workspace")):
        arg.name = name
    b = ir.IRBuilder(fn.append_basic_block("entry"))

    def slot(array: ir.Value, index: int) -> ir.Value:
        return b.load(b.gep(array, [ir.Constant(I64, index)], source_etype=PTR), typ=PTR)

    pointers: dict[str, ir.Value] = {}

    def pointer(value: str) -> ir.Value:
        if value in pointers:
            return pointers[value]
        loc = plan.locations[value]
        if loc.kind in ("input", "output"):
            p = slot(inputs if loc.kind == "input" else outputs, loc.index)
        else:
            p = params if loc.kind == "param" else workspace
        if loc.offset:  # a concat's part inside the concat's buffer, or a value in an arena
            p = b.gep(p, [ir.Constant(I64, loc.offset)], source_etype=I8)
        pointers[value] = p
        return p

    for kern in plan.calls:
        callee = module.globals[kern.func.name]
        b.call(callee, [pointer(v) for v in kern.args])
    b.ret(ir.Constant(I32, 0))
    return fn
