"""The `cpu` target (TVM/LLVM on the host CPU): a plugin on the shared core (backends/core).

Importing it changes nothing in the process: TVM's thread pool is sized through TVM's API when a
model is lowered or loaded (target.ensure_thread_pool), not through os.environ.
"""
