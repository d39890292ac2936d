// Static checks of the deployment files: docker-compose.yml (with dclint), the HAProxy config
// (with `haproxy -c`), the Dockerfile and .dockerignore, and the Kubernetes manifests under
// deploy/k8s. No network, no Docker, no cluster: files, two local tools and the service's own
// configuration parser.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import { describe, it } from 'node:test';
import { parse, parseAllDocuments } from 'yaml';
import { ConfigError, loadConfig } from '../src/config/config.schema.js';
import { ROOT } from './support/repo-root.js';

type Obj = Record<string, any>;

const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');

/** Every environment variable the service reads: the keys of the zod object in config.schema.ts. */
const SERVICE_VARIABLES = new Set([...read('src/config/config.schema.ts').matchAll(/^ {4}([A-Z][A-Z0-9_]*):/gm)].map((m) => m[1]));

/** Secrets in the compose file: each must be required from the environment, never defaulted or inlined. */
const COMPOSE_SECRETS = ['POSTGRES_PASSWORD', 'JWT_SECRET', 'LB_COOKIE_KEY'];

/** Idle connections must outlive HEARTBEAT_INTERVAL_MS + HEARTBEAT_TIMEOUT_MS (45 s by default). */
const HEARTBEAT_BUDGET_MS = 45_000;

function walkStrings(value: unknown, out: string[] = []): string[] {
  if (typeof value === 'string') out.push(value);
  else if (Array.isArray(value)) for (const v of value) walkStrings(v, out);
  else if (value && typeof value === 'object') for (const v of Object.values(value)) walkStrings(v, out);
  return out;
}

/** `${NAME}`, `${NAME:?msg}`, `${NAME:-default}` and `$NAME` references (not `$$` escapes), with their modifier. */
function variableReferences(strings: string[]): { name: string; modifier: string }[] {
  const refs: { name: string; modifier: string }[] = [];
  for (const s of strings) {
    for (const m of s.matchAll(/(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)([^}]*)\}/g)) refs.push({ name: m[1], modifier: m[2] });
    for (const m of s.matchAll(/(?<!\$)\$([A-Za-z_][A-Za-z0-9_]*)/g)) refs.push({ name: m[1], modifier: '' });
  }
  return refs;
}

/** Compose `environment:` in either form, as a map. */
function environmentOf(service: Obj): Record<string, string> {
  const env = service.environment;
  if (!env) return {};
  if (Array.isArray(env)) return Object.fromEntries(env.map((e: string) => [e.split('=')[0], e.slice(e.indexOf('=') + 1)]));
  return Object.fromEntries(Object.entries(env).map(([k, v]) => [k, String(v)]));
}

/** HAProxy time values: a number with an optional unit (us, ms, s, m, h, d); bare numbers are milliseconds. */
function haproxyMs(value: string): number {
  const m = /^(\d+)(us|ms|s|m|h|d)?$/.exec(value);
  assert.ok(m, `not an HAProxy time: ${value}`);
  const factor = { us: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] ?? 'ms']!;
  return Number(m[1]) * factor;
}

function cpuCores(q: string | number): number {
  const s = String(q);
  return s.endsWith('m') ? Number(s.slice(0, -1)) / 1000 : Number(s);
}

function memoryBytes(q: string | number): number {
  const m = /^(\d+(?:\.\d+)?)(Ki|Mi|Gi|Ti|k|M|G|T)?$/.exec(String(q));
  assert.ok(m, `not a memory quantity: ${q}`);
  const factor = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, k: 1e3, M: 1e6, G: 1e9, T: 1e12 }[m[2] ?? ''] ?? 1;
  return Number(m[1]) * factor;
}

/** Paths the Ingress and the HTTPRoute must route, and the ones they must keep inside the cluster. */
const CLIENT_PATHS = ['/socket.io/', '/ws', '/v1/rooms/lobby'];
const INTERNAL_PATHS = ['/metrics', '/health/ready', '/health/live'];

/** Exact: the whole path; a prefix (Prefix, PathPrefix, ImplementationSpecific taken as one): whole path elements. */
function pathMatches(exact: boolean, path: string, url: string): boolean {
  if (exact) return url === path;
  const prefix = path.replace(/\/+$/, '');
  return prefix === '' || url === prefix || url.startsWith(`${prefix}/`);
}

/** Whether a label selector (matchLabels or a Service selector) selects pods with these labels. */
function selects(selector: Record<string, string> | undefined, labels: Record<string, string> | undefined): boolean {
  if (!selector || Object.keys(selector).length === 0) return false;
  return Object.entries(selector).every(([k, v]) => labels?.[k] === v);
}

