import { Router } from 'express';
import type { PaymentNotifications } from '../../payments/notifications';

/** SCAFFOLD (being implemented): POST /api/payments/notify, mounted before the JSON parser (raw body). */
export function paymentRoutes(_payments: PaymentNotifications): Router {
  return Router();
}
