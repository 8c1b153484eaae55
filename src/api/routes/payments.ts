import express, { Router } from 'express';
import type { PaymentNotifications } from '../../payments/notifications';
import { SIGNATURE_HEADER } from '../../payments/signature';
import { BODY_LIMIT_BYTES } from '../request';

/**
 * The payment provider's callback. Mounted before the JSON parser: the signature covers the raw
 * bytes, so this route reads its own body (any Content-Type, at most 64 KiB) and hands them over
 * untouched.
 */
export function paymentRoutes(payments: PaymentNotifications): Router {
  const router = Router();

  router.post('/notify', express.raw({ type: () => true, limit: BODY_LIMIT_BYTES }), async (req, res) => {
    // No body at all leaves req.body undefined: an empty body, whose signature will not match.
    const rawBody = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
    const { status, body } = await payments.receive(rawBody, req.get(SIGNATURE_HEADER), res.locals.logger);
    res.status(status).json(body);
  });

  return router;
}
