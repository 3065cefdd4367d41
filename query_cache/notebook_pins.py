"""The notebook pins part of the query manager: which result each notebook's
queries showed (written into the notebook by the pre-save hook), and their
protection in the store."""

from __future__ import annotations

import concurrent.futures
import time
from typing import TYPE_CHECKING

from jupyterhub_civis.query_cache import keys, pins

if TYPE_CHECKING:
    from jupyterhub_civis.query_cache.records import QueryRecord


class NotebookPins:
    """Mixed into ``QueryManager``: it provides ``store``, ``store_executor``,
    ``notebook_pins``, ``log`` and ``_in_store_thread``."""

    def _record_pin(self, record: QueryRecord) -> concurrent.futures.Future | None:
        if not record.notebook or record.result is None:
            return None
        book = self.notebook_pins.setdefault(record.notebook, {})
        old = book.get(record.key)
        book[record.key] = {
            "result_id": record.result.result_id,
            "sql": pins.excerpt(record.sql),
            "connection": record.connection,
            "mode": record.mode,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.result.created)),
            "rows": record.result.rows,
            "key_version": keys.KEY_VERSION,
        }
        replaced = old["result_id"] if old and old["result_id"] != record.result.result_id else None
        return self.store_executor.submit(
            self._store_pin, record.result.result_id, record.notebook, replaced
        )

    def _store_pin(self, result_id: str, notebook: str, replaced: str | None):
        try:
            self.store.pin(result_id, notebook)
            if replaced:
                self.store.unpin(replaced, notebook)
        except Exception:
            self.log.exception("query cache: pinning %s for %s failed", result_id, notebook)

    def pins_for(self, notebook_path: str) -> dict[str, dict]:
        return dict(self.notebook_pins.get(notebook_path, {}))

    async def protect_pins(self, notebook_path: str, metadata: dict | None) -> None:
        """Pins found in a notebook protect their results in this store too."""
        await self._in_store_thread(self._protect_pins, notebook_path, metadata)

    def _protect_pins(self, notebook_path, metadata):
        for pin in pins.pins_from_metadata(metadata).values():
            if self.store.exists(pin["result_id"]):
                self.store.pin(pin["result_id"], notebook_path)
