-- fs-guard: one screened call against every limit it counts toward, in one atomic step.
--
-- The shared twin of fs_guard/runtime/tally.py Tally.count (see fs_guard/runtime/cluster.py,
-- which builds the arguments and reads the reply). Times are integer microseconds.
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
--       then per check, 13 values: window, calls top, calls critical, distinct top,
--       distinct critical, concurrent top, concurrent critical (top -1 = not counted,
--       critical -1 = never rejects), block_for (0 = none), identity index of its block,
--       "LIMIT|BY|KEY", then the node's own counts of calls, distinct, concurrent
--       (floors: a count is never below what the node itself has seen).
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
local FIRST, STRIDE = 13, 13

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
  local a = FIRST + (i - 1) * STRIDE
  local horizon = now - tonumber(ARGV[a])
  local counts = {-1, -1, -1}
  if tonumber(ARGV[a + 1]) >= 0 then
    local key = KEYS[3 * i - 2]
    redis.call('ZREMRANGEBYSCORE', key, '-inf', us(horizon))
    counts[1] = math.max(redis.call('ZCARD', key) + 1, tonumber(ARGV[a + 10]))
  end
  if tonumber(ARGV[a + 3]) >= 0 then
    local key = KEYS[3 * i - 1]
    redis.call('ZREMRANGEBYSCORE', key, '-inf', us(horizon))
    local new = redis.call('ZSCORE', key, ARGV[2]) and 0 or 1
    counts[2] = math.max(redis.call('ZCARD', key) + new, tonumber(ARGV[a + 11]))
  end
  if tonumber(ARGV[a + 5]) >= 0 then
    local key = KEYS[3 * i]
    redis.call('ZREMRANGEBYSCORE', key, '-inf', us(now))
    counts[3] = math.max(redis.call('ZCARD', key) + 1, tonumber(ARGV[a + 12]))
  end
  for k = 1, 3 do
    reply[4 + 3 * (i - 1) + k] = counts[k]
    local critical = tonumber(ARGV[a + 2 * k])
    if reject == 0 and critical >= 0 and counts[k] > critical then
      reject = i
    end
  end
end

if reject > 0 then
  local a = FIRST + (reject - 1) * STRIDE
  local block_for = tonumber(ARGV[a + 7])
  if block_for > 0 then
    local untilv = now + block_for
    redis.call('SET', KEYS[blocks + tonumber(ARGV[a + 8])], us(untilv) .. '|' .. ARGV[a + 9], 'PX', ms(block_for))
    reply[3] = untilv
  end
  reply[1], reply[2] = 2, reject
  return reply
end

local function trim(key, top)
  local over = redis.call('ZCARD', key) - 4 * top
  if over > 0 then
    redis.call('ZREMRANGEBYRANK', key, 0, over - 1)
  end
end

for i = 1, n do
  local a = FIRST + (i - 1) * STRIDE
  local window = ms(tonumber(ARGV[a]))
  local top = tonumber(ARGV[a + 1])
  if top >= 0 then
    local key = KEYS[3 * i - 2]
    redis.call('ZADD', key, us(now), ARGV[3])
    trim(key, top)
    redis.call('PEXPIRE', key, window)
  end
  top = tonumber(ARGV[a + 3])
  if top >= 0 then
    local key = KEYS[3 * i - 1]
    redis.call('ZADD', key, us(now), ARGV[2])
    trim(key, top)
    redis.call('PEXPIRE', key, window)
  end
  if tonumber(ARGV[a + 5]) >= 0 then
    local key = KEYS[3 * i]
    redis.call('ZADD', key, us(now + tonumber(ARGV[9])), ARGV[4])
    redis.call('PEXPIRE', key, ms(tonumber(ARGV[9])))
  end
end
return reply
