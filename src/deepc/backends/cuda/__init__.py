"""The CUDA backend: loop IR to CUDA C (through the C-style renderer) to a cubin (nvcc)."""
