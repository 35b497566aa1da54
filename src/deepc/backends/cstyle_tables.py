"""Read-only data tables of a C-like module (loop-IR Allocates with `data`, e.g. a conv
window's k offsets): one declaration per distinct table, in constant memory while the bank
has room and a warp reads the table uniformly (scope "constant"), else in global memory."""

from __future__ import annotations

from deepc.ir.loop import Buffer


class Tables:
    def __init__(self, constant_qualifier: str, table_qualifier: str,
                 constant_bytes: int) -> None:
        self.constant_qualifier, self.table_qualifier = constant_qualifier, table_qualifier
        self.constant_bytes = constant_bytes
        self._names: dict[tuple[tuple[int | float, ...], str], str] = {}
        self._decls: list[str] = []
        self._constant = 0

    def name(self, buf: Buffer, data: tuple[int | float, ...], ctype: str) -> str:
        """The table holding `data`, declared on first use; integer tables in 32 bits where
        their values fit (`ctype` is the element type of any other)."""
        ints = buf.dtype.startswith("int")
        wide = ints and (max(data, default=0) >= 2**31 or min(data, default=0) < -(2**31))
        ctype = ("long long" if wide else "int") if ints else ctype
        size = len(data) * (8 if wide or (not ints and buf.dtype.endswith("64")) else 4)
        constant = (buf.scope == "constant" and self.constant_qualifier != ""
                    and self._constant + size <= self.constant_bytes)
        key = (tuple(data), "c" if constant else "g")
        if key not in self._names:
            name = f"deepc_k{key[1]}{len(self._names)}"
            self._names[key] = name
            self._constant += size if constant else 0
            space = self.constant_qualifier if constant else self.table_qualifier
            body = ",".join(str(v) for v in data)
            self._decls.append(f"{space} const {ctype} {name}[{len(data)}] = {{{body}}};"
                               .lstrip())
        return self._names[key]

    def declarations(self) -> list[str]:
        return list(self._decls)
