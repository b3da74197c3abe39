/**
 * The WebSocket opening handshake of RFC 6455 §4, without any I/O, as an
 * index of the files that own its parts:
 *
 * - `handshake_key.ts`: the key, its accept value and the version (§1.3,
 *   §4.1, §4.2.2).
 * - `client_handshake.ts`: the client's request and the checks of the
 *   server's response (§4.1).
 * - `server_handshake.ts`: the server's checks of the request, the refusal
 *   and the 101 response (§4.2).
 * - `subprotocols.ts`: the subprotocols offered and chosen (§4.1, §4.2.2).
 * - `header_list.ts`: the comma lists the handshake reads (RFC 9110 §5.6.1).
 * - `http_error_response.ts`: the HTTP error response of a refusal.
 *
 * Code in `src/` imports from those files; this index keeps the older
 * import path working.
 *
 * @module
 */

export {
  computeAccept,
  generateKey,
  WEBSOCKET_GUID,
  WEBSOCKET_VERSION,
} from "./handshake_key.ts";
export {
  type AcceptedHandshake,
  buildClientRequest,
  type ClientOffer,
  type ClientRequestOptions,
  validateServerResponse,
} from "./client_handshake.ts";
export {
  buildServerResponse,
  type ClientHandshake,
  HandshakeRejection,
  isUpgradeRequest,
  serverResponseHead,
  type ServerResponseOptions,
  validateClientRequest,
} from "./server_handshake.ts";
export {
  type ProtocolSelector,
  selectSubprotocol,
  validateProtocols,
} from "./subprotocols.ts";
export { extensionNames, splitHeaderList } from "./header_list.ts";
export { buildErrorResponse, statusText } from "./http_error_response.ts";
