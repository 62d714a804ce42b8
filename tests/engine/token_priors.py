"""Helpers of the token-prior tests (test_maskgit.py, test_arprior.py): a tiny multi-scale (msrq)
tokenizer, which a prior over one token grid must refuse, and a prior's run on a given parent."""
from __future__ import annotations

from pathlib import Path

from engine.training.loop import train
from tests.conftest import tiny_family_config


def msrq_tokenizer(root: Path) -> Path:
    """A two-step vqvae checkpoint with the multi-scale residual quantizer."""
    res = train(tiny_family_config("vqvae").replace(model={"quantizer": "msrq"}), root / "msrq",
                emit=lambda e: None)
    assert res.state == "finished", res.message
    return res.last_checkpoint


def run_on_parent(family: str, parent: Path, root: Path):
    """The training result of `family`'s tiny config on `parent`."""
    return train(tiny_family_config(family).replace(model={"parent": str(parent)}), root / f"{family}-child",
                 emit=lambda e: None)


def assert_refused_in_one_line(res, *words: str) -> None:
    assert res.state == "failed", res.state
    assert "\n" not in res.message, res.message
    for w in words:
        assert w in res.message, (w, res.message)
