import { html, useState } from '../vendor/preact-htm.js';
import { api } from '../api.js';
import { dateTime, duration, eventFamily, isRelease, kindText, sinceStart } from '../format.js';
import { CHANGED, usePoll } from '../hooks.js';
import { ConfirmDialog, ErrorNote, SagaType, StatusBadge } from '../ui.js';

const FINAL = ['COMPLETED', 'COMPENSATED'];
const LISTENER_STATE = {
  pending: ['progress', 'pending: not delivered yet'],
  retrying: ['compensation', 'retrying'],
  'dead-lettered': ['failure', 'dead-lettered'],
  done: ['done', 'undone'],
  noop: ['done', 'nothing to undo'],
};

/** One saga: what it is, its timeline drawn event by event, each listener's progress, and its redrive. */
export function SagaDetail({ id }) {
  // Followed every 2 s until it ends (a redrive reloads it).
  const saga = usePoll(() => api.saga(id), (data) => (data && FINAL.includes(data.status) ? null : 2000), [id]);
  const data = saga.data;

  return html`
    <p><a href="#/sagas" class="back" data-testid="back-to-search">← Back to search</a></p>
    <${ErrorNote} error=${saga.error} what=${saga.error?.status === 404 ? `No saga ${id}` : 'The saga could not be read'} />
    ${data &&
    html`
      <${SagaHead} saga=${data} onRedriven=${saga.reload} />
      <div class="layout-two">
        <section class="panel" aria-labelledby="timeline-title">
          <h2 id="timeline-title">Timeline <span class="muted small">times after the saga’s start, ${dateTime(data.createdAt)}</span></h2>
          <${Timeline} saga=${data} />
        </section>
        <aside class="side">
          <${Listeners} saga=${data} />
          <${Legend} />
        </aside>
      </div>`}`;
}

function SagaHead({ saga, onRedriven }) {
  const [redriven, setRedriven] = useState(null);
  const release = isRelease(saga.type);
  const releaseLabel = saga.timeline.find((e) => e.kind === 'release.requested')?.label;
  const took = saga.finishedAt ? duration(Date.parse(saga.finishedAt) - Date.parse(saga.createdAt)) : null;
  return html`
    <section class="panel saga-head" data-testid="saga-head" data-saga-id=${saga.id}>
      <div class="saga-title">
        <h2>Saga <span class="mono" data-testid="saga-id">${saga.id}</span></h2>
        <${StatusBadge} status=${saga.status} type=${saga.type} />
        <span class="muted"><${SagaType} type=${saga.type} /> saga</span>
        ${saga.status === 'COMPENSATING' && html`<${Redrive} saga=${saga} onDone=${(result) => (setRedriven(result), onRedriven())} />`}
      </div>
      ${redriven && html`<p class=${`alert ${redriven.ok ? 'alert-success' : 'alert-error'}`} role="status" data-testid="redrive-saga-result">${redriven.text}</p>`}
      ${release &&
      html`<p class="alert alert-release" data-testid="release-note">
        <strong>A release, not a failure:</strong> ${releaseLabel ?? `a ${saga.type}`}. The order’s seats go back on sale through the seat-release listener.
      </p>`}
      <dl class="facts">
        <div><dt>Order</dt><dd class="mono">${saga.orderId ?? '—'}</dd></div>
        <div><dt>${release ? 'Release tag' : 'Failed tag'}</dt><dd class="mono">${saga.failedTag ?? '—'}</dd></div>
        <div><dt>Started</dt><dd>${dateTime(saga.createdAt)}</dd></div>
        <div><dt>Finished</dt><dd>${saga.finishedAt ? html`${dateTime(saga.finishedAt)} <span class="muted">(${took})</span>` : html`<span class="muted">not yet</span>`}</dd></div>
        ${release && saga.reason && html`<div class="fact-wide"><dt>Reason</dt><dd data-testid="saga-reason">${saga.reason}</dd></div>`}
        ${saga.error &&
        html`<div class="fact-wide"><dt>Error</dt><dd class="error-text" data-testid="saga-error">${saga.error.code ? `${saga.error.code}: ` : ''}${saga.error.message}</dd></div>`}
      </dl>
    </section>`;
}

