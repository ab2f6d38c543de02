"""jobcenter client and worker library.

Create jobs and wait for their results, or serve actions as a worker, through the jcapi
gateway (JSON-RPC 2.0 over netstrings on TCP or TLS, or over WebSocket)::

    import asyncio
    from jobcenter_client import Client

    async def main():
        async with Client(who="alice", token="secret") as c:
            print(await c.call("calltest", {"input": 1}))

    asyncio.run(main())
"""

from .client import (
    AuthError,
    Client,
    ConnectionLost,
    JobCenterError,
    JobError,
    RPCError,
    Task,
    TaskError,
)
from .netstring import Decoder, NetstringError, encode

__all__ = [
    "AuthError",
    "Client",
    "ConnectionLost",
    "Decoder",
    "JobCenterError",
    "JobError",
    "NetstringError",
    "RPCError",
    "Task",
    "TaskError",
    "encode",
]
__version__ = "0.1.0"
