"""One result blob being written (a step of ``DurableStore``'s put protocol)."""

from __future__ import annotations

import logging
import os
import time
from typing import TYPE_CHECKING

from jupyterhub_civis.service.engine import private_file

if TYPE_CHECKING:
    from jupyterhub_civis.service.store import DurableStore

log = logging.getLogger("jupyterhub_civis.service")


class BlobUpload:
    """One blob being written; chunks are appended in arrival order."""

    def __init__(self, store: DurableStore, upload_id: str, owner: str):
        self.store = store
        self.id = upload_id
        self.owner = owner
        self.size = 0
        self.head = b""
        self.tail = b""
        path = store.blob_path(upload_id)
        if store.blobs_are_local:
            fd = private_file(path, os.O_WRONLY | os.O_TRUNC)
            self._file = os.fdopen(fd, "wb")
        else:
            self._file = store.fs.open(path, "wb")
        self._last_beat = time.monotonic()

    def write(self, chunk: bytes) -> None:
        self._file.write(chunk)
        self.size += len(chunk)
        if len(self.head) < 8:
            self.head = (self.head + bytes(chunk[:8]))[:8]
        self.tail = (self.tail + bytes(chunk[-8:]))[-8:]
        if time.monotonic() - self._last_beat > self.store.heartbeat_interval:
            self._last_beat = time.monotonic()
            self.store.heartbeat(self.id)

    def close(self) -> None:
        f = self._file
        if f is None:
            return
        self._file = None
        if self.store.blobs_are_local:
            f.flush()
            os.fsync(f.fileno())
        f.close()  # an object store's upload completes here

    def abort(self) -> None:
        try:
            if self._file is not None:
                f, self._file = self._file, None
                if hasattr(f, "discard"):
                    f.discard()  # s3fs: abort the multipart upload
                    f.closed = True  # never let a later close() upload the rest
                else:
                    f.close()
        except Exception:
            log.debug("closing aborted upload %s failed", self.id, exc_info=True)
        self.store.forget_upload(self.id)
