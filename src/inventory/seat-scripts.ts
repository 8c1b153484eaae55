/**
 * The seat view's Lua scripts, each with the keys it touches by name. All keys of a show share
 * the hash tag {showId}, so each call touches one slot (Redis Cluster):
 *
 *   free          <ns>:show:{id}:free          sorted set of free seat ids, scored by seat id (best seats first)
 *   holds         <ns>:show:{id}:holds         hash seat id -> order id holding it (held or sold)
 *   meta          <ns>:show:{id}:meta          hash {loaded, total, soldOut?, acceptFrom?}; absent = the view
 *                                              must be rebuilt from the database
 *   pending       <ns>:show:{id}:pending       sorted set: async reservations not yet resolved, scored by time
 *   reservations  <ns>:show:{id}:reservations  hash order id -> "userId|seat,seat,..." of each pending reservation
 *   recent        <ns>:show:{id}:recent:<user> the user's last async order on the show (repeat-submit window)
 *
 * In a script, key `x` is the local `xKey`, declared from KEYS in the order of its `keys` list.
 */

export type ShowKeyName = 'free' | 'holds' | 'meta' | 'pending' | 'reservations' | 'recent';
export type ShowKeys = Record<ShowKeyName, string>;

export interface SeatScript {
  /** The command ioredis defines for it. */
  name: string;
  keys: readonly ShowKeyName[];
  lua: string;
}

function script(name: string, keys: readonly ShowKeyName[], body: string): SeatScript {
  const declare = `local ${keys.map((k) => `${k}Key`).join(', ')} = ${keys.map((_, i) => `KEYS[${i + 1}]`).join(', ')}\n`;
  return { name, keys, lua: declare + body };
}

/** The keys of a show's view (and of a user's repeat-submit slot on it). */
export function showKeys(namespace: string, showId: string, userId: string | null = null): ShowKeys {
  const base = `${namespace}:show:{${showId}}`;
  return {
    free: `${base}:free`,
    holds: `${base}:holds`,
    meta: `${base}:meta`,
    pending: `${base}:pending`,
    reservations: `${base}:reservations`,
    recent: `${base}:recent:${userId ?? '-'}`,
  };
}

export const HOLD_SEATS = script(
  'seatHold',
  ['free', 'holds', 'meta'],
  `
if redis.call('EXISTS', metaKey) == 0 then return {'NOT_LOADED'} end
local order = ARGV[1]
local taken = {}
for i = 2, #ARGV do
  if not redis.call('ZSCORE', freeKey, ARGV[i]) and redis.call('HGET', holdsKey, ARGV[i]) ~= order then
    taken[#taken + 1] = ARGV[i]
  end
end
if #taken > 0 then
  table.insert(taken, 1, 'TAKEN')
  return taken
end
for i = 2, #ARGV do
  redis.call('ZREM', freeKey, ARGV[i])
  redis.call('HSET', holdsKey, ARGV[i], order)
end
if redis.call('ZCARD', freeKey) == 0 then redis.call('HSET', metaKey, 'soldOut', '1') end
return {'OK'}
`,
);

// Releases only the seats this order holds: a seat re-held by another order since is untouched.
// Also ends the order's reservation (if it was an async one), clears the sold-out flag when a seat
// came back, and frees the user's repeat-submit slot (recentKey) if this order holds it.
export const RELEASE_SEATS = script(
  'seatRelease',
  ['free', 'holds', 'meta', 'pending', 'reservations', 'recent'],
  `
redis.call('ZREM', pendingKey, ARGV[1])
redis.call('HDEL', reservationsKey, ARGV[1])
if redis.call('GET', recentKey) == ARGV[1] then redis.call('DEL', recentKey) end
if redis.call('EXISTS', metaKey) == 0 then return -1 end
local released = 0
for i = 2, #ARGV do
  if redis.call('HGET', holdsKey, ARGV[i]) == ARGV[1] then
    redis.call('HDEL', holdsKey, ARGV[i])
    redis.call('ZADD', freeKey, ARGV[i], ARGV[i])
    released = released + 1
  end
end
if released > 0 then redis.call('HDEL', metaKey, 'soldOut') end
return released
`,
);

