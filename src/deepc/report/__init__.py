"""What the compiler did to a model, to look at: a Chrome trace of its kernels' runs
(trace.py) and one self-contained HTML report (html.py) of the graph as compiled, the memory
plan, the kernel profile, the target, the passes and the schedules."""
