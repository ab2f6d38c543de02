"""The jobcenter client and worker: JSON-RPC 2.0 to the jcapi gateway, on asyncio.

A :class:`Client` creates jobs and waits for them (``call``, ``call_nb``, ``wait_job``,
``get_job_status``, ``cancel_job``, ``retry_job``, ``raise_event``), and serves actions as a
worker (``announce`` a handler, then ``work`` until ``stop``). It speaks the original
JobCenter protocol: the server greets, the client says ``hello``; jobs end with a ``job_done``
notification; tasks are offered with ``task_ready``, taken with ``get_task`` and finished with
the ``task_done`` notification; the server's ``ping`` is answered with ``"pong"``.

A worker uses the gateway's batched calls (``batched=True``, the default): an offer makes it
ask for as many tasks as it has free slots (``get_tasks``), and results finished while a
``tasks_done`` is on its way go together in the next one. A gateway without them (it answers
"no method") is served with ``get_task`` and ``task_done`` instead.

No finished result is dropped because the gateway went away: a ``tasks_done`` that got no
answer, a ``task_done`` notification that could not be written, and a result finished while
disconnected are kept and sent again on the next connection, after its announcements, until
the gateway answers (applied, or refused: a refusal such as an unknown cookie is final and
logged). A resend is harmless, since a cookie finishes its task once. A ``task_done``
notification that was written but lost with the gateway cannot be known lost (it has no
answer); the batched calls have none of that gap. Read-only calls may simply be called again
after a ``ConnectionLost``; ``call_nb``/``create_job`` must not be blindly repeated, since a
job whose answer was lost may have been created.
"""

from __future__ import annotations

import asyncio
import inspect
import itertools
import json
import logging
import os
import random
import socket
import ssl
import sys
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Dict, List, Optional, Union

from .netstring import DEFAULT_MAX_FRAME
from .transport import Transport, TransportError, open_netstring, open_websocket

__all__ = [
    "Client",
    "Task",
    "TaskError",
    "JobCenterError",
    "RPCError",
    "AuthError",
    "JobError",
    "ConnectionLost",
]

JSON = Any
Handler = Callable[["Task"], Union[JSON, Awaitable[JSON]]]

METHOD_NOT_FOUND = -32601
INVALID_REQUEST = -32600
PARSE_ERROR = -32700


class JobCenterError(Exception):
    """The base of this package's errors."""


class RPCError(JobCenterError):
    """The server answered a call with a JSON-RPC error (or a refusal like ``[null, err]``)."""

    def __init__(self, message: str, code: Optional[int] = None, data: JSON = None) -> None:
        super().__init__(message if code is None else f"{message} (code {code})")
        self.code = code
        self.message = message
        self.data = data


class AuthError(JobCenterError):
    """``hello`` was refused: wrong user, password, token or certificate."""


class ConnectionLost(JobCenterError):
    """The connection closed while a call was waiting for its answer."""


class JobError(JobCenterError):
    """A job ended in error; ``error`` is its error object ``{class, msg, …}``."""

    def __init__(self, job_id: Optional[int], error: JSON) -> None:
        msg = error.get("msg") if isinstance(error, dict) else None
        super().__init__(f"job {job_id} failed: {msg if msg is not None else error}")
        self.job_id = job_id
        self.error = error


class TaskError(Exception):
    """Raise from a handler to fail the task with an error class (``normal``, ``soft``,
    ``fatal``; ``soft`` is retried when the action has a retry policy)."""

    def __init__(self, msg: str, cls: str = "normal", **extra: JSON) -> None:
        super().__init__(msg)
        self.msg = msg
        self.cls = cls
        self.extra = extra

    def to_json(self) -> Dict[str, JSON]:
        return {"class": self.cls, "msg": self.msg, **self.extra}


@dataclass
class Task:
    """One task handed to a worker's handler."""

    actionname: str
    job_id: int
    inargs: Dict[str, JSON]
    env: Dict[str, JSON] = field(default_factory=dict)


