r"""Data-parallel training on several processes: ``torchrun`` + :class:`~torch.nn.parallel.DistributedDataParallel`.

``torchrun --nproc_per_node N -m mtzoo train input.json`` starts :math:`N` processes (ranks); each
builds the same model and data, and :class:`~mtzoo.training.trainer.Trainer` then

* joins the process group (``nccl`` on CUDA, ``gloo`` on the CPU) and, on CUDA, takes the GPU
  ``LOCAL_RANK``;
* computes the statistics (descriptor ``davg``/``dstd``, energy biases) on rank 0 only and
  broadcasts every parameter and buffer from rank 0 (:func:`broadcast_module`);
* draws the same task on every rank (the scheduler's generator has the same seed everywhere:
  :func:`shared_seed` when ``training.seed`` is not set) and the same system and *global* batch
  of :math:`N B` frames, of which rank :math:`r` takes frames :math:`[rB, (r+1)B)`
  (:class:`~mtzoo.training.data.BatchSampler`); ``batch_size`` :math:`B` is per process, as in
  DeePMD-kit;
* runs forward and backward through DDP, whose all-reduce averages the gradients:

  .. math:: g = \frac1N \sum_{r=0}^{N-1} \nabla_\theta L(\text{batch}_r)

  which for losses that are means over frames (and atoms, with equal atom counts, as every batch
  of one system has) is the gradient of the loss of the global batch: :math:`N` processes with
  batch :math:`B` take the steps of one process with batch :math:`NB` (to rounding;
  ``tests/test_distributed.py``);
* writes ``lcurve.out``, ``out.json`` and checkpoints on rank 0 only.  Every rank validates (the
  validation batches are not split) so that ``plateau`` schedules and best-metric choices agree.

A checkpoint holds the global sampler state, so a run resumes with any number of processes.
``find_unused_parameters`` is on: a multi-task step trains one head and leaves the others
without gradients.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Dist:
    """Where this process is: ``rank`` of ``world_size`` processes, ``local_rank`` on its node."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def main(self) -> bool:
        """Rank 0: the process that writes files and logs."""
        return self.rank == 0


def from_env() -> Dist:
    """The launcher's ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` (torchrun sets them); one process without."""
    try:
        return Dist(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                    int(os.environ.get("LOCAL_RANK", 0)))
    except ValueError as e:
        raise ValueError(f"RANK / WORLD_SIZE / LOCAL_RANK must be integers (torchrun sets them): {e}") from None


def setup(device: torch.device) -> tuple[Dist, torch.device]:
    """Join the process group when launched on several processes; the device of this rank.

    On CUDA rank :math:`r` uses ``cuda:LOCAL_RANK`` and the ``nccl`` backend, elsewhere ``gloo``.
    """
    d = from_env()
    if not d.enabled:
        return d, device
    if device.type == "cuda":
        device = torch.device("cuda", d.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    if dist.get_world_size() != d.world_size or dist.get_rank() != d.rank:
        raise RuntimeError(f"process group (rank {dist.get_rank()} of {dist.get_world_size()}) does not match "
                           f"RANK={d.rank} WORLD_SIZE={d.world_size}")
    return d, device


def shared_seed(seed: int | None, d: Dist) -> int | None:
    """``seed``, or (several processes, no seed) one drawn on rank 0 and sent to every rank."""
    if seed is not None or not d.enabled:
        return seed
    box = [int(np.random.SeedSequence().generate_state(1)[0]) if d.main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]


@torch.no_grad()
def broadcast_module(module: torch.nn.Module, d: Dist) -> None:
    """Copy every parameter and buffer of rank 0 into the other ranks' ``module`` (same architecture)."""
    if not d.enabled:
        return
    for t in list(module.parameters()) + list(module.buffers()):
        dist.broadcast(t.data, src=0)


def wrap(module: torch.nn.Module, d: Dist, device: torch.device) -> torch.nn.Module:
    """``module`` itself on one process, else in :class:`~torch.nn.parallel.DistributedDataParallel`."""
    if not d.enabled:
        return module
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(module, device_ids=[device.index] if device.type == "cuda" else None,
                                   find_unused_parameters=True, broadcast_buffers=False)


def any_rank(flag: bool, d: Dist, device: torch.device) -> bool:
    """True on every rank when ``flag`` is true on one (so that all stop together)."""
    if not d.enabled:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def barrier(d: Dist) -> None:
    if d.enabled:
        dist.barrier()


def cleanup() -> None:
    """Leave the process group (end of ``mtzoo train``)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
