-- lua/pullgate/route.lua: table parsing, lookups, malformed tables.
local fake = require "fake_ngx"

local HEADER = "pullgate-routes 1 v1 100\n"
local function line(fields) return table.concat(fields, "\t") .. "\n" end
local REDIRECT = line { "app", "redirect", "http://up/v2/acme/app", "0", "http://up", "", "", "", "", "acme/app" }
local AUTO_GLOB = line { "acme", "auto", "http://up/v2/acme/", "1", "http://up", "(?:^docker/)|(?:^containerd/)",
    "http://fb/v2/acme/", "http://fb", "http://tok/token?service=s&scope=repository:", "acme/" }
local PROXY = line { "prox", "proxy", "http://px/v2/p", "0", "http://px", "", "", "", "", "p" }

describe("route table parsing", function()
    local ngx, route
    before_each(function()
        ngx = fake.install()
        fake.redis()
        route = require "pullgate.route"
    end)

    it("reads every field of a line and skips the header", function()
        local t, skipped = route.parse(HEADER .. REDIRECT .. AUTO_GLOB)
        assert.are.equal(0, skipped)
        assert.are.same({
            mode = "auto", base = "http://up/v2/acme/", glob = true, origin = "http://up",
            ua = "(?:^docker/)|(?:^containerd/)", fallback_base = "http://fb/v2/acme/", fallback_origin = "http://fb",
            token = "http://tok/token?service=s&scope=repository:", prefix = "acme/",
        }, t.acme)
        assert.are.equal(false, t.app.glob)
        assert.is_nil(t["pullgate-routes 1 v1 100"])
    end)

    it("reads the table the renderer writes", function()
        local t, skipped = route.parse(fake.golden_table())
        assert.are.equal(0, skipped)
        assert.are.equal("proxy", t.app.mode)
        assert.are.equal("https://ghcr.io/v2/app", t.app.base)
        assert.are.equal("https://quay.io/v2/app", t.app.fallback_base)
        assert.are.equal(true, t.hub.glob)
        assert.are.equal("acmecorp/", t.hub.prefix)
    end)

    it("skips malformed lines and says so, keeping the good ones", function()
        local text = HEADER
            .. "garbage without tabs\n"
            .. line { "short", "redirect", "http://x" }
            .. line { "badmode", "teleport", "http://x", "0", "", "", "", "", "", "" }
            .. line { "badglob", "proxy", "http://x", "yes", "", "", "", "", "", "" }
            .. line { "", "proxy", "http://x", "0", "", "", "", "", "", "" }
            .. line { "extra", "proxy", "http://x", "0", "", "", "", "", "", "", "more" }
            .. PROXY
        local t, skipped = route.parse(text)
        assert.are.equal(6, skipped)
        assert.is_not_nil(t.prox)
        for _, name in ipairs { "garbage without tabs", "short", "badmode", "badglob", "", "extra" } do
            assert.is_nil(t[name], name)
        end
        assert.are.equal("error", ngx.logs[#ngx.logs].level)
        assert.matches("skipped 6 malformed", ngx.logs[#ngx.logs].text)
    end)

    it("reads nothing from an empty table", function()
        local t, skipped = route.parse("")
        assert.are.same({}, t)
        assert.are.equal(0, skipped)
    end)
end)

describe("route lookups", function()
    local ngx, route, dict
    before_each(function()
        ngx = fake.install()
        fake.redis()
        route = require "pullgate.route"
        dict = ngx.shared.pullgate
        dict:set("table", HEADER .. REDIRECT .. AUTO_GLOB .. PROXY)
        dict:set("version", "v1")
        route.refresh()
        ngx.var.is_args = ""
    end)

    it("redirects a redirect route with path and query kept", function()
        ngx.var.pg_route, ngx.var.pg_tail, ngx.var.is_args, ngx.var.args = "app", "manifests/1.0", "?", "n=1"
        route.registry()
        assert.are.same({ url = "http://up/v2/acme/app/manifests/1.0?n=1", status = 307 }, ngx.redirected)
        assert.are.equal("redirect", ngx.var.pg_log_mode)
    end)

    it("decides auto by user agent, and appends what a glob matched", function()
        ngx.var.pg_route, ngx.var.pg_rest, ngx.var.pg_tail = "acme", "tool", "blobs/sha256:ab"
        ngx.var.http_user_agent = "Docker/27.0 go/1.22"
        route.registry()
        assert.are.equal("http://up/v2/acme/tool/blobs/sha256:ab", ngx.redirected.url)
        ngx.redirected = nil
        ngx.var.http_user_agent = "skopeo/1.13"
        route.registry()
        assert.is_nil(ngx.redirected)
        assert.are.equal("proxy", ngx.var.pg_log_mode)
        assert.are.equal("http://up/v2/acme/tool/blobs/sha256:ab", ngx.var.pg_target)
        assert.are.equal("http://up", ngx.var.pg_origin)
    end)

    it("gives the redirect target to nginx (set_by_lua), and \"\" for what registry() answers", function()
        ngx.var.pg_route, ngx.var.pg_tail, ngx.var.args = "app", "manifests/1.0", "n=1"
        assert.are.equal("http://up/v2/acme/app/manifests/1.0?n=1", route.redirect())
        ngx.var.args = ""
        assert.are.equal("http://up/v2/acme/app/manifests/1.0", route.redirect(), "no `?` before an empty query")
        ngx.var.args = nil
        assert.are.equal("http://up/v2/acme/app/manifests/1.0", route.redirect())
        ngx.var.pg_route, ngx.var.pg_rest, ngx.var.pg_tail = "acme", "tool", "blobs/sha256:ab"
        ngx.var.http_user_agent = "containerd/1.7"
        assert.are.equal("http://up/v2/acme/tool/blobs/sha256:ab", route.redirect())
        ngx.var.http_user_agent = nil
        assert.are.equal("", route.redirect(), "auto, no agent: proxied")
        ngx.var.http_user_agent = "skopeo/1.13"
        assert.are.equal("", route.redirect(), "auto, not a redirecting agent: proxied")
        ngx.var.pg_route = "prox"
        assert.are.equal("", route.redirect())
        ngx.var.pg_route = "unknown"
        assert.are.equal("", route.redirect(), "registry() answers 503")
        assert.is_nil(ngx.redirected, "nginx answers the redirect, not Lua")
        assert.is_nil(ngx.exited)
    end)

    it("decides each agent once per user-agent list, within a bound", function()
        local matched = 0
        local find = ngx.re.find
        ngx.re.find = function(...) matched = matched + 1; return find(...) end
        package.loaded["pullgate.route"] = nil
        route = require "pullgate.route"
        route.refresh()
        ngx.var.pg_route, ngx.var.pg_rest, ngx.var.pg_tail = "acme", "tool", "manifests/1"
        for _ = 1, 3 do
            ngx.var.http_user_agent = "containerd/1.7"
            assert.are.equal("http://up/v2/acme/tool/manifests/1", route.redirect())
            ngx.var.http_user_agent = "skopeo/1.13"
            assert.are.equal("", route.redirect())
        end
        assert.are.equal(2, matched, "two agents, each matched once")
        -- Another list decides the same agent again, by its own patterns.
        dict:set("table", HEADER .. (AUTO_GLOB:gsub("%(%?:%^containerd/%)", "(?:^skopeo/)")))
        dict:set("version", "v2")
        route.refresh()
        assert.are.equal("http://up/v2/acme/tool/manifests/1", route.redirect())
        assert.are.equal(3, matched)
        -- Long agents are matched every time; past 4096 decisions the cache starts over.
        ngx.var.http_user_agent = "containerd/" .. string.rep("x", 600)
        route.redirect(); route.redirect()
        assert.are.equal(5, matched)
        for i = 1, 4096 do
            ngx.var.http_user_agent = "agent/" .. i
            route.redirect()
        end
        matched = 0
        ngx.var.http_user_agent = "skopeo/1.13"
        route.redirect(); route.redirect()
        assert.are.equal(1, matched, "forgotten when the cache started over, then kept again")
    end)

    it("proxies a proxy route and sets its origin for Location rewriting", function()
        ngx.var.pg_route, ngx.var.pg_tail = "prox", "manifests/2"
        route.registry()
        assert.is_nil(ngx.redirected)
        assert.are.equal("http://px/v2/p/manifests/2", ngx.var.pg_target)
        assert.are.equal("http://px", ngx.var.pg_origin)
    end)

    it("answers 503 for a route the table does not have yet", function()
        ngx.var.pg_route, ngx.var.pg_tail = "unknown", "manifests/1"
        route.registry()
        assert.are.equal(503, ngx.exited)
        assert.matches("UNAVAILABLE", ngx.said[1])
    end)

    it("falls back to the first fallback, or answers 502 without one", function()
        ngx.var.pg_route, ngx.var.pg_rest, ngx.var.pg_tail = "acme", "tool", "manifests/1"
        route.fallback()
        assert.are.equal("http://fb/v2/acme/tool/manifests/1", ngx.var.pg_target)
        assert.are.equal("http://fb", ngx.var.pg_origin)
        ngx.var.pg_route = "app"
        route.fallback()
        assert.are.equal(502, ngx.exited)
    end)

    it("asks the upstream token endpoint for pull of the upstream name", function()
        ngx.var.pg_route, ngx.var.pg_rest = "acme", "tool"
        route.token()
        assert.are.equal("http://tok/token?service=s&scope=repository:acme/tool:pull", ngx.var.pg_target)
        assert.are.equal("proxy", ngx.var.pg_log_mode)
        ngx.var.pg_route = "app"
        route.token()
        assert.are.equal(200, ngx.exited)
        assert.matches("pullgate%-anonymous", ngx.said[#ngx.said])
    end)

    it("applies a delta that starts at the version it holds, else reads the whole table", function()
        dict:set("table", HEADER .. REDIRECT .. PROXY)
        dict:set("version", "v1")
        route.refresh()
        local changed = line { "app", "proxy", "http://up2/v2/acme/app", "0", "http://up2", "", "", "", "", "acme/app" }
        -- The whole table also holds a route the delta does not: it must not be read.
        dict:set("table", "pullgate-routes 1 v2 200\n" .. changed .. line { "only", "redirect", "http://o/v2/o", "0", "http://o", "", "", "", "", "o" })
        dict:set("delta", "pullgate-delta 1 v1 v2 200\n" .. changed .. "prox\n" .. "bad\tline\n")
        dict:set("version", "v2")
        route.refresh()
        ngx.var.pg_route, ngx.var.pg_tail = "app", "manifests/1"
        route.registry()
        assert.are.equal("http://up2/v2/acme/app/manifests/1", ngx.var.pg_target, "changed by the delta")
        assert.are.equal("proxy", ngx.var.pg_log_mode)
        assert.matches("skipped 1 malformed", ngx.logs[#ngx.logs].text)
        for _, name in ipairs { "prox", "only" } do
            ngx.exited = nil
            ngx.var.pg_route = name
            route.registry()
            assert.are.equal(503, ngx.exited, name .. " is not in the table the delta made")
        end
        -- A delta from another version than the one held: the whole table.
        dict:set("delta", "pullgate-delta 1 v9 v3 300\nprox\n")
        dict:set("table", "pullgate-routes 1 v3 300\n" .. PROXY)
        dict:set("version", "v3")
        route.refresh()
        ngx.exited, ngx.var.pg_route = nil, "prox"
        route.registry()
        assert.is_nil(ngx.exited, "prox is back from the whole table")
    end)

    it("rebuilds its table only when the version changes", function()
        dict:set("table", HEADER .. PROXY)
        route.refresh()
        ngx.var.pg_route, ngx.var.pg_tail = "app", "manifests/1"
        route.registry()
        assert.is_not_nil(ngx.redirected, "same version: the old table stays")
        dict:set("version", "v2")
        route.refresh()
        ngx.redirected, ngx.exited = nil, nil
        route.registry()
        assert.is_nil(ngx.redirected)
        assert.are.equal(503, ngx.exited, "new version: `app` is gone")
    end)
end)
