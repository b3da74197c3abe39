/**
 * The `readable` of a socket with whole messages: a `ReadableStream` whose
 * `pipeTo` into the same socket's `writable` (an echo) runs inside the
 * socket instead of through the generic WHATWG pipe (see socket_pipe.ts),
 * with the same contract: both streams locked, the same options, the same
 * promise.
 *
 * @module
 */

/**
 * An underlying source that may pipe its stream's messages itself.
 */
export interface PipingSource<M> extends UnderlyingDefaultSource<M> {
  /**
   * Pipes the stream into `destination` itself, or returns `undefined` when
   * it can't (another destination, a locked or ended stream): then the
   * generic pipe runs.
   *
   * @param destination Where `pipeTo` was asked to write.
   * @param options `pipeTo`'s options.
   * @returns The pipe's promise, or `undefined`.
   */
  pipeItself(
    destination: WritableStream<M>,
    options: StreamPipeOptions | undefined,
  ): Promise<void> | undefined;
}

/**
 * A `ReadableStream` whose source may run `pipeTo` itself.
 *
 * @example Anything the source does not pipe itself takes the generic pipe
 * ```ts
 * import { ConnectionReadable } from "./connection_readable.ts";
 * import { assertEquals } from "@std/assert";
 *
 * const readable = new ConnectionReadable<string>({
 *   start(controller) {
 *     controller.enqueue("a");
 *     controller.close();
 *   },
 *   pipeItself: () => undefined,
 * });
 * const seen: string[] = [];
 * await readable.pipeTo(new WritableStream({ write: (m) => void seen.push(m) }));
 * assertEquals(seen, ["a"]);
 * ```
 */
export class ConnectionReadable<M> extends ReadableStream<M> {
  readonly #source: PipingSource<M>;

  /**
   * Makes the stream.
   *
   * @param source The underlying source.
   * @param strategy The queuing strategy.
   */
  constructor(source: PipingSource<M>, strategy?: QueuingStrategy<M>) {
    super(source, strategy);
    this.#source = source;
  }

  /**
   * As `ReadableStream.prototype.pipeTo`; run by the source when it can.
   *
   * @param destination Where the messages go.
   * @param options `preventClose`, `preventAbort`, `preventCancel`, `signal`.
   * @returns Settles as the WHATWG pipe's promise does.
   */
  override pipeTo(
    destination: WritableStream<M>,
    options?: StreamPipeOptions,
  ): Promise<void> {
    return this.#source.pipeItself(destination, options) ??
      super.pipeTo(destination, options);
  }
}
