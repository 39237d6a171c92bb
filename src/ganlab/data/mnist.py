"""MNIST as a user has it: standard IDX files (gzipped or not), downloaded with checksums where a
network exists, or the 5,000-digit subset shipped inside the package when nothing else is there.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import urllib.request
from pathlib import Path

import numpy as np
import torch

from ganlab.errors import UserError

log = logging.getLogger("ganlab")

IMAGES, LABELS = "train-images-idx3-ubyte", "train-labels-idx1-ubyte"
# The MD5 sums every MNIST mirror serves (the same ones torchvision checks).
MD5 = {f"{IMAGES}.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873", f"{LABELS}.gz": "d53e105ee54ea40749a09fcbcd1e9432"}
MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")
SHIPPED = Path(__file__).parent / "mnist_subset"  # 5,000 real digits; see ATTRIBUTION.md there
# IDX type codes (the third byte of the magic number) -> numpy dtype (big-endian).
IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class DataError(UserError):
    """A data file that is missing, truncated, of the wrong size or not IDX."""


# download=true fetches only what is missing, so a damaged file has to go first
FETCH_AGAIN = "delete it and run with dataset.download=true, or copy it there again"


def read_idx(path: Path) -> np.ndarray:
    """Read one IDX file (optionally .gz), checking its header against its size."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: file not found; check dataset.root") from None
    except OSError as error:  # a folder of that name, no permission
        raise DataError(f"{path}: cannot be read ({error.strerror}); it should be the MNIST file itself") from None
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as error:
            raise DataError(f"{path}: cannot be read as gzip ({error}); {FETCH_AGAIN}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_TYPES:
        raise DataError(f"{path}: not an IDX file (bad magic number); expected an MNIST "
                        f"{IMAGES} or {LABELS} file")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise DataError(f"{path}: truncated IDX header; {FETCH_AGAIN}")
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(IDX_TYPES[raw[2]])
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(raw) != expected:
        what = "truncated" if len(raw) < expected else "longer than its header says"
        raise DataError(f"{path}: {what} ({len(raw)} bytes, header {shape} needs {expected}); {FETCH_AGAIN}")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape).copy()  # writable


def write_idx(array: np.ndarray, path: Path) -> None:
    """Write a uint8 array as an IDX file (gzipped if the name ends in .gz)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    raw = bytes([0, 0, 0x08, array.ndim]) + b"".join(n.to_bytes(4, "big") for n in array.shape)
    raw += array.tobytes()
    Path(path).write_bytes(gzip.compress(raw, mtime=0) if str(path).endswith(".gz") else raw)


def find(root: Path, name: str) -> Path | None:
    """name, or name.gz, in root or in torchvision's root/MNIST/raw; also as train-images.idx3-ubyte,
    the name some copies of MNIST have (and some programs give the file they unpack)."""
    for folder in (root, root / "MNIST" / "raw"):
        for spelled in (name, name.replace("-idx", ".idx", 1)):
            for candidate in (folder / spelled, folder / f"{spelled}.gz"):
                if candidate.exists():
                    return candidate
    return None


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def download(root: Path) -> None:
    """Fetch the gzipped training files into root; verify each checksum before keeping it."""
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DataError(f"{root}: cannot make this folder to download MNIST into ({error.strerror}); "
                        "set dataset.root to a folder you can write") from None
    if not os.access(root, os.W_OK):
        raise DataError(f"{root}: cannot write there to download MNIST; set dataset.root to a folder you can write")
    for name, expected in MD5.items():
        target = root / name
        if target.exists() and md5(target) == expected:
            continue
        failures = []
        for mirror in MIRRORS:
            tmp = target.with_suffix(".part")
            try:
                log.info("downloading %s%s", mirror, name)
                urllib.request.urlretrieve(mirror + name, tmp)
            except OSError as error:
                failures.append(f"{mirror}: {getattr(error, 'reason', error)}")
                log.warning("%s%s: %s", mirror, name, error)
                continue
            if md5(tmp) == expected:
                tmp.replace(target)
                break
            tmp.unlink()
            failures.append(f"{mirror}: checksum mismatch, file discarded")
            log.warning("%s%s: checksum mismatch, file discarded", mirror, name)
        else:
            raise DataError(f"{name}: could not be downloaded with a valid checksum from any mirror "
                            f"({'; '.join(failures)}); put the MNIST files in {root} by hand")


def load_mnist(root: str | None, download_missing: bool = False) -> tuple[np.ndarray, np.ndarray, str]:
    """Return (images N x 28 x 28 uint8, labels N, where they came from)."""
    if root is not None:
        root = Path(root).expanduser()
        if download_missing and (find(root, IMAGES) is None or find(root, LABELS) is None):
            download(root)
        images_path, labels_path = find(root, IMAGES), find(root, LABELS)
        if images_path is None or labels_path is None:
            missing = IMAGES if images_path is None else LABELS
            raise DataError(f"{root}: no {missing}[.gz] found; put the MNIST files there, "
                            "set dataset.download=true, or leave dataset.root unset for the shipped subset")
    else:
        images_path, labels_path = SHIPPED / f"{IMAGES}.gz", SHIPPED / f"{LABELS}.gz"
        log.info("dataset.root not set: using the 5,000-digit MNIST subset shipped with ganlab")
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or images.shape[1:] != (28, 28) or images.dtype != np.uint8:
        raise DataError(f"{images_path}: holds {images.dtype} of shape {images.shape}, "
                        "not 28 x 28 uint8 images")
    if labels.ndim != 1 or len(labels) != len(images):
        raise DataError(f"{labels_path}: {labels.shape[0]} labels for {len(images)} images; "
                        "the two files do not belong together")
    return images, labels, str(images_path)


class MnistSampler:
    """Batches of images in [-1, 1], walked epoch by epoch from one preloaded tensor.

    `shuffle=False` walks the data in file order, as the seed does; each epoch has
    len(data) // batch batches and drops the remainder.
    """

    def __init__(self, images: np.ndarray, shuffle: bool, generator: torch.Generator):
        x = torch.from_numpy(images.astype(np.float32)).unsqueeze(1)
        self.data = (x - 127.5) / 127.5
        self.shuffle, self.generator = shuffle, generator
        self.order = torch.arange(len(self.data))
        self.position = len(self.data)  # start a new epoch on the first call

    def batches_per_epoch(self, batch: int) -> int:
        return len(self.data) // batch

    def chunk(self, batch: int) -> int:
        """Batches to draw at once: one, as each epoch drops its remainder batch by batch."""
        return 1

    def sample(self, batch: int) -> torch.Tensor:
        if self.position + batch > len(self.data):
            self.position = 0
            if self.shuffle:
                self.order = torch.randperm(len(self.data), generator=self.generator)
        index = self.order[self.position: self.position + batch]
        self.position += batch
        return self.data[index]

    def reference(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """A fixed random set of min(n, N) real digits to evaluate against."""
        return self.data[torch.randperm(len(self.data), generator=generator)[:n]]

    def state_dict(self) -> dict:
        return {"generator": self.generator.get_state(), "order": self.order, "position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
        self.order, self.position = state["order"], state["position"]
