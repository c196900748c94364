-- claim.lua: a worker takes queued trials; each claimed trial becomes running with attempt+1
-- and a lease that the worker's heartbeat must renew (see renew.lua, reap.lua).
-- KEYS[1]     hqs:s:{id}:counts   HASH  state -> count (queued -1, running +1 per claim)
-- KEYS[2]     hqs:s:{id}:leases   ZSET  trial number -> lease deadline (ms, server clock)
-- KEYS[3..n]  hqs:s:{id}:t:{num}  HASH  trial records (state, attempt, worker, started_at, lease)
-- ARGV[1] worker name   ARGV[2] lease length (ms)   ARGV[3..] trial numbers, in KEYS order
-- Returns a flat array {position, attempt, ...}: position is the 1-based index among
-- KEYS[3..n] of each trial claimed. Trials not queued (cancelled, already taken) are skipped.
-- Times come from the server's clock, so workers on other nodes need no clock agreement.
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local deadline = now_ms + tonumber(ARGV[2])
local claimed = {}
for i = 3, #KEYS do
  local key = KEYS[i]
  if redis.call('HGET', key, 'state') == 'queued' then
    local attempt = redis.call('HINCRBY', key, 'attempt', 1)
    redis.call('HSET', key, 'state', 'running', 'worker', ARGV[1],
               'started_at', string.format('%.3f', now_ms / 1000), 'lease', deadline)
    redis.call('ZADD', KEYS[2], deadline, ARGV[i])
    redis.call('HINCRBY', KEYS[1], 'queued', -1)
    redis.call('HINCRBY', KEYS[1], 'running', 1)
    claimed[#claimed + 1] = i - 2
    claimed[#claimed + 1] = attempt
  end
end
return claimed
