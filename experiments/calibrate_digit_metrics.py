"""What good and bad digit metrics look like: real vs real, and obvious failures, as a table.

    python experiments/calibrate_digit_metrics.py

The reference set is 2,000 random digits of the shipped subset, as in a training run's
evaluation (seed 0); every row is compared with it.
"""

import sys

import torch

from ganlab.data.mnist import MnistSampler, load_mnist
from ganlab.metrics.mnist import DigitMetrics


def main() -> None:
    images, labels, _ = load_mnist(None)
    sampler = MnistSampler(images, shuffle=False, generator=torch.Generator())
    order = torch.randperm(5000, generator=torch.Generator().manual_seed(0))
    reference, other = sampler.data[order[:2000]], sampler.data[order[2000:4000]]
    metrics = DigitMetrics(reference)
    g = torch.Generator().manual_seed(1)
    ones = other[torch.from_numpy(labels[order[2000:4000].numpy()] == 1)]
    cases = {
        "real digits (2,000 others of the subset)": other,
        "real digits, 1,000 of them": other[:1000],
        "real digits, only the class 1": ones,
        "real digits, blurred (3x3 mean)": torch.nn.functional.avg_pool2d(other, 3, 1, 1),
        "uniform noise in [-1, 1]": torch.rand(2000, 1, 28, 28, generator=g) * 2 - 1,
        "blank (all -1)": -torch.ones(2000, 1, 28, 28),
    }
    print("| samples | fd | score | coverage | class_kl | confident |")
    print("|---|---|---|---|---|---|")
    for name, x in cases.items():
        m = metrics(x)
        print(f"| {name} | {m['fd']:.2f} | {m['score']:.2f} | {m['coverage']:.0f} | "
              f"{m['class_kl']:.3f} | {m['confident']:.2f} |")


if __name__ == "__main__":
    if sys.argv[1:]:  # it takes no arguments: -h, --help or anything else gets this
        print(__doc__.strip())
        sys.exit()
    main()
