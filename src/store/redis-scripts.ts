/**
 * Lua run inside Redis, where a script executes atomically: no other client's command runs
 * between its reads and its writes, so proxies sharing one Redis count exactly.
 */

/**
 * One rate decision over all limits of a request (the same semantics as RateWindows).
 *
 * KEYS[i]   the counter of limit i: `<prefix>rl:<limit key>`. A fixed window counts in
 *           KEYS[i] .. ':' .. <window index>, so that a new window starts from nothing.
 * ARGV      four per limit, in KEYS order: threshold, intervalMs, 'f' (fixed) or 'm' (moving),
 *           '1' when enforced or '0' when only observed.
 * Returns   { admitted (1|0), retryAfterMs, over_1, ..., over_n } with over_i as 1|0
 *           (a Lua false would reach the client as nil, hence numbers).
 *
 * Time is the server's (TIME), so that proxies whose clocks disagree still share windows.
 * Redis 7 replicates a script by its effects, which is what allows TIME before the writes.
 */
export const ADMIT_SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
-- Unique per call: a moving log needs one member per admission, even within a millisecond.
local stamp = t[1] .. string.format('%06d', tonumber(t[2]))

local n = #KEYS
local over = {}
local fixedKey = {}
local retry = 0

-- Pass 1: read every counter and decide; nothing is counted yet.
for i = 1, n do
  local a = (i - 1) * 4
  local threshold = tonumber(ARGV[a + 1])
  local interval = tonumber(ARGV[a + 2])
  local enforce = ARGV[a + 4] == '1'
  local count, wait
  if ARGV[a + 3] == 'f' then
    -- Windows aligned to the epoch: every proxy agrees where one ends.
    local window = math.floor(now / interval)
    fixedKey[i] = KEYS[i] .. ':' .. string.format('%.0f', window)
    count = tonumber(redis.call('GET', fixedKey[i]) or '0')
    wait = (window + 1) * interval - now
  else
    -- Sliding log: an admission at time s counts while now < s + interval.
    redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', string.format('%.17g', now - interval))
    count = redis.call('ZCARD', KEYS[i])
    wait = interval
    if count > 0 then
      -- Once the (count - threshold + 1)-th oldest entry leaves, one more request fits.
      local k = math.min(count - 1, math.max(0, count - threshold))
      local e = redis.call('ZRANGE', KEYS[i], k, k, 'WITHSCORES')
      wait = tonumber(e[2]) + interval - now
    end
  end
  if count >= threshold then
    over[i] = 1
    if enforce then retry = math.max(retry, math.max(1, math.ceil(wait))) end
  else
    over[i] = 0
  end
end

-- Refused: counted in no limit (the pruning above only dropped entries already outside).
if retry > 0 then
  local r = { 0, retry }
  for i = 1, n do r[i + 2] = over[i] end
  return r
end

-- Pass 2: admitted, so count it in every limit, observed ones included.
for i = 1, n do
  local a = (i - 1) * 4
  local interval = tonumber(ARGV[a + 2])
  if fixedKey[i] then
    if redis.call('INCR', fixedKey[i]) == 1 then
      -- The counter is useless once its window has ended.
      local window = math.floor(now / interval)
      redis.call('PEXPIRE', fixedKey[i], math.max(1, math.ceil((window + 1) * interval - now)))
    end
  else
    local member = stamp
    local j = 0
    while redis.call('ZADD', KEYS[i], 'NX', now, member) == 0 do
      j = j + 1
      member = stamp .. '-' .. j
    end
    -- Every entry has left the window after interval without admissions.
    redis.call('PEXPIRE', KEYS[i], math.max(1, math.ceil(interval)))
  end
