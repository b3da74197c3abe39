/**
 * wstream: a complete WebSocket client and server for Deno (RFC 6455, with
 * RFC 7692 permessage-deflate), built as a Web Streams pipeline. The client
 * (`connect`, `WebSocket`, `WebSocketStream`), the codec streams and
 * `handleUpgrade` (on `node:http`) also run on Node ≥ 20 and Bun; `serve`
 * and `upgrade` need Deno.
 *
 * The codec streams work on their own, for example to decode a captured byte
 * stream into messages:
 *
 * ```ts
 * import { FrameDecoderStream, MessageAssemblerStream } from "@wstream/wstream";
 * import { assertEquals } from "@std/assert";
 *
 * // An unmasked text frame "Hello" (RFC 6455 §5.7), as a server sends it.
 * const bytes = ReadableStream.from([
 *   new Uint8Array([0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]),
 * ]);
 * const messages = await Array.fromAsync(
 *   bytes
 *     .pipeThrough(new FrameDecoderStream({ role: "client" }))
 *     .pipeThrough(new MessageAssemblerStream()),
 * );
 * assertEquals(messages, ["Hello"]);
 * ```
 *
 * @module
 */

export { type Frame, isControlOpcode, Opcode } from "./src/frame.ts";
export { CloseCode, isValidCloseCode } from "./src/close_code.ts";
export type { CloseInfo } from "./src/close_payload.ts";
export {
  type WebSocketCloseInfo,
  WebSocketError,
} from "./src/websocket_error.ts";
export {
  type FrameDecoderOptions,
  FrameDecoderStream,
} from "./src/frame_decoder.ts";
export {
  type FrameEncoderOptions,
  FrameEncoderStream,
} from "./src/frame_encoder.ts";
export {
  type Message,
  type MessageAssemblerOptions,
  MessageAssemblerStream,
  type MessageInflater,
} from "./src/message_assembler.ts";
export { WebSocketConnection } from "./src/connection.ts";
export type {
  CloseResult,
  ConnectionInit,
  MessageDeflate,
  WebSocketOptions,
} from "./src/socket_options.ts";
export type { Transport } from "./src/transport.ts";
export {
  connect,
  type ConnectOptions,
  parseWebSocketUrl,
} from "./src/client.ts";
export {
  WebSocketHandshakeError,
  type WebSocketHandshakeErrorInit,
} from "./src/handshake_error.ts";
export {
  DEFAULT_RETRY_CLOSE_CODES,
  reconnecting,
  type ReconnectingOptions,
  type RetryInfo,
} from "./src/reconnecting.ts";
export {
  serve,
  type ServeOptions,
  type WebSocketHandler,
  type WebSocketServer,
} from "./src/server.ts";
export type { Socket } from "./src/socket.ts";
export type { MessageOf, MessageStream } from "./src/message_stream.ts";
export {
  DEFAULT_MAX_OUTGOING_FRAME_BYTES,
  type OutgoingMessage,
  type StreamedMessage,
} from "./src/message_stream_sender.ts";
export {
  upgrade,
  type UpgradeOptions,
  type UpgradeResult,
} from "./src/upgrade.ts";
export {
  handleUpgrade,
  type UpgradeRequest,
  type UpgradeSocket,
} from "./src/handle_upgrade.ts";
export type { NodeSocket } from "./src/node_socket_transport.ts";
export type { ListenOptions } from "./src/listener.ts";
export type { HandshakeOptions } from "./src/handshake_responder.ts";
export {
  type Backplane,
  Hub,
  type HubOptions,
  type PublishOptions,
} from "./src/hub.ts";
export type { PreparedMessageOptions } from "./src/prepared_message.ts";
export type { ProtocolSelector } from "./src/subprotocols.ts";
export type { ExtensionOptions } from "./src/handshake_extensions.ts";
export type { PerMessageDeflateOptions } from "./src/permessage_deflate.ts";
export {
  type BinaryType,
  WebSocket,
  type WebSocketEventHandler,
  type WebSocketInit,
  type WebSocketProtocolsInit,
} from "./src/websocket.ts";
export {
  type WebSocketOpenInfo,
  WebSocketStream,
  type WebSocketStreamClosedInfo,
  type WebSocketStreamOptions,
} from "./src/websocket_stream.ts";