// The async path's one call . ARGV: order, user, now (ms),
// repeat window (ms, 0 = off), quantity (0 = the seat ids that follow), seat ids.
// Checks, in order: view loaded, view settled after a rebuild, sold-out flag, repeat submit, the
// seats; then holds them, logs the reservation (pending, with its time) and takes the repeat slot.
export const RESERVE_SEATS = script(
  'seatReserve',
  ['free', 'holds', 'meta', 'pending', 'reservations', 'recent'],
  `
if redis.call('EXISTS', metaKey) == 0 then return {'NOT_LOADED'} end
local meta = redis.call('HMGET', metaKey, 'soldOut', 'acceptFrom')
local now = tonumber(ARGV[3])
if meta[2] and tonumber(meta[2]) > now then return {'SETTLING', meta[2]} end
if meta[1] == '1' then return {'SOLD_OUT'} end
local window = tonumber(ARGV[4])
if window > 0 then
  local previous = redis.call('GET', recentKey)
  if previous then return {'DUPLICATE', previous} end
end
local freeCount = redis.call('ZCARD', freeKey)
if freeCount == 0 then
  redis.call('HSET', metaKey, 'soldOut', '1')
  return {'SOLD_OUT'}
end
local order = ARGV[1]
local quantity = tonumber(ARGV[5])
local seats = {}
if quantity > 0 then
  if freeCount < quantity then return {'NOT_ENOUGH', tostring(freeCount)} end
  seats = redis.call('ZRANGE', freeKey, 0, quantity - 1)
else
  local unknown, taken = {'UNKNOWN'}, {'TAKEN'}
  for i = 6, #ARGV do
    if redis.call('ZSCORE', freeKey, ARGV[i]) then seats[#seats + 1] = ARGV[i]
    elseif redis.call('HEXISTS', holdsKey, ARGV[i]) == 1 then taken[#taken + 1] = ARGV[i]
    else unknown[#unknown + 1] = ARGV[i] end
  end
  if #unknown > 1 then return unknown end
  if #taken > 1 then return taken end
end
for i = 1, #seats do
  redis.call('ZREM', freeKey, seats[i])
  redis.call('HSET', holdsKey, seats[i], order)
end
if freeCount == #seats then redis.call('HSET', metaKey, 'soldOut', '1') end
redis.call('ZADD', pendingKey, now, order)
redis.call('HSET', reservationsKey, order, ARGV[2] .. '|' .. table.concat(seats, ','))
if window > 0 then redis.call('SET', recentKey, order, 'PX', window) end
table.insert(seats, 1, 'OK')
return seats
`,
);

// After the database committed async orders: their reservations are resolved, and the view shows
// their seats held by them (it may have been rebuilt meanwhile). ARGV: k, k order ids, then
// (seat, order) pairs.
export const CONFIRM_PERSISTED = script(
  'seatConfirmPersisted',
  ['free', 'holds', 'meta', 'pending', 'reservations'],
  `
local k = tonumber(ARGV[1])
for i = 2, k + 1 do
  redis.call('ZREM', pendingKey, ARGV[i])
  redis.call('HDEL', reservationsKey, ARGV[i])
end
if redis.call('EXISTS', metaKey) == 0 then return 0 end
for i = k + 2, #ARGV, 2 do
  redis.call('ZREM', freeKey, ARGV[i])
  redis.call('HSET', holdsKey, ARGV[i], ARGV[i + 1])
end
if redis.call('ZCARD', freeKey) == 0 then redis.call('HSET', metaKey, 'soldOut', '1') end
return 1
`,
);

export const TAKEN_AMONG = script(
  'seatTakenAmong',
  ['free', 'meta'],
  `
if redis.call('EXISTS', metaKey) == 0 then return {'NOT_LOADED'} end
local taken = {'OK'}
for i = 1, #ARGV do
  if not redis.call('ZSCORE', freeKey, ARGV[i]) then taken[#taken + 1] = ARGV[i] end
end
return taken
`,
);

// Seats that are neither free nor held in the view: not seats of this show.
export const UNKNOWN_AMONG = script(
  'seatUnknownAmong',
  ['free', 'holds', 'meta'],
  `
if redis.call('EXISTS', metaKey) == 0 then return {'NOT_LOADED'} end
local unknown = {'OK'}
for i = 1, #ARGV do
  if not redis.call('ZSCORE', freeKey, ARGV[i]) and redis.call('HEXISTS', holdsKey, ARGV[i]) == 0 then
    unknown[#unknown + 1] = ARGV[i]
  end
end
return unknown
`,
);

// ARGV: total, acceptFrom (ms; 0 = at once), number of free seats F, F free seat ids, then
// (seat, order) pairs of held seats. Loads only when the view is absent: a concurrent rebuild or a
// live view is never overwritten.
export const LOAD_SHOW = script(
  'seatLoadShow',
  ['free', 'holds', 'meta'],
  `
if redis.call('EXISTS', metaKey) == 1 then return 0 end
redis.call('DEL', freeKey, holdsKey)
local freeCount = tonumber(ARGV[3])
for i = 4, 3 + freeCount do redis.call('ZADD', freeKey, ARGV[i], ARGV[i]) end
for i = 4 + freeCount, #ARGV, 2 do redis.call('HSET', holdsKey, ARGV[i], ARGV[i + 1]) end
redis.call('HSET', metaKey, 'loaded', '1', 'total', ARGV[1])
if tonumber(ARGV[2]) > 0 then redis.call('HSET', metaKey, 'acceptFrom', ARGV[2]) end
if freeCount == 0 then redis.call('HSET', metaKey, 'soldOut', '1') end
return 1
`,
);

// Marks seats held by the given orders (the database said so): ARGV pairs (seat, order).
export const MARK_HELD = script(
  'seatMarkHeld',
  ['free', 'holds', 'meta'],
  `
if redis.call('EXISTS', metaKey) == 0 then return 0 end
for i = 1, #ARGV, 2 do
  redis.call('ZREM', freeKey, ARGV[i])
  redis.call('HSET', holdsKey, ARGV[i], ARGV[i + 1])
end
if redis.call('ZCARD', freeKey) == 0 then redis.call('HSET', metaKey, 'soldOut', '1') end
return 1
`,
);

export const SEAT_SCRIPTS = { HOLD_SEATS, RELEASE_SEATS, RESERVE_SEATS, CONFIRM_PERSISTED, TAKEN_AMONG, UNKNOWN_AMONG, LOAD_SHOW, MARK_HELD } as const;
