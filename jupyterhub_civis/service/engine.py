"""The service's database engine and its private files (SQLite, blob folder, blobs).

Everything the service writes on its machine belongs to its OS user alone,
whatever the umask: folders ``0700``, files ``0600``.
"""

from __future__ import annotations

import os

import sqlalchemy as sa

PRIVATE_DIR, PRIVATE_FILE = 0o700, 0o600


def private_dir(path: str) -> None:
    """Create ``path`` (and parents) if needed; make it the service's alone, whatever the umask."""
    os.makedirs(path, mode=PRIVATE_DIR, exist_ok=True)
    os.chmod(path, PRIVATE_DIR)


def private_file(path: str, flags: int = os.O_RDONLY) -> int:
    """Open (creating) ``path`` readable by the service alone, whatever the umask."""
    fd = os.open(path, flags | os.O_CREAT | os.O_CLOEXEC, PRIVATE_FILE)
    os.fchmod(fd, PRIVATE_FILE)
    return fd


def _private_sqlite(db_url: str) -> None:
    """The SQLite file (its -wal and -shm files get its mode from SQLite) is private."""
    path = sa.engine.make_url(db_url).database
    if not path or path == ":memory:" or path.startswith("file:"):
        return
    os.close(private_file(path))
    for companion in (path + "-wal", path + "-shm"):
        if os.path.exists(companion):
            os.chmod(companion, PRIVATE_FILE)


def make_engine(db_url: str) -> sa.Engine:
    if db_url.startswith("sqlite"):
        _private_sqlite(db_url)
        engine = sa.create_engine(db_url, connect_args={"check_same_thread": False, "timeout": 30})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    return sa.create_engine(db_url, pool_pre_ping=True)
