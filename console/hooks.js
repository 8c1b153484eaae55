import { useCallback, useEffect, useRef, useState } from './vendor/preact-htm.js';

/** Fired on window after an operator's action (a redrive), so the counters read again at once. */
export const CHANGED = 'console:changed';

/**
 * Loads `load()` now and again every `everyMs` (null: once; a function of the data: decided after
 * each load) until unmounted or `deps` change.
 * Keeps the last good data when a reload fails, so a screen never blanks during an outage.
 */
export function usePoll(load, everyMs, deps) {
  // What was loaded for other deps (the previous search) is never shown as this one's.
  const key = JSON.stringify(deps);
  const [state, setState] = useState({ key, data: null, error: null, at: null, loading: true });
  const [tick, setTick] = useState(0);
  const every = useRef(everyMs);
  every.current = everyMs;
  const latest = useRef(load);
  latest.current = load;
  useEffect(() => {
    let alive = true;
    let timer;
    let data = null;
    const run = async () => {
      try {
        data = await latest.current();
        if (alive) setState({ key, data, error: null, at: new Date(), loading: false });
      } catch (error) {
        if (alive) setState((s) => (s.key === key ? { ...s, error, loading: false } : { key, data: null, error, at: null, loading: false }));
      }
      const ms = typeof every.current === 'function' ? every.current(data) : every.current;
      if (alive && ms) timer = setTimeout(run, ms);
    };
    run();
    return () => {
      alive = false;
      clearTimeout(timer);
    };
  }, [...deps, tick]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  const current = state.key === key ? state : { key, data: null, error: null, at: null, loading: true };
  return { ...current, reload };
}

/** The route in location.hash: `#/sagas?status=…`, `#/sagas/<id>`, `#/dead-letters`, `#/seats/<showId>`. */
export function parseRoute(hash) {
  const [path, search = ''] = hash.replace(/^#\/?/, '').split('?');
  const [view = '', id = ''] = path.split('/').map(decodeURIComponent);
  const query = Object.fromEntries(new URLSearchParams(search));
  if (view === 'sagas' && id) return { view: 'saga', id, query };
  if (view === 'dead-letters') return { view: 'dead-letters', id: '', query };
  if (view === 'seats') return { view: 'seats', id, query };
  return { view: 'sagas', id: '', query };
}

export function useRoute() {
  const [route, setRoute] = useState(() => parseRoute(location.hash));
  useEffect(() => {
    const onChange = () => setRoute(parseRoute(location.hash));
    addEventListener('hashchange', onChange);
    return () => removeEventListener('hashchange', onChange);
  }, []);
  return route;
}

export const go = (hash) => {
  location.hash = hash;
};
