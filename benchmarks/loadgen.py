"""A lean load generator for ``benchmarks/service.py``: raw HTTP/1.1 keep-alive
connections on one asyncio loop, in a process of its own.

Each connection is one client: it sends a request, reads the answer (status,
``Content-Length`` body), and sends the next, for the given seconds, in the
op mix of the service benchmark (search, add, update of an item it added).
Requests are written as bytes and answers parsed by hand, so the generator
costs the two shared cores far less than an HTTP client library per request
(httpx spent about 0.5 ms of CPU a request here); what is measured is the
service. Results (latencies by op, errors, acknowledged writes) are printed
as one JSON document on stdout.

    python benchmarks/loadgen.py --port P --key K --clients 32 --seconds 60
    python benchmarks/loadgen.py --ports P1,P2 ...   (clients spread over replicas)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import socket
import sys
import time
from typing import Any

from workload import CUBE, fact, pick_op, query

MIX = (("search", 0.70), ("add", 0.25), ("update", 0.05))


class Connection:
    """One keep-alive connection speaking just enough HTTP/1.1."""

    def __init__(self, host: str, port: int, key: str) -> None:
        self.host, self.port = host, port
        self.head = f"Host: {host}:{port}\r\nAuthorization: Bearer {key}\r\n"

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        sock = self.writer.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    async def request(self, method: str, path: str, body: Any) -> tuple[int, bytes]:
        payload = json.dumps(body).encode()
        head = (
            f"{method} {path} HTTP/1.1\r\n{self.head}Content-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n"
        )
        self.writer.write(head.encode() + payload)
        lines = (await self.reader.readuntil(b"\r\n\r\n")).split(b"\r\n")
        status = int(lines[0].split(b" ", 2)[1])
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


async def client(n: int, args: argparse.Namespace, deadline: float, out: dict[str, Any]) -> None:
    rng = random.Random(100 + n)
    port = args.ports[n % len(args.ports)]
    conn = Connection(args.host, port, args.key)
    await conn.open()
    mine: list[str] = []
    i = 0
    while time.monotonic() < deadline:
        op = pick_op(rng, bool(mine))
        text = fact(rng, f"{args.tag} client {n} op {i}")
        i += 1
        started = time.perf_counter()
        try:
            if op == "search":
                status, body = await conn.request(
                    "POST", f"/v1/cubes/{CUBE}/search", {"query": query(rng)}
                )
            elif op == "add":
                status, body = await conn.request("POST", f"/v1/cubes/{CUBE}/items", {"text": text})
            else:
                status, body = await conn.request(
                    "PATCH", f"/v1/items/{rng.choice(mine)}", {"text": text}
                )
        except (OSError, asyncio.IncompleteReadError, ValueError):
            out["errors"][op] += 1
            conn.close()
            conn = Connection(args.host, port, args.key)
            await conn.open()
            continue
        elapsed = time.perf_counter() - started
        if status >= 300:
            out["errors"][op] += 1
            out["statuses"][str(status)] = out["statuses"].get(str(status), 0) + 1
            out["samples"].setdefault(str(status), body.decode("utf-8", "replace")[:300])
            continue
        out["latency"][op].append(elapsed)
        if op != "search":
            item_id = json.loads(body)["id"]
            out["acked"][item_id] = text
            if op == "add":
                mine.append(item_id)
    conn.close()


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {
        "latency": {op: [] for op, _ in MIX},
        "errors": {op: 0 for op, _ in MIX},
        "statuses": {},
        "samples": {},
        "acked": {},
    }
    deadline = time.monotonic() + args.seconds
    started = time.perf_counter()
    await asyncio.gather(*(client(n, args, deadline, out) for n in range(args.clients)))
    out["wall_s"] = time.perf_counter() - started
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, help="the service's port")
    parser.add_argument(
        "--ports", default="", help="several replicas' ports: a,b (clients alternate)"
    )
    parser.add_argument("--key", required=True)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--tag", default="run", help="makes this run's texts its own")
    args = parser.parse_args()
    args.ports = [int(p) for p in args.ports.split(",") if p] or [args.port]
    result = asyncio.run(main_async(args))
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