@dataclass
class _Action:
    handler: Handler
    slots: int
    slotgroup: Optional[str]
    filter: Optional[Dict[str, JSON]]
    busy: int = 0
    # a get_tasks is on its way; an offer came meanwhile (ask again)
    fetching: bool = False
    again: bool = False

#: The most tasks asked for, or results sent, in one call (the gateway's bound).
_MAX_BATCH = 1000
#: How many job_done that came before anyone waited are kept.
_EARLY_ENDS = 1024
#: JSON-RPC's "no such method".
_NO_METHOD = -32601


def _outargs_error(outargs: JSON) -> JSON:
    """The error object when ``outargs`` is a job's error result, else ``None``."""
    if isinstance(outargs, dict) and "error" in outargs and len(outargs) == 1:
        return outargs["error"]
    return None


class _Connection:
    """One live transport, its reader task and its calls in flight."""

    def __init__(self, client: "Client", transport: Transport) -> None:
        self.client = client
        self.transport = transport
        self.pending: Dict[Any, asyncio.Future] = {}
        self.greetings: asyncio.Future = asyncio.get_running_loop().create_future()
        self.closed = asyncio.Event()
        self.ids = itertools.count(1)
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            while True:
                raw = await self.transport.recv()
                if raw is None:
                    break
                await self._dispatch(raw)
        except (TransportError, ConnectionError, OSError, ssl.SSLError) as e:
            self.client.log.info("connection lost: %s", e)
        except asyncio.CancelledError:
            pass
        finally:
            self._fail_all()

    def _fail_all(self) -> None:
        self.closed.set()
        for fut in self.pending.values():
            if not fut.done():
                fut.set_exception(ConnectionLost("connection closed"))
        self.pending.clear()
        if not self.greetings.done():
            self.greetings.set_exception(ConnectionLost("connection closed before greetings"))
        self.client._connection_closed(self)

    async def _dispatch(self, raw: bytes) -> None:
        try:
            msg = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            await self._send_error(None, PARSE_ERROR, "invalid JSON")
            return
        if not isinstance(msg, dict):
            await self._send_error(None, INVALID_REQUEST, "not a JSON-RPC object")
            return
        if "method" in msg:
            await self._request(msg)
            return
        fut = self.pending.pop(msg.get("id"), None)
        if fut is None or fut.done():
            return
        if "error" in msg and msg["error"] is not None:
            err = msg["error"]
            if isinstance(err, dict):
                fut.set_exception(RPCError(str(err.get("message")), err.get("code"), err.get("data")))
            else:
                fut.set_exception(RPCError(str(err)))
        else:
            fut.set_result(msg.get("result"))

    async def _request(self, msg: Dict[str, JSON]) -> None:
        method = msg.get("method")
        params = msg.get("params") or {}
        has_id = "id" in msg
        if method == "greetings":
            if not self.greetings.done():
                self.greetings.set_result(params)
        elif method == "ping":
            if has_id:
                await self.send({"jsonrpc": "2.0", "id": msg["id"], "result": "pong"})
        elif method == "job_done" and isinstance(params, dict):
            self.client._job_done(params.get("job_id"), params.get("outargs"))
        elif method == "task_ready" and isinstance(params, dict):
            self.client._task_ready(self, params.get("actionname"), params.get("job_id"))
        elif has_id:
            await self._send_error(msg["id"], METHOD_NOT_FOUND, f"no such method '{method}'")

    async def _send_error(self, id_: JSON, code: int, message: str) -> None:
        await self.send({"jsonrpc": "2.0", "id": id_, "error": {"code": code, "message": message}})

    async def send(self, msg: Dict[str, JSON]) -> None:
        if self.closed.is_set():
            raise ConnectionLost("connection closed")
        try:
            await self.transport.send(json.dumps(msg, separators=(",", ":")).encode())
        except (ConnectionError, OSError, RuntimeError) as e:
            raise ConnectionLost(str(e)) from e

    async def call(self, method: str, params: JSON, timeout: Optional[float] = None) -> JSON:
        id_ = next(self.ids)
        fut = asyncio.get_running_loop().create_future()
        self.pending[id_] = fut
        try:
            await self.send({"jsonrpc": "2.0", "id": id_, "method": method, "params": params})
            return await asyncio.wait_for(fut, timeout) if timeout else await fut
        finally:
            self.pending.pop(id_, None)

    async def notify(self, method: str, params: JSON) -> None:
        await self.send({"jsonrpc": "2.0", "method": method, "params": params})

    async def close(self) -> None:
        await self.transport.close()
        self.reader.cancel()
        try:
            await self.reader
        except asyncio.CancelledError:
            pass