describe('docker-compose.yml', () => {
  const compose = parse(read('docker-compose.yml'), { merge: true }) as Obj;
  const services = (compose.services ?? {}) as Record<string, Obj>;

  it('passes dclint', () => {
    const res = spawnSync(join(ROOT, 'node_modules', '.bin', 'dclint'), ['docker-compose.yml'], { cwd: ROOT, encoding: 'utf8' });
    assert.equal(res.error, undefined, `dclint did not run: ${String(res.error)}`);
    assert.equal(res.status, 0, `dclint docker-compose.yml exited ${res.status}:\n${res.stdout}${res.stderr}`);
  });

  it('has the services postgres, redis, migrate, chat and lb', () => {
    for (const name of ['postgres', 'redis', 'migrate', 'chat', 'lb']) assert.ok(services[name], `service ${name} is missing`);
  });

  it('gives postgres and redis healthchecks', () => {
    for (const name of ['postgres', 'redis']) {
      const hc = services[name]?.healthcheck as Obj | undefined;
      assert.ok(hc?.test, `${name} has no healthcheck`);
      assert.notEqual(hc.disable, true, `${name}'s healthcheck is disabled`);
      assert.notDeepEqual(hc.test, ['NONE'], `${name}'s healthcheck is NONE`);
    }
  });

  it('runs 3 chat replicas, unnamed, after migrations and healthy postgres and redis', () => {
    const chat = services.chat;
    assert.equal(chat?.deploy?.replicas, 3);
    assert.equal(chat.container_name, undefined, 'a container_name prevents replicas');
    const deps = chat.depends_on as Obj;
    assert.ok(deps && !Array.isArray(deps), 'depends_on must use the long form with conditions');
    assert.equal(deps.migrate?.condition, 'service_completed_successfully');
    assert.equal(deps.postgres?.condition, 'service_healthy');
    assert.equal(deps.redis?.condition, 'service_healthy');
  });

  it('publishes exactly one port, on lb', () => {
    for (const [name, service] of Object.entries(services)) {
      if (name !== 'lb') assert.equal(service.ports, undefined, `${name} publishes ports; only lb may`);
    }
    assert.ok(Array.isArray(services.lb?.ports), 'lb publishes no port');
    assert.equal(services.lb.ports.length, 1, 'lb publishes more than one port');
  });

  it('mounts deploy/haproxy/haproxy.cfg into lb', () => {
    const mounts = ((services.lb?.volumes ?? []) as (string | Obj)[]).map((v) =>
      typeof v === 'string' ? { source: v.split(':')[0], target: v.split(':')[1] } : { source: String(v.source), target: String(v.target) },
    );
    const cfg = mounts.find((m) => posix.normalize(m.source) === 'deploy/haproxy/haproxy.cfg');
    assert.ok(cfg, `lb does not mount deploy/haproxy/haproxy.cfg: ${JSON.stringify(mounts)}`);
    if (String(services.lb.image).startsWith('haproxy:'))
      assert.equal(cfg.target, '/usr/local/etc/haproxy/haproxy.cfg', 'the haproxy image reads /usr/local/etc/haproxy/haproxy.cfg');
    assert.ok(existsSync(join(ROOT, 'deploy/haproxy/haproxy.cfg')));
  });

  it('requires every secret from the environment with ${VAR:?message}', () => {
    const refs = variableReferences(walkStrings(compose));
    for (const secret of COMPOSE_SECRETS) {
      const uses = refs.filter((r) => r.name === secret);
      assert.ok(uses.length > 0, `${secret} is never taken from the environment`);
      for (const use of uses) assert.match(use.modifier, /^:\?./, `\${${secret}${use.modifier}} must be \${${secret}:?message}`);
    }
    for (const [name, service] of Object.entries(services)) {
      for (const [key, value] of Object.entries(environmentOf(service))) {
        if (COMPOSE_SECRETS.includes(key))
          assert.match(value, /^\$\{[A-Z_]+:\?[^}]+\}$/, `${name}.environment.${key} is not required from .env`);
      }
    }
  });

  it('documents every variable it references in .env.example', () => {
    const documented = new Set([...read('.env.example').matchAll(/^\s*#?\s*([A-Za-z_][A-Za-z0-9_]*)=/gm)].map((m) => m[1]));
    const referenced = new Set(variableReferences(walkStrings(compose)).map((r) => r.name));
    assert.ok(referenced.size > 0, 'no variable references found: the scan is broken');
    const missing = [...referenced].filter((name) => !documented.has(name));
    assert.deepEqual(missing, [], `not in .env.example: ${missing.join(', ')}`);
  });
});

describe('deploy/haproxy/haproxy.cfg', () => {
  const cfg = read('deploy/haproxy/haproxy.cfg');
  // Directives only: comment lines dropped.
  const lines = cfg
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  const env = {
    LB_BIND: '127.0.0.1:18081',
    CHAT1_ADDR: '127.0.0.1:13001',
    CHAT2_ADDR: '127.0.0.1:13002',
    CHAT3_ADDR: '127.0.0.1:13003',
    LB_COOKIE_KEY: 'x',
  };

  it('passes haproxy -c with the variables it uses set', (t) => {
    const bin = ['/usr/sbin/haproxy', '/usr/local/sbin/haproxy', '/usr/bin/haproxy'].find((p) => existsSync(p));
    if (!bin) {
      t.skip('haproxy is not installed (looked for /usr/sbin/haproxy): config check not run');
      return;
    }
    const used = [...new Set([...cfg.matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g)].map((m) => m[1]))];
    const unknown = used.filter((name) => !(name in env));
    assert.deepEqual(unknown, [], `haproxy.cfg uses variables this test gives no value: ${unknown.join(', ')}`);
    const res = spawnSync(bin, ['-c', '-f', 'deploy/haproxy/haproxy.cfg'], {
      cwd: ROOT,
      encoding: 'utf8',
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ...env },
    });
    assert.equal(res.status, 0, `haproxy -c failed:\n${res.stdout}${res.stderr}`);
  });

  it('keeps idle connections (client, server, tunnel) open longer than the heartbeat', () => {
    for (const kind of ['client', 'server', 'tunnel']) {
      const values = lines.map((l) => new RegExp(`^timeout\\s+${kind}\\s+(\\S+)`).exec(l)?.[1]).filter((v) => v !== undefined);
      assert.ok(values.length > 0, `no "timeout ${kind}"`);
      for (const v of values) assert.ok(haproxyMs(v) > HEARTBEAT_BUDGET_MS, `timeout ${kind} ${v} is not above 45 s`);
    }
  });

  it('pins polling sessions with an inserted cookie and health-checks /health/ready', () => {
    assert.ok(
      lines.some((l) => /^cookie\s+\S+\s+(?:\S+\s+)*insert\b/.test(l)),
      'no "cookie <name> insert"',
    );
    assert.ok(
      lines.some(
        (l) =>
          /^option\s+httpchk\s+(?:(?:GET|HEAD)\s+)?\/health\/ready\b/.test(l) || /^http-check\s+send\b.*\buri\s+\/health\/ready\b/.test(l),
      ),
      'no httpchk on /health/ready',
    );
  });

  it('logs requests without the query string', () => {
    const formats = lines.filter((l) => /^log-format\s/.test(l));
    assert.ok(formats.length > 0, 'no log-format: the default HTTP log contains the query string');
    for (const f of formats) {
      // %r is the request line, %HU the URI, %HQ the query string (%rc, %rt are counters).
      assert.doesNotMatch(f, /%(?:\{[^}]*\})?(?:r(?![a-z])|HU|HQ)/, `log-format logs the query string: ${f}`);
    }
    assert.ok(!lines.some((l) => /^option\s+https?log\b/.test(l)), 'option httplog/httpslog logs the request line with its query string');
  });
});

