"""Graph passes: named `graph -> graph` functions run as pipelines (-O0 .. -O3)."""

from deepc.passes import fuse as _fuse  # noqa: F401  (registers fuse)
from deepc.passes import layout as _layout  # noqa: F401  (registers kernel_layout)
from deepc.passes.manager import PASSES, PIPELINES, PassContext, register_pass, run_pipeline

__all__ = ["PASSES", "PIPELINES", "PassContext", "register_pass", "run_pipeline"]
