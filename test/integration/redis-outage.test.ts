import { expect } from 'chai';
import { exec } from 'node:child_process';
import { promisify } from 'node:util';
import { cleanup, isolate, startTestApp, type TestApp } from '../support/fixture';
import { Api, waitFor } from '../support/http';
import { checkSeatInvariants, sagasSettled } from '../support/invariants';

const sh = promisify(exec);
/** How this machine starts Redis (no persistence: a restart loses every key). */
const REDIS_START =
  process.env.REDIS_START_COMMAND ??
  `redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log`;

describe('Redis outage and restart', function () {
  this.timeout(60_000);
  const iso = isolate('redisoutage');
  let app: TestApp;
  let api: Api;

  before(async () => {
    // Only the keyspace trigger expires orders here, to prove it survives the restart.
    app = await startTestApp(iso, { EXPIRY_TRIGGERS: 'keyspace' });
    api = new Api(app.url!);
  });
  after(async () => {
    await sh(REDIS_START).catch(() => {}); // never leave Redis stopped (fails harmlessly if it runs)
    await cleanup(iso, [app]);
  });

  it('When Redis goes down, then orders answer 503 and hold nothing; after its restart (every key lost) the view is rebuilt from the database', async () => {
    const buyer = await api.createUser('ann');
    const show = await api.createShow(1, 6);
    const kept = await api.post('/api/orders', { showId: show.id, seatIds: show.seatIds.slice(0, 2) }, buyer.auth);
    expect(kept.status).to.equal(201);

    await sh('redis-cli shutdown nosave').catch(() => {}); // the connection drops as it shuts down
    try {
      await waitFor('the service to notice', async () => app.redis.status !== 'ready', 5_000);
      const reply = await api.post('/api/orders', { showId: show.id, seatIds: [show.seatIds[2]] }, buyer.auth);
      expect(reply.status).to.equal(503);
      expect(reply.body.error.code).to.equal('SERVICE_UNAVAILABLE');
      expect(reply.body.error.details.dependency).to.equal('redis');
      expect(reply.headers.get('retry-after')).to.equal('1');
      const health = await api.get('/health');
      expect(health.status).to.equal(503);
      expect(health.body.redis).to.equal('down');
      expect(await app.db('seat_holds').where({ seat_id: show.seatIds[2] }).first()).to.equal(undefined);
    } finally {
      await sh(REDIS_START);
    }

    await waitFor('redis back', async () => app.redis.status === 'ready', 15_000, 100);
    // Everything Redis knew is gone; the database still knows the first order's seats.
    const retry = await api.post('/api/orders', { showId: show.id, seatIds: [show.seatIds[1], show.seatIds[2]] }, buyer.auth);
    expect(retry.status).to.equal(409);
    expect(retry.body.error.details.seatIds).to.deep.equal([show.seatIds[1]]);
    const free = await api.post('/api/orders', { showId: show.id, seatIds: [show.seatIds[2]] }, buyer.auth);
    expect(free.status).to.equal(201);
    await waitFor('every saga settled', () => sagasSettled(app), 10_000);
    const counts = await checkSeatInvariants(app, show.id);
    expect(counts).to.deep.equal({ sold: 0, held: 3, available: 3 });

    // The restarted Redis forgot notify-keyspace-events: the service turned it on again, and its
    // subscriber listens again. An order made due now, with its key about to expire, expires.
    await waitFor(
      'keyspace events on again',
      async () => {
        const [, flags] = await app.redis.config('GET', 'notify-keyspace-events');
        return flags.includes('E') && flags.includes('x');
      },
      5_000,
    );
    await app
      .db('orders')
      .where({ id: free.body.id })
      .update({ expires_at: app.db.fn.now(3) });
    await app.redis.set(`${iso.namespace}:expiry:order:${free.body.id}`, '1', 'PX', 100);
    await waitFor('expired by the keyspace event', async () => (await api.get(`/api/orders/${free.body.id}`, buyer.auth)).body.status === 'EXPIRED', 5_000);
    await waitFor('every saga settled', () => sagasSettled(app), 10_000);
    expect(await checkSeatInvariants(app, show.id)).to.deep.equal({ sold: 0, held: 2, available: 4 });
  });
});
