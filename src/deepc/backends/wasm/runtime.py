"""The wasm-side runtime in LLVM IR: what the kernels call that a libc would otherwise give.

A wasm module has no libc (no Emscripten): the kernels' large scratch buffers come from
`malloc`/`free`, and a schedule with a parallel loop calls `deepc_parallel_for`. Here:

    deepc_alloc(n)            bump allocation above the module's data (`__heap_base`),
                              growing the linear memory; 0 when it cannot grow. The JS loader
                              places params, workspace and I/O with it once.
    malloc(n) / free(p)       the same bump pointer; the kernels free in reverse order of
                              allocation (each scratch buffer is scoped), so free(p) pops to p
    deepc_parallel_for(f, c, n)   f(c, 0, n): one thread, the whole range

memcpy/memset need nothing: LLVM's `generic` wasm CPU has bulk memory (memory.copy/fill).
"""

from __future__ import annotations

from llvmlite import ir

from deepc.backends.llvm.codegen import TASK_TYPE
from deepc.backends.llvm.types import I32, I64, PTR

ALIGN = 64  # every allocation starts on a cache line, like the CPU runtime's
PAGE = 65536
ALLOC = "deepc_alloc"
EXPORTS = (ALLOC,)


def _grow_to(b: ir.IRBuilder, module: ir.Module, end: ir.Value) -> ir.Value:
    """i1: whether the memory holds `end` bytes, after growing it if it did not."""
    size = ir.Function(module, ir.FunctionType(I32, [I32]), "llvm.wasm.memory.size.i32")
    grow = ir.Function(module, ir.FunctionType(I32, [I32, I32]), "llvm.wasm.memory.grow.i32")
    have = b.mul(b.call(size, [ir.Constant(I32, 0)]), ir.Constant(I32, PAGE))
    need = b.icmp_unsigned(">", end, have)
    pages = b.udiv(b.add(b.sub(end, have), ir.Constant(I32, PAGE - 1)), ir.Constant(I32, PAGE))
    grown = b.call(grow, [ir.Constant(I32, 0), b.select(need, pages, ir.Constant(I32, 0))])
    return b.icmp_signed(">=", grown, ir.Constant(I32, 0))


def _alloc(module: ir.Module, top: ir.GlobalVariable, heap_base: ir.GlobalVariable) -> ir.Function:
    fn = ir.Function(module, ir.FunctionType(PTR, [I32]), ALLOC)
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    cur = b.load(top, typ=I32)
    cur = b.select(b.icmp_unsigned("==", cur, ir.Constant(I32, 0)),
                   b.ptrtoint(heap_base, I32), cur)  # first call: start at the heap base
    mask = ir.Constant(I32, ALIGN - 1)
    start = b.and_(b.add(cur, mask), ir.Constant(I32, ~(ALIGN - 1) & 0xFFFFFFFF))
    end = b.add(start, fn.args[0])
    fits = b.and_(b.icmp_unsigned(">=", end, start), _grow_to(b, module, end))
    ok, fail = fn.append_basic_block("ok"), fn.append_basic_block("fail")
    b.cbranch(fits, ok, fail)
    b.position_at_end(ok)
    b.store(end, top)
    b.ret(b.inttoptr(start, PTR))
    b.position_at_end(fail)
    b.ret(ir.Constant(PTR, None))
    return fn


def runtime_module(triple: str) -> ir.Module:
    """The runtime's functions as one LLVM module (compiled and linked beside the model)."""
    module = ir.Module(name="deepc_wasm_runtime")
    module.triple = triple
    top = ir.GlobalVariable(module, I32, "deepc_heap_top")
    top.linkage, top.initializer = "internal", ir.Constant(I32, 0)
    heap_base = ir.GlobalVariable(module, ir.IntType(8), "__heap_base")  # placed by wasm-ld
    alloc = _alloc(module, top, heap_base)

    malloc = ir.Function(module, ir.FunctionType(PTR, [I64]), "malloc")
    b = ir.IRBuilder(malloc.append_basic_block("entry"))
    b.ret(b.call(alloc, [b.trunc(malloc.args[0], I32)]))

    free = ir.Function(module, ir.FunctionType(ir.VoidType(), [PTR]), "free")
    b = ir.IRBuilder(free.append_basic_block("entry"))
    p = b.ptrtoint(free.args[0], I32)
    with b.if_then(b.icmp_unsigned("!=", p, ir.Constant(I32, 0))):
        b.store(p, top)  # scoped buffers: popping to p frees p and everything after it
    b.ret_void()

    # the task as codegen.parallel_loop outlines it (the pointer prints as `ptr` either way)
    pfor = ir.Function(module, ir.FunctionType(ir.VoidType(), [TASK_TYPE.as_pointer(), PTR, I64]),
                       "deepc_parallel_for")
    b = ir.IRBuilder(pfor.append_basic_block("entry"))
    task, ctx, n = pfor.args
    b.call(task, [ctx, ir.Constant(I64, 0), n])
    b.ret_void()
    return module
