-- finish.lua: record how trial attempts ended, each at most once (fenced by attempt).
-- KEYS[1]     hqs:s:{id}:counts   HASH  state -> count (running -1, final state +1)
-- KEYS[2]     hqs:s:{id}:results  LIST  outcome JSON pushed for the controller to tell Optuna
-- KEYS[3..n]  hqs:s:{id}:t:{num}  HASH  trial records (state, ended_at, values, reason,
--                                       metrics, duration; lease removed)
-- ARGV: 7 entries per trial, in KEYS order: attempt, final state, ended_at, values JSON,
--       reason, metrics JSON, outcome JSON. Empty strings mean "no such field".
-- Returns one flag per trial: 1 recorded, 0 rejected (not running, or a stale attempt).
local recorded = {}
for i = 3, #KEYS do
  local key = KEYS[i]
  local base = (i - 3) * 7
  local ok = 0
  if redis.call('HGET', key, 'state') == 'running'
     and redis.call('HGET', key, 'attempt') == ARGV[base + 1] then
    local state = ARGV[base + 2]
    redis.call('HSET', key, 'state', state, 'ended_at', ARGV[base + 3])
    local optional = {values = ARGV[base + 4], reason = ARGV[base + 5], metrics = ARGV[base + 6]}
    for field, value in pairs(optional) do
      if value ~= '' then redis.call('HSET', key, field, value) end
    end
    redis.call('HDEL', key, 'lease')
    redis.call('HINCRBY', KEYS[1], 'running', -1)
    redis.call('HINCRBY', KEYS[1], state, 1)
    redis.call('RPUSH', KEYS[2], ARGV[base + 7])
    ok = 1
  end
  recorded[#recorded + 1] = ok
end
return recorded
