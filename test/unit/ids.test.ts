import { expect } from 'chai';
import { IdGenerator, isIdString, snowflakeTime } from '../../src/support/ids';

describe('Snowflake ids', () => {
  it('When many ids are minted in the same millisecond, then they are unique and increasing', () => {
    const clock = { now: () => Date.UTC(2026, 10, 23) };
    const ids = new IdGenerator(7, clock);
    const minted = Array.from({ length: 10_000 }, () => BigInt(ids.next()));
    expect(new Set(minted).size).to.equal(minted.length);
    for (let i = 1; i < minted.length; i++) expect(minted[i] > minted[i - 1]).to.equal(true);
  });

  it('When the clock steps back, then ids still increase', () => {
    let now = Date.UTC(2026, 10, 23, 12);
    const ids = new IdGenerator(1, { now: () => now });
    const first = BigInt(ids.next());
    now -= 5_000;
    expect(BigInt(ids.next()) > first).to.equal(true);
  });

  it('When two workers mint at the same instant, then their ids differ', () => {
    const clock = { now: () => Date.UTC(2026, 10, 23) };
    expect(new IdGenerator(1, clock).next()).to.not.equal(new IdGenerator(2, clock).next());
  });

  it('When an id is minted today, then it exceeds 2^53 (so it must travel as a string) and encodes its time', () => {
    const at = Date.UTC(2026, 10, 23, 10, 0, 0);
    const id = new IdGenerator(3, { now: () => at }).next();
    expect(BigInt(id) > 2n ** 53n).to.equal(true);
    expect(snowflakeTime(id)).to.equal(at);
  });

  it('When a string is checked as an id, then only canonical unsigned 64-bit decimals pass', () => {
    for (const good of ['1', '42', '18446744073709551615']) expect(isIdString(good), good).to.equal(true);
    for (const bad of ['0', '01', '-1', '1.5', '1e3', ' 1', '', '18446744073709551616', 'abc']) expect(isIdString(bad), bad).to.equal(false);
  });

  it('When the worker id is out of range, then the generator refuses it', () => {
    expect(() => new IdGenerator(1024)).to.throw(RangeError);
  });
});
