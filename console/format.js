// How times, durations and event kinds read on the console.

const pad = (n, width = 2) => String(n).padStart(width, '0');

/** hh:mm:ss, local time. */
export function clock(at) {
  const d = new Date(at);
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** YYYY-MM-DD hh:mm:ss.mmm, local time. */
export function dateTime(at) {
  if (!at) return '—';
  const d = new Date(at);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${clock(d)}.${pad(d.getMilliseconds(), 3)}`;
}

/** hh:mm:ss today, MM-DD hh:mm before, local time: short enough for a table column (the full time goes in its title). */
export function shortDateTime(at) {
  if (!at) return '—';
  const d = new Date(at);
  if (d.toDateString() === new Date().toDateString()) return clock(d);
  return `${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${clock(d).slice(0, 5)}`;
}

/** A duration in the unit that reads best: "12 ms", "1.25 s", "3 min 4 s". */
export function duration(ms) {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
  const minutes = Math.floor(ms / 60_000);
  if (minutes < 60) return `${minutes} min ${Math.round((ms % 60_000) / 1000)} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

/** "+12 ms": how long after `start` the event happened. */
export const sinceStart = (start, at) => `+${duration(Math.max(0, Date.parse(at) - Date.parse(start)))}`;

/** A value for <input type="datetime-local" step="1"> from an ISO instant, and back. */
export function toLocalInput(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${clock(d)}`;
}
export function fromLocalInput(value) {
  if (!value) return '';
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? value : d.toISOString();
}

/** Sagas that release an order's seats on purpose (its owner cancelled, it expired, it was refunded): not failures. */
export const RELEASE_TYPES = ['cancel', 'expiry', 'refund'];
export const isRelease = (type) => RELEASE_TYPES.includes(type);

const FAILURES = ['step.failed', 'listener.failed', 'listener.dead-lettered'];
const DONE = ['step.done', 'saga.completed'];

/**
 * A timeline event's colour family: failure (red), compensation (amber), done (green), release
 * (blue), or plain progress. In a release saga the compensation machinery is the release itself.
 */
export function eventFamily(kind, release = false) {
  if (FAILURES.includes(kind)) return 'failure';
  if (kind.startsWith('release.')) return 'release';
  if (DONE.includes(kind)) return 'done';
  if (kind.startsWith('compensation.') || kind.startsWith('dead-letter.') || kind.startsWith('listener.') || kind === 'saga.compensated') {
    return release ? 'release' : 'compensation';
  }
  return 'progress';
}

/** "listener.dead-lettered" → "listener dead-lettered". */
export const kindText = (kind) => kind.replace('.', ' ');
