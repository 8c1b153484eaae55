import { randomBytes } from 'node:crypto';
import { z } from 'zod';

/**
 * The one configuration module. Every variable is optional; a bad value stops start-up with
 * one line naming the variable (see ConfigError), never a stack trace.
 */

const urlWithProtocols = (protocols: string[]) =>
  z.string().refine(
    (value) => {
      try {
        return protocols.includes(new URL(value).protocol);
      } catch {
        return false;
      }
    },
    `must be a URL starting with ${protocols.map((p) => `${p}//`).join(' or ')}`,
  );

/** One URL, or several comma-separated (the nodes of a cluster: connect to any, fail over to the next). */
const urlListWithProtocols = (protocols: string[]) =>
  z.string().refine(
    (value) =>
      value.split(',').every((part) => {
        try {
          return protocols.includes(new URL(part.trim()).protocol);
        } catch {
          return false;
        }
      }),
    `must be a URL starting with ${protocols.map((p) => `${p}//`).join(' or ')}, or several, comma-separated`,
  );

/** `host:port,host:port,…`: the startup nodes of a Redis Cluster (any of them; the client finds the rest). */
const hostPortList = z
  .string()
  .regex(/^\s*[^\s,]+:\d{1,5}(\s*,\s*[^\s,]+:\d{1,5})*\s*$/, 'must be host:port, or several, comma-separated')
  .transform((value) =>
    value.split(',').map((entry) => {
      const node = entry.trim();
      const at = node.lastIndexOf(':');
      return { host: node.slice(0, at).replace(/^\[|\]$/g, ''), port: Number(node.slice(at + 1)) };
    }),
  )
  .pipe(z.array(z.object({ host: z.string().min(1), port: z.number().int().min(1, 'ports are 1-65535').max(65535, 'ports are 1-65535') })));

const integer = (min: number, max = Number.MAX_SAFE_INTEGER) =>
  z.string().regex(/^\d+$/, 'must be a whole number').transform(Number).pipe(z.number().int().min(min).max(max));

const flag = z.enum(['0', '1', 'true', 'false', 'on', 'off']).transform((v) => ['1', 'true', 'on'].includes(v));

const failpointSpec = z
  .string()
  .regex(
    /^\s*([\w.-]+=(throw|off|delay|crash)(:\d+)?)(\s*,\s*[\w.-]+=(throw|off|delay|crash)(:\d+)?)*\s*$/,
    'must look like order.order_add.after=throw,pay.pay_money.before=delay:500',
  );

