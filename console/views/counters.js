import { html, useEffect } from '../vendor/preact-htm.js';
import { clock } from '../format.js';

const number = (n) => (n === undefined || n === null ? '–' : Number(n).toLocaleString('en'));

function liveState({ data, error }) {
  if (error?.status === 0) return ['unreachable', 'Service unreachable'];
  if (error?.status === 503) return ['unavailable', 'Service unavailable (503)'];
  if (error) return ['error', `Error ${error.status} ${error.code}`];
  return data ? ['live', 'Live'] : ['loading', 'Loading…'];
}

function Counter({ label, value, testid, tone }) {
  return html`
    <div class=${`counter ${tone && value > 0 ? `counter-${tone}` : ''}`} data-testid=${testid}>
      <span class="counter-value" data-testid="counter-value">${number(value)}</span>
      <span class="counter-label">${label}</span>
    </div>`;
}

/** The on-sale counters, refreshed by the shell every few seconds; the last values stay, greyed, while the service is down. */
export function Counters({ poll }) {
  const { data, at } = poll;
  const [state, text] = liveState(poll);
  useEffect(() => {
    if (data) performance.mark('console:counters-visible');
  }, [Boolean(data)]);
  const byListener = Object.entries(data?.deadLetters.byListener ?? {});
  return html`
    <section class=${`counters ${state === 'live' ? '' : 'counters-stale'}`} aria-label="Live counters" data-testid="counters">
      <${Counter} label="orders, last minute" value=${data?.ordersAccepted.lastMinute} testid="counter-orders-minute" />
      <${Counter} label="orders, last hour" value=${data?.ordersAccepted.lastHour} testid="counter-orders-hour" />
      <${Counter} label="sagas running" value=${data?.sagas.running} testid="counter-running" />
      <${Counter} label="compensations in flight" value=${data?.compensationsInFlight} testid="counter-compensating" tone="amber" />
      <div class=${`counter counter-dlq ${data?.deadLetters.total > 0 ? 'counter-red' : ''}`} data-testid="counter-dead-letters">
        <div class="counter-main">
          <span class="counter-value" data-testid="counter-value">${number(data?.deadLetters.total)}</span>
          <span class="counter-label">dead letters</span>
        </div>
        <ul class="dlq-breakdown" aria-label="Dead letters by listener">
          ${byListener.map(([listener, n]) => html`<li class=${n > 0 ? 'dlq-nonzero' : ''} data-testid=${`dlq-${listener}`}><span>${listener}</span> <b>${number(n)}</b></li>`)}
        </ul>
      </div>
      <div class=${`live live-${state}`} data-testid="live-status" data-state=${state} role="status">
        <span class="live-text"><span class="live-dot" aria-hidden="true"></span>${text}</span>
        <span class="live-at" data-testid="updated-at">${at ? `updated ${clock(data?.at ?? at)}` : 'not updated yet'}</span>
      </div>
    </section>`;
}
