-- pullgate request hooks: where a registry request goes, from the route
-- table in shared memory. The request path reads this worker's own table
-- only: a timer (and worker start) rebuilds it when the version in shared
-- memory changes, so no request waits on Redis or on parsing a table.
--
-- A route line: name, mode (redirect|proxy|auto), upstream base
-- (ORIGIN/v2/PREFIX), glob (1|0), origin, user-agent regex (auto), fallback
-- base, fallback origin, token prefix, upstream repository prefix;
-- separated by tabs.

-- The format is defined in sidecar/render/src/table.rs.

-- ngx and its functions as locals, looked up once (as ingress-nginx does).
local ngx = ngx
local ngx_var = ngx.var
local ngx_re_find = ngx.re.find
local ngx_redirect = ngx.redirect
local ngx_exit = ngx.exit
local ngx_say = ngx.say
local ngx_log = ngx.log
local ERR = ngx.ERR

local _M = {}
local dict = ngx.shared.pullgate
local cached_version, routes = nil, {}

local FIELDS = 10
local MODES = { redirect = true, proxy = true, auto = true }

-- A route line's fields as a route, or nil when the line is not one (another
-- number of fields, an unknown mode or glob flag, no name or base).
local function route_of(line)
    local f = {}
    for field in (line .. "\t"):gmatch("([^\t]*)\t") do
        f[#f + 1] = field
    end
    if #f == FIELDS and f[1] ~= "" and MODES[f[2]] and (f[4] == "1" or f[4] == "0") and f[3] ~= "" then
        return f[1], {
            mode = f[2], base = f[3], glob = f[4] == "1", origin = f[5], ua = f[6],
            fallback_base = f[7], fallback_origin = f[8], token = f[9], prefix = f[10],
        }
    end
end

-- Each line of `text` but its header (`header`, a pattern) into `t`: a
-- route line sets its route; with `removals`, a name alone removes one.
-- Other lines are skipped, counted and warned about: a malformed line
-- never becomes a route. Returns how many were skipped.
local function apply_lines(t, text, header, removals)
    local skipped = 0
    for line in text:gmatch("[^\n]+") do
        if not line:find(header) then
            if removals and not line:find("\t", 1, true) then
                t[line] = nil
            else
                local name, route = route_of(line)
                if name then
                    t[name] = route
                else
                    skipped = skipped + 1
                end
            end
        end
    end
    if skipped > 0 then
        ngx_log(ERR, "pullgate: skipped ", skipped, " malformed route table lines")
    end
    return skipped
end

-- A table's text as routes by name, and how many lines were skipped.
function _M.parse(text)
    local t = {}
    local skipped = apply_lines(t, text, "^pullgate%-routes ", false)
    return t, skipped
end

-- Apply a delta (`pullgate-delta 1 FROM TO STAMP`, then whole lines of
-- routes added or changed, and names alone of routes removed) to `t` in
-- place, if it leads from version `from` to version `to`. Returns whether
-- it did.
function _M.apply_delta(t, delta, from, to)
    local d_from, d_to = delta:match("^pullgate%-delta 1 (%S+) (%S+) %d+\n")
    if d_from ~= from or d_to ~= to then
        return false
    end
    apply_lines(t, delta, "^pullgate%-delta ", true)
    return true
end

-- Rebuild this worker's table if the shared one changed (init_worker and a
-- timer): from the delta when it starts at the version held here, else
-- from the whole table.
function _M.refresh()
    local version = dict:get("version")
    if version ~= cached_version then
        local delta = cached_version and dict:get("delta")
        if not (delta and _M.apply_delta(routes, delta, cached_version, version)) then
            local text = dict:get("table")
            if text then
                routes = _M.parse(text)
            end
        end
        cached_version = version
    end
end

-- The part of the name a glob route matched ("" for an exact route).
local function rest_of(route)
    return route.glob and (ngx_var.pg_rest or "") or ""
end