const schema = z.object({
  PORT: integer(0, 65535).default(3000),
  // A worker (role `worker`) serves /livez, /health and /metrics here; 0 = any free port (logged).
  WORKER_PORT: integer(0, 65535).default(0),
  DATABASE_URL: urlWithProtocols(['mysql:', 'mariadb:']).default('mysql://root@127.0.0.1:3306/seat_saga'),
  REDIS_URL: urlWithProtocols(['redis:', 'rediss:']).default('redis://127.0.0.1:6379/0'),
  // Redis Cluster: when set, REDIS_URL is not used (the cluster has no databases but 0).
  REDIS_CLUSTER_NODES: hostPortList.optional(),
  // Several nodes of one RabbitMQ cluster may be listed: a connection goes to one, and to the next
  // when it is lost or refused.
  AMQP_URL: urlListWithProtocols(['amqp:', 'amqps:']).default('amqp://guest:guest@127.0.0.1:5672'),
  NAMESPACE: z
    .string()
    .regex(/^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$/, 'must be 1-63 letters, digits, dots, dashes or underscores')
    .default('seat-saga'),
  ADMIN_TOKEN: z.string().min(16, 'must be at least 16 characters').optional(),
  ENABLE_FAILPOINTS: flag.default(false),
  FAILPOINTS: failpointSpec.optional(),
  LOG_LEVEL: z.enum(['error', 'warn', 'info', 'http', 'verbose', 'debug', 'silly']).default('info'),

  // Secret that signs bearer tokens. When unset, one is generated once and kept in the database,
  // so every process sharing the database verifies the same tokens.
  AUTH_SECRET: z.string().min(32, 'must be at least 32 characters').optional(),
  // How long an order may stay unpaid.
  PAYMENT_WINDOW_MS: integer(1000).default(15 * 60 * 1000),
  // A saga RUNNING longer than this is presumed orphaned (its process died) and compensated.
  SAGA_STALE_MS: integer(100).default(30_000),
  // A saga COMPENSATING longer than this gets its compensation message published again.
  COMPENSATION_STALE_MS: integer(100).default(60_000),
  SWEEP_INTERVAL_MS: integer(50).default(5_000),
  // Which triggers expire unpaid orders (all three by default; the database sweep is the backstop).
  EXPIRY_TRIGGERS: z
    .string()
    .regex(/^\s*(keyspace|delay-queue|sweep)(\s*,\s*(keyspace|delay-queue|sweep))*\s*$/, 'must be a comma-separated list of keyspace, delay-queue, sweep')
    .transform((value) => new Set(value.split(',').map((v) => v.trim()) as Array<'keyspace' | 'delay-queue' | 'sweep'>))
    .prefault('keyspace,delay-queue,sweep'),
  // Wrong pay passwords allowed per user within the window before 429 TOO_MANY_ATTEMPTS.
  PAY_PASSWORD_MAX_ATTEMPTS: integer(1, 1000).default(5),
  PAY_PASSWORD_WINDOW_MS: integer(1000).default(15 * 60 * 1000),
  // Shared secret of the payment provider's callback (HMAC-SHA256); unset = the callback is off.
  PAYMENT_NOTIFY_SECRET: z.string().min(32, 'must be at least 32 characters').optional(),
  // A provider payment whose order has not appeared after this long is flagged for refund.
  PAYMENT_MATCH_DEADLINE_MS: integer(1000).default(10 * 60 * 1000),
  // The async (flash-sale) path. An order message queued longer than this is dropped and its
  // seats released: by then its client has stopped polling.
  ORDER_MAX_QUEUE_DELAY_MS: integer(100).default(5_000),
  // A second async order by the same user for the same show within this window is
  // DUPLICATE_REQUEST (0 = off).
  REPEAT_SUBMIT_WINDOW_MS: integer(0).default(10_000),
  // How long each process trusts a show's sold-out flag before asking Redis again.
  SOLD_OUT_CACHE_MS: integer(0, 60_000).default(500),
  // A reservation still pending after this long is resolved by the reconciler.
  RESERVATION_RECONCILE_AFTER_MS: integer(1000).default(30_000),
  // Order messages a worker may hold unacknowledged, and how many it persists per transaction.
  ASYNC_ORDER_PREFETCH: integer(1, 10_000).default(2_000),
  ASYNC_ORDER_BATCH_SIZE: integer(1, 1_000).default(500),
  // Batches a worker persists at once (each in its own transaction).
  ASYNC_ORDER_BATCHES_IN_FLIGHT: integer(1, 32).default(3),
  // How long a worker waits for more messages before persisting a batch that is not full.
  ASYNC_ORDER_BATCH_LINGER_MS: integer(0, 1_000).default(5),
  // Order messages published and not yet confirmed, at most, per process; and how long a confirm
  // may take before the order is released and the client answered 503.
  ASYNC_PUBLISH_WINDOW: integer(1, 100_000).default(2_000),
  ASYNC_PUBLISH_TIMEOUT_MS: integer(100).default(3_000),
  // classic, or quorum for a RabbitMQ cluster (replicated queues). A queue's type is fixed when it
  // is declared: switching means deleting the namespace's queues once, while the service is stopped.
  QUEUE_TYPE: z.enum(['classic', 'quorum']).default('classic'),
  OUTBOX_POLL_MS: integer(10).default(500),
  // The waits before a failed message is delivered again, shortest first; the last one repeats
  // until the message had MAX_DELIVERIES deliveries, then it goes to its DLQ. The defaults keep a
  // message ~21 minutes (1 s, 10 s, 1 min, then 5 min four times): a database or broker restart
  // parks nothing. RETRY_DELAY_MS (one fixed wait), from earlier versions, is still read when
  // RETRY_DELAYS_MS is unset.
  RETRY_DELAYS_MS: z
    .string()
    .regex(/^\s*\d+(\s*,\s*\d+)*\s*$/, 'must be a comma-separated list of milliseconds, e.g. 1000,10000,60000,300000')
    .transform((value) => value.split(',').map((v) => Number(v.trim())))
    .pipe(
      z
        .array(
          z
            .number()
            .int()
            .min(10, 'each delay must be at least 10 ms')
            .max(24 * 3600 * 1000),
        )
        .max(10, 'at most 10 tiers'),
    )
    .optional(),
  RETRY_DELAY_MS: integer(10).optional(),
  MAX_DELIVERIES: integer(1, 100).default(8),
  // How often workers take out of the DLQs what was settled since (a compensation redone by the
  // sweeper, an order expired by the sweep, a reservation released by the reconciler).
  DEAD_LETTER_RESOLVE_MS: integer(100).default(30_000),
  LISTENER_PREFETCH: integer(1, 10_000).default(32),
  DB_POOL_MAX: integer(1, 500).default(20),
  // Ended sagas (COMPLETED, COMPENSATED) older than this many days are purged with their steps,
  // compensation records, sent outbox rows and resolved dead letters, in small batches (0 = keep forever).
  SAGA_RETENTION_DAYS: integer(0, 36_500).default(30),
  SHUTDOWN_TIMEOUT_MS: integer(100).default(20_000),
});

