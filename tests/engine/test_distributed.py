"""Distributed training under torchrun (gloo on CPU): K processes train as one.

The launches go through `genlab-engine train --nproc 2`, i.e. the real torchrun (--standalone,
localhost only). Each takes about 10 s on two cores, so each test launches at most twice."""
import json
import os
import shutil
import subprocess
import sys
import time

import pytest
import torch
import torch.distributed as tdist
import torch.multiprocessing as mp
import torch.nn as nn
from safetensors.torch import load_file

from engine.cli.main import main
from engine.runs.rundir import RunDir, send_control
from engine.families.pixelcnn.section import PixelCNNConfig
from engine.training import checkpoint as ck
from engine.training.control import SharedControl
from engine.training.distributed import SINGLE, Distributed
from engine.training.loop import Trainer, train
from tests.conftest import ROOT, tiny_config

pytestmark = pytest.mark.skipif(not tdist.is_available() or not tdist.is_gloo_available(),
                                reason="needs torch.distributed with gloo")


def launch(args: list[str], nproc: int = 2, **popen) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "engine", "train", "--nproc", str(nproc), "--no-stdin", *args],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)


def run_torchrun(args: list[str], nproc: int = 2, timeout: float = 120) -> tuple[int, list[dict], str]:
    p = launch(args, nproc)
    out, err = p.communicate(timeout=timeout)
    events = [json.loads(l) for l in out.splitlines() if l.startswith("{")]
    return p.returncode, events, err


def final_lines(stderr: str) -> dict[str, str]:
    """Each rank's last line: {"0": "finished at step 6; ...", "1": ...}."""
    out = {}
    for line in stderr.splitlines():
        rank = "0"
        if line.startswith("[rank "):
            rank, line = line[6:line.index("]")], line[line.index("]") + 2:]
        if line.startswith("genlab-engine: "):
            out[rank] = line[len("genlab-engine: "):]
    return out


def pixelcnn_config(**training):
    """PixelCNN's training step draws no random numbers: K processes can match one exactly."""
    return tiny_config(model={"family": "pixelcnn", **PixelCNNConfig.TINY["model"]}, data={"hflip": True},
                       training={"steps": 6, "log_every": 2, "checkpoint_every": 3, "warmup_steps": 2, **training},
                       sampling={"grid_size": 2})


def files_in(run) -> list[str]:
    return sorted(str(p.relative_to(run)) for p in run.rglob("*") if p.is_file())


def assert_weights_close(a: dict, b: dict, prefixes=("net.", "ema.")):
    keys = [k for k in a if k.startswith(prefixes)]
    assert keys and sorted(keys) == sorted(k for k in b if k.startswith(prefixes))
    for k in keys:
        torch.testing.assert_close(b[k], a[k], rtol=1e-5, atol=1e-6, msg=lambda m: f"{k}: {m}")


# ---- the equivalence with one process -----------------------------------------------------------------
def test_two_processes_train_as_one_with_the_same_global_batch(tmp_path):
    """2 ranks x 8 images == 1 process x 16 images (batch_size is the global batch): the same
    weights, and the logged loss (the all-reduced mean) is the one process's. Only float summation
    order differs (two half-batch gradients averaged vs one sum), ~1e-7 relative per step in float32;
    rtol 1e-5 leaves room for 6 Adam steps while any real difference (a wrong shard, an unaveraged
    gradient: the weights move by ~lr = 3e-3 per step) is orders of magnitude above it."""
    cfg = pixelcnn_config()
    cfg.save(tmp_path / "cfg.toml")
    rc, events, err = run_torchrun(["--config", str(tmp_path / "cfg.toml"), "--run-dir", str(tmp_path / "two")])
    assert rc == 0, err
    single = train(cfg, tmp_path / "one", emit=lambda e: None)
    assert single.state == "finished"
    two, one = RunDir(tmp_path / "two"), RunDir(tmp_path / "one")

    a, b = load_file(one.latest_checkpoint()), load_file(two.latest_checkpoint())
    assert_weights_close(a, b)
    init = Trainer(cfg, tmp_path / "init", emit=lambda e: None)
    init.setup()
    moved = max((a[f"net.{k}"] - v).abs().max().item() for k, v in init.family.networks.state_dict().items())
    assert moved > 1e-3  # the comparison is not between two untrained models

    rows_one = [json.loads(l) for l in one.metrics_path.read_text().splitlines()]
    rows_two = [json.loads(l) for l in two.metrics_path.read_text().splitlines()]
    assert [r["step"] for r in rows_two] == [r["step"] for r in rows_one] == [1, 2, 4, 6]  # each row once
    for r1, r2 in zip(rows_one, rows_two):
        assert r2["loss/bpd"] == pytest.approx(r1["loss/bpd"], rel=1e-5)
        assert r2["grad/pixelcnn"] == pytest.approx(r1["grad/pixelcnn"], rel=1e-5)

    # rank 0 alone wrote and spoke: the same files as one process (and, being trained through the
    # command line, one TensorBoard event file where live events are on), each event once
    from engine.runs.tensorboard_log import events_files, live_wanted
    events_file = [str(p.relative_to(two.path)) for p in events_files(two.path)]
    assert len(events_file) == (1 if live_wanted() else 0)
    assert files_in(two.path) == sorted(files_in(one.path) + events_file)
    kinds = [e["event"] for e in events]
    assert "warning" not in kinds and "error" not in kinds  # a warning would say the ranks' weights differed
    assert kinds.count("started") == 1 and kinds.count("checkpoint") == 2 and kinds.count("metrics") == 4
    assert next(e for e in events if e["event"] == "started")["world_size"] == 2
    status = json.loads(two.status_path.read_text())
    assert status["state"] == "finished" and status["world_size"] == 2
    meta = json.loads(two.latest_checkpoint().with_suffix(".json").read_text())
    assert meta["world_size"] == 2 and "rng.rank1.noise" in b and "rng.noise" in b
    assert final_lines(err) == {"0": f"finished at step 6; run directory {two.path}",
                                "1": f"finished at step 6; run directory {two.path}"}

    # resuming the 2-process run's step-3 checkpoint in one process keeps the global batch: the
    # same result as the uninterrupted one-process run
    resumed = shutil.copytree(two.path, tmp_path / "resumed")
    for p in RunDir(resumed).checkpoints_dir.glob("step_000006.*"):
        p.unlink()
    events = []
    res = train(cfg, resumed, resume=True, emit=events.append)
    assert res.state == "finished" and res.step == 6, res.message
    assert_weights_close(a, load_file(RunDir(resumed).latest_checkpoint()))
    note = next(e["message"] for e in events if e["event"] == "info" and "processes" in e["message"])
    assert "saved by 2 processes, this run has 1" in note and "training.batch_size = 16" in note


# ---- control and resume ---------------------------------------------------------------------------------
def ddpm_config(**training):
    return tiny_config(model={"dropout": 0.1}, data={"hflip": True},
                       training={"log_every": 2, "sample_every": 0, **training}, sampling={"grid_size": 2})


def test_a_stop_command_ends_every_rank_at_the_same_step(tmp_path):
    cfg = ddpm_config(steps=100_000, checkpoint_every=0)
    cfg.save(tmp_path / "cfg.toml")
    run = tmp_path / "run"
    p = launch(["--config", str(tmp_path / "cfg.toml"), "--run-dir", str(run)])
    try:
        for line in p.stdout:  # rank 0's events; wait until it trains
            ev = json.loads(line) if line.startswith("{") else {}
            if ev.get("event") == "metrics" and ev["step"] >= 4:
                send_control(run, "stop")
                break
        out, err = p.communicate(timeout=90)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, err
    lines = final_lines(err)
    assert lines["0"].startswith("stopped at step ") and lines["1"] == lines["0"], err
    step = int(lines["0"].split()[3].rstrip(";"))
    assert 4 <= step < 100_000
    rd = RunDir(run)
    assert [s for s, _ in rd.checkpoints()] == [step]  # one checkpoint, the stop's
    status = json.loads(rd.status_path.read_text())
    assert status["state"] == "stopped" and status["step"] == step and status["world_size"] == 2
    assert not rd.control_path.exists()  # the command was taken (by rank 0)


