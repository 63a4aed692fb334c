/**
 * Lua for the shared NotificationStore (redis-notifications.ts), with the semantics of
 * MemoryNotifications: each change that touches more than one key is one script, so that no
 * other proxy sees it half done.
 *
 * Every script takes the key prefix as ARGV[1] and builds its keys itself, because publish and
 * the cascading deletes reach keys only found at run time (the subscriptions of a resource, the
 * feeds of a pull point). A standalone or Sentinel Redis allows that; Redis Cluster, which is not
 * supported (docs/policy.md), would not.
 *
 * Layout under the prefix:
 *   sub:<id>            hash: rec (SubscriptionRecord JSON, as written), term (terminationAt, so
 *                       that renew never re-encodes rec), res, owner, pp (copied out of rec for
 *                       the indexes), seq, acked, attempts, dropped, paused, ending (1|0), epoch
 *   sub:<id>:q          list of messages seq acked+1 .. seq, oldest first (see below)
 *   subs:res:<resource> set of subscription ids;   subs:owner:<consumer> likewise
 *   notify:due          zset: subscription → when due;   notify:claimed: → claim lease end
 *   notify:dead         list of DeadLetter JSON, newest first, trimmed to the newest ARGV bound
 *   pp:<id>             hash: rec (PullPointRecord JSON), exp (expiresAt), owner, seq, acked,
 *                       outstanding, dropped;   pp:<id>:q: list as for subscriptions
 *   pp:<id>:feeds       set of subscriptions whose sink is the pull point
 *   pps:owner:<consumer> set of pull point ids
 *   watch:leases        zset: watched session → lease end (0: nobody holds it)
 *
 * Queues are lists rather than streams or sorted sets: sequence numbers are assigned
 * consecutively (a dropped message takes none) and only the head is ever removed, so a queue is
 * always exactly seq acked+1 .. seq and position gives the rest: RPUSH to append, LRANGE from the
 * head to read, LTRIM to acknowledge, all without an index beside the data (a zset keeps one, a
 * stream needs Redis 5 ids and XTRIM MINID from 6.2). Each entry still carries its own seq, so a
 * reader never derives it from a position. Entries are JSON built by concatenation around the
 * body the client serialized ("topic","at","xml"), so the xml is never decoded here.
 *
 * No key has a TTL: subscriptions and pull points end when their caller deletes them (their end
 * is scheduled with the other terminations), dead letters are bounded by count, and a key that
 * expired on its own would leave the indexes (counts, feeds, due) out of step with it.
 */

const HELPERS = `
local P = ARGV[1]
local DUE, CLAIMED = P .. 'notify:due', P .. 'notify:claimed'
local function subKey(id) return P .. 'sub:' .. id end
local function ppKey(id) return P .. 'pp:' .. id end
-- Integers into JSON without an exponent (tostring would give one above 1e14).
local function int(n) return string.format('%.0f', n) end
-- Removes a subscription with its queue, indexes and claim (dead letters stay). 1 if it was there.
local function dropSub(id)
  local h = subKey(id)
  local f = redis.call('HMGET', h, 'res', 'owner', 'pp')
  if not f[1] then return 0 end
  redis.call('DEL', h, h .. ':q')
  redis.call('SREM', P .. 'subs:res:' .. f[1], id)
  redis.call('SREM', P .. 'subs:owner:' .. f[2], id)
  if f[3] and f[3] ~= '' then redis.call('SREM', ppKey(f[3]) .. ':feeds', id) end
  redis.call('ZREM', DUE, id)
  redis.call('ZREM', CLAIMED, id)
  return 1
end
-- Hands what a paused subscription queued to its pull point, numbered there (no cap: each was
-- accepted under the subscription's own).
local function flushToPullPoint(id, pp)
  local q = subKey(id) .. ':q'
  local entries = redis.call('LRANGE', q, 0, -1)
  redis.call('DEL', q)
  redis.call('HSET', subKey(id), 'acked', redis.call('HGET', subKey(id), 'seq'))
  if #entries == 0 or redis.call('EXISTS', ppKey(pp)) == 0 then return end
  local seq = tonumber(redis.call('HGET', ppKey(pp), 'seq'))
  for _, e in ipairs(entries) do
    local subSeq, rest = string.match(e, '^{"seq":(%d+),(.*)$')
    seq = seq + 1
    redis.call('RPUSH', ppKey(pp) .. ':q', '{"seq":' .. int(seq) .. ',"subscription":' ..
      cjson.encode(id) .. ',"subscriptionSeq":' .. subSeq .. ',' .. rest)
  end
  redis.call('HSET', ppKey(pp), 'seq', seq)
end
`;

