"""Evaluators: given G, return scalars for metrics.json and TensorBoard, plus pictures.

An evaluator is built once per run with fixed noise and fixed real samples, so its numbers
move only because G moved, and evaluating never touches the training random streams.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from PIL import Image
from omegaconf import DictConfig
from torch import nn

from ganlab.metrics.normal import summarize
from ganlab.plots import histogram_figure, image_grid


@dataclass
class Evaluation:
    scalars: dict[str, float]
    histograms: dict[str, torch.Tensor] = field(default_factory=dict)
    images: dict[str, Image.Image] = field(default_factory=dict)


class NormalEvaluator:
    """KS, W1, mean and std of the generated samples against the target distribution."""

    def __init__(self, dataset: DictConfig, real: torch.Tensor, noise: torch.Tensor):
        self.mean, self.std = dataset.mean, dataset.std
        self.real, self.noise = real.cpu(), noise
        # What a perfect G would score with this many samples: the floor of every distance.
        self.floor = {f"{k}_real": v for k, v in summarize(real, self.mean, self.std).items()
                      if k in ("ks", "w1")}

    @torch.inference_mode()
    def __call__(self, G: nn.Module) -> Evaluation:
        G.eval()
        generated = G(self.noise).float().cpu()
        scalars = summarize(generated, self.mean, self.std) | self.floor
        return Evaluation(
            scalars=scalars,
            histograms={"real": self.real, "generated": generated, "noise": self.noise.cpu()},
            images={"histograms": histogram_figure(
                {"real": self.real, "generated": generated, "noise (G input)": self.noise.cpu()},
                title=f"KS {scalars['ks']:.3f}   W1 {scalars['w1']:.3f}   "
                      f"mean {scalars['mean']:.2f}   std {scalars['std']:.2f}")},
        )


class MnistEvaluator:
    """Classifier-based digit metrics (see metrics/mnist.py) and a grid of generated digits."""

    def __init__(self, dataset: DictConfig, real: torch.Tensor, noise: torch.Tensor, grid: int = 64):
        from ganlab.metrics.mnist import DigitMetrics

        self.real, self.noise, self.grid = real.cpu(), noise, grid
        self.metrics = DigitMetrics(self.real)

    @torch.inference_mode()
    def __call__(self, G: nn.Module) -> Evaluation:
        G.eval()
        generated = torch.cat([G(z).float().cpu() for z in self.noise.split(500)])
        return Evaluation(
            scalars=self.metrics(generated),
            histograms={"real": self.real, "generated": generated, "noise": self.noise.cpu()},
            images={"samples": image_grid(generated[: self.grid])},
        )


EVALUATORS = {"normal": NormalEvaluator, "mnist": MnistEvaluator}  # by dataset.name


def build_evaluator(dataset: DictConfig, real: torch.Tensor, noise: torch.Tensor):
    return EVALUATORS[dataset.name](dataset, real, noise)
