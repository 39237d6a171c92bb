"""The random streams a run draws from: one generator per purpose, and batches drawn in chunks."""

from __future__ import annotations

from typing import Callable

import torch

# Independent random streams, so that e.g. evaluating more often never changes training.
STREAMS = {"init": 0, "data": 1, "noise": 2, "eval": 3}


def stream(seed: int, name: str, rank: int = 0) -> torch.Generator:
    """Under torchrun every process draws its own data and noise (rank > 0 shifts the seed)."""
    return torch.Generator().manual_seed(seed * len(STREAMS) + STREAMS[name] + 1_000_003 * rank)


class Prefetched:
    """next batch = self(); drawn `chunk` batches at a time with one call of `draw(n)`.

    At the 1-D GAN's sizes (a batch can be one vector of 100 numbers) a call of a random
    function costs more than the numbers it returns, and a population of K copies makes 3K
    such calls an iteration. For a checkpoint the stream is its generator's state where the
    current chunk began plus how many of its batches were used: a resumed run draws the same
    chunk again and goes on exactly where the killed one stopped.
    """

    def __init__(self, draw: Callable[[int], torch.Tensor], batch: int, chunk: int, generator: torch.Generator,
                 state: tuple[Callable[[], object], Callable[[object], None]] | None = None):
        """`state`: (get, set) of everything `draw` depends on; by default the generator's state."""
        self.draw, self.batch, self.chunk, self.generator = draw, batch, chunk, generator
        self.get_state, self.set_state = state or (generator.get_state, generator.set_state)
        self.buffer: torch.Tensor | None = None
        self.used = 0
        self.chunk_start = None

    def __call__(self) -> torch.Tensor:
        index = self.advance()  # (may draw a new buffer)
        return self.buffer[index]

    def advance(self) -> int:
        """Move on to the next batch, drawing a new chunk when this one is used up; return the
        batch's index in self.buffer."""
        if self.buffer is None or self.used == self.chunk:
            self.chunk_start = self.get_state()
            self.buffer = self.draw(self.chunk * self.batch).unflatten(0, (self.chunk, self.batch))
            self.used = 0
        self.used += 1
        return self.used - 1

    def state_dict(self) -> dict:
        if self.buffer is None or self.used == self.chunk:
            return {"state": self.get_state(), "used": 0}
        return {"state": self.chunk_start, "used": self.used}

    def load_state_dict(self, state: dict) -> None:
        self.set_state(state["state"])
        self.buffer = None
        if state["used"]:
            self()  # the chunk the saved run was in, drawn again
            self.used = state["used"]

    def reseed(self, offset: int) -> None:
        """A fresh stream: the generator's seed plus `offset` (torchrun ranks > 0 on resume)."""
        self.generator.manual_seed(self.generator.initial_seed() + offset)
        self.buffer = None


class Together:
    """next batches of K streams = self(), as one (K, batch, ...) tensor.

    A population's copies draw in step (same batch, same chunk size), so their chunks begin and
    end together: their buffers are stacked once a chunk, not once a batch (at 32 copies of the
    1-D GAN, selecting and stacking 3 x 32 batches an iteration cost a tenth of the iteration).
    """

    def __init__(self, streams: list[Prefetched]):
        self.streams = streams
        self.buffers: list[torch.Tensor] = []
        self.stacked: torch.Tensor | None = None

    def __call__(self) -> torch.Tensor:
        index = [s.advance() for s in self.streams][0]
        if not self.buffers or any(s.buffer is not b for s, b in zip(self.streams, self.buffers)):
            assert len({s.used for s in self.streams}) == 1, "the copies' streams went out of step"
            self.buffers = [s.buffer for s in self.streams]
            self.stacked = torch.stack(self.buffers)
        return self.stacked[:, index]


def chunk_for(numbers_per_batch: int, budget: int = 2**16) -> int:
    """Batches a chunk holds: up to 256, about 256 KB of float32 at most."""
    return max(1, min(256, budget // numbers_per_batch))