class Client:
    """A connection to jcapi, for clients and workers alike.

    Authentication: ``who`` and ``token`` with ``method`` ``"password"`` (the default),
    ``"token"`` for an API token, or ``"clientcert"`` over TLS with ``cert``/``key``.
    Transport: TCP netstrings on ``host``:``port`` (6522), the same over TLS with
    ``tls=True`` (``ca`` to trust a private CA), or WebSocket with ``ws="ws://host:port/"``.
    Use it as ``async with Client(...) as c:`` or call :meth:`connect` and :meth:`close`.
    """

    def __init__(
        self,
        *,
        who: Optional[str] = None,
        token: Optional[str] = None,
        method: str = "password",
        host: str = "localhost",
        port: int = 6522,
        tls: bool = False,
        ca: Optional[str] = None,
        cert: Optional[str] = None,
        key: Optional[str] = None,
        server_hostname: Optional[str] = None,
        ws: Optional[str] = None,
        workername: Optional[str] = None,
        max_frame: int = DEFAULT_MAX_FRAME,
        reconnect: bool = True,
        backoff_initial: float = 0.2,
        backoff_max: float = 30.0,
        call_timeout: Optional[float] = 60.0,
        keepalive: float = 60.0,
        batched: bool = True,
        logger: Optional[logging.Logger] = None,
    ) -> None:
        self.who = who
        self.token = token
        self.method = method
        self.host = host
        self.port = port
        self.ws = ws
        self.server_hostname = server_hostname
        self.max_frame = max_frame
        self.reconnect = reconnect
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.call_timeout = call_timeout
        self.keepalive = keepalive
        self.log = logger or logging.getLogger("jobcenter_client")
        self.workername = workername or (
            f"{who or 'worker'}@{socket.gethostname()}:{os.path.basename(sys.argv[0] or 'python')}:{os.getpid()}"
        )
        self.ssl_context: Optional[ssl.SSLContext] = None
        if tls or cert or (ws and ws.startswith("wss:")):
            ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca)
            if cert:
                ctx.load_cert_chain(certfile=cert, keyfile=key)
            self.ssl_context = ctx
        self.welcome: Optional[str] = None
        self._conn: Optional[_Connection] = None
        self._connect_lock: Optional[asyncio.Lock] = None
        self._jobs: Dict[int, List[asyncio.Future]] = {}
        self._actions: Dict[str, _Action] = {}
        self._tasks: set = set()
        self._stop: Optional[asyncio.Event] = None
        self._stop_early = False
        self._batched = batched
        # finished results waiting for the next tasks_done: (connection, job id, params)
        self._results: List[Any] = []
        self._sending = False
        # results whose connection went away, for the next one: (job id, params)
        self._unsent: List[Any] = []
        # the connection whose announcements are made
        self._announced: Optional[_Connection] = None
        # jobs created here, with their connection; job_done that came before a wait
        self._created: Dict[int, _Connection] = {}
        self._ended: Dict[int, JSON] = {}

    # -- connection ----------------------------------------------------------------------

    async def __aenter__(self) -> "Client":
        await self.connect()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def _open(self) -> Transport:
        if self.ws:
            return await open_websocket(self.ws, self.ssl_context, self.max_frame)
        return await open_netstring(
            self.host, self.port, self.ssl_context, self.server_hostname, self.max_frame
        )

    async def connect(self) -> str:
        """Connects and authenticates; returns the server's welcome message.

        Raises :class:`AuthError` when ``hello`` is refused, ``OSError`` when the server
        cannot be reached.
        """
        if self._connect_lock is None:
            self._connect_lock = asyncio.Lock()
        async with self._connect_lock:
            if self._conn is not None and not self._conn.closed.is_set():
                return self.welcome or ""
            transport = await self._open()
            conn = _Connection(self, transport)
            try:
                greetings = await asyncio.wait_for(conn.greetings, 10)
                if not isinstance(greetings, dict) or greetings.get("who") != "jcapi":
                    raise JobCenterError(f"unexpected greetings {greetings!r}")
                res = await conn.call(
                    "hello",
                    {"who": self.who or "", "method": self.method, "token": self.token or ""},
                    30,
                )
            except BaseException:
                await conn.close()
                raise
            if not (isinstance(res, list) and res and res[0] is True):
                await conn.close()
                reason = res[1] if isinstance(res, list) and len(res) > 1 else res
                raise AuthError(str(reason))
            self._conn = conn
            self.welcome = str(res[1]) if len(res) > 1 else ""
            self.log.info("connected: %s", self.welcome)
            for name, a in self._actions.items():
                await self._announce(conn, name, a)
            self._announced = conn
            self._resend(conn)
            return self.welcome

    async def close(self) -> None:
        """Closes the connection (a worker's announcements end with it)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()

    async def _ensure(self) -> _Connection:
        conn = self._conn
        if conn is not None and not conn.closed.is_set():
            return conn
        if conn is not None and not self.reconnect:
            raise ConnectionLost("connection closed")
        await self.connect()
        if self._conn is None:
            raise ConnectionLost("not connected")
        return self._conn

    def _connection_closed(self, conn: _Connection) -> None:
        if conn is not self._conn:
            return
        for futs in self._jobs.values():
            for f in futs:
                if not f.done():
                    f.set_exception(ConnectionLost("connection closed"))
        self._jobs.clear()
        self._created = {j: c for j, c in self._created.items() if c is not conn}

    async def rpc(self, method: str, params: JSON = None) -> JSON:
        """A raw JSON-RPC call on the current connection (connecting first if needed)."""
        conn = await self._ensure()
        return await conn.call(method, params if params is not None else {}, self.call_timeout)

    # -- client calls ---------------------------------------------------------------------

    async def call_nb(
        self,
        wfname: str,
        inargs: Optional[Dict[str, JSON]] = None,
        *,
        vtag: Optional[str] = None,
        timeout: Optional[Union[int, str]] = None,
        clenv: Optional[Dict[str, JSON]] = None,
        key: Optional[str] = None,
        priority: Optional[int] = None,
    ) -> int:
        """Creates a job and returns its id without waiting for it. With ``key`` (an
        idempotency key), a second create of the workflow with the same key while its job
        lives, or within the server's ``job_key_retention`` after it ended, returns that
        job's id and creates nothing. ``priority`` (-1000 to 1000, default 0) serves the
        job's tasks before those of lower priorities, with aging."""
        params: Dict[str, JSON] = {"wfname": wfname, "inargs": inargs or {}}
        if vtag is not None:
            params["vtag"] = vtag
        if timeout is not None:
            params["timeout"] = timeout
        if clenv is not None:
            params["clenv"] = clenv
        if key is not None:
            params["key"] = key
        if priority is not None:
            params["priority"] = priority
        conn = await self._ensure()
        res = await conn.call("create_job", params, self.call_timeout)
        if isinstance(res, list) and res:
            if res[0] is None:
                err = res[1] if len(res) > 1 else "create_job failed"
                raise RPCError(err.get("msg", str(err)) if isinstance(err, dict) else str(err), data=err)
            # the gateway sends this connection the job's job_done unasked
            self._created[int(res[0])] = conn
            return int(res[0])
        if isinstance(res, dict) and "job_id" in res:
            return int(res["job_id"])
        if isinstance(res, int):
            return res
        raise JobCenterError(f"unexpected create_job result {res!r}")

    async def call(
        self,
        wfname: str,
        inargs: Optional[Dict[str, JSON]] = None,
        *,
        vtag: Optional[str] = None,
        timeout: Optional[Union[int, str]] = None,
        clenv: Optional[Dict[str, JSON]] = None,
        key: Optional[str] = None,
        priority: Optional[int] = None,
    ) -> Dict[str, JSON]:
        """Runs a workflow to its end and returns its outputs; raises :class:`JobError`
        when the job ends in error."""
        job_id = await self.call_nb(
            wfname, inargs, vtag=vtag, timeout=timeout, clenv=clenv, key=key, priority=priority
        )
        return await self.wait_job(job_id)

    async def wait_job(self, job_id: int, timeout: Optional[float] = None) -> Dict[str, JSON]:
        """Waits for a job's end (``job_done``), re-reading its status after a reconnect."""

        async def wait() -> Dict[str, JSON]:
            delay = self.backoff_initial
            while True:
                try:
                    fut = asyncio.get_running_loop().create_future()
                    conn = await self._ensure()
                    self._jobs.setdefault(job_id, []).append(fut)
                    outargs = self._ended.pop(job_id, None)
                    # a job created on this connection gets its job_done unasked
                    created_here = self._created.pop(job_id, None) is conn
                    if outargs is None and not created_here:
                        status = await self.rpc("get_job_status", {"job_id": job_id, "notify": True})
                        outargs = _status_outargs(status)
                    if outargs is None:
                        outargs = await fut
                    self._drop_waiter(job_id, fut)
                    err = _outargs_error(outargs)
                    if err is not None:
                        raise JobError(job_id, err)
                    return outargs
                except (ConnectionLost, ConnectionError, OSError) as e:
                    if not self.reconnect:
                        raise ConnectionLost(str(e)) from e
                    self.log.info("waiting for job %s: %s; reconnecting", job_id, e)
                    await asyncio.sleep(_jitter(delay))
                    delay = min(delay * 2, self.backoff_max)

        return await asyncio.wait_for(wait(), timeout) if timeout else await wait()

    def _drop_waiter(self, job_id: int, fut: asyncio.Future) -> None:
        futs = self._jobs.get(job_id)
        if futs and fut in futs:
            futs.remove(fut)
            if not futs:
                del self._jobs[job_id]

    def _job_done(self, job_id: JSON, outargs: JSON) -> None:
        sent = False
        for fut in self._jobs.pop(job_id, []):
            if not fut.done():
                fut.set_result(outargs)
                sent = True
        self._created.pop(job_id, None)
        if not sent:
            # not waited for yet: kept for the wait_job to come (it can come before
            # create_job's answer is handled, for a job that ended at once or a key's job)
            self._ended[job_id] = outargs
            while len(self._ended) > _EARLY_ENDS:
                self._ended.pop(next(iter(self._ended)))

    async def get_job_status(self, job_id: int) -> Optional[Dict[str, JSON]]:
        """The job's outputs (``{"error": …}`` for a job in error), or ``None`` while it runs."""
        return _status_outargs(await self.rpc("get_job_status", {"job_id": job_id}))

    async def get_job(self, job_id: int) -> JSON:
        """The job's details: state, outputs and step log."""
        return await self.rpc("get_job", {"job_id": job_id})

    async def cancel_job(self, job_id: int, reason: Optional[str] = None) -> JSON:
        params: Dict[str, JSON] = {"job_id": job_id}
        if reason is not None:
            params["reason"] = reason
        return await self.rpc("cancel_job", params)

    async def retry_job(self, job_id: int, reason: Optional[str] = None) -> JSON:
        params: Dict[str, JSON] = {"job_id": job_id}
        if reason is not None:
            params["reason"] = reason
        return await self.rpc("retry_job", params)

    async def raise_event(self, event: Dict[str, JSON]) -> JSON:
        return await self.rpc("raise_event", {"event": event})

    async def find_jobs(self, filter: Dict[str, JSON], state: Optional[str] = None) -> JSON:
        params: Dict[str, JSON] = {"filter": filter}
        if state is not None:
            params["state"] = state
        return await self.rpc("find_jobs", params)

    async def ping(self) -> JSON:
        return await self.rpc("ping", {})

    # -- worker ---------------------------------------------------------------------------

    async def announce(
        self,
        actionname: str,
        handler: Handler,
        *,
        slots: int = 1,
        slotgroup: Optional[str] = None,
        filter: Optional[Dict[str, JSON]] = None,
    ) -> None:
        """Offers to perform ``actionname``; ``handler(task)`` returns the outputs (a dict).

        A coroutine function runs on the event loop, a plain function in a thread. Raising
        :class:`TaskError` (or any exception) fails the task with that message. The
        announcement is repeated after every reconnect.
        """
        if actionname in self._actions:
            raise JobCenterError(f"action {actionname} already announced")
        a = _Action(handler, max(1, int(slots)), slotgroup, filter)
        conn = await self._ensure()
        # registered first: the server may offer a task before it answers
        self._actions[actionname] = a
        try:
            await self._announce(conn, actionname, a)
        except BaseException:
            self._actions.pop(actionname, None)
            raise

    async def _announce(self, conn: _Connection, name: str, a: _Action) -> None:
        params: Dict[str, JSON] = {"actionname": name, "workername": self.workername}
        if a.slotgroup is not None:
            params["slotgroup"] = a.slotgroup
        else:
            params["slots"] = a.slots
        if a.filter is not None:
            params["filter"] = a.filter
        res = await conn.call("announce", params, self.call_timeout)
        if isinstance(res, list) and res and res[0] is not True:
            raise RPCError(str(res[1]) if len(res) > 1 else "announce refused", data=res)

    async def withdraw(self, actionname: str) -> None:
        """Stops offering ``actionname``."""
        self._actions.pop(actionname, None)
        res = await self.rpc("withdraw", {"actionname": actionname})
        if isinstance(res, list) and res and res[0] is not True:
            raise RPCError(str(res[1]) if len(res) > 1 else "withdraw refused", data=res)

    async def create_slotgroup(self, name: str, slots: int) -> JSON:
        return await self.rpc("create_slotgroup", {"name": name, "slots": slots})

    def _spawn(self, coro: Awaitable[None]) -> None:
        """Runs ``coro`` as a task :meth:`work` waits for before it returns."""
        t = asyncio.ensure_future(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)

    def _task_ready(self, conn: _Connection, actionname: JSON, job_id: JSON) -> None:
        a = self._actions.get(actionname) if isinstance(actionname, str) else None
        if a is None:
            self.log.info("task_ready for unannounced action %r", actionname)
            return
        if not self._batched:
            self._take_offer(conn, actionname, a, job_id)
        elif a.fetching:
            a.again = True
        else:
            a.fetching = True
            self._spawn(self._fetch(conn, actionname, a, job_id))

    def _take_offer(self, conn: _Connection, name: str, a: _Action, job_id: JSON) -> None:
        if a.busy >= a.slots:
            self.log.debug("task_ready for %s while all %d slots are busy", name, a.slots)
            return
        a.busy += 1
        self._spawn(self._run_task(conn, name, a, job_id))

    async def _fetch(self, conn: _Connection, name: str, a: _Action, job_id: JSON) -> None:
        """``get_tasks`` for the free slots, again while offers came meanwhile."""
        try:
            while True:
                a.again = False
                count = min(a.slots - a.busy, _MAX_BATCH)
                if count <= 0:
                    return
                a.busy += count
                tasks: List[JSON] = []
                try:
                    res = await conn.call("get_tasks", {"actionname": name, "count": count}, self.call_timeout)
                    tasks = res if isinstance(res, list) else []
                except RPCError as e:
                    if e.code == _NO_METHOD:
                        a.busy -= count
                        self._batched = False
                        self.log.info("the gateway has no get_tasks/tasks_done: using get_task and task_done")
                        self._take_offer(conn, name, a, job_id)
                        return
                    self.log.warning("get_tasks %s: %s", name, e)
                except (ConnectionLost, ConnectionError, OSError, asyncio.TimeoutError) as e:
                    self.log.info("get_tasks %s: %s", name, e)
                a.busy -= count - len(tasks)
                for t in tasks:
                    self._spawn(self._perform(conn, name, a, t))
                if not a.again:
                    return
        finally:
            a.fetching = False

    async def _run_task(self, conn: _Connection, name: str, a: _Action, job_id: JSON) -> None:
        """The original calls: ``get_task`` for the offered task (its slot taken)."""
        try:
            res = await conn.call("get_task", {"actionname": name, "job_id": job_id}, self.call_timeout)
        except (ConnectionLost, ConnectionError, OSError) as e:
            self.log.info("task of %s for job %s: %s", name, job_id, e)
            res = None
        except RPCError as e:
            self.log.warning("get_task %s for job %s: %s", name, job_id, e)
            res = None
        except asyncio.TimeoutError:
            self.log.warning("get_task %s for job %s timed out", name, job_id)
            res = None
        if not res or not isinstance(res, list) or res[0] is None:
            a.busy -= 1  # another worker was faster
            return
        await self._perform(conn, name, a, res)

    async def _perform(self, conn: _Connection, name: str, a: _Action, given: List[JSON]) -> None:
        """Runs the handler on a task given as ``[job_id, cookie, inargs, env]`` (its slot
        taken) and sends the result on."""
        try:
            tjob, cookie = given[0], given[1]
            inargs = given[2] if len(given) > 2 and given[2] is not None else {}
            env = given[3] if len(given) > 3 and given[3] is not None else {}
            outargs = await self._invoke(a.handler, Task(name, tjob, inargs, env))
        finally:
            # The slot is free before the result leaves: the server may offer the next task
            # as soon as it has the result.
            a.busy -= 1
        done = {"cookie": cookie, "outargs": outargs}
        if not self._batched:
            await self._notify_done(conn, tjob, done)
            return
        self._results.append((conn, tjob, done))
        if not self._sending:
            self._sending = True
            self._spawn(self._send_results())

    async def _notify_done(self, conn: _Connection, job_id: JSON, done: Dict[str, JSON]) -> None:
        try:
            await conn.notify("task_done", done)
        except ConnectionLost as e:
            self.log.warning("task_done for job %s not sent: %s; kept for the next connection", job_id, e)
            self._keep(conn, [(job_id, done)])

    def _keep(self, failed: _Connection, results: List[Any]) -> None:
        """Keeps results whose connection went away for the next one (at once when it is
        there already)."""
        self._unsent.extend(results)
        conn = self._announced
        if conn is not None and conn is not failed and not conn.closed.is_set():
            self._resend(conn)

    def _resend(self, conn: _Connection) -> None:
        """On a connection whose announcements are made: the results kept for it go out."""
        if not self._unsent:
            return
        kept, self._unsent = self._unsent, []
        self.log.info("sending %d results again on the new connection", len(kept))
        if not self._batched:
            for job_id, done in kept:
                self._spawn(self._notify_done(conn, job_id, done))
            return
        self._results.extend((conn, job_id, done) for job_id, done in kept)
        if not self._sending:
            self._sending = True
            self._spawn(self._send_results())

    async def _send_results(self) -> None:
        """Sends the finished results, those of one connection in one ``tasks_done``,
        until none are left; results finished meanwhile go in the next call."""
        try:
            while self._results:
                batch, self._results = self._results, []
                while batch:
                    conn = batch[0][0]
                    mine = [r for r in batch if r[0] is conn]
                    batch = [r for r in batch if r[0] is not conn]
                    for i in range(0, len(mine), _MAX_BATCH):
                        await self._send_batch(conn, mine[i : i + _MAX_BATCH])
        finally:
            self._sending = False

    async def _send_batch(self, conn: _Connection, batch: List[Any]) -> None:
        try:
            res = await conn.call("tasks_done", {"results": [done for _, _, done in batch]}, self.call_timeout)
        except RPCError as e:
            if e.code != _NO_METHOD:
                self.log.warning("tasks_done: %s", e)
                return
            self._batched = False
            for _, job_id, done in batch:
                await self._notify_done(conn, job_id, done)
            return
        except (ConnectionLost, ConnectionError, OSError, asyncio.TimeoutError) as e:
            self.log.warning(
                "tasks_done for jobs %s not acknowledged: %s; kept for the next connection",
                [j for _, j, _ in batch],
                e,
            )
            self._keep(conn, [(job_id, done) for _, job_id, done in batch])
            return
        for (_, job_id, _), outcome in zip(batch, res if isinstance(res, list) else []):
            if isinstance(outcome, dict) and outcome.get("ok") is not True:
                self.log.warning("task_done for job %s refused: %s", job_id, outcome.get("error"))

    async def _invoke(self, handler: Handler, task: Task) -> JSON:
        try:
            if inspect.iscoroutinefunction(handler):
                out = await handler(task)
            else:
                out = await asyncio.get_running_loop().run_in_executor(None, handler, task)
                if inspect.isawaitable(out):
                    out = await out
        except TaskError as e:
            return {"error": e.to_json()}
        except Exception as e:  # the task fails; the worker goes on
            self.log.warning("handler for %s failed: %r", task.actionname, e)
            return {"error": {"class": "normal", "msg": f"{type(e).__name__}: {e}"}}
        if out is None:
            return {}
        if not isinstance(out, dict):
            return {"error": {"class": "normal", "msg": f"handler returned {type(out).__name__}, not an object"}}
        return out

    def stop(self) -> None:
        """Makes :meth:`work` return (after the tasks in hand are done)."""
        if self._stop is not None:
            self._stop.set()
        else:
            self._stop_early = True

    async def work(self) -> None:
        """Serves the announced actions until :meth:`stop`: answers ``task_ready`` offers,
        pings the server every ``keepalive`` seconds, and reconnects with back-off (then
        announces again) when the connection drops."""
        self._stop = asyncio.Event()
        if getattr(self, "_stop_early", False):
            self._stop.set()
        delay = self.backoff_initial
        try:
            while not self._stop.is_set():
                try:
                    conn = await self._ensure()
                    delay = self.backoff_initial
                except (AuthError, RPCError):
                    raise
                except (ConnectionLost, ConnectionError, OSError, JobCenterError, asyncio.TimeoutError) as e:
                    self.log.info("connect failed: %s; retrying in %.1fs", e, delay)
                    await _wait_or(self._stop, _jitter(delay))
                    delay = min(delay * 2, self.backoff_max)
                    continue
                await self._serve(conn)
        finally:
            # Tasks in hand, and the results they send, may start more of them.
            while self._tasks:
                await asyncio.gather(*list(self._tasks), return_exceptions=True)
            self._stop = None
            self._stop_early = False

    async def _serve(self, conn: _Connection) -> None:
        assert self._stop is not None
        while not self._stop.is_set() and not conn.closed.is_set():
            stop = asyncio.create_task(self._stop.wait())
            closed = asyncio.create_task(conn.closed.wait())
            done, pending = await asyncio.wait({stop, closed}, timeout=self.keepalive, return_when=asyncio.FIRST_COMPLETED)
            for p in pending:
                p.cancel()
            if not done:  # keepalive: a server that does not answer is dropped
                try:
                    await conn.call("ping", {}, 30)
                except (ConnectionLost, asyncio.TimeoutError, RPCError) as e:
                    self.log.info("keepalive ping failed: %s; reconnecting", e)
                    await conn.close()


def _status_outargs(status: JSON) -> JSON:
    """get_job_status answers ``[job_id, outargs]``, outargs ``null`` while the job runs."""
    if isinstance(status, list):
        return status[1] if len(status) > 1 else None
    return status


def _jitter(delay: float) -> float:
    return delay * (0.5 + random.random() / 2)


async def _wait_or(event: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(event.wait(), seconds)
    except asyncio.TimeoutError:
        pass
