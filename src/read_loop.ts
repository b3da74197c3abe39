/**
 * A socket's read loop: it reads the transport into buffers it lends to the
 * messages decoded from them, sized by what recent reads needed, and feeds
 * the bytes to the {@linkcode SocketCore}.
 *
 * @module
 */

import { letGoHeld, MIN_POOLED_BYTES, takeHeld } from "./buffer_pool.ts";
import type { Message } from "./message_assembler.ts";
import { readPacer } from "./read_pacer.ts";
import type { SocketCore } from "./socket_core.ts";
import { StreamByteReader, type Transport } from "./transport.ts";

// Reads start small so an idle socket pins little memory (a read that waits
// holds its buffer: 2 KiB made an idle server socket ~2 KB larger in RSS),
// and small messages still fit at once. A read that fills its buffer makes
// the next one twice as big, and at least GROWN_READ_BYTES: from then on
// reads grow as they did from a 2 KiB start.
const MIN_READ_BYTES = 256;
const GROWN_READ_BYTES = 4 * 1024;
const MAX_READ_BYTES = 256 * 1024;

const EMPTY_BYTES = new Uint8Array(0);

// `size` rounded down to whole frames of `frameBytes` (possibly none), so a
// read of a stream of same-size frames ends between two of them.
function frameAligned(size: number, frameBytes: number): number {
  return frameBytes > 0 ? size - size % frameBytes : size;
}

/** Where the read loop's bytes come from: `transport.read`, or an adapter. */
export type ByteSource = Required<Pick<Transport, "read">>;

/** What the read loop asks the socket about the application's `readable`. */
export interface ReadLoopOwner {
  /** Whether `readable` is full: reading waits until it is read. */
  readPaused(): boolean;
  /** Resolves when the application reads `readable` again. */
  waitForReader(): Promise<void>;
  /**
   * Whether the messages read are sent back by the socket itself (a pipe
   * into its own `writable`), which returns their buffers to the pool.
   */
  readsPooled(): boolean;
}

/**
 * Reads a transport into the socket core until the socket ends or the
 * transport does.
 *
 * The bytes read but not yet decoded (at most one incomplete frame) are
 * `buffer[start, end)`. Complete frames are decoded where they were read:
 * their payloads are handed out as views, so the buffer is "lent"
 * ({@linkcode ReadLoop.lent}) and only its unused tail is read into again.
 * An incomplete frame stays in place when it fits, else it moves (once) to
 * a buffer that holds it whole, and the rest of it is read straight behind
 * its first bytes.
 */
export class ReadLoop {
  /** Set by the socket when a message it handed out views the buffer. */
  lent = false;

  readonly #source: ByteSource;
  readonly #core: SocketCore;
  readonly #owner: ReadLoopOwner;
  #buffer: Uint8Array = EMPTY_BYTES;
  #start = 0;
  #end = 0;
  #readSize = MIN_READ_BYTES;
  // A buffer no message refers to, to serve the next read after a frame
  // that moved.
  #spare: Uint8Array | undefined;
  // Whether the last read emptied the socket: then the next one may wait.
  #drained = true;
  // Whether reads are paced: those of a connection are (Deno's op budget,
  // see read_pacer.ts), not those of in-memory streams.
  readonly #paced: boolean;
  // The size of the view the pending read goes into.
  #targetBytes = 0;
  // Made the first time the application stops reading.
  #resume: (() => void) | undefined;

  /**
   * Prepares a loop; {@linkcode ReadLoop.run} starts it.
   *
   * @param source Reads bytes from the peer.
   * @param core Takes them.
   * @param owner Says when the application is not reading.
   */
  constructor(source: ByteSource, core: SocketCore, owner: ReadLoopOwner) {
    this.#source = source;
    this.#paced = !(source instanceof StreamByteReader);
    this.#core = core;
    this.#owner = owner;
  }

  /**
   * Runs the loop: the bytes read after the HTTP head first, then reads
   * until the socket ends or the transport does. Never throws (errors go
   * to the core).
   *
   * It is a loop of callbacks rather than an `async` function: a socket
   * waiting for its peer then keeps one reaction to its read, not a
   * suspended frame.
   *
   * @param leftover The first bytes of the WebSocket, if any.
   */
  run(leftover: Uint8Array | undefined): void {
    if (leftover !== undefined) {
      this.#buffer = leftover;
      this.#end = leftover.length;
    }
    this.#loop();
  }

