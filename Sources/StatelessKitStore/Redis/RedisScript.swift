/// The state operations that change more than one key, as one Lua script
/// that Redis runs atomically. It is loaded once per connection (`SCRIPT
/// LOAD`) and called by its SHA (`EVALSHA`); after a server restart or a
/// `SCRIPT FLUSH` the session loads it again. The layout it works on is in
/// ``RedisLayout`` and Documentation/Redis.md.
///
/// Every call: `EVALSHA sha 1 KEY OP PREFIX NOW ...`: KEY is the key the
/// operation is about (for Redis Cluster routing), OP the operation, PREFIX
/// the deployment's `{namespace}:`, NOW the runtime's clock (8 bytes,
/// ``RedisLayout/encodeDeadline(_:)``). Replies are `{status, value,
/// deadline, integer}`, status numbered as ``StateStatus``.
enum RedisScript {
    /// The operations the script runs.
    enum Operation {
        case insert, compareAndSet, delete, touch, add, take, give, sweep, reclaim, initPool

        /// The second argument that names it (static text: writing it allocates nothing).
        var word: StaticString {
            switch self {
            case .insert: "insert"
            case .compareAndSet: "cas"
            case .delete: "delete"
            case .touch: "touch"
            case .add: "add"
            case .take: "take"
            case .give: "give"
            case .sweep: "sweep"
            case .reclaim: "reclaim"
            case .initPool: "initpool"
            }
        }
    }

    static let source = #"""
    local op, ns, now = ARGV[1], ARGV[2], ARGV[3]

    -- Whether the deadline a is before b (8 bytes each, big-endian, sign flipped).
    local function before(a, b)
      local ah, al = struct.unpack('>I4I4', a)
      local bh, bl = struct.unpack('>I4I4', b)
      return ah < bh or (ah == bh and al < bl)
    end

    local function live(rec) return not before(string.sub(rec, 1, 8), now) end

    -- A record: deadline(8) flags(1) [partner key] [pool(2) size(1) item] value.
    -- Flags: 1 has a partner, 2 holds a resource, 4 is the first key of its pair.
    local function parse(rec, klen)
      local f = string.byte(rec, 9)
      local pos, partner, res = 10, nil, ''
      if f % 2 == 1 then partner = string.sub(rec, pos, pos + klen - 1); pos = pos + klen end
      if math.floor(f / 2) % 2 == 1 then
        local n = string.byte(rec, pos + 2)
        res = string.sub(rec, pos, pos + 2 + n); pos = pos + 3 + n
      end
      return f, partner, res, pos
    end

    -- The deadline index's member for an entry: flags, first key, partner, resource.
    local function member(key, rec, klen)
      local f, partner, res = parse(rec, klen)
      if partner and math.floor(f / 4) % 2 == 0 then
        return string.char(f % 4) .. partner .. key .. res
      end
      return string.char(f % 4) .. key .. (partner or '') .. res
    end

    local function tableOf(id, klen, cap)
      return {r = ns .. 'r' .. id .. ':', d = ns .. 'd' .. id, n = ns .. 'n' .. id, klen = tonumber(klen), cap = tonumber(cap)}
    end

    local function poolOf(res) return struct.unpack('>I2', res), string.sub(res, 4) end

    -- Returns a resource to its pool.
    local function give(res)
      local pool, item = poolOf(res)
      redis.call('RPUSH', ns .. 'p' .. pool, item)
    end

    -- Ends a resource's lease (taken, not yet held by an entry); whether it was leased.
    local function claim(res)
      local pool, item = poolOf(res)
      if redis.call('ZREM', ns .. 'l' .. pool, item) == 1 then return true end
      -- The lease ran out and the item went back to the pool: take it from there.
      return redis.call('LREM', ns .. 'p' .. pool, 1, item) == 1
    end

    -- Gives back a leased resource that no entry will hold.
    local function release(res)
      local pool, item = poolOf(res)
      if redis.call('ZREM', ns .. 'l' .. pool, item) == 1 then redis.call('RPUSH', ns .. 'p' .. pool, item) end
    end

    local function set(key, rec, ttl)
      if ttl > 0 then redis.call('SET', key, rec, 'PX', ttl) else redis.call('SET', key, rec) end
    end

