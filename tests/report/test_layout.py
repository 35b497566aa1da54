"""The layered layout (report/graph_layout.py) and onnxruntime's profile reading
(report/peer.py), on small hand-made inputs."""

from __future__ import annotations

from deepc.report.graph_layout import layers, order_layers, place
from deepc.report.peer import node_times


def test_layers_follow_the_longest_path() -> None:
    # 0 -> 1 -> 3, 0 -> 2 -> 3, 0 -> 3: the diamond's join sits below both branches
    edges = [(0, 1), (0, 2), (1, 3), (2, 3), (0, 3)]
    assert layers(4, edges) == [0, 1, 1, 2]


def test_barycentre_ordering_uncrosses_two_chains() -> None:
    # two chains a0->a1 and b0->b1, numbered so that the second layer starts crossed
    edges = [(0, 3), (1, 2)]
    rows = order_layers(layers(4, edges), edges)
    assert rows == [[0, 1], [3, 2]]


def test_boxes_of_a_layer_do_not_overlap_and_layers_stack() -> None:
    sizes = [(100.0, 30.0), (80.0, 50.0), (120.0, 20.0), (90.0, 40.0)]
    edges = [(0, 1), (0, 2), (1, 3), (2, 3)]
    boxes, width, height = place(sizes, edges, gap_x=10, gap_y=20)
    one, two = sorted([boxes[1], boxes[2]], key=lambda b: b.x)
    assert one.x + one.width + 10 <= two.x + 1e-9
    assert boxes[1].y == boxes[2].y == 30 + 20
    assert boxes[3].y == 50 + 50 + 20 * 1  # below the taller box of layer 1
    assert width == 80 + 120 + 10 and height == boxes[3].y + 40


def test_onnxruntime_node_times_skip_warmup_runs() -> None:
    def event(node: str, us: float) -> dict:  # type: ignore[type-arg]
        return {"cat": "Node", "name": f"{node}_kernel_time", "dur": us,
                "args": {"op_name": "Conv" if "conv" in node else "Relu"}}

    events = [{"cat": "Session", "name": "model_run", "dur": 9000}]
    for us in (5000, 100, 300, 200):  # the first run is the warm-up
        events += [event("conv1", us), event("relu1", us / 10),
                   {"cat": "Node", "name": "conv1_fence_before", "dur": 1}]
    rows = {r["node"]: r for r in node_times(events, skip=1)}
    assert rows.keys() == {"conv1", "relu1"}
    assert rows["conv1"]["ms"] == 0.2 and rows["conv1"]["kind"] == "conv"
    assert rows["relu1"]["op"] == "Relu" and rows["relu1"]["kind"] == "elementwise"
