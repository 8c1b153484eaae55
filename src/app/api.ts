import { createApiListener, createOpsApp } from '../api/http-app';
import { AsyncOrderIntake } from '../flash-sale/intake';
import { AsyncOrderWaiters } from '../flash-sale/waiters';
import { SagaQueries } from '../operator/saga-queries';
import { Orders } from '../orders/orders';
import { Refunds } from '../payments/refunds';
import { Shows } from '../shows/shows';
import { Users } from '../users/users';
import type { Core } from './core';
import { listen } from './http-server';
import type { StopList } from './stop-list';

/** The API's parts (roles `api` and `all`): the buyers' and operators' HTTP API. Returns its URL. */
export async function startApi(core: Core, stops: StopList): Promise<string> {
  const { config, db, logger, metrics, clock, ids, topology, sagaLog, inventory, orderStore, wallet } = core;
  const shows = new Shows(db, inventory);
  const orders = new Orders({
    db,
    store: orderStore,
    shows,
    engine: core.engine,
    orderSaga: core.sagas.order,
    paySaga: core.sagas.pay,
    expiry: core.expiry,
    release: core.release,
    refunds: new Refunds({ db, orders: orderStore, holds: core.holds, wallet, release: core.release }),
    wallet,
    reservations: core.reservations,
    passwords: core.passwords,
    ids,
    clock,
    paymentWindowMs: config.PAYMENT_WINDOW_MS,
  });
  const waiters = new AsyncOrderWaiters(core.redis, core.reservations.channel, logger);
  stops.push('async order waiters', () => waiters.stop());
  await waiters.start();
  const asyncOrders = new AsyncOrderIntake({
    shows,
    inventory,
    broker: core.broker,
    topology,
    reservations: core.reservations,
    waiters,
    findOrder: (userId, orderId) => orders.find(userId, orderId),
    ids,
    clock,
    failpoints: core.failpoints,
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
    tokens: core.tokens,
    adminToken: config.ADMIN_TOKEN,
    users: new Users(db, core.tokens, wallet),
    shows,
    orders,
    asyncOrders,
    payments: core.payments,
    idempotency: core.idempotency,
    sagaLog,
    failpoints: core.failpoints,
    health: core.health,
    operator: {
      db,
      sagaLog,
      sagaQueries: new SagaQueries(db, {
        listenersFor: (tag) => topology.listenersByTag.get(tag) ?? [],
        deadLetters: core.deadLetterLog,
        staleMs: { running: config.SAGA_STALE_MS, compensating: config.COMPENSATION_STALE_MS },
        clock,
      }),
      deadLetterLog: core.deadLetterLog,
      deadLetters: core.deadLetters,
      clock,
    },
  });
  // On stop, requests waiting for their async order are answered first (202, or 201 if it is in
  // the database), so the server's drain of the requests in flight is short.
  const url = await listen(http, config.PORT, stops, { beforeDrain: () => waiters.stop() });
  if (config.adminTokenGenerated) logger.warn('ADMIN_TOKEN not set: generated one for this run', { adminToken: config.ADMIN_TOKEN });
  logger.info(`seat-saga listening on ${url}`, { role: core.role, url, namespace: config.NAMESPACE });
  return url;
}

/** A worker's own small HTTP server: health and /metrics only. */
export async function startOpsServer(core: Core, stops: StopList): Promise<string> {
  const url = await listen(createOpsApp({ health: core.health, metrics: core.metrics, logger: core.logger }), core.config.WORKER_PORT, stops);
  core.logger.info('seat-saga worker running', { role: core.role, metrics: `${url}/metrics`, namespace: core.config.NAMESPACE });
  return url;
}
