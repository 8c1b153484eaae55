import type { NextFunction, Request, Response } from 'express';
import { AppError, isDatabaseUnavailable, isRedisUnavailable, serviceUnavailable } from '../errors';
import { BrokerUnavailableError } from '../messaging/broker';
import type { Logger } from '../observability/logger';
import { errorMessage } from '../observability/logger';
import { SagaFailedError } from '../sagas/engine';

/** The one place where errors become HTTP responses: `{error: {code, message, details}}`. */
export function toAppError(err: unknown): AppError {
  if (err instanceof AppError) return err;
  if (err instanceof SagaFailedError) {
    const saga = { sagaId: err.sagaId, tag: err.tag };
    // A business answer given by a step (SEATS_TAKEN, INSUFFICIENT_BALANCE...) keeps its code.
    if (err.cause instanceof AppError) {
      const details = { ...(err.cause.details as object | undefined), ...saga };
      return new AppError(err.cause.code, err.cause.message, details, { cause: err });
    }
    const unavailable = dependencyDown(err.cause);
    if (unavailable) {
      return new AppError('SERVICE_UNAVAILABLE', unavailable.message, { ...(unavailable.details as object), ...saga }, { cause: err });
    }
    return new AppError('SAGA_FAILED', `saga failed at ${err.tag ?? 'start'}: ${errorMessage(err.cause)}`, saga, { cause: err });
  }
  const unavailable = dependencyDown(err);
  if (unavailable) return unavailable;
  return clientError(err) ?? new AppError('INTERNAL', 'internal error', undefined, { cause: err });
}

interface HttpLayerError {
  type?: unknown;
  status?: unknown;
  statusCode?: unknown;
  expose?: unknown;
  code?: unknown;
  encoding?: unknown;
  charset?: unknown;
  message?: unknown;
}

/**
 * The client's fault as Express's own parts report it: body-parser and raw-body mark what they
 * refuse with `type` and, through http-errors, a 4xx `status` with `expose: true` (a body that is
 * not the gzip it claims, an aborted upload, a length that lies...); the router raises a URIError
 * with status 400 for a path it cannot percent-decode. Each becomes its 4xx with the contract's
 * shape, mapped by kind rather than one case per error, so a refusal not listed here is a 400,
 * never a 500.
 */
function clientError(err: unknown): AppError | null {
  if (typeof err !== 'object' || err === null) return null;
  const { type, status, statusCode, expose, code, encoding, charset, message } = err as HttpLayerError;
  // By type first: the sold-out fast path reports its pre-read parse error by type alone.
  if (type === 'entity.parse.failed') return new AppError('MALFORMED_JSON', 'the body is not valid JSON');
  if (type === 'entity.too.large') return new AppError('PAYLOAD_TOO_LARGE', 'the body is larger than 64 KiB');
  if (type === 'charset.unsupported') return new AppError('UNSUPPORTED_MEDIA_TYPE', `the body must be UTF-8 JSON (not charset ${String(charset)})`);
  if (type === 'encoding.unsupported') {
    return new AppError('UNSUPPORTED_MEDIA_TYPE', `Content-Encoding ${JSON.stringify(String(encoding))} is not supported: send identity, gzip, deflate or br`);
  }
  const httpStatus = typeof status === 'number' ? status : statusCode;
  if (err instanceof URIError && httpStatus === 400) return new AppError('BAD_REQUEST', 'the path holds a malformed percent-escape');
  if (typeof httpStatus !== 'number' || httpStatus < 400 || httpStatus > 499 || expose !== true) return null;
  if (httpStatus === 413) return new AppError('PAYLOAD_TOO_LARGE', 'the body is larger than 64 KiB');
  if (httpStatus === 415) return new AppError('UNSUPPORTED_MEDIA_TYPE', `the body cannot be read: ${String(message)}`);
  if (httpStatus === 404) return new AppError('NOT_FOUND', String(message));
  // zlib's own error, wrapped by body-parser: the bytes are not what Content-Encoding says.
  if (typeof code === 'string' && code.startsWith('Z_')) {
    return new AppError('BAD_REQUEST', `the body does not decode as its Content-Encoding says (${String(message)})`);
  }
  if (type === 'request.aborted') return new AppError('BAD_REQUEST', 'the request was aborted before its body was read');
  if (type === 'request.size.invalid') return new AppError('BAD_REQUEST', 'the body is not as long as its Content-Length says');
  return new AppError('BAD_REQUEST', `the request cannot be read: ${String(message)}`);
}

function dependencyDown(err: unknown): AppError | null {
  if (err instanceof BrokerUnavailableError) return serviceUnavailable('rabbitmq', err);
  if (isDatabaseUnavailable(err)) return serviceUnavailable('mysql', err);
  if (isRedisUnavailable(err)) return serviceUnavailable('redis', err);
  return null;
}

export function errorHandler(logger: Logger) {
  return (err: unknown, req: Request, res: Response, _next: NextFunction) => {
    const appError = toAppError(err);
    const log = (res.locals.logger as Logger | undefined) ?? logger;
    if (appError.status >= 500) {
      const saga = err instanceof SagaFailedError ? { sagaId: err.sagaId, tag: err.tag } : {};
      log.error('request failed', {
        code: appError.code,
        method: req.method,
        path: req.path,
        ...saga,
        error: errorMessage(appError.cause ?? err),
        stack: appError.code === 'INTERNAL' && err instanceof Error ? err.stack : undefined,
      });
    }
    if (res.headersSent) return;
    if (appError.status === 503) res.set('Retry-After', '1');
    const retryAfterSeconds = (appError.details as { retryAfterSeconds?: number } | undefined)?.retryAfterSeconds;
    if (appError.status === 429 && retryAfterSeconds) res.set('Retry-After', String(retryAfterSeconds));
    res.status(appError.status).json(errorBody(appError));
  };
}

/** The contract's error shape: `{error: {code, message, details?}}`. */
export function errorBody(appError: AppError) {
  return { error: { code: appError.code, message: appError.message, ...(appError.details === undefined ? {} : { details: appError.details }) } };
}
