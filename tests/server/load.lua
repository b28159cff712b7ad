-- wrk script of tests/server/load.sh: sends the request bodies DIR/req-*.json
-- in turn (POST to $IA_LOAD_PATH) and checks every answer against the one the
-- server gave to the same request sent alone before the run (DIR/exp-*.json).
--
-- A response is matched to its request by usage.prompt_tokens (load.sh makes
-- the requests' token counts distinct), since wrk's response() is not told
-- which request it answers. Bodies are compared whole after removing what
-- differs between two runs of the same request ("id" and "created"), so an
-- embedding must be bit-identical to the solo one; streams by their text,
-- finish reason, usage and closing [DONE] (see normalize()).
--
-- Environment: IA_LOAD_DIR (the files), IA_LOAD_PATH (the route),
-- IA_LOAD_COMPARE ("stream" for SSE answers, else whole bodies). done()
-- prints one line "LOAD key=value ..." that load.sh reads; the first wrong
-- answer of each thread is written to DIR/wrong-<n>.txt.

local dir = os.getenv("IA_LOAD_DIR")
local path = os.getenv("IA_LOAD_PATH")

local function read_file(name)
    local f = io.open(name, "rb")
    if not f then
        return nil
    end
    local s = f:read("*a")
    f:close()
    return s
end

-- the concatenated "content" strings of an SSE body (as escaped in the JSON)
local function stream_text(body)
    local parts, pos = {}, 1
    while true do
        local s, e = body:find('"content":"', pos, true)
        if not s then
            break
        end
        local j = e + 1
        while true do
            local k = body:find('["\\]', j)
            if not k then
                return nil
            end
            if body:byte(k) == 92 then -- backslash: skip the escaped character
                j = k + 2
            else
                parts[#parts + 1] = body:sub(e + 1, k - 1)
                pos = k + 1
                break
            end
        end
    end
    return table.concat(parts)
end

-- What must be equal between two answers to the same request. A body: all of
-- it but "id" and "created". A stream (IA_LOAD_COMPARE=stream): the text
-- (the server may send it in different pieces under load), the finish
-- reasons, the usage and the closing [DONE].
local stream_mode = os.getenv("IA_LOAD_COMPARE") == "stream"
local function normalize(body)
    if stream_mode then
        local reasons = {}
        for r in body:gmatch('"finish_reason":"(%a+)"') do
            reasons[#reasons + 1] = r
        end
        local done = body:sub(-14) == "data: [DONE]\n\n"
        return table.concat({stream_text(body) or "(bad JSON string)", table.concat(reasons, ","),
                             body:match('"usage":(%b{})') or "(no usage)", tostring(done)}, "\0")
    end
    body = body:gsub('"id":"[^"]*",?', "")
    body = body:gsub('"created":%d+,?', "")
    return body
end

local function prompt_tokens(body)
    return tonumber(body:match('"prompt_tokens":(%d+)'))
end

-- per thread: the formatted requests and the expected bodies by token count
local requests, expected = {}, {}
local next_req = 0
ok, wrong, s2xx, s4xx, s5xx, other = 0, 0, 0, 0, 0, 0
local wrong_written = false

local threads = {}

function setup(thread)
    thread:set("thread_no", #threads + 1)
    table.insert(threads, thread)
end

function init(args)
    local i = 0
    while true do
        local req = read_file(string.format("%s/req-%d.json", dir, i))
        if not req then
            break
        end
        local exp = assert(read_file(string.format("%s/exp-%d.json", dir, i)), "missing exp file")
        local n = assert(prompt_tokens(exp), "expected body has no usage.prompt_tokens")
        assert(expected[n] == nil, "two requests with the same prompt_tokens")
        expected[n] = normalize(exp)
        requests[#requests + 1] = wrk.format("POST", path, {["Content-Type"] = "application/json"}, req)
        i = i + 1
    end
    assert(#requests > 0, "no requests in " .. tostring(dir))
end

function request()
    next_req = next_req % #requests + 1
    return requests[next_req]
end

function response(status, headers, body)
    if status >= 500 then
        s5xx = s5xx + 1
    elseif status >= 400 then
        s4xx = s4xx + 1
    elseif status >= 200 and status < 300 then
        s2xx = s2xx + 1
    else
        other = other + 1
    end
    if status ~= 200 then
        return
    end
    local n = prompt_tokens(body)
    if n and expected[n] == normalize(body) then
        ok = ok + 1
        return
    end
    wrong = wrong + 1
    if not wrong_written then
        wrong_written = true
        local f = io.open(string.format("%s/wrong-%d.txt", dir, thread_no or 0), "wb")
        if f then
            f:write(body)
            f:close()
        end
    end
end

function done(summary, latency, requests_stats)
    local t = {ok = 0, wrong = 0, s2xx = 0, s4xx = 0, s5xx = 0, other = 0}
    for _, th in ipairs(threads) do
        for k, _ in pairs(t) do
            t[k] = t[k] + (th:get(k) or 0)
        end
    end
    local e = summary.errors
    io.write(string.format(
        "LOAD requests=%d seconds=%.3f ok=%d wrong=%d s2xx=%d s4xx=%d s5xx=%d other=%d " ..
        "connect_err=%d read_err=%d write_err=%d timeouts=%d p50_ms=%.2f p90_ms=%.2f " ..
        "p99_ms=%.2f max_ms=%.2f\n",
        summary.requests, summary.duration / 1e6, t.ok, t.wrong, t.s2xx, t.s4xx, t.s5xx, t.other,
        e.connect, e.read, e.write, e.timeout, latency:percentile(50) / 1e3,
        latency:percentile(90) / 1e3, latency:percentile(99) / 1e3, latency.max / 1e3))
end
