-- reap.lua: trials whose lease expired (worker killed, node lost) go back to the queue, or
-- fail once they have used up their attempts.
-- KEYS[1]  hqs:s:{id}:leases   ZSET  trial number -> lease deadline (ms, server clock)
-- KEYS[2]  hqs:s:{id}:counts   HASH  running -1; queued +1 and requeued +1, or failed +1
-- KEYS[3]  hqs:s:{id}:reasons  HASH  failure kind -> count
-- KEYS[4]  hqs:s:{id}:ready    LIST  requeued trial numbers are pushed back here
-- ARGV[1]  trial key prefix (hqs:s:{id}:t:) — records are found by number, so this script
--          touches hqs:s:{id}:t:{num} keys it cannot declare in advance (single-node Redis):
--          state, lease, reason, ended_at
-- ARGV[2]  attempts allowed (retries + 1)   ARGV[3] most trials to handle in one call
-- Returns {requeued, number, record, number, record, ...}: how many trials were requeued
-- (the caller wakes workers for them), then each trial failed here with its whole record as
-- HGETALL gives it. The caller, the controller, tells those itself; were it to die first, its
-- successor rebuilds from the records, where they read failed.
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now_ms, 'LIMIT', 0, tonumber(ARGV[3]))
local reply = {0}
for _, number in ipairs(expired) do
  redis.call('ZREM', KEYS[1], number)
  local key = ARGV[1] .. number
  -- A member that is not a trial number is someone else's garbage: dropped above, skipped.
  if string.match(number, '^%d+$') and redis.call('HGET', key, 'state') == 'running' then
    local attempt = tonumber(redis.call('HGET', key, 'attempt'))
    local used = attempt - tonumber(redis.call('HGET', key, 'released') or '0')
    redis.call('HDEL', key, 'lease')
    count(KEYS[2], 'running', -1)
    if used >= tonumber(ARGV[2]) then
      local reason = 'lease expired (worker lost) on each of ' .. used .. ' attempts'
      redis.call('HSET', key, 'state', 'failed', 'reason', reason,
                 'ended_at', string.format('%.3f', now_ms / 1000))
      count(KEYS[2], 'failed', 1)
      count(KEYS[3], 'lease expired', 1)
      reply[#reply + 1] = tonumber(number)
      reply[#reply + 1] = redis.call('HGETALL', key)
    else
      redis.call('HSET', key, 'state', 'queued')
      count(KEYS[2], 'queued', 1)
      count(KEYS[2], 'requeued', 1)
      redis.call('RPUSH', KEYS[4], number)
      reply[1] = reply[1] + 1
    end
  end
end
return reply
