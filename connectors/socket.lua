--- The socket source: lines of text received over TCP, one row each
-- (API.md section 3), for demos and latency tests.
--
--    local s = tide.read_stream("socket", { port = 9999 })   -- schema: value string
--    -- then: printf 'hello\nworld\n' | nc 127.0.0.1 9999
--
-- The source listens on `host` (default 127.0.0.1: never every interface
-- unless told so, e.g. host = "0.0.0.0") on the process's event loop and
-- accepts any number of connections. Each line (cut at LF, one CR before
-- it stripped; a last line without LF counts when its sender closes) is a
-- row whose `value` is the line.
--
-- Offsets are the number of lines received since the source started. The
-- lines stay in memory until the query commits them, in C: the server cuts
-- them and keeps them as text, and get_batch decodes a range straight into
-- a batch (core/decode.c, the file source's decoder), with no Lua string
-- per line. The source is not replayable (`replayable = false`): the lines
-- only ever exist in this process, so a restarted query starts counting
-- again and what was received but not committed before the restart is lost.
--
-- Bad input: a line longer than `max_line` bytes, or one that is not valid
-- UTF-8, fails the query with `bad_records = "fail"` (the default; the
-- message names the sender or the line number) and is dropped and counted
-- with `bad_records = "drop"`. A sender whose connection fails is closed; the
-- others go on.

local M = { sources = {} }

local format = string.format

local SCHEMA = "value string"

local function host_port(host, port)
  if host:find(":", 1, true) then return format("[%s]:%d", host, port) end
  return format("%s:%d", host, port)
end

-- "EADDRINUSE: Address already in use" -> "address already in use"
local function reason(msg, name)
  if name == "ENOTFOUND" then return "unknown host" end
  local text = tostring(msg):gsub("^E[%u%d_]+: ", "")
  return (text:gsub("^%u", string.lower))
end

local function check_port(o)
  if o.port == nil then error("option 'port' is required (an integer 0..65535; 0 picks a free port)", 0) end
end

M.sources.socket = {
  options = {
    host = { type = "string", default = "127.0.0.1" },
    port = { type = "integer", min = 0, max = 65535 },
    max_line = { type = "size", default = 1048576, min = 1 },
    bad_records = { type = "string", values = { "fail", "drop" }, default = "fail" },
  },

  schema = function(o)
    check_port(o)
    return SCHEMA
  end,

  label = function(o) return format("SocketSource[%s]", host_port(o.host, o.port)) end,

  new = function(o, ctx)
    check_port(o)
    local drop = o.bad_records == "drop"
    -- The server keeps the lines in C (numbered from 0, as offsets count);
    -- count is the number received, base the first not yet forgotten.
    local base, count = 0, 0
    local failure, dropped = nil, 0
    local watcher

    local function on_lines(n)
      count = count + n
      if watcher then watcher() end
    end

    local function on_error(msg, name)
      if name ~= "ETOOBIG" then return end -- a sender's connection failed: its own affair
      if drop then
        dropped = dropped + 1
      elseif not failure then
        local peer, max = msg:match("^(.*): line longer than (%d+) bytes")
        failure = format("a line from %s is longer than %s bytes (option max_line)", peer or "?", max or o.max_line)
      end
      if watcher then watcher() end
    end

    local server, msg, name = ctx.loop:listen(o.host, o.port, on_lines, { max_line = o.max_line, on_error = on_error })
    if not server then
      error(format("socket source: cannot listen on %s: %s", host_port(o.host, o.port), reason(msg, name)), 0)
    end
    local port = server:port()
    local where = host_port(o.host, port)
    local src = { description = format("SocketSource[%s]", where), replayable = false, port = port }

    local function check_failure()
      if failure then error(format("socket source %s: %s", where, failure), 0) end
    end

    --- The number of lines received so far, or nil before the first.
    function src.latest_offset()
      check_failure()
      if count == 0 then return nil end
      return count
    end

    --- The lines after `start` up to `stop`, of those still held, as
    -- tide.Batch objects (value string) framed and decoded in C, and
    -- `{ dropped = n }` counting the bad lines dropped since the last call.
    function src.get_batch(_, start, stop)
      check_failure()
      local from, to = math.max(start or 0, base), math.min(stop, count)
      local out = {}
      while from < to do
        local b, lines, bad = server:batch(from, to, o.bad_records)
        if not b then
          for _, x in ipairs(out) do x:close() end
          error(format("socket source %s: %s", where, lines), 0)
        end
        out[#out + 1] = b
        dropped = dropped + bad
        from = from + lines
      end
      local counters
      if dropped > 0 then counters, dropped = { dropped = dropped }, 0 end
      return out, counters
    end

    --- Forget the lines up to `stop`: the query committed them.
    function src.commit(_, stop)
      local upto = math.min(stop, count)
      if upto <= base then return end
      server:forget(upto)
      base = upto
    end

    --- The lines received after `off` and not yet processed. (Bytes a
    -- sender has written that are still in its or the kernel's socket
    -- buffers, or a line not yet ended, the source cannot see.)
    function src.lag(_, off)
      return { records = math.max(0, count - math.max(off or 0, 0)) }
    end

    function src.watch(_, fn) watcher = fn end

    function src.stop()
      watcher = nil
      server:close()
    end

    return src
  end,
}

return M
