"""Kernel-side client: ``query(...)`` -> pandas DataFrame, ``query_arrow(...)`` -> pyarrow Table.

It finds its own server, in this order:

1. ``CIVIS_QUERY_CACHE_URL`` (+ ``CIVIS_QUERY_CACHE_TOKEN``), if set;
2. under JupyterHub, ``JUPYTERHUB_SERVICE_URL`` with ``JUPYTERHUB_API_TOKEN``;
3. the jupyter-server runtime file of the server that started this kernel
   (the ``jpserver-<pid>.json`` whose pid is this process's parent).

It tells the server its kernel id so the server can pin results in the
notebook that runs the kernel. Results come as an Arrow IPC file mapped from
disk when the kernel sees the server's filesystem, else as an Arrow IPC stream.
Interrupting the kernel cancels the warehouse query.
"""

from __future__ import annotations

import base64
import glob
import html
import http.client
import json
import os
import re
import threading
import urllib.parse
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from jupyterhub_civis import envvars
from jupyterhub_civis.query_cache import result_types

FINAL = ("done", "failed", "cancelled")


class QueryError(Exception):
    """The query failed (warehouse message), was cancelled, or was rejected.

    In IPython it shows as a few lines (``_render_traceback_``): the warehouse's
    message, its SQLSTATE, the query's first line and the status page, instead
    of a traceback through this client's internals."""

    def __init__(self, message: str, *, sqlstate=None, sql=None, status_page=None):
        super().__init__(message)
        self.message, self.sqlstate, self.sql, self.status_page = (
            message,
            sqlstate,
            sql,
            status_page,
        )

    def _render_traceback_(self) -> list[str]:
        lines = [f"QueryError: {self.message}"]
        if self.sqlstate:
            lines.append(f"SQLSTATE {self.sqlstate}")
        if self.sql:
            first = self.sql.strip().splitlines()[0] if self.sql.strip() else ""
            more = " …" if len(self.sql.strip().splitlines()) > 1 else ""
            lines.append(f"query: {first}{more}")
        if self.status_page:
            lines.append(f"status page: {self.status_page}")
        return lines


@dataclass
class ServerInfo:
    url: str  # ends with "/"
    token: str
    base_path: str = ""  # the server's path as the browser sees it, ends with "/"

    @property
    def status_page(self) -> str | None:
        return self.base_path + "civis/queries/status" if self.base_path else None


def _runtime_dir() -> str:
    try:
        from jupyter_core.paths import jupyter_runtime_dir

        return jupyter_runtime_dir()
    except Exception:
        return os.environ.get(
            "JUPYTER_RUNTIME_DIR", os.path.expanduser("~/.local/share/jupyter/runtime")
        )


def find_server(environ=os.environ) -> ServerInfo:
    if environ.get(envvars.QUERY_CACHE_URL):
        url = environ[envvars.QUERY_CACHE_URL].rstrip("/") + "/"
        return ServerInfo(
            url, environ.get(envvars.QUERY_CACHE_TOKEN, ""), urllib.parse.urlsplit(url).path
        )
    if environ.get("JUPYTERHUB_SERVICE_URL") and environ.get("JUPYTERHUB_API_TOKEN"):
        # the browser reaches this server through the hub's proxy at its prefix
        prefix = environ.get("JUPYTERHUB_SERVICE_PREFIX") or "/"
        return ServerInfo(
            environ["JUPYTERHUB_SERVICE_URL"].rstrip("/") + "/",
            environ["JUPYTERHUB_API_TOKEN"],
            prefix.rstrip("/") + "/",
        )
    candidates = []
    for path in glob.glob(os.path.join(_runtime_dir(), "jpserver-*.json")):
        try:
            with open(path) as f:
                info = json.load(f)
        except (OSError, ValueError):
            continue
        candidates.append(info)
    parent = [c for c in candidates if c.get("pid") == os.getppid()]
    chosen = parent or (candidates if len(candidates) == 1 else [])
    if not chosen:
        raise QueryError(
            "cannot find the Jupyter server for this kernel (no JupyterHub environment and no "
            "matching jpserver-*.json runtime file); set CIVIS_QUERY_CACHE_URL"
        )
    info = chosen[0]
    base = (info.get("base_url") or "/").rstrip("/") + "/"
    return ServerInfo(info["url"].rstrip("/") + "/", info.get("token", ""), base)


