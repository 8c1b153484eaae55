import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { cleanup, isolate, startTestApp, type TestApp } from '../support/fixture';
import { Api, waitFor } from '../support/http';

describe('What operators see', () => {
  const iso = isolate('observability');
  let app: TestApp;
  let api: Api;

  before(async () => {
    app = await startTestApp(iso);
    api = new Api(app.url!);
  });
  after(() => cleanup(iso, [app]));

  it('When /livez is asked, then it answers from the process alone', async () => {
    const reply = await api.get('/livez');
    expect(reply.status).to.equal(200);
    expect(reply.body).to.deep.equal({ status: 'ok' });
  });

  it('When every dependency is up, then /health says so for each', async () => {
    const reply = await api.get('/health');
    expect(reply.status).to.equal(200);
    expect(reply.body).to.deep.equal({ status: 'ok', mysql: 'up', redis: 'up', rabbitmq: 'up' });
  });

  it('When sagas complete and fail, then each outcome is one info line with its saga id, requests carry a request id, and /metrics counts them', async () => {
    const buyer = await api.createUser('ann');
    const show = await api.createShow(1, 4);
    const ok = await api.post('/api/orders', { showId: show.id, seatIds: [show.seatIds[0]] }, { ...buyer.auth, 'X-Request-Id': 'req-ok-1' });
    expect(ok.headers.get('x-request-id')).to.equal('req-ok-1');
    await api.setFailpoint('order.order_add.after', { action: 'throw', count: 1 });
    const failed = await api.post('/api/orders', { showId: show.id, seatIds: [show.seatIds[1]] }, buyer.auth);
    const failedSaga = failed.body.error.details.sagaId;
    await waitFor('compensated', async () => (await api.saga(failedSaga)).body.status === 'COMPENSATED');

    const outcomeLines = (sagaId: string) =>
      app.logs.lines.filter((l) => l.sagaId === sagaId && l.level === 'info' && /^saga (completed|compensated)$/.test(l.message));
    expect(outcomeLines(ok.body.sagaId).map((l) => [l.message, l.requestId])).to.deep.equal([['saga completed', 'req-ok-1']]);
    expect(outcomeLines(failedSaga).map((l) => l.message)).to.deep.equal(['saga compensated']);
    expect(app.logs.lines.some((l) => l.sagaId === failedSaga && l.message === 'saga failed, compensating' && l.requestId)).to.equal(true);
    // An on-call engineer greps one saga id and finds the request that failed and each listener's attempt.
    expect(app.logs.lines.filter((l) => l.message === 'request failed' && l.sagaId === failedSaga).map((l) => l.tag)).to.deep.equal(['order_add_cancel']);
    const applied = app.logs.lines.filter((l) => l.message === 'compensation applied' && l.sagaId === failedSaga);
    expect(applied.map((l) => [l.listener, l.attempt, l.tag]).sort()).to.deep.equal([
      ['order-delete', 1, 'order_add_cancel'],
      ['seat-release', 1, 'order_add_cancel'],
    ]);

    const metrics = await api.get('/metrics');
    expect(metrics.status).to.equal(200);
    expect(metrics.headers.get('content-type')).to.match(/^text\/plain/);
    const text = metrics.body as string;
    expect(text).to.match(/seat_saga_saga_outcomes_total\{type="order",status="COMPLETED",tag=""\} 1/);
    expect(text).to.match(/seat_saga_saga_outcomes_total\{type="order",status="COMPENSATED",tag="order_add_cancel"\} 1/);
    expect(text).to.match(/seat_saga_saga_failures_total\{type="order",tag="order_add_cancel",error_code="STEP_FAILED"\} 1/);
    expect(text).to.match(/seat_saga_compensation_deliveries_total\{listener="seat-release",outcome="done"\} 1/);
    expect(text).to.match(/seat_saga_outbox_pending 0/);
    expect(text).to.match(/seat_saga_http_request_duration_seconds_count\{method="POST",route="\/api\/orders",status="201"\} 1/);
  });

  it('When a pay is refused for a wrong password, then the saga is counted COMPENSATED as the log says (not FAILED), and the 403 keeps its full route', async () => {
    const buyer = await api.createUser('bob');
    const show = await api.createShow(1, 2);
    await api.credit(buyer.id, 10_000);
    const order = await api.order(buyer, show.id, [show.seatIds[0]]);
    const refused = await api.pay(buyer, order.id, 'not-my-password');
    expect(refused.status).to.equal(403);
    expect((await api.saga(refused.body.error.details.sagaId)).body.status).to.equal('COMPENSATED');
    const text = (await api.get('/metrics')).body as string;
    expect(text).to.match(/seat_saga_saga_outcomes_total\{type="pay",status="COMPENSATED",tag="pay_check_cancel"\} 1/);
    expect(text).to.match(/seat_saga_saga_failures_total\{type="pay",tag="pay_check_cancel",error_code="WRONG_PAY_PASSWORD"\} 1/);
    expect(text).to.not.match(/saga_outcomes_total\{[^}]*status="FAILED"/);
    expect(text).to.match(/seat_saga_http_request_duration_seconds_count\{method="POST",route="\/api\/orders\/:id\/pay",status="403"\} 1/);
    expect(text).to.not.match(/route="\/orders\/:id\/pay"/);
  });

  it('When /metrics is read, then promtool finds nothing to complain about, and the DLQ depth is a gauge per listener', async function () {
    const text = (await api.get('/metrics')).body as string;
    expect(text).to.match(/^seat_saga_dead_letters\{listener="seat-release"\} 0$/m);
    expect(text).to.match(/^# TYPE seat_saga_dead_letters gauge$/m);
    const promtool = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    if (promtool.error) {
      // CI installs it (.ci/run); a machine without Prometheus's tools skips this one check.
      if (process.env.CI) throw new Error(`promtool is needed in CI: ${promtool.error.message}`);
      this.skip();
    }
    expect(`${promtool.stdout}${promtool.stderr}`.trim()).to.equal('');
    expect(promtool.status).to.equal(0);
  });
});
