"""What each publisher gives to check its weights files, and the checks.

The strongest check a publisher gives, per file (``check_for``):

- "full hash": the md5 or sha256 the publisher lists (keras.applications'
  constants), recorded as ``PretrainedCfg.file_hash``;
- "hub header": the sha256 the Hugging Face hub serves for an LFS file
  (``X-Linked-Etag``), recorded as ``file_hash`` where it is known;
- "git blob id": a file at a pinned commit of a git repository (raw GitHub
  URLs), checked against the blob id its git tree gives,
  ``sha1(b"blob %d\\0" % size + content)``, recorded as
  ``file_hash="git-blob:<40 hex>"``;
- "filename prefix": torch hub's convention (``torch.hub.check_hash``): a
  checkpoint named ``<name>-<first 8+ hex digits of its sha256>.pth``, as
  timm's GitHub release assets are;
- "first use": nothing published; the file's sha256 is recorded on first
  download and checked afterwards.
"""

import dataclasses
import hashlib
import os
import re
from typing import Optional
from urllib.parse import urlparse

FULL = "full hash"
HEADER = "hub header"
GIT_BLOB = "git blob id"
PREFIX = "filename prefix"
FIRST_USE = "first use"
KINDS = (FULL, HEADER, GIT_BLOB, PREFIX, FIRST_USE)

GIT_BLOB_TAG = "git-blob:"
HUB_HOSTS = ("huggingface.co",)
# torch.hub's HASH_REGEX (r"-([a-f0-9]*)\.") on the file name, at least 8 digits.
_TORCH_HUB_NAME = re.compile(r"-([a-f0-9]{8,64})\.[A-Za-z0-9.]+$")
_HEX = re.compile(r"^[0-9a-f]+$")


@dataclasses.dataclass(frozen=True)
class Check:
    """How one file is checked: ``kind`` (one of ``KINDS``), the digest
    ``algorithm`` ("md5", "sha256", "git-blob") and the ``expected`` digest
    (a prefix for "filename prefix"; None for "first use")."""

    kind: str
    algorithm: str = "sha256"
    expected: Optional[str] = None

    @property
    def published(self):
        return self.kind != FIRST_USE

    def describe(self):
        """What a mismatch is measured against, for messages and ``info``."""
        return {
            FULL: f"published {self.algorithm}",
            HEADER: "sha256 the hub publishes (X-Linked-Etag)",
            GIT_BLOB: "git blob id in the publisher's git tree",
            PREFIX: "sha256 prefix in its published file name (torch hub convention)",
            FIRST_USE: "sha256 recorded on first use",
        }[self.kind]

    def digest(self, path):
        return file_digest(path, self.algorithm)

    def accepts(self, digest):
        if self.expected is None:
            return True
        if self.kind == PREFIX:
            return digest.startswith(self.expected)
        return digest == self.expected


def check_for(url, file_hash):
    """The ``Check`` of the file at ``url`` with the recorded ``file_hash``."""
    if file_hash:
        file_hash = file_hash.strip().lower()
        if file_hash.startswith(GIT_BLOB_TAG):
            blob = file_hash[len(GIT_BLOB_TAG):]
            if len(blob) != 40 or not _HEX.match(blob):
                raise ValueError(f"{file_hash!r} is not a git blob id (40 hex digits).")
            return Check(GIT_BLOB, "git-blob", blob)
        if len(file_hash) not in (32, 64) or not _HEX.match(file_hash):
            raise ValueError(f"{file_hash!r} is neither an md5 (32 hex digits) nor a sha256 "
                             "(64).")
        algorithm = "sha256" if len(file_hash) == 64 else "md5"
        host = urlparse(url).hostname or ""
        kind = HEADER if algorithm == "sha256" and host in HUB_HOSTS else FULL
        return Check(kind, algorithm, file_hash)
    match = _TORCH_HUB_NAME.search(os.path.basename(urlparse(url).path))
    if match:
        return Check(PREFIX, "sha256", match.group(1))
    return Check(FIRST_USE)


def file_digest(path, algorithm="sha256", chunk_size=1 << 20):
    """The hex digest of a file: "md5", "sha256", or "git-blob" (git's
    content id, a sha1 of ``blob <size>\\0`` and the content)."""
    if algorithm == "git-blob":
        digest = hashlib.sha1(b"blob %d\0" % os.path.getsize(path))
    else:
        digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def mismatch_message(path, check, actual):
    """One line: the file, what it was checked against, both digests."""
    return (f"The weights file {os.fspath(path)} does not match its {check.describe()}: "
            f"expected {check.expected}, found {actual}")


__all__ = ["Check", "KINDS", "check_for", "file_digest", "mismatch_message"]
