#!/usr/bin/python3
"""A Python `websockets` echo server for wstream's interop tests.

Listens on 127.0.0.1 (port 0 by default), prints one JSON line
{"event": "listening", "port": N} once it accepts connections, echoes every
message back with its type (with --fragments N > 1, as N frames of one
message: websockets sends an iterable of chunks fragmented, compressing
frame by frame when deflate is on), and prints {"event": "closed", "code": C,
"reason": R, "subprotocol": S} when a connection ends. It exits when its
stdin closes (the parent test is done or gone) or after --lifetime seconds,
whichever comes first, so it never outlives the test that started it.

Written for Debian's python3-websockets (10.4): asyncio API only.
"""

import argparse
import asyncio
import json
import sys
import threading

import websockets


def parse_args():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--subprotocol", action="append", default=None)
    parser.add_argument("--compression", choices=["none", "deflate"], default="none")
    parser.add_argument("--max-size", type=int, default=0, help="0 = unlimited")
    parser.add_argument("--lifetime", type=float, default=60.0)
    parser.add_argument("--fragments", type=int, default=1)
    return parser.parse_args()


def split(message, parts):
    """The message cut into `parts` chunks (some may be empty), same type."""
    if parts <= 1:
        return message
    cuts = [len(message) * i // parts for i in range(parts + 1)]
    return [message[cuts[i]:cuts[i + 1]] for i in range(parts)]


def emit(event):
    print(json.dumps(event), flush=True)


async def main():
    args = parse_args()

    async def echo(websocket, path=None):
        try:
            async for message in websocket:
                await websocket.send(split(message, args.fragments))
        except websockets.ConnectionClosed:
            pass
        finally:
            emit({
                "event": "closed",
                "code": websocket.close_code,
                "reason": websocket.close_reason,
                "subprotocol": websocket.subprotocol,
            })

    loop = asyncio.get_running_loop()
    stdin_closed = asyncio.Event()

    def wait_for_stdin_eof():
        sys.stdin.read()
        loop.call_soon_threadsafe(stdin_closed.set)

    # A daemon thread never holds up interpreter exit.
    threading.Thread(target=wait_for_stdin_eof, daemon=True).start()

    server = await websockets.serve(
        echo,
        "127.0.0.1",
        args.port,
        subprotocols=args.subprotocol,
        compression="deflate" if args.compression == "deflate" else None,
        max_size=args.max_size or None,
    )
    emit({"event": "listening", "port": server.sockets[0].getsockname()[1]})
    try:
        await asyncio.wait_for(stdin_closed.wait(), args.lifetime)
    except asyncio.TimeoutError:
        print("echo_server.py: lifetime over, exiting", file=sys.stderr)
    server.close()
    await asyncio.wait_for(server.wait_closed(), 5)


if __name__ == "__main__":
    asyncio.run(main())
