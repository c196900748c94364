-- lock_renew.lua: extend the controller lease only if we still hold it.
-- KEYS[1]  hqs:s:{id}:lock  STRING  holder token, with a PX expiry
-- ARGV[1] our token   ARGV[2] lease in milliseconds
-- Returns 1 when renewed, 0 when the lock expired or another controller holds it.
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
