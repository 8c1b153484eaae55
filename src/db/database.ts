import { createHash } from 'node:crypto';
import knex, { type Knex } from 'knex';
import { databaseName, type Config } from '../config';
import type { Logger } from '../observability/logger';
import { sleep } from '../support/time';
import { migrationSource } from '../../migrations';

export type Db = Knex;
export type Tx = Knex.Transaction;

function connectionSettings(config: Config, withDatabase: boolean) {
  const url = new URL(config.DATABASE_URL);
  return {
    host: url.hostname,
    port: Number(url.port || 3306),
    user: decodeURIComponent(url.username || 'root'),
    password: decodeURIComponent(url.password),
    database: withDatabase ? databaseName(config) : undefined,
    // Ids are BIGINT and may exceed 2^53: they travel as strings end to end.
    supportBigNumbers: true,
    bigNumberStrings: true,
    timezone: 'Z',
    charset: 'utf8mb4',
  };
}

/**
 * Sessions run READ COMMITTED in UTC. Every state change is a conditional single UPDATE or a
 * locking read, so nothing relies on REPEATABLE READ snapshots (which allow lost updates), and
 * READ COMMITTED avoids the gap locks that make concurrent inserts deadlock.
 */
/** knex logs to the console with stack traces unless told otherwise: one JSON line instead. */
function knexLog(logger?: Logger): Knex.Config['log'] {
  const toLog = (level: 'warn' | 'debug') => (message: unknown) => logger?.log(level, `knex: ${String(message).split('\n')[0]}`, { dependency: 'mysql' });
  // Its warnings are failed pool acquisitions, which callers report themselves.
  return { warn: toLog('debug'), error: toLog('warn'), deprecate: toLog('warn'), debug: toLog('debug') };
}

export function knexConfig(config: Config, poolMax = config.DB_POOL_MAX, logger?: Logger): Knex.Config {
  return {
    log: knexLog(logger),
    client: 'mysql2',
    connection: connectionSettings(config, true),
    pool: {
      min: 0,
      max: poolMax,
      afterCreate(conn: any, done: (err: Error | null, conn: unknown) => void) {
        // Two statements: the isolation level cannot share a SET, and its variable is named
        // differently in MariaDB 10 (tx_isolation) and MySQL 8 (transaction_isolation).
        conn.query('SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED', (err: Error | null) => {
          if (err) return done(err, conn);
          conn.query("SET time_zone = '+00:00', innodb_lock_wait_timeout = 10", (err2: Error | null) => done(err2, conn));
        });
      },
    },
    acquireConnectionTimeout: 5_000,
    migrations: { migrationSource, tableName: 'knex_migrations' },
  };
}

export function createDb(config: Config, logger: Logger, poolMax = config.DB_POOL_MAX): Db {
  return knex(knexConfig(config, poolMax, logger));
}

/** CREATE DATABASE IF NOT EXISTS for the database DATABASE_URL names. */
export async function ensureDatabase(config: Config, logger: Logger): Promise<void> {
  const admin = knex({ client: 'mysql2', connection: connectionSettings(config, false), pool: { min: 0, max: 1 }, log: knexLog(logger) });
  try {
    await admin.raw('CREATE DATABASE IF NOT EXISTS ?? CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci', [databaseName(config)]);
  } finally {
    await admin.destroy();
  }
}

/**
 * Runs the migrations under a MySQL named lock, so processes starting together take turns (knex's
 * own lock makes the losers fail, and two processes can collide creating knex's tables). The
 * server releases a named lock when its holder's connection dies, so whoever holds it knows no one
 * else is migrating and may clear a knex lock left behind by a process that died mid-migration.
 */
export async function migrateLatest(config: Config, logger: Logger): Promise<void> {
  const db = knex({ ...knexConfig(config, 1, logger), pool: { min: 1, max: 1 } });
  const lock = `seat-saga-migrate-${createHash('sha1').update(databaseName(config)).digest('hex').slice(0, 24)}`;
  try {
    for (;;) {
      const [[{ got }]] = await db.raw('SELECT GET_LOCK(?, 10) AS got', [lock]);
      if (got === 1) break;
      logger.warn('another process is migrating the database, waiting', { dependency: 'mysql' });
    }
    try {
      await db.migrate.forceFreeMigrationsLock();
      const [, applied] = await db.migrate.latest();
      if (applied.length > 0) logger.info('migrations applied', { migrations: applied });
    } finally {
      await db.raw('SELECT RELEASE_LOCK(?)', [lock]);
    }
  } finally {
    await db.destroy();
  }
}

const RETRIABLE_TX_ERRORS = new Set(['ER_LOCK_DEADLOCK', 'ER_LOCK_WAIT_TIMEOUT']);

export function isRetriableTransactionError(err: unknown): boolean {
  return RETRIABLE_TX_ERRORS.has((err as { code?: string })?.code ?? '');
}

export function isDuplicateKey(err: unknown): boolean {
  return (err as { code?: string })?.code === 'ER_DUP_ENTRY';
}

/**
 * Runs `work` in a transaction and retries it whole when the database picked it as a deadlock
 * victim or a lock wait timed out. `work` must therefore be safe to run again from the start.
 */
export async function inTransaction<T>(db: Db, work: (trx: Tx) => Promise<T>, maxAttempts = 5): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await db.transaction(work);
    } catch (err) {
      if (!isRetriableTransactionError(err) || attempt >= maxAttempts) throw err;
      await sleep(Math.random() * 20 * attempt);
    }
  }
}

/** mysql2 returns BIGINT/COUNT as strings; money fits in a double, so it is converted here once. */
export const toNumber = (value: string | number | null | undefined): number => Number(value ?? 0);
