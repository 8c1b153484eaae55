import { z } from 'zod';

/** The order message of the async path: everything the consumer needs to persist the order. */
export const asyncOrderMessage = z.object({
  orderId: z.string().regex(/^\d+$/),
  userId: z.string().regex(/^\d+$/),
  showId: z.string().regex(/^\d+$/),
  seatIds: z.array(z.string().regex(/^\d+$/)).min(1),
  priceCents: z.number().int().min(0),
  /** When the seats were reserved (epoch ms): the order's age, and the start of its payment window. */
  reservedAt: z.number().int().positive(),
  /** How long the placing request waits for it (0: it does not): for the give-up metric. */
  waitMs: z.number().int().min(0),
});

export type AsyncOrderMessage = z.output<typeof asyncOrderMessage>;

export type AsyncOrderRequest = { showId: string; seatIds: string[] } | { showId: string; quantity: number };
