-- pullgate route table sync: keeps the shared dict `pullgate` holding the
-- newest route table, from the local file the sidecar writes (routes.tsv)
-- and from Redis, where any node's sidecar publishes it. Never on the
-- request path: at worker start, then from timers in worker 0, which also
-- listens for the sidecar's PUBLISH of each new version.
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
local worker_exiting = ngx.worker.exiting
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

-- Offer a table, with its delta from the table before when there is one;
-- keep it if it is new and not older than the current one. Returns whether
-- it was taken.
function _M.offer(text, source, delta)
    local version, stamp = _M.header(text)
    if not version then
        ngx_log(ERR, "pullgate: ignoring a route table without a format 1 header from ", source)
        return false
    end
    if version == dict:get("version") or stamp < (dict:get("stamp") or 0) then
        return false
    end
    -- The version goes last: readers rebuild when it changes (from the
    -- delta when it leads from the version they hold to this one).
    -- safe_set: a table that does not fit evicts nothing (the version, the
    -- stamp); the config sizes the dict at three times the table.
    local ok, err = dict:safe_set("table", text)
    if not ok then
        ngx_log(ERR, "pullgate: route table ", version, " (", #text, " bytes) from ", source,
            " does not fit the shared dict (", err, "); workers keep the routes they have")
        return false
    end
    if not (delta and dict:safe_set("delta", delta)) then
        dict:delete("delta")
    end
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

-- A connection to Redis with the sync's timeouts, on the table's database,
-- or nil once the failure is warned about. set_timeout, not set_timeouts:
-- Debian's lua-resty-redis (0.27) has only the first, and sends any other
-- name to Redis as a command.
local function connect(opts)
    local red = redis:new()
    red:set_timeout(opts.timeout_ms)
    local ok, err = red:connect(opts.host, opts.port)
    if not ok then
        return warn("redis ", opts.host, ":", opts.port, " unreachable (", err, "); serving the last known routes")
    end
    if opts.db ~= 0 then
        red:select(opts.db)
    end
    return red
end

local function fetch(opts)
    local red = connect(opts)
    if not red then
        return
    end
    local version = red:get(opts.version_key)
    if version and version ~= ngx_null and version ~= dict:get("version") then
        local text = red:get(opts.table_key)
        local delta = opts.delta_key and red:get(opts.delta_key)
        if text and text ~= ngx_null then
            _M.offer(text, "redis", delta ~= ngx_null and delta or nil)
        end
    end
    red:set_keepalive(60000, 1)
end

-- Fetch the table from Redis if its version is new (for a poll and for a
-- message alike); a failure is warned about, never raised.
local function poll_redis(opts)
    local ok, err = pcall(fetch, opts)
    if not ok then
        warn("redis poll failed: ", err)
    end
end

local function tick(premature, opts)
    if premature then
        return
    end
    _M.load_file(opts.file)
    if opts.host then
        poll_redis(opts)
    end
end

-- Worker 0 listens on the sidecar's channel (opts.events_key): a message
-- names a new version, fetched at once rather than at the next poll. The
-- read waits opts.listen_s (1) at most, so that a worker told to exit stops
-- listening; a lost connection is made again a second later. Polling goes
-- on beside it: a message missed while the connection was down is not lost.
function _M.listen(premature, opts)
    if premature or worker_exiting() then
        return
    end
    local red = connect(opts)
    local subscribed = red and red:subscribe(opts.events_key)
    if subscribed then
        red:set_timeout((opts.listen_s or 1) * 1000)
        while not worker_exiting() do
            local message, err = red:read_reply()
            if message then
                if message[1] == "message" and message[3] ~= dict:get("version") then
                    poll_redis(opts)
                end
            elseif err ~= "timeout" then
                warn("redis subscription lost (", err, "); listening again in 1 s")
                break
            end
        end
    end
    if red then
        red:close()
    end
    if not worker_exiting() then
        timer_at(1, _M.listen, opts)
    end
end

-- From init_worker_by_lua: every worker loads the local table before it
-- serves (so new workers after a reload have the table their config needs)
-- and rebuilds its own copy when the shared one changes (checked every
-- opts.refresh_s, default 0.02: one shared-memory read); worker 0 keeps
-- polling (opts.interval seconds: one small GET of the version; the table
-- itself only when the version changes) and listens for new versions.
function _M.start(opts)
    _M.load_file(opts.file)
    local route = require "pullgate.route"
    route.refresh()
    timer_every(opts.refresh_s or 0.02, function(premature)
        if not premature then
            route.refresh()
        end
    end)
    if worker_id() == 0 then
        timer_at(0, tick, opts)
        timer_every(opts.interval or 0.25, tick, opts)
        if opts.host and opts.events_key then
            timer_at(0, _M.listen, opts)
        end
    end
end

return _M
