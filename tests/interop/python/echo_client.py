#!/usr/bin/python3
"""A Python `websockets` client for wstream's interop tests.

Connects to URL, sends each message read from stdin (a JSON array: a string
is a text message, {"base64": "..."} a binary one; stdin rather than an
argument, because one argument is limited to 128 KiB), reads as many replies as it
sent, then closes with --close-code/--close-reason and prints one JSON line:
{"received": [...same encoding...], "subprotocol": S, "extensions": E,
"close_code": C, "close_reason": R}. The whole run is bounded by --timeout;
on any failure it prints {"error": "..."} and exits 1. With --fragments N
(N > 1) each message goes out fragmented: websockets sends an iterable of N
chunks as N frames of one message (compressed frame by frame when deflate
is on).

Written for Debian's python3-websockets (10.4): asyncio API only.
"""

import argparse
import asyncio
import base64
import json
import sys

import websockets

from _common import outgoing


def parse_args():
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--subprotocol", action="append", default=None)
    parser.add_argument("--compression", choices=["none", "deflate"], default="none")
    parser.add_argument("--close-code", type=int, default=1000)
    parser.add_argument("--close-reason", default="")
    parser.add_argument("--timeout", type=float, default=10.0)
    parser.add_argument("--fragments", type=int, default=1)
    parser.add_argument("--streamed", action="store_true",
                        help="send the fragments from an async iterator")
    return parser.parse_args()


def decode(item):
    return item if isinstance(item, str) else base64.b64decode(item["base64"])


def encode(message):
    if isinstance(message, str):
        return message
    return {"base64": base64.b64encode(message).decode("ascii")}


async def run(args):
    messages = [decode(item) for item in json.loads(sys.stdin.read() or "[]")]
    async with websockets.connect(
        args.url,
        subprotocols=args.subprotocol,
        compression="deflate" if args.compression == "deflate" else None,
        max_size=None,
    ) as websocket:
        for message in messages:
            await websocket.send(outgoing(message, args.fragments, args.streamed))
        received = [encode(await websocket.recv()) for _ in messages]
        await websocket.close(args.close_code, args.close_reason)
        return {
            "received": received,
            "subprotocol": websocket.subprotocol,
            "extensions": websocket.response_headers.get("Sec-WebSocket-Extensions", ""),
            "close_code": websocket.close_code,
            "close_reason": websocket.close_reason,
        }


def main():
    args = parse_args()
    try:
        result = asyncio.run(asyncio.wait_for(run(args), args.timeout))
    except Exception as error:  # report every failure as data for the test
        print(json.dumps({"error": f"{type(error).__name__}: {error}"}), flush=True)
        sys.exit(1)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
