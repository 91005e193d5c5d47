"""The `cpu` target (TVM/LLVM on the host CPU).

TVM sizes its CPU thread pool once, from TVM_NUM_THREADS, else hardware_concurrency()/2 on x86,
which is ONE thread on a 2-vCPU VM. Set it (unless the user did) before any kernel of this
package can create the pool; see target.ensure_thread_pool.

After each kernel TVM's workers spin 300000 sched_yield rounds before sleeping, holding a core
that torch needs when a model alternates attncc and torch calls (measured with
OMP_WAIT_POLICY=PASSIVE: torch 19.8 ms -> 13.4 ms per call at 30000); 30000 still bridges
the gaps between the kernels of one call (the block's time did not change).
"""
import os as _os

_os.environ.setdefault("TVM_NUM_THREADS", str(len(_os.sched_getaffinity(0)) if hasattr(_os, "sched_getaffinity")
                                              else (_os.cpu_count() or 1)))
_os.environ.setdefault("TVM_THREAD_POOL_SPIN_COUNT", "30000")
