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
 *   <ns>:show:{id}:meta   hash {loaded, total, soldOut?, acceptFrom?}; absent = the view must be
 *                         rebuilt from the database
 *   <ns>:show:{id}:pending        sorted set: async reservations not yet resolved, scored by time
 *   <ns>:show:{id}:reservations   hash order id -> "userId|seat,seat,..." of each pending reservation
 *   <ns>:show:{id}:recent:<user>  the user's last async order on the show (repeat-submit window)
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
if redis.call('ZCARD', KEYS[1]) == 0 then redis.call('HSET', KEYS[3], 'soldOut', '1') end
return {'OK'}
`;

// Releases only the seats this order holds: a seat re-held by another order since is untouched.
// Also ends the order's reservation (if it was an async one), clears the sold-out flag when a seat
// came back, and frees the user's repeat-submit slot (KEYS[6]) if this order holds it.
const RELEASE_SEATS = `
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('HDEL', KEYS[5], ARGV[1])
if redis.call('GET', KEYS[6]) == ARGV[1] then redis.call('DEL', KEYS[6]) end
if redis.call('EXISTS', KEYS[3]) == 0 then return -1 end
local released = 0
for i = 2, #ARGV do
  if redis.call('HGET', KEYS[2], ARGV[i]) == ARGV[1] then
    redis.call('HDEL', KEYS[2], ARGV[i])
    redis.call('ZADD', KEYS[1], ARGV[i], ARGV[i])
    released = released + 1
  end
end
if released > 0 then redis.call('HDEL', KEYS[3], 'soldOut') end
return released
`;

// The async path's one call (KEYS[6]: the user's repeat-submit key). ARGV: order, user, now (ms),
// repeat window (ms, 0 = off), quantity (0 = the seat ids that follow), seat ids.
// Checks, in order: view loaded, view settled after a rebuild, sold-out flag, repeat submit, the
// seats; then holds them, logs the reservation (pending, with its time) and takes the repeat slot.
const RESERVE_SEATS = `
if redis.call('EXISTS', KEYS[3]) == 0 then return {'NOT_LOADED'} end
local meta = redis.call('HMGET', KEYS[3], 'soldOut', 'acceptFrom')
local now = tonumber(ARGV[3])
if meta[2] and tonumber(meta[2]) > now then return {'SETTLING', meta[2]} end
if meta[1] == '1' then return {'SOLD_OUT'} end
local window = tonumber(ARGV[4])
if window > 0 then
  local previous = redis.call('GET', KEYS[6])
  if previous then return {'DUPLICATE', previous} end
end
local free = redis.call('ZCARD', KEYS[1])
if free == 0 then
  redis.call('HSET', KEYS[3], 'soldOut', '1')
  return {'SOLD_OUT'}
end
local order = ARGV[1]
local quantity = tonumber(ARGV[5])
local seats = {}
if quantity > 0 then
  if free < quantity then return {'NOT_ENOUGH', tostring(free)} end
  seats = redis.call('ZRANGE', KEYS[1], 0, quantity - 1)
