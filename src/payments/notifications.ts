import { createHmac, timingSafeEqual } from 'node:crypto';
import { Counter, Gauge, type Registry } from 'prom-client';
import { z } from 'zod';
import { cents, idString, parse } from '../api/validation';
import { inTransaction, isDuplicateKey, toNumber, type Db, type Tx } from '../db/database';
import { AppError } from '../errors';
import type { Logger } from '../observability/logger';
import { errorMessage } from '../observability/logger';
import type { Clock } from '../support/time';

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

/** `X-Payment-Signature: sha256=<lowercase hex HMAC-SHA256(PAYMENT_NOTIFY_SECRET, raw body)>`. */
export const SIGNATURE_HEADER = 'X-Payment-Signature';
/** paidAt (inside the signed body) further than this from now is refused: replays die out. */
export const FRESHNESS_MS = 5 * 60 * 1000;
const RECONCILE_BATCH = 100;

export type NotificationStatus = 'UNMATCHED' | 'SETTLED' | 'FLAGGED';
export type FlagReason = 'NO_ORDER' | 'AMOUNT_MISMATCH' | 'ORDER_NOT_PAYABLE';
const FLAG_REASONS: readonly FlagReason[] = ['NO_ORDER', 'AMOUNT_MISMATCH', 'ORDER_NOT_PAYABLE'];

export const notificationSchema = z.strictObject({
  orderId: idString,
  amountCents: cents(1_000_000_000_00).refine((n) => n > 0, 'must be positive'),
  txnId: z.string().regex(/^[\w.:-]{1,128}$/, 'must be 1-128 letters, digits or _ . : -'),
  paidAt: z.iso.datetime({ offset: true, message: 'must be an ISO 8601 date-time with offset, e.g. 2026-12-31T20:00:00Z' }),
});

interface NotificationRow {
  txn_id: string;
  order_id: string;
  amount_cents: string | number;
  paid_at: Date;
  status: NotificationStatus;
  flag_reason: FlagReason | null;
  detail: string | null;
  match_attempts: number;
  received_at: Date;
  resolved_at: Date | null;
}

/** What one settling attempt did: `unchanged` when the notification was no longer UNMATCHED. */
interface Settlement {
  outcome: 'settled' | 'flagged' | 'unmatched' | 'unchanged';
  notification: NotificationRow;
}

/** Someone else (a pay saga) is paying the order right now: roll back, try again next pass. */
class OrderBeingPaid extends Error {}

