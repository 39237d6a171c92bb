"""Real data for the 1-D GAN: vectors of draws from N(mean, std), drawn fresh every step."""

import torch

from ganlab.streams import chunk_for


class NormalSampler:
    def __init__(self, mean: float, std: float, sample_size: int, generator: torch.Generator):
        self.mean, self.std, self.sample_size = mean, std, sample_size
        self.generator = generator

    def chunk(self, batch: int) -> int:
        """Batches to draw at once (streams.Prefetched): any number of draws is one call of randn."""
        return chunk_for(batch * self.sample_size)

    def sample(self, batch: int) -> torch.Tensor:
        return self.reference(batch, self.generator)

    def reference(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """A fixed set of real samples to evaluate against, from its own random stream."""
        x = torch.randn(n, self.sample_size, generator=generator)
        return x.mul_(self.std).add_(self.mean)

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
