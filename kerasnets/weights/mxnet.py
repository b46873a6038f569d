"""MXNet ``.params`` files (the NDArray save format) in plain numpy.

No mxnet dependency: the format is read from its specification (MXNet's
``NDArray::Save`` / ``NDArray::Load`` in ``src/ndarray/ndarray.cc``, as
written by ``mx.nd.save`` and ``Module.save_checkpoint``). All integers are
little-endian.

File::

    uint64  0x112                  list magic (kMXAPINDArrayListMagic)
    uint64  0                      reserved
    uint64  n                      number of arrays
    NDArray x n
    uint64  k                      number of names: n, or 0 for a plain list
    (uint64 length, bytes) x k     UTF-8 names, in array order

NDArray (versions 2 and 3, MXNet >= 0.12; 3 = numpy shape semantics)::

    uint32  0xF993FAC9 (v2) | 0xF993FACA (v3)
    int32   storage type           0 dense, 1 row_sparse, 2 csr
    TShape  storage shape          (sparse only)
    TShape  shape                  int32 ndim, then int64 x ndim
                                   (ndim 0 in v2, or -1 in v3: an empty
                                   "none" array, nothing follows)
    int32   device type, int32 device id   (context; 1 = cpu, 2 = gpu)
    int32   dtype flag             0 float32, 1 float64, 2 float16, 3 uint8,
                                   4 int32, 5 int8, 6 int64, 7 bool, 8 int16,
                                   9 uint16, 10 uint32, 11 uint64, 12 bfloat16
    (int32 aux dtype, TShape aux shape) x n_aux    (sparse only: row_sparse
                                   has 1 aux array, the row indices; csr has
                                   2, indptr then column indices)
    data    prod(storage shape or shape) values of dtype, C order
    aux data, each aux array in turn              (sparse only)

Older files: version 1 (``0xF993FAC8``) is version 2 without the storage
type; files from before it have no magic at all and start with the shape,
stored as uint32 ndim and uint32 dims. Both are read.

Names of checkpoints saved by ``Module.save_checkpoint`` / ``mx.model``
carry a prefix: ``arg:`` for learned parameters (weights, bias, BN gamma and
beta), ``aux:`` for auxiliary states (BN moving_mean / moving_var).
``read_params`` strips it and returns ``{name: array}``.

Every failure to parse raises ``ValueError`` naming the file: a truncated or
corrupt file never loads partially.
"""

import os
import struct

import numpy as np

LIST_MAGIC = 0x112
NDARRAY_V1_MAGIC = 0xF993FAC8
NDARRAY_V2_MAGIC = 0xF993FAC9
NDARRAY_V3_MAGIC = 0xF993FACA

STORAGE_TYPES = {0: "default", 1: "row_sparse", 2: "csr"}
NUM_AUX = {0: 0, 1: 1, 2: 2}

DTYPES = {
    0: np.dtype("<f4"),
    1: np.dtype("<f8"),
    2: np.dtype("<f2"),
    3: np.dtype("u1"),
    4: np.dtype("<i4"),
    5: np.dtype("i1"),
    6: np.dtype("<i8"),
    7: np.dtype("?"),
    8: np.dtype("<i2"),
    9: np.dtype("<u2"),
    10: np.dtype("<u4"),
    11: np.dtype("<u8"),
    12: "bfloat16",  # read as uint16, widened to float32
}

PREFIXES = ("arg:", "aux:")


