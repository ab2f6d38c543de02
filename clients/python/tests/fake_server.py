"""A fake jcapi for unit tests: the spec's section 5 protocol over netstrings or WebSocket,
with an in-memory "engine" whose only workflow runs one action and returns its outputs."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import itertools
import json
import struct
import uuid
from typing import Any, Dict, List, Optional

from jobcenter_client.netstring import Decoder, encode

USERS = {"alice": "secret"}


class Peer:
    def __init__(self, server: "FakeJcapi", reader, writer, ws: bool) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.ws = ws
        self.user: Optional[str] = None
        self.pending: Dict[Any, asyncio.Future] = {}
        self.ids = itertools.count(1)
        self.actions: Dict[str, int] = {}  # action -> slots
        self.received: List[dict] = []

    async def send(self, msg: dict) -> None:
        data = json.dumps(msg).encode()
        if self.ws:
            n = len(data)
            head = bytes([0x81]) + (
                bytes([n]) if n < 126 else bytes([126]) + struct.pack("!H", n) if n < 65536 else bytes([127]) + struct.pack("!Q", n)
            )
            self.writer.write(head + data)
        else:
            self.writer.write(encode(data))
        await self.writer.drain()

    async def call(self, method: str, params: Any) -> Any:
        id_ = f"s{next(self.ids)}"
        fut = asyncio.get_running_loop().create_future()
        self.pending[id_] = fut
        await self.send({"jsonrpc": "2.0", "id": id_, "method": method, "params": params})
        return await fut

    async def messages(self):
        if self.ws:
            while True:
                try:
                    head = await self.reader.readexactly(2)
                except asyncio.IncompleteReadError:
                    return
                opcode = head[0] & 0x0F
                n = head[1] & 0x7F
                if n == 126:
                    (n,) = struct.unpack("!H", await self.reader.readexactly(2))
                elif n == 127:
                    (n,) = struct.unpack("!Q", await self.reader.readexactly(8))
                assert head[1] & 0x80, "client frames must be masked"
                mask = await self.reader.readexactly(4)
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(await self.reader.readexactly(n)))
                if opcode == 0x8:
                    return
                yield payload
        else:
            dec = Decoder()
            while True:
                data = await self.reader.read(65536)
                if not data:
                    return
                for frame in dec.feed(data):
                    yield frame


class FakeJcapi:
    """Serves the protocol; ``jobs`` maps job ids to their state."""

    def __init__(self, ws: bool = False, batched: bool = False) -> None:
        self.ws = ws
        # without the batched calls it answers get_tasks/tasks_done as unknown methods
        self.batched = batched
        self.tasks_done: List[List[dict]] = []
        self.methods: List[str] = []
        self.get_tasks: List[int] = []
        self.peers: List[Peer] = []
        self.jobs: Dict[int, dict] = {}
        self.job_ids = itertools.count(100)
        self.announces: List[dict] = []
        self.task_done: List[dict] = []
        self.server: Optional[asyncio.AbstractServer] = None
        self.port = 0

    async def start(self) -> "FakeJcapi":
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for p in list(self.peers):
            p.writer.close()
        await self.server.wait_closed()

    async def drop_all(self) -> None:
        """Closes every connection, as a restarting gateway would."""
        for p in list(self.peers):
            p.writer.close()
        self.peers.clear()

    async def _serve(self, reader, writer) -> None:
        if self.ws:
            head = await reader.readuntil(b"\r\n\r\n")
            key = next(
                line.split(":", 1)[1].strip()
                for line in head.decode().split("\r\n")
                if line.lower().startswith("sec-websocket-key:")
            )
            accept = base64.b64encode(
                hashlib.sha1(key.encode() + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest()
            ).decode()
            writer.write(
                (
                    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                    f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
                ).encode()
            )
        peer = Peer(self, reader, writer, self.ws)
        self.peers.append(peer)
        await peer.send({"jsonrpc": "2.0", "method": "greetings", "params": {"who": "jcapi", "version": "1.1"}})
        try:
            async for raw in peer.messages():
                msg = json.loads(raw)
                peer.received.append(msg)
                if "method" in msg:
                    asyncio.create_task(self._request(peer, msg))
                else:
                    fut = peer.pending.pop(msg.get("id"), None)
                    if fut and not fut.done():
                        fut.set_result(msg.get("result", msg.get("error")))
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            if peer in self.peers:
                self.peers.remove(peer)

    async def _request(self, peer: Peer, msg: dict) -> None:
        method, params, id_ = msg["method"], msg.get("params") or {}, msg.get("id")
        self.methods.append(method)

        async def reply(result: Any) -> None:
            await peer.send({"jsonrpc": "2.0", "id": id_, "result": result})

        if method == "hello":
            if USERS.get(params.get("who")) == params.get("token") and params.get("method") == "password":
                peer.user = params["who"]
                await reply([True, f"welcome to the fake jcapi, {peer.user}"])
            else:
                await reply([False, "wrong user or password"])
                peer.writer.close()
            return
        if peer.user is None:
            await peer.send({"jsonrpc": "2.0", "id": id_, "error": {"code": -32000, "message": "say hello first"}})
            return
        if method == "create_job":
            if params["wfname"] != "double":
                await reply([None, f"no workflow named {params['wfname']}"])
                return
            job_id = next(self.job_ids)
            self.jobs[job_id] = {"state": "ready", "inargs": params.get("inargs"), "creator": peer, "notify": [peer]}
            await reply([job_id, None])
            await self._offer(job_id)
        elif method == "get_job_status":
            job = self.jobs.get(params["job_id"])
            if job is None:
                await reply({"error": {"class": "normal", "msg": "no such job"}})
                return
            if params.get("notify") and peer not in job["notify"]:
                job["notify"].append(peer)
            await reply([params["job_id"], job.get("outargs")])
        elif method == "announce":
            self.announces.append(dict(params))
            peer.actions[params["actionname"]] = params.get("slots") or 1
            await reply([True, "yes"])
            for job_id, job in self.jobs.items():
                if job["state"] == "ready":
                    await self._offer(job_id)
        elif method == "get_task":
            job = self.jobs.get(params["job_id"])
            if job is None or job["state"] != "ready":
                await reply(None)
                return
            job["state"] = "working"
            job["cookie"] = str(uuid.uuid4())
            await reply([params["job_id"], job["cookie"], job["inargs"], {"who": peer.user}])
        elif method == "task_done":
            assert id_ is None, "task_done is a notification"
            self.task_done.append(params)
            await self._finish(params["cookie"], params["outargs"])
        elif method == "get_tasks" and self.batched:
            self.get_tasks.append(params["count"])
            given = []
            for job_id, job in self.jobs.items():
                if job["state"] == "ready" and len(given) < params["count"]:
                    job["state"] = "working"
                    job["cookie"] = str(uuid.uuid4())
                    given.append([job_id, job["cookie"], job["inargs"], {"who": peer.user}])
            await reply(given)
        elif method == "tasks_done" and self.batched:
            self.tasks_done.append(params["results"])
            answers = []
            for r in params["results"]:
                ok = await self._finish(r["cookie"], r["outargs"])
                answers.append({"cookie": r["cookie"], "ok": True} if ok else
                               {"cookie": r["cookie"], "ok": False, "error": {"code": 1003, "message": "no task"}})
            await reply(answers)
            # as the gateway offers freed slots the work left
            for job_id, job in self.jobs.items():
                if job["state"] == "ready":
                    await self._offer(job_id)
        elif method == "ping":
            await reply("pong")
        elif method in ("cancel_job", "retry_job", "raise_event", "find_jobs", "withdraw", "get_job"):
            await reply({"method": method, "params": params})
        elif id_ is not None:
            await peer.send({"jsonrpc": "2.0", "id": id_, "error": {"code": -32601, "message": "no such method"}})

    async def _finish(self, cookie: str, out: Any) -> bool:
        for job_id, job in self.jobs.items():
            if job.get("cookie") == cookie and job["state"] == "working":
                job["state"] = "error" if "error" in out else "finished"
                job["outargs"] = out
                for p in job["notify"]:
                    if p in self.peers:
                        await p.send({"jsonrpc": "2.0", "method": "job_done", "params": {"job_id": job_id, "outargs": out}})
                return True
        return False

    async def _offer(self, job_id: int) -> None:
        for p in self.peers:
            if "double" in p.actions:
                await p.send({"jsonrpc": "2.0", "method": "task_ready", "params": {"actionname": "double", "job_id": job_id}})
                return
