-- pullgate request hooks: where a registry request goes, from the route
-- table in shared memory. The request path reads this worker's own table
-- only: a timer (and worker start) rebuilds it when the version in shared
-- memory changes, so no request waits on Redis or on parsing a table.
--
-- A route line: name, mode (redirect|proxy|auto), upstream base
-- (ORIGIN/v2/PREFIX), glob (1|0), origin, user-agent regex (auto), fallback
-- base, fallback origin, token prefix, upstream repository prefix;
-- separated by tabs.

local _M = {}
local dict = ngx.shared.pullgate
local cached_version, routes = nil, {}

local function parse(text)
    local t = {}
    for line in text:gmatch("[^\n]+") do
        local f = {}
        for field in (line .. "\t"):gmatch("([^\t]*)\t") do
            f[#f + 1] = field
        end
        if not line:find("^pullgate%-routes ") then
            t[f[1]] = {
                mode = f[2], base = f[3], glob = f[4] == "1", origin = f[5], ua = f[6],
                fallback_base = f[7], fallback_origin = f[8], token = f[9], prefix = f[10],
            }
        end
    end
    return t
end

-- Rebuild this worker's table if the shared one changed (init_worker and a timer).
function _M.refresh()
    local version = dict:get("version")
    if version ~= cached_version then
        local text = dict:get("table")
        if text then
            routes = parse(text)
        end
        cached_version = version
    end
end

local function current()
    return routes
end

-- The part of the name a glob route matched ("" for an exact route).
local function rest_of(route)
    return route.glob and (ngx.var.pg_rest or "") or ""
end

local function target(route, base)
    return base .. rest_of(route) .. "/" .. ngx.var.pg_tail .. ngx.var.is_args .. (ngx.var.args or "")
end

-- Answer the request here with a JSON body.
local function answer(status, body)
    ngx.header["Content-Type"] = "application/json"
    ngx.status = status
    ngx.say(body)
    return ngx.exit(status)
end

-- rewrite_by_lua in the registry location: redirect, or set the proxy target.
function _M.registry()
    local route = current()[ngx.var.pg_route]
    if not route then
        return answer(503, '{"errors":[{"code":"UNAVAILABLE","message":"the route table is not loaded yet"}]}')
    end
    local mode = route.mode
    if mode == "auto" then
        local ua = ngx.var.http_user_agent or ""
        mode = (route.ua ~= "" and ngx.re.find(ua, route.ua, "ijo")) and "redirect" or "proxy"
    end
    local t = target(route, route.base)
    ngx.var.pg_target = t
    ngx.var.pg_log_mode = mode
    if mode == "redirect" then
        return ngx.redirect(t, 307)
    end
    ngx.var.pg_origin = route.origin
end

-- rewrite_by_lua in @pg_fallback: the first fallback, if the route has one.
function _M.fallback()
    local route = current()[ngx.var.pg_route]
    if not route or route.fallback_base == "" then
        return answer(502, '{"errors":[{"code":"UNAVAILABLE","message":"the upstream registry cannot be reached"}]}')
    end
    ngx.var.pg_target = target(route, route.fallback_base)
    ngx.var.pg_origin = route.fallback_origin
end

-- rewrite_by_lua in /token: the upstream token URL for the scope's route.
function _M.token()
    local route = current()[ngx.var.pg_route]
    if not route or route.token == "" then
        return answer(200, '{"token":"pullgate-anonymous","access_token":"pullgate-anonymous","expires_in":3600}')
    end
    ngx.var.pg_target = route.token .. route.prefix .. rest_of(route) .. ":pull"
    ngx.var.pg_log_mode = "proxy"
end

return _M
