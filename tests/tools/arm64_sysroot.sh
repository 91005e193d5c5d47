#!/usr/bin/env bash
# Build an aarch64 sysroot that runs exported mobile-cpu folders under qemu-aarch64-static:
# Debian's arm64 python3.11 (+ the shared libraries it and TVM's runtime need), and the aarch64
# apache-tvm / apache-tvm-ffi / numpy / ml_dtypes wheels in its dist-packages (+ cloudpickle and psutil,
# which TVM's RPC server `python -m tvm.exec.rpc_server` needs).
#
#   bash tests/tools/arm64_sysroot.sh [ROOT]      # default ROOT: $ATTNCC_ARM64_ROOT or /opt/arm64root
#   qemu-aarch64-static -L ROOT ROOT/usr/bin/python3.11 out/run.py
#
# Needs root (apt-get), network to Debian and PyPI, and the host packages qemu-user-static and
# gcc-aarch64-linux-gnu (installed here when missing). Idempotent: a finished root is left as it is.
set -euo pipefail
ROOT="${1:-${ATTNCC_ARM64_ROOT:-/opt/arm64root}}"
TVM_VERSION="${ATTNCC_ARM64_TVM:-0.27.0.post1}"
FFI_VERSION="${ATTNCC_ARM64_TVM_FFI:-0.1.14.post1}"
REV=2   # bump when the root's contents change (2: cloudpickle + psutil for TVM's RPC server)
STAMP="$ROOT/.attncc-sysroot-r$REV-$TVM_VERSION-$FFI_VERSION"
if [ -f "$STAMP" ]; then echo "arm64 sysroot ready: $ROOT"; exit 0; fi

export DEBIAN_FRONTEND=noninteractive
need=()
command -v qemu-aarch64-static >/dev/null || need+=(qemu-user-static)
command -v aarch64-linux-gnu-gcc >/dev/null || need+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
if ! dpkg --print-foreign-architectures | grep -qx arm64; then dpkg --add-architecture arm64; fi
apt-get update -qq
if [ ${#need[@]} -gt 0 ]; then apt-get install -y -qq "${need[@]}"; fi

# the arm64 debs python3.11 and TVM's runtime (libstdc++, libgcc) load; unpacked, never installed
DEBS=(libc6 libgcc-s1 libstdc++6 zlib1g libexpat1 libffi8 libssl3 libbz2-1.0 liblzma5 libsqlite3-0
      libncursesw6 libtinfo6 libreadline8 libuuid1 libcrypt1 libnsl2 libtirpc3 libgssapi-krb5-2
      libkrb5-3 libk5crypto3 libkrb5support0 libcom-err2 libkeyutils1 libdb5.3 media-types
      python3.11-minimal libpython3.11-minimal libpython3.11-stdlib python3.11)
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get download -qq $(printf '%s:arm64 ' "${DEBS[@]}" | sed 's/media-types:arm64/media-types/'))
mkdir -p "$ROOT"
for deb in "$work"/*.deb; do dpkg-deb -x "$deb" "$ROOT"; done

# aarch64 wheels for python 3.11 into the root's dist-packages (no host constraints: other platform)
SITE="$ROOT/usr/lib/python3/dist-packages"
mkdir -p "$SITE"
PIP_CONSTRAINT= pip download -q --no-deps --dest "$work/wheels" --platform manylinux_2_28_aarch64 \
    --platform manylinux2014_aarch64 --platform manylinux_2_17_aarch64 --python-version 3.11 \
    --implementation cp --only-binary=:all: \
    "apache-tvm==$TVM_VERSION" "apache-tvm-ffi==$FFI_VERSION" "numpy<2.3" ml_dtypes typing_extensions cloudpickle psutil
for whl in "$work"/wheels/*.whl; do python3 -m zipfile -e "$whl" "$SITE"; done

# smoke test: the emulated interpreter imports TVM's runtime and runs numpy
TVM_USE_RUNTIME_LIB=1 qemu-aarch64-static -L "$ROOT" "$ROOT/usr/bin/python3.11" -c \
    "import platform, numpy, tvm, tvm.rpc, cloudpickle; print(platform.machine(), numpy.__version__, tvm.__version__)"
touch "$STAMP"
echo "arm64 sysroot ready: $ROOT"
