import { Counter, Gauge, type Registry } from 'prom-client';
import { inTransaction, isDuplicateKey, toNumber, type Db } from '../db/database';
import { AppError } from '../errors';
import type { Logger } from '../observability/logger';
import { errorMessage } from '../observability/logger';
import { parse } from '../support/schemas';
import type { Clock } from '../support/time';
import { answer, FLAG_REASONS, notificationSchema, parseJson, type Notification, type NotificationRow } from './notification';
import { OrderBeingPaid, settleNotification, type SettleDeps, type Settlement } from './settle';
import { checkFreshness, verifySignature } from './signature';

/**
 * The payment provider's callback and its reconciliation job.
 *
 * The provider tells us "order X was paid Y cents, transaction T". We store every such
 * notification once (T is its idempotency key) and settle it when its order is known: the
 * provider's money is credited to the buyer's wallet and pays the order in the same transaction,
 * so the wallet's balance is unchanged and balance = credits − payments + refunds still holds.
 * A notification whose order is not known yet (an async order still queued) waits for the
 * reconciler; one that can never be settled is FLAGGED: the money must go back at the provider.
 */

const RECONCILE_BATCH = 100;

export interface PaymentNotificationsDeps extends SettleDeps {
  db: Db;
  logger: Logger;
  registry: Registry;
  /** PAYMENT_NOTIFY_SECRET; undefined = the callback is off. */
  secret: string | undefined;
  clock: Clock;
}

export class PaymentNotifications {
  private readonly received: Counter<'outcome'>;

  constructor(private readonly deps: PaymentNotificationsDeps) {
    const { db, registry } = deps;
    this.received = new Counter({
      name: 'seat_saga_payment_notifications_total',
      help: 'Payment provider callbacks received, by outcome (settled, unmatched, flagged, duplicate, rejected)',
      labelNames: ['outcome'] as const,
      registers: [registry],
    });
    new Gauge({
      name: 'seat_saga_payments_flagged',
      help: 'Provider payments flagged, never settled (their money must go back at the provider), by reason',
      labelNames: ['reason'] as const,
      registers: [registry],
      async collect() {
        const rows: Array<{ reason: string; n: string | number }> = await db('payment_notifications')
          .where({ status: 'FLAGGED' })
          .groupBy('flag_reason')
          .select('flag_reason as reason')
          .count({ n: '*' });
        for (const reason of FLAG_REASONS) this.set({ reason }, 0);
        for (const row of rows) this.set({ reason: row.reason }, toNumber(row.n));
      },
    });
    new Gauge({
      name: 'seat_saga_payments_unmatched',
      help: 'Provider payments stored whose order is not known yet (reconciliation keeps trying)',
      registers: [registry],
      async collect() {
        const [{ n }] = await db('payment_notifications').where({ status: 'UNMATCHED' }).count({ n: '*' });
        this.set(toNumber(n));
      },
    });
  }

  get enabled(): boolean {
    return this.deps.secret !== undefined;
  }

  /**
   * POST /api/payments/notify: checks the signature over the raw bytes before anything else
   * (a forged body writes nothing), then the body and its freshness; stores the notification once
   * per txnId and tries to settle it at once. 200 also when the order is not known yet: the
   * notification is stored and the provider need not retry.
   */
  async receive(rawBody: Buffer, signatureHeader: string | undefined, logger: Logger): Promise<{ status: number; body: unknown }> {
    if (this.deps.secret === undefined) {
      throw new AppError('NOT_FOUND', 'payment notifications are not configured (PAYMENT_NOTIFY_SECRET)');
    }
    let notification: Notification;
    let known: NotificationRow | undefined;
    try {
      verifySignature(rawBody, signatureHeader, this.deps.secret);
      notification = parse(notificationSchema, parseJson(rawBody));
      // A txnId already stored is answered whatever its age: a provider retrying a delivered
      // notification late must learn its fate, not be refused. Only new ones must be fresh.
      known = await this.deps.db('payment_notifications').where({ txn_id: notification.txnId }).first();
      if (!known) checkFreshness(notification.paidAt, this.deps.clock.now());
    } catch (err) {
      this.received.inc({ outcome: 'rejected' });
      if (err instanceof AppError) logger.warn('payment notification rejected', { code: err.code, reason: err.message });
      throw err;
    }

    const log = logger.child({ txnId: notification.txnId, orderId: notification.orderId });
    const stored = known ? { duplicate: true, notification: known } : await this.store(notification);
    if (stored.duplicate) {
      const { notification: row } = stored;
      if (row.order_id !== notification.orderId || toNumber(row.amount_cents) !== notification.amountCents) {
        this.received.inc({ outcome: 'rejected' });
        throw new AppError('IDEMPOTENCY_KEY_REUSED', `txnId ${notification.txnId} was already notified with another orderId or amountCents`, {
          txnId: notification.txnId,
        });
      }
      this.received.inc({ outcome: 'duplicate' });
      log.info('duplicate payment notification', { status: row.status });
      // A retry of a notification still waiting is a good moment to look for its order again.
      const current = row.status === 'UNMATCHED' ? (await this.settle(row.txn_id, log)).notification : row;
      return { status: 200, body: { ...answer(current), duplicate: true } };
    }

    const { notification: row } = await this.settle(notification.txnId, log);
    this.received.inc({ outcome: row.status.toLowerCase() });
    if (row.status === 'UNMATCHED') log.info('payment stored, its order is not known yet');
    return { status: 200, body: answer(row) };
  }