else
  local unknown, taken = {'UNKNOWN'}, {'TAKEN'}
  for i = 6, #ARGV do
    if redis.call('ZSCORE', KEYS[1], ARGV[i]) then seats[#seats + 1] = ARGV[i]
    elseif redis.call('HEXISTS', KEYS[2], ARGV[i]) == 1 then taken[#taken + 1] = ARGV[i]
    else unknown[#unknown + 1] = ARGV[i] end
  end
  if #unknown > 1 then return unknown end
  if #taken > 1 then return taken end
end
for i = 1, #seats do
  redis.call('ZREM', KEYS[1], seats[i])
  redis.call('HSET', KEYS[2], seats[i], order)
end
if free == #seats then redis.call('HSET', KEYS[3], 'soldOut', '1') end
redis.call('ZADD', KEYS[4], now, order)
redis.call('HSET', KEYS[5], order, ARGV[2] .. '|' .. table.concat(seats, ','))
if window > 0 then redis.call('SET', KEYS[6], order, 'PX', window) end
table.insert(seats, 1, 'OK')
return seats
`;

// After the database committed async orders: their reservations are resolved, and the view shows
// their seats held by them (it may have been rebuilt meanwhile). ARGV: k, k order ids, then
// (seat, order) pairs.
const CONFIRM_PERSISTED = `
local k = tonumber(ARGV[1])
for i = 2, k + 1 do
  redis.call('ZREM', KEYS[4], ARGV[i])
  redis.call('HDEL', KEYS[5], ARGV[i])
end
if redis.call('EXISTS', KEYS[3]) == 0 then return 0 end
for i = k + 2, #ARGV, 2 do
  redis.call('ZREM', KEYS[1], ARGV[i])
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
end
if redis.call('ZCARD', KEYS[1]) == 0 then redis.call('HSET', KEYS[3], 'soldOut', '1') end
return 1
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

// ARGV: total, acceptFrom (ms; 0 = at once), number of free seats F, F free seat ids, then
// (seat, order) pairs of held seats. Loads only when the view is absent: a concurrent rebuild or a
// live view is never overwritten.
const LOAD_SHOW = `
if redis.call('EXISTS', KEYS[3]) == 1 then return 0 end
redis.call('DEL', KEYS[1], KEYS[2])
local freeCount = tonumber(ARGV[3])
for i = 4, 3 + freeCount do redis.call('ZADD', KEYS[1], ARGV[i], ARGV[i]) end
for i = 4 + freeCount, #ARGV, 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
redis.call('HSET', KEYS[3], 'loaded', '1', 'total', ARGV[1])
if tonumber(ARGV[2]) > 0 then redis.call('HSET', KEYS[3], 'acceptFrom', ARGV[2]) end
if freeCount == 0 then redis.call('HSET', KEYS[3], 'soldOut', '1') end
return 1
`;

// Marks seats held by the given orders (the database said so): ARGV pairs (seat, order).
const MARK_HELD = `
if redis.call('EXISTS', KEYS[3]) == 0 then return 0 end
for i = 1, #ARGV, 2 do
  redis.call('ZREM', KEYS[1], ARGV[i])
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
end
if redis.call('ZCARD', KEYS[1]) == 0 then redis.call('HSET', KEYS[3], 'soldOut', '1') end
return 1
`;

type ScriptReply = Array<string>;
type ShowKeys = [free: string, holds: string, meta: string, pending: string, reservations: string];

interface InventoryCommands {
  seatHold(...keysAndArgs: string[]): Promise<ScriptReply>;
  seatRelease(...keysAndArgs: string[]): Promise<number>;
  seatReserve(...keysAndArgs: string[]): Promise<ScriptReply>;
  seatConfirmPersisted(...keysAndArgs: string[]): Promise<number>;
  seatTakenAmong(...keysAndArgs: string[]): Promise<ScriptReply>;
  seatUnknownAmong(...keysAndArgs: string[]): Promise<ScriptReply>;
  seatLoadShow(...keysAndArgs: string[]): Promise<number>;
  seatMarkHeld(...keysAndArgs: string[]): Promise<number>;
}

export type HoldResult = { ok: true } | { ok: false; taken: string[] };

/** The answer of the async path's one script call. */
export type ReserveResult =
  | { ok: true; seatIds: string[] }
  | { ok: false; reason: 'SOLD_OUT' }
  | { ok: false; reason: 'DUPLICATE'; previousOrderId: string }
  | { ok: false; reason: 'TAKEN'; seatIds: string[] }
  | { ok: false; reason: 'UNKNOWN'; seatIds: string[] }
  | { ok: false; reason: 'NOT_ENOUGH'; available: number }
  | { ok: false; reason: 'SETTLING'; acceptFromMs: number };

export interface ReserveRequest {
  orderId: string;
  userId: string;
  nowMs: number;
  repeatWindowMs: number;
  /** Either a number of seats (the best free ones) or the seats themselves. */
  quantity?: number;
  seatIds?: string[];
}

export interface PendingReservation {
  orderId: string;
  userId: string;
  seatIds: string[];
  reservedAtMs: number;
}

export class SeatInventory {
  private readonly redis: RedisClient & InventoryCommands;
  private readonly rebuilding = new Map<string, Promise<void>>();

  /**
   * `settleMs`: after a rebuild (the view vanished: Redis lost its data), async reservations wait
   * this long, so orders still in the queue are persisted (or dropped) before their seats, absent
   * from the database so far, could be promised to someone else.
   */
  constructor(
    redis: RedisClient,
    private readonly db: Db,
    private readonly namespace: string,
    private readonly logger: Logger,
    private readonly settleMs = 0,
  ) {
    const scripts: Array<[name: keyof InventoryCommands, lua: string, keys: number]> = [
      ['seatHold', HOLD_SEATS, 5],
      ['seatRelease', RELEASE_SEATS, 6],
      ['seatReserve', RESERVE_SEATS, 6],
      ['seatConfirmPersisted', CONFIRM_PERSISTED, 5],
      ['seatTakenAmong', TAKEN_AMONG, 5],
      ['seatUnknownAmong', UNKNOWN_AMONG, 5],
      ['seatLoadShow', LOAD_SHOW, 5],
      ['seatMarkHeld', MARK_HELD, 5],
    ];
    for (const [name, lua, numberOfKeys] of scripts) {
      if (!(name in redis)) redis.defineCommand(name, { numberOfKeys, lua });
    }
    this.redis = redis as RedisClient & InventoryCommands;
  }

  keys(showId: string): ShowKeys {
    const base = this.base(showId);
    return [`${base}:free`, `${base}:holds`, `${base}:meta`, `${base}:pending`, `${base}:reservations`];
  }

  /** The key of a user's repeat-submit slot on a show (same hash slot as the show's view). */
  recentKey(showId: string, userId: string | null): string {
    return `${this.base(showId)}:recent:${userId ?? '-'}`;
  }

  private base(showId: string): string {
    return `${this.namespace}:show:{${showId}}`;
  }

  /**
   * The async path: in one script call, checks the view is settled, the sold-out flag, the
   * user's repeat-submit window and the seats (or picks the best `quantity` free ones), then holds
   * them for the order and logs the reservation as pending.
   */
  async reserve(showId: string, request: ReserveRequest): Promise<ReserveResult> {
    const args = [
      request.orderId,
      request.userId,
      String(request.nowMs),
      String(request.repeatWindowMs),
      String(request.quantity ?? 0),
      ...(request.seatIds ?? []),
    ];
    const reply = await this.withLoadedView(showId, () =>
      this.redis.seatReserve(...this.keys(showId), this.recentKey(showId, request.userId), ...args),
    );
    const [status, ...rest] = reply;
    switch (status) {
      case 'OK':
        return { ok: true, seatIds: rest };
      case 'SOLD_OUT':
        return { ok: false, reason: 'SOLD_OUT' };
      case 'DUPLICATE':
        return { ok: false, reason: 'DUPLICATE', previousOrderId: rest[0] };
      case 'TAKEN':
      case 'UNKNOWN':
        return { ok: false, reason: status, seatIds: rest };
      case 'NOT_ENOUGH':
        return { ok: false, reason: 'NOT_ENOUGH', available: Number(rest[0]) };
      case 'SETTLING':
        return { ok: false, reason: 'SETTLING', acceptFromMs: Number(rest[0]) };
      default:
        throw new Error(`unexpected reserve reply ${status}`);
    }
  }

  /** After the orders are committed: their reservations are resolved and the view shows their holds. */
  async confirmPersisted(showId: string, orders: Array<{ orderId: string; seatIds: string[] }>): Promise<void> {
    if (orders.length === 0) return;
    await this.redis.seatConfirmPersisted(
      ...this.keys(showId),
      String(orders.length),
      ...orders.map((o) => o.orderId),
      ...orders.flatMap((o) => o.seatIds.flatMap((seatId) => [seatId, o.orderId])),
    );
  }

  /** Reservations of a show still pending since before `olderThanMs` (epoch ms), oldest first. */
  async pendingReservations(showId: string, olderThanMs: number, limit: number): Promise<PendingReservation[]> {
    const [, , , pending, reservations] = this.keys(showId);
    const scored = await this.redis.zrangebyscore(pending, '-inf', `(${olderThanMs}`, 'WITHSCORES', 'LIMIT', 0, limit);
    if (scored.length === 0) return [];
    const orderIds = scored.filter((_, i) => i % 2 === 0);
    const entries = await this.redis.hmget(reservations, ...orderIds);
    return orderIds.map((orderId, i) => {
      const [userId = '', seats = ''] = (entries[i] ?? '').split('|');
      return { orderId, userId, seatIds: seats ? seats.split(',') : [], reservedAtMs: Number(scored[2 * i + 1]) };
    });
  }

  /** How many async reservations of a show are pending. */
  async pendingCount(showId: string): Promise<number> {
    return this.redis.zcard(this.keys(showId)[3]);
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
   * Frees the seats of `seatIds` that this order holds in the view, and ends its reservation (and
   * the user's repeat-submit slot, when `userId` is given and the slot is this order's). When the
   * view is absent there is nothing to free: it is rebuilt from the database, which is released first.
   */
  async release(showId: string, orderId: string, seatIds: string[], userId: string | null = null): Promise<number> {
    const released = await this.redis.seatRelease(...this.keys(showId), this.recentKey(showId, userId), orderId, ...seatIds);
    return Math.max(0, released);
  }

  /** Brings the view in line with holds the database has and the view missed. */
  async markHeld(showId: string, holders: Array<{ seatId: string; orderId: string }>): Promise<void> {
    if (holders.length === 0) return;
    await this.redis.seatMarkHeld(...this.keys(showId), ...holders.flatMap((h) => [h.seatId, h.orderId]));
  }

  /**
   * Loads the view of a show from the database if it is absent (one load per process at a time).
   * A new show's view (`fresh`) takes async orders at once; a rebuilt one after `settleMs`.
   */
  async ensureLoaded(showId: string, options: { fresh?: boolean } = {}): Promise<void> {
    const inProgress = this.rebuilding.get(showId);
    if (inProgress) return inProgress;
    const acceptFrom = options.fresh || this.settleMs === 0 ? 0 : Date.now() + this.settleMs;
    const rebuild = this.loadFromDatabase(showId, acceptFrom).finally(() => this.rebuilding.delete(showId));
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

  private async loadFromDatabase(showId: string, acceptFrom: number): Promise<void> {
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
    const loaded = await this.redis.seatLoadShow(...this.keys(showId), String(seats.length), String(acceptFrom), String(free.length), ...free, ...held);
    if (loaded === 1) await this.catchUpAfterLoad(showId, new Map(seats.filter((s) => s.order_id !== null).map((s) => [s.id, s.order_id as string])));
    if (loaded === 1) {
      this.logger.info('seat view loaded from the database', {
        showId,
        free: free.length,
        held: held.length / 2,
        asyncOrdersFrom: acceptFrom > 0 ? new Date(acceptFrom).toISOString() : 'now',
      });
    }
  }

  /**
   * Holds committed or released between the database read and the load reached a view that did
   * not exist yet (their own update of the view was a no-op): read the holds again and apply the
   * difference. Anything committed after this read updates the loaded view itself.
   */
  private async catchUpAfterLoad(showId: string, snapshot: Map<string, string>): Promise<void> {
    const now: Array<{ seat_id: string; order_id: string }> = await this.db('seat_holds').where({ show_id: showId }).select('seat_id', 'order_id');
    const current = new Map(now.map((h) => [h.seat_id, h.order_id]));
    const added = now.filter((h) => snapshot.get(h.seat_id) !== h.order_id).map((h) => ({ seatId: h.seat_id, orderId: h.order_id }));
    await this.markHeld(showId, added);
    for (const [seatId, orderId] of snapshot) {
      if (current.get(seatId) !== orderId) await this.release(showId, orderId, [seatId]);
    }
  }
}
