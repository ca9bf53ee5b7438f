"""
Load-generator processes.

A L{Generator} forks C{count} processes; each runs one asyncio loop and one
L{ClientWorker} holding its share of the clients.  The parent calls the
workers' coroutine methods by name (all workers at once) and gets back each
one's result with the CPU time the worker spent on it, so every figure can
be reported next to what the generator itself cost.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
import time
import traceback
from typing import Any, Optional, Sequence

from bench import client
from bench.server import raise_nofile_limit


class WorkerFailed(Exception):
    pass


class PhaseCost:
    """
    What one call cost the generator: CPU seconds per worker and the wall
    time of the slowest.
    """

    def __init__(self, cpu: list[float], wall: float):
        self.cpu = cpu
        self.wall = wall

    @property
    def cpu_total(self) -> float:
        return sum(self.cpu)

    def as_dict(self) -> dict:
        return {
            "wall_seconds": round(self.wall, 3),
            "cpu_seconds": round(self.cpu_total, 3),
            "cpu_percent_of_one_core": round(100 * self.cpu_total / self.wall, 1) if self.wall else 0.0,
            "busiest_worker_cpu_percent": round(100 * max(self.cpu) / self.wall, 1) if self.wall else 0.0,
        }


class Generator:
    def __init__(self, worker_class, count: int, setup: dict):
        self.count = count
        self._context = multiprocessing.get_context("fork")
        self._pipes = []
        self._processes = []
        for index in range(count):
            parent_end, child_end = self._context.Pipe()
            process = self._context.Process(
                target=_worker_main,
                args=(child_end, worker_class, index, count, setup),
                daemon=True,
                name=f"bench-worker-{index}",
            )
            process.start()
            child_end.close()
            self._pipes.append(parent_end)
            self._processes.append(process)
        self.last_cost: Optional[PhaseCost] = None

    def call(self, method: str, args: Optional[Sequence[tuple]] = None, timeout: float = 600.0) -> list[Any]:
        """
        Run C{method} on every worker (with C{args[i]} on worker i) and
        return their results; raise if any fails or the time runs out.
        """
        for index, pipe in enumerate(self._pipes):
            pipe.send((method, tuple(args[index]) if args is not None else ()))
        deadline = time.monotonic() + timeout
        results, cpu, walls = [], [], []
        failures = []
        for index, pipe in enumerate(self._pipes):
            if not pipe.poll(max(0.0, deadline - time.monotonic())):
                raise WorkerFailed(f"worker {index} did not finish {method} within {timeout:.0f} s")
            status, value, cpu_seconds, wall = pipe.recv()
            if status != "ok":
                failures.append(f"worker {index} failed in {method}:\n{value}")
            results.append(value)
            cpu.append(cpu_seconds)
            walls.append(wall)
        if failures:
            raise WorkerFailed("\n".join(failures))
        self.last_cost = PhaseCost(cpu, max(walls) if walls else 0.0)
        return results

    def close(self) -> None:
        for pipe in self._pipes:
            try:
                pipe.send(None)
            except OSError:
                pass
        for process in self._processes:
            process.join(5)
            if process.is_alive():
                process.kill()
                process.join()
        for pipe in self._pipes:
            pipe.close()
        self._pipes = []

    def __enter__(self) -> "Generator":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _worker_main(pipe, worker_class, index: int, count: int, setup: dict) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise_nofile_limit()
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    worker = worker_class(index, count, setup)

    async def run(method: str, args: tuple) -> None:
        before = os.times()
        started = time.perf_counter()
        try:
            reply = ("ok", await getattr(worker, method)(*args))
        except BaseException:
            reply = ("error", traceback.format_exc())
        after = os.times()
        cpu = (after.user + after.system) - (before.user + before.system)
        pipe.send((*reply, cpu, time.perf_counter() - started))

    def readable() -> None:
        try:
            message = pipe.recv()
        except (EOFError, OSError):
            message = None
        if message is None:
            loop.remove_reader(pipe.fileno())
            loop.stop()
            return
        loop.create_task(run(*message))

    loop.add_reader(pipe.fileno(), readable)
    try:
        loop.run_forever()
    finally:
        worker.close()
        loop.run_until_complete(asyncio.sleep(0))
        loop.close()


class ClientWorker:
    """
    The clients of one worker process: C{setup["users"]} is the list of
    account indices this worker logs in (worker i takes every slice
    C{shares[i]}).
    """

    def __init__(self, index: int, count: int, setup: dict):
        self.index = index
        self.count = count
        self.setup = setup
        self.users: list[int] = setup["shares"][index]
        # None when the scenario talks to something other than msnp
        self.dispatch = tuple(setup["dispatch"]) if setup.get("dispatch") else None
        self.local_host: Optional[str] = (setup.get("local_hosts") or [None] * count)[index]
        self.connections: dict[int, client.Connection] = {}
        # Passport logins: the dialect, the HTTPS address and the
        # certificate to trust (from the scenario's setup).
        self.passport = setup.get("passport")
        self._tls = None
        if self.passport:
            import ssl

            self._tls = ssl.create_default_context(cafile=self.passport["certificate"])

    async def log_in(self, concurrency: int, count: Optional[int] = None) -> dict:
        """
        Log the first C{count} (default: every) user of this worker in, at
        most C{concurrency} at a time (0: all at once); keep the
        connections.  Returns each login's step times (see
        L{client.LoginTimes}).
        """
        from bench.population import PASSWORD, handle_of

        gate = asyncio.Semaphore(concurrency) if concurrency else None
        times: list[tuple] = []
        failures: list[str] = []

        def login(user: int, record: client.LoginTimes):
            if self.passport and self.passport.get("sso"):
                return client.sso_login(
                    self.dispatch,
                    tuple(self.passport["address"]),
                    self._tls,
                    handle_of(user),
                    PASSWORD,
                    dialect=self.passport["dialect"],
                    times=record,
                )
            if self.passport:
                return client.passport_login(
                    self.dispatch,
                    tuple(self.passport["address"]),
                    self._tls,
                    handle_of(user),
                    PASSWORD,
                    dialect=self.passport["dialect"],
                    times=record,
                )
            return client.login(self.dispatch, handle_of(user), PASSWORD, local_host=self.local_host, times=record)

        async def one(user: int) -> None:
            record = client.LoginTimes()
            try:
                if gate is not None:
                    async with gate:
                        connection = await login(user, record)
                else:
                    connection = await login(user, record)
            except Exception as error:
                failures.append(f"{handle_of(user)}: {type(error).__name__}: {error}")
                return
            self.connections[user] = connection
            times.append(record.as_tuple())

        users = self.users if count is None else self.users[:count]
        await asyncio.gather(*(one(user) for user in users))
        return {"times": times, "failures": failures}

    async def log_out(self) -> int:
        """
        Sign every user out (OUT, then close) and wait for the closes.
        """
        connections = list(self.connections.values())
        self.connections = {}
        for connection in connections:
            connection.send(b"OUT\r\n")
            connection.close()
        deadline = time.perf_counter() + 10
        while any(not c.is_closed for c in connections) and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
        return len(connections)

    async def find_all(self, requests: int, concurrency: int) -> dict:
        """
        ABFindAll for this worker's first account, C{requests} times with at
        most C{concurrency} in flight (each over a fresh TLS connection, as
        the clients open them): each one's latency and the answer's size.
        """
        from bench.population import PASSWORD, handle_of

        user = self.users[0]
        tokens = await client.sso_tokens(tuple(self.passport["address"]), handle_of(user), PASSWORD, self._tls)
        gate = asyncio.Semaphore(max(1, concurrency))
        latencies: list[float] = []
        sizes: list[int] = []
        failures: list[str] = []

        async def one() -> None:
            async with gate:
                started = time.perf_counter()
                try:
                    sizes.append(await client.ab_find_all(tuple(self.passport["address"]), tokens["contacts"], self._tls))
                except Exception as error:
                    failures.append(f"{type(error).__name__}: {error}")
                    return
                latencies.append(time.perf_counter() - started)

        await asyncio.gather(*(one() for _ in range(requests)))
        return {"latencies": latencies, "sizes": sizes, "failures": failures}

    def close(self) -> None:
        for connection in self.connections.values():
            connection.abort()
        self.connections = {}


def shares(items: Sequence[int], count: int) -> list[list[int]]:
    """
    Split C{items} into C{count} contiguous, nearly equal slices.
    """
    size, extra = divmod(len(items), count)
    result, start = [], 0
    for index in range(count):
        end = start + size + (1 if index < extra else 0)
        result.append(list(items[start:end]))
        start = end
    return result
