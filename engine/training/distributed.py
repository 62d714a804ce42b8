"""Data-parallel training under torchrun: the process group and the few collectives the loop uses.

`torchrun --nproc-per-node K -m engine train ...` starts K copies of the trainer with RANK,
LOCAL_RANK and WORLD_SIZE in their environment; `init_from_env()` joins them into one process
group. Without those variables nothing here talks to anyone: `SINGLE` is a world of one whose
collectives return their input, so the loop has one code path.

How the ranks stay one training run:

* `training.batch_size` is the global batch. Every rank draws the same seeded BatchOrder and
  takes its contiguous slice of each global batch (`shard`), so the data a step sees is the same
  whatever the number of processes, and a checkpoint's batch order (two integers) resumes on any
  number of them.
* Gradients are averaged explicitly after backward (`average_gradients`, bucketed all-reduce)
  rather than by wrapping networks in DistributedDataParallel: a family optimises through
  StepContext.optimize, a GAN twice per step with one network frozen, and an explicit average
  there works for every family and every optimizer without DDP's unused-parameter and
  double-forward rules. Parameters start equal (broadcast from rank 0) and every rank applies the
  same averaged gradient, so they stay equal.
* Floating-point buffers (running statistics, a GAN's w average or ADA counters) are averaged
  after each step in float64, which keeps constants exact (`average_buffers`).
* State a network updates from the batch itself (a VQ codebook's EMA statistics, its usage steps
  and restarts) is kept equal inside the step: StepContext.collectives is this object, and the
  module sums its statistics over ranks (`sum_`) and takes rank 0's random choices (`broadcast_`),
  so every rank makes the same update; the average after the step then changes nothing.
* Only rank 0 reads control commands; `broadcast_commands` hands them to every rank at a step
  all ranks agree on, so pause/stop/sample-now/save-now act at the same step everywhere.

Control messages, errors and RNG states travel as CPU tensors (gloo); on CUDA the process group is
"cpu:gloo,cuda:nccl", so gradients go through NCCL and small messages never stall the GPU.
"""
from __future__ import annotations

import os
from datetime import timedelta
from typing import Iterable

import torch
import torch.distributed as dist
import torch.nn as nn

from engine.core.config import ConfigError
from engine.core.protocol import COMMANDS as CONTROL_COMMANDS

BUCKET_BYTES = 32 * 2 ** 20   # gradients are all-reduced in flat buckets of at most this size
MAX_COMMANDS = 8              # commands carried per broadcast; more wait for the next one
TIME_BUDGET = "time-budget"   # rank 0's own decision (training.time_budget_s is spent), shared like a command
COMMANDS = CONTROL_COMMANDS + (TIME_BUDGET,)
TIMEOUT_ENV = "GENLAB_DIST_TIMEOUT_S"
DEFAULT_TIMEOUT_S = 1800      # rank 0 alone samples grids and scores metrics while the others wait


