"""What a backend is: a scheduler and a code generator for one family of targets, found by
the driver in BACKENDS under the target's `device.backend`.

    schedule(kernels, target, options) -> [KernelSchedule]   loop IR -> launches + records
    build(name, scheduled, plan, target, options, report) -> Module    launches -> code

A backend lives in a package under backends/ and adds itself to BACKENDS when imported;
`deepc.backends` imports the built-in ones. Its packager and runtime loader register under
the target's `device.kind` (compiler/packagers, runtime/loaders).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from deepc.errors import InputError
from deepc.ir.loop import Buffer
from deepc.lowering.kernels import Kernel
from deepc.lowering.plan import Plan
from deepc.registry import Registry
from deepc.schedule.schedule import Schedule

Report = Callable[[str, int, int], None]


@dataclass(frozen=True)
class CompileOptions:
    """What the user asked of `compile` beyond the model and target."""

    opt_level: int = 2  # the graph pass pipeline, -O0 .. -O3
    allow_tf32: bool | None = None  # TF32 tensor cores for fp32 products (None: DEEPC_ALLOW_TF32)
    # workload key -> knobs from a tuning log; those kernels are scheduled with them
    tuned: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, hash=False)
    # CPU bundles: bin/run_model linked fully static with the model inside (runs on any Linux
    # of the architecture)
    static_runner: bool = False
    precision: str = "float32"  # or "fixed16" where the backend lists it in `precisions`
    # value name -> its largest magnitude on the calibration inputs (fixed-point precisions)
    ranges: Mapping[str, float] = field(default_factory=dict, hash=False)


@dataclass(frozen=True)
class Launch:
    """One GPU launch: `func` over the kernel's arguments, then its scratch buffers."""

    func: str
    grid: tuple[int, int, int]
    block: tuple[int, int, int]
    note: str = ""  # how the stage was mapped (tiled GEMM, warp reduction, ...): --profile
    shared: int = 0  # bytes of dynamic shared memory (the kernel's limit raised to them)

    def to_dict(self) -> dict[str, Any]:
        return {"func": self.func, "grid": list(self.grid), "block": list(self.block),
                **({"shared": self.shared} if self.shared else {})}


@dataclass(frozen=True)
class KernelSchedule:
    """A kernel as the memory plan sees it, and the schedule of each of its launches (a CPU
    kernel is one; a GPU kernel one per stage). `state` is the backend's own."""

    kernel: Kernel
    launches: tuple[Schedule, ...]
    state: Any = None
    tuned: bool = False  # scheduled with a tuning log's knobs, not the default's

    def knobs(self) -> dict[str, Any]:
        """All launches' knobs, prefixed by the launch where there are several."""
        if len(self.launches) == 1:
            return dict(self.launches[0].knobs)
        return {f"s{k}.{name}": v for k, sch in enumerate(self.launches)
                for name, v in sch.knobs.items()}


@dataclass(frozen=True)
class Module:
    """What a backend built for one model: a binary, the source it came from, and for GPU
    backends the launches of each kernel and the global scratch buffers they share."""

    backend: str
    binary: bytes  # object code (linked by the packager) or a device binary (cubin)
    source: str  # LLVM IR or C-like source text
    launches: dict[str, list[Launch]] = field(default_factory=dict)
    scratch: dict[str, tuple[Buffer, ...]] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)  # options in effect, e.g. tf32
    report: dict[str, Any] = field(default_factory=dict)  # e.g. an FPGA resource estimate


class Backend:
    """Base of the registered backends; `source_of`/`assembly_of` serve `inspect-ir`."""

    name = ""
    precisions: tuple[str, ...] = ("float32",)  # what `CompileOptions.precision` may ask

    def schedule(self, kernels: list[Kernel], target: Any,
                 options: CompileOptions) -> list[KernelSchedule]:
        raise NotImplementedError

    def build(self, name: str, scheduled: list[KernelSchedule], plan: Plan, target: Any,
              options: CompileOptions, report: Report) -> Module:
        raise NotImplementedError

    def source_of(self, module: Module, kernel: Kernel) -> str:
        raise NotImplementedError

    def report_of(self, module: Module, kernel: Kernel | None) -> str:
        raise InputError(f"--stage hls needs an FPGA target; the {self.name} backend makes"
                         " no resource estimate")

    def assembly_of(self, module: Module, kernel: Kernel, target: Any) -> str:
        raise InputError(f"--stage asm needs an LLVM target; the {self.name} backend has"
                         " none — use --stage source")


BACKENDS: Registry[Backend] = Registry("backend")
