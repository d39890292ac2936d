// Static checks of the monitoring files: the Prometheus alert rules (deploy/prometheus) and the
// Grafana dashboard (deploy/grafana). Every series an expression selects must be one the service
// exports, read from the registry of src/metrics/chat-metrics.ts, with the right histogram suffix
// and only labels the metric has. `promtool check rules` runs too when promtool is installed.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import type { DataSource } from 'typeorm';
import { parse } from 'yaml';
import { ChatMetrics } from '../src/metrics/chat-metrics.js';
import { ROOT } from './support/repo-root.js';

type Obj = Record<string, any>;

const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');

/** Series Prometheus makes itself for each target, beside the ones the service exports. */
const SYNTHETIC_SERIES = new Set(['up']);
/** Labels Prometheus attaches to every scraped series (target labels of the ServiceMonitor or a kubernetes_sd job). */
const TARGET_LABELS = new Set(['job', 'instance', 'namespace', 'pod', 'service', 'container', 'endpoint']);
const HISTOGRAM_SUFFIXES = ['_bucket', '_sum', '_count'] as const;
const PROMQL_KEYWORDS = new Set(['and', 'or', 'unless', 'bool', 'offset', 'inf', 'nan']);

interface Exported {
  type: string;
  labels: Set<string>;
  deprecated: boolean;
}

/** Every metric of the service's registry, by name (Node's defaults included), as /metrics exports it. */
async function exportedMetrics(): Promise<Map<string, Exported>> {
  const metrics = new ChatMetrics({ driver: {} } as unknown as DataSource);
  const out = new Map<string, Exported>();
  for (const m of await metrics.registry.getMetricsAsJSON()) {
    const single = metrics.registry.getSingleMetric(m.name) as unknown as { labelNames?: readonly string[] };
    out.set(m.name, { type: String(m.type), labels: new Set(single.labelNames ?? []), deprecated: m.help.startsWith('DEPRECATED') });
  }
  return out;
}

interface Selector {
  name: string;
  labels: string[];
}

/**
 * The metric names an expression selects, with the label names of their matchers. Enough PromQL
 * for these files: string literals, range and grouping clauses are removed first, then every
 * identifier that is not a function call or a keyword is a metric name.
 */
function selectors(expr: string): Selector[] {
  const withoutStrings = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""');
  const out: Selector[] = [];
  const bare = withoutStrings
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    .replace(/\{([^}]*)\}/g, (_, matchers: string) => `{${matchers.replace(/[^,]+/g, (m) => m.trim().split(/\s*(?:=~|!~|!=|=)/)[0])}}`);
  for (const m of bare.matchAll(/(?<![\w:.$])([A-Za-z_:][\w:]*)(?![\w:])(\s*\{[^}]*\})?(?!\s*\()/g)) {
    if (PROMQL_KEYWORDS.has(m[1].toLowerCase()) || /^(?:by|without|on|ignoring|group_left|group_right)$/.test(m[1])) continue;
    const labels = (m[2] ?? '')
      .replace(/[{}\s]/g, '')
      .split(',')
      .filter((l) => l !== '');
    out.push({ name: m[1], labels });
  }
  return out;
}

/** Problems with one expression against the exported metrics; empty when every selector is right. */
function problemsOf(expr: string, exported: Map<string, Exported>): string[] {
  const problems: string[] = [];
  const found = selectors(expr);
  if (found.length === 0) problems.push(`selects no metric: ${expr}`);
  for (const { name, labels } of found) {
    if (SYNTHETIC_SERIES.has(name)) continue;
    const direct = exported.get(name);
    const suffix = HISTOGRAM_SUFFIXES.find((s) => name.endsWith(s));
    const base = suffix ? exported.get(name.slice(0, -suffix.length)) : undefined;
    let metric: Exported | undefined;
    if (direct && direct.type !== 'histogram') metric = direct;
    else if (direct) problems.push(`${name} is a histogram: select ${name}_bucket, _sum or _count`);
    else if (base?.type === 'histogram' || (base?.type === 'summary' && suffix !== '_bucket')) metric = base;
    else problems.push(`${name} is not exported by the service`);
    if (!metric) continue;
    if (metric.deprecated) problems.push(`${name} is deprecated`);
    const allowed = new Set([...metric.labels, ...TARGET_LABELS, ...(suffix === '_bucket' ? ['le'] : [])]);
    for (const label of labels) if (!allowed.has(label)) problems.push(`${name} has no label ${label}`);
  }
  if (/histogram_quantile\s*\(/.test(expr)) {
    if (!found.some((s) => s.name.endsWith('_bucket'))) problems.push(`histogram_quantile over no _bucket series: ${expr}`);
    if (!/\bby\s*\([^)]*\ble\b[^)]*\)/.test(expr)) problems.push(`histogram_quantile without "by (le)": ${expr}`);
  }
  return problems;
}

