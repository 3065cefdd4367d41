"""Same-host handoff: a result's open file instead of its bytes.

When the service keeps blobs on a local disk and a user's server runs on the
same machine (the local and Docker deployments), copying a result through HTTP
is wasted work: the service can pass the server an open, read-only file
descriptor of the blob over a Unix socket (``SCM_RIGHTS``), and the server
links or copies it into its hot tier inside the kernel.

Protocol (``jupyterhub_civis.protocol``), one request per connection: the
client sends one JSON line ``{"token": <Hub token>, "id": <result id>}``
(``HandoffRequest``); the service answers one JSON line (``handoff_reply``)
``{"status": 200, "result": {...}}`` with the descriptor attached, or
``{"status": 400|403|404|408|503, "message": ...}`` without. Authorisation is
exactly the HTTP API's (``auth.identify``): the token must carry the service's
access scope, and only the token's own user's results are handed out ("not
yours" and "missing" are the same 404). Nothing is ever written through this
socket.

The socket is the service's own (mode ``0600`` unless configured otherwise),
serves at most ``max_connections`` connections at once (more wait in the
kernel's backlog), closes a connection that sends no request within
``idle_timeout`` seconds, and keeps accepting after the process runs out of
file descriptors (it logs, waits a moment and goes on).
"""

from __future__ import annotations

import array
import asyncio
import errno
import os
import socket

from jupyterhub_civis.errors import InvalidInput
from jupyterhub_civis.protocol import (
    HANDOFF_MAX_REQUEST,
    handoff_reply,
    parse_handoff_request,
    valid_result_id,
)
from jupyterhub_civis.service import policy
from jupyterhub_civis.service.shares.grants import read_result_now
from jupyterhub_civis.service.store import NotFound

MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes on Linux
#: accept() errors that mean "out of resources for now", not "socket broken"
RESOURCE_ERRORS = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
RESOURCE_BACKOFF = 0.1  # seconds before accepting again after a resource error