/** ARGV: prefix, id, rec JSON, resource, consumer, pull point id or '', terminationAt. */
const PUT_SUBSCRIPTION = `${HELPERS}
local id = ARGV[2]
-- A put over an existing id starts afresh: the old incarnation's indexes and claim go.
dropSub(id)
redis.call('HSET', subKey(id), 'rec', ARGV[3], 'term', ARGV[7], 'res', ARGV[4], 'owner', ARGV[5],
  'pp', ARGV[6], 'seq', 0, 'acked', 0, 'attempts', 0, 'dropped', 0, 'paused', 0, 'ending', 0, 'epoch', 0)
redis.call('SADD', P .. 'subs:res:' .. ARGV[4], id)
redis.call('SADD', P .. 'subs:owner:' .. ARGV[5], id)
if ARGV[6] ~= '' then redis.call('SADD', ppKey(ARGV[6]) .. ':feeds', id) end
return 1
`;

/** ARGV: prefix, id, terminationAt. Returns 1, or 0 when gone (nothing is created). */
const RENEW_SUBSCRIPTION = `${HELPERS}
local h = subKey(ARGV[2])
if redis.call('EXISTS', h) == 0 then return 0 end
redis.call('HSET', h, 'term', ARGV[3])
return 1
`;

/** ARGV: prefix, id, '1' (pause) or '0' (resume), now. Returns 1, or 0 when gone. */
const SET_PAUSED = `${HELPERS}
local id = ARGV[2]
local f = redis.call('HMGET', subKey(id), 'seq', 'acked', 'pp')
if not f[1] then return 0 end
redis.call('HSET', subKey(id), 'paused', ARGV[3])
-- A claim in flight is left to its holder, whose settle then releases it.
if f[3] and f[3] ~= '' then
  -- A pull point's subscription: what queued while paused goes to the pull point on resume.
  if ARGV[3] == '0' then flushToPullPoint(id, f[3]) end
elseif ARGV[3] == '1' then
  redis.call('ZREM', DUE, id)
elseif tonumber(f[1]) > tonumber(f[2]) and not redis.call('ZSCORE', CLAIMED, id) then
  redis.call('ZADD', DUE, ARGV[4], id)
end
return 1
`;

/** ARGV: prefix, id. Returns 1, or 0 when it was not there. */
const DELETE_SUBSCRIPTION = `${HELPERS}
return dropSub(ARGV[2])
`;

/**
 * ARGV: prefix, now, maxMessages, ending '1'|'0', n, n resources, then per event: topic,
 * always '1'|'0', body (the JSON of {topic, at, xml} without its opening brace).
 * Returns { queued, dropped }.
 */
