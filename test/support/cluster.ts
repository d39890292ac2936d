import { createTestDatabase, type TestDatabase } from './database.js';
import { Redis } from 'ioredis';
import { clusterEnv, eventsStreamOf, redisPrefix, SHARED_REDIS_URL, startInstance, type Instance } from './instance.js';
import type { TestClient } from './clients.js';

export interface Cluster {
  db: TestDatabase;
  instances: Instance[];
  /** Clients to close in stop(). */
  track<T extends TestClient>(client: T): T;
  stop(): Promise<void>;
}

/** `count` instances on a fresh database and one Redis prefix (env.REDIS_PREFIX or a new one), started together as replicas are. */
export async function startCluster(count: number, env: Record<string, string | undefined> = {}): Promise<Cluster> {
  const db = await createTestDatabase();
  const prefix = env.REDIS_PREFIX ?? redisPrefix();
  const clients = new Set<TestClient>();
  let instances: Instance[] = [];
  try {
    instances = await Promise.all(
      Array.from({ length: count }, (_, i) => startInstance(String.fromCharCode(65 + i), { ...clusterEnv(db.url, prefix), ...env })),
    );
  } catch (err) {
    await db.drop();
    throw err;
  }
  return {
    db,
    instances,
    track(client) {
      clients.add(client);
      return client;
    },
    async stop() {
      for (const c of clients) c.close();
      await Promise.all(instances.map((i) => i.stop()));
      await db.drop();
      await deleteStream(eventsStreamOf(prefix));
    },
  };
}

/** The deployment's event stream lives on the shared Redis; remove it with the deployment. */
async function deleteStream(key: string): Promise<void> {
  const redis = new Redis(SHARED_REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    await redis.del(key);
  } finally {
    redis.disconnect();
  }
}
