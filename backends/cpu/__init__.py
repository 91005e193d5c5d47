"""The `cpu` target (TVM/LLVM on the host CPU).

TVM sizes its CPU thread pool once, from TVM_NUM_THREADS, else hardware_concurrency()/2 on x86,
which is ONE thread on a 2-vCPU VM. Set it (unless the user did) before any kernel of this
package can create the pool; see target.ensure_thread_pool.
"""
import os as _os

_os.environ.setdefault("TVM_NUM_THREADS", str(len(_os.sched_getaffinity(0)) if hasattr(_os, "sched_getaffinity")
                                              else (_os.cpu_count() or 1)))