class _Reader:
    """Bounds-checked little-endian reader over the bytes of one file."""

    def __init__(self, data, path):
        self.data = data
        self.pos = 0
        self.path = path

    def fail(self, what):
        raise ValueError(
            f"{self.path!r} is not a readable MXNet .params file: {what} "
            f"(at byte {self.pos} of {len(self.data)}). The file may be "
            "truncated or corrupt."
        )

    def take(self, size, what):
        if size < 0 or self.pos + size > len(self.data):
            self.fail(f"unexpected end of file while reading {what}")
        chunk = self.data[self.pos:self.pos + size]
        self.pos += size
        return chunk

    def unpack(self, fmt, what):
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt), what))

    def shape(self, what, legacy_ndim=None, np_shape=False):
        """A TShape; None for "none" (ndim -1, or 0 without numpy shape
        semantics), () for a v3 scalar."""
        if legacy_ndim is not None:  # pre-v1: uint32 ndim (already read), uint32 dims
            ndim, dim_format = legacy_ndim, "I"
        else:
            (ndim,) = self.unpack("i", f"{what} ndim")
            dim_format = "q"
        if ndim < 0 or (ndim == 0 and not np_shape):
            return None
        if ndim == 0:
            return ()
        if ndim > 32:
            self.fail(f"implausible {what} rank {ndim}")
        dims = self.unpack(f"{ndim}{dim_format}", f"{what} dims")
        if any(d < 0 for d in dims):
            self.fail(f"negative dimension in {what} {dims}")
        return tuple(int(d) for d in dims)

    def array(self, dtype_flag, shape, what, skip=False):
        """The array of ``shape`` stored next (None, passed over, with ``skip``)."""
        if dtype_flag not in DTYPES:
            self.fail(f"unknown dtype flag {dtype_flag} for {what}")
        dtype = DTYPES[dtype_flag]
        count = int(np.prod(shape, dtype=np.float64))
        if skip:
            size = count * (2 if dtype == "bfloat16" else dtype.itemsize)
            if self.pos + size > len(self.data):
                self.fail(f"unexpected end of file while reading {what}")
            self.pos += size
            return None
        if dtype == "bfloat16":
            raw = np.frombuffer(self.take(2 * count, what), dtype="<u2")
            values = (raw.astype(np.uint32) << 16).view(np.float32)
        else:
            values = np.frombuffer(self.take(dtype.itemsize * count, what), dtype=dtype)
        return values.reshape(shape).copy()


def _read_ndarray(reader, index, skip=False):
    """The next array (with ``skip``: its declared shape, data passed over)."""
    what = f"array #{index}"
    (magic,) = reader.unpack("I", f"{what} header")
    stype = 0
    storage_shape = None
    if magic in (NDARRAY_V2_MAGIC, NDARRAY_V3_MAGIC):
        (stype,) = reader.unpack("i", f"{what} storage type")
        if stype not in STORAGE_TYPES:
            reader.fail(f"unknown storage type {stype} of {what}")
        np_shape = magic == NDARRAY_V3_MAGIC
        if NUM_AUX[stype]:
            storage_shape = reader.shape(f"{what} storage shape", np_shape=np_shape)
        shape = reader.shape(f"{what} shape", np_shape=np_shape)
    elif magic == NDARRAY_V1_MAGIC:
        shape = reader.shape(f"{what} shape")
    elif magic <= 32:  # legacy: the word read is the shape's ndim
        shape = reader.shape(f"{what} shape", legacy_ndim=magic)
    else:
        reader.fail(f"bad NDArray magic 0x{magic:08X} for {what}")
    if shape is None:
        return (0,) if skip else np.zeros((0,), dtype=np.float32)
    reader.unpack("ii", f"{what} context")  # device type / id: irrelevant here
    (dtype_flag,) = reader.unpack("i", f"{what} dtype")
    aux = []
    for i in range(NUM_AUX[stype]):
        (aux_flag,) = reader.unpack("i", f"{what} aux #{i} dtype")
        aux.append((aux_flag, reader.shape(f"{what} aux #{i} shape") or ()))
    values = reader.array(dtype_flag, storage_shape if stype else shape, f"{what} data", skip)
    aux_values = [reader.array(flag, s, f"{what} aux #{i} data", skip)
                  for i, (flag, s) in enumerate(aux)]
    if skip:
        return shape
    if stype == 0:
        return values
    return _densify(reader, stype, shape, values, aux_values, what)


