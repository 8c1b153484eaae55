import { html, useEffect, useState } from '../vendor/preact-htm.js';
import { api } from '../api.js';

/** The admin token, typed once and checked against the service before it is kept (sessionStorage). */
export function Login({ notice, onSignedIn }) {
  const [token, setToken] = useState('');
  const [error, setError] = useState(null);
  const [busy, setBusy] = useState(false);
  useEffect(() => performance.mark('console:login-visible'), []);

  const submit = async (event) => {
    event.preventDefault();
    const typed = token.trim();
    if (!typed) return setError('Type the admin token first.');
    setBusy(true);
    setError(null);
    try {
      await api.checkToken(typed);
      onSignedIn(typed);
    } catch (err) {
      setBusy(false);
      if (err.status === 401) setError('The service refused this token (401). Use the ADMIN_TOKEN the service runs with: it logs a random one at start when none is set.');
      else if (err.status === 0) setError('The service cannot be reached: is it running?');
      else setError(`The token could not be checked: ${err.message} (${err.status} ${err.code}).`);
    }
  };

  return html`
    <div class="login-page">
      <form class="login panel" method="post" action="/console/" onSubmit=${submit} data-testid="login-form" autocomplete="off">
        <h1 class="login-title"><span class="logo" aria-hidden="true"></span>seat-saga <span class="muted">operator console</span></h1>
        <p class="muted">Sagas, compensations, dead letters and seat maps of this deployment.</p>
        ${notice && html`<p class="alert alert-info" role="status" data-testid="login-notice">${notice}</p>`}
        <label for="admin-token">Admin token</label>
        <input id="admin-token" name="admin-token" type="password" autocomplete="off" spellcheck="false" required
          value=${token} onInput=${(e) => setToken(e.currentTarget.value)} data-testid="token-input" />
        <p class="hint">Kept in this tab only (session storage) and sent as <code>X-Admin-Token</code>; closing the tab or signing out forgets it.</p>
        ${error && html`<p class="alert alert-error" role="alert" data-testid="login-error">${error}</p>`}
        <button type="submit" class="button button-primary button-wide" disabled=${busy} data-testid="sign-in">${busy ? 'Checking…' : 'Sign in'}</button>
      </form>
    </div>`;
}
