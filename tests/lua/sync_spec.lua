-- lua/pullgate/sync.lua: headers, versions and stamps, the local file, Redis.
local fake = require "fake_ngx"

local function table_text(version, stamp, body)
    return "pullgate-routes 1 " .. version .. " " .. stamp .. "\n" .. (body or "")
end

describe("route table sync", function()
    local ngx, sync, dict, redis
    before_each(function()
        ngx = fake.install()
        redis = fake.redis()
        sync = require "pullgate.sync"
        dict = ngx.shared.pullgate
    end)

    it("reads version and stamp from a format 1 header only", function()
        assert.are.same({ "abc", 42 }, { sync.header(table_text("abc", 42)) })
        assert.is_nil(sync.header("pullgate-routes 2 abc 42\n"))
        assert.is_nil(sync.header("pullgate-routes 1 abc\n"))
        assert.is_nil(sync.header("pullgate-routes 1 abc notanumber\n"))
        assert.is_nil(sync.header("app\tproxy\n"))
        assert.is_nil(sync.header(""))
    end)

    it("keeps a new version, ignores the same version and older stamps", function()
        assert.is_true(sync.offer(table_text("v1", 100), "test"))
        assert.are.equal("v1", dict:get("version"))
        assert.is_false(sync.offer(table_text("v1", 200), "test"), "same version")
        assert.is_false(sync.offer(table_text("v0", 50), "test"), "older stamp")
        assert.are.equal("v1", dict:get("version"))
        assert.is_true(sync.offer(table_text("v2", 100), "test"), "same stamp, new version")
        assert.are.equal("v2", dict:get("version"))
        assert.are.equal(table_text("v2", 100), dict:get("table"))
    end)

    it("keeps a delta with the table it leads to, and no delta with a table that has none", function()
        assert.is_true(sync.offer(table_text("v1", 1), "test"))
        local delta = "pullgate-delta 1 v1 v2 2\napp\n"
        assert.is_true(sync.offer(table_text("v2", 2), "redis", delta))
        assert.are.equal(delta, dict:get("delta"))
        assert.is_true(sync.offer(table_text("v3", 3), "file"))
        assert.is_nil(dict:get("delta"))
        -- From Redis: the delta key beside the table.
        redis.store["pg:version"] = "v4"
        redis.store["pg:table"] = table_text("v4", 4)
        redis.store["pg:delta"] = "pullgate-delta 1 v3 v4 4\n"
        ngx.worker_id = 0
        sync.start({ file = "/nonexistent", host = "127.0.0.1", port = 6379, db = 0, table_key = "pg:table",
            version_key = "pg:version", delta_key = "pg:delta" })
        local tick = ngx.timers[3]
        tick.f(false, table.unpack(tick.args))
        assert.are.equal("v4", dict:get("version"))
        assert.are.equal("pullgate-delta 1 v3 v4 4\n", dict:get("delta"))
    end)

    it("keeps the version it has when a table does not fit the shared dict, and says so", function()
        assert.is_true(sync.offer(table_text("v1", 1, "app\tredirect\n"), "test"))
        dict.room = 40
        assert.is_false(sync.offer(table_text("v2", 2, string.rep("x", 100)), "redis"))
        assert.are.equal("v1", dict:get("version"))
        assert.are.equal(1, dict:get("stamp"))
        assert.matches("does not fit the shared dict", ngx.logs[#ngx.logs].text)
        assert.are.equal("error", ngx.logs[#ngx.logs].level)
    end)

    it("refuses a table without a format 1 header, and says so", function()
        assert.is_false(sync.offer("app\tredirect\n", "redis"))
        assert.is_false(sync.offer("pullgate-routes 2 v9 999\n", "redis"))
        assert.is_nil(dict:get("version"))
        assert.matches("without a format 1 header from redis", ngx.logs[#ngx.logs].text)
    end)

    it("loads the local file, and only when its version is new", function()
        local path = os.tmpname()
        local f = assert(io.open(path, "wb"))
        f:write(fake.golden_table())
        f:close()
        sync.load_file(path)
        assert.are.equal("a46ca4428bb58da1", dict:get("version"))
        dict:set("table", "replaced")
        sync.load_file(path)
        assert.are.equal("replaced", dict:get("table"), "the same version is not read again")
        sync.load_file(path .. ".missing")
        os.remove(path)
    end)

    it("starts: loads the file, and worker 0 alone polls Redis", function()
        local path = os.tmpname()
        local f = assert(io.open(path, "wb"))
        f:write(table_text("local", 1))
        f:close()
        redis.store["pg:version"] = "remote"
        redis.store["pg:table"] = table_text("remote", 5)
        local opts = { file = path, host = "127.0.0.1", port = 6379, db = 0, table_key = "pg:table", version_key = "pg:version" }
        ngx.worker_id = 1
        sync.start(opts)
        assert.are.equal("local", dict:get("version"))
        assert.are.equal(1, #ngx.timers, "worker 1 only refreshes its copy")
        ngx.worker_id = 0
        sync.start(opts)
        assert.are.equal(4, #ngx.timers, "no listener without an events channel")
        local tick = ngx.timers[3]
        tick.f(false, table.unpack(tick.args))
        assert.are.equal("remote", dict:get("version"))
        os.remove(path)
    end)

    it("keeps serving when Redis is down, warning once per 10 s", function()
        local opts = { file = "/nonexistent", host = "127.0.0.1", port = 1, db = 0, table_key = "k:table", version_key = "k:version" }
        redis.down = true
        ngx.worker_id = 0
        sync.offer(table_text("v1", 1), "file")
        sync.start(opts)
        local tick = ngx.timers[2]
        tick.f(false, table.unpack(tick.args))
        tick.f(false, table.unpack(tick.args))
        local warnings = 0
        for _, l in ipairs(ngx.logs) do
            if l.level == "warn" then warnings = warnings + 1 end
        end
        assert.are.equal(1, warnings)
        assert.are.equal("v1", dict:get("version"))
        ngx.clock = ngx.clock + 11
        tick.f(false, table.unpack(tick.args))
        warnings = 0
        for _, l in ipairs(ngx.logs) do
            if l.level == "warn" then warnings = warnings + 1 end
        end
        assert.are.equal(2, warnings)
    end)

    it("worker 0 listens for new versions and fetches each at once", function()
        local opts = { file = "/nonexistent", host = "127.0.0.1", port = 6379, db = 0, table_key = "pg:table",
            version_key = "pg:version", events_key = "pg:events" }
        sync.offer(table_text("v1", 1), "file")
        ngx.worker_id = 0
        sync.start(opts)
        local listen = ngx.timers[#ngx.timers]
        assert.are.equal(sync.listen, listen.f, "the listener starts with the worker")
        redis.store["pg:version"] = "v2"
        redis.store["pg:table"] = table_text("v2", 5)
        redis.messages = { { "message", "pg:events", "v1" }, { "message", "pg:events", "v2" } }
        listen.f(false, table.unpack(listen.args))
        assert.are.same({ "pg:events" }, redis.subscribed)
        assert.are.equal("v2", dict:get("version"), "a message names the version to fetch")
        assert.are.equal(2, redis.gets, "the version it had already was not fetched")
        assert.are.equal(sync.listen, listen.f)
        local timers = #ngx.timers
        listen.f(false, table.unpack(listen.args))
        assert.are.equal(timers, #ngx.timers, "a worker told to exit stops listening")
    end)

    it("listens again a second after Redis refused or dropped the subscription", function()
        local opts = { file = "/nonexistent", host = "127.0.0.1", port = 1, db = 0, table_key = "k:table",
            version_key = "k:version", events_key = "k:events" }
        redis.down = true
        sync.listen(false, opts)
        local again = ngx.timers[#ngx.timers]
        assert.are.same({ 1, sync.listen }, { again.delay, again.f })
        assert.matches("unreachable", ngx.logs[#ngx.logs].text)
    end)
end)