def _densify(reader, stype, shape, values, aux, what):
    dense = np.zeros(shape, dtype=values.dtype)
    if stype == 1:  # row_sparse: values[i] is row aux[0][i]
        rows = aux[0].astype(np.int64)
        if rows.size and (rows.min() < 0 or rows.max() >= shape[0]):
            reader.fail(f"row index out of range in row_sparse {what}")
        dense[rows] = values
        return dense
    indptr, columns = (a.astype(np.int64) for a in aux)  # csr
    if len(shape) != 2 or indptr.shape != (shape[0] + 1,) or indptr[-1] != values.size:
        reader.fail(f"inconsistent csr index arrays in {what}")
    for row in range(shape[0]):
        cols = columns[indptr[row]:indptr[row + 1]]
        if cols.size and (cols.min() < 0 or cols.max() >= shape[1]):
            reader.fail(f"column index out of range in csr {what}")
        dense[row, cols] = values[indptr[row]:indptr[row + 1]]
    return dense


def read_ndarray_file(path, read=None):
    """Reads an MXNet NDArray file: returns ``(names, arrays)``.

    ``names`` is empty for a file saved from a plain list. Sparse arrays are
    returned dense, bfloat16 as float32, other dtypes as stored. With
    ``read`` (``(names, declared shapes) -> indices``), only the arrays at
    those indices are read; the others are None.
    """
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as error:
        raise ValueError(f"Cannot read the MXNet .params file {path!r}: {error}") from error
    if read is None:
        return _parse(data, path)
    names, shapes = _parse(data, path, lambda index: False)
    wanted = set(read(names, shapes))
    names, arrays = _parse(data, path, lambda index: index in wanted)
    return names, [a if i in wanted else None for i, a in enumerate(arrays)]


def _parse(data, path, wanted=None):
    """(names, arrays) of the file's bytes; arrays for which ``wanted(index)``
    is false are not read (their declared shapes stand in)."""
    reader = _Reader(data, path)
    if len(data) < 16:
        reader.fail("file shorter than the 16-byte header")
    header, _reserved = reader.unpack("QQ", "file header")
    if header != LIST_MAGIC:
        reader.fail(f"bad file magic 0x{header:X} (expected 0x{LIST_MAGIC:X})")
    (count,) = reader.unpack("Q", "array count")
    if count > len(data):
        reader.fail(f"implausible array count {count}")
    arrays = [_read_ndarray(reader, i, skip=wanted is not None and not wanted(i))
              for i in range(count)]
    (name_count,) = reader.unpack("Q", "name count")
    if name_count not in (0, count):
        reader.fail(f"{name_count} names for {count} arrays")
    names = []
    for i in range(name_count):
        (length,) = reader.unpack("Q", f"length of name #{i}")
        raw = reader.take(length, f"name #{i}")
        try:
            names.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            reader.fail(f"name #{i} is not UTF-8")
    if reader.pos != len(data):
        reader.fail(f"{len(data) - reader.pos} unexpected trailing bytes")
    return names, arrays


def read_params(path, select=None):
    """``{name: numpy array}`` of an MXNet checkpoint, ``arg:``/``aux:``
    prefixes removed (a name present under both prefixes is an error).

    ``select({name: shape}) -> names`` sees the declared shapes before any
    array is read (a sparse array's dense shape is allocated only when read)
    and picks the arrays to read (None: all).
    """
    path = os.fspath(path)

    def keys(names, count):
        if count and not names:
            raise ValueError(
                f"{path!r} holds {count} unnamed arrays (saved from "
                "a list); a checkpoint needs named parameters."
            )
        found = {}
        for index, name in enumerate(names):
            key = name[4:] if name.startswith(PREFIXES) else name
            if key in found:
                raise ValueError(f"{path!r} holds parameter {key!r} twice ({name!r}).")
            found[key] = index
        return found

    def read(names, shapes):
        found = keys(names, len(shapes))
        wanted = set(found) if select is None else set(
            select({key: shapes[index] for key, index in found.items()}))
        return [index for key, index in found.items() if key in wanted]

    names, arrays = read_ndarray_file(path, read)
    return {key: arrays[index] for key, index in keys(names, len(arrays)).items()
            if arrays[index] is not None}
