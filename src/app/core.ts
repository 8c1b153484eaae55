import { hostname } from 'node:os';
import type { HealthCheck } from '../api/deps';
import { IdempotencyStore } from '../api/idempotency';
import type { Config, Role } from '../config';
import { redactUrl } from '../config';
import { createDb, ensureDatabase, migrateLatest, type Db } from '../db/database';
import { connectRedis, createRedisClient, type RedisClient } from '../db/redis';
import { ReservationLog } from '../flash-sale/reservations';
import { SeatHolds } from '../inventory/seat-holds';
import { SeatInventory } from '../inventory/seat-inventory';
import { Broker } from '../messaging/broker';
import { OutboxRelay } from '../messaging/outbox';
import { buildTopology, type Topology } from '../messaging/topology';
import type { Logger } from '../observability/logger';
import { createMetrics, type Metrics } from '../observability/metrics';
import { DeadLetterLog, DeadLetters } from '../operator/dead-letters';
import { OrderExpiry } from '../orders/expiry';
import { OrderRelease, RELEASE_ROUTE } from '../orders/order-release';
import { ORDER_SAGA_STEPS, orderSaga } from '../orders/order-saga';
import { OrderStore } from '../orders/order-store';
import { PaymentNotifications } from '../payments/notifications';
import { PAY_SAGA_STEPS, paySaga } from '../payments/pay-saga';
import { Wallet } from '../payments/wallet';
import { SagaEngine } from '../sagas/engine';
import { SagaLog } from '../sagas/saga-log';
import { Failpoints } from '../support/failpoints';
import { IdGenerator, MAX_WORKER_ID } from '../support/ids';
import { retryWithBackoff } from '../support/retry';
import type { Clock } from '../support/time';
import { PayPasswordGuard } from '../users/pay-password';
import { loadAuthSecret, TokenSigner } from '../users/tokens';
import type { StopList } from './stop-list';

/**
 * The service's RabbitMQ topology for `config`, from the saga definitions' step specs (static
 * data: no part of the service needs to exist for it).
 */
export function topologyOf(config: Config): Topology {
  return buildTopology(
    {
      namespace: config.NAMESPACE,
      retryDelaysMs: config.RETRY_DELAYS_MS,
      paymentWindowMs: config.PAYMENT_WINDOW_MS,
      queueType: config.QUEUE_TYPE,
      maxDeliveries: config.MAX_DELIVERIES,
    },
    [...ORDER_SAGA_STEPS, ...PAY_SAGA_STEPS, RELEASE_ROUTE],
  );
}

/** What every role builds: connections, the tables' owners, the sagas and their engine. */
export interface Core {
  config: Config;
  role: Role;
  logger: Logger;
  clock: Clock;
  db: Db;
  redis: RedisClient;
  broker: Broker;
  topology: Topology;
  metrics: Metrics;
  failpoints: Failpoints;
  ids: IdGenerator;
  tokens: TokenSigner;
  authSecret: Buffer;
  holds: SeatHolds;
  inventory: SeatInventory;
  orderStore: OrderStore;
  wallet: Wallet;
  passwords: PayPasswordGuard;
  relay: OutboxRelay;
  sagaLog: SagaLog;
  engine: SagaEngine;
  release: OrderRelease;
  expiry: OrderExpiry;
  sagas: { order: ReturnType<typeof orderSaga>; pay: ReturnType<typeof paySaga> };
  reservations: ReservationLog;
  deadLetterLog: DeadLetterLog;
  deadLetters: DeadLetters;
  payments: PaymentNotifications;
  idempotency: IdempotencyStore;
  health: HealthCheck[];
}

/**
 * Connects to MySQL, Redis and RabbitMQ (waiting for each with backoff, creating the database
 * and running migrations on the way) and builds the parts every role shares. Each connection
 * registers its close on `stops` as soon as it is open.
 */
