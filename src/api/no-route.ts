import type { Express, RequestHandler } from 'express';
import { AppError } from '../errors';

/** What the router (`router` 2.x, Express 5) keeps of each `use`, route and mounted router. */
interface RouterLayer {
  route?: { methods: Record<string, boolean | undefined> };
  handle: { stack?: RouterLayer[] };
  /** Stateless in router 2.x: the matched prefix, or false. Throws on a path it cannot decode. */
  match(path: string): false | { path: string };
}

/**
 * The methods some route of `stack` answers at `path`, found by walking the router itself (the
 * app's routes and those of the routers mounted in it), so the list cannot drift from the routes.
 * GET implies HEAD, as Express answers HEAD with the GET route.
 */
export function methodsServedAt(stack: readonly RouterLayer[], path: string, into = new Set<string>()): Set<string> {
  for (const layer of stack) {
    let matched: false | { path: string };
    try {
      matched = layer.match(path);
    } catch {
      continue; // a path this layer cannot decode is not one of its paths
    }
    if (!matched) continue;
    if (layer.route) {
      for (const [method, on] of Object.entries(layer.route.methods)) if (on && method !== '_all') into.add(method.toUpperCase());
    } else if (Array.isArray(layer.handle.stack)) {
      methodsServedAt(layer.handle.stack, path.slice(matched.path.length) || '/', into);
    }
  }
  if (into.has('GET')) into.add('HEAD');
  return into;
}

/**
 * The app's last handler, for a request no route took: a path some route serves with other
 * methods answers 405 METHOD_NOT_ALLOWED with `Allow`; any other path is 404 NOT_FOUND.
 */
export function noRoute(app: Express, notFoundHint = ''): RequestHandler {
  return (req, res) => {
    const allowed = [...methodsServedAt((app.router as unknown as { stack: RouterLayer[] }).stack, req.path)].sort();
    if (allowed.length > 0) {
      res.set('Allow', allowed.join(', '));
      throw new AppError('METHOD_NOT_ALLOWED', `${req.method} is not allowed on ${req.path}; allowed: ${allowed.join(', ')}`, { allow: allowed });
    }
    throw new AppError('NOT_FOUND', `no route ${req.method} ${req.path}${notFoundHint}`);
  };
}
