"""Ahead-of-time CUDA: nvcc compiles a module's kernels to a fatbin, and the exported library carries the binary.

TVM 0.27 builds CUDA modules as *source* (format "cuda") and compiles them when the library is loaded, which
needs NVRTC/nvcc on the deployment machine. Here the library's packed import blob (`__tvm_ffi__library_bin`,
written by `ModulePackImportsToC`) is rewritten so its cuda module holds format "fatbin" and the nvcc output:
TVM's CUDA runtime then loads it with cuModuleLoadData, no compiler involved.
Blob layout (tvm-ffi library_module.cc): u64 size; import tree (u64 count + u64s, twice); then per module a
string kind and, except for the host "_lib", a u64-length payload. A cuda payload is
str(format), function map, str(data), so only the leading format and the trailing data change.
"""
from __future__ import annotations

import os
import re
import shutil
import struct
import subprocess
import tempfile

from .arch import cuda_arch


class NvccError(RuntimeError):
    """nvcc is missing or rejected generated code; the message has nvcc's own diagnostics."""


def find_nvcc() -> str | None:
    """nvcc on PATH, else under $CUDA_HOME or /usr/local/cuda."""
    found = shutil.which("nvcc")
    for root in filter(None, (os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH"), "/usr/local/cuda")):
        if not found and os.path.exists(os.path.join(root, "bin", "nvcc")):
            found = os.path.join(root, "bin", "nvcc")
    return found


def gencode(arch: str) -> list[str]:
    """SASS for `arch` plus its PTX (forward-compatible within the family)."""
    a = cuda_arch(arch).arch
    return ["-gencode", f"arch=compute_{a[3:]},code=[{a},compute_{a[3:]}]"]


def compile_fatbin(source: str, arch: str, workdir: str | None = None, name: str = "kernels") -> bytes:
    """nvcc --fatbin of CUDA `source` for `arch`; the .cu and .fatbin stay in `workdir` when given."""
    nvcc = find_nvcc()
    if nvcc is None:
        raise NvccError("the cuda target compiles kernels ahead of time with nvcc, which was not found "
                        "(install the CUDA toolkit or set CUDA_HOME)")
    tmp = workdir or tempfile.mkdtemp(prefix="attncc-nvcc-")
    cu, out = os.path.join(tmp, f"{name}.cu"), os.path.join(tmp, f"{name}.fatbin")
    with open(cu, "w") as f:
        f.write(source)
    cmd = [nvcc, "--fatbin", "-O3", *gencode(arch), "-o", out, cu]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise NvccError(f"nvcc failed for {arch} ({' '.join(cmd)}):\n{proc.stderr.strip()[-3000:]}")
    with open(out, "rb") as f:
        data = f.read()
    if workdir is None:
        shutil.rmtree(tmp, ignore_errors=True)
    return data


# ---- the packed import blob --------------------------------------------------------------------------
def _u64(buf: bytes, pos: int) -> tuple[int, int]:
    return struct.unpack_from("<Q", buf, pos)[0], pos + 8


def _str(s: bytes) -> bytes:
    return struct.pack("<Q", len(s)) + s


def blob_from_c(text: str) -> bytes:
    """The bytes of `__tvm_ffi__library_bin` in ModulePackImportsToC's output."""
    body = text[text.index("__tvm_ffi__library_bin["):]
    body = body[body.index("{") + 1: body.index("}")]
    return bytes(int(h, 16) for h in re.findall(r"0x[0-9a-fA-F]{2}", body))


def rewrite_cuda_entries(blob: bytes, binaries: list[bytes], fmt: str = "fatbin") -> tuple[bytes, list[str]]:
    """`blob` with each cuda module's format and code replaced by the next of `binaries` (in blob order).
    Returns (new blob, the CUDA sources it held)."""
    size, pos = _u64(blob, 0)
    if size != len(blob) - 8:
        raise ValueError(f"unexpected library blob: size field {size}, {len(blob) - 8} bytes follow")
    for _ in range(2):   # import tree: row pointers, child indices
        n, pos = _u64(blob, pos)
        pos += 8 * n
    out, sources, todo = bytearray(blob[8:pos]), [], list(binaries)
    while pos < len(blob):
        n, pos = _u64(blob, pos)
        kind = blob[pos:pos + n]
        pos += n
        out += _str(kind)
        if kind == b"_lib":
            continue
        n, pos = _u64(blob, pos)
        payload = blob[pos:pos + n]
        pos += n
        if kind == b"cuda":
            payload, source = _swap_cuda_payload(payload, todo.pop(0), fmt)
            sources.append(source)
        out += _str(payload)
    if todo:
        raise ValueError(f"{len(todo)} binaries left over: the blob holds {len(sources)} cuda module(s)")
    return struct.pack("<Q", len(out)) + bytes(out), sources


def _swap_cuda_payload(payload: bytes, binary: bytes, fmt: str) -> tuple[bytes, str]:
    n, pos = _u64(payload, 0)
    old_fmt = payload[pos:pos + n]
    if old_fmt != b"cuda":
        raise ValueError(f"cuda module already holds format {old_fmt!r}")
    fmap_start = pos + n
    # the data string is the payload's tail: find the length prefix that spans exactly to the end
    for start in range(len(payload) - 8, fmap_start - 1, -1):
        if struct.unpack_from("<Q", payload, start)[0] == len(payload) - start - 8:
            source = payload[start + 8:]
            if source.lstrip().startswith((b"#", b"//", b"extern", b"__")):
                return _str(fmt.encode()) + payload[fmap_start:start] + _str(binary), source.decode()
    raise ValueError("could not locate the CUDA source in the module payload")


def assembly_for(blob_path: str) -> str:
    """GNU assembly defining `__tvm_ffi__library_bin` from a file (.incbin: no giant C array to compile)."""
    return (".section .rodata\n.balign 16\n.globl __tvm_ffi__library_bin\n.type __tvm_ffi__library_bin, @object\n"
            f"__tvm_ffi__library_bin:\n.incbin \"{blob_path}\"\n"
            ".size __tvm_ffi__library_bin, . - __tvm_ffi__library_bin\n.section .note.GNU-stack,\"\",@progbits\n")


def export_aot(module, path: str, arch: str, source_dir: str | None = None) -> dict:
    """Export TVM `module` (host code + cuda imports) to the shared library `path`, its CUDA kernels compiled by
    nvcc for `arch` and carried as fatbin. `source_dir` (optional) receives kernels.cu and kernels.fatbin.
    Returns {"arch", "fatbin_bytes", "kernels": [names]}."""
    from tvm.runtime import _ffi_api

    cuda_mods = [m for m in module.imports if m.kind == "cuda"]
    info = {"arch": cuda_arch(arch).arch, "fatbin_bytes": 0, "sources": []}

    def pack(mod, is_system_lib, prefix, workspace):
        blob = blob_from_c(_ffi_api.ModulePackImportsToC(mod, is_system_lib, prefix))
        binaries = []
        for i, m in enumerate(cuda_mods):
            src = m.inspect_source()
            work = source_dir if source_dir else workspace
            binaries.append(compile_fatbin(src, arch, work, name="kernels" if i == 0 else f"kernels_{i}"))
            info["sources"].append(src)
        new, _ = rewrite_cuda_entries(blob, binaries)
        info["fatbin_bytes"] = sum(len(b) for b in binaries)
        blob_path = os.path.join(workspace, "devblob.bin")
        with open(blob_path, "wb") as f:
            f.write(new)
        asm = os.path.join(workspace, f"{prefix}devc.S")
        with open(asm, "w") as f:
            f.write(assembly_for(blob_path))
        return asm

    module.export_library(path, fpack_imports=pack)
    info["kernels"] = sorted(set(re.findall(r'extern "C" __global__ void (?:__launch_bounds__\(\d+\) )?(\w+)\(',
                                            "\n".join(info["sources"]))))
    info.pop("sources")
    return info


FATBIN_MAGIC = 0xBA55ED50


def fatbin_entries(data: bytes) -> list[dict]:
    """The images in a fatbin: [{"kind": "elf" | "ptx", "arch": 80 | 90 ...}] (header layout as documented by
    the open fatbin decoders, e.g. github.com/n-eiling/cuda-fatbin-decompression). Raises ValueError if
    `data` is not a fatbin."""
    magic, _version, header, total = struct.unpack_from("<IHHQ", data, 0)
    if magic != FATBIN_MAGIC:
        raise ValueError(f"not a fatbin (magic {magic:#x})")
    pos, end, out = header, header + total, []
    while pos < end:
        kind, _, hsize, size = struct.unpack_from("<HHIQ", data, pos)
        arch = struct.unpack_from("<I", data, pos + 28)[0]
        out.append({"kind": {1: "ptx", 2: "elf"}.get(kind, str(kind)), "arch": arch, "bytes": size})
        pos += hsize + size
    return out
