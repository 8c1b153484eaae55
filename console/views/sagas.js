import { html, useState } from '../vendor/preact-htm.js';
import { api } from '../api.js';
import { dateTime, duration, fromLocalInput, shortDateTime, toLocalInput } from '../format.js';
import { go, usePoll } from '../hooks.js';
import { ErrorNote, SagaLink, SagaType, StatusBadge } from '../ui.js';

const STATUSES = ['RUNNING', 'COMPLETED', 'COMPENSATING', 'COMPENSATED'];
const TYPES = ['order', 'pay', 'cancel', 'expiry', 'refund'];
const TAGS = ['order_seats_cancel', 'order_add_seats_cancel', 'order_calc_money_cancel', 'order_add_cancel', 'pay_check_cancel', 'pay_money_cancel', 'pay_cancel', 'order_cancel'];
const FILTERS = ['status', 'type', 'tag', 'orderId', 'userId', 'since', 'until', 'limit'];
const PAGE_SIZES = [10, 25, 50, 100, 200];

/** The page cursors walked for the current search, kept while a timeline is open so Back returns to the same page. */
let walked = { key: '', cursors: [null] };

const filtersOf = (query) => Object.fromEntries(FILTERS.filter((f) => query[f]).map((f) => [f, query[f]]));

export function SagaSearch({ query }) {
  const filters = filtersOf(query);
  const key = JSON.stringify(filters);
  if (walked.key !== key) walked = { key, cursors: [null] };
  const [, redraw] = useState(0);
  const current = walked.cursors;
  const cursor = current[current.length - 1];
  const page = usePoll(() => api.sagas({ ...filters, cursor }), null, [key, cursor]);
  const move = (cursors) => {
    walked = { key, cursors };
    redraw((n) => n + 1);
  };
  // The same search submitted again: back to its first page, read afresh.
  const again = () => (current.length > 1 ? move([null]) : page.reload());

  return html`
    <div class="layout-two">
      <section class="panel" aria-labelledby="search-title">
        <h2 id="search-title">Sagas</h2>
        <${SearchForm} key=${key} filters=${filters} error=${page.error} onResubmit=${again} />
        <${ErrorNote} error=${page.error?.status === 400 ? null : page.error} what="The search failed" />
        <${Results} page=${page} />
        <div class="pager">
          <button type="button" class="button" disabled=${current.length < 2} onClick=${() => move(current.slice(0, -1))} data-testid="page-previous">← Previous</button>
          <span class="muted" data-testid="page-number">Page ${current.length}</span>
          <button type="button" class="button" disabled=${!page.data?.nextCursor} onClick=${() => move([...current, page.data.nextCursor])} data-testid="page-next">Next →</button>
          <button type="button" class="button button-ghost pager-refresh" onClick=${page.reload} data-testid="search-refresh">Refresh</button>
        </div>
      </section>
      <${SideStats} />
    </div>`;
}

function SearchForm({ filters, error, onResubmit }) {
  const [form, setForm] = useState(() => ({ ...filters, since: toLocalInput(filters.since), until: toLocalInput(filters.until) }));
  const issues = error?.status === 400 ? error.fieldErrors : {};
  const set = (field) => (event) => setForm({ ...form, [field]: event.currentTarget.value });
  const submit = (event) => {
    event.preventDefault();
    const chosen = { ...form, since: fromLocalInput(form.since), until: fromLocalInput(form.until) };
    const params = new URLSearchParams(Object.entries(chosen).filter(([, v]) => v && String(v).trim()).map(([k, v]) => [k, String(v).trim()]));
    const hash = `#/sagas${params.toString() ? `?${params}` : ''}`;
    if (hash === location.hash) onResubmit();
    else go(hash);
  };
  const clear = () => {
    setForm({});
    go('#/sagas');
  };
  const sizes = [...new Set([...PAGE_SIZES, Number(filters.limit ?? 50)])].sort((a, b) => a - b);
  const field = (name, label, input) => html`
    <div class=${`field ${issues[name] ? 'field-invalid' : ''}`}>
      <label for=${`f-${name}`}>${label}</label>
      ${input}
      ${issues[name] && html`<p class="field-error" id=${`f-${name}-error`} data-testid=${`field-error-${name}`}>${issues[name]}</p>`}
    </div>`;
  const text = (name, placeholder, list) =>
    html`<input id=${`f-${name}`} name=${name} list=${list} value=${form[name] ?? ''} onInput=${set(name)} placeholder=${placeholder} aria-invalid=${issues[name] ? 'true' : undefined} aria-describedby=${issues[name] ? `f-${name}-error` : undefined} data-testid=${`filter-${name}`} />`;
  const select = (name, options, any) =>
    html`<select id=${`f-${name}`} name=${name} value=${form[name] ?? ''} onChange=${set(name)} aria-invalid=${issues[name] ? 'true' : undefined} data-testid=${`filter-${name}`}>
      <option value="">${any}</option>
      ${options.map((o) => html`<option value=${o}>${o}</option>`)}
    </select>`;
  const when = (name) =>
    html`<input id=${`f-${name}`} name=${name} type="datetime-local" step="1" value=${form[name] ?? ''} onInput=${set(name)} aria-invalid=${issues[name] ? 'true' : undefined} data-testid=${`filter-${name}`} />`;
  const unplaced = Object.entries(issues).filter(([f]) => !FILTERS.includes(f));

  return html`
    <form class="filters" onSubmit=${submit} data-testid="search-form" aria-label="Saga filters">
      ${field('status', 'Status', select('status', STATUSES, 'any status'))}
      ${field('type', 'Type', select('type', TYPES, 'any type'))}
      ${field('tag', 'Failed tag', text('tag', 'e.g. order_add_cancel', 'known-tags'))}
      ${field('orderId', 'Order id', text('orderId', 'digits'))}
      ${field('userId', 'User id', text('userId', 'digits'))}
      ${field('since', 'Since (local time)', when('since'))}
      ${field('until', 'Until (local time)', when('until'))}
      ${field('limit', 'Per page', html`<select id="f-limit" name="limit" value=${String(form.limit ?? 50)} onChange=${set('limit')} data-testid="filter-limit">${sizes.map((n) => html`<option value=${String(n)}>${n}</option>`)}</select>`)}
      <div class="filter-actions">
        <button type="submit" class="button button-primary" data-testid="search">Search</button>
        <button type="button" class="button" onClick=${clear} data-testid="search-clear">Clear</button>
      </div>
      <datalist id="known-tags">${TAGS.map((t) => html`<option value=${t} />`)}</datalist>
      ${error?.status === 400 &&
      html`<p class="alert alert-error filters-error" role="alert" data-testid="search-error">
        The service refused these filters (400 ${error.code}). ${unplaced.length ? unplaced.map(([f, m]) => `${f}: ${m}`).join('; ') : 'See the fields marked in red.'}
      </p>`}
    </form>`;
}

