import type { Registry } from 'prom-client';
import type { Db } from '../db/database';
import type { Logger } from '../observability/logger';
import type { Clock } from '../support/time';

export interface PaymentNotificationsDeps {
  db: Db;
  logger: Logger;
  registry: Registry;
  /** PAYMENT_NOTIFY_SECRET; undefined = the callback is off. */
  secret: string | undefined;
  matchDeadlineMs: number;
  clock: Clock;
}

/** SCAFFOLD (being implemented): the payment provider's callback and the reconciliation job. */
export class PaymentNotifications {
  constructor(private readonly deps: PaymentNotificationsDeps) {}

  get enabled(): boolean {
    return this.deps.secret !== undefined;
  }

  async receive(_rawBody: Buffer, _signature: string | undefined, _logger: Logger): Promise<{ status: number; body: unknown }> {
    throw new Error('not implemented yet');
  }

  async reconcileOnce(): Promise<{ settled: number; flagged: number }> {
    return { settled: 0, flagged: 0 };
  }
}
