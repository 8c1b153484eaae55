import type { Knex } from 'knex';

/**
 * The durable half of the reservation log of async orders. A reservation starts in Redis (the
 * Lua script that holds its seats logs it as pending, with its time) and travels as a message in
 * RabbitMQ; how it ended is written here, once: PERSISTED in the transaction that inserts its
 * order, or RELEASED (with the reason) by whoever gives its seats back. The primary key makes the
 * two outcomes exclude each other: a reservation released by the reconciler can never be
 * persisted by a late message, and a persisted one is never released.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.createTable('reservations', (t) => {
    t.bigInteger('order_id').unsigned().primary();
    t.bigInteger('user_id').unsigned().notNullable();
    t.bigInteger('show_id').unsigned().notNullable();
    t.enum('outcome', ['PERSISTED', 'RELEASED']).notNullable();
    // RELEASED: stale (queued longer than ORDER_MAX_QUEUE_DELAY_MS), publish-failed, seats-taken
    // (the database had a seat the view did not), reconciler (no message arrived in time).
    t.string('reason', 32).nullable();
    t.datetime('reserved_at', { precision: 3 }).notNullable();
    t.datetime('resolved_at', { precision: 3 }).notNullable().defaultTo(knex.fn.now(3));
    t.index(['show_id', 'outcome']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('reservations');
}
