import { once } from 'node:events';
import { createServer, type RequestListener } from 'node:http';
import type { AddressInfo } from 'node:net';
import { answerClientError } from '../api/client-error';
import type { StopList } from './stop-list';

/**
 * Listens on `port` and registers the graceful close: no new connections, `beforeDrain`, idle
 * connections closed, requests in flight answered, then the rest closed. Resolves with the server's URL.
 */
export async function listen(listener: RequestListener, port: number, stops: StopList, options: { beforeDrain?(): Promise<void> } = {}): Promise<string> {
  const server = createServer(listener);
  let inFlightRequests = 0;
  // A request Node's own parser refuses (oversized headers, not HTTP) gets the error shape too.
  server.on('clientError', answerClientError);
  server.on('request', (_req, res) => {
    inFlightRequests++;
    res.on('close', () => inFlightRequests--);
  });
  server.listen(port);
  await once(server, 'listening');
  stops.push('http server', async () => {
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    await options.beforeDrain?.();
    server.closeIdleConnections();
    while (inFlightRequests > 0) await new Promise((resolve) => setTimeout(resolve, 20));
    server.closeAllConnections();
    await closed;
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}
