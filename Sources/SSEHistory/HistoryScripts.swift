/// The Lua scripts that make history atomic. Redis runs a script as one step, so a publish's
/// position, its stream entry and its pub/sub message can never disagree or interleave.
///
/// Every script does bounded work: a publish touches one channel; a replay page reads at most
/// `COUNT` entries per channel (and at most the page's byte budget, but always one entry).
enum HistoryScripts {
    /// Lua shared by the scripts that may start a new epoch. KEYS[1..3] are epoch, sequence and
    /// previous in every one of them.
    ///
    /// `newEpoch` makes the epoch the current time in milliseconds, but always past the old
    /// epoch (a promoted replica's clock may be behind), so every new position sorts after every
    /// old one, in Lua, in Swift and as a Redis Stream id; it records the old epoch with how it
    /// ended and the highest position seen in it.
    private static let epochFunctions = """
        local function digits(n) return string.format('%d', n) end
        local function isGreater(a, b)
          if #a ~= #b then return #a > #b end
          return a > b
        end
        local function newEpoch(oldEpoch, oldEnd, high)
          local now = redis.call('TIME')
          local ms = now[1] .. string.format('%03d', math.floor(tonumber(now[2]) / 1000))
          if oldEpoch and not isGreater(ms, oldEpoch) then
            ms = string.format('%.0f', tonumber(oldEpoch) + 1)
          end
          if oldEpoch then
            redis.call('HSET', KEYS[3], 'epoch', oldEpoch, 'end', oldEnd, 'high', high)
          end
          redis.call('SET', KEYS[1], ms)
          redis.call('SET', KEYS[2], '0')
          return ms
        end
        """

    /// Assigns the next positions to a batch of events of one channel, in argument order, appends
    /// them to the channel's stream, each with the position of the event before it (the first with
    /// the channel's previous event), trims the stream to its length once, sets its TTL, records
    /// the channel's last position and publishes each event, in order.
    ///
    /// KEYS: epoch, sequence, previous, last, stream. ARGV: channel, length, ttl, last-position
    /// ttl, seen epoch, seen sequence (the publisher's watermark, or empty), then per event its
    /// payload head and payload tail (at least one event). Returns `{position₁, receivers₁,
    /// position₂, receivers₂, …}` in the events' order. Each id is spliced into its Flask-SSE
    /// payload where its key sorts, so a pub/sub payload is exactly what
    /// `sse.publish(..., id=POSITION)` writes. A batch of one is a single publish.
    ///
    /// A new epoch starts when the epoch or the counter is gone (first use, or Redis lost it),
    /// the counter has moved back to or below what the publisher already saw in this epoch or
    /// below the channel's own last position, or Redis is in an older epoch than the publisher saw.
    /// The check runs once per batch, before its first position; the rest follow it with one
    /// `INCRBY`, so a batch's positions are consecutive.
    static let publish = RedisScript(publishSource(command: "PUBLISH", perChannel: false))

    /// `publish` for a channel's own counter (`Layout.perChannel`): the counter's keys expire
    /// with the channel's last position, so a channel published once leaves nothing for ever
    /// (a later publish starts a new epoch: an id from before it resumes as `unknown`).
    static let perChannelPublish = RedisScript(publishSource(command: "PUBLISH", perChannel: true))

    /// `perChannelPublish` with sharded pub/sub (`SPUBLISH`): on a Redis Cluster the event then
    /// stays on the shard that serves the channel, where the script runs. Redis 7 lets a script
    /// `SPUBLISH` only to a channel of a slot its node serves, which per-channel keys guarantee.
    static let shardedPublish = RedisScript(publishSource(command: "SPUBLISH", perChannel: true))

    private static func publishSource(command: String, perChannel: Bool) -> String {
        epochFunctions + """

        local count = (#ARGV - 6) / 2
        if count < 1 or count ~= math.floor(count) then
          return redis.error_reply('ERR publish script: expected payload head and tail pairs')
        end
        local epoch = redis.call('GET', KEYS[1])
        local hadCounter = redis.call('EXISTS', KEYS[2]) == 1
        local sequence = redis.call('INCR', KEYS[2])
        local seenEpoch, seenSequence = ARGV[5], ARGV[6]
        if not epoch then
          local known = nil
          if seenEpoch ~= '' then known = seenEpoch end
          epoch = newEpoch(known, '0', seenSequence)
          sequence = redis.call('INCR', KEYS[2])
        elseif not hadCounter then
          local high = '9999999999999999999'
          if seenEpoch == epoch then high = seenSequence end
          epoch = newEpoch(epoch, '0', high)
          sequence = redis.call('INCR', KEYS[2])
        elseif seenEpoch == epoch and not isGreater(digits(sequence), seenSequence) then
          epoch = newEpoch(epoch, digits(sequence - 1), seenSequence)
          sequence = redis.call('INCR', KEYS[2])
        elseif seenEpoch ~= '' and isGreater(seenEpoch, epoch) then
          -- Redis is back in an older epoch than the publisher saw (a promoted replica that
          -- missed an epoch change): the new one follows the epoch the publisher saw.
          epoch = newEpoch(seenEpoch, '0', seenSequence)
          sequence = redis.call('INCR', KEYS[2])
        end
        local previous = redis.call('GET', KEYS[4]) or ''
        local previousEpoch, previousSequence = string.match(previous, '^(%d+)%-(%d+)$')
        if previousEpoch == epoch and not isGreater(digits(sequence), previousSequence) then
          -- The channel's own last position is at or past the counter: it moved backwards.
          epoch = newEpoch(epoch, digits(sequence - 1), previousSequence)
          sequence = redis.call('INCR', KEYS[2])
        end
        if count > 1 then redis.call('INCRBY', KEYS[2], count - 1) end
        local results = {}
        local channel, stream = ARGV[1], KEYS[5]
        for index = 0, count - 1 do
          local id = epoch .. '-' .. digits(sequence + index)
          local payload = ARGV[7 + 2 * index] .. ', "id": "' .. id .. '"' .. ARGV[8 + 2 * index]
          redis.call('XADD', stream, id, 'p', payload, 'prev', previous)
          previous = id
          results[2 * index + 1] = id
          results[2 * index + 2] = redis.call('\(command)', channel, payload)
        end
        redis.call('XTRIM', stream, 'MAXLEN', ARGV[2])
        redis.call('EXPIRE', stream, ARGV[3])
        redis.call('SET', KEYS[4], previous, 'EX', ARGV[4])
        \(perChannel ? "for i = 1, 3 do redis.call('EXPIRE', KEYS[i], ARGV[4]) end" : "")
        return results
        """
    }

