"""Text a C-like module needs besides its kernels: helpers with numpy's semantics in every
dialect, the helper definitions of the device intrinsics a module uses, and a whole module
(prelude, helpers, functions) for callers without launches of their own."""

from __future__ import annotations

from deepc.backends.cstyle import Dialect, Renderer
from deepc.ir.expr import Intrin
from deepc.ir.loop import Evaluate, LetStmt, PrimFunc, Store, VectorStore, walk_stmts
from deepc.ir.tensor import walk

# helpers every dialect needs with numpy's semantics (NaN-propagating min/max, floor division)
_HELPERS = """\
{fn} float deepc_maxf(float a, float b) {{ return (a > b || a != a) ? a : b; }}
{fn} float deepc_minf(float a, float b) {{ return (a < b || a != a) ? a : b; }}
{fn} double deepc_maxd(double a, double b) {{ return (a > b || a != a) ? a : b; }}
{fn} double deepc_mind(double a, double b) {{ return (a < b || a != a) ? a : b; }}
{fn} {i64} deepc_maxi({i64} a, {i64} b) {{ return a > b ? a : b; }}
{fn} {i64} deepc_mini({i64} a, {i64} b) {{ return a < b ? a : b; }}
{fn} {i64} deepc_floordiv({i64} a, {i64} b) {{
  {i64} q = a / b; return (a % b != 0 && ((a % b < 0) != (b < 0))) ? q - 1 : q; }}
{fn} {i64} deepc_mod({i64} a, {i64} b) {{
  {i64} r = a % b; return (r != 0 && ((r < 0) != (b < 0))) ? r + b : r; }}
{fn} float deepc_fmodpy(float a, float b) {{
  float r = {fmodf}(a, b); return (r != 0.0f && ((r < 0.0f) != (b < 0.0f))) ? r + b : r; }}
"""


def helpers(dialect: Dialect) -> str:
    return _HELPERS.format(fn=dialect.helper_qualifier, i64=dialect.ctype("int64"),
                           fmodf=Renderer(dialect).math("fmod", "float32"))


def intrinsic_helpers(funcs: list[PrimFunc], dialect: Dialect) -> list[str]:
    """The dialect's helper text for each intrinsic the functions use, once each."""
    used: set[str] = set()
    for f in funcs:
        for s in walk_stmts(f.body):
            if isinstance(s, Evaluate):
                used.add(s.intrinsic)
            exprs = [s.value] if isinstance(s, Store | VectorStore | LetStmt) else \
                list(s.args) if isinstance(s, Evaluate) else []
            used |= {e.name for x in exprs for e in walk(x) if isinstance(e, Intrin)}
    out: list[str] = []
    for name, text in dialect.helpers.items():
        if name in used and text not in out:
            out.append(text)
    return out


def render_module(funcs: list[PrimFunc], dialect: Dialect, index_type: str = "") -> str:
    """One source file: prelude, helpers, then every function."""
    r = Renderer(dialect, index_type or dialect.ctype("int64"))
    parts = [dialect.prelude, helpers(dialect), *(r.function(f) for f in funcs)]
    return "\n".join(p for p in parts if p) + "\n"
