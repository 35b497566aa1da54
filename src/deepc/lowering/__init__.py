"""Lowering: fused groups of graph nodes to loop-IR kernels, and the memory plan over them."""
