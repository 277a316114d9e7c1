"""torch.distributed set-up: the same entry points run alone or under ``torchrun`` (DDP).

gloo on CPU, nccl on GPU. Every rank sees the same seeded batch order and takes its own
slice of each batch, so the global batch size and the step count do not depend on the
number of processes; only rank 0 writes files.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class Context:
    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    def shard(self, indices: torch.Tensor) -> torch.Tensor:
        """This rank's share of one global batch."""
        return indices[self.rank::self.world]

    def wrap(self, module: nn.Module) -> nn.Module:
        """DDP around the loss module; parameters of modalities a step skips are allowed."""
        if not self.distributed:
            return module
        ids = [self.device.index] if self.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(module, device_ids=ids, find_unused_parameters=True)

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()

    def mean(self, value: float) -> float:
        """The mean of a scalar over ranks (for logs)."""
        if not self.distributed:
            return value
        t = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return float(t.item()) / self.world


_CONTEXT: Context | None = None


def setup(device: str | None = None) -> Context:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1); idempotent."""
    global _CONTEXT
    if _CONTEXT is not None:
        return _CONTEXT
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda":
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    _CONTEXT = Context(rank, world, dev)
    return _CONTEXT
