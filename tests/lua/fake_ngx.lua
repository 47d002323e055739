-- A fake of the parts of OpenResty's `ngx` the hooks use, for unit tests.
-- The end-to-end tests run the hooks in real nginx; this checks their logic.
local M = {}

local function shared_dict()
    local data = {}
    return {
        get = function(_, k) return data[k] end,
        set = function(_, k, v) data[k] = v; return true end,
        -- Like the real one: a value past the dict's room (`room`, bytes) is refused.
        safe_set = function(self, k, v)
            if self.room and type(v) == "string" and #v > self.room then
                data[k] = nil
                return false, "no memory"
            end
            data[k] = v
            return true
        end,
        delete = function(_, k) data[k] = nil end,
        data = data,
    }
end

-- ngx.re.find for the user-agent lists the renderer writes: an alternation
-- of `(?:PATTERN)` groups, each a literal with an optional leading `^`,
-- matched without case (flags must include "i").
local function re_find(subject, regex, flags)
    assert(flags and flags:find("i"), "user-agent lists are matched without case")
    subject = subject:lower()
    for group in regex:gmatch("%(%?:(.-)%)") do
        local anchored = group:sub(1, 1) == "^"
        local literal = (anchored and group:sub(2) or group):lower()
        local from = subject:find(literal, 1, true)
        if from and (not anchored or from == 1) then
            return from, from + #literal - 1
        end
    end
    return nil
end

-- A fresh `ngx` as a global, with logs, redirects and exits recorded.
function M.install()
    local ngx = {
        ERR = "error", WARN = "warn", NOTICE = "notice",
        null = setmetatable({}, { __tostring = function() return "null" end }),
        shared = { pullgate = shared_dict() },
        var = {},
        header = {},
        logs = {},
        said = {},
        timers = {},
        clock = 1000,
    }
    ngx.re = { find = re_find }
    ngx.log = function(level, ...) table.insert(ngx.logs, { level = level, text = table.concat({ ... }) }) end
    ngx.now = function() return ngx.clock end
    ngx.say = function(s) table.insert(ngx.said, s) end
    ngx.exit = function(status) ngx.exited = status; return status end
    ngx.redirect = function(url, status) ngx.redirected = { url = url, status = status }; return status end
    ngx.timer = {
        at = function(delay, f, ...) table.insert(ngx.timers, { delay = delay, f = f, args = { ... } }); return true end,
        every = function(delay, f, ...) table.insert(ngx.timers, { every = delay, f = f, args = { ... } }); return true end,
    }
    ngx.worker = { id = function() return ngx.worker_id or 0 end, exiting = function() return ngx.exiting == true end }
    _G.ngx = ngx
    -- Modules cache `ngx` when loaded: load them again for each fake.
    package.loaded["pullgate.route"] = nil
    package.loaded["pullgate.sync"] = nil
    return ngx
end

-- A fake `nginx.redis` whose server holds `store`; `down` refuses
-- connections. A subscriber reads `messages` in order; once they are read,
-- a read times out and tells the worker to exit (ending the listen loop).
-- Only the methods of Debian's lua-resty-redis (0.27) exist: the real one
-- sends any other name to Redis as a command, which fails unnoticed.
function M.redis(store)
    local server = { store = store or {}, down = false, gets = 0, messages = {}, subscribed = {} }
    local methods = {
        set_timeout = function() return true end,
        connect = function() if server.down then return nil, "connection refused" end return true end,
        select = function() return true end,
        get = function(_, k) server.gets = server.gets + 1; local v = server.store[k]; if v == nil then return ngx.null end return v end,
        subscribe = function(_, channel) table.insert(server.subscribed, channel); return { "subscribe", channel, 1 } end,
        read_reply = function()
            local m = table.remove(server.messages, 1)
            if m then return m end
            ngx.exiting = true
            return nil, "timeout"
        end,
        set_keepalive = function() return true end,
        close = function() return true end,
    }
    local strict = { __index = function(_, name) return methods[name] or error("lua-resty-redis 0.27 has no method " .. name, 2) end }
    package.loaded["nginx.redis"] = { new = function() return setmetatable({}, strict) end }
    return server
end

-- The route table as the renderer writes it (tests/golden/lua.tsv), or text.
function M.golden_table()
    local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
    local f = assert(io.open(here .. "/../golden/lua.tsv", "rb"))
    local text = f:read("*a")
    f:close()
    return text
end

return M
