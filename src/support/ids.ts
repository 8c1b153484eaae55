import type { Clock } from './time';
import { systemClock } from './time';

/** 2026-01-01T00:00:00Z: ids stay well below 2^63 for ~69 years after it. */
const EPOCH_MS = 1_767_225_600_000n;
const WORKER_BITS = 10n;
const SEQUENCE_BITS = 12n;
const MAX_SEQUENCE = (1n << SEQUENCE_BITS) - 1n;
export const MAX_WORKER_ID = Number((1n << WORKER_BITS) - 1n);

/**
 * Snowflake ids (41 bits of milliseconds, 10 of worker, 12 of sequence) for orders and sagas:
 * minted in-process, with no database round trip, unique across processes whose worker ids
 * differ, and ordered by time. They exceed 2^53, so they are strings outside this module.
 */
export class IdGenerator {
  private lastMs = -1n;
  private sequence = 0n;

  constructor(
    private readonly workerId: number,
    private readonly clock: Clock = systemClock,
  ) {
    if (!Number.isInteger(workerId) || workerId < 0 || workerId > MAX_WORKER_ID) {
      throw new RangeError(`worker id must be an integer in 0..${MAX_WORKER_ID}, got ${workerId}`);
    }
  }

  next(): string {
    let now = BigInt(this.clock.now());
    // A clock that steps back must not repeat ids: keep using the last millisecond.
    if (now < this.lastMs) now = this.lastMs;
    if (now === this.lastMs) {
      this.sequence = (this.sequence + 1n) & MAX_SEQUENCE;
      if (this.sequence === 0n) now = this.lastMs + 1n; // 4096 ids in one ms: borrow the next ms
    } else {
      this.sequence = 0n;
    }
    this.lastMs = now;
    const id = ((now - EPOCH_MS) << (WORKER_BITS + SEQUENCE_BITS)) | (BigInt(this.workerId) << SEQUENCE_BITS) | this.sequence;
    return id.toString();
  }
}

/** Milliseconds since the Unix epoch at which a snowflake id was minted. */
export function snowflakeTime(id: string): number {
  return Number((BigInt(id) >> (WORKER_BITS + SEQUENCE_BITS)) + EPOCH_MS);
}

/** Canonical decimal id strings: no sign, no leading zeros, below 2^64. */
export function isIdString(value: string): boolean {
  return /^[1-9]\d{0,19}$/.test(value) && BigInt(value) < 1n << 64n;
}

/** The smallest snowflake id minted at or after `ms` (ids are time-ordered: a time range is an id range). */
export function snowflakeFloor(ms: number): string {
  const offset = BigInt(Math.floor(ms)) - EPOCH_MS;
  return (offset > 0n ? offset << (WORKER_BITS + SEQUENCE_BITS) : 0n).toString();
}
