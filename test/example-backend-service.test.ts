import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { pathToFileURL } from 'node:url';
import { Redis } from 'ioredis';
import { createTestDatabase, type TestDatabase } from './support/database.js';
import { clusterEnv, PROJECT_ROOT, redisPrefix, SHARED_REDIS_URL, startInstance, type Instance } from './support/instance.js';

const API_KEY = 'example-backend-service-key-0123456789';
const EXAMPLE = join(PROJECT_ROOT, 'examples', 'backend-service');
const RUN_LIMIT_MS = 30_000;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the example as its README says, killed after RUN_LIMIT_MS if it has not stopped by itself. */
function runExample(env: Record<string, string>, args: string[]): Promise<Run> {
  const proc = spawn(process.execPath, [join(EXAMPLE, 'index.mjs'), ...args], {
    cwd: PROJECT_ROOT,
    env: { PATH: process.env.PATH ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  proc.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => proc.kill('SIGKILL'), RUN_LIMIT_MS);
  return new Promise((resolve) =>
    proc.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    }),
  );
}

/** The `event {...}` lines of the example's output, parsed. */
function printedEvents(stdout: string): { id: string; type: string; roomId: string; data: any }[] {
  return stdout
    .split('\n')
    .filter((line) => line.startsWith('event '))
    .map((line) => JSON.parse(line.slice('event '.length).replace(/ \(entry [^)]*\)$/, '')));
}

describe('examples/backend-service', () => {
  let db: TestDatabase;
  let inst: Instance;
  let redis: Redis;
  let stream: string;

  before(async () => {
    db = await createTestDatabase();
    const prefix = redisPrefix();
    stream = `${prefix}.events`;
    redis = new Redis(SHARED_REDIS_URL, { maxRetriesPerRequest: 1 });
    inst = await startInstance('A', { ...clusterEnv(db.url, prefix), API_KEYS: API_KEY, EVENTS_STREAM: stream });
  });
  after(async () => {
    await inst?.stop();
    await db?.drop();
    if (redis) {
      await redis.del(stream, `${stream}.unit`);
      redis.disconnect();
    }
  });

  it('creates a private room with two members, posts a system message, and prints the events of all three from the stream', async () => {
    const run = await runExample(
      { CHAT_URL: inst.url, CHAT_API_KEY: API_KEY, REDIS_URL: SHARED_REDIS_URL, EVENTS_STREAM: stream, CONSUMER_NAME: 'e2e' },
      ['--once', '--timeout-ms', '20000'],
    );
    const output = `exit ${run.code}\n--- stdout\n${run.stdout}--- stderr\n${run.stderr}`;
    assert.equal(run.code, 0, output);

    const roomId = /^room (\S+) created: /m.exec(run.stdout)?.[1];
    assert.ok(roomId, `the example printed the room it created\n${output}`);
    const events = printedEvents(run.stdout).filter((e) => e.roomId === roomId);
    const ids = events.map((e) => e.id);
    assert.equal(new Set(ids).size, ids.length, `each event printed once\n${output}`);

    const upserted = events.filter((e) => e.type === 'room.upserted');
    assert.equal(upserted.length, 1, output);
    assert.equal(upserted[0].data.visibility, 'private');
    const added = events.filter((e) => e.type === 'member.added').map((e) => e.data);
    assert.deepEqual(
      added.sort((a, b) => a.userId.localeCompare(b.userId)),
      [
        { roomId, userId: 'alice' },
        { roomId, userId: 'bob' },
      ],
      output,
    );
    const created = events.filter((e) => e.type === 'message.created').map((e) => e.data);
    assert.equal(created.length, 1, output);
    assert.equal(created[0].senderId, 'system');
    assert.equal(created[0].seq, 1);
    assert.equal(created[0].body, 'This room is private to alice and bob.');

    // What the example printed is what the service stored, and every entry it read was acknowledged.
    const headers = { 'x-api-key': API_KEY };
    const room: any = await (await fetch(`${inst.url}/v1/rooms/${roomId}`, { headers })).json();
    assert.equal(room.visibility, 'private');
    const members: any = await (await fetch(`${inst.url}/v1/rooms/${roomId}/members`, { headers })).json();
    assert.deepEqual(
      members.members.map((m: { userId: string }) => m.userId),
      ['alice', 'bob'],
    );
    const [pending] = (await redis.xpending(stream, 'backend-service')) as [number];
    assert.equal(pending, 0, 'no entry is left unacknowledged');
  });

  it('its stream reader re-reads its own unacknowledged entries first, prints a re-published event once and acknowledges everything', async () => {
    const { consume, ensureGroup } = await import(pathToFileURL(join(EXAMPLE, 'events.mjs')).href);
    const unitStream = `${stream}.unit`;
    const group = 'readers';
    await ensureGroup(redis, unitStream, group);
    const entry = (id: string, type: string) => [
      'id',
      id,
      'type',
      type,
      'roomId',
      'r1',
      'data',
      JSON.stringify({ roomId: 'r1', userId: id }),
    ];
    await redis.xadd(unitStream, '*', ...entry('ev-1', 'member.added'));
    // Read but never acknowledged, as by a consumer that stopped between XREADGROUP and XACK.
    await redis.xreadgroup('GROUP', group, 'c1', 'COUNT', 1, 'STREAMS', unitStream, '>');
    await redis.xadd(unitStream, '*', ...entry('ev-2', 'member.added'));
    await redis.xadd(unitStream, '*', ...entry('ev-1', 'member.added')); // re-published: same event id
    await redis.xadd(unitStream, '*', 'garbage', 'x');
    await redis.xadd(unitStream, '*', ...entry('ev-3', 'member.removed'));

    const seen: string[] = [];
    const duplicates: string[] = [];
    let malformed = 0;
    const deadline = Date.now() + 5000;
    await consume(redis, {
      stream: unitStream,
      group,
      consumer: 'c1',
      shouldStop: () => seen.length === 3 || Date.now() > deadline,
      onEvent: (e: { id: string }) => seen.push(e.id),
      onDuplicate: (e: { id: string }) => duplicates.push(e.id),
      onMalformed: () => malformed++,
    });
    assert.deepEqual(seen, ['ev-1', 'ev-2', 'ev-3']);
    assert.deepEqual(duplicates, ['ev-1']);
    assert.equal(malformed, 1);
    const [pending] = (await redis.xpending(unitStream, group)) as [number];
    assert.equal(pending, 0);
  });
});
