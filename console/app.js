// The operator console: login, the live counters and the views, routed by location.hash.
import { html, render, useEffect, useState } from './vendor/preact-htm.js';
import { api, session, whenUnauthorized } from './api.js';
import { CHANGED, usePoll, useRoute } from './hooks.js';
import { Counters } from './views/counters.js';
import { DeadLetters } from './views/dead-letters.js';
import { Login } from './views/login.js';
import { SagaDetail } from './views/saga.js';
import { SagaSearch } from './views/sagas.js';
import { SeatMap } from './views/seats.js';

const COUNTERS_EVERY_MS = 3000;

const NAV = [
  { view: 'sagas', href: '#/sagas', label: 'Sagas', also: ['saga'] },
  { view: 'dead-letters', href: '#/dead-letters', label: 'Dead letters' },
  { view: 'seats', href: '#/seats', label: 'Seat map' },
];

function Shell({ route, onSignOut }) {
  const overview = usePoll(api.overview, COUNTERS_EVERY_MS, []);
  useEffect(() => {
    addEventListener(CHANGED, overview.reload);
    return () => removeEventListener(CHANGED, overview.reload);
  }, []);
  const dlq = overview.data?.deadLetters.total ?? 0;
  const active = (item) => item.view === route.view || item.also?.includes(route.view);
  return html`
    <header class="topbar">
      <div class="brand"><span class="logo" aria-hidden="true"></span>seat-saga <span class="brand-sub">operator console</span></div>
      <nav class="nav" aria-label="Views">
        ${NAV.map(
          (item) => html`<a href=${item.href} class=${`nav-link ${active(item) ? 'nav-active' : ''}`} aria-current=${active(item) ? 'page' : undefined} data-testid=${`nav-${item.view}`}>
            ${item.label}${item.view === 'dead-letters' && dlq > 0 ? html` <span class="nav-count">${dlq}</span>` : null}
          </a>`,
        )}
      </nav>
      <button type="button" class="button button-ghost" onClick=${onSignOut} data-testid="sign-out">Sign out</button>
    </header>
    <${Counters} poll=${overview} />
    <main class="content" id="content">
      ${route.view === 'saga' && html`<${SagaDetail} key=${route.id} id=${route.id} />`}
      ${route.view === 'sagas' && html`<${SagaSearch} query=${route.query} />`}
      ${route.view === 'dead-letters' && html`<${DeadLetters} query=${route.query} />`}
      ${route.view === 'seats' && html`<${SeatMap} key=${route.id} showId=${route.id} />`}
    </main>`;
}

function App() {
  const [signedIn, setSignedIn] = useState(() => Boolean(session.token()));
  const [notice, setNotice] = useState(null);
  const route = useRoute();
  useEffect(
    () =>
      whenUnauthorized(() => {
        session.clear();
        setNotice('The service refused the admin token (401): it may have restarted with another ADMIN_TOKEN. Sign in again.');
        setSignedIn(false);
      }),
    [],
  );
  if (!signedIn) {
    const signIn = (token) => {
      session.save(token);
      setNotice(null);
      setSignedIn(true);
    };
    return html`<${Login} notice=${notice} onSignedIn=${signIn} />`;
  }
  const signOut = () => {
    session.clear();
    setNotice('Signed out: the token is forgotten in this tab.');
    setSignedIn(false);
  };
  return html`<${Shell} route=${route} onSignOut=${signOut} />`;
}

const root = document.getElementById('app');
root.textContent = '';
render(html`<${App} />`, root);
