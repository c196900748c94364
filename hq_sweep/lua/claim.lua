-- claim.lua: a worker takes queued trials; each claimed trial becomes running with attempt+1.
-- KEYS[1]     hqs:s:{id}:counts   HASH  state -> count (queued -1, running +1 per claim)
-- KEYS[2..n]  hqs:s:{id}:t:{num}  HASH  trial records (state, attempt, worker, started_at, lease)
-- ARGV[1] worker name   ARGV[2] now (unix seconds)   ARGV[3] lease deadline (unix seconds)
-- Returns a flat array {position, attempt, ...}: position is the 1-based index among
-- KEYS[2..n] of each trial claimed. Trials not queued (cancelled, already taken) are skipped.
local claimed = {}
for i = 2, #KEYS do
  local key = KEYS[i]
  if redis.call('HGET', key, 'state') == 'queued' then
    local attempt = redis.call('HINCRBY', key, 'attempt', 1)
    redis.call('HSET', key, 'state', 'running', 'worker', ARGV[1],
               'started_at', ARGV[2], 'lease', ARGV[3])
    redis.call('HINCRBY', KEYS[1], 'queued', -1)
    redis.call('HINCRBY', KEYS[1], 'running', 1)
    claimed[#claimed + 1] = i - 1
    claimed[#claimed + 1] = attempt
  end
end
return claimed
