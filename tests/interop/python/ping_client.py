#!/usr/bin/python3
"""A Python `websockets` client that pings a server, for wstream's tests.

Connects to URL, sends Pings with the payloads b"", b"ping from python" and
125 bytes of 0x09, and waits (at most --timeout seconds in all) for the Pong
to each (websockets matches a Pong to its Ping by payload, so a Pong with
another payload does not count). Then closes with 1000 and prints one JSON
line: {"pongs": N, "close_code": C}. On any failure it prints
{"error": "..."} and exits 1.

Written for Debian's python3-websockets (10.4): asyncio API only.
"""

import argparse
import asyncio
import json
import sys

import websockets

PAYLOADS = (b"", b"ping from python", b"\x09" * 125)


async def run(url):
    async with websockets.connect(
        url, compression=None, ping_interval=None
    ) as websocket:
        pongs = 0
        for payload in PAYLOADS:
            await (await websocket.ping(payload))
            pongs += 1
        await websocket.close(1000)
        return {"pongs": pongs, "close_code": websocket.close_code}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args()
    try:
        result = asyncio.run(asyncio.wait_for(run(args.url), args.timeout))
    except Exception as error:  # report every failure as data for the test
        print(json.dumps({"error": f"{type(error).__name__}: {error}"}), flush=True)
        sys.exit(1)
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
