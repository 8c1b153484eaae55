import type { Db } from '../db/database';
import type { RedisClient } from '../db/redis';
import type { Logger } from '../observability/logger';

/**
 * The fast view of seats, in Redis. The database (seat_holds) is the truth; this view lets a
 * request learn "taken" without touching the database, and holds a list of seats atomically in
 * one Lua call. Per show, all keys share the hash tag {showId}, so each script touches one slot
 * (Redis Cluster ready):
 *
 *   <ns>:show:{id}:free   sorted set of free seat ids, scored by seat id (best seats first)
 *   <ns>:show:{id}:holds  hash seat id -> order id holding it (held or sold)
 *   <ns>:show:{id}:meta   hash {loaded, total}; absent = the view must be rebuilt from the database
 *
 * Redis keeps nothing on disk here, so the view can vanish at any time; every script answers
 * NOT_LOADED then, and the view is rebuilt from the database before it is used again.
 */

const HOLD_SEATS = `
if redis.call('EXISTS', KEYS[3]) == 0 then return {'NOT_LOADED'} end
local order = ARGV[1]
local taken = {}
for i = 2, #ARGV do
  if not redis.call('ZSCORE', KEYS[1], ARGV[i]) and redis.call('HGET', KEYS[2], ARGV[i]) ~= order then
    taken[#taken + 1] = ARGV[i]
  end
end
if #taken > 0 then
  table.insert(taken, 1, 'TAKEN')
  return taken
end
for i = 2, #ARGV do
  redis.call('ZREM', KEYS[1], ARGV[i])
  redis.call('HSET', KEYS[2], ARGV[i], order)
end
return {'OK'}
`;

// Releases only the seats this order holds: a seat re-held by another order since is untouched.
const RELEASE_SEATS = `
if redis.call('EXISTS', KEYS[3]) == 0 then return -1 end
local released = 0
for i = 2, #ARGV do
  if redis.call('HGET', KEYS[2], ARGV[i]) == ARGV[1] then
    redis.call('HDEL', KEYS[2], ARGV[i])
    redis.call('ZADD', KEYS[1], ARGV[i], ARGV[i])
    released = released + 1
  end
end
return released
`;

const TAKEN_AMONG = `
if redis.call('EXISTS', KEYS[3]) == 0 then return {'NOT_LOADED'} end
local taken = {'OK'}
for i = 1, #ARGV do
  if not redis.call('ZSCORE', KEYS[1], ARGV[i]) then taken[#taken + 1] = ARGV[i] end
end
return taken
`;

// Seats that are neither free nor held in the view: not seats of this show.
const UNKNOWN_AMONG = `
if redis.call('EXISTS', KEYS[3]) == 0 then return {'NOT_LOADED'} end
local unknown = {'OK'}
for i = 1, #ARGV do
  if not redis.call('ZSCORE', KEYS[1], ARGV[i]) and redis.call('HEXISTS', KEYS[2], ARGV[i]) == 0 then
    unknown[#unknown + 1] = ARGV[i]
  end
end
return unknown
`;

// ARGV: total, number of free seats F, F free seat ids, then (seat, order) pairs of held seats.
// Loads only when the view is absent: a concurrent rebuild or a live view is never overwritten.
const LOAD_SHOW = `
if redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
redis.call('DEL', KEYS[1], KEYS[2])
local freeCount = tonumber(ARGV[2])
for i = 3, 2 + freeCount do redis.call('ZADD', KEYS[1], ARGV[i], ARGV[i]) end
for i = 3 + freeCount, #ARGV, 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
redis.call('HSET', KEYS[3], 'loaded', '1', 'total', ARGV[1])
return 1
`;

// Marks seats held by the given orders (the database said so): ARGV pairs (seat, order).
const MARK_HELD = `
if redis.call('EXISTS', KEYS[3]) == 0 then return 0 end
for i = 1, #ARGV, 2 do
  redis.call('ZREM', KEYS[1], ARGV[i])
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
end
return 1
`;

type ScriptReply = Array<string>;

interface InventoryCommands {
  seatHold(free: string, holds: string, meta: string, ...args: string[]): Promise<ScriptReply>;
  seatRelease(free: string, holds: string, meta: string, ...args: string[]): Promise<number>;
  seatTakenAmong(free: string, holds: string, meta: string, ...args: string[]): Promise<ScriptReply>;
  seatUnknownAmong(free: string, holds: string, meta: string, ...args: string[]): Promise<ScriptReply>;
  seatLoadShow(free: string, holds: string, meta: string, ...args: string[]): Promise<number>;
  seatMarkHeld(free: string, holds: string, meta: string, ...args: string[]): Promise<number>;
}

export type HoldResult = { ok: true } | { ok: false; taken: string[] };

