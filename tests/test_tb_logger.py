"""TensorBoard output: ganlab writes event files TensorBoard reads, with TensorBoard's own checksum."""

import random

import pytest
import torch
from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c as tensorboards_checksum

from conftest import TINY, compose_cfg, read_events
from ganlab.crc32c import BLOCK, BLOCKS, SMALL, crc32c, masked_crc32c
from ganlab.distributed import Placement
from ganlab.member import Member


@pytest.mark.parametrize("size", [0, 1, SMALL - 1, SMALL, SMALL + 1, BLOCK * BLOCKS, BLOCK * BLOCKS + 1,
                                  3 * BLOCK * BLOCKS + 17, 100_000])
def test_checksum_is_tensorboards(size):
    data = random.Random(size).randbytes(size)
    assert masked_crc32c(data) == tensorboards_checksum(data)


def test_checksum_gives_the_standard_check_value():
    assert crc32c(b"123456789") == 0xE3069283  # CRC-32C's published check value


def test_tensorboard_reads_an_evaluations_records_back_while_the_run_goes_on(tmp_path):
    member = Member(compose_cfg(TINY), tmp_path, Placement(torch.device("cpu")))
    stats = {k: torch.tensor(0.5) for k in ("loss/d", "loss/g", "d_out/real", "d_out/fake")}
    it = member.eval_every
    member.after(it, stats, finite=True)
    events = read_events(tmp_path)  # before close; TensorBoard's reader drops any record whose checksum is wrong
    assert [(s.step, s.value) for s in events.Scalars("loss/d")] == [(it, 0.5)]
    assert [s.step for s in events.Scalars("eval/ks")] == [it] and events.Scalars("eval/ks")[0].value > 0
    assert events.Histograms("generated") and events.Images("histograms")
    member.logger.close()


def test_a_processs_event_files_sort_in_the_order_it_opened_them(tmp_path):
    # TensorBoard reads a run's files by name: a resumed run's purge of the steps logged after its
    # checkpoint works only if its file sorts after the killed one's, the 10th of a second included.
    from ganlab.tb_logger import EventFile

    opened = []
    for _ in range(12):
        events = EventFile(tmp_path)
        events.close()
        opened.append(events.file.name)
    assert sorted(opened) == opened
