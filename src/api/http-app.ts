import type { RequestListener } from 'node:http';
import express, { type Express } from 'express';
import type { Logger } from '../observability/logger';
import { requireUser } from './auth';
import type { ApiDeps } from './deps';
import { errorHandler } from './error-handler';
import { noRoute } from './no-route';
import { consoleRoutes } from './console';
import { docsRoutes } from './docs';
import { openApiDocument } from './openapi';
import { adminRoutes } from './routes/admin';
import { paymentRoutes } from './routes/payments';
import { placeAsyncOrder, publicRoutes } from './routes/public';
import { jsonBody, requestIdOf } from './request';
import { API_CACHE_CONTROL, securityHeaders } from './security-headers';
import { prereadBodyError, soldOutFastPath } from './sold-out-fast-path';

export type { ApiDeps, HealthCheck } from './deps';

const withTimeout = <T>(promise: Promise<T>, ms: number, fallback: T) =>
  Promise.race([promise.catch(() => fallback), new Promise<T>((resolve) => setTimeout(() => resolve(fallback), ms).unref())]);

const livez = (_req: express.Request, res: express.Response) => {
  res.json({ status: 'ok' });
};

function mountHealthAndMetrics(app: Express, deps: Pick<ApiDeps, 'health' | 'metrics'>): void {
  app.get('/health', async (_req, res) => {
    const results = await Promise.all(deps.health.map(async (h) => [h.name, await withTimeout(h.check(), 2_000, false)] as const));
    const body: Record<string, string> = { status: results.every(([, up]) => up) ? 'ok' : 'degraded' };
    for (const [name, up] of results) body[name] = up ? 'up' : 'down';
    res.status(body.status === 'ok' ? 200 : 503).json(body);
  });

  app.get('/metrics', async (_req, res) => {
    res.set('Content-Type', deps.metrics.registry.contentType);
    res.send(await deps.metrics.registry.metrics());
  });
}

/**
 * A worker's HTTP side: only /livez, /health and /metrics (its stale drops, batch sizes and
 * compensations are counted in its own process), for probes and Prometheus.
 */
export function createOpsApp(deps: Pick<ApiDeps, 'health' | 'metrics' | 'logger'>): Express {
  const app = express();
  app.disable('x-powered-by');
  app.use(securityHeaders);
  app.get('/livez', livez);
  mountHealthAndMetrics(app, deps);
  app.use(noRoute(app, ' (a worker serves /livez, /health and /metrics only)'));
  app.use(errorHandler(deps.logger));
  return app;
}

/**
 * The API's request listener: the sold-out fast path (see there), then the Express app. Also
 * used by tests through `http.createServer`.
 */
export function createApiListener(deps: ApiDeps): RequestListener {
  const app = createHttpApp(deps);
  const fastPath = soldOutFastPath(deps);
  return (req, res) => fastPath(req, res, app);
}

/**
 * The route a request matched, with its mount path (`/api/orders/:id/pay`), or `unmatched`. A
 * router gives `req.baseUrl` back when an error leaves it, so the mount is read off the request's
 * own path: the segments before those the route's pattern matched.
 */
export function routeLabel(req: express.Request): string {
  const pattern = req.route?.path;
  if (typeof pattern !== 'string') return 'unmatched';
  if (req.baseUrl) return `${req.baseUrl}${pattern}`;
  const segments = (req.originalUrl.split('?')[0] ?? '').split('/').filter(Boolean);
  const own = pattern.split('/').filter(Boolean).length;
  const mount = segments.slice(0, Math.max(0, segments.length - own)).join('/');
  return `${mount ? `/${mount}` : ''}${pattern}`;
}

export function createHttpApp(deps: ApiDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.use(securityHeaders);

  // Liveness: the process alone, no dependency touched (the benchmarks' baseline).
  app.get('/livez', livez);

  // winston builds a line before its level filter drops it: ask once whether anyone wants it.
  const logHttp = deps.logger.isLevelEnabled('http');
  app.use((req, res, next) => {
    const requestId = requestIdOf(req.headers['x-request-id']);
    res.set('X-Request-Id', requestId);
    // The request's logger is made when first used: most requests log nothing at info.
    let logger: Logger | undefined;
    Object.defineProperty(res.locals, 'logger', { get: () => (logger ??= deps.logger.child({ requestId })), enumerable: true });
    const stop = deps.metrics.httpDuration.startTimer({ method: req.method });
    res.on('finish', () => {
      const route = routeLabel(req);
      stop({ route, status: String(res.statusCode) });
      if (logHttp) res.locals.logger.http('request', { method: req.method, route, status: res.statusCode });
    });
    next();
  });

  mountHealthAndMetrics(app, deps);
  app.use('/api', (_req, res, next) => {
    res.set('Cache-Control', API_CACHE_CONTROL);
    next();
  });

  const parseJson = jsonBody();
  // The flash-sale route, ahead of the others. Its body may have been read by the sold-out fast
  // path already: then it is in req.body (body-parser passes), or its parse error goes to the
  // error handler from here.
  app.post('/api/orders/async', (req, _res, next) => next(prereadBodyError(req)), ...parseJson, requireUser(deps.tokens), placeAsyncOrder(deps));

  // The operator console's page and modules (its data comes from /api/admin).
  app.use('/console', consoleRoutes());
  // The API's description (built once, from the schemas that validate requests) and its viewer.
  const openApi = JSON.stringify(openApiDocument());
  app.get('/openapi.json', (_req, res) => {
    res.type('application/json').send(openApi);
  });
  app.use('/docs', docsRoutes());
  // The provider's callback is signed over its raw bytes: it reads its own body.
  app.use('/api/payments', paymentRoutes(deps.payments));
  app.use(parseJson);
  app.use('/api/admin', adminRoutes(deps));
  app.use('/api', publicRoutes(deps));
  app.use(noRoute(app));
  app.use(errorHandler(deps.logger));
  return app;
}
