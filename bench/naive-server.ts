import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import express from 'express';
import mysql, { type ResultSetHeader, type RowDataPacket } from 'mysql2/promise';
import { z } from 'zod';
import { TokenSigner } from '../src/users/tokens';

/**
 * The baseline of the benchmark: what one would write without the async path. One MySQL
 * transaction per order, serialized on the show's stock row by SELECT … FOR UPDATE. It takes the
 * request of POST /api/orders/async (`{showId, quantity}` with a Bearer token checked by the same
 * HMAC, validated by zod) so that the two are measured under the same load. The bench starts it
 * (bench/service.ts) with DATABASE_URL (tables `stock` and `orders` ready), AUTH_SECRET and PORT.
 */
const orderRequest = z.strictObject({ showId: z.string().regex(/^\d+$/), quantity: z.number().int().min(1).max(50) });

async function main(): Promise<void> {
  const url = new URL(process.env.DATABASE_URL ?? 'mysql://root@127.0.0.1:3306/seat_saga_bench_naive');
  const pool = mysql.createPool({
    host: url.hostname,
    port: Number(url.port || 3306),
    user: decodeURIComponent(url.username || 'root'),
    password: decodeURIComponent(url.password),
    database: url.pathname.slice(1),
    connectionLimit: Number(process.env.DB_POOL_MAX ?? 30),
  });
  const tokens = new TokenSigner(Buffer.from(process.env.AUTH_SECRET ?? ''));
  const fail = (res: express.Response, status: number, code: string) => void res.status(status).json({ error: { code } });

  const app = express();
  app.use(express.json({ limit: '64kb' }));
  app.post('/api/orders', async (req, res) => {
    const bearer = /^Bearer\s+(\S+)$/i.exec(req.get('authorization') ?? '');
    const userId = bearer ? tokens.verify(bearer[1]) : null;
    if (!userId) return fail(res, 401, 'UNAUTHORIZED');
    const body = orderRequest.safeParse(req.body);
    if (!body.success) return fail(res, 400, 'VALIDATION_FAILED');
    const { showId, quantity } = body.data;

    const conn = await pool.getConnection();
    try {
      await conn.beginTransaction();
      const [stock] = await conn.query<RowDataPacket[]>('SELECT available FROM stock WHERE show_id = ? FOR UPDATE', [showId]);
      if (!stock[0] || stock[0].available < quantity) {
        await conn.rollback();
        return fail(res, 409, 'SOLD_OUT');
      }
      await conn.query('UPDATE stock SET available = available - ? WHERE show_id = ?', [quantity, showId]);
      const [order] = await conn.query<ResultSetHeader>('INSERT INTO orders (user_id, show_id, quantity) VALUES (?, ?, ?)', [userId, showId, quantity]);
      await conn.commit();
      res.status(201).json({ orderId: String(order.insertId), status: 'CONFIRMED' });
    } catch (err) {
      await conn.rollback().catch(() => {});
      throw err;
    } finally {
      conn.release();
    }
  });

  const server = app.listen(Number(process.env.PORT ?? 0));
  await once(server, 'listening');
  console.log(`naive baseline listening on http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  process.once('SIGTERM', () => {
    server.close(() => void pool.end().finally(() => process.exit(0)));
    server.closeAllConnections();
  });
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
