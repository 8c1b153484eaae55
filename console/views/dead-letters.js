import { html, useState } from '../vendor/preact-htm.js';
import { api } from '../api.js';
import { dateTime, shortDateTime } from '../format.js';
import { CHANGED, go, usePoll } from '../hooks.js';
import { ConfirmDialog, ErrorNote, SagaLink, StatusBadge } from '../ui.js';

const LISTENERS = ['seat-release', 'order-delete', 'balance-restore', 'expiry', 'order-writer'];

const plural = (n, word) => `${n} ${word}${n === 1 ? '' : 's'}`;

/** What a redrive will send: one request per listener, naming the chosen sagas (or a whole listener's queue). */
function planOf(letters, wholeListener) {
  if (wholeListener) return { count: letters.length, byListener: { [wholeListener]: letters.length }, requests: [{ listener: wholeListener }] };
  const byListener = {};
  for (const d of letters) (byListener[d.listener] ??= new Set()).add(d.sagaId);
  return {
    count: letters.length,
    byListener: Object.fromEntries(Object.entries(byListener).map(([l]) => [l, letters.filter((d) => d.listener === l).length])),
    requests: Object.entries(byListener).map(([listener, ids]) => ({ listener, sagaIds: [...ids] })),
  };
}

/** The dead-letter queues of every listener, read without consuming them; chosen ones go back to their work queue. */
export function DeadLetters({ query }) {
  const listener = LISTENERS.includes(query.listener) ? query.listener : '';
  const list = usePoll(() => api.deadLetters(listener || undefined), 5000, [listener]);
  const [selected, setSelected] = useState(() => new Set());
  const [plan, setPlan] = useState(null);
  const [busy, setBusy] = useState(false);
  const [result, setResult] = useState(null);

  const letters = list.data ?? [];
  const selectable = letters.filter((d) => d.sagaId);
  const chosen = letters.filter((d) => selected.has(d.id));
  const allChosen = selectable.length > 0 && chosen.length === selectable.length;
  const toggle = (id) => {
    const next = new Set(selected);
    next.has(id) ? next.delete(id) : next.add(id);
    setSelected(next);
  };
  const toggleAll = () => setSelected(allChosen ? new Set() : new Set(selectable.map((d) => d.id)));

  const redrive = async () => {
    setBusy(true);
    const total = { redriven: 0, dropped: 0, errors: [] };
    for (const request of plan.requests) {
      try {
        const answer = await api.redriveDeadLetters(request);
        total.redriven += answer.redriven;
        total.dropped += answer.dropped;
      } catch (err) {
        total.errors.push(`${request.listener}: ${err.message} (${err.status} ${err.code})`);
      }
    }
    setResult({ ...total, asked: plan.count, listeners: Object.keys(plan.byListener) });
    setBusy(false);
    setPlan(null);
    setSelected(new Set());
    // The listeners take a moment to apply what went back: read the queues now and once more shortly.
    changed();
    setTimeout(changed, 1000);
  };
  const changed = () => {
    list.reload();
    dispatchEvent(new Event(CHANGED));
  };

  return html`
    <section class="panel" aria-labelledby="dlq-title">
      <div class="panel-head">
        <h2 id="dlq-title">Dead letters <span class=${`count ${letters.length ? 'count-red' : ''}`} data-testid="dlq-count">${list.data ? letters.length : '…'}</span></h2>
        <div class="toolbar">
          <label for="dlq-listener">Listener</label>
          <select id="dlq-listener" value=${listener} onChange=${(e) => go(e.currentTarget.value ? `#/dead-letters?listener=${e.currentTarget.value}` : '#/dead-letters')} data-testid="dlq-listener">
            <option value="">every listener</option>
            ${LISTENERS.map((l) => html`<option value=${l}>${l}</option>`)}
          </select>
          <button type="button" class="button" onClick=${list.reload} data-testid="dlq-refresh">Refresh</button>
          ${listener && letters.length > 0 &&
          html`<button type="button" class="button" onClick=${() => setPlan(planOf(letters, listener))} data-testid="dlq-redrive-all">Redrive all ${letters.length} of ${listener}</button>`}
          <button type="button" class="button button-primary" disabled=${chosen.length === 0} onClick=${() => setPlan(planOf(chosen))} data-testid="dlq-redrive-selected">
            Redrive selected${chosen.length ? ` (${chosen.length})` : ''}
          </button>
        </div>
      </div>
      <p class="muted">Messages a listener gave up on after its retries (read without taking them off the queue). A redrive sends them back to their work queue; one whose saga is COMPENSATED already is dropped instead.</p>
      ${result &&
      html`<p class=${`alert ${result.errors.length ? 'alert-error' : 'alert-success'}`} role="status" data-testid="redrive-result" data-redriven=${result.redriven} data-dropped=${result.dropped}>
        <strong>Redrive of ${plural(result.asked, 'message')} (${result.listeners.join(', ')}):</strong>${' '}
        ${result.redriven} redriven (back on their work queue), ${result.dropped} dropped (saga already compensated).
        ${result.errors.length > 0 && html` Failed: ${result.errors.join('; ')}`}
        <button type="button" class="link-button" onClick=${() => setResult(null)}>Dismiss</button>
      </p>`}
      <${ErrorNote} error=${list.error} what="The dead letters could not be read" />
      ${list.data && letters.length === 0 && html`<p class="empty" data-testid="dlq-empty">No dead letter${listener ? ` for ${listener}` : ''}: every message was handled.</p>`}
      ${letters.length > 0 &&
      html`<div class="table-wrap">
        <table class="table" data-testid="dead-letters">
          <thead>
            <tr>
              <th class="check"><input type="checkbox" checked=${allChosen} disabled=${selectable.length === 0} onChange=${toggleAll} aria-label="Select every dead letter" data-testid="dlq-select-all" /></th>
              <th>Dead-lettered</th><th>Listener</th><th>Saga</th><th>Tag</th><th>Reason</th><th class="num">Deliveries</th><th>Last error</th><th>Saga status</th>
            </tr>
          </thead>
          <tbody>
            ${letters.map(
              (d) => html`<tr data-testid="dead-letter-row" data-id=${d.id} data-saga-id=${d.sagaId} class=${selected.has(d.id) ? 'row-selected' : ''}>
                <td class="check">
                  <input type="checkbox" checked=${selected.has(d.id)} disabled=${!d.sagaId} onChange=${() => toggle(d.id)}
                    aria-label=${d.sagaId ? `Select the dead letter of saga ${d.sagaId}` : 'No saga id: use “Redrive all” of its listener'} data-testid="dlq-select" />
                </td>
                <td class="nowrap" title=${dateTime(d.deadLetteredAt)}>${shortDateTime(d.deadLetteredAt)}</td>
                <td class="mono nowrap">${d.listener}</td>
                <td>${d.sagaId ? html`<${SagaLink} id=${d.sagaId} />` : html`<span class="muted">—</span>`}</td>
                <td class="mono">${d.tag ?? '—'}</td>
                <td class="nowrap">${d.reason}</td>
                <td class="num">${d.deliveries}</td>
                <td class="truncate" title=${d.error ?? ''}><code class="error-text">${d.error ?? '—'}</code></td>
                <td>${d.sagaStatus ? html`<${StatusBadge} status=${d.sagaStatus} type="order" />` : '—'}</td>
              </tr>`,
            )}
          </tbody>
        </table>
      </div>`}
    </section>
    ${plan &&
    html`<${ConfirmDialog} title=${`Redrive ${plural(plan.count, 'message')}?`} confirmLabel=${`Redrive ${plural(plan.count, 'message')}`} busy=${busy} onConfirm=${redrive} onCancel=${() => setPlan(null)} testid="dlq-confirm">
      <p data-testid="dlq-confirm-summary">
        ${plural(plan.count, 'dead-lettered message')} of ${Object.entries(plan.byListener).map(([l, n]) => `${l} (${n})`).join(', ')} will go back to ${Object.keys(plan.byListener).length === 1 ? 'its work queue' : 'their work queues'} and be delivered again.
      </p>
      <p>A message whose saga is COMPENSATED already is dropped instead: there is nothing left to undo. Either way it leaves the dead-letter queue. Compensation is exactly-once, so a message that arrives twice takes effect once.</p>
      ${plan.requests.some((r) => r.sagaIds) && html`<p class="muted small">Sagas: ${plan.requests.flatMap((r) => r.sagaIds ?? []).slice(0, 12).join(', ')}${plan.count > 12 ? ', …' : ''}</p>`}
    <//>`}`;
}
