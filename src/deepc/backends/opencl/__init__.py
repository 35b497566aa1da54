"""OpenCL C: the C-style renderer's OpenCL dialect and the backend that renders it."""