class HandoffServer:
    def __init__(
        self,
        path: str,
        *,
        identify,
        store,
        run,
        on_served,
        log,
        mode: int = 0o600,
        max_connections: int = 64,
        idle_timeout: float = 10,
        read=None,
        current_groups=None,
    ):
        if len(os.fsencode(path)) > MAX_SOCKET_PATH:
            raise ValueError(
                f"handoff_socket path is longer than {MAX_SOCKET_PATH} bytes "
                f"(a Unix socket limit): {path}"
            )
        self.path = path
        self.identify = identify  # async (token=…) -> Caller: the HTTP API's own check
        self.store = store
        #: (caller, result id, touch=False) -> ResultInfo or NotFound, blocking: whom a
        #: result may reach (default: its owner's servers; the app adds reads through
        #: shares). The read is marked recently used (``store.touch``) after the reply:
        #: the service's database commits durably, and the server waits for the reply
        self.read = read or (lambda caller, rid, touch: store.get(caller.user, rid, touch=touch))
        #: async (token, user) -> the user's Hub groups now: asked when only a group
        #: audience of a share could let ``read`` grant the result (``shares.grants``)
        self.current_groups = current_groups
        self.run = run  # run a blocking call in the service's I/O pool
        self.on_served = on_served  # metrics callback: (status: int) -> None
        self.log = log
        self.mode = mode
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self._sock: socket.socket | None = None
        self._task: asyncio.Task | None = None
        self._slots: asyncio.Semaphore | None = None
        self._exhausted = False  # logging state: one line per episode, not per attempt

    def start(self) -> None:
        if os.path.exists(self.path):
            os.unlink(self.path)  # a previous run's socket; nothing listens on it any more
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        # bind under a temporary name, set the mode, then rename: the socket never
        # exists under its real name with the umask's permissions
        staging = f"{self.path}.{os.getpid()}.tmp"
        try:
            sock.bind(staging)
            os.chmod(staging, self.mode)
            sock.listen(128)
            os.replace(staging, self.path)
        except BaseException:
            sock.close()
            if os.path.exists(staging):
                os.unlink(staging)
            raise
        sock.setblocking(False)
        self._sock = sock
        self._slots = asyncio.Semaphore(self.max_connections)
        self._task = asyncio.ensure_future(self._accept_loop())

    def stop(self) -> None:
        if self._task:
            self._task.cancel()
        if self._sock:
            self._sock.close()
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass

    async def _accept_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if self._slots.locked():
                self.log.warning(
                    "handoff: %d connections open (handoff_max_connections); "
                    "new ones wait until one ends",
                    self.max_connections,
                )
            await self._slots.acquire()
            try:
                conn, _ = await loop.sock_accept(self._sock)
            except OSError as e:
                self._slots.release()
                if self._sock.fileno() == -1:
                    return  # stopped
                await self._accept_failed(e)
                continue
            if self._exhausted:
                self._exhausted = False
                self.log.warning("handoff: accepting connections again")
            task = asyncio.ensure_future(self._serve(conn))
            task.add_done_callback(lambda _: self._slots.release())

    async def _accept_failed(self, e: OSError) -> None:
        if e.errno in RESOURCE_ERRORS:
            if not self._exhausted:
                self._exhausted = True
                self.log.warning(
                    "handoff: cannot accept connections (%s); retrying every %.1f s",
                    os.strerror(e.errno),
                    RESOURCE_BACKOFF,
                )
        else:
            self.log.error("handoff: accept failed: %s", e)
        await asyncio.sleep(RESOURCE_BACKOFF)

    async def _serve(self, conn: socket.socket) -> None:
        status, fd, served = 500, None, None
        try:
            request = await asyncio.wait_for(self._read_line(conn), self.idle_timeout)
            status, line, fd, served = await self._answer(request)
        except TimeoutError:
            self.log.warning(
                "handoff: closed a connection that sent no request in %.1f s", self.idle_timeout
            )
            status = 408
            line = handoff_reply(408, message=f"no request within {self.idle_timeout:g} s")
        except ValueError as e:
            status, line = 400, handoff_reply(400, message=f"bad request: {e}")
        except OSError as e:
            self.log.warning("handoff: request failed: %s", e)
            status, line = 503, handoff_reply(503, message="the service is busy; use HTTP")
        except Exception:
            self.log.exception("handoff request failed")
            line = handoff_reply(500, message="internal error")
        try:
            if fd is None:
                conn.sendall(line)
            else:
                rights = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))]
                conn.sendmsg([line], rights)
        except OSError as e:
            self.log.debug("handoff reply not delivered: %s", e)
        finally:
            if fd is not None:
                os.close(fd)
            conn.close()
            self.on_served(status)
        if served is not None:
            try:
                await self.run(self.store.touch, served)
            except Exception:
                self.log.exception("handoff: marking result %s used failed", served)

    async def _read_line(self, conn: socket.socket) -> bytes:
        loop = asyncio.get_running_loop()
        data = b""
        while b"\n" not in data:
            chunk = await loop.sock_recv(conn, 4096)
            if not chunk:
                break
            data += chunk
            if len(data) > HANDOFF_MAX_REQUEST:
                raise ValueError("request too large")
        return data.split(b"\n", 1)[0]

    async def _answer(self, raw: bytes) -> tuple[int, bytes, int | None, str | None]:
        """(status, reply line, descriptor to send, id of the result served)."""
        try:
            request = parse_handoff_request(raw)
        except InvalidInput as e:
            return 400, handoff_reply(400, message=str(e)), None, None
        caller = await self.identify(token=request.token)
        if caller.user is None:
            message = "a Hub user token with access to this service is required"
            return 403, handoff_reply(403, message=message), None, None
        not_found = (404, handoff_reply(404, message=policy.NOT_FOUND), None, None)
        if not valid_result_id(request.id):
            return not_found
        try:
            info = await read_result_now(
                self.run, self._read_and_open, caller, request.id,
                lambda: self.current_groups(request.token, caller.user),
            )
        except (NotFound, FileNotFoundError):
            return not_found
        return 200, handoff_reply(200, result=info[0].to_json()), info[1], info[0].id

    def _read_and_open(self, caller, result_id, **kwargs):
        """One hop to the I/O pool for both: the result's info and its open file."""
        info = self.read(caller, result_id, touch=False, **kwargs)
        return info, self.store.open_local_blob(info.id)
