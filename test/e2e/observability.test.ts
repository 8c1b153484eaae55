import { expect } from 'chai';
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

    const metrics = await api.get('/metrics');
    expect(metrics.status).to.equal(200);
    expect(metrics.headers.get('content-type')).to.match(/^text\/plain/);
    const text = metrics.body as string;
    expect(text).to.match(/seat_saga_saga_outcomes_total\{type="order",status="COMPLETED",tag=""\} 1/);
    expect(text).to.match(/seat_saga_saga_outcomes_total\{type="order",status="FAILED",tag="order_add_cancel"\} 1/);
    expect(text).to.match(/seat_saga_compensation_deliveries_total\{listener="seat-release",outcome="done"\} 1/);
    expect(text).to.match(/seat_saga_outbox_pending 0/);
    expect(text).to.match(/seat_saga_http_request_duration_seconds_count\{method="POST",route="\/api\/orders",status="201"\} 1/);
  });
});
