import os
import sys
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import pytest  # noqa: E402

from engine.core.config import RunConfig  # noqa: E402


def tiny_config(**sections) -> RunConfig:
    """A model small enough to train in seconds on 8x8 digits."""
    cfg = RunConfig(name="tiny").replace(
        data={"dataset": "digits", "resolution": 8},
        model={"base_channels": 8, "channel_mults": [1, 2], "attention_resolutions": [4], "timesteps": 50,
               "attention_heads": 2},
        training={"steps": 30, "batch_size": 16, "lr": 3e-3, "warmup_steps": 5, "log_every": 5,
                  "sample_every": 0, "checkpoint_every": 10, "device": "cpu", "ema_decay": 0.9},
        sampling={"steps": 5, "grid_size": 10},
        metrics={"domain_steps": 20},
    )
    return cfg.replace(**sections) if sections else cfg


@pytest.fixture
def tiny_cfg():
    return tiny_config()


@pytest.fixture(autouse=True)
def isolated_caches(tmp_path_factory, monkeypatch):
    """Tests never read or write the user's caches (domain extractors, torch hub weights)."""
    root = tmp_path_factory.getbasetemp()
    monkeypatch.setenv("GENLAB_CACHE", str(root / "genlab-cache"))
    monkeypatch.setenv("TORCH_HOME", str(root / "torch-home"))
    monkeypatch.delenv("GENLAB_INCEPTION", raising=False)
