import type { RedisClient } from '../db/redis';
import type { Logger } from '../observability/logger';
import type { Clock } from '../support/time';
import type { SeatHolds } from './seat-holds';
import { SEAT_SCRIPTS, showKeys, type SeatScript, type ShowKeys } from './seat-scripts';

/**
 * The fast view of seats, in Redis (its keys and scripts: ./seat-scripts). The database
 * (seat_holds) is the truth; this view lets a request learn "taken" without touching the
 * database, and holds a list of seats atomically in one Lua call.
 *
 * Redis keeps nothing on disk here, so the view can vanish at any time; every script answers
 * NOT_LOADED then, and the view is rebuilt from the database before it is used again.
 */

type ScriptReply = Array<string>;

type ScriptCommand = (...keysAndArgs: string[]) => Promise<unknown>;

export interface SeatInventoryDeps {
  redis: RedisClient;
  holds: SeatHolds;
  namespace: string;
  logger: Logger;
  clock: Clock;
  /**
   * After a rebuild (the view vanished: Redis lost its data), async reservations wait this long,
   * so orders still in the queue are persisted (or dropped) before their seats, absent from the
   * database so far, could be promised to someone else.
   */
  settleMs?: number;
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
  private readonly rebuilding = new Map<string, Promise<void>>();

  constructor(private readonly deps: SeatInventoryDeps) {
    const { redis } = deps;
    for (const { name, keys, lua } of Object.values(SEAT_SCRIPTS)) {
      if (!(name in redis)) redis.defineCommand(name, { numberOfKeys: keys.length, lua });
    }
  }

  /** The keys of a show's view (and of the user's repeat-submit slot on it), by name. */
  keys(showId: string, userId: string | null = null): ShowKeys {
    return showKeys(this.deps.namespace, showId, userId);
  }

  /** Runs a script on a show's keys (those it names, in its order) with `args`. */
  private run<T>(script: SeatScript, showId: string, args: string[], userId: string | null = null): Promise<T> {
    const keys = this.keys(showId, userId);
    const command = (this.deps.redis as unknown as Record<string, ScriptCommand>)[script.name];
    return command.call(this.deps.redis, ...script.keys.map((name) => keys[name]), ...args) as Promise<T>;
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
    const reply = await this.withLoadedView(showId, () => this.run<ScriptReply>(SEAT_SCRIPTS.RESERVE_SEATS, showId, args, request.userId));
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
    await this.run(SEAT_SCRIPTS.CONFIRM_PERSISTED, showId, [
      String(orders.length),
      ...orders.map((o) => o.orderId),
      ...orders.flatMap((o) => o.seatIds.flatMap((seatId) => [seatId, o.orderId])),
    ]);
  }

  /** Reservations of a show still pending since before `olderThanMs` (epoch ms), oldest first. */
  async pendingReservations(showId: string, olderThanMs: number, limit: number): Promise<PendingReservation[]> {
    const { pending, reservations } = this.keys(showId);
    const scored = await this.deps.redis.zrangebyscore(pending, '-inf', `(${olderThanMs}`, 'WITHSCORES', 'LIMIT', 0, limit);
    if (scored.length === 0) return [];
    const orderIds = scored.filter((_, i) => i % 2 === 0);
    const entries = await this.deps.redis.hmget(reservations, ...orderIds);
    return orderIds.map((orderId, i) => {
      const [userId = '', seats = ''] = (entries[i] ?? '').split('|');
      return { orderId, userId, seatIds: seats ? seats.split(',') : [], reservedAtMs: Number(scored[2 * i + 1]) };
    });
  }

  /** How many async reservations of a show are pending. */
  async pendingCount(showId: string): Promise<number> {
    return this.deps.redis.zcard(this.keys(showId).pending);
  }

  /** Holds all of `seatIds` for the order, or none of them. Holding again for the same order is a no-op. */
  async hold(showId: string, orderId: string, seatIds: string[]): Promise<HoldResult> {
    const reply = await this.withLoadedView(showId, () => this.run<ScriptReply>(SEAT_SCRIPTS.HOLD_SEATS, showId, [orderId, ...seatIds]));
    return reply[0] === 'OK' ? { ok: true } : { ok: false, taken: reply.slice(1) };
  }

