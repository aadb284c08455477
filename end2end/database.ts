import * as path from 'path';

// Where a test server keeps its data: a fresh SQLite file by default, or with
// E2E_POSTGRES_URL (a server URL without a database, e.g. postgres://postgres@127.0.0.1:5432)
// a fresh PostgreSQL database per server, to run the same browser tests on PostgreSQL.
const root = path.resolve(__dirname, '..');
const out = path.join(root, 'target', 'e2e');
const postgres = process.env.E2E_POSTGRES_URL?.replace(/\/+$/, '');

/** The DATABASE_URL of the test server on `port`. */
export function databaseUrl(port: number): string {
  return postgres ? `${postgres}/scanlogin_e2e_${port}` : `sqlite://${out}/db-${port}.db`;
}

/** A shell command that leaves the database of the server on `port` empty. */
export function freshDatabase(port: number): string {
  if (!postgres) return `rm -f ${out}/db-${port}.db* && mkdir -p ${out}`;
  const db = `scanlogin_e2e_${port}`;
  return `psql "${postgres}/postgres" -q -c "DROP DATABASE IF EXISTS ${db} WITH (FORCE)" -c "CREATE DATABASE ${db}"`;
}
