import type { Knex } from 'knex';

/**
 * The foundation: users and their ledger, shows and seats, seat holds, orders, the saga log,
 * compensation records and the outbox. Ids that the application generates (orders, sagas) are
 * BIGINT UNSIGNED snowflakes; the others are AUTO_INCREMENT. Times are UTC DATETIME(3).
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('settings', (t) => {
    t.string('name', 64).primary();
    t.text('value').notNullable();
  });

  // One row per started process: its id (mod 1024) is the worker part of the snowflake ids it
  // generates, so processes running side by side never mint the same id.
  await knex.schema.createTable('process_registrations', (t) => {
    t.bigIncrements('id').unsigned().primary();
    t.string('hostname', 255).notNullable();
    t.integer('pid').notNullable();
    t.string('role', 16).notNullable();
    t.datetime('started_at', { precision: 3 }).notNullable().defaultTo(knex.fn.now(3));
  });

  await knex.schema.createTable('users', (t) => {
    t.bigIncrements('id').unsigned().primary();
    t.string('name', 100).notNullable();
    t.bigInteger('balance_cents').notNullable().defaultTo(0);
    t.string('pay_password_hash', 255).notNullable();
    t.datetime('created_at', { precision: 3 }).notNullable().defaultTo(knex.fn.now(3));
    // Invariant 2: no balance is ever negative, whatever the code does.
    t.check('?? >= 0', ['balance_cents'], 'users_balance_not_negative');
  });

  // Every movement of money. balance = credits - payments + refunds holds per user; a payment or
  // refund can exist only once per order (the unique key), which makes money moves idempotent.
  await knex.schema.createTable('ledger_entries', (t) => {
    t.bigIncrements('id').unsigned().primary();
    t.bigInteger('user_id').unsigned().notNullable().references('users.id');
    t.enum('kind', ['credit', 'payment', 'refund']).notNullable();
    t.bigInteger('amount_cents').notNullable();
    t.bigInteger('order_id').unsigned().nullable();
    t.datetime('created_at', { precision: 3 }).notNullable().defaultTo(knex.fn.now(3));
    t.unique(['order_id', 'kind'], { indexName: 'ledger_entries_once_per_order_and_kind' });
    t.index(['user_id']);
    t.check('?? > 0', ['amount_cents'], 'ledger_entries_amount_positive');
  });

  await knex.schema.createTable('shows', (t) => {
    t.bigIncrements('id').unsigned().primary();
    t.string('title', 200).notNullable();
    t.datetime('starts_at', { precision: 3 }).notNullable();
    t.bigInteger('price_cents').notNullable();
    t.integer('seats_total').unsigned().notNullable();
    t.datetime('created_at', { precision: 3 }).notNullable().defaultTo(knex.fn.now(3));
  });

  await knex.schema.createTable('seats', (t) => {
    t.bigIncrements('id').unsigned().primary();
    t.bigInteger('show_id').unsigned().notNullable().references('shows.id');
    t.integer('row_no').unsigned().notNullable();
    t.integer('seat_no').unsigned().notNullable();
    t.string('label', 16).notNullable();
    t.unique(['show_id', 'row_no', 'seat_no']);
  });

  // Invariant 1 in the database itself: a seat has at most one hold (its primary key), held for
  // one order, and becomes 'sold' in place. available = seats without a hold row.
  await knex.schema.createTable('seat_holds', (t) => {
    t.bigInteger('seat_id').unsigned().primary().references('seats.id');
    t.bigInteger('show_id').unsigned().notNullable();
    t.bigInteger('order_id').unsigned().notNullable();
    t.enum('status', ['held', 'sold']).notNullable().defaultTo('held');
    t.datetime('created_at', { precision: 3 }).notNullable().defaultTo(knex.fn.now(3));
    t.index(['order_id']);
    t.index(['show_id', 'status']);
  });

  await knex.schema.createTable('orders', (t) => {
    t.bigInteger('id').unsigned().primary();
    t.bigInteger('user_id').unsigned().notNullable().references('users.id');
    t.bigInteger('show_id').unsigned().notNullable().references('shows.id');
    t.enum('status', ['PENDING_PAYMENT', 'PAID', 'CANCELLED', 'EXPIRED', 'REFUNDED']).notNullable();
    t.bigInteger('total_cents').notNullable();
    t.bigInteger('saga_id').unsigned().notNullable();
    t.datetime('expires_at', { precision: 3 }).notNullable();
    t.datetime('created_at', { precision: 3 }).notNullable().defaultTo(knex.fn.now(3));
    t.datetime('updated_at', { precision: 3 }).notNullable().defaultTo(knex.fn.now(3));
    t.index(['user_id', 'id']);
    t.index(['status', 'expires_at']);
  });

  // Which seats an order was for; kept after the holds are released (cancelled, expired orders).
  await knex.schema.createTable('order_seats', (t) => {
    t.bigInteger('order_id').unsigned().notNullable().references('orders.id').onDelete('CASCADE');
    t.bigInteger('seat_id').unsigned().notNullable().references('seats.id');
    t.primary(['order_id', 'seat_id']);
  });

  // The saga log. Its steps (saga_steps) are recorded, tag included, before they act; the last
  // one started is what the sweeper compensates when the process running the saga died.
  await knex.schema.createTable('sagas', (t) => {
    t.bigInteger('id').unsigned().primary();
    t.string('type', 32).notNullable();
    t.enum('status', ['RUNNING', 'COMPLETED', 'COMPENSATING', 'COMPENSATED']).notNullable();
    t.text('payload').notNullable();
    t.bigInteger('order_id').unsigned().nullable();
    t.bigInteger('user_id').unsigned().nullable();
    t.string('failed_tag', 64).nullable();
    t.string('error_code', 64).nullable();
    t.text('error').nullable();
    t.integer('compensations_pending').unsigned().notNullable().defaultTo(0);
    t.integer('compensation_publishes').unsigned().notNullable().defaultTo(0);
    t.datetime('created_at', { precision: 3 }).notNullable().defaultTo(knex.fn.now(3));
    t.datetime('updated_at', { precision: 3 }).notNullable().defaultTo(knex.fn.now(3));
    t.datetime('finished_at', { precision: 3 }).nullable();
    t.index(['status', 'created_at']);
    t.index(['status', 'updated_at']);
    t.index(['order_id']);
  });

  await knex.schema.createTable('saga_steps', (t) => {
    t.bigIncrements('id').unsigned().primary();
    t.bigInteger('saga_id').unsigned().notNullable().references('sagas.id');
    t.string('step', 64).notNullable();
    t.string('tag', 64).notNullable();
    t.enum('status', ['STARTED', 'DONE', 'FAILED']).notNullable();
    t.text('error').nullable();
    t.datetime('started_at', { precision: 3 }).notNullable().defaultTo(knex.fn.now(3));
    t.datetime('finished_at', { precision: 3 }).nullable();
    t.unique(['saga_id', 'step']);
  });

  // Invariant 3 in the database itself: a listener's effect commits in the same transaction as
  // this row, and the primary key lets it commit once per (saga, tag, listener), whatever Redis
  // remembers.
  await knex.schema.createTable('saga_compensations', (t) => {
    t.bigInteger('saga_id').unsigned().notNullable().references('sagas.id');
    t.string('tag', 64).notNullable();
    t.string('listener', 64).notNullable();
    t.enum('status', ['DONE', 'NOOP']).notNullable();
    t.string('detail', 255).notNullable();
    t.datetime('at', { precision: 3 }).notNullable().defaultTo(knex.fn.now(3));
    t.primary(['saga_id', 'tag', 'listener']);
  });

  // Messages that must reach the broker, written in the transaction that decided to send them and
  // published by the relay with publisher confirms.
  await knex.schema.createTable('outbox', (t) => {
    t.bigIncrements('id').unsigned().primary();
    t.string('exchange', 255).notNullable();
    t.string('routing_key', 255).notNullable();
    t.string('message_id', 64).notNullable();
    t.text('payload').notNullable();
    t.datetime('created_at', { precision: 3 }).notNullable().defaultTo(knex.fn.now(3));
    // A relay claims a batch for a lease (claimed_by, claimed_until) rather than holding row locks
    // while it waits for the broker's confirms; a relay that died leaves its lease to expire.
    t.string('claimed_by', 36).nullable();
    t.datetime('claimed_until', { precision: 3 }).nullable();
    t.integer('attempts').unsigned().notNullable().defaultTo(0);
    t.text('last_error').nullable();
    t.datetime('sent_at', { precision: 3 }).nullable();
    t.index(['sent_at', 'id']);
  });
}

export async function down(knex: Knex): Promise<void> {
  for (const table of [
    'outbox',
    'saga_compensations',
    'saga_steps',
    'sagas',
    'order_seats',
    'orders',
    'seat_holds',
    'seats',
    'shows',
    'ledger_entries',
    'users',
    'process_registrations',
    'settings',
  ]) {
    await knex.schema.dropTableIfExists(table);
  }
}
