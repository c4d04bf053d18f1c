"""Data-parallel training under torchrun: which process this is, and the few collectives we need.

    torchrun --nproc_per_node K -m rnnkit train --batch-size B ...

B is the global batch: rank r takes streams [r*B/K, (r+1)*B/K) of the same layout a single
process would use, so K processes compute the gradient of the same global mean loss (DDP
averages the ranks' gradients). Only rank 0 writes checkpoints, metrics and logs. Backend: nccl
on CUDA, gloo on the CPU.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from .errors import ConfigError


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.size > 1

    def rows(self, batch_size: int) -> slice:
        """This rank's streams of a global batch."""
        if batch_size % self.size:
            raise ConfigError(f"--batch-size {batch_size} must divide evenly among {self.size} processes")
        share = batch_size // self.size
        return slice(self.rank * share, (self.rank + 1) * share)


def world_from_env() -> World:
    """The torchrun environment (RANK, WORLD_SIZE, LOCAL_RANK), or a world of one."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        return World()
    return World(int(os.environ["RANK"]), size, int(os.environ.get("LOCAL_RANK", "0")))


def start(world: World, device: torch.device) -> torch.device:
    """Join the process group; on CUDA each process takes the GPU of its local rank."""
    if not world.active:
        return device
    if device.type == "cuda":
        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def stop(world: World) -> None:
    if world.active and dist.is_initialized():
        dist.destroy_process_group()


def mean(value: torch.Tensor, world: World) -> torch.Tensor:
    """The mean of a tensor over all ranks (the value itself in a world of one)."""
    if not world.active:
        return value
    total = value.detach().clone()
    dist.all_reduce(total)
    return total / world.size


def gather_rows(value: torch.Tensor, world: World, dim: int = 1) -> torch.Tensor:
    """Concatenate every rank's slice along `dim` (the batch dimension of a hidden state)."""
    if not world.active:
        return value
    parts = [torch.empty_like(value) for _ in range(world.size)]
    dist.all_gather(parts, value.contiguous())
    return torch.cat(parts, dim=dim)


def barrier(world: World) -> None:
    if world.active:
        dist.barrier()