    /// Starts a new epoch if the counter is below what a node saw, in the same epoch or in an
    /// older one: Redis lost events (a restore, a promoted lagging replica, one that missed an
    /// epoch change). Another node may have done it already; then nothing changes.
    ///
    /// KEYS: epoch, sequence, previous. ARGV: seen epoch, seen sequence.
    /// Returns `{epoch, sequence, started}` after the check.
    static let startEpochIfBehind = RedisScript(
        epochFunctions + """

        local epoch = redis.call('GET', KEYS[1])
        local sequence = redis.call('GET', KEYS[2]) or '0'
        if epoch and epoch == ARGV[1] and isGreater(ARGV[2], sequence) then
          epoch = newEpoch(epoch, sequence, ARGV[2])
          return {epoch, '0', 1}
        end
        if epoch and isGreater(ARGV[1], epoch) then
          epoch = newEpoch(ARGV[1], '0', ARGV[2])
          return {epoch, '0', 1}
        end
        return {epoch or '', sequence, 0}
        """
    )

    /// The counter's state. KEYS: epoch, sequence, previous.
    /// Returns `{epoch, sequence, previous epoch, previous high}` (empty strings where unset).
    static let state = RedisScript(
        """
        local previous = redis.call('HMGET', KEYS[3], 'epoch', 'high')
        return {redis.call('GET', KEYS[1]) or '', redis.call('GET', KEYS[2]) or '0', previous[1] or '', previous[2] or ''}
        """
    )

    /// Reads one page of every channel's events after a cursor, in batches of 16 entries up to the
    /// byte budget (always at least one entry), so the work per call is bounded by what it returns.
    ///
    /// KEYS: per channel its stream, then its last-position key. ARGV: cursor epoch, cursor
    /// sequence, entries per channel, payload bytes per channel. Returns per channel
    /// `{gap, entries, more}`: gap is `''`, `'trimmed'` (the first entry after the cursor follows
    /// an event after the cursor: events in between were cut by the length limit) or `'expired'`
    /// (the channel had events after the cursor but its stream is gone); `more` is 1 when the
    /// channel may have entries past this page.
    static let replayPage = RedisScript(
        """
        local cursorEpoch, cursorSequence = ARGV[1], ARGV[2]
        local count, budget = tonumber(ARGV[3]), tonumber(ARGV[4])
        local function isAfter(id)
          local e, s = string.match(id, '^(%d+)%-(%d+)$')
          if not e then return false end
          if e ~= cursorEpoch then
            if #e ~= #cursorEpoch then return #e > #cursorEpoch end
            return e > cursorEpoch
          end
          if #s ~= #cursorSequence then return #s > #cursorSequence end
          return s > cursorSequence
        end
        local results = {}
        for i = 1, #KEYS, 2 do
          local gap, entries, more = '', {}, 0
          if redis.call('EXISTS', KEYS[i]) == 1 then
            -- Read in small batches up to the byte budget, so large payloads cost what is kept,
            -- not a whole COUNT of them.
            local from, used, exhausted = '(' .. cursorEpoch .. '-' .. cursorSequence, 0, false
            while #entries < count and not exhausted do
              local want = math.min(16, count - #entries)
              local batch = redis.call('XRANGE', KEYS[i], from, '+', 'COUNT', want)
              if #batch < want then exhausted = true end
              for j = 1, #batch do
                local size = 0
                local fields = batch[j][2]
                for k = 1, #fields, 2 do
                  if fields[k] == 'p' then size = #fields[k + 1] end
                end
                if #entries > 0 and used + size > budget then
                  more, exhausted = 1, true
                  break
                end
                used = used + size
                entries[#entries + 1] = batch[j]
                from = '(' .. batch[j][1]
              end
            end
            if #entries == count then more = 1 end
            local first = entries[1]
            if first then
              local fields = first[2]
              for j = 1, #fields, 2 do
                if fields[j] == 'prev' and isAfter(fields[j + 1]) then gap = 'trimmed' end
              end
            end
          else
            local last = redis.call('GET', KEYS[i + 1])
            if last and isAfter(last) then gap = 'expired' end
          end
          results[#results + 1] = {gap, entries, more}
        end
        return results
        """
    )
}
