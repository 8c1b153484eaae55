// The console's only way to the service: fetch with the admin token from sessionStorage.

const TOKEN_KEY = 'seat-saga.admin-token';

/** The admin token lives in this tab's sessionStorage only: never localStorage, a cookie or a URL. */
export const session = {
  token: () => sessionStorage.getItem(TOKEN_KEY),
  save: (token) => sessionStorage.setItem(TOKEN_KEY, token),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
};

/** An answer that is not 2xx, or no answer at all (status 0, code UNREACHABLE). */
export class ApiError extends Error {
  constructor(status, code, message, details) {
    super(message);
    this.status = status;
    this.code = code;
    this.details = details ?? null;
  }

  /** The 400's `{field, message}` list, as `{field: message}`. */
  get fieldErrors() {
    const issues = this.details?.issues ?? [];
    return Object.fromEntries(issues.map((issue) => [issue.field, issue.message]));
  }
}

let onUnauthorized = () => {};
/** Called when the service refuses the stored token (401): the app goes back to the login form. */
export function whenUnauthorized(handler) {
  onUnauthorized = handler;
}

async function request(method, path, { body, token = session.token(), signIn = false } = {}) {
  const headers = { Accept: 'application/json' };
  if (token) headers['X-Admin-Token'] = token;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), cache: 'no-store', credentials: 'omit' });
  } catch {
    throw new ApiError(0, 'UNREACHABLE', 'the service cannot be reached');
  }
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    // not JSON (a proxy's error page): the status says enough
  }
  if (res.ok) return data;
  const error = data?.error ?? {};
  const failure = new ApiError(res.status, error.code ?? `HTTP_${res.status}`, error.message ?? res.statusText, error.details);
  if (res.status === 401 && !signIn) onUnauthorized(failure);
  throw failure;
}

const query = (params) => {
  const search = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== undefined && v !== null && v !== ''));
  const text = search.toString();
  return text ? `?${text}` : '';
};
const id = (value) => encodeURIComponent(value);

export const api = {
  /** Checks a token typed at the login form (a 401 here is an answer, not a sign-out). */
  checkToken: (token) => request('GET', '/api/admin/overview', { token, signIn: true }),
  overview: () => request('GET', '/api/admin/overview'),
  sagas: (filters) => request('GET', `/api/admin/sagas${query(filters)}`),
  stats: () => request('GET', '/api/admin/sagas/stats'),
  saga: (sagaId) => request('GET', `/api/admin/sagas/${id(sagaId)}`),
  redriveSaga: (sagaId) => request('POST', `/api/admin/sagas/${id(sagaId)}/redrive`),
  deadLetters: (listener) => request('GET', `/api/admin/dead-letters${query({ listener })}`),
  redriveDeadLetters: (filter) => request('POST', '/api/admin/dead-letters/redrive', { body: filter }),
  show: (showId) => request('GET', `/api/shows/${id(showId)}`, { token: null }),
  seats: (showId) => request('GET', `/api/shows/${id(showId)}/seats`, { token: null }),
};
