import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import { AppError } from '../errors';
import { errorBody } from './error-handler';
import { API_RESPONSE_HEADERS } from './security-headers';

/**
 * For the HTTP server's `clientError` event: a request Node's parser refused before any handler
 * saw it (a request line or headers over 16 KiB, broken chunked framing, a header that is not
 * HTTP) is answered with its status (431, 408 or 400, as Node would) in the contract's error
 * shape and with the API's headers, then the connection is closed. Node's own answer is a bare
 * status line with no body.
 */
export function answerClientError(err: Error & { code?: string }, socket: Duplex): void {
  // Nothing to answer on a connection that is gone, or whose response has begun.
  if (err.code === 'ECONNRESET' || !socket.writable || (socket as Duplex & { _httpMessage?: { headersSent?: boolean } })._httpMessage?.headersSent) {
    socket.destroy();
    return;
  }
  const refusal =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? new AppError('HEADERS_TOO_LARGE', 'the request line and headers are larger than 16 KiB')
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? new AppError('REQUEST_TIMEOUT', 'the request did not arrive in time')
        : new AppError('BAD_REQUEST', `the request is not valid HTTP/1.1 (${err.code ?? 'parse error'})`);
  const body = JSON.stringify(errorBody(refusal));
  const headers = {
    ...API_RESPONSE_HEADERS,
    'Content-Type': 'application/json; charset=utf-8',
    'Content-Length': String(Buffer.byteLength(body)),
    Connection: 'close',
  };
  const head = Object.entries(headers)
    .map(([name, value]) => `${name}: ${value}\r\n`)
    .join('');
  socket.end(`HTTP/1.1 ${refusal.status} ${STATUS_CODES[refusal.status]}\r\n${head}\r\n${body}`);
}
