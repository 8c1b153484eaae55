import http from 'node:http';

/** What came back, as sent by the server: status, headers, the body's text and its JSON if any. */
export interface RawReply {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  body: any;
}

export interface RawRequest {
  method: string;
  /** Sent as written: no normalisation, no percent-encoding (unlike fetch's URL parsing). */
  path: string;
  headers?: Record<string, string>;
  body?: Buffer | string;
  /** Send the body with Transfer-Encoding: chunked instead of a Content-Length. */
  chunked?: boolean;
}

const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });

/**
 * One HTTP request with full control over its bytes (path, headers, body), for tests that send
 * what a well-behaved client never would: bad percent-escapes, lying Content-Encoding, odd methods.
 */
export function rawRequest(baseUrl: string, request: RawRequest): Promise<RawReply> {
  const url = new URL(baseUrl);
  const body = typeof request.body === 'string' ? Buffer.from(request.body) : request.body;
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        agent,
        host: url.hostname,
        port: url.port,
        method: request.method,
        path: request.path,
        // Node's client frames a GET's body only when told: say how, always.
        headers: { ...(body ? (request.chunked ? { 'Transfer-Encoding': 'chunked' } : { 'Content-Length': String(body.length) }) : {}), ...request.headers },
        timeout: 30_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let parsed: unknown;
          try {
            parsed = text ? JSON.parse(text) : undefined;
          } catch {
            parsed = undefined;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, body: parsed });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${request.method} ${request.path}: no answer in 30 s`)));
    req.on('error', reject);
    if (body && request.chunked) {
      // Two chunks, so the server sees a body of unknown length arrive in parts.
      req.write(body.subarray(0, body.length >> 1));
      req.end(body.subarray(body.length >> 1));
    } else {
      req.end(body);
    }
  });
}

/** The contract's error shape: `{error: {code, message, details?}}` with a non-empty code and message. */
export function hasErrorShape(body: unknown): boolean {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) return false;
  const keys = Object.keys(body);
  if (keys.length !== 1 || keys[0] !== 'error') return false;
  const error = (body as { error: unknown }).error;
  if (typeof error !== 'object' || error === null || Array.isArray(error)) return false;
  const { code, message, ...rest } = error as Record<string, unknown>;
  return typeof code === 'string' && /^[A-Z_]+$/.test(code) && typeof message === 'string' && message !== '' && Object.keys(rest).every((k) => k === 'details');
}
