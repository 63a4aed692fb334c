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
