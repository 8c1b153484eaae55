import { expect } from 'chai';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { cleanup, isolate, startTestApp, type TestApp } from '../support/fixture';

const README = path.join(__dirname, '../../README.md');
const ADMIN_TOKEN = 'walkthrough-admin-token-0123';
const PAYMENT_NOTIFY_SECRET = 'walkthrough-psp-secret-0123456789abcdef';

/** The README's walk-through: the sh block between its markers, and the statuses its comments show. */
export function walkthrough(readme: string): { script: string; expected: number[] } {
  const section = /<!-- walkthrough:start -->\s*```sh\n([\s\S]*?)```\s*<!-- walkthrough:end -->/.exec(readme);
  if (!section) throw new Error('README.md has no walk-through between <!-- walkthrough:start --> and <!-- walkthrough:end -->');
  const script = section[1];
  const expected = [...script.matchAll(/^# -> (\d{3})\b/gm)].map(([, status]) => Number(status));
  return { script, expected };
}

/** curl, as the walk-through calls it, also writing each answer's status to $STATUS_LOG. */
const PRELUDE = `set -eu
curl() {
  local out
  out=$(command curl -w '\\n%{http_code}' "$@") || return $?
  printf '%s\\n' "\${out##*$'\\n'}" >> "$STATUS_LOG"
  printf '%s' "\${out%$'\\n'*}"
}
`;

describe('The README, run as written', function () {
  this.timeout(90_000);
  const iso = isolate('readme');
  let app: TestApp;
  let dir: string;

  before(async () => {
    app = await startTestApp(iso, { ADMIN_TOKEN, PAYMENT_NOTIFY_SECRET });
    dir = mkdtempSync(path.join(os.tmpdir(), 'seat-saga-readme-'));
  });
  after(async () => {
    rmSync(dir, { recursive: true, force: true });
    await cleanup(iso, [app]);
  });

  it('When the walk-through is run top to bottom on a fresh service, then every request answers the status it shows', async () => {
    const { script, expected } = walkthrough(readFileSync(README, 'utf8'));
    const curls = script.split('\n').filter((line) => !line.startsWith('#') && /\bcurl\b/.test(line)).length;
    expect(expected.length, 'every curl in the walk-through shows its status').to.equal(curls);
    const statusLog = path.join(dir, 'statuses');
    writeFileSync(statusLog, '');
    // Asynchronously: the service answering it runs in this process.
    const run = await new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
      const child = spawn('bash', ['-c', PRELUDE + script], {
        env: { ...process.env, BASE: app.url!, ADMIN_TOKEN, PAYMENT_NOTIFY_SECRET, STATUS_LOG: statusLog },
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (chunk) => (stdout += chunk));
      child.stderr.on('data', (chunk) => (stderr += chunk));
      const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
      child.on('close', (status) => {
        clearTimeout(timer);
        resolve({ status, stdout, stderr });
      });
    });
    const statuses = readFileSync(statusLog, 'utf8').split('\n').filter(Boolean).map(Number);
    expect(run.status, `the walk-through stopped:\n${run.stderr}\n${run.stdout.slice(-2000)}`).to.equal(0);
    expect(statuses).to.deep.equal(expected);
    console.log(`      (${statuses.length} requests of the README walk-through answered as shown)`);
  });
});
