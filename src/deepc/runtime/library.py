"""What Model asks of a loaded bundle's device side, with the answers most libraries share:
it runs where it is (not emulated), its timings are measured (not estimated from the
schedule), and it has one thread unless it says otherwise."""

from __future__ import annotations


class Library:
    emulated = False  # runs under an emulator or a simulation rather than on this machine
    estimated = False  # time_runs measures (csim.py's reports an estimate)
    emulator_text: str | None = None  # how it runs, where emulated
    num_threads = 1