-- The upstream URL: base, the glob's part of the name, the tail, the query
-- (as $is_args$args: a `?` only before a non-empty query).
local function target(route, base)
    local args = ngx_var.args
    local query = (args and args ~= "") and ("?" .. args) or ""
    return base .. rest_of(route) .. "/" .. ngx_var.pg_tail .. query
end

-- `auto` decisions: [user-agent regex][agent] = mode. A gateway sees few
-- distinct agents, so most requests skip the regex (about a quarter of
-- what Lua mode added per request over the stock path). Bounded: agents
-- past AGENT_BYTES are not kept, and past DECIDED decisions the cache
-- starts over, so a storm of distinct agents costs what no cache would.
local decided, decided_n = {}, 0
local DECIDED, AGENT_BYTES = 4096, 512

-- The mode a route serves this request with: `auto` by the user agent.
local function mode_of(route)
    local mode = route.mode
    if mode ~= "auto" then
        return mode
    end
    local ua = ngx_var.http_user_agent or ""
    local by_agent = decided[route.ua]
    mode = by_agent and by_agent[ua]
    if mode then
        return mode
    end
    mode = (route.ua ~= "" and ngx_re_find(ua, route.ua, "ijo")) and "redirect" or "proxy"
    if #ua <= AGENT_BYTES then
        if decided_n >= DECIDED then
            decided, decided_n, by_agent = {}, 0, nil
        end
        if not by_agent then
            by_agent = {}
            decided[route.ua] = by_agent
        end
        by_agent[ua] = mode
        decided_n = decided_n + 1
    end
    return mode
end

-- Answer the request here with a JSON body.
local function answer(status, body)
    ngx.header["Content-Type"] = "application/json"
    ngx.status = status
    ngx_say(body)
    return ngx_exit(status)
end

-- The request's route if it has `field`, else nil once the request is
-- answered with `status` and `body` (the caller returns at once).
local function route_with(field, status, body)
    local route = routes[ngx_var.pg_route]
    if route and route[field] ~= "" then
        return route
    end
    answer(status, body)
end

-- set_by_lua in the registry location, before registry(): the redirect
-- target of this request, or "" (proxied, or no such route in the table:
-- registry() answers those). set_by_lua runs without a coroutine, and
-- nginx itself answers the redirect: the fast path of Lua mode. It calls
-- this as the global `pullgate_redirect`, bound by init_by_lua, not
-- through require(), a C function on every request. (Passing nginx's
-- values as set_by_lua arguments instead of reading ngx.var was slower:
-- ngx.arg keeps LuaJIT from compiling the call.)
function _M.redirect()
    local route = routes[ngx_var.pg_route]
    if not route or route.base == "" or mode_of(route) ~= "redirect" then
        return ""
    end
    return target(route, route.base)
end

-- rewrite_by_lua in the registry location: redirect, or set the proxy target.
function _M.registry()
    local route = route_with("base", 503, '{"errors":[{"code":"UNAVAILABLE","message":"the route table is not loaded yet"}]}')
    if not route then
        return
    end
    local mode = mode_of(route)
    local t = target(route, route.base)
    ngx_var.pg_target = t
    ngx_var.pg_log_mode = mode
    if mode == "redirect" then
        return ngx_redirect(t, 307)
    end
    ngx_var.pg_origin = route.origin
end

-- rewrite_by_lua in @pg_fallback: the first fallback, if the route has one.
function _M.fallback()
    local route = route_with("fallback_base", 502, '{"errors":[{"code":"UNAVAILABLE","message":"the upstream registry cannot be reached"}]}')
    if not route then
        return
    end
    ngx_var.pg_target = target(route, route.fallback_base)
    ngx_var.pg_origin = route.fallback_origin
end

-- rewrite_by_lua in /token: the upstream token URL for the scope's route.
function _M.token()
    local route = route_with("token", 200, '{"token":"pullgate-anonymous","access_token":"pullgate-anonymous","expires_in":3600}')
    if not route then
        return
    end
    ngx_var.pg_target = route.token .. route.prefix .. rest_of(route) .. ":pull"
    ngx_var.pg_log_mode = "proxy"
end

return _M
