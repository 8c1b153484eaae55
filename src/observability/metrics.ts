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

  const httpDuration = new Histogram({
    name: 'seat_saga_http_request_duration_seconds',
    help: 'HTTP request latency by route and status',
    labelNames: ['method', 'route', 'status'] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  const sagaOutcomes = new Counter({
    name: 'seat_saga_saga_outcomes_total',
    help: 'Sagas that completed or failed (and went to compensation), by type and failed tag',
    labelNames: ['type', 'status', 'tag'] as const,
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

  return { registry, httpDuration, sagaOutcomes, sagaDuration, compensations, deadLettered, outboxPublished, ordersExpired, expiryLateness };
}

export type Metrics = ReturnType<typeof createMetrics>;
