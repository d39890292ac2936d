import { Logger } from '@nestjs/common';
import pg from 'pg';
import type { DataSource } from 'typeorm';
import type { AppConfig } from '../config/config.schema.js';
import { pause, retryDelayMs } from './retry-delay.js';

/** The relay's database access while this instance leads. */
export interface LeaderSession {
  /** Rows of a SELECT (or of RETURNING); throws on any database failure. */
  query<T>(sql: string, params?: unknown[]): Promise<T[]>;
  /** Aborts when the session, and with it the leadership, is gone. */
  readonly lost: AbortSignal;
  release(): Promise<void>;
}

/** Exactly one instance at a time may hold a session. */
export interface Leadership {
  /** Resolves once this instance leads, or with null when `stop` aborts first. Never rejects. */
  acquire(stop: AbortSignal): Promise<LeaderSession | null>;
}

/** One leader election: its advisory-lock key, the name its lock connection shows, how often a follower asks. */
export interface Election {
  /** A fixed 64-bit key other than the migration lock's; every replica takes the same one. */
  key: number;
  name: string;
  retryMs: number;
}

export const ELECTIONS = {
  /** The events relay: a follower asks every second, the bound on a takeover after the leader's process dies. */
  relay: { key: 7_418_236_002, name: 'chat-events-relay', retryMs: 1000 },
  /** Retention: hourly work, so a takeover may take 10 s. */
  retention: { key: 7_418_236_003, name: 'chat-retention', retryMs: 10_000 },
} as const satisfies Record<string, Election>;

/** The election for this deployment: the embedded database serves one instance, which always leads. */
export function leadershipFor(config: AppConfig, db: DataSource, election: Election): Leadership {
  return config.database.mode === 'embedded'
    ? new SoleInstanceLeadership(db)
    : new AdvisoryLockLeadership((db.options as { url: string }).url, election);
}

/**
 * Leader election with a Postgres session advisory lock held on a connection of its own (not the
 * pool's). Postgres releases the lock when that session ends: at once when the leader's process
 * dies (its socket closes), within about 11 s when its host vanishes (server-side TCP keepalives
 * set below). Followers keep a connection and retry the lock every `retryMs`. The leader also runs
 * its queries on the locked connection, so when that connection fails they fail too.
 */
export class AdvisoryLockLeadership implements Leadership {
  private readonly logger = new Logger('Leadership');

  constructor(
    private readonly url: string,
    private readonly election: Election,
  ) {}

  async acquire(stop: AbortSignal): Promise<LeaderSession | null> {
    for (let failures = 0; !stop.aborted;) {
      const client = this.newClient();
      const lost = new AbortController();
      client.on('error', (err) => {
        this.logger.debug(`${this.election.name} lock connection: ${err.message}`);
        lost.abort(err);
      });
      client.on('end', () => lost.abort(new Error(`${this.election.name} lock connection closed`)));
      try {
        await client.connect();
        while (!stop.aborted && !lost.signal.aborted) {
          const [{ locked }] = (await client.query<{ locked: boolean }>('SELECT pg_try_advisory_lock($1) AS locked', [this.election.key]))
            .rows;
          if (locked) return session(client, lost.signal);
          failures = 0;
          await pause(this.election.retryMs, stop);
        }
        // A connection dropped while following: reconnect, but never in a tight loop.
        if (lost.signal.aborted) failures++;
      } catch (err) {
        failures++;
        // Logged once per outage; the service's own pool reports database trouble too.
        if (failures === 1)
          this.logger.warn(`cannot reach the database for the ${this.election.name} lock: ${(err as Error).message}; retrying`);
      }
      await close(client);
      if (failures > 0) await pause(retryDelayMs(failures, this.election.retryMs, 5000), stop);
    }
    return null;
  }

  private newClient(): pg.Client {
    return new pg.Client({
      connectionString: this.url,
      application_name: this.election.name,
      connectionTimeoutMillis: 2000,
      // Bounds every relay query; any failure ends the leadership and the connection.
      query_timeout: 5000,
      statement_timeout: 5000,
      keepAlive: true,
      keepAliveInitialDelayMillis: 5000,
      // So that the server drops the session, and the lock, of a leader whose host vanished.
      options: '-c tcp_keepalives_idle=5 -c tcp_keepalives_interval=2 -c tcp_keepalives_count=3',
    });
  }
}

function session(client: pg.Client, lost: AbortSignal): LeaderSession {
  return {
    lost,
    query: async <T>(sql: string, params: unknown[] = []) => (await client.query(sql, params)).rows as T[],
    // Ending the session releases the lock; no unlock needed.
    release: () => close(client),
  };
}

/** Ends a client, waiting at most a second (a dead server never answers the goodbye). */
async function close(client: pg.Client): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([client.end().catch(() => undefined), new Promise((resolve) => (timer = setTimeout(resolve, 1000)))]);
  clearTimeout(timer);
}

/**
 * The embedded database serves one instance and one connection: that instance leads, and the
 * relay shares the pool's single connection. Failed queries end the term as elsewhere; the next
 * acquire simply hands out the pool again.
 */
export class SoleInstanceLeadership implements Leadership {
  constructor(private readonly db: DataSource) {}

  async acquire(stop: AbortSignal): Promise<LeaderSession | null> {
    if (stop.aborted) return null;
    return {
      lost: new AbortController().signal,
      // Only SELECTs and statements whose result is unused go through here, so TypeORM's
      // [rows, count] answer for UPDATE/DELETE ... RETURNING never matters.
      query: async <T>(sql: string, params: unknown[] = []) => (await this.db.query(sql, params)) as T[],
      release: async () => undefined,
    };
  }
}