    -- Whether the record at key is the partner copy naming back.
    local function partnerRecord(t, partner, key)
      local other = redis.call('GET', t.r .. partner)
      if not other then return nil end
      local _, back = parse(other, t.klen)
      if back == key then return other end
      return nil
    end

    -- Deletes an entry (both copies), its index member and count; returns its resource.
    local function remove(t, key, rec)
      local _, partner, res = parse(rec, t.klen)
      redis.call('ZREM', t.d, member(key, rec, t.klen))
      redis.call('DEL', t.r .. key)
      if partner and partnerRecord(t, partner, key) then redis.call('DEL', t.r .. partner) end
      redis.call('DECR', t.n)
      if res ~= '' then give(res) end
    end

    if op == 'insert' then
      local t = tableOf(ARGV[4], ARGV[5], ARGV[6])
      local key, key2, value, res, deadline, ttl, score, rel =
        ARGV[7], ARGV[8], ARGV[9], ARGV[10], ARGV[11], tonumber(ARGV[12]), ARGV[13], ARGV[14] == '1'
      if key2 ~= '' then
        local rec2 = redis.call('GET', t.r .. key2)
        if rec2 then
          local _, back = parse(rec2, t.klen)
          if live(rec2) and back ~= key then
            -- The second key is another live entry's: the resource is presumed in use.
            if res ~= '' then local pool, item = poolOf(res); redis.call('ZREM', ns .. 'l' .. pool, item) end
            return {4, false, false, 0}
          end
          -- This very entry (a racer inserted it first): the first key answers.
          if not live(rec2) then remove(t, key2, rec2) end
        end
      end
      local rec = redis.call('GET', t.r .. key)
      if rec then
        if live(rec) then
          if rel and res ~= '' then release(res) end
          local _, _, _, pos = parse(rec, t.klen)
          return {2, string.sub(rec, pos), string.sub(rec, 1, 8), 0}
        end
        remove(t, key, rec)
      end
      if redis.call('INCR', t.n) > t.cap then
        redis.call('DECR', t.n)
        if rel and res ~= '' then release(res) end
        return {3, false, false, 0}
      end
      if res ~= '' and not claim(res) then
        redis.call('DECR', t.n)
        return {4, false, false, 0}
      end
      local f = (key2 ~= '' and 1 or 0) + (res ~= '' and 2 or 0)
      local body = res .. value
      set(t.r .. key, deadline .. string.char(f + 4) .. key2 .. body, ttl)
      if key2 ~= '' then set(t.r .. key2, deadline .. string.char(f) .. key .. body, ttl) end
      redis.call('ZADD', t.d, score, string.char(f) .. key .. key2 .. res)
      return {0, value, deadline, 0}

    elseif op == 'cas' then
      local t = tableOf(ARGV[4], ARGV[5], 0)
      local key, expected, new, deadline, ttl, score = ARGV[6], ARGV[7], ARGV[8], ARGV[9], tonumber(ARGV[10]), ARGV[11]
      local rec = redis.call('GET', t.r .. key)
      if not rec or not live(rec) then return {1, false, false, 0} end
      local _, partner, _, pos = parse(rec, t.klen)
      local present = string.sub(rec, pos)
      if present ~= expected then return {2, present, string.sub(rec, 1, 8), 0} end
      local m = member(key, rec, t.klen)
      set(t.r .. key, deadline .. string.sub(rec, 9, pos - 1) .. new, ttl)
      local other = partner and partnerRecord(t, partner, key)
      if other then set(t.r .. partner, deadline .. string.sub(other, 9, pos - 1) .. new, ttl) end
      redis.call('ZADD', t.d, 'XX', score, m)
      return {0, false, deadline, 0}

    elseif op == 'touch' then
      local t = tableOf(ARGV[4], ARGV[5], 0)
      local key, deadline, ttl, score = ARGV[6], ARGV[7], tonumber(ARGV[8]), ARGV[9]
      local rec = redis.call('GET', t.r .. key)
      if not rec or not live(rec) then return {1, false, false, 0} end
      local _, partner = parse(rec, t.klen)
      set(t.r .. key, deadline .. string.sub(rec, 9), ttl)
      local other = partner and partnerRecord(t, partner, key)
      if other then set(t.r .. partner, deadline .. string.sub(other, 9), ttl) end
      redis.call('ZADD', t.d, 'XX', score, member(key, rec, t.klen))
      return {0, false, deadline, 0}

