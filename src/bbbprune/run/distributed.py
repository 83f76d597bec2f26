"""Data-parallel training across processes, torchrun-compatible (PyTorch DDP).

``torchrun --nproc_per_node=G -m bbbprune.cli train ...`` starts G processes with RANK,
WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT set. Each process builds the same model from
the same seed and draws the same shuffling order; from every global minibatch of
``train.batch_size`` examples rank r takes examples r, r+G, r+2G, ... (its shard).
DistributedDataParallel averages the gradients over ranks, which equals the gradient of the
global minibatch's mean loss when the shards are equally large, so a G-process run follows the
single-process run with the same global batch (exactly for deterministic methods, up to float
summation order; methods that draw per-example noise draw different, equally distributed noise).
Epoch sums (loss, correct predictions) are all-reduced; validation and test metrics are computed
on the whole split by every rank (identical models give identical numbers); only rank 0 writes
checkpoints, metrics and records.

``train.distributed``: ``auto`` (DDP when WORLD_SIZE > 1), ``true`` (require torchrun),
``false`` (refuse to run under torchrun rather than let every rank write the same files).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from ..errors import UserError, check_choice

MODES = ("auto", "true", "false")


@dataclass
class Shard:
    """This process's share of each minibatch; the single-process Shard is rank 0 of 1."""

    rank: int = 0
    world_size: int = 1
    device: torch.device | None = None

    @property
    def is_writer(self) -> bool:
        """Only rank 0 writes files."""
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    def batch(self, idx: torch.Tensor) -> torch.Tensor:
        """Examples r, r+G, ... of the global minibatch ``idx``."""
        return idx[self.rank :: self.world_size] if self.enabled else idx

    def sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum ``tensor`` over ranks, in place."""
        if self.enabled:
            dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        return tensor

    def wrap(self, model: nn.Module) -> nn.Module:
        """The model to train: wrapped in DistributedDataParallel when there are several ranks
        (rank 0's initial weights are broadcast; gradients are averaged after backward)."""
        if not self.enabled:
            return model
        ids = (
            [self.device.index] if self.device is not None and self.device.type == "cuda" else None
        )
        return nn.parallel.DistributedDataParallel(model, device_ids=ids)

    def close(self) -> None:
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()


SINGLE = Shard()


def is_main_process() -> bool:
    """True unless this is a torchrun rank other than 0."""
    return int(os.environ.get("RANK", "0")) == 0


def world_size_from_env() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def setup(mode, device: torch.device) -> Shard:
    """The Shard of this process: joins the process group torchrun describes in the environment
    (gloo on CPU, NCCL on CUDA, one GPU per local rank), or the single-process Shard."""
    mode = str(mode).lower()
    if mode not in MODES:
        raise UserError(f"unknown train.distributed {mode!r}; valid: {', '.join(MODES)}")
    world = world_size_from_env()
    if world <= 1:
        if mode == "true":
            raise UserError(
                "train.distributed=true but WORLD_SIZE is not set: start the run with "
                "torchrun --nproc_per_node=N -m bbbprune.cli train ..."
            )
        return Shard(device=device)
    if mode == "false":
        raise UserError(
            f"started by torchrun (WORLD_SIZE={world}) but train.distributed=false; "
            "every rank would train and write the same run"
        )
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Shard(rank=rank, world_size=world, device=device)


def resolve_device(name: str) -> torch.device:
    check_choice("device", name, ("auto", "cpu", "cuda"))
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("device=cuda but no CUDA device is available; use device=auto or cpu")
    return torch.device(name)