def test_a_time_budget_ends_every_rank_at_the_same_step(tmp_path):
    """Rank 0's clock decides; the others hear it at the next exchange of commands."""
    ddpm_config(steps=100_000, checkpoint_every=0, time_budget_s=2.0).save(tmp_path / "cfg.toml")
    run = tmp_path / "run"
    rc, events, err = run_torchrun(["--config", str(tmp_path / "cfg.toml"), "--run-dir", str(run)])
    assert rc == 0, err
    lines = final_lines(err)
    assert lines["0"].startswith("stopped at step ") and lines["1"] == lines["0"], err
    step = int(lines["0"].split()[3].rstrip(";"))
    assert 0 < step < 100_000
    rd = RunDir(run)
    assert [s for s, _ in rd.checkpoints()] == [step]
    status = json.loads(rd.status_path.read_text())
    assert status["state"] == "stopped" and status["message"] == f"time budget of 2 s reached at step {step}"


def test_a_resumed_two_process_run_continues_exactly(tmp_path):
    """Every rank's random streams (noise, dropout) and the batch order are restored: 4 steps, then
    a resume to 8, gives bit for bit what 8 uninterrupted steps give."""
    cfg = ddpm_config(steps=8, checkpoint_every=4)
    cfg.save(tmp_path / "cfg.toml")
    full = tmp_path / "full"
    rc, _, err = run_torchrun(["--config", str(tmp_path / "cfg.toml"), "--run-dir", str(full)])
    assert rc == 0, err
    part = shutil.copytree(full, tmp_path / "part")  # what a run stopped after step 4 leaves
    for p in (part / "checkpoints").glob("step_000008.*"):
        p.unlink()
    rc, events, err = run_torchrun(["--run-dir", str(part), "--resume"])
    assert rc == 0, err
    assert next(e for e in events if e["event"] == "started")["step"] == 4
    a = load_file(RunDir(full).latest_checkpoint())
    b = load_file(RunDir(part).latest_checkpoint())
    assert sorted(a) == sorted(b) and any(k.startswith("rng.rank1.") for k in a)
    for k in a:
        assert torch.equal(a[k], b[k]), f"{k} differs after the resume"
    steps = [json.loads(l)["step"] for l in RunDir(part).metrics_path.read_text().splitlines()]
    assert steps == [1, 2, 4, 6, 8]


# ---- refusals ---------------------------------------------------------------------------------------------
def test_a_refusal_on_rank_0_ends_every_rank_at_once(tmp_path):
    """Rank 0 alone looks at the run folder; when it refuses (here: another live process trains the
    run), the other ranks hear why instead of waiting for it in the next collective."""
    run = tmp_path / "run"
    rd = RunDir(run).create()
    tiny_config().save(rd.config_path)
    rd.write_status(state="running", step=5, pid=os.getpid(), total_steps=30)  # this test process: alive
    before = rd.status_path.read_text()
    rc, events, err = run_torchrun(["--run-dir", str(run), "--resume"], timeout=60)
    assert rc != 0
    lines = final_lines(err)
    busy = f"error: {run}: another process (pid {os.getpid()}) is training this run"
    assert lines["0"].startswith(busy) and lines["1"].startswith(f"error: rank 0 failed: {busy[7:]}"), err
    assert rd.status_path.read_text() == before  # the other process's record is left alone
    assert [e["event"] for e in events] == ["error"]


