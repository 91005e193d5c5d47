"""Cross-linking mobile-cpu libraries for aarch64, and libraries that are never loaded in this process.

A fresh build is TVM's in-memory module of aarch64 object code; `write_library` links it into an aarch64
shared object with `aarch64-linux-gnu-gcc` (Debian `gcc-aarch64-linux-gnu`) and writes its LLVM IR (.ll)
and assembly (.s) beside it. A library file read back (compile cache, exported folder) becomes a
`CrossLibrary`: only its path, since an aarch64 object cannot be mapped into an x86 process.
"""
from __future__ import annotations

import os
import shutil

CROSS_CC_ENV = "ATTNCC_AARCH64_CC"
SOURCE_SUFFIXES = (".ll", ".s")


class CrossToolError(RuntimeError):
    """The aarch64 cross toolchain is missing."""


class CrossLibrary:
    """An aarch64 library file that this process does not load (runs only on the device or under qemu)."""

    def __init__(self, path: str):
        self.path = path

    def __getitem__(self, name: str):
        raise RuntimeError(f"{self.path} is aarch64 code: it cannot run in this process; run it on the device or "
                           "under qemu-aarch64 (attncc.backends.mobile.cpu.emulate)")

    def __repr__(self) -> str:
        return f"CrossLibrary({self.path!r})"


def cross_compiler() -> str:
    """The aarch64 C compiler: $ATTNCC_AARCH64_CC or aarch64-linux-gnu-gcc; CrossToolError when absent."""
    cc = os.environ.get(CROSS_CC_ENV, "aarch64-linux-gnu-gcc")
    if shutil.which(cc) is None:
        raise CrossToolError(f"mobile-cpu: the aarch64 linker '{cc}' is not installed; install Debian's "
                             f"gcc-aarch64-linux-gnu (apt-get install gcc-aarch64-linux-gnu) or set {CROSS_CC_ENV}")
    return cc


def source_paths(library: str) -> list[str]:
    """The .ll / .s files written beside `library` (those that exist)."""
    stem = os.path.splitext(library)[0]
    return [stem + s for s in SOURCE_SUFFIXES if os.path.exists(stem + s)]


def write_library(lib, path: str) -> None:
    """Link `lib` into an aarch64 shared object at `path` with the cross compiler; write its LLVM IR and
    assembly beside it (path with .ll / .s). A CrossLibrary is copied with its sources."""
    stem = os.path.splitext(path)[0]
    if isinstance(lib, CrossLibrary):
        shutil.copyfile(lib.path, path)
        for src in source_paths(lib.path):
            shutil.copyfile(src, stem + os.path.splitext(src)[1])
        return
    from tvm.support import cc

    lib.export_library(path, fcompile=cc.cross_compiler(cross_compiler()))
    module = getattr(lib, "mod", lib)
    for fmt, suffix in (("ll", ".ll"), ("asm", ".s")):
        with open(stem + suffix, "w") as f:
            f.write(module.inspect_source(fmt))


def read_library(path: str) -> CrossLibrary:
    """A library file as mobile-cpu runners take it: its path, never loaded here."""
    return CrossLibrary(path)
