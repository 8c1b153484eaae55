import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import yaml from 'js-yaml';
import { cleanup, isolate, startTestApp, type TestApp } from '../support/fixture';
import { Api } from '../support/http';

const OPS = path.join(__dirname, '../../ops');

/** Every seat_saga_ metric a PromQL text names, without the suffixes histograms expose. */
function metricsNamedIn(text: string): string[] {
  const names = [...text.matchAll(/\bseat_saga_[a-z0-9_]+/g)].map(([name]) => name.replace(/_(bucket|sum|count)$/, ''));
  return [...new Set(names)].sort();
}

describe('The alert rules and the dashboard in ops/', () => {
  const iso = isolate('ops');
  let app: TestApp;
  let exported: Set<string>;

  before(async () => {
    app = await startTestApp(iso);
    const text = (await new Api(app.url!).get('/metrics')).body as string;
    exported = new Set([...text.matchAll(/^# TYPE (\S+) /gm)].map(([, name]) => name));
  });
  after(() => cleanup(iso, [app]));

  const rules = () => yaml.load(readFileSync(path.join(OPS, 'alerts.yml'), 'utf8')) as { groups: Array<{ rules: Array<{ alert: string; expr: string }> }> };
  const dashboard = () =>
    JSON.parse(readFileSync(path.join(OPS, 'grafana-dashboard.json'), 'utf8')) as { panels: Array<{ title: string; targets: Array<{ expr: string }> }> };

  it('When the alert rules are read, then every metric they name is one the service exports', () => {
    const exprs = rules()
      .groups.flatMap((g) => g.rules.map((r) => r.expr))
      .join('\n');
    const named = metricsNamedIn(exprs);
    expect(named.length).to.be.greaterThan(10);
    expect(named.filter((name) => !exported.has(name))).to.deep.equal([]);
  });

  it('When the dashboard is read, then every panel queries metrics the service exports', () => {
    const { panels } = dashboard();
    expect(panels.length).to.be.greaterThan(10);
    for (const panel of panels) {
      const named = metricsNamedIn(panel.targets.map((t) => t.expr).join('\n'));
      expect(named.length, panel.title).to.be.greaterThan(0);
      expect(
        named.filter((name) => !exported.has(name)),
        panel.title,
      ).to.deep.equal([]);
    }
  });

  it('When promtool checks the rules, then they are valid', function () {
    const result = spawnSync('promtool', ['check', 'rules', path.join(OPS, 'alerts.yml')], { encoding: 'utf8' });
    if (result.error) {
      if (process.env.CI) throw new Error(`promtool is needed in CI: ${result.error.message}`);
      this.skip();
    }
    expect(result.status, `${result.stdout}${result.stderr}`).to.equal(0);
  });
});
