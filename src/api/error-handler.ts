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
  const type = (err as { type?: string })?.type;
  if (type === 'entity.parse.failed') return new AppError('MALFORMED_JSON', 'the body is not valid JSON');
  if (type === 'entity.too.large') return new AppError('PAYLOAD_TOO_LARGE', 'the body is larger than 64 KiB');
  if (type === 'charset.unsupported' || type === 'encoding.unsupported') {
    return new AppError('UNSUPPORTED_MEDIA_TYPE', 'the body must be UTF-8 JSON');
  }
  return new AppError('INTERNAL', 'internal error', undefined, { cause: err });
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
      log.error('request failed', {
        code: appError.code,
        method: req.method,
        path: req.path,
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
