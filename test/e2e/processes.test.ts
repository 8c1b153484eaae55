import { expect } from 'chai';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { cleanup, isolate, kill, spawnService, startTestApp, testEnv, type TestApp } from '../support/fixture';
import { Api, waitFor } from '../support/http';
import { checkSeatInvariants, sagasSettled } from '../support/invariants';

const MAIN = path.join(__dirname, '../../src/main.ts');

/** Runs the program to its end (or until `stopWhen` matches its output) and collects what it printed. */
function runProgram(env: Record<string, string>, args: string[] = [], stopWhen?: (output: string) => boolean, timeoutMs = 20_000) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve, reject) => {
    const child = spawn(process.execPath, ['--require', 'tsx/cjs', MAIN, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`program did not finish:\n${stdout}\n${stderr}`));
    }, timeoutMs);
    const check = () => {
      if (stopWhen?.(stdout + stderr)) child.kill('SIGKILL');
    };
    child.stdout.on('data', (c) => ((stdout += c), check()));
    child.stderr.on('data', (c) => ((stderr += c), check()));
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

describe('The program as a process', () => {
  const iso = isolate('processes');
  let worker: TestApp;

  before(async () => {
    worker = await startTestApp(iso, {}, 'worker');
  });
  after(() => cleanup(iso, [worker]));

  it('When a variable has a bad value, then the program stops with one line naming it and no stack trace', async () => {
    const { code, stdout, stderr } = await runProgram({ PORT: 'eighty' });
    expect(code).to.equal(2);
    expect(stdout).to.equal('');
    expect(stderr.trim().split('\n')).to.deep.equal(['Invalid PORT="eighty": must be a whole number']);
  });

  it('When the role is unknown, then the program says which roles exist', async () => {
    const { code, stderr } = await runProgram({}, ['everything']);
    expect(code).to.equal(2);
    expect(stderr).to.match(/Unknown role "everything": use one of all, api, worker/);
  });

  for (const [dependency, variable, url] of [
    ['mysql', 'DATABASE_URL', 'mysql://root@127.0.0.1:1/seat_saga_unreachable'],
    ['redis', 'REDIS_URL', 'redis://127.0.0.1:1/0'],
    ['rabbitmq', 'AMQP_URL', 'amqp://guest:guest@127.0.0.1:1'],
  ] as const) {
    it(`When ${dependency} is unreachable at start, then the program retries with backoff and names it in the log`, async () => {
      const env = { ...testEnv(iso), [variable]: url, LOG_LEVEL: 'info' };
      const retries = (output: string) =>
        output
          .split('\n')
          .filter((line) => line.startsWith('{'))
          .map((line) => JSON.parse(line))
          .filter((entry) => entry.dependency === dependency && entry.message === `${dependency} unreachable, retrying`);
      const { stdout, stderr } = await runProgram(env, ['api'], (output) => retries(output).length >= 3);
      const lines = retries(stdout);
      expect(lines.length, stdout).to.be.at.least(3);
      expect(lines.every((l) => l.level === 'warn' && typeof l.error === 'string')).to.equal(true);
      expect(stdout + stderr).to.not.match(/^\s+at /m); // no stack trace
    });
  }

  it('When SIGTERM arrives with a request in flight, then that request completes, new ones are refused and the process exits 0', async () => {
    const child = await spawnService({ ...testEnv(iso), FAILPOINTS: 'order.calc_money.before=delay:1500' }, 'api');
    const url = child.output.join('').match(/listening on (http:\/\/[\d.:]+)/)![1];
    const api = new Api(url);
    const buyer = await api.createUser('ann');
    const show = await api.createShow(1, 2);
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));

    const inFlight = api.post('/api/orders', { showId: show.id, seatIds: [show.seatIds[0]] }, buyer.auth);
    await new Promise((resolve) => setTimeout(resolve, 300));
    child.kill('SIGTERM');
    await new Promise((resolve) => setTimeout(resolve, 200));
    const refused = await api.get('/livez').catch((err) => err);
    expect(refused).to.be.an('error');

    const reply = await inFlight;
    expect(reply.status).to.equal(201);
    expect(await exited).to.equal(0);
    expect(child.output.join('')).to.match(/"message":"stopped"/);
  });

  it('When several processes start at once on a fresh database, then they take turns migrating and all of them start', async () => {
    const fresh = isolate('freshstart');
    const started = await Promise.allSettled([1, 2, 3].map(() => spawnService(testEnv(fresh), 'api')));
    try {
      for (const result of started) expect(result.status, String((result as PromiseRejectedResult).reason)).to.equal('fulfilled');
    } finally {
      await Promise.all(started.map((r) => (r.status === 'fulfilled' ? kill(r.value, 'SIGTERM') : Promise.resolve())));
      await cleanup(fresh, []);
    }
  });

  it("When a process died mid-migration and left knex's lock taken, then the next start clears it and starts", async () => {
    await worker.db('knex_migrations_lock').update({ is_locked: 1 });
    const child = await spawnService(testEnv(iso), 'api');
    try {
      expect(child.output.join('')).to.match(/seat-saga listening on/);
      expect(await worker.db('knex_migrations_lock').pluck('is_locked')).to.deep.equal([0]);
    } finally {
      await kill(child, 'SIGTERM');
    }
  });

  it('When two API processes and a worker run side by side, then they share the work without selling a seat twice', async () => {
    const children = await Promise.all([spawnService(testEnv(iso), 'api'), spawnService(testEnv(iso), 'api')]);
    try {
      const apis = children.map((c) => new Api(c.output.join('').match(/listening on (http:\/\/[\d.:]+)/)![1]));
      const buyer = await apis[0].createUser('ann');
      const show = await apis[1].createShow(2, 10);
      await apis[0].setFailpoint('order.order_add.after', { action: 'throw', count: 10 });
      const replies = await Promise.all(
        Array.from({ length: 100 }, (_, i) => apis[i % 2].post('/api/orders', { showId: show.id, seatIds: [show.seatIds[i % 20]] }, buyer.auth)),
      );
      const created = replies.filter((r) => r.status === 201);
      expect(created.length).to.be.within(10, 20);
      expect(replies.filter((r) => r.status === 500)).to.have.length(10);
      expect(replies.every((r) => [201, 409, 500].includes(r.status))).to.equal(true);
      const orderIds = created.map((r) => r.body.id);
      expect(new Set(orderIds).size).to.equal(orderIds.length);
      // The worker (another process) compensated what the API processes' failures left.
      await waitFor('every saga settled', () => sagasSettled(worker), 15_000);
      await checkSeatInvariants(worker, show.id);
    } finally {
      await Promise.all(children.map((c) => kill(c, 'SIGTERM')));
    }
  });
});
