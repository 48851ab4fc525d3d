"""A pure-numpy reader of TensorFlow 1 checkpoints (the "tensor bundle" format).

A TF1 checkpoint saved by ``tf.train.Saver`` is a pair of files:

``<prefix>.index``
    An SSTable (the LevelDB table format): data blocks of prefix-compressed
    ``key -> value`` entries, an index block pointing at the data blocks and a
    48-byte footer.  Keys are variable names; each value is a serialised
    ``BundleEntryProto`` (dtype, shape, shard, byte offset and size).  The
    entry with the empty key is the ``BundleHeaderProto``.
``<prefix>.data-00000-of-00001``
    The raw little-endian tensor bytes, addressed by the entries' offsets.

Only what the musicnn checkpoints need is implemented: numeric tensors in a
single or several shards, uncompressed or snappy-compressed blocks.  Sliced
(partitioned) variables and string tensors raise :class:`ValueError`.  CRCs are
not verified.
"""

from __future__ import annotations

import os
import struct
from typing import Dict, Iterator, Tuple

import numpy as np

__all__ = ["read_checkpoint"]

_TABLE_MAGIC = 0xDB4775248B80FB57
_FOOTER_LEN = 48

# tensorflow/core/framework/types.proto -> numpy (little-endian)
_DTYPES = {
    1: "<f4", 2: "<f8", 3: "<i4", 4: "u1", 5: "<i2", 6: "i1", 9: "<i8",
    10: "?", 17: "<u2", 19: "<f2", 22: "<u4", 23: "<u8",
}


def _varint(buf: bytes, pos: int) -> Tuple[int, int]:
    """Decode a base-128 varint at ``pos``; return ``(value, new_pos)``."""
    result = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, pos
        shift += 7


