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

import websockets

from _common import emit, outgoing, serve_until_stdin_closes


def parse_args():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--subprotocol", action="append", default=None)
    parser.add_argument("--compression", choices=["none", "deflate"], default="none")
    parser.add_argument("--max-size", type=int, default=0, help="0 = unlimited")
    parser.add_argument("--lifetime", type=float, default=60.0)
    parser.add_argument("--fragments", type=int, default=1)
    parser.add_argument("--streamed", action="store_true",
                        help="send the fragments from an async iterator")
    return parser.parse_args()


async def main():
    args = parse_args()

    async def echo(websocket, path=None):
        try:
            async for message in websocket:
                await websocket.send(outgoing(message, args.fragments, args.streamed))
        except websockets.ConnectionClosed:
            pass
        finally:
            emit({
                "event": "closed",
                "code": websocket.close_code,
                "reason": websocket.close_reason,
                "subprotocol": websocket.subprotocol,
            })

    server = await websockets.serve(
        echo,
        "127.0.0.1",
        args.port,
        subprotocols=args.subprotocol,
        compression="deflate" if args.compression == "deflate" else None,
        max_size=args.max_size or None,
    )
    await serve_until_stdin_closes(server, args.lifetime, "echo_server.py")


if __name__ == "__main__":
    asyncio.run(main())
