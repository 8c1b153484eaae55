import { expect } from 'chai';
import { isCluster } from '../../src/db/redis';
import { topologyNames } from '../../src/messaging/topology';
import { bulkBuyers } from '../support/buyers';
import { cleanup, isolate, startTestApp, type TestApp } from '../support/fixture';
import { Api, waitFor } from '../support/http';
import { allResolved, checkReservationsResolved, checkSeatInvariants, sagasSettled } from '../support/invariants';
import { management } from '../support/management';
import { killNode, redisNodeName, startNode } from './env';
import { faultFigures, masterOfKey, rabbitNodeOfApp, runSale, type SaleRecord } from './flash-drill';

// Failover drills during a flash sale, on the clusters of `npm run test:cluster` (REDIS_CLUSTER_NODES,
// AMQP_URL, RABBITMQ_NODES set by tools/cluster/test.sh): 10,000 seats, 50,000 requests, one seat
// each, one buyer each; once 2,500 orders are accepted a node is SIGKILLed, and 10 s later started
// again while the sale goes on. Afterwards every invariant of the contract is checked.
const SEATS = 10_000;
const REQUESTS = Number(process.env.DRILL_REQUESTS ?? 50_000);
const CONNECTIONS = 64;
const RABBIT_NODES = (process.env.RABBITMQ_NODES ?? '').split(',').filter(Boolean);
/** tools/cluster's rabbit-N serves its management API on 15700 + N. */
const MANAGEMENT_URLS = RABBIT_NODES.map((_, i) => `http://127.0.0.1:${15701 + i}`);

type Target = 'rabbit' | 'redis';
const DRILLS: Array<{ title: string; kill: Target[] }> = [
  { title: 'the RabbitMQ node the service is connected to', kill: ['rabbit'] },
  { title: 'the Redis master that holds the show', kill: ['redis'] },
  { title: 'that RabbitMQ node and that Redis master, both at once,', kill: ['rabbit', 'redis'] },
];
const ANSWERS_ALLOWED = /^(202|409 SOLD_OUT|409 SEATS_TAKEN|503 .+)$/;

describe('Failover drills during a flash sale (10,000 seats, 50,000 requests)', function () {
  this.timeout(600_000);
  const iso = isolate('drills');
  let app: TestApp;
  let api: Api;
  let buyers: Array<{ id: string; auth: Record<string, string> }>;
  const figures: Array<Record<string, unknown>> = [];

  before(async function () {
    if (!process.env.REDIS_CLUSTER_NODES || RABBIT_NODES.length < 3)
      throw new Error('run through `npm run test:cluster`: it starts the clusters and sets their settings');
    // A failover holds queued orders back for seconds: they wait (up to 20 s) instead of being released.
    app = await startTestApp(iso, { ORDER_MAX_QUEUE_DELAY_MS: '20000' });
    api = new Api(app.url!);
    expect(isCluster(app.redis), 'the service runs on the Redis Cluster').to.equal(true);
    buyers = await bulkBuyers(app, REQUESTS, 'drill');
  });

  after(async function () {
    if (figures.length) console.log(`      drill figures: ${JSON.stringify(figures)}`);
    await cleanup(iso, [app]);
  });

  for (const drill of DRILLS) {
    it(`When ${drill.title} ${drill.kill.length > 1 ? 'are' : 'is'} killed during the sale, then exactly the seats sold are held, none twice, every accepted order is persisted or released, every saga ended`, async () => {
      const show = await api.createShow(100, 100);
      const killed: string[] = [];
      const record: SaleRecord = await runSale(app.url!, show.id, buyers, {
        requests: REQUESTS,
        connections: CONNECTIONS,
        faultAfterAccepted: 2_500,
        fault: async () => {
          if (drill.kill.includes('redis')) killed.push(redisNodeName(await masterOfKey(app.redis, app.inventory.keys(show.id).free)));
          if (drill.kill.includes('rabbit')) killed.push(`rabbit-${RABBIT_NODES.indexOf(await rabbitNodeOfApp(app, MANAGEMENT_URLS)) + 1}`);
          await Promise.all(killed.map((node) => killNode(node)));
        },
        restoreAfterMs: 10_000,
        restore: async () => {
          await Promise.all(killed.map((node) => startNode(node)));
        },
      });
      expect(killed, 'the nodes killed').to.have.length(drill.kill.length);
      expect(record.faultAtMs, 'the fault fired during the sale').to.not.equal(null);
      const unexpected = Object.entries(record.answers).filter(([answer]) => !ANSWERS_ALLOWED.test(answer));
      expect(unexpected, 'only 202, 409 SOLD_OUT/SEATS_TAKEN and 503 are answered').to.deep.equal([]);

      const drainFrom = Date.now();
      await allResolved(app, record.accepted, 180_000);
      const drainedMs = Date.now() - drainFrom;
      await waitFor('every saga ended', () => sagasSettled(app), 60_000, 200);
      const { persisted, released } = await checkReservationsResolved(app, show.id, record.accepted);
      const seats: string[] = persisted.length ? await app.db('order_seats').whereIn('order_id', persisted).pluck('seat_id') : [];
      expect(new Set(seats).size, 'no seat in two persisted orders').to.equal(seats.length);
      expect(seats.length, 'one seat per persisted order').to.equal(persisted.length);
      const counts = await checkSeatInvariants(app, show.id);
      expect(counts.held + counts.sold, 'exactly the seats of the persisted orders are held').to.equal(persisted.length);
      expect(persisted.length).to.be.at.most(SEATS);
      // The broker kept nothing back: every queue of the namespace empty, nothing unacknowledged.
      await waitFor(
        'the namespace’s work queues drained',
        async () => {
          const work = topologyNames(app.topology).queues.filter((name) => !name.endsWith('.dlq') && !name.includes('.expiry.'));
          const queues = (await management('/queues/%2F?columns=name,messages')) as Array<{ name: string; messages?: number }>;
          const counts = new Map(queues.map((q) => [q.name, q.messages ?? 0]));
          return work.every((name) => counts.get(name) === 0);
        },
        60_000,
        1_000,
      );
      figures.push({
        drill: drill.title,
        killed,
        ...faultFigures(record, SEATS),
        faultAtMs: record.faultAtMs,
        restoredAtMs: record.restoredAtMs,
        saleMs: record.durationMs,
        drainedAfterSaleMs: drainedMs,
        accepted: record.accepted.length,
        persisted: persisted.length,
        released: released.length,
        answers: record.answers,
      });
    });
  }
});
