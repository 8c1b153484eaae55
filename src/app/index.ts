import type { Config, Role } from '../config';
import type { Db } from '../db/database';
import type { RedisClient } from '../db/redis';
import type { SeatInventory } from '../inventory/seat-inventory';
import type { Broker } from '../messaging/broker';
import type { OutboxRelay } from '../messaging/outbox';
import type { Topology } from '../messaging/topology';
import { createLogger, type Logger } from '../observability/logger';
import type { Metrics } from '../observability/metrics';
import type { RecoverySweeper } from '../sagas/recovery-sweeper';
import type { SagaLog } from '../sagas/saga-log';
import type { Failpoints } from '../support/failpoints';
import { systemClock, type Clock } from '../support/time';
import { startApi, startOpsServer } from './api';
import { buildCore } from './core';
import { StopList } from './stop-list';
import { startWorker } from './worker';

export { topologyOf } from './core';

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
  /** The recovery sweeper (worker and all roles). */
  sweeper: RecoverySweeper | null;
  /** The HTTP server's URL (api and all roles). */
  url: string | null;
  stop(): Promise<void>;
}

export interface StartOptions {
  logger?: Logger;
  clock?: Clock;
}

/**
 * Starts seat-saga in one role: `api` (HTTP), `worker` (compensation listeners, consumers and
 * periodic jobs, with a small ops server) or `all`. Every role relays the outbox. Waits for MySQL,
 * Redis and RabbitMQ with backoff. What start-up opened is closed again, in reverse, by `stop()`,
 * or at once when start-up fails halfway.
 */
export async function startApp(config: Config, role: Role, options: StartOptions = {}): Promise<App> {
  const logger = options.logger ?? createLogger(config.LOG_LEVEL, { role });
  const stops = new StopList(logger);
  try {
    const core = await buildCore(config, role, logger, options.clock ?? systemClock, stops);
    const worker = role !== 'api' ? await startWorker(core, stops) : null;
    const url = role !== 'worker' ? await startApi(core, stops) : (await startOpsServer(core, stops), null);
    const { db, redis, broker, topology, metrics, failpoints, inventory, sagaLog, relay } = core;
    const stop = async () => {
      if (stops.stopping) return stops.unwind();
      logger.info('stopping: no new requests or messages; finishing those in flight', { role });
      await stops.unwind();
      logger.info('stopped', { role });
    };
    return { config, role, logger, db, redis, broker, topology, metrics, failpoints, inventory, sagaLog, relay, sweeper: worker?.sweeper ?? null, url, stop };
  } catch (err) {
    logger.error('start-up failed; closing what was opened', { role, error: (err as Error)?.message });
    await stops.unwind();
    throw err;
  }
}
