"""The hls backend: Vitis HLS C++ for FPGA targets (backend.py registers it)."""