def test_a_global_batch_that_does_not_split_is_refused(tmp_path, capsys):
    cfg = tiny_config()  # batch_size 16
    cfg.save(tmp_path / "cfg.toml")
    # genlab-engine train --nproc 3: refused before torchrun starts
    assert main(["train", "--config", str(tmp_path / "cfg.toml"), "--run-dir", str(tmp_path / "run"),
                 "--nproc", "3"]) == 2
    err = capsys.readouterr().err
    assert "training.batch_size = 16 cannot be split over 3 processes" in err
    assert "set training.batch_size = 15 or 18, or run 2 processes" in err
    assert not (tmp_path / "run").exists()
    # torchrun started by hand: every rank refuses in setup, before touching the run folder
    res = Trainer(cfg, tmp_path / "run", emit=lambda e: None, dist=Distributed(rank=0, world_size=3)).run()
    assert res.state == "failed" and "training.batch_size = 16 cannot be split over 3 processes" in res.message
    assert not (tmp_path / "run").exists()
    assert main(["train", "--config", str(tmp_path / "cfg.toml"), "--nproc", "0"]) == 2
    assert "--nproc 0: the number of processes must be at least 1" in capsys.readouterr().err


def test_one_process_through_the_distributed_path_is_a_plain_run(tmp_path):
    """torchrun --nproc-per-node 1 (the GPU smoke test) takes every collective path with a world of
    one; averaging over one process changes no bit, so the result is the plain run's."""
    cfg = ddpm_config(steps=6, checkpoint_every=3)
    tdist.init_process_group("gloo", store=tdist.HashStore(), rank=0, world_size=1)
    try:
        events = []
        res = train(cfg, tmp_path / "dist", emit=events.append, dist=Distributed(0, 0, 1, enabled=True))
    finally:
        tdist.destroy_process_group()
    assert res.state == "finished", res.message
    assert not [e for e in events if e["event"] in ("warning", "error")]
    plain = train(cfg, tmp_path / "plain", emit=lambda e: None)
    a, b = load_file(plain.last_checkpoint), load_file(res.last_checkpoint)
    assert sorted(a) == sorted(b)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert json.loads(RunDir(tmp_path / "dist").status_path.read_text())["world_size"] == 1


# ---- the pieces, without processes ---------------------------------------------------------------------------
def test_shards_cover_the_global_batch_in_order():
    idx = torch.arange(12)
    parts = [Distributed(rank=r, world_size=3).shard(idx) for r in range(3)]
    assert torch.equal(torch.cat(parts), idx) and all(len(p) == 4 for p in parts)
    assert SINGLE.shard(idx) is idx and SINGLE.shard(None) is None


def test_a_single_process_polls_control_every_step(tmp_path):
    class Channel:
        def __init__(self):
            self.calls = []

        def poll(self, force_file=False):
            self.calls.append(force_file)
            return ["pause"] if len(self.calls) == 2 else []

    ch = Channel()
    shared = SharedControl(ch, SINGLE)
    assert [shared.poll(s) for s in range(3)] == [[], ["pause"], []]
    assert shared.poll(3, force=True) == [] and ch.calls == [False, False, False, True]


def test_strip_nproc_leaves_the_rest_of_the_command():
    from engine.cli.train import strip_nproc
    assert strip_nproc(["train", "--nproc", "2", "--steps", "5", "--nproc=4", "--run-dir", "x", "--np", "3",
                        "--no-stdin"]) == ["train", "--steps", "5", "--run-dir", "x", "--no-stdin"]


