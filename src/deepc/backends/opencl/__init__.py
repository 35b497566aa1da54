"""OpenCL C: the C-style renderer's OpenCL dialect (building and running are not here yet)."""