const PUBLISH = `${HELPERS}
local now, cap, nres = ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[5])
local function matches(topics, topic)
  -- cjson decodes [] as an empty table: no filter, every topic.
  if #topics == 0 then return true end
  for _, f in ipairs(topics) do
    if topic == f.path or (not f.exact and string.sub(topic, 1, #f.path + 1) == f.path .. '/') then
      return true
    end
  end
  return false
end

-- Each subscription once, however many of the resources list it; sorted (SMEMBERS order is
-- arbitrary) so that several feeding one pull point number its messages as the memory store does.
local ids, seen = {}, {}
for r = 1, nres do
  for _, id in ipairs(redis.call('SMEMBERS', P .. 'subs:res:' .. ARGV[5 + r])) do
    if not seen[id] then seen[id] = true; ids[#ids + 1] = id end
  end
end
table.sort(ids)
local live, pps = {}, {}
for _, id in ipairs(ids) do
  local f = redis.call('HMGET', subKey(id), 'rec', 'seq', 'acked', 'dropped', 'paused', 'ending', 'pp')
  -- A subscription whose producer has ended takes nothing more.
  if f[1] and f[6] ~= '1' then
    local s = { id = id, topics = cjson.decode(f[1]).topics or {}, seq = tonumber(f[2]),
      acked = tonumber(f[3]), dropped = tonumber(f[4]), paused = f[5] == '1', pp = f[7] or '' }
    if s.pp ~= '' and pps[s.pp] == nil then
      local p = redis.call('HMGET', ppKey(s.pp), 'seq', 'acked', 'dropped')
      -- false: the pull point is not (or no longer) there and takes nothing.
      pps[s.pp] = p[1] and { seq = tonumber(p[1]), acked = tonumber(p[2]), dropped = tonumber(p[3]) } or false
    end
    live[#live + 1] = s
  end
end

local queued, dropped = 0, 0
for e = 6 + nres, #ARGV, 3 do
  local topic, always, body = ARGV[e], ARGV[e + 1] == '1', ARGV[e + 2]
  for _, s in ipairs(live) do
    if always or matches(s.topics, topic) then
      -- A paused pull point's subscription keeps its messages in its own queue until resumed.
      if s.pp ~= '' and not s.paused then
        local p = pps[s.pp]
        if p and p.seq - p.acked >= cap then
          p.dropped, p.changed = p.dropped + 1, true
          dropped = dropped + 1
        elseif p then
          -- Handed over at once: the subscription's own queue stays empty (acked = seq).
          p.seq, p.changed = p.seq + 1, true
          s.seq, s.changed = s.seq + 1, true
          s.acked = s.seq
          redis.call('RPUSH', ppKey(s.pp) .. ':q', '{"seq":' .. int(p.seq) .. ',"subscription":' ..
            cjson.encode(s.id) .. ',"subscriptionSeq":' .. int(s.seq) .. ',' .. body)
          queued = queued + 1
        end
      elseif s.seq - s.acked >= cap then
        s.dropped, s.changed = s.dropped + 1, true
        dropped = dropped + 1
      else
        s.seq, s.changed, s.fresh = s.seq + 1, true, true
        redis.call('RPUSH', subKey(s.id) .. ':q', '{"seq":' .. int(s.seq) .. ',' .. body)
        queued = queued + 1
      end
    end
  end
end

for _, s in ipairs(live) do
  if s.changed then redis.call('HSET', subKey(s.id), 'seq', s.seq, 'acked', s.acked, 'dropped', s.dropped) end
  -- Due now unless already due (a retry's backoff stands), claimed (the holder's settle sees the
  -- new messages: no second sender) or paused.
  if s.fresh and not s.paused and not redis.call('ZSCORE', CLAIMED, s.id) then
    redis.call('ZADD', DUE, 'NX', now, s.id)
  end
end
for id, p in pairs(pps) do
  if p and p.changed then redis.call('HSET', ppKey(id), 'seq', p.seq, 'dropped', p.dropped) end
end

if ARGV[4] == '1' and nres > 0 then
  for _, id in ipairs(redis.call('SMEMBERS', P .. 'subs:res:' .. ARGV[6])) do
    local f = redis.call('HMGET', subKey(id), 'seq', 'acked', 'pp')
    if f[1] then
      redis.call('HSET', subKey(id), 'ending', 1)
      -- Ending: even a paused one hands its pull point everything, ResourceTerminated last.
      if f[3] ~= '' then flushToPullPoint(id, f[3]) end
      -- Nothing left to send (a pull point already has everything): it ends now, as a settle
      -- that drains it would end it; a claimed one ends at its holder's settle.
      if f[3] ~= '' or (tonumber(f[1]) == tonumber(f[2]) and not redis.call('ZSCORE', CLAIMED, id)) then
        dropSub(id)
      end
    end
  end
end
return { queued, dropped }
`;

/**
 * Claims whose holder let the lease pass first, then due ones, up to max; each gets a new epoch
 * and is claimed until now + lease. ARGV: prefix, now, lease (>= 1), max.
 * Returns { id_1, epoch_1, id_2, epoch_2, ... }.
 */