  // Goes on until the loop must wait (for a read, for the application to
  // read, for a frame being inflated); that wait's callback calls it again.
  // `receive` false: the bytes pending were just received (up to an
  // incomplete frame) and wait for more.
  #loop(receive = true): void {
    const core = this.#core;
    try {
      while (!core.ended) {
        if (receive && this.#end > this.#start) {
          const used = core.receive(
            this.#buffer.subarray(this.#start, this.#end),
          );
          if (typeof used !== "number") {
            this.#waitForInflate(used);
            return;
          }
          this.#start += used;
          if (core.ended) break;
        }
        receive = true;
        // RFC 6455 §5.5.1, §7.1.1: nothing after the peer's Close is read
        // by a server (see SocketCore.inputDone).
        if (core.inputDone) return;
        if (this.#owner.readPaused()) {
          // Backpressure: the application is not reading; neither do we.
          this.#owner.waitForReader().then(this.#resume ??= () => this.#loop());
          return;
        }
        const target = this.#nextTarget();
        this.#targetBytes = target.length;
        this.#source.read(target).then(this.#onRead, this.#onReadFailed);
        return;
      }
      core.transportEnded();
    } catch (error) {
      core.readFailed(error);
    }
  }

  readonly #onRead = (count: number | null): void => {
    if (count === null) return this.#ended();
    // Fairness: past a round's share of reads, this socket's bytes wait
    // for a later round (see read_pacer.ts).
    const turn = this.#paced ? readPacer.admit() : undefined;
    if (turn === undefined) this.#afterRead(count);
    else turn.then(() => this.#afterRead(count));
  };

  #afterRead(count: number): void {
    this.#readDone(count, this.#targetBytes);
    // (Ends at once, through core.transportEnded(), if the socket ended.)
    this.#loop();
  }

  readonly #onReadFailed = (error: unknown): void => {
    this.#core.readFailed(error);
  };

  // A frame of the chunk is being inflated: the chunk goes on once it is.
  #waitForInflate(pending: Promise<Message | undefined>): void {
    pending.then((message) => {
      const core = this.#core;
      try {
        const used = core.resumeReceive(message);
        if (typeof used !== "number") {
          this.#waitForInflate(used);
          return;
        }
        this.#start += used;
      } catch (error) {
        core.readFailed(error);
        return;
      }
      this.#loop(false);
    }, this.#onReadFailed);
  }

  // The transport ended (or the socket did).
  #ended(): void {
    try {
      this.#core.transportEnded();
    } catch (error) {
      this.#core.readFailed(error);
    }
  }

  // The view of the buffer the next read goes into (after the buffer is
  // replaced when the bytes pending or the reads to come need another).
  #nextTarget(): Uint8Array {
    const pending = this.#end - this.#start;
    // Reads and buffers are sized in whole frames of the last frame's size
    // when one fits a read.
    const lastFrameBytes = this.#core.lastFrameBytes;
    const unit = lastFrameBytes <= this.#readSize ? lastFrameBytes : 0;
    // The bytes the incomplete frame (if any) is expected to span, from
    // `start`: before its header is whole, it is taken for one of the last
    // frame's size (for sizing reads only).
    const expectedFrameBytes = pending === 0
      ? this.#planEmpty(unit)
      : this.#planIncomplete(pending, unit);
    // Reads never go past the incomplete frame when the buffer was sized
    // for it, so the frame's payload is its own buffer, not shared. And
    // they end on a frame boundary when frames come in one size, so no
    // frame straddles two buffers (then to be moved).
    const buffer = this.#buffer;
    let limit = buffer.length;
    const frameEnd = this.#start + expectedFrameBytes;
    if (frameEnd <= limit) {
      limit = frameEnd + frameAligned(limit - frameEnd, unit);
    }
    // (No view when the read takes the whole buffer, as an idle one does.)
    return this.#end === 0 && limit === buffer.length
      ? buffer
      : buffer.subarray(this.#end, limit);
  }

  // No bytes pending: the buffer to read into. Returns 0 (no frame is
  // expected to be in progress).
  #planEmpty(unit: number): number {
    const buffer = this.#buffer;
    const readSize = this.#readSize;
    // (Buffers are sized in whole frames: one so sized is big enough.)
    if (!this.lent && buffer.length >= frameAligned(readSize, unit)) {
      // Nothing refers to the buffer: read into it from the start.
      this.#start = this.#end = 0;
    } else if (
      buffer.length - this.#end < Math.max(readSize / 4, unit) ||
      (this.lent ? buffer.length > readSize : this.#drained)
    ) {
      // A read that may wait for the peer holds a buffer of the size recent
      // reads needed, so an idle socket pins little memory (never the
      // unused tail of a large lent buffer). The tail of a lent buffer no
      // larger than that serves the next read: the messages before it pin
      // the buffer anyway, and a fresh buffer per short read (zeroed, often
      // on new pages) costs more than the read itself (a client reading
      // 64 KiB echoes gets a single frame in about one read of four).
      const size = frameAligned(readSize, unit);
      const spare = this.#spare;
      letGoHeld(buffer);
      if (!this.#drained && spare !== undefined && spare.length >= size) {
        this.#buffer = spare.subarray(0, size);
      } else {
        this.#buffer = this.#newBuffer(size);
        if (spare !== undefined) letGoHeld(spare);
      }
      this.#spare = undefined;
      this.lent = false;
      this.#start = this.#end = 0;
    }
    return 0;
  }

  // An incomplete frame of `pending` bytes: moves it to a buffer that holds
  // it whole when needed. Returns the bytes it is expected to span.
  #planIncomplete(pending: number, unit: number): number {
    const readSize = this.#readSize;
    // How big the frame is once its header is known.
    const frameBytes = this.#core.incompleteFrameBytes;
    const needed = Math.max(frameBytes, pending + 1);
    const expectedFrameBytes = frameBytes > 0
      ? frameBytes
      : Math.max(needed, unit);
    const buffer = this.#buffer;
    if (
      !this.lent && this.#start > 0 && needed <= buffer.length &&
      this.#start + needed > buffer.length
    ) {
      // Nothing views the buffer: the frame moves to its start, and the
      // buffer is read into again (a new one per move would leave one
      // behind per frame until the garbage collector runs).
      buffer.copyWithin(0, this.#start, this.#end);
      this.#start = 0;
      this.#end = pending;
    } else if (
      this.#start + needed > buffer.length || (this.#drained && this.lent)
    ) {
      // Move it to a buffer that holds it whole (read into straight after),
      // or a read's worth past it. A frame announced larger gets at most
      // eight times the bytes it has sent so far (at least two full reads'
      // worth) until more arrive, so a peer can't make the socket allocate
      // a large frame it never sends.
      const size = frameBytes > readSize
        ? Math.min(frameBytes, Math.max(2 * MAX_READ_BYTES, pending * 8))
        : expectedFrameBytes +
          frameAligned(Math.max(readSize - expectedFrameBytes, 0), unit);
      const moved = this.#newBuffer(size);
      moved.set(buffer.subarray(this.#start, this.#end));
      // A buffer no message refers to serves the next read after the
      // frame, unless the socket may be idle by then.
      if (this.#spare !== undefined) letGoHeld(this.#spare);
      if (this.lent || this.#drained) {
        this.#spare = undefined;
        letGoHeld(buffer);
      } else this.#spare = buffer;
      this.#buffer = moved;
      this.lent = false;
      this.#start = 0;
      this.#end = pending;
    }
    return expectedFrameBytes;
  }

  // A buffer for reads: from the pool when large and the socket echoes
  // the messages itself (it reuses the buffers whose echoes were written,
  // instead of making fresh ones between garbage collections), else its own.
  #newBuffer(size: number): Uint8Array {
    return size >= MIN_POOLED_BYTES && this.#owner.readsPooled()
      ? takeHeld(size)
      : new Uint8Array(size);
  }

  // A read of `count` bytes into a target of `targetBytes`: reads grow
  // while they fill their buffer and shrink while they are short.
  #readDone(count: number, targetBytes: number): void {
    this.#end += count;
    const drained = count < targetBytes;
    this.#drained = drained;
    const readSize = this.#readSize;
    if (!drained && targetBytes >= readSize / 2) {
      this.#readSize = Math.min(
        Math.max(readSize * 2, GROWN_READ_BYTES),
        MAX_READ_BYTES,
      );
    } else if (drained && count < readSize / 4) {
      this.#readSize = Math.max(readSize / 2, MIN_READ_BYTES);
    }
  }
}
