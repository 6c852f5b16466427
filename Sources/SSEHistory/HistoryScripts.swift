/// The Lua scripts that make history atomic. Redis runs a script as one step, so a publish's
/// position, its stream entry and its pub/sub message can never disagree or interleave.
enum HistoryScripts {
    /// Assigns the next position, appends the event to the channel's stream (trimmed to its
    /// length, expiring after the TTL) with the position of the channel's previous event, records
    /// the channel's last position and publishes.
    ///
    /// KEYS: epoch, sequence, last, stream. ARGV: channel, payload head, payload tail, length, ttl.
    /// Returns `{position, receivers}`. The id is spliced into the Flask-SSE payload where its
    /// key sorts, so the pub/sub payload is exactly what `sse.publish(..., id=POSITION)` writes.
    static let publish = RedisScript(
        """
        local sequence = redis.call('INCR', KEYS[2])
        local epoch = redis.call('GET', KEYS[1])
        if (not epoch) or sequence == 1 then
          local now = redis.call('TIME')
          epoch = now[1] .. string.format('%03d', math.floor(tonumber(now[2]) / 1000))
          redis.call('SET', KEYS[1], epoch)
        end
        local id = epoch .. '-' .. sequence
        local payload = ARGV[2] .. ', "id": "' .. id .. '"' .. ARGV[3]
        local previous = redis.call('HGET', KEYS[3], ARGV[1]) or ''
        redis.call('XADD', KEYS[4], 'MAXLEN', ARGV[4], id, 'p', payload, 'prev', previous)
        redis.call('EXPIRE', KEYS[4], ARGV[5])
        redis.call('HSET', KEYS[3], ARGV[1], id)
        return {id, redis.call('PUBLISH', ARGV[1], payload)}
        """
    )

    /// Reads, in one atomic snapshot, every event after a position on several channels.
    ///
    /// KEYS: epoch, sequence, last, then one stream per channel. ARGV: after-epoch, after-sequence,
    /// then the channels in the same order. Returns `{epoch, sequence, {{gap, entries}, …}}` where
    /// gap is `''`, `'trimmed'` (events after the position were cut by the length limit: the first
    /// retained one follows an event that is after the position) or `'expired'` (the channel had
    /// events after the position but its stream is gone).
    static let replay = RedisScript(
        """
        local epoch = redis.call('GET', KEYS[1]) or ''
        local sequence = redis.call('GET', KEYS[2]) or '0'
        local afterEpoch, afterSequence = ARGV[1], tonumber(ARGV[2])
        local function isAfter(id)
          local e, s = string.match(id, '^(%d+)%-(%d+)$')
          if not e then return false end
          if e == afterEpoch then return tonumber(s) > afterSequence end
          if #e ~= #afterEpoch then return #e > #afterEpoch end
          return e > afterEpoch
        end
        local results = {}
        for i = 4, #KEYS do
          local last = redis.call('HGET', KEYS[3], ARGV[i - 1])
          local gap, entries = '', {}
          if last and isAfter(last) then
            if redis.call('EXISTS', KEYS[i]) == 1 then
              entries = redis.call('XRANGE', KEYS[i], '(' .. afterEpoch .. '-' .. ARGV[2], '+')
              local fields = entries[1] and entries[1][2] or {}
              for j = 1, #fields, 2 do
                if fields[j] == 'prev' and isAfter(fields[j + 1]) then gap = 'trimmed' end
              end
            else
              gap = 'expired'
            end
          end
          results[#results + 1] = {gap, entries}
        end
        return {epoch, sequence, results}
        """
    )
}