function Results({ page }) {
  const items = page.data?.items;
  if (!items) return page.loading ? html`<p class="muted">Loading…</p>` : null;
  if (items.length === 0) return html`<p class="empty" data-testid="no-results">No saga matches these filters.</p>`;
  return html`
    <div class="table-wrap">
      <table class="table" data-testid="saga-results">
        <thead><tr><th>Saga</th><th>Type</th><th>Status</th><th>Failed tag</th><th>Order</th><th>User</th><th>Started</th><th class="num">Took</th></tr></thead>
        <tbody>
          ${items.map(
            (s) => html`<tr data-testid="saga-row" data-saga-id=${s.id}>
              <td><${SagaLink} id=${s.id} /></td>
              <td class="nowrap"><${SagaType} type=${s.type} /></td>
              <td><${StatusBadge} status=${s.status} type=${s.type} /></td>
              <td class="mono">${s.failedTag ?? html`<span class="muted">—</span>`}</td>
              <td class="mono">${s.orderId ?? '—'}</td>
              <td class="mono">${s.userId ?? '—'}</td>
              <td class="nowrap" title=${dateTime(s.createdAt)}>${shortDateTime(s.createdAt)}</td>
              <td class="nowrap num">${s.finishedAt ? duration(Date.parse(s.finishedAt) - Date.parse(s.createdAt)) : html`<span class="muted">—</span>`}</td>
            </tr>`,
          )}
        </tbody>
      </table>
    </div>`;
}

/** Counts by status and type, and the stuck sagas (RUNNING or COMPENSATING past their bound), refreshed every few seconds. */
function SideStats() {
  const stats = usePoll(api.stats, 5000, []);
  const data = stats.data;
  return html`
    <aside class="side">
      <section class="panel" aria-labelledby="stuck-title" data-testid="stuck-panel">
        <h2 id="stuck-title">Stuck sagas ${data && html`<span class=${`count ${data.stuck ? 'count-red' : ''}`} data-testid="stuck-count">${data.stuck}</span>`}</h2>
        <${ErrorNote} error=${stats.error} />
        ${data && data.stuckSagas.length === 0 && html`<p class="empty">None: every saga is moving or finished.</p>`}
        ${data?.stuckSagas.length > 0 &&
        html`<ul class="stuck-list" data-testid="stuck-list">
          ${data.stuckSagas.map(
            (s) => html`<li>
              <a href=${`#/sagas/${s.id}`} class="stuck-item" data-testid="stuck-item" data-saga-id=${s.id}>
                <span class="mono">${s.id}</span>
                <span><${SagaType} type=${s.type} /> · <${StatusBadge} status=${s.status} type=${s.type} /></span>
                <span class="muted">started ${shortDateTime(s.createdAt)}</span>
              </a>
            </li>`,
          )}
        </ul>`}
        ${data && data.stuck > data.stuckSagas.length && html`<p class="muted">…and ${data.stuck - data.stuckSagas.length} more (the oldest are listed).</p>`}
      </section>
      <section class="panel" aria-labelledby="counts-title">
        <h2 id="counts-title">All sagas</h2>
        ${data &&
        html`<dl class="stat-list" data-testid="saga-counts">
          ${STATUSES.map((s) => html`<div><dt><a href=${`#/sagas?status=${s}`}><${StatusBadge} status=${s} type="order" /></a></dt><dd>${data.byStatus[s] ?? 0}</dd></div>`)}
        </dl>
        <dl class="stat-list">
          ${Object.entries(data.byType).map(([t, n]) => html`<div><dt><a href=${`#/sagas?type=${t}`}>${t}</a></dt><dd>${n}</dd></div>`)}
        </dl>`}
      </section>
    </aside>`;
}
