import { compensationHandler, type CompensationListener } from '../compensation/listener-runtime';
import { orderDeleteListener } from '../compensation/order-delete';
import { seatReleaseListener } from '../compensation/seat-release';
import { ReservationReconciler } from '../flash-sale/reconciler';
import { AsyncOrderWriter } from '../flash-sale/writer';
import { balanceRestoreListener } from '../payments/balance-restore';
import { SagaRetention } from '../retention/saga-retention';
import { RecoverySweeper } from '../sagas/recovery-sweeper';
import { currentShowIds } from '../shows/shows';
import { Periodic } from '../support/periodic';
import type { Core } from './core';
import type { StopList } from './stop-list';

/**
 * The worker's parts (roles `worker` and `all`): the compensating listeners, the expiry
 * consumer, the flash-sale order writer, and the periodic jobs (recovery sweeper and expiry
 * sweep, payment and reservation reconciliation, dead-letter resolver).
 */
export async function startWorker(core: Core, stops: StopList): Promise<{ sweeper: RecoverySweeper }> {
  const { config, db, redis, broker, topology, metrics, failpoints, logger, clock, sagaLog, inventory, holds, orderStore, wallet, expiry } = core;
  // Consumers stop taking messages before anything they use is closed.
  stops.push('consumers', () => broker.stopConsuming());

  const listeners: CompensationListener[] = [
    seatReleaseListener({ holds, inventory }),
    orderDeleteListener(orderStore),
    balanceRestoreListener({ orders: orderStore, wallet }),
  ];
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
        clock,
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
    holds,
    orders: orderStore,
    sagaLog,
    reservations: core.reservations,
    expiry,
    ids: core.ids,
    failpoints,
    metrics,
    logger,
    clock,
    paymentWindowMs: config.PAYMENT_WINDOW_MS,
    maxQueueDelayMs: config.ORDER_MAX_QUEUE_DELAY_MS,
  });
  // Seat views first: a worker persists orders into the view it confirms them in.
  const shows = await currentShowIds(db);
  for (const showId of shows) await inventory.ensureLoaded(showId);
  logger.info('seat views checked', { shows: shows.length });
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

  stops.push('expiry subscriber', () => expiry.stop());
  await expiry.startKeyspaceSubscriber();

  const sweeper = new RecoverySweeper({ log: sagaLog, logger, staleMs: config.SAGA_STALE_MS, compensationStaleMs: config.COMPENSATION_STALE_MS });
  const reconciler = new ReservationReconciler({
    db,
    inventory,
    reservations: core.reservations,
    clock,
    logger,
    afterMs: config.RESERVATION_RECONCILE_AFTER_MS,
    onPendingCounted: (pending) => metrics.reservationsPending.set(pending),
  });
  const jobs = [
    new Periodic(
      'recovery sweeper',
      config.SWEEP_INTERVAL_MS,
      async () => {
        await sweeper.sweepOnce();
        await expiry.sweepOnce();
        await core.idempotency.purgeExpired();
      },
      logger,
    ),
    new Periodic('payment reconciliation', config.SWEEP_INTERVAL_MS, async () => void (await core.payments.reconcileOnce()), logger),
    new Periodic(
      'dead-letter resolver',
      config.DEAD_LETTER_RESOLVE_MS,
      async () => {
        if (broker.isConnected) await core.deadLetters.resolveOnce();
      },
      logger,
    ),
    new Periodic(
      'reservation reconciler',
      Math.min(config.SWEEP_INTERVAL_MS, config.RESERVATION_RECONCILE_AFTER_MS),
      async () => void (await reconciler.reconcileOnce()),
      logger,
    ),
  ];
  for (const job of jobs) {
    job.start();
    stops.push('periodic job', () => job.stop());
  }
  // The saga log's retention (SAGA_RETENTION_DAYS): ended sagas past the window, in small batches.
  const retention = new SagaRetention(db, logger, {
    retentionDays: config.SAGA_RETENTION_DAYS,
    clock,
    onPurged: (table, rows) => metrics.retentionPurged.inc({ table }, rows),
  });
  retention.start();
  stops.push('saga retention', () => retention.stop());
  return { sweeper };
}
