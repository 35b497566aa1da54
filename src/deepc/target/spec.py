"""`Target`: a resolved, validated target description with typed accessors for code to read."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Generic, TypeVar, overload

from deepc.errors import TargetError
from deepc.ir.types import itemsize
from deepc.target.sections import (
    COMMON_SECTIONS,
    SECTIONS,
    Device,
    Fpga,
    Gpu,
    Intrinsics,
    Isa,
    Memory,
    Toolchain,
    Wasm,
)
from deepc.target.validate import resolve

T = TypeVar("T")


class _Attr(Generic[T]):
    """`target.x` for `target.<section>.<field>`, so callers need not know which section holds it.

    A field the target does not declare raises TargetError naming it, unless the accessor is
    `optional` (then it reads None): code asking a cpu target for its warp size is a bug.
    """

    def __init__(self, section: str, name: str, optional: bool = False) -> None:
        self.section, self.name, self.optional = section, name, optional

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> _Attr[T]: ...
    @overload
    def __get__(self, obj: Target, owner: type | None = None) -> T: ...

    def __get__(self, obj: Target | None, owner: type | None = None) -> T | _Attr[T]:
        if obj is None:
            return self
        section = getattr(obj, self.section)
        value = None if section is None else getattr(section, self.name)
        if value is None and not self.optional:
            raise TargetError(
                f"target {obj.name!r} ({obj.device.kind}) declares no {self.section}.{self.name}"
                f" — check target.{self.section} before reading it, or add the field to the"
                " target file"
            )
        return value  # type: ignore[return-value]


@dataclass(frozen=True)
class Target:
    """A hardware description: what the device is, its ISA, memory, intrinsics and tools.

    Schedules and backends read capabilities from it (`target.vector_bits`, `target.l2_kib`,
    `target.warp_size`), never its name.
    """

    name: str
    device: Device
    description: str = ""
    isa: Isa = field(default_factory=Isa)
    memory: Memory = field(default_factory=Memory)
    intrinsics: Intrinsics = field(default_factory=Intrinsics)
    toolchain: Toolchain = field(default_factory=Toolchain)
    gpu: Gpu | None = None
    fpga: Fpga | None = None
    wasm: Wasm | None = None
    # the file it was loaded from; not part of the description itself
    source: str = field(default="", compare=False, repr=False)

    kind = _Attr[str]("device", "kind")
    backend = _Attr[str]("device", "backend")
    vendor = _Attr["str | None"]("device", "vendor", optional=True)

    triple = _Attr[str]("isa", "triple")
    cpu = _Attr[str]("isa", "cpu")
    features = _Attr["tuple[str, ...]"]("isa", "features")
    vector_bits = _Attr[int]("isa", "vector_bits")
    accumulator_registers = _Attr[int]("isa", "accumulator_registers")
    cores = _Attr[int]("isa", "cores")

    l1d_kib = _Attr[int]("memory", "l1d_kib")
    l2_kib = _Attr[int]("memory", "l2_kib")
    l3_kib = _Attr["int | None"]("memory", "l3_kib", optional=True)
    cache_line = _Attr[int]("memory", "cache_line")
    dram_mib = _Attr["int | None"]("memory", "dram_mib", optional=True)
    bandwidth_gbps = _Attr["float | None"]("memory", "bandwidth_gbps", optional=True)

    fma = _Attr[bool]("intrinsics", "fma")
    dot_intrinsics = _Attr["tuple[str, ...]"]("intrinsics", "dot")
    matrix_intrinsics = _Attr["tuple[str, ...]"]("intrinsics", "matrix")
    async_copy = _Attr["tuple[str, ...]"]("intrinsics", "async_copy")

    arch = _Attr[str]("gpu", "arch")
    sm_count = _Attr[int]("gpu", "sm_count")
    warp_size = _Attr[int]("gpu", "warp_size")
    max_threads_per_block = _Attr[int]("gpu", "max_threads_per_block")
    shared_mem_per_block_kib = _Attr[int]("gpu", "shared_mem_per_block_kib")
    shared_mem_static_kib = _Attr[int]("gpu", "shared_mem_static_kib")
    registers_per_block = _Attr[int]("gpu", "registers_per_block")

    part = _Attr[str]("fpga", "part")
    clock_mhz = _Attr[int]("fpga", "clock_mhz")
    dsp = _Attr[int]("fpga", "dsp")
    bram = _Attr[int]("fpga", "bram36")
    uram = _Attr["int | None"]("fpga", "uram", optional=True)
    lut = _Attr[int]("fpga", "lut")
    hls = _Attr[str]("fpga", "hls")

    simd = _Attr[bool]("wasm", "simd")
    threads = _Attr[bool]("wasm", "threads")

    def has_feature(self, name: str) -> bool:
        """Whether the ISA enables `name` ("avx2", "+neon": the sign is optional)."""
        return f"+{name.lstrip('+')}" in self.isa.features

    @property
    def llvm_features(self) -> str:
        """The features as LLVM's target machine takes them: "+neon,+vfp4"."""
        return ",".join(self.isa.features)

    def vector_lanes(self, dtype: str) -> int:
        """How many `dtype` elements one vector register holds (1 where it holds fewer)."""
        return max(1, self.vector_bits // (8 * itemsize(dtype)))

    def to_dict(self) -> dict[str, Any]:
        """The resolved description as plain TOML/JSON data (for bundle manifests)."""
        out: dict[str, Any] = {"name": self.name, "description": self.description}
        for section in SECTIONS:
            value = getattr(self, section)
            if value is None:
                continue
            table = {
                f.name: list(v) if isinstance(v, tuple) else v
                for f in fields(value)
                if (v := getattr(value, f.name)) is not None and v != ()
            }
            # an all-empty common section (a GPU's isa) says nothing; from_dict restores it
            if section not in COMMON_SECTIONS or any(table.values()):
                out[section] = table
        return out

    def fingerprint(self) -> str:
        """What schedules depend on, as a short hash: the hardware sections (not the name,
        description or toolchain), so records tuned for one file apply to its twins."""
        import hashlib
        import json

        data = {k: v for k, v in self.to_dict().items()
                if k not in ("name", "description", "toolchain")}
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "<dict>") -> Target:
        """Validate a resolved description (as `to_dict` writes it); `source` names it in errors."""
        return cls(**resolve(data, source), source=source)

    def __str__(self) -> str:
        return f"{self.name} ({self.device.kind}/{self.device.backend})"
