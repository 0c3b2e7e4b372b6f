-- fs-guard: one screened call against every limit it counts toward, in one atomic step.
--
-- The shared twin of fs_guard/runtime/tally.py Tally.count (see fs_guard/runtime/cluster/counting.py;
-- fs_guard/runtime/cluster/script.py writes the arguments and reads the reply as named records).
-- Times are integer microseconds.
--
-- KEYS: per check i (1..n): calls window (ZSET call -> time), distinct numbers (ZSET
--       number -> last time), concurrent calls (ZSET call id -> expiry); then one block
--       key per identity j (1..m), holding "UNTIL|LIMIT|BY|KEY"; with a block the node holds
--       (ARGV 10), last, the "unblocked" mark of its identity (an operator lifted it: the
--       node's own copy is about to go, and must not come back).
-- ARGV: 1 now ("" = Redis's own clock), 2 number, 3 this call's member in the calls windows,
--       4 its call id for concurrency ("" = concurrent calls not counted), 5 n, 6 m,
--       7 enforce "1"/"0", 8 ",LIMIT:BY,..." (a block of any other limit is stale),
--       9 concurrency slot lifetime, 10..12 a block the node holds and Redis may not have:
--       identity index (0 = none), time left, "LIMIT|BY|KEY";
--       then per check two: 12 integers joined by commas (window; calls top, critical;
--       distinct top, critical; concurrent top, critical (top -1 = not counted, critical
--       -1 = never rejects); block_for (0 = none); identity index of its block; the node's
--       own counts of calls, distinct, concurrent: floors, a count is never below what the
--       node itself has seen; 1 when the distinct count is of destination countries, else 0),
--       and "LIMIT|BY|KEY" (one string, not thirteen: redis-py spends about half a microsecond
--       packing each argument); last, the call's destination country ("" = not classified).
-- Reply: {1, j, block value, now} when identity j is blocked; otherwise
--        {0 accepted | 2 rejected, rejecting check, block until (0 = none), now,
--         then calls, distinct, concurrent per check (-1 = not counted)}.

local now
if ARGV[1] ~= '' then
  now = tonumber(ARGV[1])
else
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
end

local function us(x)
  return string.format('%.0f', x)
end

local function ms(x)
  return math.max(1, math.ceil(x / 1000))
end

local n, m = tonumber(ARGV[5]), tonumber(ARGV[6])
local blocks = 3 * n

-- each check's integers: WINDOW, CALLS_TOP, CALLS_CRIT, DISTINCT_TOP, DISTINCT_CRIT,
-- UP_TOP, UP_CRIT, BLOCK_FOR, IDENTITY, then the floors, then DISTINCT_OF (1: countries)
local WINDOW, CALLS_TOP, DISTINCT_TOP, UP_TOP, BLOCK_FOR, IDENTITY, FLOORS, DISTINCT_OF = 1, 2, 4, 6, 8, 9, 9, 13
local country = ARGV[13 + 2 * n]
-- what a check's distinct count counts: the number dialled, or its destination country
local function distinct_member(c)
  if c[DISTINCT_OF] == 1 then
    return country
  end
  return ARGV[2]
end
local checks = {}
for i = 1, n do
  local values = {}
  for v in string.gmatch(ARGV[11 + 2 * i], '[^,]+') do
    values[#values + 1] = tonumber(v)
  end
  checks[i] = values
end

if ARGV[7] == '1' then
  local held = tonumber(ARGV[10])
  for j = 1, m do
    local key = KEYS[blocks + j]
    local value = redis.call('GET', key)
    if value then
      local untilv, name, by = string.match(value, '^(%d+)|([^|]*)|([^|]*)|')
      if untilv and tonumber(untilv) > now and string.find(ARGV[8], ',' .. name .. ':' .. by .. ',', 1, true) then
        return {1, j, value, now}
      end
      redis.call('DEL', key)  -- over, or of a limit no longer configured: Tally drops it too
    end
    if held == j and redis.call('EXISTS', KEYS[#KEYS]) == 0 then
      value = us(now + tonumber(ARGV[11])) .. '|' .. ARGV[12]
      redis.call('SET', key, value, 'PX', ms(tonumber(ARGV[11])))
      return {1, j, value, now}
    end
  end
end

local reply = {0, 0, 0, now}
local reject = 0
for i = 1, n do
  local c = checks[i]
  local horizon = now - c[WINDOW]
  local counts = {-1, -1, -1}
  local after = '(' .. us(horizon)  -- in the window: later than horizon
  if c[CALLS_TOP] >= 0 then
    counts[1] = math.max(redis.call('ZCOUNT', KEYS[3 * i - 2], after, '+inf') + 1, c[FLOORS + 1])
  end
  if c[DISTINCT_TOP] >= 0 then
    local key = KEYS[3 * i - 1]
    local last = redis.call('ZSCORE', key, distinct_member(c))
    local new = (last and tonumber(last) > horizon) and 0 or 1
    counts[2] = math.max(redis.call('ZCOUNT', key, after, '+inf') + new, c[FLOORS + 2])
  end
  if c[UP_TOP] >= 0 then
    counts[3] = math.max(redis.call('ZCOUNT', KEYS[3 * i], '(' .. us(now), '+inf') + 1, c[FLOORS + 3])
  end
  for k = 1, 3 do
    reply[4 + 3 * (i - 1) + k] = counts[k]
    local critical = c[1 + 2 * k]
    if reject == 0 and critical >= 0 and counts[k] > critical then
      reject = i
    end
  end
end

if reject > 0 then
  local c = checks[reject]
  local block_for = c[BLOCK_FOR]
  if block_for > 0 then
    local untilv = now + block_for
    redis.call('SET', KEYS[blocks + c[IDENTITY]], us(untilv) .. '|' .. ARGV[12 + 2 * reject], 'PX', ms(block_for))
    reply[3] = untilv
  end
  reply[1], reply[2] = 2, reject
  return reply
end

-- Keep the newest 4 x top entries (what is older is out of the window, or above any count
-- that changes a decision: Tally keeps the same); the key lives as long as its window.
local function add(key, member, top, window)
  redis.call('ZADD', key, us(now), member)
  redis.call('ZREMRANGEBYRANK', key, 0, -4 * top - 1)
  redis.call('PEXPIRE', key, window)
end

for i = 1, n do
  local c = checks[i]
  local window = ms(c[WINDOW])
  if c[CALLS_TOP] >= 0 then
    add(KEYS[3 * i - 2], ARGV[3], c[CALLS_TOP], window)
  end
  if c[DISTINCT_TOP] >= 0 then
    add(KEYS[3 * i - 1], distinct_member(c), c[DISTINCT_TOP], window)
  end
  if c[UP_TOP] >= 0 then
    local key = KEYS[3 * i]
    redis.call('ZREMRANGEBYSCORE', key, '-inf', us(now))  -- calls whose hang-up was never seen
    redis.call('ZADD', key, us(now + tonumber(ARGV[9])), ARGV[4])
    redis.call('PEXPIRE', key, ms(tonumber(ARGV[9])))
  end
end
return reply