function Timeline({ saga }) {
  const release = isRelease(saga.type);
  const start = saga.timeline[0]?.at ?? saga.createdAt;
  return html`
    <ol class="timeline" data-testid="timeline">
      ${saga.timeline.map((event) => {
        const family = eventFamily(event.kind, release);
        // Only what the label does not say already.
        const label = event.label;
        const meta = [
          event.step && !label.startsWith(event.step) && `step ${event.step}`,
          event.listener && !label.startsWith(event.listener) && `listener ${event.listener}`,
          event.tag && !event.step && !event.listener && !label.includes(event.tag) && `tag ${event.tag}`,
          event.deliveryCount && !label.includes(`delivery ${event.deliveryCount}`) && `delivery ${event.deliveryCount}`,
        ].filter(Boolean);
        const extraError = event.error && !event.label.includes(event.error);
        return html`
          <li class=${`event event-${family}`} data-testid="timeline-event" data-kind=${event.kind} data-family=${family} data-listener=${event.listener}>
            <time class="event-time" datetime=${event.at} title=${dateTime(event.at)}>${sinceStart(start, event.at)}</time>
            <span class="event-dot" aria-hidden="true"></span>
            <div class="event-body">
              <span class=${`event-kind kind-${family}`}>${kindText(event.kind)}</span>
              <span class="event-label" data-testid="event-label">${event.label}</span>
              ${meta.length > 0 && html`<span class="event-meta">${meta.join(' · ')}</span>`}
              ${extraError && html`<code class="event-error">${event.error}</code>`}
            </div>
          </li>`;
      })}
    </ol>`;
}

function Listeners({ saga }) {
  const release = isRelease(saga.type);
  return html`
    <section class="panel" aria-labelledby="listeners-title">
      <h2 id="listeners-title">${release ? 'Release' : 'Compensation'} listeners</h2>
      ${saga.listeners.length === 0
        ? html`<p class="empty">${saga.failedTag ? 'No listener undoes this tag: nothing to undo.' : 'Nothing to undo: the saga did not fail.'}</p>`
        : html`<table class="table table-compact" data-testid="listeners">
            <thead><tr><th>Listener</th><th>State</th><th>Attempts</th></tr></thead>
            <tbody>
              ${saga.listeners.map((l) => {
                const [family, text] = LISTENER_STATE[l.state] ?? ['progress', l.state];
                return html`
                  <tr data-testid="listener-row" data-listener=${l.listener} data-state=${l.state}>
                    <td class="mono nowrap">${l.listener}</td>
                    <td><span class=${`badge badge-${family}`}>${text}</span></td>
                    <td class="num">${l.attempts}</td>
                  </tr>
                  ${l.lastError && html`<tr class="row-detail"><td colspan="3"><span class="muted">last error:</span> <code class="error-text" data-testid="listener-error">${l.lastError}</code></td></tr>`}`;
              })}
            </tbody>
          </table>`}
    </section>`;
}

function Legend() {
  const items = [
    ['failure', 'a failure: a step or a delivery failed, or was dead-lettered'],
    ['compensation', 'compensation: queued, published, applied'],
    ['done', 'done: a step or the saga completed'],
    ['release', 'release: a cancel, expiry or refund'],
    ['progress', 'progress: started'],
  ];
  return html`
    <section class="panel" aria-labelledby="legend-title">
      <h2 id="legend-title">Reading the timeline</h2>
      <ul class="legend legend-column">${items.map(([family, text]) => html`<li><span class=${`swatch swatch-${family}`} aria-hidden="true"></span>${text}</li>`)}</ul>
    </section>`;
}

/** "Redrive compensation": publishes the saga's compensation again, after a confirmation. */
function Redrive({ saga, onDone }) {
  const [step, setStep] = useState('idle'); // idle | confirm | busy
  const waiting = saga.listeners.filter((l) => l.state !== 'done' && l.state !== 'noop');
  const confirm = async () => {
    setStep('busy');
    let result;
    try {
      await api.redriveSaga(saga.id);
      result = { ok: true, text: `Compensation ${saga.failedTag} published again (202). The timeline follows as its listeners apply it.` };
    } catch (err) {
      result = { ok: false, text: `Not redriven: ${err.message} (${err.status} ${err.code}).` };
    }
    setStep('idle');
    onDone(result);
    dispatchEvent(new Event(CHANGED));
  };
  return html`
    <button type="button" class="button button-primary saga-redrive" onClick=${() => setStep('confirm')} data-testid="redrive-saga">Redrive compensation</button>
    ${(step === 'confirm' || step === 'busy') &&
    html`<${ConfirmDialog} title="Redrive this compensation?" confirmLabel="Redrive compensation" busy=${step === 'busy'} onConfirm=${confirm} onCancel=${() => setStep('idle')} testid="redrive-saga-dialog">
      <p>The compensation <code>${saga.failedTag}</code> of saga <code>${saga.id}</code> is published again to its listeners.</p>
      <p>Safe to repeat: a listener that applied it already skips it (exactly-once); ${waiting.length ? html`still waiting: <strong>${waiting.map((l) => `${l.listener} (${l.state})`).join(', ')}</strong>.` : 'every listener looks done.'}</p>
    <//>`}`;
}
