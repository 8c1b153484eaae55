// Small pieces every view uses.
import { html, useEffect, useRef } from './vendor/preact-htm.js';
import { isRelease } from './format.js';

const STATUS_FAMILY = { RUNNING: 'running', COMPLETED: 'done', COMPENSATING: 'compensation', COMPENSATED: 'compensated' };

/** A saga's status as a coloured badge with its name; a finished release reads "released", not as a failure. */
export function StatusBadge({ status, type }) {
  const released = status === 'COMPENSATED' && isRelease(type);
  const family = released ? 'release' : STATUS_FAMILY[status] ?? 'running';
  const title = released ? 'COMPENSATED: the order’s seats were released on purpose, not after a failure' : status;
  return html`<span class="badge badge-${family}" data-testid="saga-status" data-status=${status} title=${title}>${released ? 'released' : status.toLowerCase()}</span>`;
}

/** "order", or "cancel · release". */
export function SagaType({ type }) {
  return isRelease(type) ? html`<span>${type} <span class="chip chip-release">release</span></span>` : html`<span>${type}</span>`;
}

/** An API error in words: what was refused and why. */
export function ErrorNote({ error, what, testid = 'error' }) {
  if (!error) return null;
  const text =
    error.status === 0
      ? 'The service cannot be reached: is it running?'
      : error.status === 503
        ? `The service is unavailable (503): ${error.message}. It retries by itself; this view will too.`
        : `${error.message} (${error.status} ${error.code})`;
  return html`<p class="alert alert-error" role="alert" data-testid=${testid}>${what ? html`<strong>${what}: </strong>` : null}${text}</p>`;
}

/** A modal confirmation (native <dialog>: focus trapped, Escape cancels). */
export function ConfirmDialog({ title, confirmLabel, onConfirm, onCancel, busy, testid, children }) {
  const ref = useRef(null);
  useEffect(() => {
    const dialog = ref.current;
    dialog.showModal();
    return () => dialog.open && dialog.close();
  }, []);
  const cancel = (event) => {
    event.preventDefault();
    onCancel();
  };
  return html`
    <dialog ref=${ref} class="dialog" data-testid=${testid} aria-labelledby="dialog-title" onCancel=${cancel}>
      <h2 id="dialog-title">${title}</h2>
      <div class="dialog-body">${children}</div>
      <div class="dialog-actions">
        <button type="button" class="button" onClick=${onCancel} data-testid="confirm-cancel">Cancel</button>
        <button type="button" class="button button-primary" onClick=${onConfirm} disabled=${busy} data-testid="confirm-ok">${busy ? 'Working…' : confirmLabel}</button>
      </div>
    </dialog>`;
}

/** A link to a saga's timeline. */
export const SagaLink = ({ id }) => html`<a href=${`#/sagas/${id}`} class="mono" data-testid="saga-link" data-saga-id=${id}>${id}</a>`;
