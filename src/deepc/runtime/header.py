"""A bundle manifest to include/deepc_model.h: the C interface of a compiled CPU model."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from math import prod
from typing import Any

from deepc.ir.types import NARROW_FLOATS, NARROW_INTS, itemsize

C_TYPES = {
    # the narrow formats travel as ml_dtypes stores them: a byte each (bfloat16: below)
    **{d: "uint8_t" for d in (*NARROW_FLOATS, *NARROW_INTS)},
    "float32": "float", "float64": "double",
    # halves travel as their 16 raw bits; C11 has no half type
    "float16": "uint16_t", "bfloat16": "uint16_t",
    "int8": "int8_t", "int16": "int16_t", "int32": "int32_t", "int64": "int64_t",
    "uint8": "uint8_t", "uint16": "uint16_t", "uint32": "uint32_t", "uint64": "uint64_t",
    "bool": "uint8_t",
}

USAGE = """\
 * Use: read params.bin into a buffer aligned to DEEPC_ALIGN bytes, allocate
 * DEEPC_WORKSPACE_BYTES likewise, put pointers to the inputs and to room for the outputs in
 * two arrays in the order below (DEEPC_INPUTk_* / DEEPC_OUTPUTk_*), then call
 *     deepc_run(inputs, outputs, params, workspace)    (0 = success)
 * Link with lib/model.so (-lm -lpthread). Threads: deepc_set_num_threads, or the environment
 * variable DEEPC_NUM_THREADS (default: all cores)."""


def c_string(text: str) -> str:
    """A C string literal for any text: non-ASCII bytes as octal escapes, no trigraphs."""
    out = []
    for byte in text.encode():
        ch = chr(byte)
        if ch in '"\\?':
            out.append("\\" + ch)
        elif 0x20 <= byte < 0x7F:
            out.append(ch)
        else:
            out.append(f"\\{byte:03o}")
    return f'"{"".join(out)}"'


def c_identifier(name: str) -> str:
    ident = re.sub(r"[^0-9A-Za-z]+", "_", name).strip("_").upper()
    return f"_{ident}" if not ident or ident[0].isdigit() else ident


def _initializer(values: Sequence[object]) -> str:
    # C has no empty initializer lists before C23; RANK/NUM_* say how many entries count
    return "{" + ", ".join(map(str, values)) + "}" if values else "{0}"


def _tensor_block(role: str, k: int, spec: Mapping[str, Any]) -> list[str]:
    shape = [int(d) for d in spec["shape"]]
    dtype = str(spec["dtype"])
    if dtype not in C_TYPES:
        raise ValueError(f"{role.lower()} {spec['name']!r} has dtype {dtype}, which has no C type")
    size = prod(shape)
    p = f"DEEPC_{role}{k}"
    return [
        f"/* {role.lower()} {k} */",
        f"#define {p}_NAME {c_string(str(spec['name']))}",
        f'#define {p}_DTYPE "{dtype}"',
        f"#define {p}_CTYPE {C_TYPES[dtype]}",
        f"#define {p}_RANK {len(shape)}",
        f"#define {p}_SHAPE {_initializer(shape)}",
        f"#define {p}_SIZE {size}",
        f"#define {p}_BYTES {size * itemsize(dtype)}",
        "",
    ]


def _role_block(role: str, specs: Sequence[Mapping[str, Any]]) -> list[str]:
    lines: list[str] = []
    for k, spec in enumerate(specs):
        lines += _tensor_block(role, k, spec)
    idents = [c_identifier(str(s["name"])) for s in specs]
    # index by name only where the C spellings stay distinct
    for k, ident in enumerate(idents):
        if idents.count(ident) == 1:
            lines.append(f"#define DEEPC_{role}_INDEX_{ident} {k}")
    sizes = [prod(int(d) for d in s["shape"]) for s in specs]
    lines += [
        f"#define DEEPC_{role}_NAMES {_initializer([c_string(str(s['name'])) for s in specs])}",
        f"#define DEEPC_{role}_SIZES {_initializer(sizes)}",
        f"#define DEEPC_{role}_BYTE_SIZES "
        f"{_initializer([n * itemsize(str(s['dtype'])) for n, s in zip(sizes, specs)])}",
        "",
    ]
    return lines


def render_header(manifest: Mapping[str, Any]) -> str:
    """include/deepc_model.h for a manifest: entry points, sizes, names, shapes and dtypes."""
    inputs, outputs = manifest["inputs"], manifest["outputs"]
    target = manifest.get("target", {})
    triple = target.get("isa", {}).get("triple", "")
    version = manifest.get("deepc_version", "")
    lines = [
        f"/* deepc_model.h: C interface of a model compiled by deepc {version}".rstrip() + ".",
        " *",
        USAGE,
        " */",
        "#ifndef DEEPC_MODEL_H",
        "#define DEEPC_MODEL_H",
        "",
        "#include <stdint.h>",
        "",
        f"#define DEEPC_MODEL_NAME {c_string(str(manifest.get('name', 'model')))}",
        f"#define DEEPC_TARGET_NAME {c_string(str(target.get('name', '')))}",
        f"#define DEEPC_TARGET_TRIPLE {c_string(str(triple))}",
        f"#define DEEPC_NUM_INPUTS {len(inputs)}",
        f"#define DEEPC_NUM_OUTPUTS {len(outputs)}",
        f"#define DEEPC_WORKSPACE_BYTES {int(manifest['workspace_bytes'])}",
        f"#define DEEPC_PARAMS_BYTES {int(manifest['params']['bytes'])}",
        f"#define DEEPC_ALIGN {int(manifest['params'].get('align', 64))}",
        "",
        *_role_block("INPUT", inputs),
        *_role_block("OUTPUT", outputs),
        "#ifdef __cplusplus",
        'extern "C" {',
        "#endif",
        "",
        "/* Runs the model once; inputs/outputs: one pointer per tensor, in the order above. */",
        "int32_t deepc_run(void *const *inputs, void *const *outputs, const void *params,",
        "                  void *workspace);",
        "/* Threads the kernels use, the caller included; n <= 0 means all cores. */",
        "void deepc_set_num_threads(int32_t n);",
        "int32_t deepc_get_num_threads(void);",
        "",
        "#ifdef __cplusplus",
        "}",
        "#endif",
        "",
        "#endif /* DEEPC_MODEL_H */",
        "",
    ]
    return "\n".join(lines)
