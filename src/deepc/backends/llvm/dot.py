"""int8 dot products of 4-byte words (the DOT_FUNCS calls) -> LLVM IR: x86 vpdpbusd, ARM sdot,
x86 vpmaddubsw or vpmaddwd (AVX2), or four widening multiplies per lane.

acc + dot4(a, b) adds, per int32 lane, the four products of a's bytes (unsigned) and b's
bytes (signed). vpdpbusd is exactly that; sdot multiplies signed by signed, so a's bytes are
shifted to signed (u - 128, an xor of the top bit) and 128 * sum(b's bytes) added back by a
second sdot of -128s. vpmaddubsw sums the products of bytes 0,1 and 2,3 into int16 with
saturation, then vpmaddwd by ones adds the two: exact only where the pass proved no pair of
b's bytes reaches |b0| + |b1| > 128 (dot4.maddubs). dot4.maddwd is exact for any bytes: the
even and odd bytes widened to int16 lanes, two vpmaddwd. dot4.wd is maddwd with b widened
ahead of time (constant weights: qdot.widen_pairs), so only a's bytes are split per use (one
and, one shift, shared by every vector a broadcast row meets).
"""

from __future__ import annotations

from llvmlite import ir

from deepc.ir.expr import DOT_FUNCS, Binary, Call

I8, I16, I32 = ir.IntType(8), ir.IntType(16), ir.IntType(32)
# vpdpbusd widths: 512-bit with AVX-512 VNNI, 256/128-bit with it and AVX-512VL
_VNNI = {16: "llvm.x86.avx512.vpdpbusd.512", 8: "llvm.x86.avx512.vpdpbusd.256",
         4: "llvm.x86.avx512.vpdpbusd.128"}
_SDOT = "llvm.aarch64.neon.sdot.v4i32.v16i8"
# int32 lanes -> (vpmaddubsw, vpmaddwd): AVX2 ymm, SSSE3 xmm (ymm is all AVX2 declares)
_MADD = {8: ("llvm.x86.avx2.pmadd.ub.sw", "llvm.x86.avx2.pmadd.wd"),
         4: ("llvm.x86.ssse3.pmadd.ub.sw.128", "llvm.x86.sse2.pmadd.wd")}


def dot_term(e: Binary) -> Call | None:
    """The dot product one side of an addition is (its other side the accumulator)."""
    for x in (e.a, e.b):
        if isinstance(x, Call) and x.func in DOT_FUNCS:
            return x
    return None


def _declare(module: ir.Module, name: str, ret: ir.Type, args: list[ir.Type]) -> ir.Function:
    if name in module.globals:
        return module.globals[name]
    return ir.Function(module, ir.FunctionType(ret, args), name)


def _splat(value: int, lanes: int) -> ir.Constant:
    return ir.Constant(ir.VectorType(I32, lanes), [value] * lanes)


def _chunks(b: ir.IRBuilder, v: ir.Value, width: int) -> list[ir.Value]:
    n = v.type.count
    return [b.shuffle_vector(v, ir.Constant(v.type, ir.Undefined),
                             ir.Constant(ir.VectorType(I32, width), list(range(k, k + width))))
            for k in range(0, n, width)]


def _widened(b: ir.IRBuilder, v: ir.Value, lanes: int) -> ir.Value:
    """v with don't-care lanes appended up to `lanes` (shuffles join equal-length vectors)."""
    n = v.type.count
    if n == lanes:
        return v
    mask = ir.Constant(ir.VectorType(I32, lanes), [*range(n), *(0,) * (lanes - n)])
    return b.shuffle_vector(v, ir.Constant(v.type, ir.Undefined), mask)


def _joined(b: ir.IRBuilder, parts: list[ir.Value]) -> ir.Value:
    out = parts[0]
    for part in parts[1:]:
        n, m = out.type.count, part.type.count
        width = max(n, m)
        mask = ir.Constant(ir.VectorType(I32, n + m), [*range(n), *range(width, width + m)])
        out = b.shuffle_vector(_widened(b, out, width), _widened(b, part, width), mask)
    return out


def widening(b: ir.IRBuilder, acc: ir.Value, u: ir.Value, s: ir.Value) -> ir.Value:
    """Four multiply-adds of unpacked bytes: any target, any lane count."""
    vec = isinstance(u.type, ir.VectorType)

    def c(x: int) -> ir.Constant:
        return _splat(x, u.type.count) if vec else ir.Constant(I32, x)

    for t in range(4):
        ub = b.and_(b.lshr(u, c(8 * t)), c(0xFF))
        sb = b.ashr(b.shl(s, c(24 - 8 * t)), c(24))
        acc = b.add(acc, b.mul(ub, sb))
    return acc


def _vnni(b: ir.IRBuilder, acc: ir.Value, u: ir.Value, s: ir.Value) -> ir.Value:
    lanes = u.type.count
    width = next(w for w in (16, 8, 4) if lanes % w == 0)
    vty = ir.VectorType(I32, width)
    fn = _declare(b.module, _VNNI[width], vty, [vty] * 3)
    return _joined(b, [b.call(fn, [c, x, y]) for c, x, y in
                       zip(_chunks(b, acc, width), _chunks(b, u, width), _chunks(b, s, width))])