end
local r = { 1, 0 }
for i = 1, n do r[i + 2] = over[i] end
return r
`;

/*
 * Output leases. Per session two hashes: KEYS[1] `<prefix>lease:<session>` maps a delivery
 * token to its lease, JSON {d: deadline ms (0 = lapsed), ids: [task ids], s: 1 once sealed};
 * KEYS[2] `<prefix>out:<session>` maps a task id to its serialized output. Leases are few per
 * session (one per fetch in flight), so scanning them is cheap; outputs are only read by id.
 * Both keys expire retainMs after their last write, so an abandoned session is forgotten.
 */
const LEASE_HELPERS = `
local function nowMs()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- unpack() is bounded by Lua's C stack, so long id lists go in slices.
local function eachSlice(ids, fn)
  for i = 1, #ids, 500 do
    fn(unpack(ids, i, math.min(i + 499, #ids)))
  end
end
local function release(lease, out, token)
  local raw = redis.call('HGET', lease, token)
  if not raw then return end
  local ids = cjson.decode(raw).ids or {}
  if #ids > 0 then eachSlice(ids, function(...) redis.call('HDEL', out, ...) end) end
  redis.call('HDEL', lease, token)
end
local function values(out, ids, into)
  if #ids == 0 then return end
  eachSlice(ids, function(...)
    local vs = redis.call('HMGET', out, ...)
    for _, v in ipairs(vs) do if v then into[#into + 1] = v end end
  end)
end
local function save(lease, token, entry)
  if entry.ids and #entry.ids == 0 then entry.ids = nil end
  redis.call('HSET', lease, token, cjson.encode(entry))
end
local function idsOf(entry)
  -- cjson turns an empty array into {} and back into an empty table; both are fine here.
  return entry.ids or {}
end
`;

/**
 * Starts a fetch (the semantics of MemoryLeases.beginFetch).
 *
 * KEYS      lease hash, output hash, and when the fetch has a client key its repeat key.
 * ARGV      acknowledge token or '', new token, leaseMs (0 = not leased), reclaimAll '1'|'0',
 *           countMax, repeat TTL ms, retain ms.
 * Returns   { repeat 1|0, token, output_1, ..., output_n }.
 */
export const BEGIN_FETCH_SCRIPT = `${LEASE_HELPERS}
local lease, out = KEYS[1], KEYS[2]
local ack, token = ARGV[1], ARGV[2]
local leaseMs, all, countMax = tonumber(ARGV[3]), ARGV[4] == '1', tonumber(ARGV[5])
local repeatTtl, retain = ARGV[6], ARGV[7]
local now = nowMs()

if ack ~= '' then release(lease, out, ack) end

if #KEYS == 3 then
  local prev = redis.call('GET', KEYS[3])
  if prev then
    local reply = {1, prev}
    local raw = redis.call('HGET', lease, prev)
    if raw then
      local entry = cjson.decode(raw)
      entry.s = 1
      values(out, idsOf(entry), reply)
      save(lease, prev, entry)
    end
    return reply
  end
  redis.call('SET', KEYS[3], token, 'PX', repeatTtl)
end

local taken = {}
local all_ = redis.call('HGETALL', lease)
-- What a trimmed page handed back ('.spill') goes first: it was next in line.
local order = {}
for i = 1, #all_, 2 do if string.sub(all_[i], -6) == '.spill' then order[#order + 1] = i end end
for i = 1, #all_, 2 do if string.sub(all_[i], -6) ~= '.spill' then order[#order + 1] = i end end
for _, i in ipairs(order) do
  if #taken >= countMax then break end
  local name, entry = all_[i], cjson.decode(all_[i + 1])
  if entry.d <= now or (all and leaseMs > 0) then
    local ids = idsOf(entry)
    local room = countMax - #taken
    for j = 1, math.min(room, #ids) do taken[#taken + 1] = ids[j] end
    if #ids > room then
      local rest = {}
      for j = room + 1, #ids do rest[#rest + 1] = ids[j] end
      entry.ids, entry.d = rest, 0
      save(lease, name, entry)
    else
      redis.call('HDEL', lease, name)
    end
  end
end

local reply = {0, token}
values(out, taken, reply)
if leaseMs > 0 then
  save(lease, token, {d = now + leaseMs, ids = taken})
  redis.call('PEXPIRE', lease, retain)
  redis.call('PEXPIRE', out, retain)
elseif #taken > 0 then
  eachSlice(taken, function(...) redis.call('HDEL', out, ...) end)
end
return reply
`;

/**
 * Adds outputs just collected from the grid to a lease; if a repeat has sealed it, they go to
 * the lapsed lease token .. '.late' instead, so that the next fetch delivers them.
 *
 * KEYS      lease hash, output hash.
 * ARGV      token, leaseMs, retain ms, then task id and serialized output pairs.
 */
export const LEASE_OUTPUTS_SCRIPT = `${LEASE_HELPERS}
local lease, out = KEYS[1], KEYS[2]
local token, leaseMs, retain = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local raw = redis.call('HGET', lease, token)
local entry = raw and cjson.decode(raw)
if entry and entry.s then
  token = token .. '.late'
  raw = redis.call('HGET', lease, token)
  entry = raw and cjson.decode(raw) or {d = 0, ids = {}}
  entry.d = 0
elseif not entry then
  entry = {d = nowMs() + leaseMs, ids = {}}
end
local ids = idsOf(entry)
for i = 4, #ARGV, 2 do
  redis.call('HSET', out, ARGV[i], ARGV[i + 1])
  ids[#ids + 1] = ARGV[i]
end
entry.ids = ids
save(lease, token, entry)
redis.call('PEXPIRE', lease, retain)
redis.call('PEXPIRE', out, retain)
return 1
`;

/** Releases a lease's outputs for good. KEYS: lease hash, output hash. ARGV: token. */
export const ACKNOWLEDGE_SCRIPT = `${LEASE_HELPERS}
release(KEYS[1], KEYS[2], ARGV[1])
return 1
`;

/**
 * Schedules (ARGV[2] = time in ms) or cancels (ARGV[2] = '') a resource's termination, and ties
 * the resource's record to it: the record expires ARGV[3] ms from now (a grace period past the
 * termination, so that the reaper still finds it). ARGV[4] is who asks: 'lease' leaves a time the
 * client set alone (and its cancel clears all: the resource ended); 'client' marks its time as
 * the client's, and its cancel unmarks it and lets the record live without expiry.
 * KEYS: due zset, claimed zset, the record, the client-set hash. ARGV: resource key, time, record
 * ttl, who.
 */
export const SCHEDULE_TERMINATION_SCRIPT = `
local byClient = ARGV[4] == 'client'
if not byClient and ARGV[2] ~= '' and redis.call('HEXISTS', KEYS[4], ARGV[1]) == 1 then
  return 0
end
redis.call('ZREM', KEYS[2], ARGV[1])
if byClient and ARGV[2] ~= '' then
  redis.call('HSET', KEYS[4], ARGV[1], '1')
else
  redis.call('HDEL', KEYS[4], ARGV[1])
end
if ARGV[2] == '' then
  redis.call('ZREM', KEYS[1], ARGV[1])
  if byClient then redis.call('PERSIST', KEYS[3]) end
else
  redis.call('ZADD', KEYS[1], ARGV[2], ARGV[1])
  redis.call('PEXPIRE', KEYS[3], ARGV[3])
end
return 1
`;

/**
 * Claims terminations: first claims whose holder let the lease lapse, then due ones, up to max;
 * each is moved to (or kept in) the claimed zset until now + lease.
 * KEYS: due zset, claimed zset. ARGV: now ms, lease ms, max.
 */
export const CLAIM_TERMINATIONS_SCRIPT = `
local now, max = tonumber(ARGV[1]), tonumber(ARGV[3])
local untilMs = now + tonumber(ARGV[2])
local out = {}
for _, k in ipairs(redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, max)) do
  out[#out + 1] = k
end
if #out < max then
  for _, k in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, max - #out)) do
    redis.call('ZREM', KEYS[1], k)
    out[#out + 1] = k
  end
end
for _, k in ipairs(out) do redis.call('ZADD', KEYS[2], untilMs, k) end
return out
`;

/**
 * Keeps the first ARGV[2] outputs of lease ARGV[1] and moves the rest to the lapsed lease
 * ARGV[1] .. '.spill', which the next fetch takes first. KEYS: lease hash.
 */
export const TRIM_LEASE_SCRIPT = `${LEASE_HELPERS}
local raw = redis.call('HGET', KEYS[1], ARGV[1])
if not raw then return 0 end
local entry = cjson.decode(raw)
local ids = idsOf(entry)
local keep = tonumber(ARGV[2])
if #ids <= keep then return 0 end
local kept, rest = {}, {}
for i, id in ipairs(ids) do
  if i <= keep then kept[#kept + 1] = id else rest[#rest + 1] = id end
end
entry.ids = kept
save(KEYS[1], ARGV[1], entry)
local spillToken = ARGV[1] .. '.spill'
local sraw = redis.call('HGET', KEYS[1], spillToken)
local spill = sraw and cjson.decode(sraw) or {d = 0, ids = {}}
local sids = idsOf(spill)
for _, id in ipairs(rest) do sids[#sids + 1] = id end
spill.ids, spill.d = sids, 0
save(KEYS[1], spillToken, spill)
return 1
`;

/**
 * A Pull after page ARGV[1] of an enumeration context (hash KEYS[1]: seq, attempt): reserves the
 * next page ('fresh'), recognises a repeat of the page already handed out ('repeat'), or refuses.
 */
export const ADVANCE_ENUMERATION_SCRIPT = `
local seq = redis.call('HGET', KEYS[1], 'seq')
if not seq then return {'stale', 0} end
seq = tonumber(seq)
local after = tonumber(ARGV[1])
local attempt = tonumber(redis.call('HGET', KEYS[1], 'attempt') or '0')
if seq == after then
  redis.call('HSET', KEYS[1], 'seq', after + 1)
  return {'fresh', attempt}
end
if seq == after + 1 then return {'repeat', attempt} end
return {'stale', attempt}
`;

/** Page ARGV[1] came back empty: fetch it afresh next time (KEYS[1]: the context hash). */
export const REWIND_ENUMERATION_SCRIPT = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if tonumber(redis.call('HGET', KEYS[1], 'seq') or '-1') == tonumber(ARGV[1]) then
  redis.call('HSET', KEYS[1], 'seq', tonumber(ARGV[1]) - 1)
  redis.call('HINCRBY', KEYS[1], 'attempt', 1)
end
return 1
`;
