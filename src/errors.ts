/**
 * The one error type that crosses layers. Each code has one HTTP status, set here; the API's
 * error handler is the only place that turns errors into responses.
 */
export const ERROR_STATUS = {
  VALIDATION_FAILED: 400,
  MALFORMED_JSON: 400,
  BAD_REQUEST: 400,
  INVALID_SIGNATURE: 400,
  STALE_NOTIFICATION: 400,
  UNAUTHORIZED: 401,
  INSUFFICIENT_BALANCE: 402,
  WRONG_PAY_PASSWORD: 403,
  NOT_FOUND: 404,
  METHOD_NOT_ALLOWED: 405,
  REQUEST_TIMEOUT: 408,
  SEATS_TAKEN: 409,
  SOLD_OUT: 409,
  DUPLICATE_REQUEST: 409,
  ORDER_NOT_PAYABLE: 409,
  IDEMPOTENCY_KEY_IN_PROGRESS: 409,
  ORDER_NOT_REFUNDABLE: 409,
  SAGA_NOT_COMPENSATING: 409,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  IDEMPOTENCY_KEY_REUSED: 422,
  TOO_MANY_ATTEMPTS: 429,
  HEADERS_TOO_LARGE: 431,
  INTERNAL: 500,
  SAGA_FAILED: 500,
  SERVICE_UNAVAILABLE: 503,
} as const;

export type ErrorCode = keyof typeof ERROR_STATUS;

export class AppError extends Error {
  readonly status: number;

  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly details?: unknown,
    options?: { cause?: unknown },
  ) {
    // A 4xx is an answer, not a fault: no stack trace to capture (SOLD_OUT is the hot path of a
    // flash sale). A 5xx keeps its stack for the logs.
    const limit = Error.stackTraceLimit;
    if (ERROR_STATUS[code] < 500) Error.stackTraceLimit = 0;
    try {
      super(message, options);
    } finally {
      Error.stackTraceLimit = limit;
    }
    this.name = 'AppError';
    this.status = ERROR_STATUS[code];
  }
}

export const notFound = (what: string) => new AppError('NOT_FOUND', `${what} not found`);

/** A dependency (MySQL, Redis, RabbitMQ) could not be reached: the request is refused whole. */
export function serviceUnavailable(dependency: string, cause: unknown): AppError {
  return new AppError('SERVICE_UNAVAILABLE', `${dependency} is unavailable, retry later`, { dependency }, { cause });
}

const MYSQL_CONNECTION_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'PROTOCOL_CONNECTION_LOST',
  'PROTOCOL_SEQUENCE_TIMEOUT',
  'ER_CON_COUNT_ERROR',
  'ER_SERVER_SHUTDOWN',
  'ER_CONNECTION_KILLED',
  'ER_QUERY_INTERRUPTED',
  'ER_NET_READ_ERROR',
  'ER_NET_WRITE_INTERRUPTED',
]);

/** True for errors that mean "the database is not reachable", as opposed to a bad statement. */
export function isDatabaseUnavailable(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const { code, fatal } = err as { code?: string; fatal?: boolean };
  if (code && MYSQL_CONNECTION_CODES.has(code)) return true;
  // mysql2 marks every error that killed the connection fatal, some without a code (a command
  // sent on a connection the server closed mid-transaction: "Can't add new command when
  // connection is in closed state").
  if (fatal === true) return true;
  // knex/tarn: the pool could not hand out a connection in time.
  return err.name === 'KnexTimeoutError' || /Knex: Timeout acquiring a connection/.test(err.message);
}

/** True for ioredis errors raised while Redis is unreachable. */
export function isRedisUnavailable(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  return (
    /Connection is closed|Stream isn't writeable|enableOfflineQueue|ECONNREFUSED|Reached the max retries|Redis connection is not ready/.test(err.message) ||
    err.name === 'MaxRetriesPerRequestError'
  );
}
