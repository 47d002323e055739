-- pullgate route table sync: keeps the shared dict `pullgate` holding the
-- newest route table, from the local file the sidecar writes (routes.tsv)
-- and from Redis, where any node's sidecar publishes it. Never on the
-- request path: at worker start, then from a timer in worker 0.
--
-- A table is text: a header `pullgate-routes 1 VERSION STAMP` and one line
-- per route. A table replaces the current one when its version differs and
-- its stamp (milliseconds, when it was rendered) is not older.

-- The format is defined in sidecar/render/src/table.rs.

local redis = require "nginx.redis"

-- ngx and its functions as locals, looked up once (as ingress-nginx does).
local ngx = ngx
local ngx_log = ngx.log
local ngx_now = ngx.now
local ngx_null = ngx.null
local timer_at = ngx.timer.at
local timer_every = ngx.timer.every
local worker_id = ngx.worker.id
local ERR, WARN, NOTICE = ngx.ERR, ngx.WARN, ngx.NOTICE

local _M = {}
local dict = ngx.shared.pullgate
local last_warning = 0

local function warn(...)
    -- Redis down must not flood the error log: one line per 10 s at most.
    local now = ngx_now()
    if now - last_warning >= 10 then
        last_warning = now
        ngx_log(WARN, "pullgate: ", ...)
    end
end

-- The version and stamp of a table's header (format 1 only), or nil.
function _M.header(text)
    local version, stamp = text:match("^pullgate%-routes 1 (%S+) (%d+)\n")
    return version, tonumber(stamp)
end

-- Offer a table; keep it if it is new and not older than the current one.
-- Returns whether it was taken.
function _M.offer(text, source)
    local version, stamp = _M.header(text)
    if not version then
        ngx_log(ERR, "pullgate: ignoring a route table without a format 1 header from ", source)
        return false
    end
    if version == dict:get("version") or stamp < (dict:get("stamp") or 0) then
        return false
    end
    -- The version goes last: readers rebuild when it changes.
    dict:set("table", text)
    dict:set("stamp", stamp)
    dict:set("version", version)
    ngx_log(NOTICE, "pullgate: route table ", version, " from ", source)
    return true
end

-- Read the local table if its header names another version than the
-- current one (the header line alone is read otherwise).
function _M.load_file(path)
    local f = io.open(path, "rb")
    if not f then
        return
    end
    local first = f:read("*l")
    local version = first and _M.header(first .. "\n")
    if version and version ~= dict:get("version") then
        local rest = f:read("*a") or ""
        _M.offer(first .. "\n" .. rest, path)
    end
    f:close()
end

local function poll_redis(opts)
    local red = redis:new()
    red:set_timeouts(opts.timeout_ms, opts.timeout_ms, opts.timeout_ms)
    local ok, err = red:connect(opts.host, opts.port)
    if not ok then
        return warn("redis ", opts.host, ":", opts.port, " unreachable (", err, "); serving the last known routes")
    end
    if opts.db ~= 0 then
        red:select(opts.db)
    end
    local version = red:get(opts.version_key)
    if version and version ~= ngx_null and version ~= dict:get("version") then
        local text = red:get(opts.table_key)
        if text and text ~= ngx_null then
            _M.offer(text, "redis")
        end
    end
    red:set_keepalive(60000, 1)
end

local function tick(premature, opts)
    if premature then
        return
    end
    _M.load_file(opts.file)
    if opts.host then
        local ok, err = pcall(poll_redis, opts)
        if not ok then
            warn("redis poll failed: ", err)
        end
    end
end

-- From init_worker_by_lua: every worker loads the local table before it
-- serves (so new workers after a reload have the table their config needs)
-- and rebuilds its own copy every 100 ms if the shared one changed;
-- worker 0 keeps polling (opts.interval seconds: one small GET of the
-- version; the table itself only when the version changes).
function _M.start(opts)
    _M.load_file(opts.file)
    local route = require "pullgate.route"
    route.refresh()
    timer_every(0.1, function(premature)
        if not premature then
            route.refresh()
        end
    end)
    if worker_id() == 0 then
        timer_at(0, tick, opts)
        timer_every(opts.interval or 0.25, tick, opts)
    end
end

return _M