  /** One reconciliation pass: settles (or flags) up to 100 waiting notifications, oldest first. */
  async reconcileOnce(): Promise<{ settled: number; flagged: number }> {
    const logger = this.deps.logger.child({ task: 'payment reconciliation' });
    const waiting: string[] = await this.deps
      .db('payment_notifications')
      .where({ status: 'UNMATCHED' })
      .orderBy('received_at')
      .limit(RECONCILE_BATCH)
      .pluck('txn_id');
    const counts = { settled: 0, flagged: 0 };
    for (const txnId of waiting) {
      try {
        const { outcome } = await this.settle(txnId, logger.child({ txnId }));
        if (outcome === 'settled' || outcome === 'flagged') counts[outcome]++;
      } catch (err) {
        // One notification that fails must not stop the others; the next pass tries it again.
        logger.warn('payment reconciliation failed', { txnId, error: errorMessage(err) });
      }
    }
    return counts;
  }

  /** Inserts the notification as UNMATCHED; a txnId already stored answers the stored row. */
  private async store(n: Notification): Promise<{ duplicate: boolean; notification: NotificationRow }> {
    const { db, clock } = this.deps;
    try {
      await db('payment_notifications').insert({
        txn_id: n.txnId,
        order_id: n.orderId,
        amount_cents: n.amountCents,
        paid_at: new Date(n.paidAt),
        status: 'UNMATCHED',
        // Our clock, not the database's: the match deadline is measured with it.
        received_at: new Date(clock.now()),
      });
    } catch (err) {
      if (!isDuplicateKey(err)) throw err;
      return { duplicate: true, notification: await db('payment_notifications').where({ txn_id: n.txnId }).first() };
    }
    return { duplicate: false, notification: await db('payment_notifications').where({ txn_id: n.txnId }).first() };
  }

  /** Settles, flags or leaves waiting one notification (one transaction), and says so in the log. */
  private async settle(txnId: string, logger: Logger): Promise<Settlement> {
    const { db } = this.deps;
    let settlement: Settlement;
    try {
      settlement = await inTransaction(db, (trx) => settleNotification(trx, this.deps, txnId));
    } catch (err) {
      if (!(err instanceof OrderBeingPaid)) throw err;
      await db('payment_notifications').where({ txn_id: txnId, status: 'UNMATCHED' }).increment('match_attempts', 1);
      logger.info('order is being paid by a pay saga right now; payment left for the next pass');
      return { outcome: 'unmatched', notification: await db('payment_notifications').where({ txn_id: txnId }).first() };
    }
    const { outcome, notification: row } = settlement;
    const fields = { txnId: row.txn_id, orderId: row.order_id, amountCents: toNumber(row.amount_cents) };
    if (outcome === 'settled') logger.info('payment settled', fields);
    if (outcome === 'flagged') {
      const flagged = { ...fields, reason: row.flag_reason, detail: row.detail };
      // No order ever appeared: money we hold for nothing; an operator must refund it.
      if (row.flag_reason === 'NO_ORDER') logger.error('unmatched payment flagged for refund', flagged);
      else logger.warn('payment flagged', flagged);
    }
    return settlement;
  }
}
