-- _prelude.lua: helpers put before every script's text (queue/scripts.py); no KEYS or ARGV
-- of its own, it touches only the hash a script names.
-- count(key, field, by) / count_float(...): HINCRBY / HINCRBYFLOAT that survive someone
-- else's garbage, in the field (not a number: the count starts again from `by`) or in the
-- key (not a hash: it is replaced by one). Redis does not roll back what a script wrote
-- before an error, so a counter refused half-way through would leave a trial recorded but
-- never told; the counts are for `status`, the trial records stay the truth.
local function count_by(command, key, field, by)
  local reply = redis.pcall(command, key, field, by)
  if type(reply) == 'table' and reply.err then
    reply = redis.pcall('HSET', key, field, by)
    if type(reply) == 'table' and reply.err then  -- WRONGTYPE: not a hash at all
      redis.call('DEL', key)
      redis.call('HSET', key, field, by)
    end
  end
end

local function count(key, field, by)
  count_by('HINCRBY', key, field, by)
end

local function count_float(key, field, by)
  count_by('HINCRBYFLOAT', key, field, by)
end

