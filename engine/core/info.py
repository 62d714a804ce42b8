"""What this machine's PyTorch offers, as one JSON line on stdout:

    {"torch": "2.3.1+cu121", "cuda": true, "device_name": "NVIDIA …", "mps": false, ...}

The GUI never imports torch, so its About dialog runs this in a process of its own
(`python -c "from engine.core.info import main; main()"`) and reads the line back. torch is imported
inside main(), so importing this module stays cheap."""
from __future__ import annotations

import json
import platform
import sys


def probe() -> dict:
    """The facts as a dict; {"torch": None, "error": ...} when torch cannot be imported."""
    try:
        import torch
    except Exception as e:  # noqa: BLE001 - any import failure (missing, broken DLLs) is reported, not raised
        return {"torch": None, "cuda": False, "device_name": "", "mps": False,
                "error": f"{type(e).__name__}: {e}"}
    cuda = bool(torch.cuda.is_available())
    mps_backend = getattr(torch.backends, "mps", None)
    mps = bool(mps_backend is not None and mps_backend.is_available())
    if cuda:
        device_name = torch.cuda.get_device_name(0)
    elif mps:
        device_name = "Apple MPS"
    else:
        device_name = platform.processor() or platform.machine() or "CPU"
    return {
        "torch": torch.__version__,
        "cuda": cuda,
        "device_name": device_name,
        "mps": mps,
        "cuda_version": torch.version.cuda,          # the CUDA the build targets (None: a CPU build)
        "cuda_devices": torch.cuda.device_count() if cuda else 0,
        "threads": torch.get_num_threads(),
        "python": platform.python_version(),
    }


def main() -> int:
    sys.stdout.write(json.dumps(probe()) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
