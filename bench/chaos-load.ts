import { AsyncLocalStorage } from 'node:async_hooks';
import { randomBytes } from 'node:crypto';

/**
 * The chaos drill's load: buyers doing what buyers do (sync and async orders, pays with right and
 * wrong pay passwords, Idempotency-Key retries, cancels, refunds, reads) from a bounded number of
 * loops, plus an operator switching failpoints on and off. Every request is counted by status
 * class and by outcome, and every acknowledged write is remembered, so that the checks can prove
 * afterwards that none of them was lost.
 */

export interface Reply {
  status: number;
  body: any;
  headers: Headers;
}

const STATUS_CLASSES = ['2xx', '3xx', '4xx', '5xx', 'no answer'] as const;
export type StatusClass = (typeof STATUS_CLASSES)[number];

/** Digits and ids out, so that the same failure with different ids counts as one. */
const normalise = (text: string) => text.replace(/\d+/g, 'N').slice(0, 160);

export class Recorder {
  total = 0;
  readonly classes: Record<StatusClass, number> = { '2xx': 0, '3xx': 0, '4xx': 0, '5xx': 0, 'no answer': 0 };
  status503 = 0;
  /** 503 answers without a Retry-After header (the contract wants one on every route). */
  status503WithoutRetryAfter = 0;
  /** `<op> <status> <code>` → count. */
  readonly outcomes = new Map<string, number>();
  /** 5xx other than 503 that no failpoint explains: `<op> <status> <code>: <message>` → count. */
  readonly unexpected5xx = new Map<string, number>();
  /** SAGA_FAILED answers caused by a failpoint the drill set (the contract's answer to it). */
  injectedSagaFailed = 0;
  /** Requests that got no HTTP answer (connection refused or reset, timeout), by error. */
  readonly noAnswer = new Map<string, number>();

  record(op: string, reply: Reply | null, error?: unknown): void {
    this.total += 1;
    if (!reply) {
      this.classes['no answer'] += 1;
      const cause = (error as { cause?: { code?: string; message?: string } })?.cause;
      const key = `${op}: ${cause?.code ?? (error as Error)?.name ?? 'error'}`;
      this.noAnswer.set(key, (this.noAnswer.get(key) ?? 0) + 1);
      return;
    }
    const statusClass = `${Math.floor(reply.status / 100)}xx` as StatusClass;
    if (statusClass in this.classes) this.classes[statusClass] += 1;
    const code: string = reply.body?.error?.code ?? '';
    const key = `${op} ${reply.status}${code ? ` ${code}` : ''}`;
    this.outcomes.set(key, (this.outcomes.get(key) ?? 0) + 1);
    if (reply.status === 503) {
      this.status503 += 1;
      if (!reply.headers.get('retry-after')) this.status503WithoutRetryAfter += 1;
    } else if (reply.status >= 500) {
      const message = String(reply.body?.error?.message ?? (typeof reply.body === 'string' ? reply.body : ''));
      if (code === 'SAGA_FAILED' && /failpoint \S+ fired/.test(message)) this.injectedSagaFailed += 1;
      else {
        const detail = `${op} ${reply.status} ${code || '-'}: ${normalise(message)}`;
        this.unexpected5xx.set(detail, (this.unexpected5xx.get(detail) ?? 0) + 1);
      }
    }
  }

  /** 5xx answers other than 503, injected or not. */
  get other5xx(): number {
    return this.classes['5xx'] - this.status503;
  }

  get unexpected5xxCount(): number {
    return [...this.unexpected5xx.values()].reduce((a, b) => a + b, 0);
  }

  line(): string {
    return `${this.total} requests (${STATUS_CLASSES.map((c) => `${c} ${this.classes[c]}`).join(', ')}; 503 ${this.status503}, other 5xx ${this.other5xx})`;
  }
}

/** What the service acknowledged, to be found in the database afterwards. */
export class Acks {
  /** Orders answered 201 (sync, or async with waitMs). */
  readonly orders = new Set<string>();
  /** Async orders answered 202 or 201: each must end persisted or released (invariant 5). */
  readonly accepted = new Set<string>();
  readonly paid = new Set<string>();
  readonly refunded = new Set<string>();
  readonly cancelled = new Set<string>();
  /** Per user id: credits answered 200, and credits whose outcome is unknown (5xx, no answer). */
  readonly credits = new Map<string, { acked: number; unknown: number }>();
  /** Idempotency-Key retries whose answer differed from the first one's. */
  readonly idempotencyMismatches: string[] = [];
  idempotentRetries = 0;
  idempotentReplays = 0;
}

