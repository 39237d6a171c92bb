"""Devices and torchrun: where tensors live, and which process writes.

`torchrun --nproc_per_node=N train.py ...` starts N processes; each trains on its own batches
(train.batch_size is per process) and DistributedDataParallel averages the gradients. Rank 0
alone evaluates and writes logs, checkpoints and metrics.
"""

from __future__ import annotations

import gc
import os
import warnings
from contextlib import nullcontext
from dataclasses import dataclass
from functools import partial

import torch
import torch.distributed as dist
from torch import nn

from ganlab.config import ConfigError


@dataclass(frozen=True)
class Placement:
    device: torch.device
    rank: int = 0
    world: int = 1
    local_world: int = 1  # torchrun's processes on this machine, which share its cores

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def resolve_device(name: str) -> torch.device:
    available = {"cuda": torch.cuda.is_available(),
                 "mps": getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available(),
                 "cpu": True}
    if name == "auto":
        name = next(n for n in ("cuda", "mps", "cpu") if available[n])
    if not available[name]:
        raise ConfigError(f"train.device={name} is not available on this machine; "
                          "use train.device=auto or cpu")
    return torch.device(name)


def setup(device_name: str) -> Placement:
    """Join the torchrun process group when there is one; pick this process's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    device = resolve_device(device_name)
    if world == 1:
        return Placement(device)
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", local_rank + 1))
    if device.type == "cuda" and local_world > torch.cuda.device_count():
        raise ConfigError(f"torchrun started {local_world} processes on this machine, one per GPU, but it has "
                          f"{torch.cuda.device_count()}; use --nproc_per_node={torch.cuda.device_count()}, "
                          "or train.device=cpu")
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    # DDP warns of "grad strides [1, 1]" against its bucket's "[N, 1]" for a 1 x N weight (the 1-D
    # D's output layer): the same memory, strides of a size-1 dimension aside, so the warning is
    # spurious (PyTorch's own diagnosis, pytorch/pytorch#47163). Other stride mismatches still warn.
    warnings.filterwarnings("ignore", message=r"(?s)Grad strides do not match bucket view strides.*"
                                              r"grad\.sizes\(\) = \[1, \d+\], strides\(\) = \[1, 1\]")
    return Placement(device, rank, world, local_world)


def reproducible(device: torch.device, deterministic: bool) -> None:
    """train.deterministic: the same run twice (or killed and resumed) gives the same bits on a GPU
    too. On CPUs it always does; on CUDA cuDNN's default convolution algorithms, and a few other
    kernels, add up in an order that changes from call to call."""
    if device.type != "cuda":
        return
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = deterministic
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS's deterministic workspaces
        torch.use_deterministic_algorithms(True, warn_only=True)  # an op without a deterministic kernel warns


def wrap(module: nn.Module, placement: Placement) -> nn.Module | None:
    """A DistributedDataParallel wrapper under torchrun, else None."""
    if placement.world == 1:
        return None
    ids = [placement.device.index] if placement.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(module, device_ids=ids)


def cpu_has_native_bfloat16() -> bool | None:
    """Whether oneDNN runs bfloat16 in hardware here (AVX512-BF16 or AMX); None where torch cannot say."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return None


def autocast(placement: Placement, enabled: bool):
    """bfloat16 autocast when train.amp=true (no loss scaling needed for bfloat16): on GPUs, and on
    CPUs that compute in bfloat16 natively, where the seed MNIST pair trained 1.4-1.8x faster
    (experiments/README.md, "bfloat16 on a CPU"). Other CPUs would emulate it (not measured
    here): refused rather than risk a slower run."""
    if not enabled:
        return nullcontext
    check_amp(placement.device.type)
    return partial(torch.autocast, device_type=placement.device.type, dtype=torch.bfloat16)


def check_amp(kind: str) -> None:
    if kind == "cpu" and cpu_has_native_bfloat16() is False:
        raise ConfigError("train.amp=true needs native bfloat16 (a GPU, or a CPU with AVX512-BF16 or AMX), "
                          "which this CPU lacks; drop train.amp")
    if kind not in ("cuda", "cpu"):
        raise ConfigError(f"train.amp=true runs on CUDA and on CPUs with native bfloat16, not on {kind}; "
                          "drop train.amp")


def check_machine(device_name: str, amp: bool) -> None:
    """What only the machine can tell of a config: whether train.device is there, and native
    bfloat16 for train.amp (a sweep checks each job's before the first runs)."""
    device = resolve_device(device_name)
    if amp:
        check_amp(device.type)


def agreed_stop(stop: list[int], placement: Placement) -> list[int]:
    """The stop signal a torchrun job's processes act on, agreed by all at one iteration: each gets
    torchrun's SIGTERM (or the terminal's Ctrl-C) at its own moment, and one that stopped an
    iteration before another left that one waiting in its next all-reduce ("Connection closed by
    peer", a traceback)."""
    flag = torch.tensor([stop[0] if stop else 0], device=placement.device)
    dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    signum = int(flag.item())
    return [signum] if signum else []


def teardown(gans: list) -> None:
    """Leave the process group: first drop the DDP wrappers, while the group is still registered.

    Otherwise a wrapper's Reducer is the group's last owner, and freeing it destroys the group
    with the GIL held: Gloo's destructor then waits for its worker thread, which may need the
    GIL to free a finished collective: the process hung in 4 of about 30 two-process runs here
    (then none in 55). destroy_process_group() destroys the group with the GIL released.
    """
    if dist.is_initialized():
        for gan in gans:
            gan.ddp_G = gan.ddp_D = None
        gc.collect()  # wrappers held only by reference cycles go now too
        dist.destroy_process_group()