interface DockerInstruction {
  instr: string;
  args: string;
}

/** Dockerfile instructions, continuation lines joined, comment lines dropped. */
function dockerInstructions(text: string): DockerInstruction[] {
  const out: DockerInstruction[] = [];
  let current = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line.startsWith('#') || (line === '' && current === '')) continue;
    if (line.endsWith('\\')) {
      current += line.slice(0, -1) + ' ';
      continue;
    }
    current += line;
    const m = /^(\S+)\s*(.*)$/s.exec(current.trim());
    if (m) out.push({ instr: m[1].toUpperCase(), args: m[2].trim() });
    current = '';
  }
  return out;
}

/** The npm commands of a RUN, in order (`npm ci`, `npm prune --omit=dev`, ...). */
function npmCommands(run: string): string[] {
  return run
    .replace(/^(?:--\S+\s+)*/, '')
    .split(/&&|\|\||;/)
    .map((c) => c.trim())
    .filter((c) => /^npm\s/.test(c));
}

describe('Dockerfile', () => {
  const instructions = dockerInstructions(read('Dockerfile'));
  const stages: { base: string; name: string | null; body: DockerInstruction[] }[] = [];
  for (const ins of instructions) {
    if (ins.instr === 'FROM') {
      const m = /^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args);
      stages.push({ base: m?.[1] ?? ins.args, name: m?.[2] ?? null, body: [] });
    } else stages.at(-1)?.body.push(ins);
  }
  const final = stages.at(-1);
  const finalBody = final?.body ?? [];

  it('is multi-stage', () => {
    assert.ok(stages.length >= 2, `${stages.length} FROM`);
  });

  it('pins every base image to a Node 22 patch release', () => {
    const earlier = new Set<string>();
    for (const stage of stages) {
      if (!earlier.has(stage.base))
        assert.match(stage.base, /^node:22\.\d+\.\d+(?:-[A-Za-z0-9._-]+)?(?:@sha256:[0-9a-f]{64})?$/, `FROM ${stage.base}`);
      if (stage.name) earlier.add(stage.name);
    }
  });

  it('runs the final stage as a non-root user', () => {
    const user = finalBody.filter((i) => i.instr === 'USER').at(-1)?.args;
    assert.ok(user, 'the final stage has no USER: it runs as root');
    assert.doesNotMatch(user, /^(?:root|0)(?::.*)?$/, `USER ${user}`);
  });

  it('has a HEALTHCHECK on /health/live and starts with exec-form CMD ["node", "dist/main.js"]', () => {
    const hc = finalBody.filter((i) => i.instr === 'HEALTHCHECK').at(-1)?.args;
    assert.ok(hc, 'no HEALTHCHECK in the final stage');
    assert.doesNotMatch(hc, /^NONE$/i);
    assert.match(hc, /\/health\/live\b/);
    const cmd = finalBody.filter((i) => i.instr === 'CMD').at(-1)?.args;
    assert.ok(cmd, 'no CMD in the final stage');
    let parsed: unknown;
    assert.doesNotThrow(() => (parsed = JSON.parse(cmd)), `CMD is not exec form: ${cmd}`);
    assert.deepEqual(parsed, ['node', 'dist/main.js']);
  });

  it('ships node_modules from a stage that dropped the dev dependencies', () => {
    const copies = finalBody.filter((i) => (i.instr === 'COPY' || i.instr === 'ADD') && /node_modules/.test(i.args));
    assert.ok(copies.length > 0, 'the final stage copies no node_modules');
    for (const copy of copies) {
      const from = /--from=(\S+)/.exec(copy.args)?.[1];
      assert.ok(from, `node_modules copied from the build context: ${copy.args}`);
      const source = /^\d+$/.test(from) ? stages[Number(from)] : stages.find((s) => s.name === from);
      assert.ok(source && source !== final, `--from=${from} is not an earlier stage`);
      const npm = source.body.filter((i) => i.instr === 'RUN').flatMap((i) => npmCommands(i.args));
      const last = npm.filter((c) => /^npm\s+(?:ci|install|i|add|prune)\b/.test(c)).at(-1);
      assert.ok(last, `stage ${from} installs nothing with npm`);
      assert.match(last, /^npm\s+(?:ci|prune)\b.*--omit[= ]dev\b/, `the last npm step of stage ${from} keeps dev dependencies: ${last}`);
    }
    const finalInstalls = finalBody.filter((i) => i.instr === 'RUN').flatMap((i) => npmCommands(i.args));
    for (const c of finalInstalls) {
      if (/^npm\s+(?:ci|install|i|add)\b/.test(c)) assert.match(c, /--omit[= ]dev\b/, `the final stage installs dev dependencies: ${c}`);
    }
  });

  it('.dockerignore excludes node_modules, .git and .env', () => {
    const entries = new Set(
      read('.dockerignore')
        .split('\n')
        .map((l) => l.trim())
        .filter((l) => l !== '' && !l.startsWith('#'))
        .map((l) => l.replace(/^\.?\//, '').replace(/\/$/, '')),
    );
    for (const e of ['node_modules', '.git', '.env']) assert.ok(entries.has(e), `.dockerignore does not exclude ${e}`);
  });
});

describe('deploy/k8s manifests', () => {
  const dir = join(ROOT, 'deploy', 'k8s');
  const files = readdirSync(dir)
    .filter((f) => /\.ya?ml$/.test(f))
    .sort();
  const docs: { file: string; doc: Obj }[] = [];
  const parseErrors: string[] = [];
  for (const file of files) {
    for (const d of parseAllDocuments(readFileSync(join(dir, file), 'utf8'))) {
      if (d.errors.length > 0) parseErrors.push(`${file}: ${d.errors.map((e) => e.message).join('; ')}`);
      else if (d.contents !== null) docs.push({ file, doc: d.toJS() as Obj });
    }
  }
  const ofKind = (kind: string) => docs.filter((d) => d.doc?.kind === kind).map((d) => d.doc);
  const one = (kind: string): Obj => {
    const found = ofKind(kind);
    assert.equal(found.length, 1, `expected one ${kind}, found ${found.length}`);
    return found[0];
  };
  const deploymentAndContainer = () => {
    const deployment = one('Deployment');
    const container = (deployment.spec?.template?.spec?.containers ?? [])[0] as Obj | undefined;
    assert.ok(container, 'the Deployment has no container');
    return { deployment, pod: deployment.spec.template.spec as Obj, container };
  };
  /** The ConfigMap's settings as the service would read them, with valid stand-ins for the Secret's placeholders. */
  const realisticEnv = () => ({
    ...(one('ConfigMap').data as Record<string, string>),
    DATABASE_URL: 'postgres://chat:password@db.example.internal:5432/chat?sslmode=verify-full',
    REDIS_URL: 'rediss://:password@redis.example.internal:6380',
    JWT_SECRET: 'a-real-secret-of-at-least-32-characters',
    API_KEYS: 'an-api-key-of-16-chars-or-more',
    ALLOWED_ORIGINS: 'https://app.example.com',
  });

  it('all parse, and every object has apiVersion, kind and a name but no namespace', () => {
    assert.ok(files.length > 0, 'no manifests in deploy/k8s');
    assert.deepEqual(parseErrors, []);
    for (const { file, doc } of docs) {
      assert.ok(doc.apiVersion && doc.kind, `${file}: apiVersion or kind missing`);
      if (doc.kind === 'Kustomization') continue;
      assert.ok(doc.metadata?.name, `${file}: metadata.name missing`);
      assert.equal(doc.metadata.namespace, undefined, `${file}: sets a namespace; the manifests are namespace-agnostic`);
    }
  });

  it('contain a ConfigMap, Secret, Job, Deployment, Service, HorizontalPodAutoscaler, PodDisruptionBudget and Ingress', () => {
    const kinds = new Set(docs.map((d) => d.doc.kind));
    for (const kind of ['ConfigMap', 'Secret', 'Job', 'Deployment', 'Service', 'HorizontalPodAutoscaler', 'PodDisruptionBudget', 'Ingress'])
      assert.ok(kinds.has(kind), `no ${kind}`);
  });

  it('kustomization.yaml lists every manifest file, and only those', () => {
    const kustomization = docs.find((d) => d.file === 'kustomization.yaml')?.doc;
    assert.ok(kustomization, 'no kustomization.yaml');
    const listed = [...((kustomization.resources ?? []) as string[])].sort();
    assert.deepEqual(
      listed,
      files.filter((f) => f !== 'kustomization.yaml'),
    );
  });

  it('ConfigMap and Secret hold only variables the service reads, and the ConfigMap sets NODE_ENV=production', () => {
    assert.ok(SERVICE_VARIABLES.has('DATABASE_URL') && SERVICE_VARIABLES.size >= 20, 'could not read the variables of config.schema.ts');
    const configMap = one('ConfigMap');
    assert.equal(configMap.data?.NODE_ENV, 'production');
    const secret = one('Secret');
    assert.deepEqual(Object.keys(secret.stringData ?? {}).sort(), [
      'ALLOWED_ORIGINS',
      'API_KEYS',
      'DATABASE_URL',
      'JWT_SECRET',
      'REDIS_URL',
    ]);
    for (const key of [...Object.keys(configMap.data ?? {}), ...Object.keys(secret.stringData ?? {})])
      assert.ok(SERVICE_VARIABLES.has(key), `${key} is not a variable of src/config/config.schema.ts`);
    for (const [key, value] of Object.entries(configMap.data ?? {})) assert.equal(typeof value, 'string', `${key} must be a string`);
  });

  it('the ConfigMap passes the service configuration check, and each unreplaced Secret placeholder is refused by name', () => {
    const env = realisticEnv();
    assert.doesNotThrow(() => loadConfig(env));
    const placeholders = one('Secret').stringData as Record<string, string>;
    for (const [key, placeholder] of Object.entries(placeholders)) {
      assert.throws(
        () => loadConfig({ ...env, [key]: placeholder }),
        (err: unknown) => err instanceof ConfigError && err.problems.some((p) => p.startsWith(`${key}:`)),
        `the placeholder of ${key} (${placeholder}) would be accepted: a replica could run with it`,
      );
    }
  });

  it('the Deployment probes /health/ready and /health/live on the http port 3000', () => {
    const { container } = deploymentAndContainer();
    const http = (container.ports ?? []).find((p: Obj) => p.name === 'http');
    assert.equal(http?.containerPort, 3000, 'no containerPort 3000 named http');
    assert.equal(one('ConfigMap').data?.PORT ?? '3000', String(http.containerPort), 'PORT and containerPort differ');
    const port = (probe: Obj) => probe?.httpGet?.port;
    assert.equal(container.readinessProbe?.httpGet?.path, '/health/ready');
    assert.equal(container.livenessProbe?.httpGet?.path, '/health/live');
    assert.ok(container.startupProbe, 'no startupProbe');
    for (const probe of [container.readinessProbe, container.livenessProbe, container.startupProbe])
      assert.ok(port(probe) === 'http' || port(probe) === 3000, `probe on port ${port(probe)}`);
    assert.equal(container.readinessProbe.periodSeconds, 2);
    assert.equal(container.readinessProbe.failureThreshold, 2);
  });

  it('the Deployment sets resource requests and limits within each other', () => {
    const { container } = deploymentAndContainer();
    const { requests, limits } = container.resources ?? {};
    for (const r of ['cpu', 'memory']) {
      assert.ok(requests?.[r] !== undefined, `no ${r} request`);
      assert.ok(limits?.[r] !== undefined, `no ${r} limit`);
    }
    assert.ok(cpuCores(requests.cpu) > 0 && cpuCores(requests.cpu) <= cpuCores(limits.cpu), 'cpu request above its limit');
    assert.ok(memoryBytes(requests.memory) <= memoryBytes(limits.memory), 'memory request above its limit');
  });

  it('the Deployment runs non-root, without privilege escalation, read-only, with no capabilities', () => {
    const { pod, container } = deploymentAndContainer();
    const sc = container.securityContext ?? {};
    const podSc = pod.securityContext ?? {};
    assert.equal(sc.runAsNonRoot ?? podSc.runAsNonRoot, true, 'runAsNonRoot');
    const uid = sc.runAsUser ?? podSc.runAsUser;
    assert.ok(typeof uid === 'number' && uid > 0, `runAsUser ${uid}`);
    assert.equal(sc.allowPrivilegeEscalation, false, 'allowPrivilegeEscalation');
    assert.equal(sc.readOnlyRootFilesystem, true, 'readOnlyRootFilesystem');
    assert.ok((sc.capabilities?.drop ?? []).includes('ALL'), 'capabilities.drop ALL');
    const tmp = (container.volumeMounts ?? []).find((m: Obj) => m.mountPath === '/tmp');
    assert.ok(tmp, 'no writable /tmp on a read-only root filesystem');
    assert.ok((pod.volumes ?? []).find((v: Obj) => v.name === tmp.name)?.emptyDir, '/tmp is not an emptyDir');
  });

  it('the Deployment drains: preStop, then SIGTERM, all within terminationGracePeriodSeconds', () => {
    const { pod, container } = deploymentAndContainer();
    const preStop = container.lifecycle?.preStop as Obj | undefined;
    assert.ok(preStop, 'no preStop hook');
    let preStopSeconds = 0;
    if (preStop.sleep) preStopSeconds = Number(preStop.sleep.seconds);
    else if (preStop.exec) {
      const [cmd, arg] = preStop.exec.command ?? [];
      assert.match(String(cmd), /^(?:\/bin\/|\/usr\/bin\/)?sleep$/, `preStop runs ${cmd}, expected sleep`);
      preStopSeconds = Number(arg);
    }
    assert.ok(preStopSeconds > 0, 'preStop does not wait');
    const grace = pod.terminationGracePeriodSeconds;
    assert.ok(typeof grace === 'number' && grace > 10, `terminationGracePeriodSeconds ${grace} is not above SHUTDOWN_TIMEOUT_MS (10 s)`);
    const config = loadConfig(realisticEnv());
    assert.ok(
      preStopSeconds + config.shutdown.timeoutMs / 1000 < grace,
      `preStop ${preStopSeconds} s + SHUTDOWN_TIMEOUT_MS ${config.shutdown.timeoutMs} ms must stay under ${grace} s`,
    );
    const readiness = container.readinessProbe;
    assert.ok(
      readiness.periodSeconds * readiness.failureThreshold * 1000 <= config.shutdown.drainMs,
      `SHUTDOWN_DRAIN_MS ${config.shutdown.drainMs} is shorter than readiness needs to notice (${readiness.periodSeconds} s x ${readiness.failureThreshold})`,
    );
  });

  it('the Deployment rolls one extra pod at a time, runs 3 replicas and spreads them across nodes', () => {
    const { deployment, pod } = deploymentAndContainer();
    assert.equal(deployment.spec.replicas, 3);
    assert.equal(deployment.spec.strategy?.type ?? 'RollingUpdate', 'RollingUpdate');
    assert.equal(deployment.spec.strategy?.rollingUpdate?.maxUnavailable, 0);
    assert.equal(deployment.spec.strategy?.rollingUpdate?.maxSurge, 1);
    const labels = deployment.spec.template.metadata?.labels;
    const spread = (pod.topologySpreadConstraints ?? []).some(
      (c: Obj) => c.topologyKey === 'kubernetes.io/hostname' && selects(c.labelSelector?.matchLabels, labels),
    );
    const anti = [
      ...(pod.affinity?.podAntiAffinity?.requiredDuringSchedulingIgnoredDuringExecution ?? []),
      ...(pod.affinity?.podAntiAffinity?.preferredDuringSchedulingIgnoredDuringExecution ?? []).map((p: Obj) => p.podAffinityTerm),
    ].some((t: Obj) => t?.topologyKey === 'kubernetes.io/hostname' && selects(t.labelSelector?.matchLabels, labels));
    assert.ok(spread || anti, 'replicas are not spread across nodes');
  });

  it('the Job runs node dist/migrate.js once, non-root, with the same environment as the Deployment', () => {
    const job = one('Job');
    const pod = job.spec?.template?.spec as Obj;
    const container = pod?.containers?.[0] as Obj;
    const argv = [...(container?.command ?? []), ...(container?.args ?? [])];
    assert.deepEqual(argv, ['node', 'dist/migrate.js']);
    assert.ok(Number.isInteger(job.spec.backoffLimit), 'no backoffLimit');
    assert.ok(Number.isInteger(job.spec.ttlSecondsAfterFinished), 'no ttlSecondsAfterFinished');
    assert.ok(['Never', 'OnFailure'].includes(pod.restartPolicy), `restartPolicy ${pod.restartPolicy}`);
    const sc = { ...(pod.securityContext ?? {}), ...(container.securityContext ?? {}) };
    assert.equal(sc.runAsNonRoot, true, 'runAsNonRoot');
    assert.equal(container.securityContext?.allowPrivilegeEscalation, false, 'allowPrivilegeEscalation');
    const { container: server } = deploymentAndContainer();
    assert.deepEqual(container.envFrom, server.envFrom, 'the Job and the Deployment read different settings');
    assert.equal(container.image, server.image, 'the Job and the Deployment run different images');
  });

  it('the Deployment reads the ConfigMap and the Secret defined here', () => {
    const { container } = deploymentAndContainer();
    const envFrom = (container.envFrom ?? []) as Obj[];
    assert.ok(
      envFrom.some((e) => e.configMapRef?.name === one('ConfigMap').metadata.name),
      'the ConfigMap is not in envFrom',
    );
    assert.ok(
      envFrom.some((e) => e.secretRef?.name === one('Secret').metadata.name),
      'the Secret is not in envFrom',
    );
  });

  it('Deployment, Service, PDB and HPA select the same pods, and never the migration pod', () => {
    const { deployment } = deploymentAndContainer();
    const labels = deployment.spec.template.metadata?.labels as Record<string, string>;
    const jobLabels = one('Job').spec?.template?.metadata?.labels as Record<string, string> | undefined;
    assert.ok(selects(deployment.spec.selector?.matchLabels, labels), 'the Deployment selector does not match its pods');
    const service = one('Service');
    assert.ok(selects(service.spec?.selector, labels), 'the Service does not select the Deployment pods');
    assert.ok(!selects(service.spec.selector, jobLabels), 'the Service would send traffic to the migration pod');
    const pdb = one('PodDisruptionBudget');
    assert.ok(selects(pdb.spec?.selector?.matchLabels, labels), 'the PDB does not select the Deployment pods');
    assert.ok(!selects(pdb.spec.selector.matchLabels, jobLabels), 'the PDB counts the migration pod');
    const target = one('HorizontalPodAutoscaler').spec?.scaleTargetRef;
    assert.deepEqual(target, { apiVersion: 'apps/v1', kind: 'Deployment', name: deployment.metadata.name });
  });

  it('the Service is a ClusterIP on port 80 to the http port, with ClientIP affinity', () => {
    const spec = one('Service').spec;
    assert.equal(spec.type ?? 'ClusterIP', 'ClusterIP');
    assert.equal(spec.sessionAffinity, 'ClientIP');
    const port = (spec.ports ?? []).find((p: Obj) => p.port === 80);
    assert.ok(port, 'no port 80');
    const { container } = deploymentAndContainer();
    assert.ok(
      (container.ports ?? []).some((p: Obj) => p.name === port.targetPort || p.containerPort === port.targetPort),
      `targetPort ${port.targetPort} is no container port`,
    );
  });

  it('the Ingress routes to the Service with long timeouts and cookie affinity', () => {
    const ingress = one('Ingress');
    const a = ingress.metadata?.annotations ?? {};
    for (const key of ['proxy-read-timeout', 'proxy-send-timeout']) {
      const seconds = Number(a[`nginx.ingress.kubernetes.io/${key}`]);
      assert.ok(seconds * 1000 > HEARTBEAT_BUDGET_MS, `${key} ${a[`nginx.ingress.kubernetes.io/${key}`]} is not above 45 s`);
    }
    assert.equal(a['nginx.ingress.kubernetes.io/affinity'], 'cookie');
    const service = one('Service');
    const backends = (ingress.spec?.rules ?? []).flatMap((r: Obj) => (r.http?.paths ?? []).map((p: Obj) => p.backend?.service));
    assert.ok(backends.length > 0, 'the Ingress has no backends');
    for (const b of backends) {
      assert.equal(b?.name, service.metadata.name);
      assert.ok(
        (service.spec.ports ?? []).some((p: Obj) => p.name === b.port?.name || p.port === b.port?.number),
        `backend port ${JSON.stringify(b.port)} is not a Service port`,
      );
    }
  });

  it('the Ingress routes the client paths only: never /metrics or /health', () => {
    const paths = (one('Ingress').spec?.rules ?? []).flatMap((r: Obj) => (r.http?.paths ?? []) as Obj[]);
    const routes = (url: string) => paths.some((p: Obj) => pathMatches(p.pathType === 'Exact', String(p.path ?? '/'), url));
    for (const url of CLIENT_PATHS) assert.ok(routes(url), `${url} is not routed`);
    for (const url of INTERNAL_PATHS) assert.ok(!routes(url), `${url} is public through the Ingress`);
  });

  it('the HPA scales 3 to 10 replicas on 70 % CPU, and the PDB allows one disruption', () => {
    const hpa = one('HorizontalPodAutoscaler');
    assert.equal(hpa.apiVersion, 'autoscaling/v2');
    assert.equal(hpa.spec.minReplicas, 3);
    assert.equal(hpa.spec.maxReplicas, 10);
    const cpu = (hpa.spec.metrics ?? []).find((m: Obj) => m.type === 'Resource' && m.resource?.name === 'cpu');
    assert.equal(cpu?.resource?.target?.type, 'Utilization');
    assert.equal(cpu.resource.target.averageUtilization, 70);
    const pdb = one('PodDisruptionBudget').spec;
    assert.ok(pdb.maxUnavailable === 1 || pdb.minAvailable === 2, `PDB ${JSON.stringify(pdb)}`);
  });
});

describe('deploy/k8s components (optional, for clusters with their CRDs)', () => {
  const base = join(ROOT, 'deploy', 'k8s');
  const load = (file: string) => parseAllDocuments(readFileSync(join(base, file), 'utf8')).map((d) => d.toJS() as Obj);
  const [service] = load('service.yaml');
  const components = readdirSync(join(base, 'components')).sort();
  const componentObject = (kind: string): Obj => {
    const found = components.flatMap((c) =>
      readdirSync(join(base, 'components', c))
        .filter((f) => f !== 'kustomization.yaml' && /\.ya?ml$/.test(f))
        .flatMap((f) => load(`components/${c}/${f}`)),
    );
    const matching = found.filter((o) => o.kind === kind);
    assert.equal(matching.length, 1, `expected one ${kind} among the components, found ${matching.length}`);
    return matching[0];
  };

  it('are kustomize Components listing every manifest beside them, and the base lists none of them', () => {
    assert.deepEqual(components, ['gateway-api', 'prometheus-operator']);
    for (const c of components) {
      const dir = join(base, 'components', c);
      const [kustomization] = load(`components/${c}/kustomization.yaml`);
      assert.equal(kustomization.kind, 'Component', `${c}: a Component, so an overlay adds it with components:`);
      const files = readdirSync(dir)
        .filter((f) => f !== 'kustomization.yaml' && /\.ya?ml$/.test(f))
        .sort();
      assert.deepEqual([...(kustomization.resources as string[])].sort(), files, `${c}/kustomization.yaml`);
      for (const f of files)
        for (const o of load(`components/${c}/${f}`)) assert.equal(o.metadata?.namespace, undefined, `${c}/${f} sets a namespace`);
    }
    const [baseKustomization] = load('kustomization.yaml');
    assert.ok(!(baseKustomization.resources as string[]).some((r) => r.startsWith('components')), 'the base must apply without the CRDs');
  });

  it('build with the base in an overlay (kubectl kustomize)', (t) => {
    // An overlay inside the repository (kustomize refuses absolute paths), in the ignored build directory.
    const overlay = join(ROOT, '.test-build', 'kustomize-overlay');
    mkdirSync(overlay, { recursive: true });
    writeFileSync(
      join(overlay, 'kustomization.yaml'),
      [
        'apiVersion: kustomize.config.k8s.io/v1beta1',
        'kind: Kustomization',
        'namespace: chat',
        'resources: [../../deploy/k8s]',
        'components: [../../deploy/k8s/components/prometheus-operator, ../../deploy/k8s/components/gateway-api]',
        '',
      ].join('\n'),
    );
    const res = spawnSync('kubectl', ['kustomize', overlay], { encoding: 'utf8' });
    if (res.error) {
      t.skip('kubectl is not installed: the overlay is not built');
      return;
    }
    assert.equal(res.status, 0, `kubectl kustomize failed:\n${res.stderr}`);
    const built = parseAllDocuments(res.stdout).map((d) => d.toJS() as Obj);
    const kinds = built.map((o) => String(o.kind)).sort();
    for (const kind of ['ServiceMonitor', 'HTTPRoute', 'Ingress', 'Deployment', 'Job'])
      assert.ok(kinds.includes(kind), `no ${kind} in ${kinds.join(', ')}`);
    for (const o of built) assert.equal(o.metadata?.namespace, 'chat', `${o.kind} outside the overlay's namespace`);
  });

  it('the ServiceMonitor scrapes /metrics on a port of the Service it selects', () => {
    const monitor = componentObject('ServiceMonitor');
    assert.equal(monitor.apiVersion, 'monitoring.coreos.com/v1');
    assert.ok(selects(monitor.spec?.selector?.matchLabels, service.metadata.labels), 'the ServiceMonitor does not select the Service');
    const endpoints = (monitor.spec.endpoints ?? []) as Obj[];
    assert.ok(endpoints.length > 0, 'no endpoints');
    for (const e of endpoints) {
      assert.equal(e.path ?? '/metrics', '/metrics');
      assert.ok(
        (service.spec.ports as Obj[]).some((p) => p.name === e.port),
        `endpoint port ${e.port} is not a named port of the Service`,
      );
    }
    // The alert rules select the job the Operator derives from jobLabel (or the Service's name).
    const job = monitor.spec.jobLabel ? service.metadata.labels[monitor.spec.jobLabel] : service.metadata.name;
    assert.equal(job, 'chat-service', 'deploy/prometheus/chat-alerts.yaml selects job="chat-service"');
  });

  it('the HTTPRoute routes what the Ingress routes to the Service, without a request timeout on the long-lived paths', () => {
    const route = componentObject('HTTPRoute');
    assert.equal(route.apiVersion, 'gateway.networking.k8s.io/v1');
    assert.ok((route.spec?.parentRefs ?? []).length > 0, 'no parentRefs');
    const rules = (route.spec.rules ?? []) as Obj[];
    for (const rule of rules) {
      for (const b of (rule.backendRefs ?? []) as Obj[]) {
        assert.equal(b.name, service.metadata.name);
        assert.ok(
          (service.spec.ports as Obj[]).some((p) => p.port === b.port),
          `backend port ${b.port} is not a Service port`,
        );
      }
    }
    const ruleFor = (url: string) =>
      rules.find((r) =>
        ((r.matches ?? [{ path: { type: 'PathPrefix', value: '/' } }]) as Obj[]).some((m) =>
          pathMatches(m.path?.type === 'Exact', String(m.path?.value ?? '/'), url),
        ),
      );
    for (const url of CLIENT_PATHS) assert.ok(ruleFor(url), `${url} is not routed`);
    for (const url of INTERNAL_PATHS) assert.equal(ruleFor(url), undefined, `${url} is public through the HTTPRoute`);
    // Long-polls are held up to the ping interval (25 s), WebSockets for hours: no timeout ("0s") or one above the heartbeat.
    for (const url of ['/socket.io/', '/ws']) {
      const timeout = String(ruleFor(url)?.timeouts?.request ?? '');
      const m = /^(\d+)(ms|s|m|h)$/.exec(timeout);
      assert.ok(m, `${url}: no request timeout set (implementations default to as little as 15 s)`);
      const ms = Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'ms' | 's' | 'm' | 'h'];
      assert.ok(ms === 0 || ms > HEARTBEAT_BUDGET_MS, `${url}: request timeout ${timeout} cuts long-polls and WebSockets`);
    }
  });

  it('the migration Job is a Helm pre-install/pre-upgrade hook and an Argo CD hook ordered after the settings and before the replicas', () => {
    const [job] = load('migrate-job.yaml');
    const a = (job.metadata?.annotations ?? {}) as Record<string, string>;
    const helmHooks = (a['helm.sh/hook'] ?? '').split(',').map((h) => h.trim());
    assert.ok(helmHooks.includes('pre-install') && helmHooks.includes('pre-upgrade'), `helm.sh/hook: ${a['helm.sh/hook']}`);
    // A Job's pod template is immutable: the previous one must go before the next is created.
    assert.match(a['helm.sh/hook-delete-policy'] ?? '', /\bbefore-hook-creation\b/);
    assert.ok(['PreSync', 'Sync'].includes(a['argocd.argoproj.io/hook']), `argocd.argoproj.io/hook: ${a['argocd.argoproj.io/hook']}`);
    assert.match(a['argocd.argoproj.io/hook-delete-policy'] ?? '', /\bBeforeHookCreation\b/);
    const wave = (o: Obj) => Number(o.metadata?.annotations?.['argocd.argoproj.io/sync-wave'] ?? 0);
    const [configMap] = load('configmap.yaml');
    const [secret] = load('secret.yaml');
    const [deployment] = load('deployment.yaml');
    if (a['argocd.argoproj.io/hook'] === 'Sync') {
      assert.ok(wave(configMap) < wave(job) && wave(secret) < wave(job), 'the Job would start before the settings it reads');
      assert.ok(wave(job) < wave(deployment), 'the replicas would roll out before the migration');
    }
  });
});
