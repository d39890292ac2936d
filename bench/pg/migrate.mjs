// Migrates a bench/pg database: node bench/pg/migrate.mjs URL [--before NAME] (every migration, or
// those before the one whose class name starts with NAME). Needs `npm run build`.
import 'reflect-metadata';
import process from 'node:process';
import typeorm from 'typeorm';
import { dataSourceOptions } from '../../dist/persistence/data-source-options.js';
import { migrations } from '../../dist/persistence/migrations/index.js';

const [url, flag, name] = process.argv.slice(2);
const upTo = flag === '--before' ? migrations.findIndex((m) => m.name.startsWith(name)) : migrations.length;
if (upTo < 0) throw new Error(`no migration named ${name}`);
const ds = new typeorm.DataSource({
  ...dataSourceOptions({ url, poolSize: 1, timeoutMs: 10_000 }),
  migrations: migrations.slice(0, upTo),
  logging: false,
});
await ds.initialize();
await ds.runMigrations({ transaction: 'each' });
await ds.destroy();
