import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Db } from '../db/database';
import { toNumber } from '../db/database';

/**
 * Prometheus metrics, in a registry of this app instance (not prom-client's global one, which
 * throws when a test builds the app twice).
 */
export function createMetrics(db: Db) {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'seat_saga_' });
  // Gauges that prom-client names like counters (promtool refuses them); each has a twin without
  // the suffix, by type, that stays.
  for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) {
    registry.removeSingleMetric(`seat_saga_${name}`);
  }
  let deadLetterDepth: (() => Promise<Record<string, number>>) | null = null;

  const httpDuration = new Histogram({
    name: 'seat_saga_http_request_duration_seconds',
    help: 'HTTP request latency by route and status',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  const sagaOutcomes = new Counter({
    name: 'seat_saga_saga_outcomes_total',
    help: 'Sagas that ended, as the saga log says: COMPLETED, or COMPENSATED (with the tag its compensation went out with), by type',
    labelNames: ['type', 'status', 'tag'] as const,
    registers: [registry],
  });
  const sagaFailures = new Counter({
    name: 'seat_saga_saga_failures_total',
    help: 'Sagas that failed and went to compensation, by type, failed tag and error code (a business refusal such as WRONG_PAY_PASSWORD too)',
    labelNames: ['type', 'tag', 'error_code'] as const,
    registers: [registry],
  });
  const sagaDuration = new Histogram({
    name: 'seat_saga_saga_duration_seconds',
    help: 'Time from saga start to completion or failure',
    labelNames: ['type', 'status'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  const compensations = new Counter({
    name: 'seat_saga_compensation_deliveries_total',
    help: 'Compensation deliveries by listener and outcome (done, noop, duplicate-redis, duplicate-db, busy)',
    labelNames: ['listener', 'outcome'] as const,
    registers: [registry],
  });
  const deadLettered = new Counter({
    name: 'seat_saga_messages_dead_lettered_total',
    help: 'Messages moved to a DLQ, by queue and reason',
    labelNames: ['queue', 'reason'] as const,
    registers: [registry],
  });
  const deadLettersResolved = new Counter({
    name: 'seat_saga_dead_letters_resolved_total',
    help: 'DLQ messages taken out because what they asked for was settled since, by DLQ',
    labelNames: ['queue'] as const,
    registers: [registry],
  });
  const outboxPublished = new Counter({
    name: 'seat_saga_outbox_published_total',
    help: 'Outbox messages published and confirmed by the broker',
    registers: [registry],
  });
  const ordersExpired = new Counter({
    name: 'seat_saga_orders_expired_total',
    help: 'Unpaid orders expired, by the trigger that did it (keyspace, delay-queue, sweep)',
    labelNames: ['trigger'] as const,
    registers: [registry],
  });
  const expiryLateness = new Histogram({
    name: 'seat_saga_order_expiry_lateness_seconds',
    help: 'How long after its deadline an unpaid order was expired',
    labelNames: ['trigger'] as const,
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
    registers: [registry],
  });
  const payPasswordChecks = new Counter({
    name: 'seat_saga_pay_password_checks_total',
    help: 'Pay-password checks by outcome: right and wrong computed a hash, locked was refused without one',
    labelNames: ['outcome'] as const,
    registers: [registry],
  });
  // The async (flash-sale) path.
  const asyncRequests = new Counter({
    name: 'seat_saga_async_order_requests_total',
    help: 'POST /api/orders/async answers by outcome (accepted, sold_out, sold_out_cached, seats_taken, duplicate, settling, unavailable)',
    labelNames: ['outcome'] as const,
    registers: [registry],
  });
  const asyncPersisted = new Counter({
    name: 'seat_saga_async_orders_persisted_total',
    help: 'Async orders written to the database by the order consumer',
    registers: [registry],
  });
  const asyncStaleDrops = new Counter({
    name: 'seat_saga_async_orders_stale_dropped_total',
    help: 'Order messages older than ORDER_MAX_QUEUE_DELAY_MS when consumed: dropped, their seats released',
    registers: [registry],
  });
  const asyncWaitTimeouts = new Counter({
    name: 'seat_saga_async_order_wait_timeouts_total',
    help: 'POST /api/orders/async?waitMs=N answered 202 because the order was not persisted within N ms',
    registers: [registry],
  });
  const asyncPersistedAfterGiveUp = new Counter({
    name: 'seat_saga_async_orders_persisted_after_waiter_gave_up_total',
    help: 'Async orders persisted after the waitMs of the request that placed them had run out',
    registers: [registry],
  });
  const asyncPersistLag = new Histogram({
    name: 'seat_saga_async_order_persist_lag_seconds',
    help: 'Time from the reservation (202) to the commit of the order',
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  const asyncBatchSize = new Histogram({
    name: 'seat_saga_async_order_batch_size',
    help: 'Orders persisted per database transaction by the order consumer',
    buckets: [1, 5, 10, 25, 50, 100, 200, 500, 1000],
    registers: [registry],
  });
  const reservationsReleased = new Counter({
    name: 'seat_saga_reservations_released_total',
    help: 'Async reservations whose seats went back, by reason (stale, publish-failed, seats-taken, reconciler)',
    labelNames: ['reason'] as const,
    registers: [registry],
  });
  const reservationsPending = new Gauge({
    name: 'seat_saga_reservations_pending',
    help: 'Async reservations not yet persisted or released, as last counted by the reconciler',
    registers: [registry],
  });
  const retentionPurged = new Counter({
    name: 'seat_saga_retention_purged_rows_total',
    help: 'Rows deleted by the saga retention purge (SAGA_RETENTION_DAYS), by table',
    labelNames: ['table'] as const,
    registers: [registry],
  });
  new Gauge({
    name: 'seat_saga_outbox_pending',
    help: 'Outbox messages not yet confirmed by the broker',
    registers: [registry],
    async collect() {
      const [{ n }] = await db('outbox').whereNull('sent_at').count({ n: '*' });
      this.set(toNumber(n));
    },
  });
  new Gauge({
    name: 'seat_saga_sagas_in_flight',
    help: 'Sagas RUNNING or COMPENSATING right now',
    labelNames: ['status'] as const,
    registers: [registry],
    async collect() {
      for (const status of ['RUNNING', 'COMPENSATING']) {
        const [{ n }] = await db('sagas').where({ status }).count({ n: '*' });
        this.set({ status }, toNumber(n));
      }
    },
  });

  new Gauge({
    name: 'seat_saga_dead_letters',
    help: 'Messages in a DLQ not yet redriven, dropped or settled, by the listener (consumer) they were dead-lettered from',
    labelNames: ['listener'] as const,
    registers: [registry],
    async collect() {
      if (!deadLetterDepth) return;
      for (const [listener, n] of Object.entries(await deadLetterDepth())) this.set({ listener }, n);
    },
  });

  return {
    registry,
    /** Where the dead-letter gauge reads its depth (the dead-letter log, built after the metrics). */
    readDeadLetterDepthFrom(source: () => Promise<Record<string, number>>) {
      deadLetterDepth = source;
    },
    httpDuration,
    sagaOutcomes,
    sagaFailures,
    sagaDuration,
    compensations,
    deadLettered,
    deadLettersResolved,
    outboxPublished,
    ordersExpired,
    expiryLateness,
    payPasswordChecks,
    asyncRequests,
    asyncPersisted,
    asyncStaleDrops,
    asyncWaitTimeouts,
    asyncPersistedAfterGiveUp,
    asyncPersistLag,
    asyncBatchSize,
    reservationsReleased,
    reservationsPending,
    retentionPurged,
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
