import type { Knex } from 'knex';

/**
 * Payments: which pay saga paid an order, which saga a ledger entry belongs to, the idempotency
 * keys of retried requests, and the payment provider's notifications.
 */
export async function up(knex: Knex): Promise<void> {
  await knex.schema.alterTable('orders', (t) => {
    // The pay saga that made the order PAID (NULL when paid through the provider's callback).
    // A refund needs that saga COMPLETED; the balance-restore listener reverts only its own saga's
    // payment.
    t.bigInteger('paid_saga_id').unsigned().nullable();
  });

  await knex.schema.alterTable('ledger_entries', (t) => {
    // The pay saga that wrote a payment: balance-restore removes exactly that saga's entry, so a
    // late compensation can never touch a later, successful payment of the same order.
    t.bigInteger('saga_id').unsigned().nullable();
  });

  // Idempotency-Key: the first response to (user, route, key), replayed to retries for 24 h.
  await knex.schema.createTable('idempotency_keys', (t) => {
    t.bigInteger('user_id').unsigned().notNullable();
    t.string('scope', 64).notNullable();
    t.string('idem_key', 128).notNullable();
    t.string('request_hash', 64).notNullable();
    t.enum('status', ['IN_PROGRESS', 'DONE']).notNullable();
    t.integer('response_status').unsigned().nullable();
    t.text('response_body').nullable();
    t.datetime('created_at', { precision: 3 }).notNullable().defaultTo(knex.fn.now(3));
    t.datetime('expires_at', { precision: 3 }).notNullable();
    t.primary(['user_id', 'scope', 'idem_key']);
    t.index(['expires_at']);
  });

  // What the payment provider told us, one row per transaction id (its idempotency key).
  // UNMATCHED: the order is not known yet (an async order still queued) and reconciliation keeps
  // trying; SETTLED: the order became PAID through it; FLAGGED: never settled (amount mismatch,
  // order not payable, or no order before the deadline): the money must go back at the provider.
  await knex.schema.createTable('payment_notifications', (t) => {
    t.string('txn_id', 128).primary();
    t.bigInteger('order_id').unsigned().notNullable();
    t.bigInteger('amount_cents').notNullable();
    t.datetime('paid_at', { precision: 3 }).notNullable();
    t.enum('status', ['UNMATCHED', 'SETTLED', 'FLAGGED']).notNullable();
    t.string('flag_reason', 64).nullable();
    t.string('detail', 255).nullable();
    t.integer('match_attempts').unsigned().notNullable().defaultTo(0);
    t.datetime('received_at', { precision: 3 }).notNullable().defaultTo(knex.fn.now(3));
    t.datetime('resolved_at', { precision: 3 }).nullable();
    t.index(['status', 'received_at']);
    t.index(['order_id']);
  });
}

export async function down(knex: Knex): Promise<void> {
  await knex.schema.dropTableIfExists('payment_notifications');
  await knex.schema.dropTableIfExists('idempotency_keys');
  await knex.schema.alterTable('ledger_entries', (t) => t.dropColumn('saga_id'));
  await knex.schema.alterTable('orders', (t) => t.dropColumn('paid_saga_id'));
}
