-- evenkeel RedisStore: the atomic check-and-reserve of one quota key.
--
-- KEYS[1]  the key's state hash   {key}:s
-- KEYS[2]  the key's in-flight    {key}:f
-- ARGV[1..4]  the cost: requests, tokens, input tokens, output tokens
-- ARGV[5]  the reservation's id
-- ARGV[6]  how long the reservation holds its cost (ms)
-- ARGV[7]  how long an idle key lives (ms)
-- ARGV[8]  how long a learned quota lives without a reading (ms)
-- ARGV[9]  how many declared quotas follow, four arguments each:
--          name, field (0..3), capacity, rate (per ms)
--
-- Quota fields of the state hash are `q:NAME` = "field cap rate level ts
-- seen src limit reset": a token bucket holding `level` at `ts` (ms, Redis
-- time), refilled at `rate` per ms up to `cap`; `seen` is the admission
-- whose reading set it, `src` is `d` (declared) or a dialect's number.
--
-- A declared bucket is charged at admission, as one process's memory store
-- does, so a reservation in flight does not hold its share of the burst;
-- a reservation that expires unsettled (its process crashed) gives its
-- cost back. A learned bucket holds reservations in flight until their
-- answers settle them (the reading that comes back may count them already).
--
-- Returns {1, seq, cum1, cum2, cum3, cum4, quotas} when admitted, or
-- {0, wait_us, field, cooldown, quotas} when short (no quotas in a
-- cooldown); quotas is one string, a line per quota of eight words: name,
-- field, cap, available, rate, limit, src, reset_in_us (one string parses
-- far faster on the client than as many values).

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local s, f = KEYS[1], KEYS[2]
local cost = {tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])}
local ttl, idle, stale = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])

local function num(x) return string.format('%.17g', x) end

local cool = tonumber(redis.call('HGET', s, 'cool') or '0') or 0
if cool > now then
  return {0, math.ceil((cool - now) * 1000), -1, 1}
end

-- What the reservations still in flight hold; expired ones are freed,
-- and give back what they took from the declared buckets.
local held = {0, 0, 0, 0}
local refund = {0, 0, 0, 0}
local flight = redis.call('HGETALL', f)
for i = 1, #flight, 2 do
  local _, exp, c1, c2, c3, c4 =
    string.match(flight[i + 1], '^(%d+) (%S+) (%d+) (%d+) (%d+) (%d+)$')
  exp = tonumber(exp)
  if exp == nil or exp <= now then
    redis.call('HDEL', f, flight[i])
    if exp ~= nil then
      refund[1] = refund[1] + tonumber(c1)
      refund[2] = refund[2] + tonumber(c2)
      refund[3] = refund[3] + tonumber(c3)
      refund[4] = refund[4] + tonumber(c4)
    end
  else
    held[1] = held[1] + tonumber(c1)
    held[2] = held[2] + tonumber(c2)
    held[3] = held[3] + tonumber(c3)
    held[4] = held[4] + tonumber(c4)
  end
end

-- Declared quotas start full.
local declared = tonumber(ARGV[9])
for i = 0, declared - 1 do
  local b = 10 + i * 4
  local name = 'q:' .. ARGV[b]
  if redis.call('HEXISTS', s, name) == 0 then
    redis.call('HSET', s, name, table.concat(
      {ARGV[b + 1], ARGV[b + 2], ARGV[b + 3], ARGV[b + 2], num(now), '0', 'd', ARGV[b + 2], '0'}, ' '))
  end
end

local wait, short, quotas, decl = 0, 0, {}, {}
local state = redis.call('HGETALL', s)
for i = 1, #state, 2 do
  local name = state[i]
  if string.sub(name, 1, 2) == 'q:' then
    local field, cap, rate, level, ts, _, src, limit, reset =
      string.match(state[i + 1], '^(%d) (%S+) (%S+) (%S+) (%S+) (%d+) (%S+) (%S+) (%S+)$')
    field, cap, rate, level, ts, reset =
      tonumber(field), tonumber(cap), tonumber(rate), tonumber(level), tonumber(ts), tonumber(reset)
    if field == nil or cap == nil or rate == nil or level == nil or ts == nil
      or (src ~= 'd' and now - ts > stale) then
      redis.call('HDEL', s, name)
    else
      level = math.min(cap, level + rate * math.max(0, now - ts))
      local avail = level - held[field + 1]
      if src == 'd' then
        level = math.min(cap, level + refund[field + 1])
        avail = level
        decl[#decl + 1] = {name, field, cap, rate, level, limit}
      end
      local c = cost[field + 1]
      -- A cost above the capacity goes when the bucket is full.
      if c > 0 and c > avail and not (c > cap and avail >= cap) then
        local need = math.min(c, cap) - avail
        local w = 3.15e10
        if rate > 0 then w = math.min(w, need / rate) end
        if w > wait then wait, short = w, field end
      end
      local reset_in = 0
      if reset ~= nil and reset > now then reset_in = math.ceil((reset - now) * 1000) end
      quotas[#quotas + 1] = table.concat({string.sub(name, 3), field, num(cap), num(avail),
        num(rate), limit, src, reset_in}, ' ')
    end
  end
end

local function charge_declared(factor)
  for _, d in ipairs(decl) do
    local level = d[5] - factor * cost[d[2] + 1]
    redis.call('HSET', s, d[1], table.concat(
      {d[2], num(d[3]), num(d[4]), num(level), num(now), '0', 'd', d[6], '0'}, ' '))
  end
end

if wait > 0 then
  if refund[1] + refund[2] + refund[3] + refund[4] > 0 then charge_declared(0) end
  return {0, math.ceil(wait * 1000), short, 0, table.concat(quotas, '\n')}
end
charge_declared(1)

local seq = redis.call('HINCRBY', s, 'seq', 1)
local out = {1, seq}
for j = 1, 4 do out[#out + 1] = redis.call('HINCRBY', s, 'a' .. j, cost[j]) end
redis.call('HSET', f, ARGV[5], table.concat(
  {seq, num(now + ttl), ARGV[1], ARGV[2], ARGV[3], ARGV[4]}, ' '))
redis.call('PEXPIRE', f, math.max(idle, ttl))
if redis.call('PTTL', s) < idle then redis.call('PEXPIRE', s, idle) end
out[#out + 1] = table.concat(quotas, '\n')
return out