export class SeatInventory {
  private readonly redis: RedisClient & InventoryCommands;
  private readonly rebuilding = new Map<string, Promise<void>>();

  constructor(
    redis: RedisClient,
    private readonly db: Db,
    private readonly namespace: string,
    private readonly logger: Logger,
  ) {
    for (const [name, lua] of Object.entries({
      seatHold: HOLD_SEATS,
      seatRelease: RELEASE_SEATS,
      seatTakenAmong: TAKEN_AMONG,
      seatUnknownAmong: UNKNOWN_AMONG,
      seatLoadShow: LOAD_SHOW,
      seatMarkHeld: MARK_HELD,
    })) {
      if (!(name in redis)) redis.defineCommand(name, { numberOfKeys: 3, lua });
    }
    this.redis = redis as RedisClient & InventoryCommands;
  }

  keys(showId: string): [free: string, holds: string, meta: string] {
    const base = `${this.namespace}:show:{${showId}}`;
    return [`${base}:free`, `${base}:holds`, `${base}:meta`];
  }

  /** Holds all of `seatIds` for the order, or none of them. Holding again for the same order is a no-op. */
  async hold(showId: string, orderId: string, seatIds: string[]): Promise<HoldResult> {
    const reply = await this.withLoadedView(showId, () => this.redis.seatHold(...this.keys(showId), orderId, ...seatIds));
    return reply[0] === 'OK' ? { ok: true } : { ok: false, taken: reply.slice(1) };
  }

  /** Seats among `seatIds` that are not free in the view. */
  async takenAmong(showId: string, seatIds: string[]): Promise<string[]> {
    const reply = await this.withLoadedView(showId, () => this.redis.seatTakenAmong(...this.keys(showId), ...seatIds));
    return reply.slice(1);
  }

  /**
   * Of `seatIds`, those that are not seats of this show. The view holds every seat of the show
   * (free or held) and seats never change once a show exists, so it answers without the database.
   */
  async unknownAmong(showId: string, seatIds: string[]): Promise<string[]> {
    const reply = await this.withLoadedView(showId, () => this.redis.seatUnknownAmong(...this.keys(showId), ...seatIds));
    return reply.slice(1);
  }

  /**
   * Frees the seats of `seatIds` that this order holds in the view. When the view is absent there
   * is nothing to free: it is rebuilt from the database, which is released first.
   */
  async release(showId: string, orderId: string, seatIds: string[]): Promise<number> {
    if (seatIds.length === 0) return 0;
    const released = await this.redis.seatRelease(...this.keys(showId), orderId, ...seatIds);
    return Math.max(0, released);
  }

  /** Brings the view in line with holds the database has and the view missed. */
  async markHeld(showId: string, holders: Array<{ seatId: string; orderId: string }>): Promise<void> {
    if (holders.length === 0) return;
    await this.redis.seatMarkHeld(...this.keys(showId), ...holders.flatMap((h) => [h.seatId, h.orderId]));
  }

  /** Loads the view of a show from the database if it is absent (one load per process at a time). */
  async ensureLoaded(showId: string): Promise<void> {
    const inProgress = this.rebuilding.get(showId);
    if (inProgress) return inProgress;
    const rebuild = this.loadFromDatabase(showId).finally(() => this.rebuilding.delete(showId));
    this.rebuilding.set(showId, rebuild);
    return rebuild;
  }

  private async withLoadedView<T extends ScriptReply>(showId: string, script: () => Promise<T>): Promise<T> {
    let reply = await script();
    for (let attempt = 0; reply[0] === 'NOT_LOADED' && attempt < 3; attempt++) {
      await this.ensureLoaded(showId);
      reply = await script();
    }
    if (reply[0] === 'NOT_LOADED') throw new Error(`seat view of show ${showId} could not be loaded`);
    return reply;
  }

  private async loadFromDatabase(showId: string): Promise<void> {
    const [, , meta] = this.keys(showId);
    if ((await this.redis.exists(meta)) === 1) return;
    const seats: Array<{ id: string; order_id: string | null }> = await this.db('seats')
      .leftJoin('seat_holds', 'seat_holds.seat_id', 'seats.id')
      .where('seats.show_id', showId)
      .select('seats.id', 'seat_holds.order_id')
      .orderBy('seats.id');
    if (seats.length === 0) throw new Error(`show ${showId} has no seats`);
    const free = seats.filter((s) => s.order_id === null).map((s) => s.id);
    const held = seats.filter((s) => s.order_id !== null).flatMap((s) => [s.id, s.order_id as string]);
    const loaded = await this.redis.seatLoadShow(...this.keys(showId), String(seats.length), String(free.length), ...free, ...held);
    if (loaded === 1) this.logger.info('seat view loaded from the database', { showId, free: free.length, held: held.length / 2 });
  }
}
