import type { Knex } from 'knex';
import * as foundation from './20261123000001_foundation';
import * as payments from './20261123000002_payments';
import * as asyncOrders from './20261123000003_async_orders';
import * as operator from './20261201000001_operator';

/**
 * Migrations are listed here rather than discovered from the folder, so their names carry no
 * file extension: the service (bundled JavaScript) and the knex CLI (TypeScript under tsx) record
 * the same names in knex_migrations. Append new migrations at the end.
 */
const migrations: Array<[name: string, migration: Knex.Migration]> = [
  ['20261123000001_foundation', foundation],
  ['20261123000002_payments', payments],
  ['20261123000003_async_orders', asyncOrders],
  ['20261201000001_operator', operator],
];

export const migrationSource: Knex.MigrationSource<[string, Knex.Migration]> = {
  getMigrations: async () => migrations,
  getMigrationName: ([name]) => name,
  getMigration: async ([, migration]) => migration,
};
