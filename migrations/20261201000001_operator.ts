import type { Knex } from 'knex';

/**
 * What operators need to find, understand and repair sagas without SQL or the broker's UI.
 *
 * - Saga search is keyset-paginated on the id, newest first (snowflake ids are minted in time
 *   order, so a time range is an id range too): every filter has an index that starts with its
 *   column and ends with the id, so a page reads `limit` rows whatever the table's size.
 * - Each compensation message in the outbox names its saga, for the timeline.
 * - Every delivery a compensation listener handled is recorded (failed ones too), and every
 *   message moved to a DLQ, because a DLQ cannot be browsed without consuming it.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('sagas', (t) => {
    t.index(['status', 'id'], 'sagas_status_id');
    t.index(['type', 'id'], 'sagas_type_id');
    t.index(['failed_tag', 'id'], 'sagas_failed_tag_id');
    t.index(['order_id', 'id'], 'sagas_order_id_id');
    t.index(['user_id', 'id'], 'sagas_user_id_id');
  });

  await knex.schema.alterTable('outbox', (t) => {
    t.bigInteger('saga_id').unsigned().nullable();
    t.index(['saga_id'], 'outbox_saga_id');
  });

  await knex.schema.createTable('compensation_attempts', (t) => {
    t.bigIncrements('id').unsigned().primary();
    t.bigInteger('saga_id').unsigned().notNullable();
    t.string('tag', 64).notNullable();
    t.string('listener', 64).notNullable();
    t.integer('delivery_count').unsigned().notNullable();
    // done / noop: this delivery applied it; duplicate: it was done already; failed: see error.
    t.enum('outcome', ['done', 'noop', 'duplicate', 'failed']).notNullable();
    t.text('error').nullable();
    t.datetime('at', { precision: 3 }).notNullable().defaultTo(knex.fn.now(3));
    t.index(['saga_id', 'id'], 'compensation_attempts_saga');
  });

  await knex.schema.createTable('dead_letters', (t) => {
    // The x-dlq-id header the broker layer gives a message when it moves it to a DLQ.
    t.string('id', 64).primary();
    t.string('queue', 255).notNullable();
    t.string('listener', 64).notNullable();
    t.string('message_id', 255).nullable();
    t.bigInteger('saga_id').unsigned().nullable();
    t.string('tag', 64).nullable();
    t.string('reason', 32).notNullable();
    t.text('error').nullable();
    t.integer('deliveries').unsigned().notNullable();
    t.datetime('dead_lettered_at', { precision: 3 }).notNullable();
    // redriven (back to its work queue), dropped (its saga was compensated meanwhile), settled
    // (taken out by the resolver: done some other way since).
    t.datetime('resolved_at', { precision: 3 }).nullable();
    t.string('resolution', 16).nullable();
    t.index(['resolved_at', 'listener', 'dead_lettered_at'], 'dead_letters_open');
    t.index(['saga_id'], 'dead_letters_saga');
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('dead_letters');
  await knex.schema.dropTableIfExists('compensation_attempts');
  await knex.schema.alterTable('outbox', (t) => {
    t.dropIndex(['saga_id'], 'outbox_saga_id');
    t.dropColumn('saga_id');
  });
  await knex.schema.alterTable('sagas', (t) => {
    for (const name of ['sagas_status_id', 'sagas_type_id', 'sagas_failed_tag_id', 'sagas_order_id_id', 'sagas_user_id_id']) t.dropIndex([], name);
  });
}
