import type Redis from 'ioredis';
import type { Cluster } from 'ioredis';
import { expect } from 'chai';
import type { ConsumeMessage } from 'amqplib';
import { loadConfig } from '../../src/config';
import { addressOf, connectRedis, createRedisCluster, deleteKeysWithPrefix, forEachMaster, onMastersChanged } from '../../src/db/redis';
import { ManagedConnection, endpointOf } from '../../src/messaging/amqp/connection';
import { buildTopology, declareTopology } from '../../src/messaging/topology';
import { capturingLogger, clusterEnv, killNode, rabbitNodeName, redisNodeName, startNode, stopClusters, waitFor, type ClusterEnv } from './env';

// Runs against a Redis Cluster and a RabbitMQ cluster: those of REDIS_CLUSTER_NODES, AMQP_URL and
// RABBITMQ_NODES, or tools/cluster's, started (and stopped at the end) by this file.
const RUN = `seat-saga-cluster-test-${process.pid}-${Date.now().toString(36)}`;
let shared: Promise<ClusterEnv> | null = null;
const sharedEnv = () => (shared ??= clusterEnv());

after(async function () {
  this.timeout(180_000);
  if (shared && (await shared).startedHere && !process.env.KEEP_CLUSTER) await stopClusters();
});

describe('Cluster settings', () => {
  it('When REDIS_CLUSTER_NODES and AMQP_URL list several nodes, then they parse into nodes and URLs; a bad entry is named', () => {
    const config = loadConfig({
      REDIS_CLUSTER_NODES: '127.0.0.1:7101, redis-b:7102',
      AMQP_URL: 'amqp://guest:guest@127.0.0.1:5701,amqp://u:p%40ss@127.0.0.1:5702/vh?heartbeat=5',
    });
    expect(config.REDIS_CLUSTER_NODES).to.deep.equal([
      { host: '127.0.0.1', port: 7101 },
      { host: 'redis-b', port: 7102 },
    ]);
    expect(endpointOf(config.AMQP_URL.split(',')[1])).to.include({
      protocol: 'amqp',
      hostname: '127.0.0.1',
      port: 5702,
      username: 'u',
      password: 'p@ss',
      vhost: 'vh',
      heartbeat: 5,
    });
    expect(loadConfig({}).REDIS_CLUSTER_NODES).to.equal(undefined);
    expect(() => loadConfig({ REDIS_CLUSTER_NODES: '127.0.0.1' })).to.throw(/REDIS_CLUSTER_NODES/);
    expect(() => loadConfig({ REDIS_CLUSTER_NODES: '127.0.0.1:70000' })).to.throw(/REDIS_CLUSTER_NODES/);
    expect(() => loadConfig({ AMQP_URL: 'amqp://127.0.0.1:5701,http://127.0.0.1' })).to.throw(/AMQP_URL/);
  });
});

async function countKeys(node: Redis, pattern: string): Promise<number> {
  let count = 0;
  let cursor = '0';
  do {
    const [next, keys] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
    cursor = next;
    count += keys.length;
  } while (cursor !== '0');
  return count;
}

