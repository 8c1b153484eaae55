import type { IncomingMessage, ServerResponse } from 'node:http';
import { soldOut, type AsyncOrderIntake } from '../flash-sale/intake';
import type { TokenSigner } from '../users/tokens';
import { bearerUser } from './auth';
import { errorBody } from './error-handler';
import { AppError } from '../errors';
import { BODY_LIMIT_BYTES, JSON_MAX_DEPTH, jsonTooDeep, nestedDeeperThan, requestIdOf } from './request';
import { API_RESPONSE_HEADERS } from './security-headers';
import { schemas } from './validation';

/** Where the fast path leaves the parse error of a body it read but did not answer. */
const PREREAD_BODY_ERROR = Symbol('prereadBodyError');
type PrereadRequest = IncomingMessage & { [PREREAD_BODY_ERROR]?: Error; body?: unknown };

/** The parse error of a body the fast path read, for the route to pass to the error handler. */
export const prereadBodyError = (req: IncomingMessage): Error | undefined => (req as PrereadRequest)[PREREAD_BODY_ERROR];

const PATH = '/api/orders/async';

/**
 * The hot answer of a flash sale, as cheap as `GET /livez`: once this process knows a show is
 * sold out (AsyncOrderIntake's short-lived cache), a well-formed, authenticated
 * `POST /api/orders/async` for it is answered 409 SOLD_OUT here, before Express: no router, no
 * body-parser, no per-request logger or latency histogram (these answers are counted in
 * `seat_saga_async_order_requests_total{outcome="sold_out_cached"}`).
 *
 * Everything else goes on to Express unchanged. A request whose body this function has read is
 * handed over with `req.body` set, as body-parser would have set it, or with the parse error
 * under PREREAD_BODY_ERROR, so that every answer but this one still comes from the one route and
 * the one error handler.
 */
export function soldOutFastPath(deps: { asyncOrders: AsyncOrderIntake; tokens: TokenSigner }) {
  return (req: IncomingMessage, res: ServerResponse, express: (req: IncomingMessage, res: ServerResponse) => void): void => {
    if (
      !deps.asyncOrders.anyKnownSoldOut ||
      req.method !== 'POST' ||
      req.url !== PATH ||
      !worthReading(req) ||
      bearerUser(deps.tokens, req.headers.authorization) === null
    ) {
      express(req, res);
      return;
    }
    // Content-Length was checked: Node's parser delivers no more than it said.
    const chunks: Buffer[] = [];
    let handedOver = false;
    /** To Express, with the body's parse error (as body-parser reports one) if it had one. */
    const handOver = (parseError?: Error) => {
      if (handedOver) return;
      handedOver = true;
      if (parseError) {
        (req as PrereadRequest)[PREREAD_BODY_ERROR] = parseError instanceof AppError ? parseError : Object.assign(parseError, { type: 'entity.parse.failed' });
      }
      req.removeListener('data', onData);
      req.removeListener('end', onEnd);
      express(req, res);
    };
    const onData = (chunk: Buffer) => chunks.push(chunk);
    const onEnd = () => {
      const text = Buffer.concat(chunks).toString('utf8');
      let body: unknown;
      try {
        body = JSON.parse(text);
      } catch (err) {
        handOver(err as Error);
        return;
      }
      // body-parser's strict mode refuses a bare value the same way.
      if (body === null || typeof body !== 'object') {
        handOver(new Error('not a JSON object or array'));
        return;
      }
      // As the route's own parser refuses it.
      if (nestedDeeperThan(body, JSON_MAX_DEPTH)) {
        handOver(jsonTooDeep());
        return;
      }
      (req as PrereadRequest).body = body;
      const order = schemas.createAsyncOrder.safeParse(body);
      if (order.success && deps.asyncOrders.refuseIfKnownSoldOut(order.data.showId)) {
        handedOver = true;
        const refusal = soldOut(order.data.showId);
        const payload = JSON.stringify(errorBody(refusal));
        res.writeHead(refusal.status, {
          ...API_RESPONSE_HEADERS,
          'Content-Type': 'application/json; charset=utf-8',
          'Content-Length': Buffer.byteLength(payload),
          'X-Request-Id': requestIdOf(req.headers['x-request-id']),
        });
        res.end(payload);
        return;
      }
      handOver();
    };
    req.on('data', onData);
    req.on('end', onEnd);
    // An aborted upload: Express answers it as it would have.
    req.on('error', () => handOver());
  };
}

/**
 * A small JSON body of a known length, sent as it is: anything else (chunked, compressed with a
 * Content-Encoding...) is body-parser's to read and judge.
 */
function worthReading(req: IncomingMessage): boolean {
  const length = Number(req.headers['content-length']);
  if (!(length > 0 && length <= BODY_LIMIT_BYTES) || req.headers['transfer-encoding'] !== undefined || req.headers['content-encoding'] !== undefined)
    return false;
  const type = req.headers['content-type'];
  return type === 'application/json' || type === 'application/json; charset=utf-8';
}
