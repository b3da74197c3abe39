#!/usr/bin/python3
"""A Python `websockets` server for wstream's socket interop scenarios.

Listens on 127.0.0.1 (port 0), prints {"event": "listening", "port": N} once
it accepts connections, and routes by path (the query string is ignored):

- /close-4002: closes at once with code 4002, reason "later".
- /ping: sends Pings with the payloads b"", b"ping from python" and 125
  bytes of 0x09, waits (at most 5 s each) for the Pong with the same payload
  (websockets matches Pongs to Pings by payload), then sends the text
  "pongs received" and echoes like any other path.
- anything else: echoes every message back with its type.

It accepts the subprotocol "chat" when offered, and prints {"event":
"closed", "path": P, "code": C, "reason": R, "subprotocol": S} when a
connection ends (P with its query string, which the tests use as a tag).
It exits when its stdin closes (the parent test is done or gone) or after
--lifetime seconds, whichever comes first.

Written for Debian's python3-websockets (10.4): asyncio API only.
"""

import argparse
import asyncio

import websockets

from _common import emit, serve_until_stdin_closes


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--lifetime", type=float, default=60.0)
    args = parser.parse_args()

    async def handler(websocket, path):
        route = path.split("?")[0]
        try:
            if route == "/close-4002":
                await websocket.close(4002, "later")
                return
            if route == "/ping":
                for payload in (b"", b"ping from python", b"\x09" * 125):
                    pong = await websocket.ping(payload)
                    await asyncio.wait_for(pong, 5)
                await websocket.send("pongs received")
            async for message in websocket:
                await websocket.send(message)
        except (websockets.ConnectionClosed, asyncio.TimeoutError):
            pass
        finally:
            await websocket.wait_closed()
            emit({
                "event": "closed",
                "path": path,
                "code": websocket.close_code,
                "reason": websocket.close_reason,
                "subprotocol": websocket.subprotocol,
            })

    server = await websockets.serve(
        handler,
        "127.0.0.1",
        0,
        subprotocols=["chat"],
        compression=None,
        max_size=None,
        ping_interval=None,
    )
    await serve_until_stdin_closes(server, args.lifetime, "scenario_server.py")


if __name__ == "__main__":
    asyncio.run(main())