    elseif op == 'delete' then
      local t = tableOf(ARGV[4], ARGV[5], 0)
      local key = ARGV[6]
      local rec = redis.call('GET', t.r .. key)
      if not rec then return {1, false, false, 0} end
      local wasLive = live(rec)
      remove(t, key, rec)
      if wasLive then return {0, false, false, 0} end
      return {1, false, false, 0}

    elseif op == 'add' then
      local t = tableOf(ARGV[4], ARGV[5], ARGV[6])
      local key, delta = ARGV[7], tonumber(ARGV[8])
      local rec = redis.call('GET', t.r .. key)
      local v = 0
      if rec then
        local h, l = struct.unpack('>I4I4', rec, 10)
        if h >= 2147483648 then h = h - 4294967296 end
        v = h * 4294967296 + l
      elseif redis.call('INCR', t.n) > t.cap then
        redis.call('DECR', t.n)
        return {3, false, false, 0}
      end
      v = v + delta
      local l = v % 4294967296
      local h = math.floor(v / 4294967296) % 4294967296
      redis.call('SET', t.r .. key, string.rep('\255', 8) .. '\0' .. struct.pack('>I4I4', h, l))
      return {0, false, false, v}

    elseif op == 'take' then
      local pool, score = ARGV[4], ARGV[5]
      local item = redis.call('RPOP', ns .. 'p' .. pool)
      if not item then return {1, false, false, 0} end
      redis.call('ZADD', ns .. 'l' .. pool, score, item)
      return {0, item, false, 0}

    elseif op == 'give' then
      local pool, item = ARGV[4], ARGV[5]
      if redis.call('ZREM', ns .. 'l' .. pool, item) == 1 then redis.call('RPUSH', ns .. 'p' .. pool, item) end
      return {0, false, false, 0}

    elseif op == 'sweep' then
      local t = tableOf(ARGV[4], ARGV[5], 0)
      local budget, score = tonumber(ARGV[6]), ARGV[7]
      local members = redis.call('ZRANGEBYSCORE', t.d, '-inf', score, 'LIMIT', 0, budget)
      local removed = 0
      for _, m in ipairs(members) do
        local f = string.byte(m, 1)
        local key = string.sub(m, 2, 1 + t.klen)
        local rec = redis.call('GET', t.r .. key)
        if rec and member(key, rec, t.klen) == m then
          if not live(rec) then remove(t, key, rec); removed = removed + 1 end
        else
          -- Redis dropped the entry at its TTL before a sweep came: finish the job.
          redis.call('ZREM', t.d, m)
          redis.call('DECR', t.n)
          local pos = 2 + t.klen
          if f % 2 == 1 then
            local partner = string.sub(m, pos, pos + t.klen - 1)
            local other = redis.call('GET', t.r .. partner)
            if other and member(partner, other, t.klen) == m then redis.call('DEL', t.r .. partner) end
            pos = pos + t.klen
          end
          local res = string.sub(m, pos)
          if res ~= '' then give(res) end
          removed = removed + 1
        end
      end
      return removed

    elseif op == 'reclaim' then
      local pool, budget, score = ARGV[4], tonumber(ARGV[5]), ARGV[6]
      local items = redis.call('ZRANGEBYSCORE', ns .. 'l' .. pool, '-inf', score, 'LIMIT', 0, budget)
      for _, item in ipairs(items) do
        redis.call('ZREM', ns .. 'l' .. pool, item)
        redis.call('RPUSH', ns .. 'p' .. pool, item)
      end
      return #items

    elseif op == 'initpool' then
      local pool = ARGV[4]
      if not redis.call('SET', ns .. 'i' .. pool, '1', 'NX') then return 0 end
      local i = 5
      while i <= #ARGV do
        local last = math.min(i + 999, #ARGV)
        redis.call('RPUSH', ns .. 'p' .. pool, unpack(ARGV, i, last))
        i = last + 1
      end
      return #ARGV - 4
    end
    return redis.error_reply('StatelessKit: unknown operation ' .. tostring(op))
    """#
}
