"""The WebAssembly backend: the LLVM backend's code for wasm32 + SIMD, linked by wasm-ld."""
