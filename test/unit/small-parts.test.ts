import { expect } from 'chai';
import { Failpoints, FailpointError } from '../../src/support/failpoints';
import { deliveriesSoFar } from '../../src/messaging/broker';
import { rowLabel } from '../../src/shows/shows';
import { TokenSigner } from '../../src/users/tokens';

describe('Failpoints', () => {
  it('When a throw failpoint has a count, then it fires that many times and then clears', async () => {
    const fp = new Failpoints(true);
    fp.set('order.order_add.after', { action: 'throw', count: 2 });
    for (let i = 0; i < 2; i++) {
      let error: unknown;
      await fp.hit('order.order_add.after').catch((err) => (error = err));
      expect(error).to.be.instanceOf(FailpointError);
    }
    await fp.hit('order.order_add.after');
    expect(fp.list()).to.deep.equal({});
  });

  it('When a delay failpoint fires, then the hit waits that long', async () => {
    const fp = new Failpoints(true);
    fp.configureFrom('order.seats_hold.before=delay:120');
    const started = Date.now();
    await fp.hit('order.seats_hold.before');
    expect(Date.now() - started).to.be.at.least(110);
  });

  it('When failpoints are disabled, then hits do nothing and setting one is refused', async () => {
    const fp = new Failpoints(false);
    expect(() => fp.set('order.order_add.after', { action: 'throw' })).to.throw(/disabled/);
    await fp.hit('order.order_add.after');
  });
});

describe('Bearer tokens', () => {
  const signer = new TokenSigner(Buffer.alloc(32, 1));

  it('When a token was issued, then it verifies to its user without any lookup', () => {
    expect(signer.verify(signer.issue('42'))).to.equal('42');
  });

  it('When a token is tampered with or signed by another secret, then it is refused', () => {
    const token = signer.issue('42');
    expect(signer.verify(token.replace('v1.42.', 'v1.43.'))).to.equal(null);
    expect(signer.verify(new TokenSigner(Buffer.alloc(32, 2)).issue('42'))).to.equal(null);
    expect(signer.verify(`${token}x`)).to.equal(null);
    expect(signer.verify('')).to.equal(null);
  });
});

describe('Seat labels', () => {
  it('When rows are numbered, then they are lettered A..Z, AA..', () => {
    expect([1, 2, 26, 27, 52, 53, 702, 703].map(rowLabel)).to.deep.equal(['A', 'B', 'Z', 'AA', 'AZ', 'BA', 'ZZ', 'AAA']);
  });
});

describe('Delivery counting from x-death', () => {
  it('When a message was rejected twice from its queue, then this is its third delivery', () => {
    const msg = {
      properties: {
        headers: {
          'x-death': [
            { queue: 'q.retry', reason: 'expired', count: 2 },
            { queue: 'q', reason: 'rejected', count: 2 },
            { queue: 'other', reason: 'rejected', count: 5 },
          ],
        },
      },
    };
    expect(deliveriesSoFar(msg as any, 'q')).to.equal(2);
    expect(deliveriesSoFar({ properties: { headers: {} } } as any, 'q')).to.equal(0);
  });
});
