import { timingSafeEqual } from 'node:crypto';
import type { NextFunction, Request, Response } from 'express';
import { AppError } from '../errors';
import type { TokenSigner } from '../users/tokens';

declare module 'express-serve-static-core' {
  interface Request {
    userId?: string;
  }
}

/** The user of an `Authorization: Bearer <token>` header's value, or null. */
export function bearerUser(tokens: TokenSigner, authorization: string | undefined): string | null {
  const match = /^Bearer\s+(\S+)$/i.exec(authorization ?? '');
  return match ? tokens.verify(match[1]) : null;
}

/** `Authorization: Bearer <token>`, checked by signature alone (no database round trip). */
export function requireUser(tokens: TokenSigner) {
  return (req: Request, _res: Response, next: NextFunction) => {
    const userId = bearerUser(tokens, req.headers.authorization);
    if (!userId) throw new AppError('UNAUTHORIZED', 'a valid "Authorization: Bearer <token>" header is required');
    req.userId = userId;
    next();
  };
}

/** `X-Admin-Token: <ADMIN_TOKEN>`, compared in constant time. */
export function requireAdmin(adminToken: string) {
  const expected = Buffer.from(adminToken);
  return (req: Request, _res: Response, next: NextFunction) => {
    const given = Buffer.from(req.get('x-admin-token') ?? '');
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      throw new AppError('UNAUTHORIZED', 'a valid X-Admin-Token header is required');
    }
    next();
  };
}

/** The authenticated user's id (set by requireUser). */
export const userIdOf = (req: Request): string => req.userId as string;
