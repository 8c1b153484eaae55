import type { IncomingMessage, ServerResponse } from 'node:http';
import type { RequestHandler } from 'express';
import helmet from 'helmet';

/**
 * The security headers of every response, set by helmet: nosniff, Referrer-Policy: no-referrer,
 * HSTS, frame and cross-origin policies, and a strict Content-Security-Policy. The CSP is strict
 * by default because pages will be served under it (the operator console at /console): only
 * the service's own scripts, styles, fonts and images (plus data: images), nothing inline, no
 * plugins, no framing, forms and <base> only to itself. No upgrade-insecure-requests: the
 * service speaks plain HTTP where no TLS proxy stands in front of it.
 */
export const securityHeaders: RequestHandler = helmet({
  contentSecurityPolicy: {
    useDefaults: false,
    directives: {
      defaultSrc: ["'self'"],
      baseUri: ["'self'"],
      fontSrc: ["'self'"],
      formAction: ["'self'"],
      frameAncestors: ["'none'"],
      imgSrc: ["'self'", 'data:'],
      objectSrc: ["'none'"],
      scriptSrc: ["'self'"],
      scriptSrcAttr: ["'none'"],
      styleSrc: ["'self'"],
    },
  },
  frameguard: { action: 'deny' },
  referrerPolicy: { policy: 'no-referrer' },
});

/** What `/api` answers is a user's, an order's or an operator's data: never stored by a cache. */
export const API_CACHE_CONTROL = 'no-store';

/**
 * The headers of an `/api` answer written outside Express (the sold-out fast path): the ones
 * helmet sets, recorded once from the same middleware, and no-store.
 */
export const API_RESPONSE_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  ...headersSetBy(securityHeaders),
  'Cache-Control': API_CACHE_CONTROL,
});

function headersSetBy(middleware: RequestHandler): Record<string, string> {
  const headers: Record<string, string> = {};
  const recorder = {
    setHeader: (name: string, value: string | number) => (headers[name] = String(value)),
    removeHeader: () => {},
  };
  let done = false;
  (middleware as unknown as (req: IncomingMessage, res: ServerResponse, next: (err?: unknown) => void) => void)(
    {} as IncomingMessage,
    recorder as unknown as ServerResponse,
    (err) => {
      if (err) throw err;
      done = true;
    },
  );
  if (!done) throw new Error('the security headers middleware did not finish synchronously');
  return headers;
}
