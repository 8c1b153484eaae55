import { expect } from 'chai';
import { connect } from 'node:net';
import { cleanup, isolate, startTestApp, type TestApp } from '../support/fixture';

/** Sends raw bytes to the service and reads its whole answer (it closes the connection). */
function raw(url: string, request: string): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname, () => socket.end(request));
    let answer = '';
    socket.on('data', (chunk) => (answer += chunk));
    socket.on('close', () => resolve(answer));
    socket.on('error', reject);
  });
}

describe("The service's own server, for requests Node's parser refuses", () => {
  const iso = isolate('clienterror');
  let app: TestApp;

  before(async () => {
    app = await startTestApp(iso);
  });
  after(() => cleanup(iso, [app]));

  it('When the headers are larger than Node accepts, then 431 HEADERS_TOO_LARGE in the error shape, not a bare status line', async () => {
    const answer = await raw(app.url!, `GET /api/shows/1 HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`);
    expect(answer).to.match(/^HTTP\/1\.1 431 /);
    const body = JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4));
    expect(body.error.code).to.equal('HEADERS_TOO_LARGE');
    expect(answer).to.match(/X-Content-Type-Options: nosniff/i);
  });

  it('When the bytes are not HTTP at all, then 400 BAD_REQUEST in the error shape', async () => {
    const answer = await raw(app.url!, 'HELLO THERE\r\n\r\n');
    expect(answer).to.match(/^HTTP\/1\.1 400 /);
    expect(JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)).error.code).to.equal('BAD_REQUEST');
  });
});
