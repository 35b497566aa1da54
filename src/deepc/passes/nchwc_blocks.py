"""Channel block sizes of the blocked conv layout NCHW[b]c (the `nchwc_layout` pass): a
target's block lanes, and the block of a conv's output channels, padded or halved or with
groups merged, that the pass gives each conv."""

from __future__ import annotations

from deepc.ops.layout import padded_channels
from deepc.target.sections import VECTOR_KINDS

MIN_BLOCK = 4  # narrower blocks fill too little of a vector to pay for the transforms
# groups narrower than a block are merged into one with zeros between them: work grows by the
# factor, which a blocked conv's vectors (against a plain grouped conv's strided gathers)
# repay up to about this much
MAX_GROUP_MERGE = 4
# channels padded to whole registers: the pad costs its share in the conv and in every
# consumer (and a transform where a conv reads the value), a half-register block doubles
# the conv's multiply-adds; a small share is worth it
MAX_PAD = 1 / 2


def block_lanes(target: object) -> int:
    """The channel block for float32 on a CPU target, 0 when the pass does not apply.

    A register's lanes; two registers' on a target without fused multiply-add (wasm
    SIMD128): there each multiply-add is a multiply and an add, and the broadcast of an
    input value (a splat load and its address) is paid per row of the register tile, so a
    row of two vectors halves that cost (wasm32-simd in Node, beside the one-register block:
    resnet18 -17%, shufflenet_v2 -13%, mobilenet_v2 -4%, squeezenet1_1 and efficientnet_b0
    even).
    """
    if target is None or getattr(target, "kind", "cpu") not in VECTOR_KINDS:
        return 0
    lanes = int(getattr(target, "vector_bits", 0)) // 32
    if lanes < 2:
        return 0
    return lanes if getattr(target, "fma", True) else 2 * lanes


def largest_divisor(n: int, limit: int) -> int:
    return max(d for d in range(1, min(n, limit) + 1) if n % d == 0)


def pads_to_registers(channels: int, lanes: int, max_pad: float = MAX_PAD) -> bool:
    """Whether `channels` that do not fill whole registers of `lanes` are worth padding to
    them: more than one register, and at most `max_pad` of them added."""
    return channels % lanes != 0 and channels > lanes \
        and padded_channels(channels, lanes) - channels <= max_pad * channels


def channel_block(channels: int, lanes: int, pad: bool = False) -> int:
    """The block for `channels` output channels: a register's lanes when they divide, or
    with `pad` when padding to whole registers is worth it; else half of them when that
    divides; else 0."""
    if channels % lanes == 0 or (pad and pads_to_registers(channels, lanes)):
        return lanes
    half = lanes // 2
    return half if half >= min(MIN_BLOCK, lanes) and channels % half == 0 else 0


def grouped_block(out_c: int, group: int, lanes: int) -> tuple[int, bool] | None:
    """The output block of a grouped (not depthwise) conv and whether its groups must be
    merged (merge_groups) to fill it: a block that divides the group's outputs as is; else a
    register's lanes over groups that divide them, when the merged zeros multiply the work
    by at most MAX_GROUP_MERGE; else None (the conv stays plain)."""
    width = out_c // group
    for b in (lanes, lanes // 2):
        if b >= min(MIN_BLOCK, lanes) and width % b == 0:
            return b, False
    for b in (lanes, lanes // 2):
        if b >= min(MIN_BLOCK, lanes) and b % width == 0 and out_c % b == 0 \
                and b // width <= MAX_GROUP_MERGE:
            return b, True
    return None
