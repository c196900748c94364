-- release.lua: a stopping worker gives back trials it claimed but will not finish. The
-- attempt number stays (fencing stays monotonic); `released` records that this attempt was
-- handed back, so it does not count against the trial's retries.
-- KEYS[1]     hqs:s:{id}:leases   ZSET  trial number -> lease deadline (entry removed)
-- KEYS[2]     hqs:s:{id}:counts   HASH  running -1, queued +1, requeued +1
-- KEYS[3]     hqs:s:{id}:ready    LIST  released numbers go back to its front
-- KEYS[4..n]  hqs:s:{id}:t:{num}  HASH  trial records (state running -> queued, released +1)
-- ARGV[1] worker name   then per trial: number, attempt
-- Returns one flag per trial: 1 released, 0 not ours any more.
local released = {}
for i = 4, #KEYS do
  local key = KEYS[i]
  local number = ARGV[(i - 4) * 2 + 2]
  local attempt = ARGV[(i - 4) * 2 + 3]
  local ok = 0
  if redis.call('HGET', key, 'state') == 'running'
     and redis.call('HGET', key, 'attempt') == attempt
     and redis.call('HGET', key, 'worker') == ARGV[1] then
    redis.call('HSET', key, 'state', 'queued')
    count(key, 'released', 1)
    redis.call('HDEL', key, 'lease')
    redis.call('ZREM', KEYS[1], number)
    count(KEYS[2], 'running', -1)
    count(KEYS[2], 'queued', 1)
    count(KEYS[2], 'requeued', 1)
    redis.call('LPUSH', KEYS[3], number)
    ok = 1
  end
  released[#released + 1] = ok
end
return released
