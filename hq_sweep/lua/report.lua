-- report.lua: record an intermediate value and tell the worker whether to prune.
-- KEYS[1]  hqs:s:{id}:t:{num}    HASH  trial record (read: state, attempt, prune)
-- KEYS[2]  hqs:s:{id}:iv:{num}   HASH  step -> intermediate value
-- KEYS[3]  hqs:s:{id}:reports    LIST  report JSON for the controller's pruner
-- ARGV[1] attempt   ARGV[2] step   ARGV[3] value (exact decimal text)   ARGV[4] report JSON
-- ARGV[5] '1' when the sweep prunes (the controller reads KEYS[3]), else '0'.
-- Returns -1 when the attempt is stale (not running, or superseded), 1 when the controller
-- has decided to prune this trial, else 0. The decision is read, never waited for.
if redis.call('HGET', KEYS[1], 'state') ~= 'running'
   or redis.call('HGET', KEYS[1], 'attempt') ~= ARGV[1] then
  return -1
end
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
if ARGV[5] == '1' then
  redis.call('RPUSH', KEYS[3], ARGV[4])
end
if redis.call('HGET', KEYS[1], 'prune') == '1' then
  return 1
end
return 0
