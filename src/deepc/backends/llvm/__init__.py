"""LLVM backend (llvmlite): loop IR to LLVM IR, then to objects, assembly or a JIT."""