const CLAIM_DELIVERIES = `${HELPERS}
local now, max = tonumber(ARGV[2]), tonumber(ARGV[4])
local untilMs = now + tonumber(ARGV[3])
local out, n = {}, 0
local function take(zset)
  while n < max do
    local batch = redis.call('ZRANGEBYSCORE', zset, '-inf', now, 'LIMIT', 0, max - n)
    if #batch == 0 then return end
    for _, id in ipairs(batch) do
      -- Taken off first: an entry skipped below is not seen again by the next ZRANGEBYSCORE.
      redis.call('ZREM', zset, id)
      local f = redis.call('HMGET', subKey(id), 'seq', 'acked', 'paused')
      -- Paused or drained: nobody holds it; resume or a publish makes it due again.
      if f[1] and f[3] ~= '1' and tonumber(f[1]) > tonumber(f[2]) then
        n = n + 1
        out[#out + 1] = id
        out[#out + 1] = redis.call('HINCRBY', subKey(id), 'epoch', 1)
        redis.call('ZADD', CLAIMED, untilMs, id)
      end
    end
  end
end
take(CLAIMED)
take(DUE)
return out
`;

/**
 * ARGV: prefix, id, epoch, kind ('delivered'|'retry'|'dead'), upto, attempts, atMs, reason,
 * now, lease, dead letters kept. Returns { status, more 1|0 }.
 */
const SETTLE_DELIVERY = `${HELPERS}
local id, kind = ARGV[2], ARGV[4]
local h = subKey(id)
local f = redis.call('HMGET', h, 'seq', 'acked', 'epoch', 'paused', 'ending', 'owner')
if not f[1] then return { 'gone', 0 } end
-- A claim released (settled) or taken over since: this attempt's word no longer counts.
if not redis.call('ZSCORE', CLAIMED, id) or tonumber(f[3]) ~= tonumber(ARGV[3]) then
  return { 'fenced', 0 }
end
local seq, acked, paused = tonumber(f[1]), tonumber(f[2]), f[4] == '1'
if kind == 'retry' then
  redis.call('HSET', h, 'attempts', ARGV[6])
  redis.call('ZREM', CLAIMED, id)
  if not paused then redis.call('ZADD', DUE, ARGV[7], id) end
  return { 'ok', 0 }
end
local upto = math.min(tonumber(ARGV[5]), seq)
if upto > acked then
  local q = h .. ':q'
  if kind == 'dead' then
    local dead = P .. 'notify:dead'
    -- Oldest first onto the head: the list reads newest first.
    for _, raw in ipairs(redis.call('LRANGE', q, 0, upto - acked - 1)) do
      local m = cjson.decode(raw)
      redis.call('LPUSH', dead, '{"subscription":' .. cjson.encode(id) .. ',"consumer":' ..
        cjson.encode(f[6]) .. ',"seq":' .. int(m.seq) .. ',"topic":' .. cjson.encode(m.topic) ..
        ',"at":' .. int(m.at) .. ',"deadAt":' .. ARGV[9] .. ',"attempts":' .. ARGV[6] ..
        ',"reason":' .. cjson.encode(ARGV[8]) .. '}')
    end
    redis.call('LTRIM', dead, 0, tonumber(ARGV[11]) - 1)
  end
  redis.call('LTRIM', q, upto - acked, -1)
  acked = upto
end
redis.call('HSET', h, 'acked', acked, 'attempts', 0, 'dropped', 0)
if seq > acked and not paused then
  redis.call('ZADD', CLAIMED, tonumber(ARGV[9]) + tonumber(ARGV[10]), id)
  return { 'ok', 1 }
end
redis.call('ZREM', CLAIMED, id)
if seq == acked and f[5] == '1' then dropSub(id) end
return { 'ok', 0 }
`;

/** ARGV: prefix, id, rec JSON, consumer, expiresAt. */
const PUT_PULL_POINT = `${HELPERS}
local id = ARGV[2]
local h = ppKey(id)
-- A put over an existing id starts afresh, but the subscriptions feeding it stay.
local old = redis.call('HGET', h, 'owner')
if old then redis.call('SREM', P .. 'pps:owner:' .. old, id) end
redis.call('DEL', h, h .. ':q')
redis.call('HSET', h, 'rec', ARGV[3], 'owner', ARGV[4], 'exp', ARGV[5], 'seq', 0, 'acked', 0,
  'outstanding', 0, 'dropped', 0)
redis.call('SADD', P .. 'pps:owner:' .. ARGV[4], id)
return 1
`;

