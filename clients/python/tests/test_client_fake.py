"""The client and worker against a fake jcapi (netstrings and WebSocket): handshake, calls,
job_done, task_ready/get_task/task_done, server pings, job errors, auth failure, reconnect."""

import asyncio

import pytest

from fake_server import FakeJcapi
from jobcenter_client import AuthError, Client, JobError, RPCError, TaskError


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 20))


def make_client(server, **kw):
    if server.ws:
        return Client(who="alice", token="secret", ws=f"ws://127.0.0.1:{server.port}/", backoff_initial=0.05, **kw)
    return Client(who="alice", token="secret", host="127.0.0.1", port=server.port, backoff_initial=0.05, **kw)


@pytest.mark.parametrize("ws", [False, True], ids=["netstring", "websocket"])
def test_call_is_served_by_a_worker_and_returns_outputs(ws):
    async def main():
        server = await FakeJcapi(ws=ws).start()
        seen = []

        def double(task):  # a sync handler runs in a thread
            seen.append((task.actionname, task.job_id, task.inargs, task.env))
            return {"out": task.inargs["x"] * 2}

        worker = make_client(server, workername="w1")
        await worker.connect()
        await worker.announce("double", double, slots=2)
        work = asyncio.create_task(worker.work())
        async with make_client(server) as client:
            assert client.welcome == "welcome to the fake jcapi, alice"
            assert await client.call("double", {"x": 21}) == {"out": 42}
        worker.stop()
        await work
        await worker.close()
        await server.stop()
        assert seen == [("double", 100, {"x": 21}, {"who": "alice"})]
        assert server.announces == [{"actionname": "double", "workername": "w1", "slots": 2}]
        assert len(server.task_done) == 1 and server.task_done[0]["outargs"] == {"out": 42}

    run(main())


def test_a_worker_takes_and_finishes_tasks_in_batches():
    async def main():
        server = await FakeJcapi(batched=True).start()

        async def double(task):
            await asyncio.sleep(0.05)
            return {"out": task.inargs["x"] * 2}

        worker = make_client(server, workername="w1")
        await worker.connect()
        await worker.announce("double", double, slots=3)
        work = asyncio.create_task(worker.work())
        async with make_client(server) as client:
            jobs = [await client.call_nb("double", {"x": x}) for x in range(5)]
            outs = [await client.wait_job(j) for j in jobs]
        worker.stop()
        await work
        await worker.close()
        await server.stop()
        assert outs == [{"out": x * 2} for x in range(5)]
        # three slots: the first ask is for three, never more; no original calls
        assert server.get_tasks[0] == 3 and all(1 <= n <= 3 for n in server.get_tasks), server.get_tasks
        assert sum(len(b) for b in server.tasks_done) == 5
        assert server.task_done == []
        # the jobs' job_done came unasked to the connection that created them
        assert "get_job_status" not in server.methods, server.methods

    run(main())


def test_async_handler_error_fails_the_job_with_its_message_and_class():
    async def main():
        server = await FakeJcapi().start()

        async def double(task):
            raise TaskError("cannot double", cls="soft")

        worker = make_client(server)
        await worker.announce("double", double)
        work = asyncio.create_task(worker.work())
        async with make_client(server) as client:
            with pytest.raises(JobError) as e:
                await client.call("double", {"x": 1})
            assert e.value.error == {"class": "soft", "msg": "cannot double"}
            assert await client.get_job_status(e.value.job_id) == {"error": {"class": "soft", "msg": "cannot double"}}
        worker.stop()
        await work
        await server.stop()

    run(main())


def test_handler_exception_becomes_a_task_error():
    async def main():
        server = await FakeJcapi().start()
        worker = make_client(server)
        await worker.announce("double", lambda task: 1 / 0)
        work = asyncio.create_task(worker.work())
        async with make_client(server) as client:
            with pytest.raises(JobError, match="ZeroDivisionError"):
                await client.call("double", {"x": 1})
        worker.stop()
        await work
        await server.stop()

    run(main())


def test_call_nb_then_status_and_refused_create_job():
    async def main():
        server = await FakeJcapi().start()
        async with make_client(server) as client:
            job_id = await client.call_nb("double", {"x": 2})
            assert job_id == 100
            assert await client.get_job_status(job_id) is None
            with pytest.raises(RPCError, match="no workflow named nope"):
                await client.call_nb("nope", {})
            assert await client.ping() == "pong"
            assert await client.cancel_job(job_id, "because") == {
                "method": "cancel_job", "params": {"job_id": job_id, "reason": "because"}}
            assert (await client.raise_event({"name": "ev"}))["params"] == {"event": {"name": "ev"}}
            with pytest.raises(RPCError) as e:
                await client.rpc("no_such_method", {})
            assert e.value.code == -32601
        await server.stop()

    run(main())


def test_wrong_password_raises_auth_error():
    async def main():
        server = await FakeJcapi().start()
        c = Client(who="alice", token="wrong", host="127.0.0.1", port=server.port)
        with pytest.raises(AuthError, match="wrong user or password"):
            await c.connect()
        await server.stop()

    run(main())


def test_server_ping_is_answered_with_pong():
    async def main():
        server = await FakeJcapi().start()
        async with make_client(server):
            await asyncio.sleep(0.05)
            peer = server.peers[0]
            assert await peer.call("ping", {}) == "pong"
            assert await peer.call("no_such", {}) == {"code": -32601, "message": "no such method 'no_such'"}
        await server.stop()

    run(main())


def test_worker_reconnects_and_announces_again_then_serves():
    async def main():
        server = await FakeJcapi().start()
        worker = make_client(server, workername="w1")
        await worker.announce("double", lambda t: {"out": t.inargs["x"] * 2})
        work = asyncio.create_task(worker.work())
        await asyncio.sleep(0.05)
        await server.drop_all()
        for _ in range(100):  # the worker comes back and announces again
            await asyncio.sleep(0.05)
            if len(server.announces) == 2:
                break
        assert len(server.announces) == 2
        async with make_client(server) as client:
            assert await client.call("double", {"x": 5}) == {"out": 10}
        worker.stop()
        await work
        await server.stop()

    run(main())


def test_waiting_client_rereads_status_after_reconnect():
    async def main():
        server = await FakeJcapi().start()
        async with make_client(server) as client:
            job_id = await client.call_nb("double", {"x": 3})
            waiting = asyncio.create_task(client.wait_job(job_id))
            await asyncio.sleep(0.05)
            # the job finishes while the connection is down: its job_done is never sent
            server.jobs[job_id].update(state="finished", outargs={"out": 6})
            await server.drop_all()
            assert await waiting == {"out": 6}
        await server.stop()

    run(main())
