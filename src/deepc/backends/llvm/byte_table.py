"""A vector of byte indices into a 256-byte table -> LLVM IR of AVX-512 VBMI byte permutes
(vpermi2b), in place of one scalar load per lane.

vpermi2b picks each lane's byte out of 128 (two registers) by the index's low 7 bits; two
of them cover the table's halves and the index's top bit chooses between them: four
instructions for 64 lanes, the table's four registers loaded once per loop (LLVM hoists them).
"""

from __future__ import annotations

from llvmlite import ir

I8, I32 = ir.IntType(8), ir.IntType(32)
LANES = 64
_V64 = ir.VectorType(I8, LANES)
_VPERMI2B = "llvm.x86.avx512.vpermi2var.qi.512"
BYTES = ("int8", "uint8")


def is_byte_table(size: int, dtype: str) -> bool:
    """Whether a buffer of `size` `dtype` elements is a table that `lookup` can permute."""
    return size == 256 and dtype in BYTES


def _vpermi2b(b: ir.IRBuilder) -> ir.Function:
    if _VPERMI2B in b.module.globals:
        return b.module.globals[_VPERMI2B]
    return ir.Function(b.module, ir.FunctionType(_V64, [_V64] * 3), _VPERMI2B)


def _resized(b: ir.IRBuilder, v: ir.Value, lanes: int) -> ir.Value:
    """v's first `lanes` lanes, don't-care lanes appended where it has fewer."""
    n = v.type.count
    if n == lanes:
        return v
    mask = [k if k < n else 0 for k in range(lanes)]
    return b.shuffle_vector(v, ir.Constant(v.type, ir.Undefined),
                            ir.Constant(ir.VectorType(I32, lanes), mask))


def lookup(b: ir.IRBuilder, table: ir.Value, offsets: ir.Value) -> ir.Value:
    """table[offsets] for a pointer to 256 bytes and a vector (up to 64 lanes) of in-bounds
    integer offsets; an in-bounds offset is 0..255, so its low byte is the offset itself."""
    n = offsets.type.count
    assert n <= LANES, "vector loops have at most 64 lanes"
    idx = _resized(b, b.trunc(offsets, ir.VectorType(I8, n)), LANES)
    quarters = [b.load(b.gep(table, [ir.Constant(ir.IntType(64), q * LANES)], source_etype=I8),
                       typ=_V64, align=1) for q in range(4)]
    fn = _vpermi2b(b)
    low = b.call(fn, [quarters[0], idx, quarters[1]])
    high = b.call(fn, [quarters[2], idx, quarters[3]])
    top = b.icmp_signed("<", idx, ir.Constant(_V64, [0] * LANES))
    return _resized(b, b.select(top, high, low), n)