  /** Seats among `seatIds` that are not free in the view. */
  async takenAmong(showId: string, seatIds: string[]): Promise<string[]> {
    const reply = await this.withLoadedView(showId, () => this.run<ScriptReply>(SEAT_SCRIPTS.TAKEN_AMONG, showId, seatIds));
    return reply.slice(1);
  }

  /**
   * Of `seatIds`, those that are not seats of this show. The view holds every seat of the show
   * (free or held) and seats never change once a show exists, so it answers without the database.
   */
  async unknownAmong(showId: string, seatIds: string[]): Promise<string[]> {
    const reply = await this.withLoadedView(showId, () => this.run<ScriptReply>(SEAT_SCRIPTS.UNKNOWN_AMONG, showId, seatIds));
    return reply.slice(1);
  }

  /**
   * Frees the seats of `seatIds` that this order holds in the view, and ends its reservation (and
   * the user's repeat-submit slot, when `userId` is given and the slot is this order's). When the
   * view is absent there is nothing to free: it is rebuilt from the database, which is released first.
   */
  async release(showId: string, orderId: string, seatIds: string[], userId: string | null = null): Promise<number> {
    const released = await this.run<number>(SEAT_SCRIPTS.RELEASE_SEATS, showId, [orderId, ...seatIds], userId);
    return Math.max(0, released);
  }

  /** Brings the view in line with holds the database has and the view missed. */
  async markHeld(showId: string, holders: Array<{ seatId: string; orderId: string }>): Promise<void> {
    if (holders.length === 0) return;
    await this.run(
      SEAT_SCRIPTS.MARK_HELD,
      showId,
      holders.flatMap((h) => [h.seatId, h.orderId]),
    );
  }

  /**
   * Loads the view of a show from the database if it is absent (one load per process at a time).
   * A new show's view (`fresh`) takes async orders at once; a rebuilt one after `settleMs`.
   */
  async ensureLoaded(showId: string, options: { fresh?: boolean } = {}): Promise<void> {
    const inProgress = this.rebuilding.get(showId);
    if (inProgress) return inProgress;
    const settleMs = this.deps.settleMs ?? 0;
    const acceptFrom = options.fresh || settleMs === 0 ? 0 : this.deps.clock.now() + settleMs;
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
    if ((await this.deps.redis.exists(this.keys(showId).meta)) === 1) return;
    const seats = await this.deps.holds.seatsOfShow(showId);
    if (seats.length === 0) throw new Error(`show ${showId} has no seats`);
    const free = seats.filter((s) => s.orderId === null).map((s) => s.seatId);
    const held = seats.filter((s) => s.orderId !== null).flatMap((s) => [s.seatId, s.orderId as string]);
    const loaded = await this.run<number>(SEAT_SCRIPTS.LOAD_SHOW, showId, [String(seats.length), String(acceptFrom), String(free.length), ...free, ...held]);
    if (loaded !== 1) return;
    await this.catchUpAfterLoad(showId, new Map(seats.filter((s) => s.orderId !== null).map((s) => [s.seatId, s.orderId as string])));
    this.deps.logger.info('seat view loaded from the database', {
      showId,
      free: free.length,
      held: held.length / 2,
      asyncOrdersFrom: acceptFrom > 0 ? new Date(acceptFrom).toISOString() : 'now',
    });
  }

  /**
   * Holds committed or released between the database read and the load reached a view that did
   * not exist yet (their own update of the view was a no-op): read the holds again and apply the
   * difference. Anything committed after this read updates the loaded view itself.
   */
  private async catchUpAfterLoad(showId: string, snapshot: Map<string, string>): Promise<void> {
    const current = await this.deps.holds.holdsOfShow(showId);
    const added = [...current].filter(([seatId, orderId]) => snapshot.get(seatId) !== orderId).map(([seatId, orderId]) => ({ seatId, orderId }));
    await this.markHeld(showId, added);
    for (const [seatId, orderId] of snapshot) {
      if (current.get(seatId) !== orderId) await this.release(showId, orderId, [seatId]);
    }
  }
}