describe('Redis Cluster client (REDIS_CLUSTER_NODES)', function () {
  this.timeout(120_000);
  const ns = `${RUN}-redis`;
  const { logger } = capturingLogger();
  let env: ClusterEnv;
  let redis: Cluster;

  before(async function () {
    this.timeout(600_000);
    env = await sharedEnv();
    redis = createRedisCluster(env.redisNodes, logger, `${ns}-client`);
    await connectRedis(redis);
  });

  after(async () => {
    if (!redis) return;
    await deleteKeysWithPrefix(redis, `${ns}:`);
    redis.disconnect();
  });

  it('When keys spread over the slots, then every master holds some, and deleteKeysWithPrefix scans and deletes them on every master', async () => {
    for (let i = 0; i < 60; i += 1) await redis.set(`${ns}:k:${i}`, String(i));
    expect(await redis.get(`${ns}:k:7`)).to.equal('7');
    const perMaster = await forEachMaster(redis, (node) => countKeys(node, `${ns}:k:*`));
    expect(perMaster).to.have.length(3);
    for (const count of perMaster) expect(count).to.be.greaterThan(0);
    expect(perMaster.reduce((a, b) => a + b, 0)).to.equal(60);
    expect(await deleteKeysWithPrefix(redis, `${ns}:k:`)).to.equal(60);
    expect(await redis.exists(`${ns}:k:7`)).to.equal(0);
  });

  it('When a script names several keys of one show (one hash tag), then it runs on the node of that slot; keys of two shows are refused', async () => {
    const lua = "if redis.call('SREM', KEYS[1], ARGV[1]) == 1 then redis.call('SADD', KEYS[2], ARGV[1]) return 1 end return 0";
    redis.defineCommand('clusterTestHold', { numberOfKeys: 2, lua });
    const hold = (redis as unknown as { clusterTestHold(free: string, held: string, seat: string): Promise<number> }).clusterTestHold.bind(redis);
    const free = `${ns}:show:{42}:free`;
    const held = `${ns}:show:{42}:holds`;
    await redis.sadd(free, 'A1', 'A2');
    expect(await hold(free, held, 'A1')).to.equal(1);
    expect(await hold(free, held, 'A1')).to.equal(0);
    expect(await redis.smembers(held)).to.deep.equal(['A1']);
    expect(await redis.smembers(free)).to.deep.equal(['A2']);
    const refused = await redis.eval(lua, 2, free, `${ns}:show:{43}:holds`, 'A2').then(
      () => null,
      (err: Error) => err.message,
    );
    // Refused before it leaves (ioredis: the keys of one command must share a slot), or by Redis (CROSSSLOT).
    expect(refused).to.match(/CROSSSLOT|same slot/);
  });

  it('When the master of a key is killed, then a command on that key waits for the promoted replica and succeeds, and the masters hook follows', async function () {
    if (!env.drillable) this.skip();
    this.timeout(240_000);
    const key = `${ns}:show:{7}:counter`;
    await redis.set(key, '10');
    const slot = Number(await redis.cluster('KEYSLOT', key));
    const killed = redis.slots[slot][0];
    const master = redis.nodes('master').find((node) => addressOf(node) === killed)!;
    expect(await master.wait(1, 5_000), 'the write reached the replica before the crash').to.equal(1);
    const seen: string[][] = [];
    const unsubscribe = onMastersChanged(redis, (masters) => seen.push(masters.map(addressOf)));
    try {
      await killNode(redisNodeName(killed));
      const t0 = Date.now();
      expect(await redis.incr(key)).to.equal(11);
      const promoted = redis.slots[slot][0];
      expect(promoted).to.not.equal(killed);
      console.log(`      (INCR on the killed master's slot answered after ${Date.now() - t0} ms, by ${promoted})`);
      await waitFor(
        'onMastersChanged to see the promoted replica',
        () => seen.some((masters) => masters.includes(promoted) && !masters.includes(killed)),
        15_000,
      );
    } finally {
      unsubscribe();
      await startNode(redisNodeName(killed)); // back, as a replica of the promoted node
    }
    expect(await redis.get(key)).to.equal('11');
  });
});

