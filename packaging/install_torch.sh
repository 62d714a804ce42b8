#!/usr/bin/env bash
# Install PyTorch into a virtual environment: `install_torch.sh PIP [SPEC...]`.
# With a SPEC (make TORCH="…"), that is installed as given. Without one, on Linux with no NVIDIA
# GPU, the CPU build comes from PyTorch's own CPU wheel index (the default package index serves
# the multi-GB CUDA build for a plain `torch==X`); where that index cannot be reached, the plain
# install follows, and this says so. Elsewhere (macOS, Windows, an NVIDIA GPU) the plain install.
set -euo pipefail
PIP="$1"; shift
VERSION="torch==2.13.0"
CPU_INDEX="https://download.pytorch.org/whl/cpu"
if [ "$#" -gt 0 ]; then
    exec "$PIP" install --quiet "$@"
fi
if [ "$(uname -s)" = "Linux" ] && ! command -v nvidia-smi >/dev/null 2>&1; then
    if "$PIP" install --quiet --timeout 20 --retries 1 "$VERSION" --index-url "$CPU_INDEX"; then
        exit 0
    fi
    echo "note: PyTorch's CPU wheel index ($CPU_INDEX) could not be reached; installing $VERSION from the" \
         "default index instead (on Linux that may be the large CUDA build)." >&2
fi
exec "$PIP" install --quiet "$VERSION"
