-- renew.lua: a worker's heartbeat extends the leases of the trials it is running.
-- KEYS[1]     hqs:s:{id}:leases   ZSET  trial number -> lease deadline (ms, server clock)
-- KEYS[2..n]  hqs:s:{id}:t:{num}  HASH  trial records (read: state, attempt, worker, cancel;
--                                        set: lease)
-- ARGV[1] worker name   ARGV[2] lease length (ms)   then per trial: number, attempt
-- Returns one flag per trial: 1 renewed, 2 renewed but flagged `cancel` (`hq-sweep cancel`:
-- abandon it), 0 no longer ours (expired and handed on, or ended).
local now = redis.call('TIME')
local deadline = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) + tonumber(ARGV[2])
local renewed = {}
for i = 2, #KEYS do
  local key = KEYS[i]
  local number = ARGV[(i - 2) * 2 + 3]
  local attempt = ARGV[(i - 2) * 2 + 4]
  local ok = 0
  if redis.call('HGET', key, 'state') == 'running'
     and redis.call('HGET', key, 'attempt') == attempt
     and redis.call('HGET', key, 'worker') == ARGV[1] then
    redis.call('HSET', key, 'lease', deadline)
    redis.call('ZADD', KEYS[1], deadline, number)
    ok = 1
    if redis.call('HEXISTS', key, 'cancel') == 1 then ok = 2 end
  end
  renewed[#renewed + 1] = ok
end
return renewed
