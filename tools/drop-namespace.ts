import amqp, { type ChannelModel } from 'amqplib';
import knex from 'knex';
import winston from 'winston';
import { loadConfig } from '../src/config';
import { connectRedis, createRedisClient, deleteKeysWithPrefix } from '../src/db/redis';
import { splitAmqpUrls } from '../src/messaging/amqp/connection';

/**
 * Drops everything one seat-saga instance owns: its database, every exchange and queue under
 * `<namespace>.`, every Redis key under `<namespace>:`. Used by the test fixture and the benchmark
 * to clean up after themselves; from a shell:
 *
 *   npx tsx tools/drop-namespace.ts <namespace> <database>
 *
 * Queues and exchanges are found through the RabbitMQ management API when it answers, plus any
 * names given in `known` (so it also works without the management plugin).
 */
export interface Target {
  namespace: string;
  database: string;
  databaseUrl: string;
  redisUrl: string;
  /** A Redis Cluster's nodes (REDIS_CLUSTER_NODES' form): keys are deleted on each of its masters. */
  redisClusterNodes?: string;
  /** One URL, or several separated by commas (a cluster's nodes): the first that answers is used. */
  amqpUrl: string;
  known?: { queues: string[]; exchanges: string[] };
}

export async function dropNamespace(target: Target): Promise<void> {
  const url = new URL(target.databaseUrl);
  const admin = knex({
    client: 'mysql2',
    connection: {
      host: url.hostname,
      port: Number(url.port || 3306),
      user: decodeURIComponent(url.username || 'root'),
      password: decodeURIComponent(url.password),
    },
    pool: { min: 0, max: 1 },
  });
  await admin.raw('DROP DATABASE IF EXISTS ??', [target.database]).finally(() => admin.destroy());

  const names = { queues: [...(target.known?.queues ?? [])], exchanges: [...(target.known?.exchanges ?? [])] };
  for (const kind of ['queues', 'exchanges'] as const) {
    for (const name of await managementNames(kind, target.namespace)) if (!names[kind].includes(name)) names[kind].push(name);
  }
  const conn = await connectAny(splitAmqpUrls(target.amqpUrl));
  try {
    const ch = await conn.createChannel();
    for (const queue of names.queues) await ch.deleteQueue(queue);
    for (const exchange of names.exchanges) await ch.deleteExchange(exchange);
    await ch.close();
  } finally {
    await conn.close();
  }

  const config = loadConfig({ REDIS_URL: target.redisUrl, REDIS_CLUSTER_NODES: target.redisClusterNodes });
  const redis = createRedisClient(config, winston.createLogger({ silent: true }), 'seat-saga-drop-namespace');
  await Promise.race([connectRedis(redis), new Promise((_, reject) => setTimeout(() => reject(new Error('Redis did not answer within 10 s')), 10_000))]).catch(
    (err) => {
      redis.disconnect();
      throw err;
    },
  );
  await deleteKeysWithPrefix(redis, `${target.namespace}:`).finally(() => redis.disconnect());
}

/** The first of a cluster's nodes that accepts a connection (a node may be down during a drill). */
async function connectAny(urls: string[]): Promise<ChannelModel> {
  let lastError: unknown = new Error('no RabbitMQ URL');
  for (const url of urls) {
    try {
      return await amqp.connect(url);
    } catch (err) {
      lastError = err;
    }
  }
  throw lastError;
}

/** Names under `<namespace>.` that the RabbitMQ management API lists (none if it is not there). */
async function managementNames(kind: 'queues' | 'exchanges', namespace: string): Promise<string[]> {
  const base = process.env.RABBITMQ_MANAGEMENT_URL ?? 'http://127.0.0.1:15672';
  const res = await fetch(`${base}/api/${kind}/%2F?columns=name`, {
    headers: { Authorization: `Basic ${Buffer.from('guest:guest').toString('base64')}` },
  }).catch(() => null);
  if (!res?.ok) return [];
  return ((await res.json()) as Array<{ name: string }>).map((x) => x.name).filter((name) => name.startsWith(`${namespace}.`));
}

if (require.main === module) {
  const [namespace, database] = process.argv.slice(2);
  if (!namespace || !database) {
    process.stderr.write('usage: npx tsx tools/drop-namespace.ts <namespace> <database>\n');
    process.exit(2);
  }
  dropNamespace({
    namespace,
    database,
    databaseUrl: process.env.DATABASE_URL ?? 'mysql://root@127.0.0.1:3306/seat_saga',
    redisUrl: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379/0',
    redisClusterNodes: process.env.REDIS_CLUSTER_NODES,
    amqpUrl: process.env.AMQP_URL ?? 'amqp://guest:guest@127.0.0.1:5672',
  }).then(
    () => process.stdout.write(`dropped ${namespace} and database ${database}\n`),
    (err) => {
      process.stderr.write(`${err.message}\n`);
      process.exit(1);
    },
  );
}
