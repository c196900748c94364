-- finish.lua: record how trial attempts ended, each at most once (fenced by attempt).
-- KEYS[1]     hqs:s:{id}:counts   HASH  state -> count (running -1, final state +1)
-- KEYS[2]     hqs:s:{id}:results  LIST  outcome JSON pushed for the controller to tell Optuna
-- KEYS[3]     hqs:s:{id}:leases   ZSET  trial number -> lease deadline (entry removed)
-- KEYS[4]     hqs:s:{id}:reasons  HASH  failure kind -> count (for `hq-sweep status`)
-- KEYS[5..n]  hqs:s:{id}:t:{num}  HASH  trial records (state, ended_at, values, reason,
--                                       metrics, duration; lease removed)
-- ARGV: 10 entries per trial, in KEYS order: number, attempt, final state, ended_at,
--       values JSON, reason, metrics JSON, outcome JSON, failure kind, duration (seconds the
--       objective ran: a batch claims several trials at once, so ended_at - started_at is not).
--       Empty strings mean "no such field".
-- Returns one flag per trial: 1 recorded, 0 rejected (not running, or a stale attempt).
local stride = 10
local recorded = {}
for i = 5, #KEYS do
  local key = KEYS[i]
  local base = (i - 5) * stride
  local ok = 0
  if redis.call('HGET', key, 'state') == 'running'
     and redis.call('HGET', key, 'attempt') == ARGV[base + 2] then
    local state = ARGV[base + 3]
    redis.call('HSET', key, 'state', state, 'ended_at', ARGV[base + 4])
    local optional = {values = ARGV[base + 5], reason = ARGV[base + 6], metrics = ARGV[base + 7],
                      duration = ARGV[base + 10]}
    for field, value in pairs(optional) do
      if value ~= '' then redis.call('HSET', key, field, value) end
    end
    redis.call('HDEL', key, 'lease')
    redis.call('ZREM', KEYS[3], ARGV[base + 1])
    redis.call('HINCRBY', KEYS[1], 'running', -1)
    redis.call('HINCRBY', KEYS[1], state, 1)
    if ARGV[base + 9] ~= '' then redis.call('HINCRBY', KEYS[4], ARGV[base + 9], 1) end
    redis.call('RPUSH', KEYS[2], ARGV[base + 8])
    ok = 1
  end
  recorded[#recorded + 1] = ok
end
return recorded
