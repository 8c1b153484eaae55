import type { Db } from '../db/database';
import type { Clock } from '../support/time';
import type { AsyncOrderIntake } from '../flash-sale/intake';
import type { Logger } from '../observability/logger';
import type { Metrics } from '../observability/metrics';
import type { DeadLetterLog, DeadLetters } from '../operator/dead-letters';
import type { SagaQueries } from '../operator/saga-queries';
import type { Orders } from '../orders/orders';
import type { PaymentNotifications } from '../payments/notifications';
import type { SagaLog } from '../sagas/saga-log';
import type { Shows } from '../shows/shows';
import type { Failpoints } from '../support/failpoints';
import type { TokenSigner } from '../users/tokens';
import type { Users } from '../users/users';
import type { IdempotencyStore } from './idempotency';

/**
 * What the HTTP layer is handed: the app (./http-app) and its routes (./routes/*) both read these
 * types from here, so that neither imports the other's module for them.
 */

export interface HealthCheck {
  name: 'mysql' | 'redis' | 'rabbitmq';
  check(): Promise<boolean>;
}

export interface OperatorDeps {
  db: Db;
  sagaLog: SagaLog;
  sagaQueries: SagaQueries;
  deadLetterLog: DeadLetterLog;
  deadLetters: DeadLetters;
  clock: Clock;
}

export interface ApiDeps {
  logger: Logger;
  metrics: Metrics;
  tokens: TokenSigner;
  adminToken: string;
  users: Users;
  shows: Shows;
  orders: Orders;
  asyncOrders: AsyncOrderIntake;
  payments: PaymentNotifications;
  idempotency: IdempotencyStore;
  sagaLog: SagaLog;
  failpoints: Failpoints;
  health: HealthCheck[];
  operator: OperatorDeps;
}
