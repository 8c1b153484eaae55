import { once } from 'node:events';
import { createServer, type RequestListener, type Server } from 'node:http';
import { hostname } from 'node:os';
import type { AddressInfo } from 'node:net';
import { createApiListener, createOpsApp, type HealthCheck } from './api/http-app';
import { IdempotencyStore } from './api/idempotency';
import { balanceRestoreListener } from './compensation/balance-restore';
import { compensationHandler, type CompensationListener } from './compensation/listener-runtime';
import { orderDeleteListener } from './compensation/order-delete';
import { seatReleaseListener } from './compensation/seat-release';
import type { Config, Role } from './config';
import { redactUrl } from './config';
import { createDb, ensureDatabase, migrateLatest, type Db } from './db/database';
import { connectRedis, createRedis, type RedisClient } from './db/redis';
import { SeatInventory } from './inventory/seat-inventory';
import { Broker } from './messaging/broker';
import { OutboxRelay } from './messaging/outbox';
import { buildTopology, type CompensationRoute, type Topology } from './messaging/topology';
import { createLogger, type Logger } from './observability/logger';
import { createMetrics, type Metrics } from './observability/metrics';
import { OrderExpiry } from './orders/expiry';
import { RELEASE_ROUTE } from './orders/order-release';
import { AsyncOrderIntake, AsyncOrderWaiters } from './orders/async-orders';
import { AsyncOrderWriter } from './orders/async-order-writer';
import { Orders } from './orders/orders';
import { ReservationReconciler } from './orders/reservation-reconciler';
import { ReservationLog } from './orders/reservations';
import { PaymentNotifications } from './payments/notifications';
import { answerClientError } from './api/client-error';
import { DeadLetterLog, DeadLetters } from './operator/dead-letters';
import { SagaQueries } from './operator/saga-queries';
import { SagaEngine } from './sagas/engine';
import { orderSaga } from './sagas/order-saga';
import { paySaga } from './sagas/pay-saga';
import { RecoverySweeper } from './sagas/recovery-sweeper';
import { SagaLog } from './sagas/saga-log';
import { currentShowIds, Shows } from './shows/shows';
import { Failpoints } from './support/failpoints';
import { IdGenerator, MAX_WORKER_ID } from './support/ids';
import { Periodic } from './support/periodic';
import { retryWithBackoff } from './support/retry';
import { systemClock, type Clock } from './support/time';
import { loadAuthSecret, TokenSigner } from './users/tokens';
import { PayPasswordGuard } from './users/pay-password';
import { Users } from './users/users';

/** A running seat-saga process: every part it built, and the way to stop it. */
export interface App {
  config: Config;
  role: Role;
  logger: Logger;
  db: Db;
  redis: RedisClient;
  broker: Broker;
  topology: Topology;
  metrics: Metrics;
  failpoints: Failpoints;
  inventory: SeatInventory;
  sagaLog: SagaLog;
  relay: OutboxRelay;
  sweeper: RecoverySweeper;
  /** The HTTP server's URL (api and all roles). */
  url: string | null;
  stop(): Promise<void>;
}

export interface StartOptions {
  logger?: Logger;
  clock?: Clock;
}

/**
 * The service's RabbitMQ topology for `config`. Without `routes`, they come from the saga
 * definitions' tags and listeners alone (their actions are never called), for tools and
 * benchmarks that need the names without running anything.
 */
export function topologyOf(config: Config, routes?: readonly CompensationRoute[]): Topology {
  const allRoutes = routes ?? [...orderSaga({} as Parameters<typeof orderSaga>[0]).steps, ...paySaga({} as Parameters<typeof paySaga>[0]).steps, RELEASE_ROUTE];
  return buildTopology(
    { namespace: config.NAMESPACE, retryDelaysMs: config.RETRY_DELAYS_MS, paymentWindowMs: config.PAYMENT_WINDOW_MS, queueType: config.QUEUE_TYPE },
    allRoutes,
  );
}

/**
 * Starts seat-saga in one role: `api` (HTTP), `worker` (compensation listeners and the recovery
 * sweeper) or `all`. Every role relays the outbox. Waits for MySQL, Redis and RabbitMQ with
 * backoff, creating the database and running migrations on the way.
 */
