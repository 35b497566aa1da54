"""The compiler driver: graph groups to tensor expressions, kernels, plans and bundles."""
