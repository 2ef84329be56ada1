#!/usr/bin/env bash
# Installs every Debian package plm builds, tests and runs with; idempotent.
# CUDA, cuBLASLt and NCCL come from the toolkit already under /usr/local/cuda (see ../README.md).
set -euo pipefail

packages=(
  build-essential cmake ninja-build ccache pkg-config
  libopenmpi-dev openmpi-bin
  libboost-dev libabsl-dev libhdf5-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libavformat-dev libavcodec-dev libswscale-dev libavutil-dev
  libturbojpeg0-dev libjpeg-dev libpng-dev
  libpcre2-dev nlohmann-json3-dev libopenblas-dev libopenblas0-openmp libcli11-dev
  libspdlog-dev libfmt-dev libyaml-cpp-dev libssl-dev
  slurm-wlm shellcheck  # the Slurm tests start a local single-node cluster; shellcheck checks the scripts
  python3-h5py  # the caption test reads --save-embeddings files with h5py
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q
  $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if [[ ! -x /usr/local/cuda/bin/nvcc ]] && ! command -v nvcc >/dev/null; then
  echo "install-deps: nvcc not found; plm always compiles its CUDA code and needs the CUDA toolkit (13.x) under /usr/local/cuda" >&2
  exit 1
fi
echo "install-deps: all packages present"
