"""What the GPU backends share: stages from schedule/gpu.py rendered by one C-style renderer."""
