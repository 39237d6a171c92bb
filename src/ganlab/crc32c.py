"""CRC-32C (Castagnoli), the checksum of every record in a TensorBoard event file, with numpy.

Without TensorFlow installed, TensorBoard's writer checksums each record with a pure-Python loop
(0.3 us a byte) in its writer thread, holding the GIL. A population's 32 copies each log a
picture and histograms at every evaluation, and that loop took 10-15% of the whole run
(experiments/README.md, "Speed"). tb_logger.py's own event file writer checksums with
masked_crc32c below.

CRC-32C is linear over GF(2), which makes it vectorisable: the register after a message is the
register before it advanced over len(message) zero bytes, XOR the checksum of the message from a
zero register, and that checksum is the XOR of each byte's own contribution advanced over the
bytes after it. Long messages are cut into blocks of BLOCK bytes; tables give each byte's
contribution within its block and each block's advance over the blocks after it.
"""

from __future__ import annotations

import numpy as np

POLYNOMIAL = 0x82F63B78  # Castagnoli, bit-reflected
BLOCK = 64  # bytes a block
BLOCKS = 64  # blocks a segment: longer messages are done a segment (4 KB) at a time
SMALL = 256  # shorter messages: the byte loop is faster than numpy's call overhead


def _byte_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ (POLYNOMIAL if crc & 1 else 0)
        table.append(crc)
    return table


TABLE = _byte_table()
_TABLE = np.array(TABLE, dtype=np.uint32)


def _zero_byte(crc: np.ndarray) -> np.ndarray:
    """The register advanced over one zero byte."""
    return _TABLE[crc & 0xFF] ^ (crc >> 8)


def _advance(tables: np.ndarray, crc: np.ndarray, which=()) -> np.ndarray:
    """A linear map given by its (4, 256) action on each byte of the register: tables[which]
    (`which` picks, for each register, its map among stacked ones)."""
    return (tables[(*which, 0, crc & 0xFF)] ^ tables[(*which, 1, (crc >> 8) & 0xFF)]
            ^ tables[(*which, 2, (crc >> 16) & 0xFF)] ^ tables[(*which, 3, crc >> 24)])


def _within_block() -> np.ndarray:
    """(BLOCK, 256): byte v at offset i of a block, advanced over the rest of the block."""
    rows = [_TABLE]
    for _ in range(BLOCK - 1):
        rows.append(_zero_byte(rows[-1]))
    return np.stack(rows[::-1])


def _over_blocks() -> np.ndarray:
    """(BLOCKS + 1, 4, 256): the tables of advancing a register over d blocks of zero bytes."""
    each_byte = np.arange(256, dtype=np.uint32)[None, :] << (8 * np.arange(4, dtype=np.uint32)[:, None])
    one_block = each_byte
    for _ in range(BLOCK):
        one_block = _zero_byte(one_block)
    tables = [each_byte]  # d = 0: the identity
    for _ in range(BLOCKS):
        tables.append(_advance(one_block, tables[-1]))
    return np.stack(tables)


WITHIN, OVER = _within_block(), _over_blocks()


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    head = len(data) if len(data) < SMALL else len(data) % BLOCK
    for byte in data[:head]:
        crc = TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    body = np.frombuffer(data, dtype=np.uint8, offset=head).reshape(-1, BLOCK)
    for start in range(0, len(body), BLOCKS):
        segment = body[start:start + BLOCKS]
        n = len(segment)
        blocks = np.bitwise_xor.reduce(WITHIN[np.arange(BLOCK), segment], axis=1)
        after = np.arange(n - 1, -1, -1)  # each block advanced over the blocks after it
        shifted = _advance(OVER, blocks, (after,))
        crc = int(_advance(OVER, np.uint32(crc), (n,))) ^ int(np.bitwise_xor.reduce(shifted))
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    """TensorBoard's (TFRecord's) masked form of the checksum."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF
