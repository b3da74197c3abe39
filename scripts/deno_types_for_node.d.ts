/**
 * The `Deno` types that wstream's declarations name, for Node and Bun users,
 * who have no `Deno` namespace. They appear only in Deno-only entry points
 * (`serve()`'s address, `listen()`'s listener), so a structural subset of
 * each does: a real `Deno.NetAddr` or `Deno.Conn` fits them. The Node
 * build (scripts/node_declarations.ts) copies this file next to the
 * declarations as `deno_types.d.ts` and makes each declaration file that
 * names `Deno.X` import it as `Deno`.
 *
 * @module
 */

/** A TCP or UDP address (a subset of `Deno.NetAddr`). */
export interface NetAddr {
  /** `"tcp"` or `"udp"`. */
  transport: "tcp" | "udp";
  /** The IP address. */
  hostname: string;
  /** The port. */
  port: number;
}

/** A connection (a subset of `Deno.Conn`). */
export interface Conn {
  /** Our end's address. */
  readonly localAddr: NetAddr;
  /** The peer's address. */
  readonly remoteAddr: NetAddr;
  /** Reads into `buffer`: the count, or `null` at the end. */
  read(buffer: Uint8Array): Promise<number | null>;
  /** Writes bytes: the count written. */
  write(bytes: Uint8Array): Promise<number>;
  /** Ends our direction. */
  closeWrite(): Promise<void>;
  /** Ends the connection. */
  close(): void;
  /** The bytes from the peer. */
  readonly readable: ReadableStream<Uint8Array>;
  /** The bytes to the peer. */
  readonly writable: WritableStream<Uint8Array>;
}

/** A listener (a subset of `Deno.Listener`). */
export interface Listener extends AsyncIterable<Conn> {
  /** The address it listens on. */
  readonly addr: NetAddr;
  /** Waits for the next connection. */
  accept(): Promise<Conn>;
  /** Stops listening. */
  close(): void;
}
