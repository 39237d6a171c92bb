"""Digit-quality metrics from a small MNIST classifier shipped with ganlab (no download needed).

Inception-based FID needs weights from the internet and judges MNIST poorly; this classifier,
trained by `experiments/train_classifier.py` on the shipped subset, stands in for it:
- `fd`: Frechet distance between real and generated digits in its 64-d feature space;
- `score`: exp(E KL(p(y|x) || p(y))), the "inception score" with this classifier (ceiling 10);
- `coverage`: how many of the 10 digits appear among confidently classified samples;
- `class_kl`: KL of the confident samples' class histogram to uniform (0 = balanced).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

WEIGHTS = Path(__file__).parent / "mnist_classifier.pt"
CONFIDENT = 0.9  # a sample counts for coverage and class_kl when its top class has p >= this


class DigitClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2),   # 28 -> 26 -> 13
            nn.Conv2d(32, 64, 3), nn.ReLU(), nn.MaxPool2d(2),  # 13 -> 11 -> 5
            nn.Flatten(), nn.Linear(64 * 5 * 5, 64), nn.ReLU(),
        )
        self.head = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def load_classifier(path: Path = WEIGHTS) -> DigitClassifier:
    model = DigitClassifier()
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval().requires_grad_(False)


@torch.inference_mode()
def features_and_probs(classifier: DigitClassifier, images: torch.Tensor, batch: int = 500):
    """images in [-1, 1], (N, 1, 28, 28) -> (features N x 64 float64, probabilities N x 10)."""
    feats, probs = [], []
    for chunk in images.split(batch):
        f = classifier.features(chunk.float())
        feats.append(f.double())
        probs.append(torch.softmax(classifier.head(f), dim=1).double())
    return torch.cat(feats), torch.cat(probs)


def gaussian_stats(features: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    x = features.numpy()
    return x.mean(axis=0), np.cov(x, rowvar=False)


def frechet_distance(stats_a, stats_b) -> float:
    """||mu_a - mu_b||^2 + Tr(Sa + Sb - 2 (Sa Sb)^(1/2)), via the eigenvalues of Sa Sb."""
    (mu_a, sa), (mu_b, sb) = stats_a, stats_b
    eig = np.linalg.eigvals(sa @ sb)
    sqrt_trace = np.sqrt(np.clip(eig.real, 0, None)).sum()
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(sa) + np.trace(sb) - 2 * sqrt_trace)


def classifier_score(probs: torch.Tensor) -> float:
    marginal = probs.mean(0, keepdim=True)
    kl = (probs * (probs.clamp_min(1e-12).log() - marginal.clamp_min(1e-12).log())).sum(1)
    return float(kl.mean().exp())


def class_balance(probs: torch.Tensor) -> dict[str, float]:
    top, label = probs.max(1)
    confident = label[top >= CONFIDENT]
    counts = torch.bincount(confident, minlength=10).double()
    if counts.sum() == 0:
        return {"coverage": 0.0, "class_kl": float(np.log(10)), "confident": 0.0}
    p = counts / counts.sum()
    kl = float((p[p > 0] * (p[p > 0] * 10).log()).sum())
    return {"coverage": float((counts > 0).sum()), "class_kl": kl,
            "confident": float(len(confident) / len(probs))}


class DigitMetrics:
    """Compares generated digits with a fixed set of real ones; built once per run."""

    def __init__(self, real: torch.Tensor, classifier: DigitClassifier | None = None):
        self.classifier = classifier or load_classifier()
        real_features, _ = features_and_probs(self.classifier, real)
        self.real_stats = gaussian_stats(real_features)

    def __call__(self, generated: torch.Tensor) -> dict[str, float]:
        features, probs = features_and_probs(self.classifier, generated)
        return {"fd": frechet_distance(gaussian_stats(features), self.real_stats),
                "score": classifier_score(probs), **class_balance(probs)}
