"""The client side of load_test.ts with Python websockets (Debian
python3-websockets) as the peer: the same protocol and output as
_load_clients.ts.

Used for the full-size run (`deno task test:load`): two Deno processes with
thousands of connections between them starve most of them (also with Deno's
built-in WebSocket on both sides), so the server under test gets a peer that
does not.

Usage: python3 _load_clients.py <url> <connections> <seconds> <window>
Prints one JSON line (see LoadClientsResult in _load_clients.ts).
"""

import asyncio
import json
import sys
import time

import websockets


def message(index, n):
    if n % 2 == 0:
        return f"client {index} message {n}"
    return f"client {index} binary {n}".encode()


async def main():
    url = sys.argv[1]
    connections, seconds, window = int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
    errors = []
    error_count = 0

    def fail(text):
        nonlocal error_count
        error_count += 1
        if len(errors) < 20:
            errors.append(text)

    def connect():
        return websockets.connect(
            url, compression=None, ping_interval=None, max_queue=None,
            open_timeout=60, close_timeout=30,
        )

    # Open in batches so the server's accept queue doesn't overflow.
    sockets = []
    open_started = time.monotonic()
    for start in range(0, connections, 100):
        batch = min(100, connections - start)
        results = await asyncio.gather(
            *[connect() for _ in range(batch)], return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                fail(f"connect: {result!r}")
            else:
                sockets.append(result)
    open_seconds = time.monotonic() - open_started

    stop = False
    counts = [0] * len(sockets)
    sent_counts = [0] * len(sockets)
    closes = ["none"] * len(sockets)

    async def run(index, ws):
        sent = received = 0
        try:
            while sent < window:
                await ws.send(message(index, sent))
                sent += 1
                sent_counts[index] = sent
            while received < sent:
                value = await ws.recv()
                expected = message(index, received)
                if value != expected:
                    fail(f"client {index}, echo #{received}: expected {expected!r}, found {value!r}")
                    break
                received += 1
                counts[index] = received
                if not stop:
                    await ws.send(message(index, sent))
                    sent += 1
                    sent_counts[index] = sent
            await ws.close()
            clean = ws.close_rcvd is not None and ws.close_sent is not None
            closes[index] = f"{ws.close_code}/{'true' if clean else 'false'}"
        except Exception as error:  # reported, not raised: every client counts
            fail(f"client {index}: {error!r}")

    async def stopper():
        nonlocal stop
        await asyncio.sleep(seconds)
        stop = True

    run_started = time.monotonic()
    await asyncio.gather(stopper(), *[run(i, ws) for i, ws in enumerate(sockets)])
    run_seconds = time.monotonic() - run_started
    print(json.dumps({
        "opened": len(sockets),
        "openSeconds": open_seconds,
        "runSeconds": run_seconds,
        "counts": counts,
        "sent": sent_counts,
        "closes": closes,
        "errors": errors,
        "errorCount": error_count,
    }))


asyncio.run(main())
