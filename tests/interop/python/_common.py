"""What wstream's Python interop peers share: JSON event lines, message
splitting, and serving for as long as the parent test is there.

Imported by the scripts of this directory (Python puts a script's own
directory first on sys.path). Written for Debian's python3-websockets (10.4).
"""

import asyncio
import json
import sys
import threading


def emit(event):
    """Prints one JSON event line for the parent test, at once."""
    print(json.dumps(event), flush=True)


def split(message, parts):
    """The message cut into `parts` chunks (some may be empty), same type.

    websockets sends an iterable of chunks as one fragmented message."""
    if parts <= 1:
        return message
    cuts = [len(message) * i // parts for i in range(parts + 1)]
    return [message[cuts[i]:cuts[i + 1]] for i in range(parts)]


async def split_async(message, parts):
    """The chunks of split(), as an async iterator that yields to the event
    loop between chunks: websockets sends each as it comes (one frame per
    chunk), the way a stream is sent."""
    for chunk in split(message, parts) if parts > 1 else [message]:
        yield chunk
        await asyncio.sleep(0.005)


def outgoing(message, parts, streamed):
    """What to pass to send(): the message, its chunks, or an async
    iterator of them."""
    return split_async(message, parts) if streamed else split(message, parts)


async def serve_until_stdin_closes(server, lifetime, name):
    """Announces the server's port, then serves until stdin closes (the
    parent test is done or gone) or `lifetime` seconds pass, so a server never
    outlives the test that started it."""
    loop = asyncio.get_running_loop()
    stdin_closed = asyncio.Event()

    def wait_for_stdin_eof():
        sys.stdin.read()
        loop.call_soon_threadsafe(stdin_closed.set)

    # A daemon thread never holds up interpreter exit.
    threading.Thread(target=wait_for_stdin_eof, daemon=True).start()
    emit({"event": "listening", "port": server.sockets[0].getsockname()[1]})
    try:
        await asyncio.wait_for(stdin_closed.wait(), lifetime)
    except asyncio.TimeoutError:
        print(f"{name}: lifetime over, exiting", file=sys.stderr)
    server.close()
    await asyncio.wait_for(server.wait_closed(), 5)
