import { expect } from 'chai';
import type { ConsumeMessage } from 'amqplib';
import { AckCoalescer } from '../../src/messaging/amqp/ack-coalescer';
import { Batcher } from '../../src/messaging/amqp/batcher';

const message = (deliveryTag: number) => ({ fields: { deliveryTag } }) as unknown as ConsumeMessage;
const tick = (ms = 0) => new Promise((resolve) => setTimeout(resolve, ms));

describe('Ack coalescing (pure logic, a fake channel)', () => {
  function fakeChannel() {
    const acks: Array<[number, boolean]> = [];
    return {
      acks,
      target: { open: true, channel: { ack: (msg: ConsumeMessage, allUpTo?: boolean) => acks.push([msg.fields.deliveryTag, Boolean(allUpTo)]) } },
    };
  }

  it('When a run of deliveries is settled from the oldest, then one multiple ack covers it', () => {
    const { acks, target } = fakeChannel();
    const coalescer = new AckCoalescer(target);
    for (const tag of [1, 2, 3, 4]) coalescer.track(message(tag));
    for (const tag of [1, 2, 3]) coalescer.settled(message(tag), true);
    coalescer.flush();
    expect(acks).to.deep.equal([[3, true]]);
  });

  it('When an older delivery is still in work, then nothing after it is acked until it is settled', () => {
    const { acks, target } = fakeChannel();
    const coalescer = new AckCoalescer(target);
    for (const tag of [1, 2, 3]) coalescer.track(message(tag));
    coalescer.settled(message(2), true);
    coalescer.settled(message(3), true);
    coalescer.flush();
    expect(acks).to.deep.equal([]);
    coalescer.settled(message(1), true);
    coalescer.flush();
    expect(acks).to.deep.equal([[3, true]]);
  });

  it('When deliveries were retried or dead-lettered one by one, then the run passes over them and never acks them again', () => {
    const { acks, target } = fakeChannel();
    const coalescer = new AckCoalescer(target);
    for (const tag of [1, 2, 3]) coalescer.track(message(tag));
    coalescer.settled(message(1), true);
    coalescer.settled(message(2), true);
    coalescer.settled(message(3), false);
    coalescer.flush();
    expect(acks).to.deep.equal([[2, true]]);
    coalescer.track(message(4));
    coalescer.settled(message(4), false);
    coalescer.flush();
    expect(acks).to.deep.equal([[2, true]]);
  });

  it('When the channel has closed, then nothing is acked (the broker redelivers)', () => {
    const { acks, target } = fakeChannel();
    const coalescer = new AckCoalescer(target);
    coalescer.track(message(1));
    coalescer.settled(message(1), true);
    target.open = false;
    coalescer.flush();
    expect(acks).to.deep.equal([]);
  });
});

describe('Batching (pure logic)', () => {
  it('When items arrive, then a full batch starts at once, a partial one after the linger, and no more than inFlight run', async () => {
    const started: number[][] = [];
    const release: Array<() => void> = [];
    const batcher = new Batcher<number>({ maxBatch: 3, lingerMs: 20, inFlight: 1, accepting: () => true }, (batch) => {
      started.push(batch);
      return new Promise<void>((resolve) => release.push(resolve));
    });
    for (const n of [1, 2, 3]) batcher.add(n);
    expect(started).to.deep.equal([[1, 2, 3]]);
    for (const n of [4, 5]) batcher.add(n);
    await tick(40);
    // The only slot is busy: 4 and 5 wait for it, however long the linger.
    expect(started).to.have.length(1);
    expect(batcher.waiting).to.equal(2);
    release.shift()!();
    await tick();
    expect(started).to.deep.equal([
      [1, 2, 3],
      [4, 5],
    ]);
    release.shift()!();
    await tick();
    batcher.add(6);
    expect(started).to.have.length(2);
    await tick(40);
    expect(started).to.deep.equal([[1, 2, 3], [4, 5], [6]]);
  });

  it('When accepting stops (the channel died, the process stops), then waiting items are left where they are', async () => {
    let accepting = true;
    const started: number[][] = [];
    const batcher = new Batcher<number>({ maxBatch: 2, lingerMs: 5, inFlight: 2, accepting: () => accepting }, async (batch) => void started.push(batch));
    batcher.add(1);
    accepting = false;
    await tick(20);
    expect(started).to.deep.equal([]);
    expect(batcher.waiting).to.equal(1);
  });
});