describe('AMQP over a RabbitMQ cluster (AMQP_URL list, QUEUE_TYPE=quorum)', function () {
  this.timeout(120_000);
  const ns = `${RUN}-amqp`;
  const topology = buildTopology({ namespace: ns, retryDelaysMs: [1_000], paymentWindowMs: 60_000, queueType: 'quorum', maxDeliveries: 5 }, [
    { tag: 'order_add_cancel', undoneBy: ['seat-release'] },
  ]);
  const work = topology.listenerQueues['seat-release']!;
  const { logger, lines } = capturingLogger();
  const received: string[] = [];
  let setups = 0;
  let env: ClusterEnv;
  let connection: ManagedConnection;

  const connectedNode = () => lines.filter((line) => line.message === 'rabbitmq connected').at(-1)?.node as string;
  const urlOf = (node: string) => env.amqpUrls.find((url) => new URL(url).port === node.split(':')[1])!;
  const management = async (url: string, path: string) => {
    const base = new URL(url);
    const response = await fetch(`http://${base.hostname}:${Number(base.port) + 10_000}/api${path}`, {
      headers: { authorization: `Basic ${Buffer.from('guest:guest').toString('base64')}` },
    });
    return await response.json();
  };
  const publishConfirmed = async (routingKey: string, exchange: string, bodies: string[]) => {
    const channel = await connection.model!.createConfirmChannel();
    for (const body of bodies) channel.publish(exchange, routingKey, Buffer.from(body), { persistent: true });
    await channel.waitForConfirms();
    await channel.close();
  };

  before(async function () {
    this.timeout(600_000);
    env = await sharedEnv();
    connection = new ManagedConnection({
      url: env.amqpUrls.join(','),
      name: `${ns} test`,
      logger,
      setup: async (model) => {
        // What the service's setup does on every (re)connect: declare, then consume.
        await declareTopology(model, topology.declaredExchanges, topology.declaredQueues);
        const channel = await model.createChannel();
        channel.on('error', () => {});
        await channel.consume(work.name, (msg: ConsumeMessage | null) => {
          if (!msg) return;
          received.push(msg.content.toString());
          channel.ack(msg);
        });
        setups += 1;
      },
    });
    await connection.start();
  });

  after(async () => {
    if (!connection) return;
    await connection
      .withChannel(async (channel) => {
        for (const queue of topology.declaredQueues) await channel.deleteQueue(queue.name);
        for (const exchange of topology.declaredExchanges) await channel.deleteExchange(exchange.name);
      })
      .catch(() => {});
    await connection.close();
  });

  it('When messages are published with confirms, then each is confirmed by the quorum queue (replicated on the three nodes) and consumed', async () => {
    await publishConfirmed(
      'order_add_cancel',
      topology.exchanges.compensation,
      Array.from({ length: 20 }, (_, i) => `first-${i}`),
    );
    await waitFor('20 messages consumed', () => received.length >= 20, 20_000);
    expect(received.slice(0, 20)).to.deep.equal(Array.from({ length: 20 }, (_, i) => `first-${i}`));
    const queue = await management(env.amqpUrls[0], `/queues/%2F/${encodeURIComponent(work.name)}`);
    expect(queue.type).to.equal('quorum');
    expect(queue.arguments).to.include({ 'x-delivery-limit': 5, 'x-dead-letter-strategy': 'at-least-once', 'x-overflow': 'reject-publish' });
    expect([...queue.members].sort()).to.deep.equal([...env.rabbitNodes].sort());
  });

  it('When the node of the connection is killed, then it connects to the next node, declares the topology again, and the quorum queues keep their messages and consumers', async function () {
    if (!env.drillable) this.skip();
    this.timeout(300_000);
    // Parked in a quorum queue without consumer (its leader on the connected node), before the crash.
    await publishConfirmed(
      work.deadLetterQueue,
      topology.exchanges.deadLetter,
      Array.from({ length: 10 }, (_, i) => `parked-${i}`),
    );
    const before = connectedNode();
    const victim = rabbitNodeName(urlOf(before));
    const setupsBefore = setups;
    await killNode(victim);
    const t0 = Date.now();
    try {
      await waitFor('reconnected to another node', () => setups > setupsBefore && connection.isConnected, 60_000, 100);
      const after = connectedNode();
      console.log(`      (${victim} killed: connected to ${after}, topology declared again, after ${Date.now() - t0} ms)`);
      expect(after).to.not.equal(before);
      expect(lines.some((line) => line.message === 'rabbitmq disconnected, reconnecting' && line.node === before)).to.equal(true);
      const nodes = (await management(urlOf(after), '/nodes')) as Array<{ name: string; running: boolean }>;
      expect(nodes.find((node) => node.name === env.rabbitNodes[Number(victim.split('-')[1]) - 1])?.running).to.equal(false);

      const already = received.length;
      await publishConfirmed('order_add_cancel', topology.exchanges.compensation, ['after-0', 'after-1', 'after-2']);
      await waitFor('messages published after the failover consumed', () => received.length >= already + 3, 30_000);
      expect(received.slice(already)).to.deep.equal(['after-0', 'after-1', 'after-2']);

      const parked = await connection.withChannel(async (channel) => {
        const bodies: string[] = [];
        for (let msg = await channel.get(work.deadLetterQueue); msg; msg = await channel.get(work.deadLetterQueue)) {
          bodies.push(msg.content.toString());
          channel.ack(msg);
        }
        return bodies;
      });
      expect(parked).to.deep.equal(Array.from({ length: 10 }, (_, i) => `parked-${i}`));
    } finally {
      await startNode(victim);
    }
  });
});