export type Role = 'all' | 'api' | 'worker';

const DEFAULT_RETRY_DELAYS_MS = [1_000, 10_000, 60_000, 300_000];

export type Config = Omit<z.output<typeof schema>, 'ADMIN_TOKEN' | 'RETRY_DELAYS_MS' | 'RETRY_DELAY_MS'> & {
  ADMIN_TOKEN: string;
  RETRY_DELAYS_MS: number[];
  /** True when ADMIN_TOKEN was generated at start (it is logged once). */
  adminTokenGenerated: boolean;
};

export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    reason: string,
    value: unknown,
  ) {
    super(`Invalid ${variable}=${JSON.stringify(value)}: ${reason}`);
    this.name = 'ConfigError';
  }
}

/** Parses the environment (or any record of strings). Throws ConfigError naming the first bad variable. */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const input: Record<string, string> = {};
  for (const key of Object.keys(schema.shape)) {
    const value = env[key];
    if (value !== undefined && value !== '') input[key] = value;
  }
  const parsed = schema.safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const variable = String(issue.path[0]);
    throw new ConfigError(variable, issue.message, input[variable]);
  }
  if (parsed.data.RESERVATION_RECONCILE_AFTER_MS <= parsed.data.ORDER_MAX_QUEUE_DELAY_MS) {
    // The reconciler would release reservations whose message is still on its way to be persisted.
    throw new ConfigError(
      'RESERVATION_RECONCILE_AFTER_MS',
      `must be greater than ORDER_MAX_QUEUE_DELAY_MS (${parsed.data.ORDER_MAX_QUEUE_DELAY_MS})`,
      input.RESERVATION_RECONCILE_AFTER_MS ?? String(parsed.data.RESERVATION_RECONCILE_AFTER_MS),
    );
  }
  const adminTokenGenerated = parsed.data.ADMIN_TOKEN === undefined;
  const { RETRY_DELAY_MS, ...rest } = parsed.data;
  return {
    ...rest,
    RETRY_DELAYS_MS: rest.RETRY_DELAYS_MS ?? (RETRY_DELAY_MS !== undefined ? [RETRY_DELAY_MS] : DEFAULT_RETRY_DELAYS_MS),
    ADMIN_TOKEN: parsed.data.ADMIN_TOKEN ?? randomBytes(24).toString('base64url'),
    adminTokenGenerated,
  };
}

/** The database name that DATABASE_URL points at. */
export function databaseName(config: Pick<Config, 'DATABASE_URL'>): string {
  const name = decodeURIComponent(new URL(config.DATABASE_URL).pathname.replace(/^\//, ''));
  if (!/^[a-zA-Z0-9_$-]{1,64}$/.test(name)) {
    throw new ConfigError('DATABASE_URL', 'must name a database of letters, digits, _ $ or -', config.DATABASE_URL);
  }
  return name;
}

/** Secrets never reach the logs. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return '<unparsable>';
  }
}