# ---- the collectives, in 3 real gloo processes (3: averages that are not exact in binary) -------------------
def _collectives(rank: int, world: int, store: str) -> None:
    tdist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    d = Distributed(rank, rank, world, enabled=True)
    try:
        mean = d.all_reduce_mean({"b": torch.tensor(float(rank)), "a": torch.tensor(3.0 * rank)})
        assert list(mean) == ["b", "a"] and mean["b"].item() == 1.0 and mean["a"].item() == 3.0
        assert d.any(torch.tensor(rank == world - 1)).item() and not d.any(torch.tensor(False)).item()

        p, q = nn.Parameter(torch.zeros(3)), nn.Parameter(torch.zeros(2, 2))
        p.grad, q.grad = torch.full((3,), rank + 1.0), torch.full((2, 2), 10.0 * rank)
        d.average_gradients([p, q])
        assert torch.equal(p.grad, torch.full((3,), 2.0)) and torch.equal(q.grad, torch.full((2, 2), 10.0))

        m = nn.Module()
        m.register_buffer("const", torch.tensor([0.1, 1 / 3, 1e-8, 12345.678]))
        m.register_buffer("stat", torch.tensor([float(rank)]))
        m.register_buffer("count", torch.tensor(rank))
        const = m.const.clone()
        d.average_buffers(m)
        assert torch.equal(m.const, const)  # equal everywhere: bit for bit (float64 mean)
        assert m.stat.item() == 1.0 and m.count.item() == rank  # integers are left alone

        torch.manual_seed(rank)
        lin = nn.Linear(3, 2)
        d.broadcast_state(lin)
        torch.manual_seed(0)
        assert torch.equal(lin.weight, nn.Linear(3, 2).weight)

        many = ["pause", "resume"] * 5 + ["stop"] if rank == 0 else ["stop"]  # only rank 0's count
        assert d.broadcast_commands(many, next_step=7 if rank == 0 else 0) == (["pause", "resume"] * 4, 7)
        assert d.broadcast_commands([], next_step=9) == (["pause", "resume", "stop"], 9)

        assert d.broadcast_bytes(b"hello" if rank == 0 else None) == b"hello"
        assert d.broadcast_bytes(None) == b""
        assert d.all_gather_bytes(b"x" * rank) == [b"x" * r for r in range(world)]
        same, differs = torch.tensor([1.5, 2.0]), torch.tensor([float(rank == 2)])
        assert d.mismatched({"same": same, "differs": differs}) == ["differs"]
        assert d.first_error(None) is None
        assert d.first_error("bad data" if rank >= 1 else None) == (1, "bad data")
    finally:
        tdist.destroy_process_group()


def test_collectives_in_three_processes(tmp_path):
    t0 = time.perf_counter()
    mp.spawn(_collectives, args=(3, str(tmp_path / "store")), nprocs=3, join=True)
    assert time.perf_counter() - t0 < 60


def test_a_checkpoint_travels_as_bytes_unchanged(tmp_path):
    """How rank 0 hands the checkpoint it resumes from to the other ranks (no pickle)."""
    meta = {"step": 3, "config": tiny_config().to_dict(), "data": {"channels": 1, "resolution": 8, "class_names": []},
            "batch_order": {"epoch": 0, "pos": 48}, "world_size": 2}
    path = ck.save_checkpoint(tmp_path / "step_000003", {"net.w": torch.randn(3, 4), "rng.noise": torch.arange(5,
                              dtype=torch.uint8), "optim.x.0.step": torch.tensor(3.0)}, meta)
    c = ck.load_checkpoint(path)
    back = ck.from_bytes(ck.to_bytes(c))
    assert back.meta == c.meta and back.path == c.path and sorted(back.tensors) == sorted(c.tensors)
    assert all(torch.equal(back.tensors[k], v) for k, v in c.tensors.items())


# ---- the VQ codebook's state, kept equal inside the step -------------------------------------------------
VQ_STEPS = 6


def _vq_batches() -> torch.Tensor:
    """VQ_STEPS global batches (8, 4, 2, 2) of encoder maps near 3 points: most of the 16 codes
    go unused and are restarted."""
    g = torch.Generator().manual_seed(5)
    centres = torch.randn(3, 4, generator=g) * 3
    pick = torch.randint(0, 3, (VQ_STEPS, 8, 2, 2), generator=g)
    return (centres[pick] + 0.1 * torch.randn(VQ_STEPS, 8, 2, 2, 4, generator=g)).permute(0, 1, 4, 2, 3)


def _vq():
    from engine.families.vqvae.quantizers import VectorQuantizer
    torch.manual_seed(0)   # the same codebook on every rank, as broadcast_state makes it
    return VectorQuantizer(4, 16, decay=0.9, dead_after=2, pool_size=32)


