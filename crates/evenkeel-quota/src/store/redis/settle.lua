-- evenkeel RedisStore: what an answer says, applied to one quota key.
--
-- KEYS[1]  the key's state hash   {key}:s
-- KEYS[2]  the key's in-flight    {key}:f
-- ARGV[1]  the reservation's id          ARGV[2]  its admission's seq
-- ARGV[3..6]  the key's cumulative cost right after that admission
-- ARGV[7]  1 to charge the cost (to every declared quota, and to each
--          learned quota whose reading is older than this admission), 0 to
--          give it back
-- ARGV[8..11]  the cost
-- ARGV[12] a cooldown the server asked for (ms, 0 for none)
-- ARGV[13] how long an idle key lives (ms)
-- ARGV[14] the window assumed when a reading has no reset (ms)
-- ARGV[15] how many readings follow, seven arguments each:
--          name, field, limit (-1 unknown), remaining, reset after (ms, -1
--          unknown), window (ms, -1 unknown), src
--
-- Returns the cooldown still to run, in microseconds (0 for none).

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local s, f = KEYS[1], KEYS[2]
local seq = tonumber(ARGV[2])
local cum = {tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])}
local cost = {tonumber(ARGV[8]), tonumber(ARGV[9]), tonumber(ARGV[10]), tonumber(ARGV[11])}
local idle, window = tonumber(ARGV[13]), tonumber(ARGV[14])
local readings = tonumber(ARGV[15])

local function num(x) return string.format('%.17g', x) end
local function parse(v)
  local field, cap, rate, level, ts, seen, src, limit, reset =
    string.match(v, '^(%d) (%S+) (%S+) (%S+) (%S+) (%d+) (%S+) (%S+) (%S+)$')
  if field == nil then return nil end
  return {field = tonumber(field), cap = tonumber(cap), rate = tonumber(rate),
          level = tonumber(level), ts = tonumber(ts), seen = tonumber(seen),
          src = src, limit = limit, reset = reset}
end
local function store(name, q)
  redis.call('HSET', s, name, table.concat({q.field, num(q.cap), num(q.rate), num(q.level),
    num(q.ts), q.seen, q.src, q.limit, q.reset}, ' '))
end

-- What the admission took from the declared buckets (nothing known once
-- the reservation expired: then nothing is corrected).
local took = nil
local entry = redis.call('HGET', f, ARGV[1])
if entry then
  local _, _, r1, r2, r3, r4 =
    string.match(entry, '^(%d+) (%S+) (%d+) (%d+) (%d+) (%d+)$')
  if r1 ~= nil then took = {tonumber(r1), tonumber(r2), tonumber(r3), tonumber(r4)} end
end
redis.call('HDEL', f, ARGV[1])

local charge = ARGV[7] == '1'
if charge or took ~= nil then
  local state = redis.call('HGETALL', s)
  for i = 1, #state, 2 do
    if string.sub(state[i], 1, 2) == 'q:' then
      local q = parse(state[i + 1])
      local delta = nil
      if q == nil then
        delta = nil
      elseif q.src == 'd' then
        -- Charged at admission: correct by what the answer says it cost,
        -- or give it all back.
        if took ~= nil then
          if charge then
            delta = cost[q.field + 1] - took[q.field + 1]
          else
            delta = -took[q.field + 1]
          end
        end
      elseif charge and q.seen < seq then
        -- A learned quota whose reading came from a later admission
        -- already counts this request.
        delta = cost[q.field + 1]
      end
      if delta ~= nil and delta ~= 0 then
        q.level = math.min(q.cap, q.level + q.rate * math.max(0, now - q.ts)) - delta
        q.level = math.min(q.cap, q.level)
        q.ts = now
        store(state[i], q)
      end
    end
  end
end

if readings > 0 then
  -- What was admitted after this request and is still in flight: its cost
  -- is not in the reading, and is counted by its reservation.
  local held = {0, 0, 0, 0}
  local flight = redis.call('HGETALL', f)
  for i = 1, #flight, 2 do
    local fseq, exp, c1, c2, c3, c4 =
      string.match(flight[i + 1], '^(%d+) (%S+) (%d+) (%d+) (%d+) (%d+)$')
    if fseq ~= nil and tonumber(fseq) > seq and tonumber(exp) > now then
      held[1] = held[1] + tonumber(c1)
      held[2] = held[2] + tonumber(c2)
      held[3] = held[3] + tonumber(c3)
      held[4] = held[4] + tonumber(c4)
    end
  end
  for i = 0, readings - 1 do
    local b = 16 + i * 7
    local name = 'q:' .. ARGV[b]
    local field = tonumber(ARGV[b + 1])
    local limit, remaining = tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3])
    local reset_after, win = tonumber(ARGV[b + 4]), tonumber(ARGV[b + 5])
    local old = nil
    local raw = redis.call('HGET', s, name)
    if raw then old = parse(raw) end
    -- A reading older than the one applied is stale.
    if old == nil or old.seen < seq then
      local now_cum = tonumber(redis.call('HGET', s, 'a' .. (field + 1)) or '0') or 0
      local after = math.max(0, now_cum - cum[field + 1] - held[field + 1])
      local cap = limit
      if cap < 0 then
        cap = remaining
        if old ~= nil then cap = math.max(cap, old.cap) end
      end
      cap = math.max(cap, 1)
      local rate
      if win > 0 then
        rate = cap / win
      elseif reset_after > 0 and cap > remaining then
        rate = (cap - remaining) / reset_after
      else
        rate = cap / math.max(reset_after, window)
      end
      local reset = '0'
      if reset_after >= 0 then reset = num(now + reset_after) end
      local shown = '-1'
      if limit >= 0 then shown = ARGV[b + 2] end
      store(name, {field = field, cap = cap, rate = rate, level = remaining - after,
        ts = now, seen = seq, src = ARGV[b + 6], limit = shown, reset = reset})
    end
  end
end

local cd = tonumber(ARGV[12])
local cool = tonumber(redis.call('HGET', s, 'cool') or '0') or 0
if cd > 0 and now + cd > cool then
  cool = now + cd
  redis.call('HSET', s, 'cool', num(cool))
end
local keep = math.max(idle, cool - now)
if redis.call('PTTL', s) < keep then redis.call('PEXPIRE', s, math.ceil(keep)) end
if cool > now then return math.ceil((cool - now) * 1000) end
return 0
