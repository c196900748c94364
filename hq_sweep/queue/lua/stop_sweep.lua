-- stop_sweep.lua: `hq-sweep stop` / `hq-sweep cancel`. In one step: the sweep hands out no
-- more trials (state running -> stopping; claim.lua refuses), its queued trials are withdrawn
-- (as cancel.lua does), trials whose worker is lost (lease expired) are cancelled, and with
-- mode 'cancel' every running trial is flagged: its worker learns the flag with its next
-- report or heartbeat (report.lua, renew.lua) and abandons it; finish.lua records it cancelled.
-- When no controller holds the sweep and nothing runs any more, the sweep ends here.
-- KEYS[1]  hqs:s:{id}          HASH    meta: state -> stopping (or finished), stop (mode),
--                                      finished_reason; a stop never downgrades a cancel
-- KEYS[2]  hqs:s:{id}:counts   HASH    queued -1 / running -1, cancelled +1 per trial ended
-- KEYS[3]  hqs:s:{id}:ready    LIST    numbers of queued trials: read, then deleted
-- KEYS[4]  hqs:s:{id}:leases   ZSET    running trial number -> lease deadline (lost ones removed)
-- KEYS[5]  hqs:s:{id}:results  LIST    a cancelled outcome JSON per trial ended, for the controller
-- KEYS[6]  hqs:s:{id}:lock     STRING  read only: whether a controller holds the sweep
-- ARGV[1]  key prefix (hqs:s:{id}) — per trial it touches hqs:s:{id}:t:{num} (state, reason,
--          ended_at, lease, cancel) and hqs:s:{id}:dec:{num} (a cancel decision pushed for a
--          worker waiting on one, expiring), found by number, single-node Redis
-- ARGV[2]  mode: 'stop' or 'cancel'   ARGV[3] reason for withdrawn (queued) trials
-- ARGV[4]  reason for running trials cancelled (flagged, or lost)
-- ARGV[5]  finished_reason of a stopped sweep   ARGV[6] of a cancelled one
-- ARGV[7]  cancel decision JSON   ARGV[8] its TTL (ms) on the decision list
-- Returns {state, mode, withdrawn, lost, flagged, running}: the sweep's state after the call
-- ('' when it has no meta), the mode in force, how many queued trials were withdrawn, how
-- many lost ones cancelled, how many running ones flagged, and how many still run.
local state = redis.call('HGET', KEYS[1], 'state')
if not state then return {'', '', 0, 0, 0, 0} end
local mode = ARGV[2]
if state == 'finished' then
  return {state, redis.call('HGET', KEYS[1], 'stop') or '', 0, 0, 0, 0}
end
if redis.call('HGET', KEYS[1], 'stop') == 'cancel' then mode = 'cancel' end
redis.call('HSET', KEYS[1], 'state', 'stopping', 'stop', mode)
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local ended_at = string.format('%.3f', now_ms / 1000)

local function cancelled(key, number, reason)
  redis.call('HSET', key, 'state', 'cancelled', 'reason', reason, 'ended_at', ended_at)
  count(KEYS[2], 'cancelled', 1)
  local attempt = tonumber(redis.call('HGET', key, 'attempt') or '0') or 0
  redis.call('RPUSH', KEYS[5], cjson.encode({n = tonumber(number), a = attempt,
                                             s = 'cancelled', r = reason}))
end

local withdrawn, lost, flagged = 0, 0, 0
for _, number in ipairs(redis.call('LRANGE', KEYS[3], 0, -1)) do
  local key = ARGV[1] .. ':t:' .. number
  if redis.call('HGET', key, 'state') == 'queued' then
    count(KEYS[2], 'queued', -1)
    cancelled(key, number, ARGV[3])
    withdrawn = withdrawn + 1
  end
end
redis.call('DEL', KEYS[3])

local leased = redis.call('ZRANGE', KEYS[4], 0, -1, 'WITHSCORES')
for i = 1, #leased, 2 do
  local number, deadline = leased[i], tonumber(leased[i + 1])
  local key = ARGV[1] .. ':t:' .. number
  if redis.call('HGET', key, 'state') == 'running' then
    if deadline < now_ms then  -- its worker is gone: nobody will end it
      redis.call('ZREM', KEYS[4], number)
      redis.call('HDEL', key, 'lease')
      count(KEYS[2], 'running', -1)
      cancelled(key, number, ARGV[4] .. ' (its worker was lost)')
      lost = lost + 1
    elseif mode == 'cancel' then
      redis.call('HSET', key, 'cancel', ARGV[4])
      local answer = ARGV[1] .. ':dec:' .. number
      redis.call('RPUSH', answer, ARGV[7])
      redis.call('PEXPIRE', answer, tonumber(ARGV[8]))
      flagged = flagged + 1
    end
  end
end

local running = tonumber(redis.call('HGET', KEYS[2], 'running') or '0') or 0
if running <= 0 and redis.call('EXISTS', KEYS[6]) == 0 then
  local reason = ARGV[5]
  if mode == 'cancel' then reason = ARGV[6] end
  redis.call('HSET', KEYS[1], 'state', 'finished', 'finished_reason', reason)
  state = 'finished'
else
  state = 'stopping'
end
return {state, mode, withdrawn, lost, flagged, running}
