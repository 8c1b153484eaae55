import type { z } from 'zod';
import type { ErrorCode } from '../../errors';

export type Auth = 'none' | 'bearer' | 'admin';
export type Method = 'get' | 'post' | 'put';

/**
 * One route as /openapi.json describes it. The routes are listed by area in the files beside this
 * one (users, shows, orders, payments, operator, probes) and put together, in that order, by
 * ../openapi.ts; ./build.ts turns each into its OpenAPI operation.
 */
export interface Operation {
  method: Method;
  /** Express style: `/api/orders/:id`. */
  path: string;
  operationId: string;
  summary: string;
  tag: string;
  auth: Auth;
  body?: z.ZodType;
  /** The request body is optional (an empty body or `{}` is fine). */
  bodyOptional?: boolean;
  /** A route that takes no body: nothing, or `{}`. */
  noBody?: boolean;
  query?: z.ZodType;
  idempotent?: boolean;
  /** Signed by the payment provider (header X-Payment-Signature over the raw body). */
  signed?: boolean;
  /** status -> schema (JSON) or a media type description. */
  success: Record<number, { description: string; schema?: z.ZodType; location?: boolean; contentType?: string }>;
  /** Codes this route answers besides the common ones (a status per code, from ERROR_STATUS). */
  errors: ErrorCode[];
  /** Outside the JSON API: no common body-parsing errors. */
  plain?: boolean;
  description?: string;
}

/** Codes of the routes that need the caller's bearer token. */
export const userCommon: ErrorCode[] = ['UNAUTHORIZED'];
/** Codes of a route whose path names something by id. */
export const pathIdNotFound: ErrorCode[] = ['NOT_FOUND'];
