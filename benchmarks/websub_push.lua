-- wrk script for benchmarks/websub_push.py: a hub pushing signed feed bodies.
--
-- wrk -t T -c T -d Ns -s websub_push.lua URL -- PLAN ENTRIES RATE OUT T
--
-- PLAN has one line per subscription: "<callback path> <secret> <feed number>". Thread k
-- (one connection each, so a response belongs to the request before it) takes the
-- subscriptions whose line number is k modulo T and pushes to them in turn, paced to
-- RATE / T pushes a second. Each push is an ENTRIES-entry Atom feed whose newest entry is
-- new, signed with HMAC-SHA256 (OpenSSL through LuaJIT's ffi: wrk links libcrypto).
-- A push answered 202 moves that feed on to its next entry; one answered otherwise is
-- sent again (as a hub retries). OUT gets the answers' counts and every acknowledged
-- entry id, for the Python side to check against the snapshot.

local ffi = require("ffi")
ffi.cdef([[
typedef struct evp_md_st EVP_MD;
const EVP_MD *EVP_sha256(void);
unsigned char *HMAC(const EVP_MD *evp_md, const void *key, int key_len,
                    const unsigned char *d, size_t n, unsigned char *md,
                    unsigned int *md_len);
struct bench_timespec { long tv_sec; long tv_nsec; };
int clock_gettime(int clk_id, struct bench_timespec *tp);
]])

local BASE = 1780272000 -- 2026-06-01T00:00:00Z, as the Python side's bodies
local threads = {}
local counter = 0

function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

local subs, turn, entries, interval, next_at, pending
local digest = ffi.new("unsigned char[64]")
local digest_len = ffi.new("unsigned int[1]")
local now_ts = ffi.new("struct bench_timespec")
codes = {}
acked = {}

local function now_ms()
  ffi.C.clock_gettime(1, now_ts)
  return tonumber(now_ts.tv_sec) * 1000 + tonumber(now_ts.tv_nsec) / 1e6
end

local function hex(buf, n)
  local out = {}
  for i = 0, n - 1 do
    out[#out + 1] = string.format("%02x", buf[i])
  end
  return table.concat(out)
end

local function body(feed, newest)
  local parts = {
    '<?xml version="1.0" encoding="utf-8"?>',
    '<feed xmlns="http://www.w3.org/2005/Atom">',
    "<title>Blog " .. feed .. "</title>",
    '<link rel="alternate" href="http://blog' .. feed .. '.example/"/>',
    "<id>http://blog" .. feed .. ".example/</id>",
    "<updated>2026-06-23T20:06:00Z</updated>",
  }
  local last = math.max(0, newest - entries + 1)
  for n = newest, last, -1 do
    local when = os.date("!%Y-%m-%dT%H:%M:%SZ", BASE + n)
    parts[#parts + 1] = "<entry>"
    parts[#parts + 1] = "<title>feed " .. feed .. " post " .. n .. "</title>"
    parts[#parts + 1] = '<link rel="alternate" href="http://blog' .. feed .. ".example/" .. n .. '"/>'
    parts[#parts + 1] = "<id>urn:bench:f" .. feed .. "-" .. n .. "</id>"
    parts[#parts + 1] = "<published>" .. when .. "</published>"
    parts[#parts + 1] = "<updated>" .. when .. "</updated>"
    parts[#parts + 1] = "<author><name>Alice</name></author>"
    parts[#parts + 1] = '<content type="html">&lt;p&gt;Hello&lt;/p&gt;</content>'
    parts[#parts + 1] = "</entry>"
  end
  parts[#parts + 1] = "</feed>"
  return table.concat(parts, "\n")
end

function init(args)
  local plan, rate, nthreads = args[1], tonumber(args[3]), tonumber(args[5])
  entries = tonumber(args[2])
  out_path = args[4]
  subs, turn = {}, 0
  local line_no = 0
  for line in io.lines(plan) do
    if line_no % nthreads == tid then
      local path, secret, feed = line:match("^(%S+) (%S+) (%d+)$")
      subs[#subs + 1] = { path = path, secret = secret, feed = tonumber(feed), seq = entries - 1 }
    end
    line_no = line_no + 1
  end
  interval = nthreads * 1000.0 / rate
end

function delay()
  local now = now_ms()
  if next_at == nil or now - next_at > 1000 then
    next_at = now -- more than a second behind: no burst to catch up
  end
  local wait = next_at - now
  next_at = next_at + interval
  return wait > 0 and math.floor(wait) or 0
end

function request()
  turn = turn % #subs + 1
  local sub = subs[turn]
  local data = body(sub.feed, sub.seq + 1)
  ffi.C.HMAC(ffi.C.EVP_sha256(), sub.secret, #sub.secret, data, #data, digest, digest_len)
  pending = sub
  return wrk.format("POST", sub.path, {
    ["Content-Type"] = "application/atom+xml",
    ["X-Hub-Signature"] = "sha256=" .. hex(digest, digest_len[0]),
  }, data)
end

function response(status, headers, _)
  codes[status] = (codes[status] or 0) + 1
  local sub = pending
  if sub ~= nil and status == 202 then
    sub.seq = sub.seq + 1
    acked[#acked + 1] = "urn:bench:f" .. sub.feed .. "-" .. sub.seq
  end
  pending = nil
end

function done(summary, latency, requests)
  local out = io.open(threads[1]:get("out_path"), "w")
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("codes")) do
      out:write("code ", status, " ", count, "\n")
    end
    for _, id in ipairs(thread:get("acked")) do
      out:write("acked ", id, "\n")
    end
  end
  out:write("requests ", summary.requests, "\n")
  local errors = summary.errors
  out:write("socket_errors ", errors.connect + errors.read + errors.write + errors.timeout, "\n")
  out:write("timeouts ", summary.errors.timeout, "\n")
  out:write("duration_us ", summary.duration, "\n")
  for _, p in ipairs({ 50, 90, 99 }) do
    out:write("push_p", p, "_ms ", latency:percentile(p) / 1000.0, "\n")
  end
  out:close()
end