def _kernel_id() -> str | None:
    try:
        from ipykernel.connect import get_connection_file

        m = re.search(r"kernel-(.+)\.json$", os.path.basename(get_connection_file()))
        return m.group(1) if m else None
    except Exception:
        return None


class _Api:
    """Requests to the server over kept-alive connections (one TCP handshake and one
    server-side accept per kernel, not per request). A connection is given back only
    after a complete answer: an interrupt or error closes it, which is how the server
    learns that a waiting submit was abandoned (and cancels it)."""

    _idle: dict[tuple[str, str], list[http.client.HTTPConnection]] = {}
    _idle_pid = os.getpid()  # a forked child never shares its parent's sockets
    _lock = threading.Lock()

    def __init__(self, server: ServerInfo):
        self.server = server

    def _connection(self, scheme: str, netloc: str, timeout: float):
        with self._lock:
            if _Api._idle_pid != os.getpid():
                _Api._idle, _Api._idle_pid = {}, os.getpid()
            idle = _Api._idle.get((scheme, netloc))
            conn = idle.pop() if idle else None
        if conn is None:
            kind = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
            return kind(netloc, timeout=timeout), False
        conn.timeout = timeout
        if conn.sock is not None:
            conn.sock.settimeout(timeout)
        return conn, True

    def _give_back(self, scheme: str, netloc: str, conn, resp) -> None:
        if resp.will_close:
            conn.close()
            return
        with self._lock:
            _Api._idle.setdefault((scheme, netloc), []).append(conn)

    def request(
        self, method: str, path: str, body: Any = None, *, raw: bool = False, timeout: float = 120
    ):
        url = urllib.parse.urlsplit(self.server.url + path)
        headers = {"Authorization": f"token {self.server.token}"} if self.server.token else {}
        data = (
            json.dumps(body).encode() if body is not None else (b"" if method == "POST" else None)
        )
        if body is not None:
            headers["Content-Type"] = "application/json"
        target = url.path + (f"?{url.query}" if url.query else "")
        while True:
            conn, reused = self._connection(url.scheme, url.netloc, timeout)
            try:
                conn.request(method, target, data, headers)
                resp = conn.getresponse()
                payload = resp.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as e:
                conn.close()
                if reused:
                    continue  # the server closed this idle connection: nothing was sent
                raise QueryError(
                    f"cannot reach this server's query cache at {url.netloc}: {e}"
                ) from None
            except OSError as e:
                conn.close()
                raise QueryError(
                    f"cannot reach this server's query cache at {url.netloc}: {e}"
                ) from None
            except BaseException:
                # an interrupt included: the server cancels a query whose submit
                # was still waiting for this connection
                conn.close()
                raise
            break
        self._give_back(url.scheme, url.netloc, conn, resp)
        if resp.status >= 400:
            try:
                message = json.loads(payload).get("message") or resp.reason
            except Exception:
                message = f"HTTP {resp.status} {resp.reason}"
            raise QueryError(message)
        return payload if raw else json.loads(payload)


class _Progress:
    """An in-place progress display in the notebook (no-op outside IPython)."""

    def __init__(self, show: bool, status_page: str | None = None):
        self.handle = None
        self.last = None
        self.status_page = status_page
        if not show:
            return
        try:
            from IPython import get_ipython

            if get_ipython() is None:
                return
            from IPython.display import display

            self.handle = display(
                self._bundle({"state": "submitting", "elapsed": 0, "rows": 0}),
                raw=True,
                display_id=True,
            )
        except Exception:
            self.handle = None

    def _bundle(self, status: dict) -> dict:
        state = status.get("state")
        text = f"query {state} · {status.get('elapsed', 0):.1f} s · {status.get('rows', 0):,} rows"
        if status.get("cache"):
            text += f" · cache {status['cache']}"
        if status.get("error") and state not in ("cancelled", "failed"):
            text += f" · {status['error']}"
        markup = f"<code>{html.escape(text)}</code>"
        if self.status_page:
            markup += (
                f' · <a href="{html.escape(self.status_page)}" target="_blank"'
                ' rel="noopener">status page</a>'
            )
        return {"text/plain": text, "text/html": markup}

    def update(self, status: dict):
        if self.handle is None:
            return
        view = (status.get("state"), status.get("rows"), round(status.get("elapsed", 0), 1))
        if view == self.last:
            return
        self.last = view
        try:
            self.handle.update(self._bundle(status), raw=True)
        except Exception:
            pass