/**
 * ARGV: prefix, id, ack ('' for implicit, else a number), max, expiresAt.
 * Returns { status, dropped, message JSON ... }.
 */
const GET_MESSAGES = `${HELPERS}
local h = ppKey(ARGV[2])
local f = redis.call('HMGET', h, 'acked', 'outstanding', 'dropped')
if not f[1] then return { 'gone', 0 } end
local acked, outstanding = tonumber(f[1]), tonumber(f[2])
local ack = ARGV[3] == '' and outstanding or tonumber(ARGV[3])
if ack > outstanding then return { 'beyond', 0 } end
local q = h .. ':q'
-- An ack below acked is an old request repeated: it acknowledges nothing new.
if ack > acked then
  redis.call('LTRIM', q, ack - acked, -1)
  acked = ack
end
-- Always from the oldest unacknowledged: a repeat of the same ack gets the same batch.
local reply, max = { 'ok', tonumber(f[3]) }, tonumber(ARGV[4])
if max > 0 then
  for _, m in ipairs(redis.call('LRANGE', q, 0, max - 1)) do reply[#reply + 1] = m end
end
outstanding = math.max(outstanding, acked + #reply - 2)
-- dropped is reported once, as a subscription's count is reset by a delivered Notify.
redis.call('HSET', h, 'acked', acked, 'outstanding', outstanding, 'dropped', 0, 'exp', ARGV[5])
return reply
`;

/** ARGV: prefix, id. Returns 1, or 0 when it was not there. */
const DELETE_PULL_POINT = `${HELPERS}
local id = ARGV[2]
local h = ppKey(id)
local owner = redis.call('HGET', h, 'owner')
if not owner then return 0 end
for _, sub in ipairs(redis.call('SMEMBERS', h .. ':feeds')) do dropSub(sub) end
redis.call('DEL', h, h .. ':q', h .. ':feeds')
redis.call('SREM', P .. 'pps:owner:' .. owner, id)
return 1
`;

/** ARGV: prefix, now, lease, max. Returns the sessions claimed, until now + lease. */
const CLAIM_WATCHES = `${HELPERS}
local key, max = P .. 'watch:leases', tonumber(ARGV[4])
if max < 1 then return {} end
local out = redis.call('ZRANGEBYSCORE', key, '-inf', ARGV[2], 'LIMIT', 0, max)
local untilMs = tonumber(ARGV[2]) + tonumber(ARGV[3])
for _, s in ipairs(out) do redis.call('ZADD', key, untilMs, s) end
return out
`;

/** ARGV: prefix, session, now, lease. Returns 1, or 0 when it is not watched. */
const RENEW_WATCH = `${HELPERS}
local key = P .. 'watch:leases'
if not redis.call('ZSCORE', key, ARGV[2]) then return 0 end
redis.call('ZADD', key, tonumber(ARGV[3]) + tonumber(ARGV[4]), ARGV[2])
return 1
`;

/** Defined on the client by these names (ioredis: EVALSHA, falling back to EVAL). */
export const NOTIFICATION_SCRIPTS = {
  sspPutSubscription: PUT_SUBSCRIPTION,
  sspRenewSubscription: RENEW_SUBSCRIPTION,
  sspSetPaused: SET_PAUSED,
  sspDeleteSubscription: DELETE_SUBSCRIPTION,
  sspPublish: PUBLISH,
  sspClaimDeliveries: CLAIM_DELIVERIES,
  sspSettleDelivery: SETTLE_DELIVERY,
  sspPutPullPoint: PUT_PULL_POINT,
  sspGetMessages: GET_MESSAGES,
  sspDeletePullPoint: DELETE_PULL_POINT,
  sspClaimWatches: CLAIM_WATCHES,
  sspRenewWatch: RENEW_WATCH,
} as const;

export type NotificationScript = keyof typeof NOTIFICATION_SCRIPTS;
