import { Router, type RequestHandler } from 'express';
import type { ApiDeps } from '../deps';
import { requireUser, userIdOf } from '../auth';
import { idempotent } from '../idempotency';
import { expectNoBody, parse, parseWaitMs, pathId, routeInput, schemas } from '../validation';

/**
 * POST /api/orders/async, the flash-sale path: 202 once the seats are reserved and the order is
 * queued; with ?waitMs=N, 201 with the order if it is persisted within N ms. Mounted by the app
 * ahead of the other routes (it is the hot one), after the JSON parser and the bearer check.
 */
export function placeAsyncOrder(deps: Pick<ApiDeps, 'asyncOrders'>): RequestHandler {
  return async (req, res) => {
    const waitMs = parseWaitMs(req.query.waitMs);
    const body = parse(schemas.createAsyncOrder, req.body);
    const answer = await deps.asyncOrders.place(userIdOf(req), body, waitMs);
    if (answer.status === 'PERSISTED') {
      res.status(201).location(`/api/orders/${answer.order.id}`).json(answer.order);
    } else {
      res.status(202).location(`/api/orders/${answer.orderId}`).json({ orderId: answer.orderId, status: 'QUEUED' });
    }
  };
}

/** Users, shows and orders: what a ticket buyer's client calls (the async order route is above). */
export function publicRoutes(deps: ApiDeps): Router {
  const router = Router();
  const authenticated = requireUser(deps.tokens);

  router.post('/users', async (req, res) => {
    const body = parse(schemas.createUser, req.body);
    res.status(201).json(await deps.users.create(body));
  });

  router.get('/users/me', authenticated, async (req, res) => {
    res.json(await deps.users.get(userIdOf(req)));
  });

  router.get('/shows/:id', async (req, res) => {
    res.json(await deps.shows.getWithAvailability(pathId(req.params.id, 'show')));
  });

  router.get('/shows/:id/seats', async (req, res) => {
    res.json(await deps.shows.seats(pathId(req.params.id, 'show')));
  });

  // Input is read before the Idempotency-Key is claimed: a bad request claims no key.
  const orderInput = routeInput((req) => parse(schemas.createOrder, req.body));
  router.post(
    '/orders',
    authenticated,
    orderInput,
    idempotent(deps.idempotency, () => 'orders'),
    async (req, res) => {
      res.status(201).json(await deps.orders.place(userIdOf(req), orderInput.of(req), res.locals.logger));
    },
  );

  router.get('/orders', authenticated, async (req, res) => {
    res.json(await deps.orders.list(userIdOf(req)));
  });

  router.get('/orders/:id', authenticated, async (req, res) => {
    res.json(await deps.orders.get(userIdOf(req), pathId(req.params.id, 'order')));
  });

  const payInput = routeInput((req) => ({ orderId: pathId(req.params.id, 'order'), ...parse(schemas.pay, req.body) }));
  router.post(
    '/orders/:id/pay',
    authenticated,
    payInput,
    idempotent(deps.idempotency, (req) => `pay:${payInput.of(req).orderId}`),
    async (req, res) => {
      const { orderId, payPassword } = payInput.of(req);
      res.json(await deps.orders.pay(userIdOf(req), orderId, payPassword, res.locals.logger));
    },
  );

  router.post('/orders/:id/cancel', authenticated, async (req, res) => {
    const orderId = pathId(req.params.id, 'order');
    expectNoBody(req.body);
    const { id, status } = await deps.orders.cancel(userIdOf(req), orderId, res.locals.logger);
    res.json({ id, status });
  });

  router.post('/orders/:id/refund', authenticated, async (req, res) => {
    const orderId = pathId(req.params.id, 'order');
    expectNoBody(req.body);
    const { id, status, balanceCents } = await deps.orders.refund(userIdOf(req), orderId, res.locals.logger);
    res.json({ id, status, balanceCents });
  });

  return router;
}