interface TrackedOrder {
  id: string;
  showId: string;
  status: string;
  at: number;
}

export interface Buyer {
  index: number;
  id: string;
  auth: Record<string, string>;
  payPassword: string;
  orders: Map<string, TrackedOrder>;
  /** Async orders answered 202 and not seen persisted or released yet. */
  queued: Map<string, TrackedOrder>;
}

export interface ShowModel {
  id: string;
  title: string;
  priceCents: number;
  seatIds: string[];
  /** Where async orders go more often (small, sells out). */
  flash: boolean;
  available: string[];
  availableAt: number;
  refreshing: boolean;
}

export interface LoadOptions {
  adminToken: string;
  /** API base URLs that run now (the drill kills and restarts them). */
  liveApis: () => string[];
  allApis: () => string[];
  paymentWindowMs: number;
  requestTimeoutMs?: number;
}

const pick = <T>(items: readonly T[]): T => items[Math.floor(Math.random() * items.length)];
const chance = (p: number) => Math.random() < p;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
/** Per load loop: did its last step get a 503 (then it waits as Retry-After says)? */
const loopState = new AsyncLocalStorage<{ got503: boolean }>();

const FAILPOINTS: Array<{ name: string; setting: { action: string; count?: number; ms?: number } }> = [
  { name: 'order.order_add.after', setting: { action: 'throw', count: 3 } },
  { name: 'order.seats_hold.after', setting: { action: 'throw', count: 2 } },
  { name: 'order.calc_money.before', setting: { action: 'throw', count: 2 } },
  { name: 'pay.pay_money.after', setting: { action: 'throw', count: 3 } },
  { name: 'pay.pay_order_update.after', setting: { action: 'throw', count: 2 } },
  { name: 'order.seats_hold.before', setting: { action: 'delay', ms: 1_500, count: 3 } },
];

export class Load {
  readonly recorder = new Recorder();
  readonly acks = new Acks();
  readonly buyers: Buyer[] = [];
  readonly shows: ShowModel[] = [];
  failpointsArmed = 0;
  private readonly runId = randomBytes(3).toString('hex');
  private keySeq = 0;
  private stopped = false;
  inFlight = 0;

  constructor(private readonly options: LoadOptions) {}

  private base(): string {
    const live = this.options.liveApis();
    return pick(live.length > 0 ? live : this.options.allApis());
  }

  private get admin() {
    return { 'X-Admin-Token': this.options.adminToken };
  }

