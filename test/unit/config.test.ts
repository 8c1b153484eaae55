import { expect } from 'chai';
import { ConfigError, databaseName, loadConfig, redactUrl } from '../../src/config';

describe('Configuration', () => {
  it('When nothing is set, then the contract defaults apply and an admin token is generated', () => {
    const config = loadConfig({});
    expect(config).to.include({
      PORT: 3000,
      DATABASE_URL: 'mysql://root@127.0.0.1:3306/seat_saga',
      REDIS_URL: 'redis://127.0.0.1:6379/0',
      AMQP_URL: 'amqp://guest:guest@127.0.0.1:5672',
      NAMESPACE: 'seat-saga',
      ENABLE_FAILPOINTS: false,
      LOG_LEVEL: 'info',
      PAYMENT_WINDOW_MS: 900_000,
      adminTokenGenerated: true,
    });
    expect(config.ADMIN_TOKEN).to.have.length.greaterThan(20);
    expect(loadConfig({}).ADMIN_TOKEN).to.not.equal(config.ADMIN_TOKEN);
  });

  it('When retry delays are given, then they are the tiers; the older single RETRY_DELAY_MS still works; the default grows from 1 s to 5 min', () => {
    expect(loadConfig({}).RETRY_DELAYS_MS).to.deep.equal([1_000, 10_000, 60_000, 300_000]);
    expect(loadConfig({}).MAX_DELIVERIES).to.equal(8);
    expect(loadConfig({ RETRY_DELAYS_MS: '200, 2000,20000' }).RETRY_DELAYS_MS).to.deep.equal([200, 2_000, 20_000]);
    expect(loadConfig({ RETRY_DELAY_MS: '150' }).RETRY_DELAYS_MS).to.deep.equal([150]);
    expect(loadConfig({ RETRY_DELAY_MS: '150', RETRY_DELAYS_MS: '10,20' }).RETRY_DELAYS_MS).to.deep.equal([10, 20]);
  });

  const bad: Array<[string, string]> = [
    ['PORT', 'eighty'],
    ['PORT', '70000'],
    ['PORT', '-1'],
    ['DATABASE_URL', 'not a url'],
    ['DATABASE_URL', 'postgres://localhost/x'],
    ['REDIS_URL', 'localhost:6379'],
    ['AMQP_URL', 'http://localhost'],
    ['NAMESPACE', 'has space'],
    ['RETRY_DELAYS_MS', '1000,ten'],
    ['RETRY_DELAYS_MS', '5'],
    ['ENABLE_FAILPOINTS', 'maybe'],
    ['LOG_LEVEL', 'loud'],
    ['ADMIN_TOKEN', 'short'],
    ['FAILPOINTS', 'order.order_add.after=explode'],
    ['SAGA_STALE_MS', '1.5'],
  ];
  for (const [variable, value] of bad) {
    it(`When ${variable}=${JSON.stringify(value)}, then start-up stops with one line naming ${variable}`, () => {
      let error: unknown;
      try {
        loadConfig({ [variable]: value });
      } catch (err) {
        error = err;
      }
      expect(error).to.be.instanceOf(ConfigError);
      expect((error as ConfigError).variable).to.equal(variable);
      expect((error as Error).message).to.match(new RegExp(`^Invalid ${variable}=`));
      expect((error as Error).message).to.not.include('\n');
    });
  }

  it('When the reservation reconciler would act before the queue delay bound, then start-up stops naming RESERVATION_RECONCILE_AFTER_MS', () => {
    expect(() => loadConfig({ ORDER_MAX_QUEUE_DELAY_MS: '40000' })).to.throw(
      ConfigError,
      'Invalid RESERVATION_RECONCILE_AFTER_MS="30000": must be greater than ORDER_MAX_QUEUE_DELAY_MS (40000)',
    );
    expect(loadConfig({ ORDER_MAX_QUEUE_DELAY_MS: '40000', RESERVATION_RECONCILE_AFTER_MS: '60000' }).RESERVATION_RECONCILE_AFTER_MS).to.equal(60_000);
  });

  it('When an empty value is given, then the default applies (as if unset)', () => {
    expect(loadConfig({ PORT: '' }).PORT).to.equal(3000);
  });

  it('When DATABASE_URL names a database, then that is the one created; passwords never reach the logs', () => {
    expect(databaseName(loadConfig({ DATABASE_URL: 'mysql://u:p@db:3307/tickets' }))).to.equal('tickets');
    expect(redactUrl('mysql://u:secret@db:3307/tickets')).to.equal('mysql://u:***@db:3307/tickets');
  });
});