BOOKKEEPING = ("usage.step", "usage.last_used", "restarted_at", "cluster_size")


def _vq_steps(vq, shares, generator, collectives=None) -> list[dict]:
    """Update on each batch share; per step: the restart count and the bookkeeping buffers."""
    out = []
    for z in shares:
        r = int(vq(z, update=True, generator=generator, collectives=collectives).logs["codebook/restarts"])
        bufs = dict(vq.named_buffers())
        out.append({"restarts": r, **{k: bufs[k].clone() for k in BOOKKEEPING}})
    return out


def _vq_ranks(rank: int, world: int, store: str, out: str) -> None:
    """Each rank updates from its half of every global batch with its own generator (as the loop
    seeds them), through the collectives; its buffers and steps go to out/rank{r}.pt."""
    tdist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world)
    d = Distributed(rank, rank, world, enabled=True)
    try:
        vq, n = _vq(), 8 // world
        steps = _vq_steps(vq, [z[rank * n:(rank + 1) * n] for z in _vq_batches()],
                          torch.Generator().manual_seed(1 + rank), d)
        torch.save({"buffers": dict(vq.named_buffers()), "steps": steps}, f"{out}/rank{rank}.pt")
    finally:
        tdist.destroy_process_group()


def test_two_ranks_keep_identical_codebooks_through_dead_code_restarts(tmp_path):
    """Counts, sums and used codes are summed over ranks and rank 0's random draws (pool rows,
    restart vectors) are broadcast, so every buffer of the codebook (codes, EMA statistics, usage
    steps, restart steps, pool) is bit for bit the same on both ranks while codes are restarted.
    Against one process with the global batch: the same statistics decide the same restarts (which
    codes, when) and the counts agree, up to the first restart; the restart vectors then differ (the
    pool holds rank 0's share of the batch, not a subset of all of it: quantizers.py's docstring),
    so later steps are compared between the ranks only."""
    mp.spawn(_vq_ranks, args=(2, str(tmp_path / "store"), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    assert sorted(r0["buffers"]) == sorted(r1["buffers"])
    for k, v in r0["buffers"].items():
        assert torch.equal(v, r1["buffers"][k]), k
    restarts = [s["restarts"] for s in r0["steps"]]
    assert sum(restarts) > 0 and restarts == [s["restarts"] for s in r1["steps"]]

    one = _vq_steps(_vq(), _vq_batches(), torch.Generator().manual_seed(1))
    first = next(i for i, r in enumerate(restarts) if r)
    for i in range(first + 1):
        assert one[i]["restarts"] == restarts[i], i
        for k in BOOKKEEPING[:3]:
            assert torch.equal(one[i][k], r0["steps"][i][k]), (i, k)
        torch.testing.assert_close(r0["steps"][i]["cluster_size"], one[i]["cluster_size"], rtol=1e-6, atol=1e-6)


def test_a_two_process_vqvae_run_with_restarts_keeps_its_ranks_codebooks_equal(tmp_path):
    """Through torchrun: the tiny vqvae (dead codes restarted after one idle step) trains on two
    ranks, and the check at each checkpoint, which sums integer buffers too (usage and restart
    steps), finds the ranks equal: no warning."""
    from tests.conftest import tiny_family_config
    cfg = tiny_family_config("vqvae", steps=4, checkpoint_every=2, log_every=1)
    cfg.save(tmp_path / "cfg.toml")
    rc, events, err = run_torchrun(["--config", str(tmp_path / "cfg.toml"), "--run-dir", str(tmp_path / "two")])
    assert rc == 0, err
    kinds = [e["event"] for e in events]
    assert "warning" not in kinds and "error" not in kinds, [e for e in events if e["event"] == "warning"]
    assert kinds.count("checkpoint") == 2
    rows = [json.loads(l) for l in RunDir(tmp_path / "two").metrics_path.read_text().splitlines()]
    assert sum(r.get("codebook/restarts", 0) for r in rows) > 0
