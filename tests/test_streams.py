"""Chunked random streams: the same batches whatever the chunk boundaries a checkpoint falls on."""

import torch

from ganlab.streams import Prefetched, Together, chunk_for, stream


def normal_stream(chunk: int, seed: int = 0) -> Prefetched:
    generator = stream(seed, "data")
    return Prefetched(lambda n: torch.randn(n, 3, generator=generator), batch=2, chunk=chunk, generator=generator)


def test_batches_come_in_order_from_chunks():
    batches = normal_stream(chunk=4)
    first = [batches() for _ in range(10)]
    assert all(b.shape == (2, 3) for b in first)
    assert len({tuple(b.flatten().tolist()) for b in first}) == 10  # three chunks drawn, no batch repeated


def test_resume_from_a_saved_state_continues_the_same_batches():
    for used in (0, 1, 3, 4, 5, 8):  # at and between chunk boundaries
        original = normal_stream(chunk=4)
        for _ in range(used):
            original()
        saved = original.state_dict()
        expected = [original() for _ in range(6)]
        resumed = normal_stream(chunk=4)
        resumed()  # a fresh run that drew something else first
        resumed.load_state_dict(saved)
        for a, b in zip(expected, (resumed() for _ in range(6))):
            assert torch.equal(a, b)


def test_streams_together_give_each_streams_own_batches():
    """A population's copies draw their batches together, each from its own stream, also when
    resumed in the middle of a chunk."""
    for used in (0, 3):
        alone = [normal_stream(chunk=4, seed=k) for k in range(3)]
        originals = [normal_stream(chunk=4, seed=k) for k in range(3)]
        for stream_ in alone + originals:
            for _ in range(used):
                stream_()
        resumed = [normal_stream(chunk=4, seed=k) for k in range(3)]
        for original, copy in zip(originals, resumed):
            copy.load_state_dict(original.state_dict())
        batches = Together(resumed)
        for _ in range(10):  # across chunk boundaries
            expected = torch.stack([stream_() for stream_ in alone])
            assert torch.equal(batches(), expected)


def test_reseed_starts_a_different_stream():
    a, b = normal_stream(chunk=4), normal_stream(chunk=4)
    b.reseed(7)
    assert not torch.equal(a(), b())


def test_chunk_size():
    assert chunk_for(100) == 256 and chunk_for(16 * 100) == 40 and chunk_for(10**6) == 1