class Distributed:
    """This process's place in the run: rank, local rank (its GPU on this machine), world size.
    `enabled` when a process group is up (under torchrun, even with one process)."""

    def __init__(self, rank: int = 0, local_rank: int = 0, world_size: int = 1, enabled: bool = False):
        self.rank, self.local_rank, self.world_size, self.enabled = rank, local_rank, world_size, enabled
        self._pending: list[str] = []   # rank 0: commands that did not fit in the last broadcast

    def __repr__(self) -> str:
        return f"Distributed(rank={self.rank}, local_rank={self.local_rank}, world_size={self.world_size})"

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # ---- setup ------------------------------------------------------------------------------------
    def check_batch(self, batch_size: int) -> None:
        """training.batch_size is the global batch: it must split evenly over the processes."""
        k = self.world_size
        if batch_size % k:
            lower, upper = batch_size - batch_size % k, batch_size + k - batch_size % k
            sizes = " or ".join(str(n) for n in (lower, upper) if n)
            fits = next(n for n in range(k - 1, 0, -1) if batch_size % n == 0)
            raise ConfigError(
                f"training.batch_size = {batch_size} cannot be split over {k} processes: it is the global batch "
                f"(images per step over all processes) and must be a multiple of the number of processes; "
                f"set training.batch_size = {sizes}, or run {fits} process{'es' if fits > 1 else ''}")

    def local_device(self, device: torch.device) -> torch.device:
        """A CUDA device becomes this process's GPU (cuda:LOCAL_RANK), made current for NCCL."""
        if not self.enabled or device.type != "cuda":
            return device
        count = torch.cuda.device_count()
        if self.local_rank >= count:
            raise ConfigError(f"process {self.rank} has LOCAL_RANK {self.local_rank} but this machine has {count} "
                              f"CUDA GPU{'s' if count != 1 else ''}; start at most {count} processes per machine "
                              f"(torchrun --nproc-per-node {count})")
        device = torch.device("cuda", self.local_rank)
        torch.cuda.set_device(device)
        return device

    def shard(self, t: torch.Tensor | None) -> torch.Tensor | None:
        """This rank's contiguous slice of a global batch (indices, flips, ...)."""
        if t is None or self.world_size == 1:
            return t
        n = len(t) // self.world_size
        return t[self.rank * n:(self.rank + 1) * n]

    # ---- collectives (every rank must call them, in the same order) ----------------------------------
    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def all_reduce_mean(self, values: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The mean over ranks of each scalar (every rank passes the same keys)."""
        if not self.enabled or not values:
            return values
        keys = sorted(values)
        flat = torch.stack([values[k].detach().reshape(()).to(torch.float64) for k in keys])
        dist.all_reduce(flat)
        flat /= self.world_size
        mean = {k: flat[i] for i, k in enumerate(keys)}
        return {k: mean[k].to(v.dtype) for k, v in values.items()}

    @torch.no_grad()
    def sum_(self, t: torch.Tensor) -> torch.Tensor:
        """t summed over ranks, in place (counts and sums of a codebook's statistics)."""
        if self.enabled:
            dist.all_reduce(t)
        return t

    @torch.no_grad()
    def broadcast_(self, t: torch.Tensor) -> torch.Tensor:
        """Rank 0's t on every rank, in place (a random choice every rank must make alike)."""
        if self.enabled:
            dist.broadcast(t, 0)
        return t

    def any(self, flag: torch.Tensor) -> torch.Tensor:
        """True on every rank when it is true on any (e.g. "a loss was NaN")."""
        if not self.enabled:
            return flag
        f = flag.detach().to(torch.float32).reshape(1)
        dist.all_reduce(f, op=dist.ReduceOp.MAX)
        return f[0] > 0

    @torch.no_grad()
    def average_gradients(self, params: Iterable[torch.Tensor]) -> None:
        """Replace each parameter's .grad by its mean over ranks. Every rank passes the same
        parameters (those with a gradient) in the same order."""
        if not self.enabled:
            return
        grads = [p.grad for p in params if p.grad is not None]
        for bucket in _buckets(grads, BUCKET_BYTES):
            flat = torch._utils._flatten_dense_tensors(bucket)
            dist.all_reduce(flat)
            flat /= self.world_size
            for g, avg in zip(bucket, torch._utils._unflatten_dense_tensors(flat, bucket)):
                g.copy_(avg)

    @torch.no_grad()
    def average_buffers(self, module: nn.Module) -> None:
        """Average the floating-point buffers over ranks, in float64 so that a buffer equal on every
        rank comes back bit for bit (a constant table, a mask)."""
        if not self.enabled:
            return
        bufs = [b for b in module.buffers() if b.is_floating_point()]
        for bucket in _buckets(bufs, BUCKET_BYTES):
            flat = torch.cat([b.reshape(-1).to(torch.float64) for b in bucket])
            dist.all_reduce(flat)
            flat /= self.world_size
            offset = 0
            for b in bucket:
                b.copy_(flat[offset:offset + b.numel()].view_as(b))
                offset += b.numel()

    @torch.no_grad()
    def broadcast_state(self, *modules: nn.Module | None) -> None:
        """Make every rank's parameters and buffers equal to rank 0's."""
        if not self.enabled:
            return
        tensors = [t for m in modules if m is not None for t in (*m.parameters(), *m.buffers())]
        for bucket in _buckets(tensors, BUCKET_BYTES):
            flat = torch._utils._flatten_dense_tensors([t.data for t in bucket])
            dist.broadcast(flat, src=0)
            for t, v in zip(bucket, torch._utils._unflatten_dense_tensors(flat, bucket)):
                t.data.copy_(v)

    def mismatched(self, values: dict[str, torch.Tensor]) -> list[str]:
        """The keys whose value (a tensor of a few numbers, the same keys on every rank) differs on
        some rank from rank 0's: a check that the ranks hold the same model."""
        if not self.enabled or self.world_size == 1 or not values:
            return []
        keys = list(values)
        mine = torch.cat([values[k].detach().reshape(-1).to("cpu", torch.float64) for k in keys])
        every = [torch.empty_like(mine) for _ in range(self.world_size)]
        dist.all_gather(every, mine)
        sizes = [values[k].numel() for k in keys]
        ref = every[0]
        differ = torch.stack([(e != ref) & ~(e.isnan() & ref.isnan()) for e in every[1:]]).any(0)
        return [k for k, bad in zip(keys, differ.split(sizes)) if bad.any()]

    def broadcast_commands(self, commands: list[str], next_step: int = 0) -> tuple[list[str], int]:
        """Rank 0's control commands (and the step of the next broadcast, which rank 0 chooses)
        handed to every rank: (commands, next_step) everywhere. One small CPU collective."""
        if not self.enabled:
            return list(commands), next_step
        msg = torch.zeros(2 + MAX_COMMANDS, dtype=torch.int64)
        if self.is_main:
            self._pending += [c for c in commands if c in COMMANDS]
            now, self._pending = self._pending[:MAX_COMMANDS], self._pending[MAX_COMMANDS:]
            msg[0], msg[1] = next_step, len(now)
            for i, c in enumerate(now):
                msg[2 + i] = COMMANDS.index(c)
        dist.broadcast(msg, src=0)
        values = msg.tolist()
        return [COMMANDS[i] for i in values[2:2 + values[1]]], values[0]

    def broadcast_bytes(self, data: bytes | None) -> bytes:
        """Rank 0's bytes on every rank (others pass None)."""
        if not self.enabled:
            return data or b""
        size = torch.tensor([len(data) if self.is_main and data else 0], dtype=torch.int64)
        dist.broadcast(size, src=0)
        n = int(size.item())
        if not n:
            return b""
        buf = (torch.frombuffer(bytearray(data), dtype=torch.uint8) if self.is_main
               else torch.empty(n, dtype=torch.uint8))
        dist.broadcast(buf, src=0)
        return bytes(buf.numpy()) if not self.is_main else data

    def all_gather_bytes(self, data: bytes) -> list[bytes]:
        """Every rank's bytes, in rank order, on every rank."""
        if not self.enabled:
            return [data]
        size = torch.tensor([len(data)], dtype=torch.int64)
        sizes = [torch.zeros(1, dtype=torch.int64) for _ in range(self.world_size)]
        dist.all_gather(sizes, size)
        longest = max(int(s.item()) for s in sizes)
        if not longest:
            return [b""] * self.world_size
        buf = torch.zeros(longest, dtype=torch.uint8)
        if data:
            buf[:len(data)] = torch.frombuffer(bytearray(data), dtype=torch.uint8)
        out = [torch.empty(longest, dtype=torch.uint8) for _ in range(self.world_size)]
        dist.all_gather(out, buf)
        return [bytes(o[:int(s.item())].numpy()) for o, s in zip(out, sizes)]

    def first_error(self, message: str | None) -> tuple[int, str] | None:
        """(rank, message) of the lowest rank that passed a message, the same on every rank; None
        when every rank passed None. The agreement after work that may fail on some ranks only."""
        if not self.enabled:
            return None if message is None else (self.rank, message)
        blob = b"" if message is None else b"!" + message.encode("utf-8", "replace")[:4000]
        for rank, got in enumerate(self.all_gather_bytes(blob)):
            if got:
                return rank, got[1:].decode("utf-8", "replace")
        return None


def _buckets(tensors: list[torch.Tensor], limit: int) -> Iterable[list[torch.Tensor]]:
    """Consecutive groups of tensors of one dtype and device, each at most `limit` bytes (a
    larger tensor goes alone). The grouping depends only on the tensors' shapes: equal on all ranks."""
    bucket: list[torch.Tensor] = []
    size = 0
    for t in tensors:
        nbytes = t.numel() * t.element_size()
        if bucket and (t.dtype != bucket[0].dtype or t.device != bucket[0].device or size + nbytes > limit):
            yield bucket
            bucket, size = [], 0
        bucket.append(t)
        size += nbytes
    if bucket:
        yield bucket


def is_peer_lost(e: BaseException) -> bool:
    """Whether an error came out of a collective (a peer crashed, was killed, or timed out)."""
    if isinstance(e, getattr(dist, "DistError", ())):
        return True
    tb = e.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return tb is not None and "distributed_c10d" in tb.tb_frame.f_code.co_filename


def short_error(e: BaseException) -> str:
    """A collective's error without gloo's source path: "Connection closed by peer [127.0.0.1]:4711"."""
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    if text.startswith("[") and "] " in text:
        text = text[text.index("] ") + 2:]
    return text.split(". ")[0]


SINGLE = Distributed()
_current = SINGLE


def env_world() -> tuple[int, int, int] | None:
    """(rank, local_rank, world_size) from torchrun's environment, or None when not under it."""
    if "WORLD_SIZE" not in os.environ:
        return None
    try:
        world = int(os.environ["WORLD_SIZE"])
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError:
        raise ConfigError(f"WORLD_SIZE / RANK / LOCAL_RANK must be whole numbers (got WORLD_SIZE="
                          f"{os.environ.get('WORLD_SIZE')!r}, RANK={os.environ.get('RANK')!r}, "
                          f"LOCAL_RANK={os.environ.get('LOCAL_RANK')!r})") from None
    if world < 1 or not 0 <= rank < world:
        raise ConfigError(f"RANK {rank} is not within WORLD_SIZE {world}")
    return rank, local, world


def backend() -> str:
    """gloo for CPU tensors; NCCL for CUDA tensors where it exists. GENLAB_DIST_BACKEND overrides."""
    chosen = os.environ.get("GENLAB_DIST_BACKEND")
    if chosen:
        return chosen
    if torch.cuda.is_available() and dist.is_nccl_available():
        return "cpu:gloo,cuda:nccl"
    return "gloo"


def init_from_env() -> Distributed:
    """Join torchrun's process group (once); SINGLE when this process was not started by torchrun.
    Uses MASTER_ADDR / MASTER_PORT, set by torchrun (--standalone or --rdzv-endpoint)."""
    global _current
    if _current.enabled:
        return _current
    found = env_world()
    if found is None:
        return SINGLE
    rank, local, world = found
    if not dist.is_available():
        raise ConfigError("this PyTorch build has no torch.distributed; run without torchrun")
    timeout = timedelta(seconds=float(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT_S)))
    if not dist.is_initialized():
        dist.init_process_group(backend=backend(), rank=rank, world_size=world, timeout=timeout)
    _current = Distributed(rank, local, world, enabled=True)
    return _current


def current() -> Distributed:
    """The process group this process joined, or SINGLE."""
    return _current


def shutdown() -> None:
    global _current
    if _current.enabled and dist.is_initialized():
        try:
            dist.destroy_process_group()
        except Exception:  # a peer already gone: nothing left to tidy
            pass
    _current = SINGLE