describe('PromQL selectors (the parser these checks rest on)', () => {
  it('finds metric names and matcher labels, not functions, groupings, ranges or strings', () => {
    assert.deepEqual(
      selectors(
        'histogram_quantile(0.99, sum by (namespace, le) (rate(chat_ack_latency_seconds_bucket{job="chat-service", event="message.send"}[5m]))) > 0.5',
      ),
      [{ name: 'chat_ack_latency_seconds_bucket', labels: ['job', 'event'] }],
    );
    assert.deepEqual(selectors('a_total{code=~"x|y"} >= ignoring (state) b and up == 0'), [
      { name: 'a_total', labels: ['code'] },
      { name: 'b', labels: [] },
      { name: 'up', labels: [] },
    ]);
  });

  it('refuses an unknown metric, a bare histogram, a wrong suffix, an unknown label and a quantile without le', async () => {
    const exported = await exportedMetrics();
    assert.deepEqual(problemsOf('rate(chat_messages_stored_total[5m])', exported), []);
    assert.match(problemsOf('chat_no_such_metric', exported).join(), /not exported/);
    assert.match(problemsOf('rate(chat_ack_latency_seconds[5m])', exported).join(), /is a histogram/);
    assert.match(problemsOf('chat_connections_bucket', exported).join(), /not exported/);
    assert.match(problemsOf('chat_connections{state="idle"}', exported).join(), /no label state/);
    assert.match(problemsOf('chat_db_pool_connections{state="total"}', exported).join(), /deprecated/);
    assert.match(
      problemsOf('histogram_quantile(0.9, sum(rate(chat_fanout_lag_seconds_bucket[5m])))', exported).join(),
      /without "by \(le\)"/,
    );
  });
});

describe('docs/operations.md', () => {
  it('lists every chat_ metric the service exports, with its type', async () => {
    const rows = new Map([...read('docs/operations.md').matchAll(/^\| `(chat_\w+)` \| (\w+)/gm)].map((m) => [m[1], m[2]] as const));
    const wrong = [...(await exportedMetrics())]
      .filter(([name]) => name.startsWith('chat_'))
      .filter(([name, m]) => rows.get(name) !== m.type)
      .map(([name, m]) => `${name} (${m.type}): ${rows.get(name) ?? 'not listed'}`);
    assert.deepEqual(wrong, []);
  });
});

describe('deploy/prometheus/chat-alerts.yaml', () => {
  const file = 'deploy/prometheus/chat-alerts.yaml';
  const rules = (() => {
    const doc = parse(read(file)) as Obj;
    return ((doc.groups ?? []) as Obj[]).flatMap((g) => ((g.rules ?? []) as Obj[]).map((r): Obj => ({ group: String(g.name), ...r })));
  })();
  let exported: Map<string, Exported>;
  before(async () => {
    exported = await exportedMetrics();
  });

  it('holds uniquely named alerts, each with an expression, a for duration, a severity and a summary', () => {
    assert.ok(rules.length > 0, 'no rules');
    const names = rules.map((r) => r.alert as string);
    assert.equal(new Set(names).size, names.length, `duplicate alert names: ${names.join(', ')}`);
    for (const r of rules) {
      assert.ok(
        typeof r.alert === 'string' && /^[A-Z][A-Za-z0-9]*$/.test(r.alert),
        `${r.group}: not an alerting rule: ${JSON.stringify(r)}`,
      );
      assert.ok(typeof r.expr === 'string' && r.expr.trim() !== '', `${r.alert}: no expr`);
      assert.match(String(r.for ?? ''), /^(?:\d+(?:ms|s|m|h|d|w|y))+$/, `${r.alert}: no "for" duration`);
      assert.ok(['critical', 'warning', 'info'].includes(r.labels?.severity), `${r.alert}: severity ${r.labels?.severity}`);
      assert.ok(typeof r.annotations?.summary === 'string' && r.annotations.summary !== '', `${r.alert}: no summary annotation`);
    }
  });

  it('selects only series the service exports (or up), with the right histogram suffixes and labels', () => {
    const problems = rules.flatMap((r) => problemsOf(String(r.expr), exported).map((p) => `${r.alert}: ${p}`));
    assert.deepEqual(problems, []);
  });

  it('covers instance down, ack p99, outbox backlog, dead letters, the DB pool, fan-out lag and the relay leader', () => {
    const selected = new Set(rules.flatMap((r) => selectors(String(r.expr)).map((s) => s.name)));
    for (const name of [
      'up',
      'chat_ack_latency_seconds_bucket',
      'chat_events_outbox_backlog',
      'chat_webhook_dead_letters_total',
      'chat_db_pool_open_connections',
      'chat_db_pool_waiting_requests',
      'chat_fanout_lag_seconds_bucket',
      'chat_events_relay_leader',
    ])
      assert.ok(selected.has(name), `no alert on ${name}`);
  });

  // promtool is optional (Debian: the prometheus package); without it these two steps are skipped.
  const promtool = (t: { skip: (why: string) => void }, args: string[]) => {
    const res = spawnSync('promtool', args, { cwd: ROOT, encoding: 'utf8' });
    if (res.error) {
      t.skip('promtool is not installed: not checked by Prometheus itself');
      return;
    }
    assert.equal(res.status, 0, `promtool ${args.join(' ')} failed:\n${res.stdout}${res.stderr}`);
  };

  it('passes promtool check rules', (t) => promtool(t, ['check', 'rules', file]));

  it('fires as chat-alerts.test.yaml expects (promtool test rules)', (t) =>
    promtool(t, ['test', 'rules', 'deploy/prometheus/chat-alerts.test.yaml']));
});

