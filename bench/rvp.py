"""
Scenario rvp, presence across the RVP bridge, at a steady rate each way:

* RVP → MSN: RVP users (each with its local node, logged in and online)
  PROPPATCH their state round-robin; one MSN user watching them all times
  each NLN against the PROPPATCH that caused it.
* MSN → RVP: the MSN user changes status (CHG); every RVP user holds a
  property subscription to it, and its local node times each NOTIFY
  against the CHG.

A user's k-th change always sets the k-th state of a fixed cycle of seven,
so the k-th notification from (or to) it answers the k-th change and must
carry that state.  One generator process (asyncio); the server is a real
C{twistd msnp --rvp} in a subprocess.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import time

from bench.client import login, now
from bench.population import PASSWORD, handle_of
from bench.report import Table, latency_summary
from bench.server import ServerProcess, free_port

DOMAIN = "bench.example"
RVP_CYCLE = ("busy", "away", "back-soon", "on-phone", "at-lunch", "idle", "online")
MSN_CODE = {"online": b"NLN", "busy": b"BSY", "idle": b"IDL", "back-soon": b"BRB", "away": b"AWY",
            "on-phone": b"PHN", "at-lunch": b"LUN"}
MSN_CYCLE = (b"BSY", b"AWY", b"BRB", b"PHN", b"LUN", b"IDL", b"NLN")
RVP_STATE = {code: state for state, code in MSN_CODE.items()}
DECLS = "xmlns:d='DAV:' xmlns:r='http://schemas.microsoft.com/rvp/'"
_STATE = re.compile(rb"<r:state><r:([a-z-]+)/></r:state>")


def add_arguments(parser) -> None:
    parser.add_argument("--users", type=int, default=50, help="RVP users, each watched by and watching the MSN user (default 50)")
    parser.add_argument("--rates", default="20,100", help="changes per second each way, one phase per rate (default 20,100)")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per rate and direction (default 5)")


def _head_and_length(buffer: bytes):
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = buffer[:end].decode("latin-1")
    match = re.search(r"(?im)^content-length:\s*(\d+)", head)
    length = int(match.group(1)) if match else 0
    if len(buffer) < end + 4 + length:
        return None
    return head, buffer[end + 4 : end + 4 + length], end + 4 + length


class RvpUser(asyncio.Protocol):
    """
    One RVP user's keep-alive connection: requests in order, Digest
    answered from the first challenge.
    """

    def __init__(self, index: int, port: int):
        self.alias = handle_of(index).partition("@")[0]
        self.path = f"/instmsg/aliases/{self.alias}"
        self.principal = f"http://127.0.0.1:{port}{self.path}"
        self.buffer = b""
        self.waiting: list[asyncio.Future] = []
        self.challenge = None
        self.nc = 0
        self.view = None

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            message = _head_and_length(self.buffer)
            if message is None:
                return
            head, body, used = message
            self.buffer = self.buffer[used:]
            self.waiting.pop(0).set_result((int(head.split(" ", 2)[1]), head, body))

    def connection_made(self, transport) -> None:
        self.transport = transport

    def _authorization(self, method: str) -> str:
        if self.challenge is None:
            return ""
        self.nc += 1
        realm, nonce = self.challenge
        cnonce = os.urandom(4).hex()
        md5 = lambda text: hashlib.md5(text.encode()).hexdigest()
        answer = md5(f"{md5(f'{self.alias}:{realm}:{PASSWORD}')}:{nonce}:{self.nc:08x}:{cnonce}:auth:{md5(f'{method}:{self.path}')}")
        return (f'Authorization: Digest username="{self.alias}", realm="{realm}", nonce="{nonce}", uri="{self.path}", '
                f'qop=auth, nc={self.nc:08x}, cnonce="{cnonce}", response="{answer}"\r\n')

    async def request(self, method: str, headers: str = "", body: bytes = b""):
        for _ in range(2):
            future = asyncio.get_running_loop().create_future()
            self.waiting.append(future)
            self.transport.write(
                (f"{method} {self.path} HTTP/1.1\r\nHost: 127.0.0.1\r\nRVP-Notifications-Version: 0.2\r\n"
                 f"RVP-From-Principal: {self.principal}\r\n{self._authorization(method)}{headers}"
                 f"Content-Length: {len(body)}\r\n\r\n").encode() + body
            )
            status, head, reply = await asyncio.wait_for(future, 60)
            if status != 401:
                return status, head, reply
            match = re.search(r'realm="([^"]*)".*nonce="([^"]*)"', head)
            self.challenge = match.groups()
            self.nc = 0
        return status, head, reply

    def set_state(self, state: str) -> "asyncio.Future":
        view = f"<r:view-id>{self.view}</r:view-id>" if self.view else ""
        body = (f"<?xml version='1.0'?><d:propertyupdate {DECLS}><d:set><d:prop><r:state><r:leased-value>"
                f"<r:value><r:{state}/></r:value><r:default-value><r:offline/></r:default-value>"
                f"<d:timeout>1200</d:timeout></r:leased-value>{view}</r:state></d:prop></d:set></d:propertyupdate>").encode()
        return asyncio.ensure_future(self.request("PROPPATCH", "", body))


class LocalNode(asyncio.Protocol):
    """
    An RVP user's callback listener: answers 200 and records each
    propnotification's state and arrival time.
    """

    def __init__(self, received: list):
        self.received = received
        self.buffer = b""

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            message = _head_and_length(self.buffer)
            if message is None:
                return
            _, body, used = message
            self.buffer = self.buffer[used:]
            match = _STATE.search(body)
            if match:
                self.received.append((match.group(1).decode(), now()))
            self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")


async def _wait_quiet(count, quiet: float = 0.3, limit: float = 60.0) -> None:
    deadline = now() + limit
    seen = -1
    while now() < deadline and seen != count():
        seen = count()
        await asyncio.sleep(quiet)


async def scenario(server: ServerProcess, rvp_port: int, users: int, rates: list[float], duration: float) -> list[dict]:
    loop = asyncio.get_running_loop()
    nln: list[tuple[bytes, bytes, float]] = []
    watcher = await login(server.dispatch, handle_of(0), PASSWORD)
    watcher.on_line = lambda parts, payload: nln.append((parts[2], parts[1], now())) if parts[0] == b"NLN" else None
    rvp_users, node_logs = [], []
    for index in range(1, users + 1):
        received: list = []
        listener = await loop.create_server(lambda received=received: LocalNode(received), "127.0.0.1", 0)
        _, user = await loop.create_connection(lambda index=index: RvpUser(index, rvp_port), "127.0.0.1", rvp_port)
        callback = f"http://127.0.0.1:{listener.sockets[0].getsockname()[1]}"
        status, _, _ = await user.request("SUBSCRIBE", f"Notification-Type: pragma/notify\r\nCall-Back: {callback}\r\n")
        assert status == 200, status
        status, _, reply = await user.set_state("online")
        assert status == 207, status
        user.view = re.search(rb"<r:view-id>([^<]+)</r:view-id>", reply).group(1).decode()
        status, _, _ = await _subscribe_to_watcher(user)
        assert status == 207, status
        rvp_users.append((user, listener))
        node_logs.append(received)
    await _wait_quiet(lambda: len(nln) + sum(map(len, node_logs)))
    phases = []
    for rate in rates:
        # RVP → MSN
        nln.clear()
        sends: dict[bytes, list[float]] = {handle_of(i + 1).encode(): [] for i in range(users)}
        total, interval, start = int(rate * duration), 1.0 / rate, now() + 0.2
        pending = []
        for sent in range(total):
            delay = start + sent * interval - now()
            if delay > 0:
                await asyncio.sleep(delay)
            user = rvp_users[sent % users][0]
            handle = f"{user.alias}@{DOMAIN}".encode()
            state = RVP_CYCLE[len(sends[handle]) % len(RVP_CYCLE)]
            sends[handle].append(now())
            pending.append(user.set_state(state))
        await asyncio.gather(*pending)
        await _wait_quiet(lambda: len(nln))
        samples, wrong, counts = [], 0, {}
        for handle, code, at in nln:
            k = counts.get(handle, 0)
            counts[handle] = k + 1
            times = sends.get(handle, [])
            if k < len(times) and MSN_CODE[RVP_CYCLE[k % len(RVP_CYCLE)]] == code:
                samples.append(at - times[k])
            else:
                wrong += 1
        # Back to online so the next phase starts from the same states.
        await asyncio.gather(*(u.set_state("online") for u, _ in rvp_users))
        await _wait_quiet(lambda: len(nln))
        rvp_to_msn = {"sent": total, "received": len(samples), "unmatched": wrong, "latency": latency_summary(samples)}
        # MSN → RVP
        for log in node_logs:
            log.clear()
        chg_times = []
        start = now() + 0.2
        for sent in range(total):
            delay = start + sent * interval - now()
            if delay > 0:
                await asyncio.sleep(delay)
            chg_times.append(now())
            watcher.send(b"CHG %d %s\r\n" % (watcher.next_trid(), MSN_CYCLE[sent % len(MSN_CYCLE)]))
        await _wait_quiet(lambda: sum(map(len, node_logs)))
        msn_to_rvp = _match_notifies(node_logs, chg_times, total)
        phases.append({"changes_per_second": rate, "rvp_to_msn": rvp_to_msn, "msn_to_rvp": msn_to_rvp})
        watcher.send(b"CHG %d NLN\r\n" % watcher.next_trid())
        await _wait_quiet(lambda: sum(map(len, node_logs)))
    watcher.close()
    for user, listener in rvp_users:
        user.transport.close()
        listener.close()
    return phases


def _match_notifies(node_logs: list, chg_times: list[float], total: int) -> dict:
    """
    Match each local node's NOTIFYs to the CHGs.  The server may replace a
    NOTIFY still queued by a later one (only the latest state matters), so
    a node sees an in-order subsequence of the states: each state is
    matched to the earliest CHG after the one matched before that set it
    and was sent before it arrived (so the latency is never understated).
    CHGs passed over are "superseded"; a node that never got the last state
    counts the CHGs after its last match as lost, and a state that matches
    no CHG (out of order) counts as unmatched.
    """
    samples, unmatched, superseded, lost = [], 0, 0, 0
    for log in node_logs:
        last = -1
        for state, at in log:
            j = last + 1
            while j < total and chg_times[j] <= at and RVP_STATE[MSN_CYCLE[j % len(MSN_CYCLE)]] != state:
                j += 1
            if j >= total or chg_times[j] > at:
                unmatched += 1
                continue
            samples.append(at - chg_times[j])
            superseded += j - last - 1
            last = j
        lost += total - 1 - last
    return {"sent": total, "expected": total * len(node_logs), "received": len(samples), "superseded": superseded,
            "lost": lost, "unmatched": unmatched, "latency": latency_summary(samples)}


async def _subscribe_to_watcher(user: RvpUser):
    """
    A property subscription to the MSN user, from C{user}'s connection.
    """
    target = "/instmsg/aliases/" + handle_of(0).partition("@")[0]
    path, user.path = user.path, target
    try:
        return await user.request(
            "SUBSCRIBE", f"Notification-Type: update/propchange\r\nCall-Back: {user.principal}\r\nSubscription-Lifetime: 14400\r\n"
        )
    finally:
        user.path = path


def run(options) -> tuple[dict, Table]:
    rates = [float(rate) for rate in options.rates.split(",") if rate]
    rvp_port = free_port()
    server_options = {"rvp": f"tcp:{rvp_port}:interface=127.0.0.1", "rvp-domain": DOMAIN}
    with ServerProcess(options.users + 1, options.users, options=server_options) as server:
        _wait_port(rvp_port)
        phases = asyncio.run(scenario(server, rvp_port, options.users, rates, options.duration))
    results = {"options": {"users": options.users, "rates": rates, "duration": options.duration}, "phases": phases}
    table = Table(f"rvp: {options.users} RVP users and one MSN user watching each other")
    for phase in phases:
        rate = f"{phase['changes_per_second']:g}/s"
        there, back = phase["rvp_to_msn"], phase["msn_to_rvp"]
        table.add(f"{rate}: PROPPATCH->NLN p50 ms", there["latency"]["p50_ms"])
        table.add(f"{rate}: PROPPATCH->NLN p99 ms", there["latency"]["p99_ms"])
        table.add(f"{rate}: NLN lost or unmatched", there["sent"] - there["received"], "0")
        table.add(f"{rate}: CHG->NOTIFY p50 ms", back["latency"]["p50_ms"])
        table.add(f"{rate}: CHG->NOTIFY p99 ms", back["latency"]["p99_ms"])
        table.add(f"{rate}: NOTIFY delivered", back["received"])
        table.add(f"{rate}: NOTIFY superseded (coalesced)", back["superseded"])
        table.add(f"{rate}: NOTIFY lost or unmatched", back["lost"] + back["unmatched"], "0")
    return results, table


def _wait_port(port: int, timeout: float = 30.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the RVP port {port} does not answer")
            time.sleep(0.05)
