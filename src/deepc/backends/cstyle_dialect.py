"""What one C-like language spells differently: the dialect table the C-style renderer
(cstyle.py) reads — qualifiers, thread indices, barriers, type and math names, intrinsics,
vector loads, and the pragmas that open loops and local arrays."""

from __future__ import annotations

from dataclasses import dataclass, field

_C_TYPES = {"float32": "float", "float64": "double", "int8": "signed char", "int16": "short",
            "int32": "int", "int64": "long long", "uint8": "unsigned char",
            "uint16": "unsigned short", "uint32": "unsigned int",
            "uint64": "unsigned long long", "bool": "bool", "float16": "half",
            "float32x4": "float4", "float32x2": "float2", "uint32x2": "uint2",
            "uint32x4": "uint4"}


@dataclass(frozen=True)
class Dialect:
    """What one C-like language spells differently."""

    name: str
    prelude: str = ""  # includes and definitions before the helpers
    kernel_qualifier: str = ""  # before a kernel's return type, e.g. `extern "C" __global__`
    helper_qualifier: str = "static inline"
    global_qualifier: str = ""  # pointer parameters' address space
    restrict: str = "restrict"
    thread_index: dict[str, str] = field(default_factory=dict)  # "threadIdx.x" -> spelling
    barrier: str = ""
    shared_qualifier: str = ""
    # a kernel whose "dynamic_shared" attribute is its shared bytes: the pool's declaration,
    # and each shared buffer as a {type}* {name} at its byte {offset} in it
    dynamic_shared: str = ""
    shared_view: str = ""
    types: dict[str, str] = field(default_factory=dict)  # overrides of _C_TYPES
    math: dict[str, str] = field(default_factory=dict)  # overrides of _MATH_F32
    inf: str = "INFINITY"
    nan: str = "NAN"
    float_loops_serial: bool = True  # vector/parallel loop kinds run as plain loops
    overloaded_math: bool = False  # exp/fmod/... for every float type (OpenCL, Metal)
    # device intrinsics (ir.expr.INTRINSICS, and Evaluate statements such as the mma) as
    # format strings of their rendered arguments; `helpers` holds the text an intrinsic needs
    intrinsics: dict[str, str] = field(default_factory=dict)
    helpers: dict[str, str] = field(default_factory=dict)
    # {type} {lanes} {addr} {value} {space}: vector loads/stores of consecutive elements
    vector_load: str = ""
    vector_store: str = ""
    pack: str = ""  # {type} {lanes}
    launch_bounds: str = ""  # {threads} {blocks}, before the kernel's name
    constant_qualifier: str = ""  # read-only tables a warp reads uniformly
    table_qualifier: str = ""  # the other read-only tables
    constant_bytes: int = 0  # of the constant bank, what tables may take
    # per loop kind, the pragma lines opening such a loop ({extent}, {ii}: the pipeline's
    # interval from the function's "pipeline_ii"), before the loop or as its body's first line
    loop_pragmas: dict[str, str] = field(default_factory=lambda: {"unrolled": "#pragma unroll"})
    pragmas_in_body: bool = False
    # per buffer scope, the pragmas after a local array's declaration ({name}, {size},
    # {factor}: its partition from the function's "partition")
    scope_pragmas: dict[str, str] = field(default_factory=dict)
    # a kernel takes one arena and a byte offset per buffer instead of pointers (an OpenCL
    # buffer argument cannot point into another buffer); arena_offset: {type} {restrict}
    # {name}, the statement that makes the pointer `name` from its `name_off`
    arena_param: str = ""
    arena_offset: str = ""
    param_attr: str = ""  # {index}: after each pointer parameter (Metal's [[buffer(n)]])
    builtin_params: str = ""  # after the buffers: thread-position parameters (Metal)
    spaces: dict[str, str] = field(default_factory=dict)  # scope -> {space} of vector loads

    def ctype(self, dtype: str) -> str:
        return self.types.get(dtype) or _C_TYPES[dtype]
