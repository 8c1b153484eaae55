import { Router } from 'express';
import { z } from 'zod';
import { AppError, notFound } from '../../errors';
import { CONSUMER_NAMES } from '../../operator/dead-letter-queues';
import { SAGA_STATUSES } from '../../operator/saga-query-types';
import { snowflakeFloor } from '../../support/ids';
import type { OperatorDeps } from '../deps';
import { idString, parse, pathId } from '../validation';

const queryInt = (min: number, max: number) =>
  z
    .string()
    .regex(/^\d{1,6}$/, `must be a whole number from ${min} to ${max}`)
    .transform(Number)
    .pipe(z.number().int().min(min, `must be at least ${min}`).max(max, `must be at most ${max}`));
const instant = z.iso.datetime({ offset: true, message: 'must be an ISO 8601 date-time, e.g. 2026-12-01T20:00:00Z' }).transform((value) => new Date(value));
const name = (max: number) => z.string().regex(new RegExp(`^[a-z][a-z0-9_-]{0,${max - 1}}$`), 'must be a lower-case name');

export const operatorSchemas = {
  sagaSearch: z
    .strictObject({
      status: z.enum(SAGA_STATUSES).optional(),
      type: name(32).optional(),
      tag: name(64).optional(),
      orderId: idString.optional(),
      userId: idString.optional(),
      since: instant.optional(),
      until: instant.optional(),
      limit: queryInt(1, 200).default(50),
      cursor: z.string().min(1).max(200).optional(),
    })
    .refine((q) => !q.since || !q.until || q.since < q.until, { message: 'since must be before until', path: ['since'] }),
  deadLetterList: z.strictObject({ listener: z.enum(CONSUMER_NAMES).optional() }),
  deadLetterRedrive: z.strictObject({
    listener: z.enum(CONSUMER_NAMES).optional(),
    sagaIds: z.array(idString).min(1, 'must name at least one saga').max(1000, 'at most 1000 sagas at once').optional(),
    ids: z
      .array(z.string().regex(/^[\w-]{1,64}$/, 'must be a dead letter id as GET /dead-letters lists it'))
      .min(1, 'must name at least one dead letter')
      .max(1000, 'at most 1000 dead letters at once')
      .optional(),
  }),
};

/**
 * Operators find, understand and repair sagas here (mounted under /api/admin, behind the admin
 * token): search and counts, one saga's timeline, redrive of a saga's compensation or of dead
 * letters, and the counters the console keeps refreshing.
 */
export function operatorRoutes(deps: OperatorDeps): Router {
  const router = Router();

  router.get('/sagas', async (req, res) => {
    res.json(await deps.sagaQueries.search(parse(operatorSchemas.sagaSearch, { ...req.query })));
  });

  router.get('/sagas/stats', async (_req, res) => {
    res.json(await deps.sagaQueries.stats());
  });

  router.get('/sagas/:id', async (req, res) => {
    const sagaId = pathId(req.params.id, 'saga');
    const [saga, timeline] = await Promise.all([deps.sagaLog.view(sagaId), deps.sagaQueries.timeline(sagaId)]);
    if (!saga || !timeline) throw notFound('saga');
    res.json({ ...saga, timeline: timeline.events, listeners: timeline.listeners });
  });

  router.post('/sagas/:id/redrive', async (req, res) => {
    const sagaId = pathId(req.params.id, 'saga');
    if (!(await deps.sagaLog.republishCompensation(sagaId, null))) {
      const status = await deps.sagaLog.statusOf(sagaId);
      if (status === 'missing') throw notFound('saga');
      throw new AppError('SAGA_NOT_COMPENSATING', `saga ${sagaId} is ${status}: only a COMPENSATING saga has a compensation to send again`, { status });
    }
    res.status(202).location(`/api/admin/sagas/${sagaId}`).json({ id: sagaId, status: 'COMPENSATING', redriven: true });
  });

  router.get('/dead-letters', async (req, res) => {
    const { listener } = parse(operatorSchemas.deadLetterList, { ...req.query });
    res.json(await deps.deadLetterLog.list({ listener }));
  });

  router.post('/dead-letters/redrive', async (req, res) => {
    const filter = parse(operatorSchemas.deadLetterRedrive, req.body ?? {});
    res.json(await deps.deadLetters.redrive(filter));
  });

  // The console's live counters: one cheap read for all of them (orders by id range: ids are time-ordered).
  router.get('/overview', async (_req, res) => {
    const now = deps.clock.now();
    const count = async (query: Promise<Array<{ n: number | string }>>) => Number((await query)[0].n);
    const [lastMinute, lastHour, running, compensating, deadLetters] = await Promise.all([
      count(
        deps
          .db('orders')
          .where('id', '>=', snowflakeFloor(now - 60_000))
          .count({ n: '*' }),
      ),
      count(
        deps
          .db('orders')
          .where('id', '>=', snowflakeFloor(now - 3_600_000))
          .count({ n: '*' }),
      ),
      count(deps.db('sagas').where({ status: 'RUNNING' }).count({ n: '*' })),
      count(deps.db('sagas').where({ status: 'COMPENSATING' }).count({ n: '*' })),
      deps.deadLetterLog.depth(),
    ]);
    res.json({
      at: new Date(now).toISOString(),
      ordersAccepted: { lastMinute, lastHour },
      sagas: { running, compensating },
      compensationsInFlight: compensating,
      deadLetters: { total: Object.values(deadLetters).reduce((a, b) => a + b, 0), byListener: deadLetters },
    });
  });

  return router;
}