def _sdot(b: ir.IRBuilder, acc: ir.Value, u: ir.Value, s: ir.Value) -> ir.Value:
    v16 = ir.VectorType(I8, 16)
    fn = _declare(b.module, _SDOT, ir.VectorType(I32, 4), [ir.VectorType(I32, 4), v16, v16])
    parts = []
    for c, x, y in zip(_chunks(b, acc, 4), _chunks(b, u, 4), _chunks(b, s, 4)):
        yb = b.bitcast(y, v16)
        signed = b.bitcast(b.xor(x, _splat(-0x7F7F7F80, 4)), v16)  # 0x80808080: u - 128
        c = b.call(fn, [c, signed, yb])
        minus = b.call(fn, [_splat(0, 4), b.bitcast(_splat(-0x7F7F7F80, 4), v16), yb])
        parts.append(b.sub(c, minus))  # + 128 * sum(y bytes) = - (-128 * sum)
    return _joined(b, parts)


def _madd(b: ir.IRBuilder, acc: ir.Value, u: ir.Value, s: ir.Value, exact: bool) -> ir.Value:
    lanes = u.type.count
    width = next(w for w in (8, 4) if lanes % w == 0)
    v8, v16 = ir.VectorType(I8, 4 * width), ir.VectorType(I16, 2 * width)
    ubs = _declare(b.module, _MADD[width][0], v16, [v8, v8])
    wd = _declare(b.module, _MADD[width][1], ir.VectorType(I32, width), [v16, v16])

    def h(x: int) -> ir.Constant:
        return ir.Constant(v16, [x] * 2 * width)

    parts = []
    for c, x, y in zip(_chunks(b, acc, width), _chunks(b, u, width), _chunks(b, s, width)):
        if exact:
            x16, y16 = b.bitcast(x, v16), b.bitcast(y, v16)
            even = b.call(wd, [b.and_(x16, h(0xFF)), b.ashr(b.shl(y16, h(8)), h(8))])
            odd = b.call(wd, [b.lshr(x16, h(8)), b.ashr(y16, h(8))])
            parts.append(b.add(c, b.add(even, odd)))
        else:
            pairs = b.call(ubs, [b.bitcast(x, v8), b.bitcast(y, v8)])
            parts.append(b.add(c, b.call(wd, [pairs, h(1)])))
    return _joined(b, parts)


def _wd(b: ir.IRBuilder, acc: ir.Value, u: ir.Value, even: ir.Value, odd: ir.Value
        ) -> ir.Value:
    """acc + two vpmaddwd: u's even bytes (an and) by `even`, its odd bytes (a shift) by
    `odd`, the weights' int16 pairs as stored."""
    lanes = u.type.count
    width = next(w for w in (8, 4) if lanes % w == 0)
    v16 = ir.VectorType(I16, 2 * width)
    wd = _declare(b.module, _MADD[width][1], ir.VectorType(I32, width), [v16, v16])
    parts = []
    for c, x, e, o in zip(_chunks(b, acc, width), _chunks(b, u, width),
                          _chunks(b, even, width), _chunks(b, odd, width)):
        x16 = b.bitcast(x, v16)
        lo = b.call(wd, [b.and_(x16, ir.Constant(v16, [0xFF] * 2 * width)), b.bitcast(e, v16)])
        hi = b.call(wd, [b.lshr(x16, ir.Constant(v16, [8] * 2 * width)), b.bitcast(o, v16)])
        parts.append(b.add(b.add(c, lo), hi))
    return _joined(b, parts)


def _words(b: ir.IRBuilder, even: ir.Value, odd: ir.Value) -> ir.Value:
    """Signed byte words from their int16 pairs (dot4.wd where no vpmaddwd fits the lanes):
    byte t is the low byte of half t // 2 of even (t even) or odd (t odd)."""
    vec = isinstance(even.type, ir.VectorType)

    def c(x: int) -> ir.Constant:
        return _splat(x, even.type.count) if vec else ir.Constant(I32, x)

    out = None
    for t in range(4):
        half = even if t % 2 == 0 else odd
        byte = b.and_(b.lshr(half, c(16)) if t >= 2 else half, c(0xFF))
        part = b.shl(byte, c(8 * t)) if t else byte
        out = part if out is None else b.or_(out, part)
    assert out is not None
    return out


def emit_dot4(b: ir.IRBuilder, func: str, acc: ir.Value, u: ir.Value, s: ir.Value,
              odd: ir.Value | None = None) -> ir.Value:
    """acc + dot4(u, s) (dot4.wd: s and odd are the pairs); all int32 or int32 vectors of one
    lane count."""
    lanes = u.type.count if isinstance(u.type, ir.VectorType) else 1
    if func == "dot4.wd":
        assert odd is not None
        if lanes % 4 == 0:
            return _wd(b, acc, u, s, odd)
        s = _words(b, s, odd)
    if func == "dot4.vnni" and lanes % 4 == 0:
        return _vnni(b, acc, u, s)
    if func == "dot4.sdot" and lanes % 4 == 0:
        return _sdot(b, acc, u, s)
    if func in ("dot4.maddubs", "dot4.maddwd") and lanes % 4 == 0:
        return _madd(b, acc, u, s, func == "dot4.maddwd")
    return widening(b, acc, u, s)
