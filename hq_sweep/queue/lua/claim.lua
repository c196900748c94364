-- claim.lua: a worker takes up to N trials from the ready list; each becomes running with
-- attempt+1 and a lease that the worker's heartbeat renews (see renew.lua, reap.lua). Taking
-- from the list and leasing happen in one step, so a worker killed at any moment leaves each
-- trial either still ready or leased — never stranded.
-- KEYS[1]  hqs:s:{id}:counts   HASH  state -> count (queued -1, running +1 per claim)
-- KEYS[2]  hqs:s:{id}:leases   ZSET  trial number -> lease deadline (ms, server clock)
-- KEYS[3]  hqs:s:{id}:ready    LIST  numbers of queued trials, oldest first
-- KEYS[4]  hqs:s:{id}          HASH  sweep meta (read: state; a stopping or finished sweep
--                                    hands out nothing)
-- ARGV[1] worker name   ARGV[2] lease length (ms)   ARGV[3] most trials to take
-- ARGV[4] trial key prefix (hqs:s:{id}:t:) — records hqs:s:{id}:t:{num} are found by number
--         (state, attempt, worker, started_at, lease set), single-node Redis
-- Returns a flat array {number, record, ...}: each claimed trial's whole record as HGETALL
-- gives it, after the claim (`messages.TrialRecord` decodes it). Numbers whose trial is no
-- longer queued (cancelled) are dropped from the list and skipped, as is anything in the list
-- that is not a trial number (someone else's garbage); at most ARGV[3] + 1000 entries are
-- looked at per call, so a list flooded with garbage costs a few calls, never a long one.
local sweep_state = redis.call('HGET', KEYS[4], 'state')
if sweep_state == 'stopping' or sweep_state == 'finished' then return {} end
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local deadline = now_ms + tonumber(ARGV[2])
local claimed = {}
local wanted = tonumber(ARGV[3])
local looked = 0
while #claimed < wanted * 2 and looked < wanted + 1000 do
  local number = redis.call('LPOP', KEYS[3])
  if not number then break end
  looked = looked + 1
  local key = ARGV[4] .. number
  if string.match(number, '^%d+$') and redis.call('HGET', key, 'state') == 'queued' then
    count(key, 'attempt', 1)
    redis.call('HSET', key, 'state', 'running', 'worker', ARGV[1],
               'started_at', string.format('%.3f', now_ms / 1000), 'lease', deadline)
    redis.call('ZADD', KEYS[2], deadline, number)
    count(KEYS[1], 'queued', -1)
    count(KEYS[1], 'running', 1)
    claimed[#claimed + 1] = tonumber(number)
    claimed[#claimed + 1] = redis.call('HGETALL', key)
  end
end
return claimed