  /** One HTTP request, counted under `op`; null when no answer came (bounded by a timeout). */
  async call(op: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}, base = this.base()): Promise<Reply | null> {
    this.inFlight += 1;
    try {
      const res = await fetch(`${base}${path}`, {
        method,
        headers: { ...(body === undefined ? {} : { 'Content-Type': 'application/json' }), ...headers },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(this.options.requestTimeoutMs ?? 20_000),
      });
      const text = await res.text();
      let parsed: any = text;
      try {
        parsed = text ? JSON.parse(text) : undefined;
      } catch {
        // not JSON
      }
      const reply = { status: res.status, body: parsed, headers: res.headers };
      this.recorder.record(op, reply);
      if (reply.status === 503) {
        const state = loopState.getStore();
        if (state) state.got503 = true;
      }
      return reply;
    } catch (err) {
      this.recorder.record(op, null, err);
      return null;
    } finally {
      this.inFlight -= 1;
    }
  }

  // --- seeding -------------------------------------------------------------------------------

  /** `count` buyers over the API (pay passwords are hashed with argon2: a few at a time). */
  async seedBuyers(count: number): Promise<void> {
    const create = async (index: number) => {
      const payPassword = `chaos-pay-${index}-${this.runId}`;
      for (let attempt = 0; attempt < 10; attempt++) {
        const reply = await this.call('seed', 'POST', '/api/users', { name: `chaos buyer ${index}`, payPassword });
        if (reply?.status === 201) {
          this.buyers.push({
            index,
            id: reply.body.id,
            auth: { Authorization: `Bearer ${reply.body.token}` },
            payPassword,
            orders: new Map(),
            queued: new Map(),
          });
          return;
        }
        await sleep(500);
      }
      throw new Error(`could not create buyer ${index}`);
    };
    for (let i = 0; i < count; i += 8) await Promise.all(Array.from({ length: Math.min(8, count - i) }, (_, j) => create(i + j)));
    this.buyers.sort((a, b) => a.index - b.index);
    // Most buyers can afford a few orders; every eighth is poor (INSUFFICIENT_BALANCE answers).
    await Promise.all(this.buyers.map((buyer) => this.credit(buyer, buyer.index % 8 === 7 ? 1_500 : 40_000 + 1_000 * (buyer.index % 10), 'seed')));
  }

  /** Credits over the admin API, remembering what was acknowledged and what is unknown. */
  async credit(buyer: Buyer, amountCents: number, op = 'credit'): Promise<void> {
    const reply = await this.call(op, 'POST', `/api/admin/users/${buyer.id}/credits`, { amountCents }, this.admin);
    const entry = this.acks.credits.get(buyer.id) ?? { acked: 0, unknown: 0 };
    if (reply?.status === 200) entry.acked += amountCents;
    else if (!reply || reply.status >= 500) entry.unknown += amountCents;
    this.acks.credits.set(buyer.id, entry);
  }

  async seedShow(title: string, rows: number, seatsPerRow: number, priceCents: number, flash: boolean): Promise<void> {
    for (let attempt = 0; attempt < 10; attempt++) {
      const reply = await this.call('seed', 'POST', '/api/admin/shows', { title, startsAt: '2031-06-01T20:00:00Z', priceCents, rows, seatsPerRow }, this.admin);
      if (reply?.status === 201) {
        const seats = await this.call('seed', 'GET', `/api/shows/${reply.body.id}/seats`);
        if (seats?.status !== 200) throw new Error(`could not read the seats of show ${reply.body.id}`);
        const seatIds = (seats.body as Array<{ id: string }>).map((s) => s.id);
        this.shows.push({ id: reply.body.id, title, priceCents, seatIds, flash, available: seatIds, availableAt: Date.now(), refreshing: false });
        return;
      }
      await sleep(500);
    }
    throw new Error(`could not create show ${title}`);
  }

  // --- the load ------------------------------------------------------------------------------

  /** `concurrency` loops until stop(); each request waits for its answer (bounded by a timeout). */
  async run(concurrency: number, maxRequests: number): Promise<void> {
    const loop = async () => {
      const state = { got503: false };
      while (!this.stopped && this.recorder.total < maxRequests) {
        state.got503 = false;
        await loopState.run(state, () => this.step()).catch(() => {});
        // A well-behaved client: after a 503 it waits what Retry-After says (1 s), with jitter.
        await sleep(state.got503 ? 1_000 + Math.random() * 1_000 : 5 + Math.random() * 25);
      }
    };
    await Promise.all(Array.from({ length: concurrency }, loop));
  }

  stop(): void {
    this.stopped = true;
  }

  private async step(): Promise<void> {
    const buyer = pick(this.buyers);
    const roll = Math.random() * 100;
    if (roll < 22) return this.syncOrder(buyer);
    if (roll < 36) return this.asyncOrder(buyer);
    if (roll < 41) return this.pollQueued(buyer);
    if (roll < 63) return this.pay(buyer);
    if (roll < 68) return this.cancel(buyer);
    if (roll < 74) return this.refund(buyer);
    if (roll < 76) return this.credit(buyer, 5_000);
    return this.read(buyer);
  }

  private nextKey(kind: string): string {
    return `chaos-${this.runId}-${kind}-${++this.keySeq}`;
  }

  /** Free seats of `show` as last read (refreshed in the background every 1.5 s at most). */
  private seatsFor(show: ShowModel, n: number): string[] {
    if (Date.now() - show.availableAt > 1_500 && !show.refreshing) {
      show.refreshing = true;
      void this.call('seats', 'GET', `/api/shows/${show.id}/seats`)
        .then((reply) => {
          if (reply?.status === 200) {
            show.available = (reply.body as Array<{ id: string; status: string }>).filter((s) => s.status === 'available').map((s) => s.id);
            show.availableAt = Date.now();
          }
        })
        .finally(() => (show.refreshing = false));
    }
    // Now and then any seat, free or not: SEATS_TAKEN races on purpose.
    const pool = chance(0.2) || show.available.length < n ? show.seatIds : show.available;
    const chosen = new Set<string>();
    for (let i = 0; i < n * 4 && chosen.size < n; i++) chosen.add(pick(pool));
    return [...chosen];
  }

  /** Sends the same request twice with one Idempotency-Key (in a row, or both at once), compares. */
  private async withRetry(op: string, path: string, body: unknown, auth: Record<string, string>, kind: string): Promise<Reply[]> {
    const headers = { ...auth, 'Idempotency-Key': this.nextKey(kind) };
    const replies = chance(0.3)
      ? await Promise.all([this.call(op, 'POST', path, body, headers), this.call(`${op} (retry)`, 'POST', path, body, headers)])
      : [await this.call(op, 'POST', path, body, headers)];
    if (replies.length === 1) replies.push(await this.call(`${op} (retry)`, 'POST', path, body, headers));
    this.acks.idempotentRetries += 1;
    const [a, b] = replies;
    if (b?.headers.get('idempotent-replayed') === 'true' || a?.headers.get('idempotent-replayed') === 'true') this.acks.idempotentReplays += 1;
    // Only answers that are stored compare: a 5xx or a 429 is not stored (the retry runs again).
    const stored = (r: Reply | null) => r && r.status < 500 && r.status !== 429 && r.body?.error?.code !== 'IDEMPOTENCY_KEY_IN_PROGRESS';
    if (stored(a) && stored(b)) {
      const idOf = (r: Reply) => r.body?.id ?? r.body?.error?.code;
      if (a!.status !== b!.status || idOf(a!) !== idOf(b!)) {
        this.acks.idempotencyMismatches.push(`${path}: ${a!.status} ${idOf(a!)} then ${b!.status} ${idOf(b!)}`);
      }
    }
    return replies.filter((r): r is Reply => r !== null);
  }

  private async syncOrder(buyer: Buyer): Promise<void> {
    const show = pick(this.shows.filter((s) => !s.flash));
    const body = { showId: show.id, seatIds: this.seatsFor(show, 1 + Math.floor(Math.random() * 3)) };
    const replies = chance(0.3)
      ? await this.withRetry('order', '/api/orders', body, buyer.auth, 'order')
      : [await this.call('order', 'POST', '/api/orders', body, buyer.auth)];
    for (const reply of replies) {
      if (reply?.status === 201) {
        this.acks.orders.add(reply.body.id);
        buyer.orders.set(reply.body.id, { id: reply.body.id, showId: show.id, status: 'PENDING_PAYMENT', at: Date.now() });
      }
    }
  }

  private async asyncOrder(buyer: Buyer): Promise<void> {
    const show = chance(0.6) ? pick(this.shows.filter((s) => s.flash)) : pick(this.shows);
    const body = chance(0.5)
      ? { showId: show.id, quantity: 1 + Math.floor(Math.random() * 2) }
      : { showId: show.id, seatIds: this.seatsFor(show, 1 + Math.floor(Math.random() * 2)) };
    const waitMs = chance(0.3) ? 2_000 : 0;
    const reply = await this.call(
      waitMs ? 'async order (waitMs)' : 'async order',
      'POST',
      `/api/orders/async${waitMs ? `?waitMs=${waitMs}` : ''}`,
      body,
      buyer.auth,
    );
    if (reply?.status === 202) {
      this.acks.accepted.add(reply.body.orderId);
      buyer.queued.set(reply.body.orderId, { id: reply.body.orderId, showId: show.id, status: 'QUEUED', at: Date.now() });
    } else if (reply?.status === 201) {
      this.acks.accepted.add(reply.body.id);
      this.acks.orders.add(reply.body.id);
      buyer.orders.set(reply.body.id, { id: reply.body.id, showId: show.id, status: reply.body.status, at: Date.now() });
    }
  }

  /** GET an async order answered 202: 200 once persisted, 404 with RELEASED when released. */
  private async pollQueued(buyer: Buyer): Promise<void> {
    const queued = [...buyer.queued.values()];
    if (queued.length === 0) return this.read(buyer);
    const order = pick(queued);
    const reply = await this.call('poll async order', 'GET', `/api/orders/${order.id}`, undefined, buyer.auth);
    if (reply?.status === 200) {
      buyer.queued.delete(order.id);
      buyer.orders.set(order.id, { ...order, status: reply.body.status, at: order.at });
    } else if ((reply?.status === 404 && reply.body?.error?.details?.reservation === 'RELEASED') || Date.now() - order.at > 30_000) {
      buyer.queued.delete(order.id);
    }
  }

  private ordersIn(buyer: Buyer, status: string): TrackedOrder[] {
    return [...buyer.orders.values()].filter((o) => o.status === status);
  }

  private async pay(buyer: Buyer): Promise<void> {
    // Mostly orders still within their window; now and then an old one (ORDER_NOT_PAYABLE once expired).
    const pending = this.ordersIn(buyer, 'PENDING_PAYMENT').filter((o) => chance(0.1) || Date.now() - o.at < this.options.paymentWindowMs);
    if (pending.length === 0) return this.syncOrder(buyer);
    const order = pick(pending);
    // Four buyers in forty are clumsy: now and then they mistype their pay password six times in a
    // row, then type it right (TOO_MANY_ATTEMPTS: the lock-out counts every wrong one).
    if (buyer.index % 10 === 3 && chance(0.3)) {
      for (let i = 0; i < 6; i++)
        await this.call('pay (wrong password burst)', 'POST', `/api/orders/${order.id}/pay`, { payPassword: `typo-${i}` }, buyer.auth);
    }
    const wrong = chance(0.05);
    const body = { payPassword: wrong ? `wrong-${buyer.payPassword}` : buyer.payPassword };
    const path = `/api/orders/${order.id}/pay`;
    const op = wrong ? 'pay (wrong password)' : 'pay';
    const replies = chance(0.3) ? await this.withRetry(op, path, body, buyer.auth, 'pay') : [await this.call(op, 'POST', path, body, buyer.auth)];
    for (const reply of replies) {
      if (!reply) continue;
      if (reply.status === 200) {
        this.acks.paid.add(order.id);
        order.status = 'PAID';
      } else if (
        reply.status === 409 &&
        reply.body?.error?.code === 'ORDER_NOT_PAYABLE' &&
        reply.body.error.details?.status &&
        order.status === 'PENDING_PAYMENT'
      ) {
        order.status = reply.body.error.details.status;
      } else if (reply.status === 402) {
        order.status = 'UNAFFORDABLE'; // stop trying this one
      }
    }
  }

  private async cancel(buyer: Buyer): Promise<void> {
    const pending = this.ordersIn(buyer, 'PENDING_PAYMENT').concat(this.ordersIn(buyer, 'UNAFFORDABLE'));
    if (pending.length === 0) return this.read(buyer);
    const order = pick(pending);
    const reply = await this.call('cancel', 'POST', `/api/orders/${order.id}/cancel`, undefined, buyer.auth);
    if (reply?.status === 200) {
      this.acks.cancelled.add(order.id);
      order.status = 'CANCELLED';
    } else if (reply?.status === 409) order.status = reply.body?.error?.details?.status ?? 'GONE';
  }

  private async refund(buyer: Buyer): Promise<void> {
    const paid = this.ordersIn(buyer, 'PAID');
    if (paid.length === 0) return this.pay(buyer);
    const order = pick(paid);
    const reply = await this.call('refund', 'POST', `/api/orders/${order.id}/refund`, undefined, buyer.auth);
    if (reply?.status === 200) {
      this.acks.refunded.add(order.id);
      order.status = 'REFUNDED';
    }
  }

  private async read(buyer: Buyer): Promise<void> {
    const roll = Math.random();
    if (roll < 0.3) await this.call('read', 'GET', '/api/users/me', undefined, buyer.auth);
    else if (roll < 0.55) await this.call('read', 'GET', '/api/orders', undefined, buyer.auth);
    else if (roll < 0.8) await this.call('read', 'GET', `/api/shows/${pick(this.shows).id}`);
    else {
      const orders = [...buyer.orders.values()];
      if (orders.length === 0) await this.call('read', 'GET', '/api/users/me', undefined, buyer.auth);
      else await this.call('read', 'GET', `/api/orders/${pick(orders).id}`, undefined, buyer.auth);
    }
  }

  /**
   * The operator: every `everyMs`, one failpoint on every API process that runs (a count of hits,
   * or a delay), switched off again `forMs` later.
   */
  async failpoints(everyMs: number, forMs: number): Promise<void> {
    await sleep(everyMs / 2);
    while (!this.stopped) {
      const { name, setting } = pick(FAILPOINTS);
      const apis = this.options.liveApis();
      await Promise.all(apis.map((base) => this.call('failpoint', 'PUT', `/api/admin/failpoints/${name}`, setting, this.admin, base)));
      this.failpointsArmed += 1;
      await sleep(forMs);
      await Promise.all(apis.map((base) => this.call('failpoint', 'PUT', `/api/admin/failpoints/${name}`, { action: 'off' }, this.admin, base)));
      for (let waited = 0; waited < everyMs - forMs && !this.stopped; waited += 250) await sleep(250);
    }
  }
}
