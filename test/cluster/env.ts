import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import winston from 'winston';
import { loadConfig } from '../../src/config';
import { splitAmqpUrls } from '../../src/messaging/amqp/connection';

const run = promisify(execFile);
const SCRIPT = join(__dirname, '..', '..', 'tools', 'cluster', 'cluster.sh');
const CLUSTER_DIR = process.env.SEAT_SAGA_CLUSTER_DIR ?? '/tmp/seat-saga-cluster';

/** The clusters under test: from the environment (REDIS_CLUSTER_NODES, AMQP_URL, RABBITMQ_NODES) or started here. */
export interface ClusterEnv {
  redisNodes: Array<{ host: string; port: number }>;
  amqpUrls: string[];
  rabbitNodes: string[];
  /** True when this run started the clusters (and so stops them at the end). */
  startedHere: boolean;
  /** True when tools/cluster runs them, so nodes can be killed and restarted. */
  drillable: boolean;
}

async function cluster(...args: string[]): Promise<string> {
  const { stdout } = await run('bash', [SCRIPT, ...args], { maxBuffer: 1 << 20, timeout: 600_000 });
  return stdout;
}

/** Reads the settings `cluster.sh up` prints (KEY=VALUE lines; comments skipped). */
function parseAssignments(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const match = /^([A-Z_]+)=(.*)$/.exec(line.trim());
    if (match) out[match[1]] = match[2];
  }
  return out;
}

export async function clusterEnv(): Promise<ClusterEnv> {
  let vars: Record<string, string | undefined> = process.env;
  let startedHere = false;
  if (!vars.REDIS_CLUSTER_NODES || !vars.RABBITMQ_NODES || !vars.AMQP_URL) {
    vars = parseAssignments(await cluster('up'));
    startedHere = true;
  }
  const config = loadConfig({ REDIS_CLUSTER_NODES: vars.REDIS_CLUSTER_NODES, AMQP_URL: vars.AMQP_URL });
  return {
    redisNodes: config.REDIS_CLUSTER_NODES ?? [],
    amqpUrls: splitAmqpUrls(config.AMQP_URL),
    rabbitNodes: (vars.RABBITMQ_NODES ?? '').split(',').filter(Boolean),
    startedHere,
    drillable: existsSync(join(CLUSTER_DIR, '.seat-saga-cluster')),
  };
}

/** SIGKILL one node: `redis-<port>` or `rabbit-<n>` (tools/cluster's names). */
export const killNode = (node: string) => cluster('kill', node);
/** Restarts it and waits until it is back in its cluster. */
export const startNode = (node: string) => cluster('start', node);
export const stopClusters = () => cluster('down');
export const redisNodeName = (address: string) => `redis-${address.split(':').pop()}`;
/** tools/cluster's rabbit-N listens on AMQP port 5700 + N. */
export const rabbitNodeName = (amqpUrl: string) => `rabbit-${Number(new URL(amqpUrl).port) - 5700}`;

/** A logger whose lines are kept for assertions (printed too when TEST_LOG_LEVEL is set). */
export function capturingLogger(): { logger: winston.Logger; lines: Array<Record<string, any>> } {
  const lines: Array<Record<string, any>> = [];
  class Capture extends winston.transports.Console {
    override log(info: any, next: () => void) {
      lines.push(info);
      if (process.env.TEST_LOG_LEVEL) return super.log!(info, next);
      next();
    }
  }
  const logger = winston.createLogger({ level: 'debug', format: winston.format.json(), transports: [new Capture()] });
  return { logger, lines };
}

export async function waitFor(what: string, check: () => Promise<boolean> | boolean, timeoutMs: number, everyMs = 200): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}
