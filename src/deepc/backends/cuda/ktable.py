"""Compile-time k-offset tables of the tiled matrix-product kernels (a conv window's offset of
each k = (channel, ky, kx) in the input): one declaration per distinct table in a module.

A table every lane of a warp reads at the same index (the A operand's: a warp's threads walk
M, so they share k) goes to constant memory, which broadcasts one cached word to the warp,
while the constant bank has room; the others, and the overflow, stay in global memory."""

from __future__ import annotations

CONSTANT_BYTES = 56 * 1024  # of the 64 KiB bank, the rest left for the compiler's own


class KTables:
    def __init__(self) -> None:
        self._names: dict[tuple[tuple[int, ...], bool], str] = {}
        self._decls: list[str] = []
        self._constant = 0

    def name(self, values: list[int], uniform: bool) -> str:
        """The table holding `values`, declared on first use."""
        wide = max(values, default=0) >= 2**31 or min(values, default=0) < -(2**31)
        size = len(values) * (8 if wide else 4)
        constant = uniform and self._constant + size <= CONSTANT_BYTES
        key = (tuple(values), constant)
        if key not in self._names:
            name = f"deepc_k{'c' if constant else 'g'}{len(self._names)}"
            self._names[key] = name
            self._constant += size if constant else 0
            space = "__constant__" if constant else "__device__"
            body = ",".join(str(v) for v in values)
            self._decls.append(f"{space} const {'long long' if wide else 'int'}"
                               f" {name}[{len(values)}] = {{{body}}};")
        return self._names[key]

    def declarations(self) -> list[str]:
        return list(self._decls)
