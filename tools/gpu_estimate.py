"""A model's GPU launches to a table of estimated bytes, FLOPs and times (no GPU needed).

    PYTHONPATH=src python3 tools/gpu_estimate.py MODEL.onnx [--batch 32] [--target cuda-sm90]
        [--fp32] [--top 20]

Each launch's bytes are the global buffers its loop nest reads or writes, each counted once
at its whole size (caches are assumed to hold reuse; strided reads of part of a buffer
count the whole buffer); its FLOPs are 2 x the iterations of its innermost multiply-add
(a tiled product: 2 M N K, times the groups). The time is the larger of bytes / BANDWIDTH
and the FLOPs computed (a tile's padded rows and columns included) / the rate its mapping
reaches (tensor-core tiles, SIMT tiles, or one output per thread): a
roofline to rank the work, not a measurement.
"""

from __future__ import annotations

import argparse
import re
from collections import defaultdict
from math import prod

from deepc.backends.cuda.dialect import CUDA
from deepc.backends.gpu.render import kernel_stages
from deepc.compiler.pipeline import lower_model
from deepc.frontends import load
from deepc.ir.expr import FlatLoad, Load
from deepc.ir.loop import (
    Allocate,
    Buffer,
    For,
    IfThenElse,
    LetStmt,
    PrimFunc,
    Seq,
    Stmt,
    Store,
    walk_stmts,
)
from deepc.ir.tensor import walk
from deepc.lowering.plan import make_plan
from deepc.target import load_target

BANDWIDTH = 3.0e12  # H100 SXM HBM3, reachable
RATE = {"mma": 60e12, "simt": 25e12, "thread": 8e12}  # FLOP/s by mapping (assumed)


def _bytes(func: PrimFunc, sizes: dict[str, int]) -> int:
    """Bytes of the global buffers `func` touches (`sizes`: a parameter's value's bytes, a
    widened concat part's own rather than its joined buffer's)."""
    seen: dict[str, Buffer] = {}
    for s in walk_stmts(func.body):
        if not isinstance(s, Store):
            continue
        if s.buffer.scope == "global":
            seen[s.buffer.name] = s.buffer
        for e in (x for ex in (s.value, *s.indices) for x in walk(ex)):
            if isinstance(e, Load | FlatLoad) and isinstance(e.source, Buffer) \
                    and e.source.scope == "global" and e.source.dtype.startswith("float"):
                seen[e.source.name] = e.source
    return sum(sizes.get(b.name, 4 * prod(b.shape)) for b in seen.values())


def _flops(func: PrimFunc) -> int:
    """2 x the iterations of the deepest accumulation (acc = acc + ...) into a local
    register; 0 for a stage that only moves data."""
    best = 0

    def visit(s: Stmt, extents: list[int]) -> None:
        nonlocal best
        if isinstance(s, For):
            visit(s.body, [*extents, int(s.extent)])  # type: ignore[arg-type]
        elif isinstance(s, Store):
            if s.buffer.scope == "local" and any(
                    isinstance(x, Load) and x.source.name == s.buffer.name for x in walk(s.value)):
                best = max(best, 2 * prod(extents))
        elif isinstance(s, Seq):
            for x in s.stmts:
                visit(x, extents)
        elif isinstance(s, IfThenElse):
            visit(s.then, extents)
            if s.otherwise is not None:
                visit(s.otherwise, extents)
        elif isinstance(s, Allocate | LetStmt):
            visit(s.body, extents)

    visit(func.body, [])
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--target", default="cuda-sm90")
    ap.add_argument("--fp32", action="store_true")
    ap.add_argument("--top", type=int, default=25)
    a = ap.parse_args()
    graph = load(a.model, {})
    name = graph.inputs[0]
    shape = (a.batch, *graph.types[name].shape[1:])
    tgt = load_target(a.target)
    graph, kernels = lower_model(a.model, tgt, 2, {name: shape})
    called = make_plan(graph, kernels).calls  # concats written in place are not called
    rows = []
    for k in called:
        sizes = {b.name: graph.types[v].nbytes for v, b in zip(k.args, k.func.params)}
        stages, _ = kernel_stages(k, tgt, CUDA, not a.fp32)
        for s in stages:
            m = re.match(r"gemm (\d+)x(\d+)x(\d+)(?: x(\d+) groups)? .*?(mma|simt)", s.note)
            base = s.base or s.func
            if s.note.startswith("split-k sum"):
                split, mm, nn = (int(x) for x in re.findall(r"\d+", s.note))
                flops, mapping = 0, "thread"
                nbytes = 4 * mm * nn * (split + 1)
                t = nbytes / BANDWIDTH
                rows.append((t, k.name, s.func.name, s.note, nbytes, flops, mapping))
                continue
            if m:
                mm, nn, kk = (int(x) for x in m.groups()[:3])
                flops, mapping = 2 * mm * nn * kk * int(m.group(4) or 1), m.group(5)
                bm, bn = (int(x) for x in re.findall(r"tile (\d+)x(\d+)x", s.note)[0])
                # the tile's padded rows and columns are computed too
                work = flops * (-(-mm // bm) * bm * -(-nn // bn) * bn) / (mm * nn)
            else:
                flops, mapping = _flops(base), "thread"
                work = flops
            nbytes = _bytes(base, sizes)
            t = max(nbytes / BANDWIDTH, work / RATE[mapping])
            rows.append((t, k.name, s.func.name, s.note or "one output per thread", nbytes,
                         flops, mapping))
    total = sum(r[0] for r in rows)
    by_kind: dict[str, list[float]] = defaultdict(lambda: [0, 0, 0, 0])
    for t, _, _, _, nb, fl, mapping in rows:
        kind = ("copy" if fl == 0 else mapping)
        by_kind[kind][0] += 1
        by_kind[kind][1] += nb
        by_kind[kind][2] += fl
        by_kind[kind][3] += t
    print(f"{a.model}: batch {a.batch}, {len(called)} kernels called, {len(rows)} launches,"
          f" est. {total * 1e3:.2f} ms (bytes {sum(r[4] for r in rows) / 1e9:.2f} GB,"
          f" {sum(r[5] for r in rows) / 1e9:.1f} GFLOP)")
    for kind, (n, nb, fl, t) in sorted(by_kind.items()):
        print(f"  {kind:7s} {int(n):4d} launches {nb / 1e9:7.2f} GB {fl / 1e9:8.1f} GFLOP"
              f" est. {t * 1e3:6.2f} ms")
    by_kernel: dict[str, list[float]] = defaultdict(lambda: [0, 0, 0, 0])
    for t, _, sn, note, nb, fl, _ in rows:
        what = re.sub(r"^k\d+_", "", sn) + " " + re.sub(r"\d+x\d+x\d+.*?tile", "tile", note)
        for i, x in enumerate((1, nb, fl, t)):
            by_kernel[what][i] += x
    print("  by kind of launch:")
    for what, (n, nb, fl, t) in sorted(by_kernel.items(), key=lambda kv: -kv[1][3]):
        print(f"    {t * 1e3:6.3f} ms {int(n):4d}x {nb / 1e9:6.2f} GB {fl / 1e9:7.1f} GF  {what}")
    for t, _, sn, note, nb, fl, _ in sorted(rows, reverse=True)[:a.top]:
        print(f"  {t * 1e6:7.1f} us {nb / 1e6:8.1f} MB {fl / 1e9:7.2f} GF  {sn:32s} {note}")


if __name__ == "__main__":
    main()