export async function startApp(config: Config, role: Role, options: StartOptions = {}): Promise<App> {
  const logger = options.logger ?? createLogger(config.LOG_LEVEL, { role });
  const clock = options.clock ?? systemClock;
  let stopping = false;
  const aborted = () => stopping;

  logger.info('starting', { role, database: redactUrl(config.DATABASE_URL), namespace: config.NAMESPACE });
  await retryWithBackoff('mysql', () => ensureDatabase(config, logger), logger, { aborted });
  await migrateLatest(config, logger);
  const db = createDb(config, logger);
  const [registration] = await db('process_registrations').insert({ hostname: hostname().slice(0, 255), pid: process.pid, role });
  const ids = new IdGenerator(Number(registration) % (MAX_WORKER_ID + 1), clock);
  const authSecret = await loadAuthSecret(db, config.AUTH_SECRET);
  const tokens = new TokenSigner(authSecret);

  const connectionName = `${config.NAMESPACE} ${role} ${hostname()}:${process.pid}`;
  const redis = createRedis(config.REDIS_URL, logger, connectionName);
  await connectRedis(redis);

  const failpoints = new Failpoints(config.ENABLE_FAILPOINTS);
  failpoints.configureFrom(config.FAILPOINTS);
  if (config.ENABLE_FAILPOINTS) logger.warn('failpoints are enabled: never in production', { failpoints: failpoints.list() });

  const metrics = createMetrics(db);
  // A rebuilt view takes async orders once the queue holds none older than the rebuild.
  const inventory = new SeatInventory(redis, db, config.NAMESPACE, logger, config.ORDER_MAX_QUEUE_DELAY_MS + 1_000);
  const passwords = new PayPasswordGuard(db, redis, config.NAMESPACE, {
    maxAttempts: config.PAY_PASSWORD_MAX_ATTEMPTS,
    windowMs: config.PAY_PASSWORD_WINDOW_MS,
    onCheck: (outcome) => metrics.payPasswordChecks.inc({ outcome }),
  });
  const sagas = {
    // `expiry` is built below, once the topology it publishes to exists; the saga calls it only when it runs.
    order: orderSaga({ db, inventory, scheduleExpiry: (trx, order) => expiry.scheduleInTransaction(trx, [order]) }),
    pay: paySaga({ db, passwords, clock }),
  };
  const topology = topologyOf(config, [...sagas.order.steps, ...sagas.pay.steps, RELEASE_ROUTE]);
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
  await broker.start();

  const sagaLog = new SagaLog(
    db,
    { exchange: topology.exchanges.compensation, listenersFor: (tag) => topology.listenersByTag.get(tag) ?? [] },
    (transition) => {
      const tag = transition.tag ?? '';
      if (transition.errorCode) metrics.sagaFailures.inc({ type: transition.type, tag, error_code: transition.errorCode });
      if (transition.status !== 'COMPENSATING') metrics.sagaOutcomes.inc({ type: transition.type, status: transition.status, tag });
    },
  );
  const relay = new OutboxRelay(db, broker, logger, {
    pollMs: config.OUTBOX_POLL_MS,
    onPublished: (n) => metrics.outboxPublished.inc(n),
  });
  const engine = new SagaEngine(db, sagaLog, ids, failpoints, logger, () => relay.kick(), (outcome) => {
    metrics.sagaDuration.observe({ type: outcome.type, status: outcome.status }, outcome.durationMs / 1000);
  });
  const sweeper = new RecoverySweeper(
    sagaLog,
    logger,
    { staleMs: config.SAGA_STALE_MS, compensationStaleMs: config.COMPENSATION_STALE_MS },
    () => relay.kick(),
  );
  const expiry = new OrderExpiry({
    db,
    redis,
    sagaLog,
    ids,
    topology,
    clock,
    logger,
    namespace: config.NAMESPACE,
    triggers: config.EXPIRY_TRIGGERS,
    onReleaseQueued: () => relay.kick(),
    onExpired: (trigger, latenessMs) => {
      metrics.ordersExpired.inc({ trigger });
      metrics.expiryLateness.observe({ trigger }, latenessMs / 1000);
    },
  });
  const idempotency = new IdempotencyStore(db, authSecret);
  const sweeping = new Periodic(
    'recovery sweeper',
    config.SWEEP_INTERVAL_MS,
    async () => {
      await sweeper.sweepOnce();
      await expiry.sweepOnce();
      await idempotency.purgeExpired();
    },
    logger,
  );

  const payments = new PaymentNotifications({
    db,
    logger,
    registry: metrics.registry,
    secret: config.PAYMENT_NOTIFY_SECRET,
    matchDeadlineMs: config.PAYMENT_MATCH_DEADLINE_MS,
    clock,
  });
  const reconciling = new Periodic('payment reconciliation', config.SWEEP_INTERVAL_MS, async () => void (await payments.reconcileOnce()), logger);

  const reservations = new ReservationLog({
    db,
    redis,
    inventory,
    namespace: config.NAMESPACE,
    logger,
    onReleased: (reason, count) => metrics.reservationsReleased.inc({ reason }, count),
  });
  const reservationReconciler = new ReservationReconciler({
    db,
    inventory,
    reservations,
    clock,
    logger,
    afterMs: config.RESERVATION_RECONCILE_AFTER_MS,
    onPendingCounted: (pending) => metrics.reservationsPending.set(pending),
  });
  const reconcilingReservations = new Periodic(
    'reservation reconciler',
    Math.min(config.SWEEP_INTERVAL_MS, config.RESERVATION_RECONCILE_AFTER_MS),
    async () => void (await reservationReconciler.reconcileOnce()),
    logger,
  );
  const deadLetters = new DeadLetters({ db, broker, topology, log: deadLetterLog, logger, onResolved: (queue, n) => metrics.deadLettersResolved.inc({ queue }, n) });
  const resolvingDeadLetters = new Periodic(
    'dead-letter resolver',
    config.DEAD_LETTER_RESOLVE_MS,
    async () => {
      if (broker.isConnected) await deadLetters.resolveOnce();
    },
    logger,
  );
  const waiters = new AsyncOrderWaiters(redis, reservations.channel, logger);
  if (!payments.enabled) logger.warn('PAYMENT_NOTIFY_SECRET not set: the payment callback /api/payments/notify is off');

  relay.start();

  if (role !== 'api') {
    const listeners: CompensationListener[] = [seatReleaseListener(inventory), orderDeleteListener(), balanceRestoreListener()];
    for (const listener of listeners) {
      const queue = topology.listenerQueues[listener.name];
      if (!queue) throw new Error(`no saga step routes to listener ${listener.name}`);
      await broker.consume({
        name: listener.name,
        queue,
        prefetch: config.LISTENER_PREFETCH,
        maxDeliveries: config.MAX_DELIVERIES,
        handler: compensationHandler(listener, {
          db,
          redis,
          sagaLog,
          failpoints,
          logger,
          namespace: config.NAMESPACE,
          onOutcome: (name, outcome) => metrics.compensations.inc({ listener: name, outcome }),
          onSagaCompensated: (type, tag) => metrics.sagaOutcomes.inc({ type, status: 'COMPENSATED', tag }),
        }),
      });
    }
    if (config.EXPIRY_TRIGGERS.has('delay-queue')) {
      await broker.consume({
        name: 'expiry',
        queue: topology.expiry.dueQueue,
        prefetch: config.LISTENER_PREFETCH,
        maxDeliveries: config.MAX_DELIVERIES,
        handler: (delivery) => expiry.handleDue(delivery.body),
      });
    }
    const writer = new AsyncOrderWriter({
      db,
      inventory,
      reservations,
      expiry,
      ids,
      failpoints,
      metrics,
      logger,
      clock,
      orderSteps: sagas.order.steps,
      paymentWindowMs: config.PAYMENT_WINDOW_MS,
      maxQueueDelayMs: config.ORDER_MAX_QUEUE_DELAY_MS,
      onOutboxWritten: () => relay.kick(),
    });
    // Seat views first: a worker persists orders into the view it confirms them in.
    await loadSeatViews(db, inventory, logger);
    await broker.consume({
      name: 'order-writer',
      queue: topology.asyncOrders.queue,
      prefetch: config.ASYNC_ORDER_PREFETCH,
      maxDeliveries: config.MAX_DELIVERIES,
      maxBatch: config.ASYNC_ORDER_BATCH_SIZE,
      lingerMs: config.ASYNC_ORDER_BATCH_LINGER_MS,
      batchesInFlight: config.ASYNC_ORDER_BATCHES_IN_FLIGHT,
      batchHandler: writer.handleBatch,
    });
    await expiry.startKeyspaceSubscriber();
    sweeping.start();
    reconciling.start();
    resolvingDeadLetters.start();
    reconcilingReservations.start();
  }

  let server: Server | null = null;
  let inFlightRequests = 0;
  let url: string | null = null;
  const health: HealthCheck[] = [
    { name: 'mysql', check: async () => (await db.raw('SELECT 1'), true) },
    { name: 'redis', check: async () => (await redis.ping()) === 'PONG' },
    { name: 'rabbitmq', check: async () => broker.isConnected },
  ];
  const listen = async (listener: RequestListener, port: number): Promise<string> => {
    server = createServer(listener).listen(port);
    // A request Node's own parser refuses (oversized headers, not HTTP) gets the error shape too.
    server.on('clientError', answerClientError);
    server.on('request', (_req, res) => {
      inFlightRequests++;
      res.on('close', () => inFlightRequests--);
    });
    await once(server, 'listening');
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  };
  if (role !== 'worker') {
    const users = new Users(db, tokens);
    const shows = new Shows(db, inventory);
    const orders = new Orders({
      db,
      shows,
      engine,
      orderSaga: sagas.order,
      paySaga: sagas.pay,
      sagaLog,
      expiry,
      passwords,
      onReleaseQueued: () => relay.kick(),
      ids,
      clock,
      paymentWindowMs: config.PAYMENT_WINDOW_MS,
    });
    await waiters.start();
    const asyncOrders = new AsyncOrderIntake({
      shows,
      inventory,
      broker,
      topology,
      reservations,
      waiters,
      findOrder: (userId, orderId) => orders.find(userId, orderId),
      ids,
      clock,
      failpoints,
      metrics,
      logger,
      options: {
        repeatWindowMs: config.REPEAT_SUBMIT_WINDOW_MS,
        soldOutCacheMs: config.SOLD_OUT_CACHE_MS,
        publishWindow: config.ASYNC_PUBLISH_WINDOW,
        publishTimeoutMs: config.ASYNC_PUBLISH_TIMEOUT_MS,
      },
    });
    const http = createApiListener({
      logger,
      metrics,
      tokens,
      adminToken: config.ADMIN_TOKEN,
      users,
      shows,
      orders,
      asyncOrders,
      payments,
      idempotency,
      sagaLog,
      failpoints,
      health,
      operator: {
        db,
        sagaLog,
        sagaQueries: new SagaQueries(db, {
          listenersFor: (tag) => topology.listenersByTag.get(tag) ?? [],
          deadLetters: deadLetterLog,
          staleMs: { running: config.SAGA_STALE_MS, compensating: config.COMPENSATION_STALE_MS },
        }),
        deadLetterLog,
        deadLetters,
        kickRelay: () => relay.kick(),
      },
    });
    url = await listen(http, config.PORT);
    if (config.adminTokenGenerated) logger.warn('ADMIN_TOKEN not set: generated one for this run', { adminToken: config.ADMIN_TOKEN });
    logger.info(`seat-saga listening on ${url}`, { role, url, namespace: config.NAMESPACE });
  } else {
    const opsUrl = await listen(createOpsApp({ health, metrics, logger }), config.WORKER_PORT);
    logger.info('seat-saga worker running', { role, metrics: `${opsUrl}/metrics`, namespace: config.NAMESPACE });
  }

  async function stop(): Promise<void> {
    if (stopping) return;
    stopping = true;
    logger.info('stopping: no new requests or messages; finishing those in flight', { role });
    // Requests waiting for their async order answer now (202, or 201 if it is in the database).
    await waiters.stop();
    if (server) {
      const closed = new Promise<void>((resolve) => server!.close(() => resolve()));
      server.closeIdleConnections();
      while (inFlightRequests > 0) await new Promise((resolve) => setTimeout(resolve, 20));
      server.closeAllConnections();
      await closed;
    }
    await broker.stopConsuming();
    engine.stop();
    await sweeping.stop();
    await resolvingDeadLetters.stop();
    await reconciling.stop();
    await reconcilingReservations.stop();
    await expiry.stop();
    await relay.stop();
    await broker.close();
    redis.disconnect();
    await db.destroy();
    logger.info('stopped', { role });
  }

  return { config, role, logger, db, redis, broker, topology, metrics, failpoints, inventory, sagaLog, relay, sweeper, url, stop };
}

/** Rebuilds the Redis view of every current show that lacks one (Redis lost its data). */
async function loadSeatViews(db: Db, inventory: SeatInventory, logger: Logger): Promise<void> {
  const shows = await currentShowIds(db);
  for (const showId of shows) await inventory.ensureLoaded(showId);
  logger.info('seat views checked', { shows: shows.length });
}