export async function buildCore(config: Config, role: Role, logger: Logger, clock: Clock, stops: StopList): Promise<Core> {
  logger.info('starting', { role, database: redactUrl(config.DATABASE_URL), namespace: config.NAMESPACE });
  await retryWithBackoff('mysql', () => ensureDatabase(config, logger), logger, { aborted: () => stops.stopping });
  await migrateLatest(config, logger);
  const db = createDb(config, logger);
  stops.push('mysql', () => db.destroy());
  const [registration] = await db('process_registrations').insert({ hostname: hostname().slice(0, 255), pid: process.pid, role });
  const ids = new IdGenerator(Number(registration) % (MAX_WORKER_ID + 1), clock);
  const authSecret = await loadAuthSecret(db, config.AUTH_SECRET);

  const connectionName = `${config.NAMESPACE} ${role} ${hostname()}:${process.pid}`;
  // Redis refuses client names with spaces (CLIENT SETNAME): the same name, dashed, in CLIENT LIST.
  const redis = createRedisClient(config, logger, connectionName.replace(/\s+/g, '-'));
  stops.push('redis', () => redis.disconnect());
  await connectRedis(redis);

  const failpoints = new Failpoints(config.ENABLE_FAILPOINTS);
  failpoints.configureFrom(config.FAILPOINTS);
  if (config.ENABLE_FAILPOINTS) logger.warn('failpoints are enabled: never in production', { failpoints: failpoints.list() });
  const metrics = createMetrics(db);

  const topology = topologyOf(config);
  const deadLetterLog = new DeadLetterLog(db, topology);
  metrics.readDeadLetterDepthFrom(() => deadLetterLog.depth());
  const broker = new Broker({
    url: config.AMQP_URL,
    connectionName,
    deadLetterExchange: topology.exchanges.deadLetter,
    exchanges: topology.declaredExchanges,
    queues: topology.declaredQueues,
    logger,
    onDeadLettered: async (message) => {
      metrics.deadLettered.inc({ queue: message.queue, reason: message.reason });
      await deadLetterLog.record(message);
    },
  });
  stops.push('rabbitmq', () => broker.close());
  await broker.start();
  const relay = new OutboxRelay(db, broker, logger, { pollMs: config.OUTBOX_POLL_MS, clock, onPublished: (n) => metrics.outboxPublished.inc(n) });
  relay.start();
  stops.push('outbox relay', () => relay.stop());

  const holds = new SeatHolds(db);
  // A rebuilt view takes async orders once the queue holds none older than the rebuild.
  const inventory = new SeatInventory({ redis, holds, namespace: config.NAMESPACE, logger, clock, settleMs: config.ORDER_MAX_QUEUE_DELAY_MS + 1_000 });
  const orderStore = new OrderStore(db, holds);
  const wallet = new Wallet(db);
  const passwords = new PayPasswordGuard(db, redis, config.NAMESPACE, {
    maxAttempts: config.PAY_PASSWORD_MAX_ATTEMPTS,
    windowMs: config.PAY_PASSWORD_WINDOW_MS,
    onCheck: (outcome) => metrics.payPasswordChecks.inc({ outcome }),
  });
  const sagaLog = new SagaLog({
    db,
    outbox: relay,
    routing: { exchange: topology.exchanges.compensation, listenersFor: (tag) => topology.listenersByTag.get(tag) ?? [] },
    onTransition: (transition) => {
      const tag = transition.tag ?? '';
      if (transition.errorCode) metrics.sagaFailures.inc({ type: transition.type, tag, error_code: transition.errorCode });
      if (transition.status !== 'COMPENSATING') metrics.sagaOutcomes.inc({ type: transition.type, status: transition.status, tag });
    },
  });
  const engine = new SagaEngine({
    db,
    log: sagaLog,
    ids,
    failpoints,
    logger,
    clock,
    onOutcome: (outcome) => metrics.sagaDuration.observe({ type: outcome.type, status: outcome.status }, outcome.durationMs / 1000),
  });
  stops.push('saga engine', () => engine.stop());
  const release = new OrderRelease({ orders: orderStore, sagaLog, ids });
  const expiry = new OrderExpiry({
    db,
    redis,
    orders: orderStore,
    release,
    outbox: relay,
    topology,
    clock,
    logger,
    namespace: config.NAMESPACE,
    triggers: config.EXPIRY_TRIGGERS,
    onExpired: (trigger, latenessMs) => {
      metrics.ordersExpired.inc({ trigger });
      metrics.expiryLateness.observe({ trigger }, latenessMs / 1000);
    },
  });
  const sagas = {
    order: orderSaga({ inventory, holds, orders: orderStore, expiry }),
    pay: paySaga({ orders: orderStore, wallet, passwords, clock }),
  };
  const reservations = new ReservationLog({
    db,
    redis,
    inventory,
    namespace: config.NAMESPACE,
    logger,
    onReleased: (reason, count) => metrics.reservationsReleased.inc({ reason }, count),
  });
  const deadLetters = new DeadLetters({
    db,
    broker,
    topology,
    log: deadLetterLog,
    logger,
    onResolved: (queue, n) => metrics.deadLettersResolved.inc({ queue }, n),
  });
  const payments = new PaymentNotifications({
    db,
    orders: orderStore,
    holds,
    wallet,
    logger,
    registry: metrics.registry,
    secret: config.PAYMENT_NOTIFY_SECRET,
    matchDeadlineMs: config.PAYMENT_MATCH_DEADLINE_MS,
    clock,
  });
  if (!payments.enabled) logger.warn('PAYMENT_NOTIFY_SECRET not set: the payment callback /api/payments/notify is off');
  const health: HealthCheck[] = [
    { name: 'mysql', check: async () => (await db.raw('SELECT 1'), true) },
    { name: 'redis', check: async () => (await redis.ping()) === 'PONG' },
    { name: 'rabbitmq', check: async () => broker.isConnected },
  ];

  return {
    config,
    role,
    logger,
    clock,
    db,
    redis,
    broker,
    topology,
    metrics,
    failpoints,
    ids,
    tokens: new TokenSigner(authSecret),
    authSecret,
    holds,
    inventory,
    orderStore,
    wallet,
    passwords,
    relay,
    sagaLog,
    engine,
    release,
    expiry,
    sagas,
    reservations,
    deadLetterLog,
    deadLetters,
    payments,
    idempotency: new IdempotencyStore(db, authSecret, clock),
    health,
  };
}
