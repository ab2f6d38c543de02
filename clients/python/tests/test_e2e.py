"""The client and worker against a real jcapi (skipped unless JC_E2E_HOST is set).

The Rust test ``clients/cli/tests/e2e.rs`` starts jcapi on a private database with the
workflows ``calltest`` (calls action ``add``) and ``failtest`` (calls action ``fail``), the
users alice and worker, and runs these tests with the addresses in ``JC_E2E_*``.
"""

import asyncio
import os

import pytest

from jobcenter_client import AuthError, Client, JobError, RPCError, TaskError

E2E = os.environ.get("JC_E2E_HOST")
pytestmark = pytest.mark.skipif(not E2E, reason="needs a jcapi (JC_E2E_HOST)")


def env(name):
    return os.environ[f"JC_E2E_{name}"]


def client(**kw):
    kw.setdefault("who", env("USER"))
    kw.setdefault("token", env("PASSWORD"))
    if "ws" not in kw:
        kw.setdefault("host", env("HOST"))
        kw.setdefault("port", int(env("PORT")))
    return Client(call_timeout=20, **kw)


def worker(**kw):
    return client(who=env("WORKER"), token=env("WORKER_PASSWORD"), **kw)


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


@pytest.mark.parametrize("transport", ["tcp", "ws"])
def test_worker_and_client_run_calltest(transport):
    async def main():
        extra = {"ws": env("WS")} if transport == "ws" else {}
        seen = []

        async def add(task):
            seen.append(task.inargs)
            return {"counter": task.inargs["counter"] + task.inargs["step"]}

        w = worker(workername=f"py-{transport}", **extra)
        await w.connect()
        await w.announce("add", add, slots=2)
        work = asyncio.create_task(w.work())
        async with client(**extra) as c:
            assert await c.call("calltest", {"input": 1}) == {"output": 4}
            job_id = await c.call_nb("calltest", {"input": 5})
            assert await c.wait_job(job_id) == {"output": 8}
            assert await c.get_job_status(job_id) == {"output": 8}
        w.stop()
        await work
        await w.close()
        assert {"counter": 1, "step": 3} in seen

    run(main())


def test_a_failing_handler_fails_the_job():
    async def main():
        def fail(task):  # a plain function runs in a thread
            raise TaskError(f"no: {task.inargs['why']}")

        w = worker(workername="py-fail")
        await w.announce("fail", fail)
        work = asyncio.create_task(w.work())
        async with client() as c:
            with pytest.raises(JobError) as e:
                await c.call("failtest", {"why": "python"})
            assert e.value.error["msg"] == "no: python"
            assert e.value.error["class"] == "normal"
            assert await c.get_job_status(e.value.job_id) == {"error": e.value.error}
        w.stop()
        await work
        await w.close()

    run(main())


def test_a_key_makes_repeated_calls_one_job():
    async def main():
        async def add(task):
            return {"counter": task.inargs["counter"] + task.inargs["step"]}

        async with client() as c:
            key = f"py-{os.getpid()}"
            first = await c.call_nb("calltest", {"input": 2}, key=key)
            assert await c.call_nb("calltest", {"input": 2}, key=key) == first
            assert await c.call_nb("calltest", {"input": 2}) != first
            w = worker(workername="py-key")
            await w.connect()
            await w.announce("add", add)
            work = asyncio.create_task(w.work())
            assert await c.call("calltest", {"input": 2}, key=key) == {"output": 5}
            # ended: the same key answers its outputs at once
            assert await c.call("calltest", {"input": 9}, key=key) == {"output": 5}
            w.stop()
            await work
            await w.close()

    run(main())


def test_a_priority_is_passed_and_checked():
    async def main():
        async with client() as c:
            assert await c.call_nb("calltest", {"input": 1}, priority=5) > 0
            with pytest.raises(RPCError, match="priority is from -1000 to 1000"):
                await c.call_nb("calltest", {"input": 1}, priority=5000)

    run(main())


def test_credentials_and_refusals():
    async def main():
        with pytest.raises(AuthError):
            await client(token="wrong").connect()
        async with client(method="token", token=env("TOKEN")) as c:
            assert await c.ping() == "pong"
            with pytest.raises(RPCError, match="nosuchflow"):
                await c.call_nb("nosuchflow", {})

    run(main())


def test_tls_with_a_password_and_with_a_client_certificate():
    async def main():
        tls = dict(host="localhost", port=int(env("TLS_PORT")), tls=True, ca=env("CA"))
        async with client(**tls) as c:
            job_id = await c.call_nb("slowtest", {"n": 1})
        async with client(method="clientcert", token="", cert=env("CERT"), key=env("KEY"), **tls) as c:
            assert await c.get_job_status(job_id) is None
            assert await c.cancel_job(job_id, "done testing") is True
            assert (await c.get_job_status(job_id))["error"]["msg"] == "done testing"
        with pytest.raises(AuthError):
            # alice's certificate does not make anyone else
            await client(who="worker", method="clientcert", cert=env("CERT"), key=env("KEY"), **tls).connect()

    run(main())


RESTART = os.environ.get("JC_E2E_RESTART_DIR")


@pytest.mark.skipif(not RESTART, reason="needs a gateway the harness restarts (JC_E2E_RESTART_DIR)")
@pytest.mark.parametrize("batched", [True, False])
def test_a_result_finished_while_the_gateway_is_down_is_sent_again(batched):
    """The harness (clients/cli/tests/e2e.rs) kills the gateway once the handler holds the
    task (file ``held-<batched>``), lets it return while the gateway is down (file
    ``release-<batched>``) and starts the gateway again: the result is sent again on the next
    connection and the job finishes with it."""

    async def main():
        held = os.path.join(RESTART, f"held-{batched}")
        release = os.path.join(RESTART, f"release-{batched}")

        async def add(task):
            open(held, "w").close()
            while not os.path.exists(release):
                await asyncio.sleep(0.05)
            return {"counter": task.inargs["counter"] + 1}

        fast = dict(backoff_initial=0.05, backoff_max=0.5)
        w = worker(workername=f"py-resend-{batched}", batched=batched, **fast)
        await w.announce("add", add)
        work = asyncio.create_task(w.work())
        c = client(**fast)
        job_id = await c.call_nb("calltest", {"input": 1})
        assert await c.wait_job(job_id, timeout=45) == {"output": 2}
        w.stop()
        await work
        await w.close()
        await c.close()

    run(main())
