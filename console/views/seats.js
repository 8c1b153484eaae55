import { html, useState } from '../vendor/preact-htm.js';
import { api } from '../api.js';
import { clock } from '../format.js';
import { go, usePoll } from '../hooks.js';
import { ErrorNote } from '../ui.js';

const STATUSES = ['available', 'held', 'sold'];

/** "C12" → ["C", 12]; rows sort A…Z, AA… (shorter first), seats by number. */
function rowsOf(seats) {
  const rows = new Map();
  for (const seat of seats) {
    const [, row = '?', number = '0'] = /^([A-Z]+)(\d+)$/.exec(seat.label) ?? [];
    if (!rows.has(row)) rows.set(row, []);
    rows.get(row).push({ ...seat, number: Number(number) });
  }
  const byRow = [...rows.entries()].sort(([a], [b]) => a.length - b.length || a.localeCompare(b));
  for (const [, list] of byRow) list.sort((a, b) => a.number - b.number);
  return byRow;
}

/** A show's seats as the buyers' view sees them (GET /api/shows/:id/seats), by row, refreshed every few seconds. */
export function SeatMap({ showId }) {
  const [typed, setTyped] = useState(showId);
  const submit = (event) => {
    event.preventDefault();
    const id = typed.trim();
    if (id) go(`#/seats/${encodeURIComponent(id)}`);
  };
  return html`
    <section class="panel" aria-labelledby="seats-title">
      <div class="panel-head">
        <h2 id="seats-title">Seat map</h2>
        <form class="toolbar" onSubmit=${submit} data-testid="seats-form">
          <label for="show-id">Show id</label>
          <input id="show-id" name="show-id" inputmode="numeric" value=${typed} onInput=${(e) => setTyped(e.currentTarget.value)} placeholder="e.g. 1" data-testid="show-id" />
          <button type="submit" class="button button-primary" data-testid="show-seats">Show seats</button>
        </form>
      </div>
      ${showId ? html`<${Seats} showId=${showId} />` : html`<p class="empty">Type a show id to see its seats: available, held (in an unpaid order) or sold.</p>`}
    </section>`;
}

function Seats({ showId }) {
  const seats = usePoll(() => Promise.all([api.show(showId), api.seats(showId)]), 5000, [showId]);
  if (seats.error && !seats.data) return html`<${ErrorNote} error=${seats.error} what=${seats.error.status === 404 ? `No show ${showId}` : 'The seats could not be read'} />`;
  if (!seats.data) return html`<p class="muted">Loading…</p>`;
  const [show, list] = seats.data;
  const counts = Object.fromEntries(STATUSES.map((s) => [s, list.filter((seat) => seat.status === s).length]));
  return html`
    <div class="show-head" data-testid="show-head">
      <div><strong data-testid="show-title">${show.title}</strong> <span class="muted">show ${show.id} · ${(show.priceCents / 100).toFixed(2)} a seat · ${show.seatsTotal} seats</span></div>
      <span class="muted small" data-testid="seats-updated">updated ${clock(seats.at)}</span>
    </div>
    <${ErrorNote} error=${seats.error} what="Refreshing failed (showing the last map)" />
    <ul class="legend" data-testid="seat-legend">
      ${STATUSES.map((s) => html`<li data-testid=${`seat-count-${s}`} data-count=${counts[s]}><span class=${`swatch seat-${s}`} aria-hidden="true"></span>${s} <b>${counts[s]}</b></li>`)}
    </ul>
    <div class="seat-map" data-testid="seat-map">
      <div class="stage" aria-hidden="true">stage</div>
      ${rowsOf(list).map(
        ([row, rowSeats]) => html`
          <div class="seat-row" role="group" aria-label=${`Row ${row}`}>
            <span class="row-label" aria-hidden="true">${row}</span>
            ${rowSeats.map(
              (seat) =>
                html`<span class=${`seat seat-${seat.status}`} role="img" title=${`${seat.label}: ${seat.status}`} aria-label=${`${seat.label} ${seat.status}`}
                  data-testid="seat" data-seat-id=${seat.id} data-label=${seat.label} data-status=${seat.status}>${seat.number}</span>`,
            )}
          </div>`,
      )}
    </div>`;
}
