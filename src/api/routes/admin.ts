import { Router } from 'express';
import { notFound } from '../../errors';
import type { ApiDeps } from '../deps';
import { requireAdmin } from '../auth';
import { operatorRoutes } from './operator';
import { parse, pathId, schemas } from '../validation';

/** Operators' routes, behind X-Admin-Token. */
export function adminRoutes(deps: ApiDeps): Router {
  const router = Router();

  // Failpoints do not exist unless enabled: 404 before any token check.
  router.use('/failpoints', (_req, _res, next) => {
    if (!deps.failpoints.enabled) throw notFound('route');
    next();
  });
  router.use(requireAdmin(deps.adminToken));

  router.post('/users/:id/credits', async (req, res) => {
    const userId = pathId(req.params.id, 'user');
    const { amountCents } = parse(schemas.credit, req.body);
    res.json(await deps.users.credit(userId, amountCents));
  });

  router.post('/shows', async (req, res) => {
    const body = parse(schemas.createShow, req.body);
    res.status(201).json(await deps.shows.create({ ...body, startsAt: new Date(body.startsAt) }));
  });

  // Saga search, timelines, redrive, dead letters, the console's counters.
  router.use(operatorRoutes(deps.operator));

  router.get('/failpoints', (_req, res) => {
    res.json(deps.failpoints.list());
  });

  router.put('/failpoints/:name', (req, res) => {
    const name = String(req.params.name);
    if (!/^[\w.-]{1,128}$/.test(name)) throw notFound('failpoint');
    const setting = parse(schemas.failpoint, req.body);
    deps.failpoints.set(name, setting);
    res.json({ name, ...setting });
  });

  return router;
}
