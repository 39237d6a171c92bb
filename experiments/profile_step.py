"""Where one training iteration spends its time: torch.profiler's table of ganlab's step.

    python experiments/profile_step.py experiment=seed_mnist train.batch_size=16
    python experiments/profile_step.py experiment=seed_normal train.population=32 train.compile=true

Any train.py overrides; prints ms per iteration and the operators (by input shape) that took
the most time over a few iterations, after a warm-up (and compilation). With train.compile=true
the table names each kernel Inductor generated (`graph_0_cpp_fused_...`, Inductor's
cpp.enable_kernel_profile), not only the library calls (bmm, convolutions) between them; the
kernels' source: TORCH_LOGS=output_code.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import torch
import torch._inductor.config
from torch.profiler import profile

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark import compose_config, timed  # noqa: E402

from ganlab.distributed import Placement  # noqa: E402
from ganlab.memory import keep_freed_memory  # noqa: E402
from ganlab.member import build_members  # noqa: E402
from ganlab.run import build_step  # noqa: E402


def main(overrides: list[str], iterations: int = 5, rows: int = 25) -> None:
    keep_freed_memory()
    # Each generated kernel records itself as a profiler event; without this they are one
    # "Call CompiledFxGraph" row. (Part of the compiled code's cache key: a separate compilation.)
    torch._inductor.config.cpp.enable_kernel_profile = True
    cfg = compose_config([*overrides, "dataset.eval_samples=16"])
    with tempfile.TemporaryDirectory() as tmp:
        members = build_members(cfg, Path(tmp), Placement(torch.device("cpu")))
        step = build_step(members)
        seconds = timed(step, iterations, warmup=2)
        with profile(record_shapes=True) as prof:
            for _ in range(iterations):
                step()
    print(f"{1e3 * seconds:.1f} ms an iteration ({time.strftime('%Y-%m-%d %H:%M')}, {torch.get_num_threads()} threads)")
    print(prof.key_averages(group_by_input_shape=True).table(
        sort_by="self_cpu_time_total", row_limit=rows, max_name_column_width=40, max_shapes_column_width=70))


if __name__ == "__main__":
    if {"-h", "--help"} & set(sys.argv[1:]):
        print(__doc__.strip())
        sys.exit()
    main(sys.argv[1:])