def _proto_fields(buf: bytes) -> Iterator[Tuple[int, int, object]]:
    """Yield ``(field_number, wire_type, value)`` of a serialised protobuf."""
    pos = 0
    while pos < len(buf):
        tag, pos = _varint(buf, pos)
        field, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == 2:
            n, pos = _varint(buf, pos)
            value, pos = buf[pos:pos + n], pos + n
        elif wire == 5:
            value, pos = buf[pos:pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield field, wire, value


def _snappy_decompress(buf: bytes) -> bytes:
    """Decompress a raw snappy block (rarely used by TF bundles; kept for safety)."""
    n, pos = _varint(buf, 0)
    out = bytearray()
    while pos < len(buf):
        tag = buf[pos]
        pos += 1
        kind = tag & 3
        if kind == 0:  # literal
            length = tag >> 2
            if length >= 60:
                extra = length - 59
                length = int.from_bytes(buf[pos:pos + extra], "little")
                pos += extra
            length += 1
            out += buf[pos:pos + length]
            pos += length
            continue
        if kind == 1:
            length = ((tag >> 2) & 7) + 4
            offset = ((tag >> 5) << 8) | buf[pos]
            pos += 1
        elif kind == 2:
            length = (tag >> 2) + 1
            offset = int.from_bytes(buf[pos:pos + 2], "little")
            pos += 2
        else:
            length = (tag >> 2) + 1
            offset = int.from_bytes(buf[pos:pos + 4], "little")
            pos += 4
        for _ in range(length):  # copies may overlap their own output
            out.append(out[-offset])
    if len(out) != n:
        raise ValueError("corrupt snappy block")
    return bytes(out)


def _read_block(data: bytes, handle: bytes) -> bytes:
    """Return the contents of the block an encoded ``BlockHandle`` (offset, size) points to."""
    offset, p = _varint(handle, 0)
    size, _ = _varint(handle, p)
    block, kind = data[offset:offset + size], data[offset + size]
    if kind == 0:
        return block
    if kind == 1:
        return _snappy_decompress(block)
    raise ValueError(f"unsupported SSTable block compression {kind}")


def _block_entries(block: bytes) -> Iterator[Tuple[bytes, bytes]]:
    """Yield ``(key, value)`` pairs of an SSTable block (keys are prefix-compressed)."""
    num_restarts = struct.unpack_from("<I", block, len(block) - 4)[0]
    end = len(block) - 4 - 4 * num_restarts
    pos, key = 0, b""
    while pos < end:
        shared, pos = _varint(block, pos)
        non_shared, pos = _varint(block, pos)
        value_len, pos = _varint(block, pos)
        key = key[:shared] + block[pos:pos + non_shared]
        pos += non_shared
        yield key, block[pos:pos + value_len]
        pos += value_len


def _table_entries(index: bytes) -> Iterator[Tuple[bytes, bytes]]:
    """Yield every ``(key, value)`` of an SSTable file's contents, in key order."""
    if len(index) < _FOOTER_LEN:
        raise ValueError("file too short to be an SSTable")
    footer = index[-_FOOTER_LEN:]
    if struct.unpack_from("<Q", footer, 40)[0] != _TABLE_MAGIC:
        raise ValueError("bad SSTable magic: not a TF checkpoint index")
    _, p = _varint(footer, 0)  # skip the metaindex handle (offset, size)
    _, p = _varint(footer, p)
    for _, handle in _block_entries(_read_block(index, footer[p:])):
        yield from _block_entries(_read_block(index, handle))


def _parse_entry(value: bytes) -> dict:
    """Decode a ``BundleEntryProto`` into a dict."""
    entry = {"dtype": 0, "shape": [], "shard_id": 0, "offset": 0, "size": 0, "slices": False}
    for field, _, v in _proto_fields(value):
        if field == 1:
            entry["dtype"] = v
        elif field == 2:  # TensorShapeProto
            for f2, _, dim in _proto_fields(v):
                if f2 == 2:
                    size = dict((f3, x) for f3, _, x in _proto_fields(dim)).get(1, 0)
                    entry["shape"].append(size - (1 << 64) if size >= 1 << 63 else size)
        elif field == 3:
            entry["shard_id"] = v
        elif field == 4:
            entry["offset"] = v
        elif field == 5:
            entry["size"] = v
        elif field == 7:
            entry["slices"] = True
    return entry


def read_checkpoint(prefix: str) -> Dict[str, np.ndarray]:
    """Read every numeric variable of a TF1 checkpoint.

    Parameters
    ----------
    prefix : str
        Checkpoint prefix: the path of the ``.index`` file without the
        ``.index`` suffix (for musicnn, e.g. ``".../MSD_musicnn/"``, whose
        files are ``.index`` and ``.data-00000-of-00001``).

    Returns
    -------
    dict of str to numpy.ndarray
        Variable name (e.g. ``"dense/kernel"``) to a writable array of the
        stored dtype and shape, in the index's (sorted) key order.

    Raises
    ------
    FileNotFoundError
        If the index or a data shard is missing.
    ValueError
        If the files are not a tensor bundle, or hold sliced or string tensors.
    """
    with open(prefix + ".index", "rb") as fh:
        index = fh.read()
    num_shards, shards, out = 1, {}, {}
    for key, value in _table_entries(index):
        if key == b"":  # BundleHeaderProto: num_shards=1, endianness=2 (0 = little)
            header = {f: v for f, _, v in _proto_fields(value)}
            num_shards = header.get(1, 1)
            if header.get(2, 0) != 0:
                raise ValueError("big-endian checkpoints are not supported")
            continue
        name = key.decode("utf-8")
        entry = _parse_entry(value)
        if entry["slices"]:
            raise ValueError(f"sliced variable {name!r} is not supported")
        if entry["dtype"] not in _DTYPES:
            raise ValueError(f"variable {name!r} has unsupported dtype enum {entry['dtype']}")
        sid = entry["shard_id"]
        if sid not in shards:
            path = f"{prefix}.data-{sid:05d}-of-{num_shards:05d}"
            if not os.path.exists(path):
                raise FileNotFoundError(path)
            shards[sid] = np.memmap(path, dtype=np.uint8, mode="r")
        raw = shards[sid][entry["offset"]:entry["offset"] + entry["size"]]
        dtype = np.dtype(_DTYPES[entry["dtype"]])
        arr = np.frombuffer(raw.tobytes(), dtype=dtype).reshape(entry["shape"])
        out[name] = arr.astype(dtype.newbyteorder("="), copy=True)
    return out
