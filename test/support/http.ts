import { checkResponse, contract, contractReport } from './openapi-contract';

/** A small HTTP client for the service under test: JSON in and out, status and body back. */
export interface Reply<T = any> {
  status: number;
  body: T;
  headers: Headers;
}

export const ADMIN = { 'X-Admin-Token': 'test-admin-token-0123456789' };

export class Api {
  constructor(readonly baseUrl: string) {}

  async request<T = any>(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<Reply<T>> {
    const res = await fetch(`${this.baseUrl}${path}`, {
      method,
      headers: { ...(body === undefined ? {} : { 'Content-Type': 'application/json' }), ...headers },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await res.text();
    let parsed: any = text;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      // not JSON (e.g. /metrics)
    }
    // Every answer is checked against /openapi.json (reported and failed at the end of the run).
    checkResponse(method, `${this.baseUrl}${path}`, res.status, res.headers, text, parsed);
    return { status: res.status, body: parsed, headers: res.headers };
  }

  get<T = any>(path: string, headers?: Record<string, string>) {
    return this.request<T>('GET', path, undefined, headers);
  }

  post<T = any>(path: string, body?: unknown, headers?: Record<string, string>) {
    return this.request<T>('POST', path, body, headers);
  }

  put<T = any>(path: string, body?: unknown, headers?: Record<string, string>) {
    return this.request<T>('PUT', path, body, headers);
  }

  // --- the steps most tests start with ---

  async createUser(name = 'buyer', payPassword = 'pay-secret') {
    const reply = await this.post('/api/users', { name, payPassword });
    if (reply.status !== 201) throw new Error(`user creation failed: ${reply.status} ${JSON.stringify(reply.body)}`);
    const user = reply.body as { id: string; name: string; token: string };
    return { ...user, auth: { Authorization: `Bearer ${user.token}` } };
  }

  async credit(userId: string, amountCents: number) {
    const reply = await this.post(`/api/admin/users/${userId}/credits`, { amountCents }, ADMIN);
    if (reply.status !== 200) throw new Error(`credit failed: ${reply.status} ${JSON.stringify(reply.body)}`);
    return reply.body as { id: string; balanceCents: number };
  }

  async createShow(rows: number, seatsPerRow: number, priceCents = 2_500) {
    const reply = await this.post('/api/admin/shows', { title: 'Test show', startsAt: '2030-01-01T20:00:00Z', priceCents, rows, seatsPerRow }, ADMIN);
    if (reply.status !== 201) throw new Error(`show creation failed: ${reply.status} ${JSON.stringify(reply.body)}`);
    const seats = await this.get(`/api/shows/${reply.body.id}/seats`);
    return { ...(reply.body as { id: string; seatsTotal: number; priceCents: number }), seatIds: (seats.body as Array<{ id: string }>).map((s) => s.id) };
  }

  /** Places an order (201 expected) and returns it. */
  async order(buyer: { auth: Record<string, string> }, showId: string, seatIds: string[]) {
    const reply = await this.post('/api/orders', { showId, seatIds }, buyer.auth);
    if (reply.status !== 201) throw new Error(`order failed: ${reply.status} ${JSON.stringify(reply.body)}`);
    return reply.body as { id: string; totalCents: number; expiresAt: string; sagaId: string; seatIds: string[] };
  }

  pay(buyer: { auth: Record<string, string> }, orderId: string, payPassword = 'pay-secret', headers: Record<string, string> = {}) {
    return this.post(`/api/orders/${orderId}/pay`, { payPassword }, { ...buyer.auth, ...headers });
  }

  async balance(buyer: { auth: Record<string, string> }): Promise<number> {
    return (await this.get('/api/users/me', buyer.auth)).body.balanceCents;
  }

  setFailpoint(name: string, setting: { action: string; ms?: number; count?: number }) {
    return this.put(`/api/admin/failpoints/${name}`, setting, ADMIN);
  }

  saga(sagaId: string) {
    return this.get(`/api/admin/sagas/${sagaId}`, ADMIN);
  }
}

/** Polls `check` until it returns a truthy value, or fails after `timeoutMs`. */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined | null | false>, timeoutMs = 10_000, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

// Root-level (this module is loaded by the spec files): after the whole run, every answer that did
// not match the OpenAPI document fails it, named with its method, path, status and the mismatch.
if (typeof after === 'function') {
  after(function openApiContract() {
    console.log(`      ${contractReport()}`);
    if (contract.violations.length === 0) return;
    const lines = contract.violations.slice(0, 50).map((v) => `  ${v.method} ${v.path} ${v.status}: ${v.problem}`);
    throw new Error(`${contract.violations.length} response(s) do not match /openapi.json:\n${lines.join('\n')}`);
  });
}