describe('deploy/grafana/chat-dashboard.json', () => {
  const dashboard = JSON.parse(read('deploy/grafana/chat-dashboard.json')) as Obj;
  const panels = ((dashboard.panels ?? []) as Obj[]).flatMap((p) => [p, ...((p.panels ?? []) as Obj[])]);
  const variables = ((dashboard.templating?.list ?? []) as Obj[]).map((v) => String(v.name));
  const targets = panels.flatMap((p) => ((p.targets ?? []) as Obj[]).map((t) => ({ panel: String(p.title), expr: String(t.expr ?? '') })));
  /** Grafana's variables as a Prometheus query would see them after interpolation. */
  const interpolated = (expr: string) => expr.replace(/\$__(?:rate_)?interval\b/g, '5m').replace(/\$(\w+)/g, 'value-of-$1');
  let exported: Map<string, Exported>;
  before(async () => {
    exported = await exportedMetrics();
  });

  it('has a uid, unique panel ids, a position for every panel, and a query in every non-row panel', () => {
    assert.equal(typeof dashboard.uid, 'string');
    const ids = panels.map((p) => p.id as number);
    assert.equal(new Set(ids).size, ids.length, 'duplicate panel ids');
    for (const p of panels) {
      assert.ok(p.gridPos && Number.isInteger(p.gridPos.w) && Number.isInteger(p.gridPos.h), `${p.title}: no gridPos`);
      if (p.type !== 'row') assert.ok((p.targets ?? []).length > 0, `${p.title}: no query`);
    }
  });

  it('uses only variables it defines, and the data source through its variable', () => {
    for (const { panel, expr } of targets) {
      for (const m of expr.matchAll(/\$(?!__)(\w+)/g))
        assert.ok(variables.includes(m[1]), `${panel}: $${m[1]} is not a dashboard variable`);
    }
    for (const p of panels.filter((p) => p.type !== 'row'))
      assert.equal(p.datasource?.uid, '${datasource}', `${p.title}: fixed data source`);
    assert.ok(variables.includes('datasource'));
  });

  it('selects only series the service exports (or up), with the right histogram suffixes and labels', () => {
    const problems = targets.flatMap(({ panel, expr }) => problemsOf(interpolated(expr), exported).map((p) => `${panel}: ${p}`));
    assert.deepEqual(problems, []);
  });

  it('shows every chat_ metric the service exports, apart from the deprecated ones', () => {
    const shown = new Set(
      targets.flatMap(({ expr }) => selectors(interpolated(expr)).map((s) => s.name.replace(/_(?:bucket|sum|count)$/, ''))),
    );
    const missing = [...exported].filter(([name, m]) => name.startsWith('chat_') && !m.deprecated && !shown.has(name)).map(([n]) => n);
    assert.deepEqual(missing, [], `not on the dashboard: ${missing.join(', ')}`);
  });
});
