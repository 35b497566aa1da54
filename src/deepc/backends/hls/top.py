"""A memory plan to the HLS top function: one DDR arena (params | workspace | inputs |
outputs, offsets in floats) through one m_axi port, each kernel called on its regions in
plan order, and the header that the testbench and the host program share."""

from __future__ import annotations

from typing import Any

from deepc.errors import InputError
from deepc.ir.loop import Buffer
from deepc.lowering.plan import Plan, regions

TOP = "deepc_top"
_ALIGN = 16  # floats: every region starts on a 64-byte DDR burst boundary


def _align(n: int) -> int:
    return (n + _ALIGN - 1) // _ALIGN * _ALIGN


def _scratch_offsets(buffers: tuple[Buffer, ...], base: int) -> tuple[list[int], int]:
    return regions([b.size for b in buffers], base, _ALIGN)


def arena_layout(plan: Plan, scratch: dict[str, tuple[Buffer, ...]]) -> dict[str, Any]:
    """Float offsets of the arena's regions and of each model input and output. Kernels run
    one after another, so their scratch buffers share one region."""
    sizes: dict[str, int] = {}
    for k in plan.calls:
        for name, buf in zip(k.args, k.func.params):
            if buf.dtype != "float32":
                raise InputError(f"kernel {k.name} passes {name!r} as {buf.dtype}; the hls"
                                 " backend moves float32 tensors only")
            sizes[name] = buf.size
    joined: dict[str, int] = {}  # a concat written by its parts is no call's argument
    for part, (concat, _) in plan.views.items():  # inner concats come first
        joined[concat] = joined.get(concat, 0) + sizes.get(part, joined.get(part, 0))
    for name, n in joined.items():
        sizes.setdefault(name, n)
    workspace = _align(plan.params_bytes // 4)
    scratch_offset = workspace + _align(plan.workspace_bytes // 4)
    pos = scratch_offset + max([0, *(_scratch_offsets(scratch[k.name], 0)[1]
                                     for k in plan.calls)])
    slots: dict[str, dict[int, tuple[int, int]]] = {"input": {}, "output": {}}
    for name, loc in sorted(plan.locations.items(), key=lambda x: (x[1].kind, x[1].index)):
        if loc.kind in slots and name in sizes and name not in plan.views:
            slots[loc.kind][loc.index] = (pos, sizes[name])
            pos = _align(pos + sizes[name])
    return {"arena_floats": pos, "params_floats": plan.params_bytes // 4,
            "workspace_offset": workspace, "scratch_offset": scratch_offset,
            "inputs": [list(slots["input"][i]) for i in sorted(slots["input"])],
            "outputs": [list(slots["output"][i]) for i in sorted(slots["output"])]}


def _where(plan: Plan, layout: dict[str, Any], value: str) -> int:
    loc = plan.locations[value]
    if loc.kind in ("input", "output"):  # a concat's part lies at an offset in an output
        return layout[f"{loc.kind}s"][loc.index][0] + loc.offset // 4
    return (0 if loc.kind == "param" else layout["workspace_offset"]) + loc.offset // 4


def render_top(plan: Plan, layout: dict[str, Any],
               scratch: dict[str, tuple[Buffer, ...]]) -> str:
    calls = []
    for k in plan.calls:
        args = [_where(plan, layout, v) for v in k.args]
        args += _scratch_offsets(scratch[k.name], layout["scratch_offset"])[0]
        calls.append(f"  {k.name}({', '.join(f'ddr + {a}' for a in args)});")
    return "\n".join([
        f"// {TOP}: the kernels in plan order over one DDR arena",
        f'extern "C" void {TOP}(float* ddr) {{',
        f"#pragma HLS INTERFACE m_axi port=ddr offset=slave bundle=gmem"
        f" depth={layout['arena_floats']} max_read_burst_length=64",
        "#pragma HLS INTERFACE s_axilite port=ddr bundle=control",
        "#pragma HLS INTERFACE s_axilite port=return bundle=control",
        *calls, "}"])


def render_header(layout: dict[str, Any]) -> str:
    """deepc_top.h: the arena's layout as C constants (C and C++)."""
    def table(name: str, rows: list[list[int]], col: int) -> str:
        values = ", ".join(str(r[col]) for r in rows) or "0"
        return f"static const long {name}[] = {{{values}}};"

    ins, outs = layout["inputs"], layout["outputs"]
    return "\n".join([
        "/* deepc_top.h: the DDR arena the accelerator works in, in floats:",
        " * params (params.bin) | workspace | scratch | inputs | outputs. */",
        "#ifndef DEEPC_TOP_H", "#define DEEPC_TOP_H",
        f"#define DEEPC_ARENA_FLOATS {layout['arena_floats']}L",
        f"#define DEEPC_PARAMS_FLOATS {layout['params_floats']}L",
        f"#define DEEPC_NUM_INPUTS {len(ins)}", f"#define DEEPC_NUM_OUTPUTS {len(outs)}",
        table("deepc_input_offset", ins, 0), table("deepc_input_floats", ins, 1),
        table("deepc_output_offset", outs, 0), table("deepc_output_floats", outs, 1),
        "#ifdef __cplusplus", f'extern "C" void {TOP}(float* ddr);', "#endif",
        "#endif", ""])
