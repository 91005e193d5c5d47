"""Simulated free-space 4f optical accelerator target (TVM-free): physics, mapping, executor, backend."""
