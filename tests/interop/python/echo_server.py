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
import collections

import websockets
from websockets.legacy.server import WebSocketServerProtocol

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
    parser.add_argument("--report-frames", action="store_true",
                        help='print {"event": "received", "frames": N} per message')
    return parser.parse_args()


class FrameCountingProtocol(WebSocketServerProtocol):
    """Counts the data frames of each message received.

    websockets 10.4 has no recv_streaming() and no public frame API: recv()
    returns a fragmented message whole. This hooks the legacy protocol's
    read_data_frame() (called once per data frame) and read_message() (once
    per message, in the order recv() returns them) to count them."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.frame_counts = collections.deque()
        self._frames = 0

    async def read_data_frame(self, max_size):
        frame = await super().read_data_frame(max_size)
        if frame is not None:
            self._frames += 1
        return frame

    async def read_message(self):
        self._frames = 0
        message = await super().read_message()
        if message is not None:
            self.frame_counts.append(self._frames)
        return message


async def main():
    args = parse_args()

    async def echo(websocket, path=None):
        try:
            async for message in websocket:
                if args.report_frames:
                    emit({"event": "received",
                          "frames": websocket.frame_counts.popleft()})
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
        create_protocol=FrameCountingProtocol if args.report_frames else None,
    )
    await serve_until_stdin_closes(server, args.lifetime, "echo_server.py")


if __name__ == "__main__":
    asyncio.run(main())
