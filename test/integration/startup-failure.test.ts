import { expect } from 'chai';
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import Redis from 'ioredis';
import knex from 'knex';
import { loadConfig } from '../../src/config';
import { startApp } from '../../src/app';
import { BASE_ENV, cleanup, isolate, LogCapture, testEnv } from '../support/fixture';
import { waitFor } from '../support/http';
import { management } from '../support/management';
import winston from 'winston';

/** Connections of this namespace still open, per engine, as each engine itself lists them. */
async function openConnections(namespace: string, database: string): Promise<{ rabbitmq: number; redis: number; mysql: number }> {
  const connections: Array<{ client_properties?: { connection_name?: string } }> = await management('/connections');
  const rabbitmq = connections.filter((c) => c.client_properties?.connection_name?.startsWith(`${namespace} `)).length;
  const redisClient = new Redis(BASE_ENV.REDIS_URL);
  const clients = (await redisClient.client('LIST')) as string;
  redisClient.disconnect();
  const redis = clients.split('\n').filter((line) => line.includes(`name=${namespace}-`)).length;
  const server = new URL(BASE_ENV.DATABASE_URL);
  server.pathname = '/';
  const db = knex({ client: 'mysql2', connection: server.toString(), pool: { min: 0, max: 1 } });
  const [rows] = await db.raw('SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE DB = ?', [database]);
  await db.destroy();
  return { rabbitmq, redis, mysql: Number(rows[0].n) };
}

describe('A start-up that fails halfway', () => {
  const iso = isolate('startup');
  let blocker: Server;
  after(async () => {
    blocker?.close();
    await cleanup(iso, []);
  });

  it('When the HTTP port is taken after MySQL, Redis and RabbitMQ are connected, then start-up fails and closes every connection it opened', async () => {
    blocker = createServer().listen(0, '0.0.0.0');
    await once(blocker, 'listening');
    const port = (blocker.address() as AddressInfo).port;
    const logs = new LogCapture({ level: 'debug' });
    const logger = winston.createLogger({ level: 'info', transports: [logs] });

    const failed = await startApp(loadConfig(testEnv(iso, { PORT: String(port) })), 'all', { logger }).then(
      () => null,
      (err: NodeJS.ErrnoException) => err,
    );
    expect(failed?.code).to.equal('EADDRINUSE');
    // It got as far as the worker's consumers before the port: every engine was connected.
    expect(logs.lines.some((line) => line.message === 'seat views checked')).to.equal(true);
    expect(logs.lines.some((line) => line.message === 'start-up failed; closing what was opened')).to.equal(true);

    // RabbitMQ's management API lists connections with a few seconds' delay.
    let open = await openConnections(iso.namespace, iso.database);
    await waitFor(
      'every connection closed',
      async () => {
        open = await openConnections(iso.namespace, iso.database);
        return open.rabbitmq + open.redis + open.mysql === 0;
      },
      20_000,
      500,
    ).catch(() => {});
    expect(open).to.deep.equal({ rabbitmq: 0, redis: 0, mysql: 0 });
  });
});