export interface PaymentNotificationsDeps {
  db: Db;
  logger: Logger;
  registry: Registry;
  /** PAYMENT_NOTIFY_SECRET; undefined = the callback is off. */
  secret: string | undefined;
  matchDeadlineMs: number;
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
    let notification: z.output<typeof notificationSchema>;
    let known: NotificationRow | undefined;
    try {
      this.verifySignature(rawBody, signatureHeader, this.deps.secret);
      notification = parse(notificationSchema, parseJson(rawBody));
      // A txnId already stored is answered whatever its age: a provider retrying a delivered
      // notification late must learn its fate, not be refused. Only new ones must be fresh.
      known = await this.deps.db('payment_notifications').where({ txn_id: notification.txnId }).first();
      if (!known) this.checkFreshness(notification.paidAt);
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

  private verifySignature(rawBody: Buffer, header: string | undefined, secret: string): void {
    const given = /^sha256=([0-9a-f]{64})$/.exec(header?.trim() ?? '');
    const expected = createHmac('sha256', secret).update(rawBody).digest();
    if (!given || !timingSafeEqual(Buffer.from(given[1], 'hex'), expected)) {
      throw new AppError('INVALID_SIGNATURE', `missing or wrong ${SIGNATURE_HEADER} header: expected sha256=<hex HMAC-SHA256 of the raw body>`);
    }
  }

  private checkFreshness(paidAt: string): void {
    const ageMs = this.deps.clock.now() - Date.parse(paidAt);
    if (Math.abs(ageMs) > FRESHNESS_MS) {
      throw new AppError('STALE_NOTIFICATION', `paidAt ${paidAt} is more than ${FRESHNESS_MS / 60_000} minutes from now`, { paidAt });
    }
  }

  /** Inserts the notification as UNMATCHED; a txnId already stored answers the stored row. */
  private async store(n: z.output<typeof notificationSchema>): Promise<{ duplicate: boolean; notification: NotificationRow }> {
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
      settlement = await inTransaction(db, (trx) => this.settleIn(trx, txnId));
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

  /**
   * Under the notification's row lock: find its order (known = its order saga COMPLETED), and
   * either settle it, flag it, or count one more attempt. Every change is a conditional UPDATE.
   */
  private async settleIn(trx: Tx, txnId: string): Promise<Settlement> {
    const { clock, matchDeadlineMs } = this.deps;
    const note: NotificationRow | undefined = await trx('payment_notifications').where({ txn_id: txnId }).forUpdate().first();
    if (!note) throw new Error(`payment notification ${txnId} not found`);
    if (note.status !== 'UNMATCHED') return { outcome: 'unchanged', notification: note };

    // An order row whose saga is still running may yet be deleted by compensation: not known yet.
    const known = await trx('orders')
      .join('sagas', 'sagas.id', 'orders.saga_id')
      .where('orders.id', note.order_id)
      .andWhere('sagas.status', 'COMPLETED')
      .first('orders.id');
    if (!known) {
      const waitedMs = clock.now() - note.received_at.getTime();
      if (waitedMs > matchDeadlineMs) {
        return this.flag(trx, note, 'NO_ORDER', `no order ${note.order_id} appeared within ${matchDeadlineMs} ms`);
      }
      await trx('payment_notifications').where({ txn_id: txnId, status: 'UNMATCHED' }).increment('match_attempts', 1);
      return { outcome: 'unmatched', notification: { ...note, match_attempts: note.match_attempts + 1 } };
    }

    const order = await trx('orders').where({ id: note.order_id }).forUpdate().first('id', 'user_id', 'status', 'total_cents', 'expires_at');
    const amountCents = toNumber(note.amount_cents);
    if (amountCents !== toNumber(order.total_cents)) {
      return this.flag(trx, note, 'AMOUNT_MISMATCH', `paid ${amountCents} cents, the order's total is ${toNumber(order.total_cents)}`);
    }
    if (order.status !== 'PENDING_PAYMENT') {
      return this.flag(trx, note, 'ORDER_NOT_PAYABLE', `the order is ${order.status}`);
    }
    if (note.paid_at.getTime() > order.expires_at.getTime()) {
      return this.flag(trx, note, 'ORDER_NOT_PAYABLE', `paid at ${note.paid_at.toISOString()}, after the order expired at ${order.expires_at.toISOString()}`);
    }
    // Rather undersell than oversell: an order whose seats are no longer all held is not sold.
    const held = await trx('seat_holds').where({ order_id: order.id, status: 'held' }).forUpdate().pluck('seat_id');
    const [{ n: seatCount }] = await trx('order_seats').where({ order_id: order.id }).count({ n: '*' });
    if (held.length !== toNumber(seatCount)) {
      return this.flag(trx, note, 'ORDER_NOT_PAYABLE', `only ${held.length} of the order's ${toNumber(seatCount)} seats are still held`);
    }

    // The provider's money enters the wallet and pays the order: the balance does not move.
    try {
      await trx('ledger_entries').insert({ user_id: order.user_id, kind: 'credit', amount_cents: amountCents, order_id: order.id });
      await trx('ledger_entries').insert({ user_id: order.user_id, kind: 'payment', amount_cents: amountCents, order_id: order.id, saga_id: null });
    } catch (err) {
      // One payment per order (unique key): a pay saga wrote its payment and has not finished.
      if (isDuplicateKey(err)) throw new OrderBeingPaid();
      throw err;
    }
    const paid = await trx('orders')
      .where({ id: order.id, status: 'PENDING_PAYMENT' })
      .update({ status: 'PAID', paid_saga_id: null, updated_at: trx.raw('NOW(3)') });
    if (paid !== 1) throw new OrderBeingPaid();
    await trx('seat_holds').where({ order_id: order.id, status: 'held' }).update({ status: 'sold' });
    const resolvedAt = new Date(clock.now());
    await trx('payment_notifications').where({ txn_id: txnId, status: 'UNMATCHED' }).update({ status: 'SETTLED', resolved_at: resolvedAt });
    return { outcome: 'settled', notification: { ...note, status: 'SETTLED', resolved_at: resolvedAt } };
  }

  private async flag(trx: Tx, note: NotificationRow, reason: FlagReason, detail: string): Promise<Settlement> {
    const resolvedAt = new Date(this.deps.clock.now());
    const change = { status: 'FLAGGED' as const, flag_reason: reason, detail: detail.slice(0, 255), resolved_at: resolvedAt };
    await trx('payment_notifications').where({ txn_id: note.txn_id, status: 'UNMATCHED' }).update(change);
    return { outcome: 'flagged', notification: { ...note, ...change } };
  }
}

function parseJson(rawBody: Buffer): unknown {
  try {
    return JSON.parse(rawBody.toString('utf8'));
  } catch {
    throw new AppError('MALFORMED_JSON', 'the body is not valid JSON');
  }
}

/** The callback's answer: what became of the notification. */
function answer(row: NotificationRow) {
  return {
    txnId: row.txn_id,
    orderId: row.order_id,
    status: row.status,
    ...(row.flag_reason ? { reason: row.flag_reason } : {}),
  };
}
