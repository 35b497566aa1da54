"""Graph passes: named `graph -> graph` functions run as pipelines (-O0 .. -O3)."""

from deepc.passes.manager import PASSES, PIPELINES, PassContext, register_pass, run_pipeline

__all__ = ["PASSES", "PIPELINES", "PassContext", "register_pass", "run_pipeline"]