def deliverable(kind: str, *, server: ServerInfo | None = None) -> None:
    """Declare what this notebook is, from now on and in its metadata when saved:

    - ``"analysis"``: queries are reproducible — a re-run serves the result pinned
      in the notebook (even if the data changed or the warehouse is down);
    - ``"report"``: every run queries the warehouse (and records what it showed).
    """
    kernel_id = _kernel_id()
    if not kernel_id:
        raise QueryError("deliverable() works in a notebook's kernel")
    _Api(server or find_server()).request(
        "POST", "civis/notebook", {"kernel_id": kernel_id, "deliverable": kind}
    )


def _read_result(api: _Api, status: dict) -> pa.Table:
    if status.get("inline"):  # a small result, in the answer itself
        return pa.ipc.open_file(pa.py_buffer(base64.b64decode(status["inline"]))).read_all()
    path = status.get("result_path")
    if path and os.path.exists(path) and os.path.getsize(path) == status.get("bytes"):
        try:
            return pa.ipc.open_file(pa.memory_map(path, "r")).read_all()
        except (OSError, pa.ArrowInvalid):
            pass  # evicted or not ours to read: fall back to the stream
    payload = api.request("GET", f"civis/queries/{status['id']}/result", raw=True, timeout=600)
    return pa.ipc.open_stream(payload).read_all()


def _query_stored(
    sql: str,
    params: list | dict | None = None,
    *,
    connection: str = "default",
    mode: str | None = None,
    max_age: float | None = None,
    progress: bool = True,
    server: ServerInfo | None = None,
) -> pa.Table:
    """The stored result, as the warehouse gave it (see :mod:`.result_types`)."""
    api = _Api(server or find_server())
    body = {
        "sql": sql,
        "params": params,
        "connection": connection,
        "mode": mode,
        "max_age": max_age,
        "wait": 0.5,  # a short query is done in the submit's answer
    }
    kernel_id = _kernel_id()
    if kernel_id:
        body["kernel_id"] = kernel_id
    display = _Progress(progress, api.server.status_page)
    try:
        # an interrupt here closes the connection, which cancels the query
        status = api.request("POST", "civis/queries", body)
    except QueryError as e:
        display.update({"state": "rejected", "elapsed": 0, "rows": 0})
        raise QueryError(e.message, sql=sql) from None
    except KeyboardInterrupt:
        display.update({"state": "cancelled", "elapsed": 0, "rows": 0})
        raise KeyboardInterrupt("query cancelled") from None
    try:
        while status["state"] not in FINAL:
            display.update(status)
            # until it ends (a short query: one answer) or 0.5 s pass (progress)
            status = api.request("GET", f"civis/queries/{status['id']}?wait=0.5&final=1")
    except KeyboardInterrupt:
        try:
            status = api.request("POST", f"civis/queries/{status['id']}/cancel", timeout=30)
            display.update(status)
        finally:
            raise KeyboardInterrupt("query cancelled") from None
    display.update(status)
    if status["state"] in ("failed", "cancelled"):
        message = status.get("error") or "query failed"
        raise QueryError(
            "query cancelled" if status["state"] == "cancelled" else message,
            sqlstate=status.get("sqlstate"),
            sql=sql,
            status_page=api.server.status_page,
        ) from None
    return _read_result(api, status)


def query_arrow(sql: str, params: list | dict | None = None, **kwargs) -> pa.Table:
    """Run ``sql`` through this server's query cache; return a pyarrow Table.

    ``mode``: ``"reproducible"`` or ``"refresh"`` (default: the notebook's, else
    the server's). ``max_age``: reuse a stored result at most this many seconds old.
    PostgreSQL ``numeric`` is exact: ``decimal128`` (or its text beyond 38 digits).
    """
    return result_types.for_arrow(_query_stored(sql, params, **kwargs))


def query(sql: str, params: list | dict | None = None, *, exact_decimals: bool = False, **kwargs):
    """Like :func:`query_arrow`, returning a pandas DataFrame with the types
    ``pandas.read_sql`` gives (``numeric`` -> float64; ``exact_decimals=True``
    keeps ``decimal.Decimal`` values instead)."""
    stored = _query_stored(sql, params, **kwargs)
    return result_types.for_pandas(stored, exact_decimals=exact_decimals)
