#include "store.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "backoff.h"
#include "clock.h"
#include "keys.h"
#include "log.h"
#include "xmalloc.h"

#define MAX_ARGS         96
#define RECONNECT_MIN_MS 100
#define RECONNECT_MAX_MS 5000

/*
 * take: moves up to ARGV[1] payloads from the n queues KEYS[2..n+1], in
 * strict priority order, to the processing list KEYS[1], at most
 * ARGV[1 + i] from queue i (0: skip it; the worker pauses a queue whose
 * jobs found no upstream capacity), and adds the number moved from queue
 * i to its taken counter KEYS[n+1+i] (queue_age.h). Atomic, so a crash
 * either leaves a payload in its queue or in the processing list.
 * Returns a flat array: queue index, payload, queue index, payload...
 */
static const char take_lua[] =
    "local out = {}\n"
    "local want = tonumber(ARGV[1])\n"
    "local nq = (#KEYS - 1) / 2\n"
    "for i = 2, nq + 1 do\n"
    "  local cap = tonumber(ARGV[i])\n"
    "  local moved = 0\n"
    "  while want > 0 and moved < cap do\n"
    "    local v = redis.call('LMOVE', KEYS[i], KEYS[1], 'RIGHT', 'LEFT')\n"
    "    if not v then break end\n"
    "    out[#out + 1] = i - 2\n"
    "    out[#out + 1] = v\n"
    "    want = want - 1\n"
    "    moved = moved + 1\n"
    "  end\n"
    "  if moved > 0 then redis.call('INCRBY', KEYS[i + nq], moved) end\n"
    "  if want == 0 then break end\n"
    "end\n"
    "return out\n";

/*
 * claim: KEYS[1] job record, KEYS[2] cancel flag; ARGV: worker, now ms,
 * prefix, queue, action, job id, parent task id ("" if none), number of
 * candidate accounts, then per candidate: name, limit, mode, mode limit.
 *
 * Creates the record only if absent; otherwise decides between done,
 * ours ("mine": a claim whose reply was lost), busy (live owner) and
 * resume (the owner released it or its heartbeat is gone), taking it over
 * for resume. A job that still has to be submitted then needs room on an
 * account: the candidate with the most room (ties: the worker's order),
 * restricted to the account that ran the parent task when one is known
 * (<p>task:<parent>). Room is counted with leases, hashes
 * <p>lease:<account>[:<mode>] of job id -> worker; a full hash first drops
 * leases whose job is done or gone, or was never submitted and whose
 * holder is dead or no longer owns it: capacity dies with its holder, but
 * a task running upstream keeps its lease until its job ends. No room
 * anywhere: the answer is "full", the record ours in state "waiting"
 * (the worker hands the payload back to its queue, or ends it if its
 * deadline passed meanwhile). A job that holds
 * leases already (submitted, or a resent claim) takes them over.
 * Returns {kind, cancel, task_id, taken_ms, submits, polls, recoveries,
 * previous owner, account, leases ("|"-separated keys)}.
 * Heartbeat, lease and record keys are derived, so this needs a single
 * Redis, not a cluster.
 */
static const char claim_lua[] =
    "local p, me, id = ARGV[3], ARGV[1], ARGV[6]\n"
    "local cancel = redis.call('EXISTS', KEYS[2])\n"
    "local f = redis.call('HMGET', KEYS[1], 'state', 'owner', 'task_id',\n"
    "  'taken_ms', 'submits', 'polls', 'recoveries', 'account', 'leases')\n"
    "local kind, owner, set = 'new', '', {}\n"
    "if not f[1] then\n"
    "  set = {'state', 'taken', 'owner', me, 'taken_ms', ARGV[2],\n"
    "    'queue', ARGV[4], 'action', ARGV[5]}\n"
    "else\n"
    "  owner = f[2] or ''\n"
    "  if f[1] == 'done' then kind = 'done'\n"
    "  elseif owner == me then kind = 'mine'\n"
    "  elseif owner ~= '' and\n"
    "      redis.call('EXISTS', p .. 'worker:' .. owner) == 1 then\n"
    "    kind = 'busy'\n"
    "  else\n"
    "    kind = 'resume'\n"
    "    set = {'owner', me, 'state', 'taken'}\n"
    "    if owner ~= '' then\n"
    "      redis.call('HINCRBY', KEYS[1], 'recoveries', 1)\n"
    "    end\n"
    "  end\n"
    "end\n"
    "local task, account, leases = f[3] or '', f[8] or '', f[9] or ''\n"
    "local parent = nil\n"
    "local function reclaim(key)\n"
    "  local all = redis.call('HGETALL', key)\n"
    "  for i = 1, #all, 2 do\n"
    "    local r = redis.call('HMGET', p .. 'job:' .. all[i], 'state',\n"
    "      'task_id', 'owner')\n"
    "    if not r[1] or r[1] == 'done' or ((r[2] or '') == '' and\n"
    "        ((r[3] or '') ~= all[i + 1] or\n"
    "         redis.call('EXISTS', p .. 'worker:' .. all[i + 1]) == 0)) then\n"
    "      redis.call('HDEL', key, all[i])\n"
    "    end\n"
    "  end\n"
    "end\n"
    "local NOLIMIT = 1000000000\n"
    "local function room(key, limit)\n"
    "  if limit <= 0 then return NOLIMIT end\n"
    "  local n = redis.call('HLEN', key)\n"
    "  if n >= limit then reclaim(key); n = redis.call('HLEN', key) end\n"
    "  return limit - n\n"
    "end\n"
    "if kind == 'new' or kind == 'mine' or kind == 'resume' then\n"
    "  local keep = task ~= '' or (kind == 'mine' and leases ~= '')\n"
    "  for k in string.gmatch(leases, '[^|]+') do\n"
    "    if keep then redis.call('HSET', k, id, me)\n"
    "    else redis.call('HDEL', k, id) end\n"
    "  end\n"
    "  if not keep then\n"
    "    leases, account = '', ''\n"
    "    local only = false\n"
    "    if ARGV[7] ~= '' then\n"
    "      only = redis.call('GET', p .. 'task:' .. ARGV[7])\n"
    "    end\n"
    "    local best, most = nil, 0\n"
    "    for i = 0, tonumber(ARGV[8]) - 1 do\n"
    "      local name, lim = ARGV[9 + 4 * i], tonumber(ARGV[10 + 4 * i])\n"
    "      local mlim = tonumber(ARGV[12 + 4 * i])\n"
    "      if not only or only == name then\n"
    "        local free = math.min(room(p .. 'lease:' .. name, lim),\n"
    "          room(p .. 'lease:' .. name .. ':' .. ARGV[11 + 4 * i], mlim))\n"
    "        if free > most then best, most = i, free end\n"
    "        if most == NOLIMIT then break end\n"
    "      end\n"
    "    end\n"
    "    if not best then\n"
    "      kind = 'full'\n"
    "      set[#set + 1] = 'state'\n"
    "      set[#set + 1] = 'waiting'\n"
    "      parent = only or ''\n"
    "    else\n"
    "      account = ARGV[9 + 4 * best]\n"
    "      local keys = {}\n"
    "      if tonumber(ARGV[10 + 4 * best]) > 0 then\n"
    "        keys[#keys + 1] = p .. 'lease:' .. account\n"
    "      end\n"
    "      if tonumber(ARGV[12 + 4 * best]) > 0 then\n"
    "        keys[#keys + 1] = p .. 'lease:' .. account .. ':' ..\n"
    "          ARGV[11 + 4 * best]\n"
    "      end\n"
    "      for _, k in ipairs(keys) do redis.call('HSET', k, id, me) end\n"
    "      leases = table.concat(keys, '|')\n"
    "    end\n"
    "    for _, v in ipairs({'account', account, 'leases', leases}) do\n"
    "      set[#set + 1] = v\n"
    "    end\n"
    "  end\n"
    "end\n"
    "if #set > 0 then redis.call('HSET', KEYS[1], unpack(set)) end\n"
    "if parent then account = parent end\n"
    "return {kind, cancel, task, f[4] or ARGV[2], f[5] or '0', f[6] or '0',\n"
    "  f[7] or '0', owner, account, leases}\n";

/*
 * sweep: ARGV prefix, default queue, sweeper id, lock ms. Runs only when
 * the sweep lock is free, and takes it (SET PX lock ms) when done: one
 * sweep per period across the whole deployment, however many supervisors
 * run it; the others answer {-1} at the cost of one EXISTS. (Scripts run
 * one at a time, so checking first and setting last is as good as SET NX.)
 * Each payload moves with LMOVE, which checks both keys before it moves
 * anything: a queue key of another kind makes it go to the default queue,
 * and if that fails too the worker stays registered for the next sweep;
 * nothing is ever popped and dropped. The first write is the SREM, which
 * Redis allows even at maxmemory, and a script that has written may go on
 * writing, so a full Redis does not stop the recovery. For every registered
 * worker whose heartbeat key is gone, moves each payload of its processing list
 * back to the oldest end of the queue recorded in the job's record (the
 * default queue when there is none), takes it out of that queue's taken
 * counter (queue_age.h), then forgets the worker. The claim script then
 * resumes each job (by its task id if it has one).
 * Returns {moved, dead worker, its jobs moved, ...} (only workers that had
 * jobs: one that drained and left has none), or {-1} without the lock.
 */
static const char sweep_lua[] =
    "local p = ARGV[1]\n"
    "if redis.call('EXISTS', p .. 'sweep:lock') == 1 then return {-1} end\n"
    "local moved = 0\n"
    "local out = {0}\n"
    "local function failed(r) return type(r) == 'table' and r.err end\n"
    "for _, w in ipairs(redis.call('SMEMBERS', p .. 'workers')) do\n"
    "  if redis.call('EXISTS', p .. 'worker:' .. w) == 0 then\n"
    "    local list, stuck, n = p .. 'processing:' .. w, false, 0\n"
    "    redis.call('SREM', p .. 'workers', w)\n"
    "    while true do\n"
    "      local v = redis.call('LINDEX', list, 0)\n"
    "      if not v then break end\n"
    "      local q = ARGV[2]\n"
    "      local ok, job = pcall(cjson.decode, v)\n"
    "      if ok and type(job) == 'table' and type(job.id) == 'string' then\n"
    "        local jq = redis.call('HGET', p .. 'job:' .. job.id, 'queue')\n"
    "        if jq then q = jq end\n"
    "      end\n"
    "      local r = redis.pcall('LMOVE', list, p .. 'queue:' .. q,\n"
    "        'LEFT', 'RIGHT')\n"
    "      if failed(r) and q ~= ARGV[2] then\n"
    "        q = ARGV[2]\n"
    "        r = redis.pcall('LMOVE', list, p .. 'queue:' .. q, 'LEFT',\n"
    "          'RIGHT')\n"
    "      end\n"
    "      if failed(r) then stuck = true break end\n"
    "      redis.pcall('DECR', p .. 'stats:taken:' .. q)\n"
    "      moved = moved + 1\n"
    "      n = n + 1\n"
    "    end\n"
    "    if stuck then\n"
    "      redis.call('SADD', p .. 'workers', w)\n"
    "    elseif n > 0 then\n"
    "      out[#out + 1] = w\n"
    "      out[#out + 1] = n\n"
    "    end\n"
    "  end\n"
    "end\n"
    "out[1] = moved\n"
    "redis.pcall('SET', p .. 'sweep:lock', ARGV[3], 'PX', ARGV[4])\n"
    "return out\n";

/*
 * finish: KEYS results stream, processing list, job record, events, dead
 * stream; ARGV worker, payload, mark done (1/0), status, finished ms,
 * task id, dedup TTL s, leases, dead (1/0), error, results maxlen, events
 * maxlen, job id, then the result entry's fields and values.
 *
 * A result is published exactly when this call removes the payload from
 * the worker's processing list. So a finish resent after a lost reply
 * publishes nothing the second time, and a worker that was cut off long
 * enough for the sweep to hand its payload to another worker publishes
 * nothing either: the new owner does. Returns 1, 0 when the payload was
 * not there, or 2 (nothing done) when the result stream's key holds
 * something else than a stream: a reply_to naming a key of another kind
 * must not make the script stop after its LREM, which Redis would not
 * undo. The dead stream and the event are written with pcall for the
 * same reason: a broken one of them loses that entry, not the job.
 */
static const char finish_lua[] =
    "local t = redis.call('TYPE', KEYS[1]).ok\n"
    "if t ~= 'none' and t ~= 'stream' then return 2 end\n"
    "if redis.call('LREM', KEYS[2], 1, ARGV[2]) == 0 then return 0 end\n"
    "redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[11], '*',\n"
    "  unpack(ARGV, 14))\n"
    "if ARGV[3] == '1' then\n"
    "  redis.call('HSET', KEYS[3], 'state', 'done', 'status', ARGV[4],\n"
    "    'owner', ARGV[1], 'finished_ms', ARGV[5])\n"
    "  if ARGV[6] ~= '' then\n"
    "    redis.call('HSET', KEYS[3], 'task_id', ARGV[6])\n"
    "  end\n"
    "  redis.call('EXPIRE', KEYS[3], ARGV[7])\n"
    "end\n"
    "for k in string.gmatch(ARGV[8], '[^|]+') do\n"
    "  redis.call('HDEL', k, ARGV[13])\n"
    "end\n"
    "if ARGV[9] == '1' then\n"
    "  redis.pcall('XADD', KEYS[5], 'MAXLEN', '~', ARGV[11], '*', 'id',\n"
    "    ARGV[13], 'error', ARGV[10], 'worker', ARGV[1], 'ts', ARGV[5],\n"
    "    'payload', ARGV[2])\n"
    "end\n"
    "redis.pcall('XADD', KEYS[4], 'MAXLEN', '~', ARGV[12], '*', 'type',\n"
    "  'finished', 'ts', ARGV[5], 'worker', ARGV[1], 'id', ARGV[13],\n"
    "  'status', ARGV[4])\n"
    "return 1\n";

/*
 * handback: KEYS processing list, queue, job record, the queue's taken
 * counter; ARGV worker,
 * payload, claimed (1/0), task id, submits, polls, leases, job id.
 * Moves the payload back to the end of its queue that is taken next, if
 * it is still in the processing list (else it was handed on already:
 * nothing to do, returns 0). A record still ours is released: with its
 * task id, for the next owner to poll; without one, its leases too.
 */
static const char handback_lua[] =
    "local t = redis.call('TYPE', KEYS[2]).ok\n"
    "if t ~= 'none' and t ~= 'list' then\n"
    "  return redis.error_reply('WRONGTYPE ' .. KEYS[2] ..\n"
    "    ' is not a list: the payload stays in the processing list')\n"
    "end\n"
    "if redis.call('LREM', KEYS[1], 1, ARGV[2]) == 0 then return 0 end\n"
    "if ARGV[3] == '1' and redis.call('HGET', KEYS[3], 'owner') == ARGV[1]\n"
    "then\n"
    "  redis.call('HSET', KEYS[3], 'owner', '', 'state', 'released',\n"
    "    'submits', ARGV[5], 'polls', ARGV[6])\n"
    "  if ARGV[4] ~= '' then\n"
    "    redis.call('HSET', KEYS[3], 'task_id', ARGV[4])\n"
    "  else\n"
    "    redis.call('HSET', KEYS[3], 'leases', '', 'account', '')\n"
    "    for k in string.gmatch(ARGV[7], '[^|]+') do\n"
    "      redis.call('HDEL', k, ARGV[8])\n"
    "    end\n"
    "  end\n"
    "end\n"
    "redis.call('RPUSH', KEYS[2], ARGV[2])\n"
    "redis.pcall('DECR', KEYS[4])\n"
    "return 1\n";

enum script {
    SCRIPT_TAKE,
    SCRIPT_CLAIM,
    SCRIPT_SWEEP,
    SCRIPT_FINISH,
    SCRIPT_HANDBACK,
    SCRIPT_COUNT
};

static const char *const script_text[SCRIPT_COUNT] = {
    take_lua, claim_lua, sweep_lua, finish_lua, handback_lua};

struct conn {
    struct store *store;
    redisAsyncContext *ac;
    int queue;           /* -1 for the command connection */
    int up;              /* handshake complete */
    int doomed;          /* a handshake step failed: closing, not up */
    int armed;           /* blocking: a BLMOVE is pending */
    long long client_id; /* blocking: for CLIENT UNBLOCK */
    unsigned failures;   /* consecutive failed connects */
    struct event *retry;
};

struct store {
    struct event_base *base;
    const struct config *cfg;
    char *worker;
    store_notify_fn *on_up, *on_down;
    void *ctx;
    struct conn cmd;
    struct conn *blocking; /* one per queue */
    store_take_fn *wait_cb;
    void *wait_ctx;
    int wanting;               /* store_wait was called and not yet satisfied */
    int takes_pending;         /* batch takes awaiting their reply */
    int64_t hb_sent_ms;        /* monotonic time of the unanswered heartbeat,
                                * 0 when answered: the watchdog */
    int hb_alive;              /* a heartbeat of ours was confirmed */
    store_notify_fn *on_lapse; /* our heartbeat had expired */
    int maybe_orphans;         /* a take reply may have been lost */
    char sha[SCRIPT_COUNT][41];
    char processing[KEYS_MAX];
    char events[KEYS_MAX];
    char heartbeat[KEYS_MAX];
    char heartbeat_prefix[KEYS_MAX];
    char workers[KEYS_MAX];
    char **queue_keys;
    unsigned *caps;    /* per queue: most payloads one take moves; 0 paused */
    char **stats_keys; /* taken counter of each queue */
    size_t nqueues;    /* of queue_keys, blocking: cfg's at creation (a
                        * reload may change cfg) */
    int freeing;
    unsigned long long commands;
};

/* A command's arguments, binary safe. */
struct args {
    int n;
    const char *v[MAX_ARGS];
    size_t len[MAX_ARGS];
    char num[MAX_ARGS][24];
};

static void args_addn(struct args *a, const char *p, size_t len)
{
    if (a->n >= MAX_ARGS)
        abort(); /* a programming error: every command here is bounded */
    a->v[a->n] = p;
    a->len[a->n] = len;
    a->n++;
}

static void args_add(struct args *a, const char *s)
{
    args_addn(a, s, strlen(s));
}

static void args_addll(struct args *a, long long v)
{
    int len = snprintf(a->num[a->n], sizeof(a->num[0]), "%lld", v);

    args_addn(a, a->num[a->n], (size_t)len);
}

static int send_args(struct conn *c, redisCallbackFn *fn, void *priv,
                     const struct args *a)
{
    if (!c->up || c->ac == NULL)
        return -1;
    if (redisAsyncCommandArgv(c->ac, fn, priv, a->n, (const char **)a->v,
                              a->len) != REDIS_OK)
        return -1;
    c->store->commands++;
    return 0;
}

static void connect_conn(struct conn *c);

static void schedule_reconnect(struct conn *c)
{
    long delay;
    struct timeval tv;

    if (c->store->freeing)
        return;
    delay = backoff_retry_delay(RECONNECT_MIN_MS, RECONNECT_MAX_MS, c->failures,
                                backoff_random());
    c->failures++;
    tv.tv_sec = delay / 1000;
    tv.tv_usec = (delay % 1000) * 1000;
    evtimer_add(c->retry, &tv);
}

static void on_retry_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    connect_conn(arg);
}

static void conn_lost(struct conn *c)
{
    struct store *s = c->store;
    int was_up = c->up;

    c->ac = NULL;
    c->up = 0;
    if (c->queue < 0)
        s->hb_sent_ms = 0;
    if (c->armed || (c->queue < 0 && s->takes_pending > 0))
        s->maybe_orphans = 1;
    c->armed = 0;
    if (c->queue < 0 && was_up && s->on_down != NULL && !s->freeing)
        s->on_down(s->ctx);
    schedule_reconnect(c);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    struct conn *c = ac->data;

    if (c == NULL)
        return;
    if (status != REDIS_OK && !c->store->freeing)
        log_warn("redis: connection lost (%s)", ac->errstr);
    conn_lost(c);
}

/* Any error during the handshake drops the connection and retries. c is
 * NULL when the store is being freed (conn_close): hiredis then calls the
 * handshake's callbacks with no reply, and there is nothing to do. */
static int handshake_failed(struct conn *c, redisReply *r, const char *step)
{
    if (c == NULL)
        return 1;
    if (r != NULL && r->type != REDIS_REPLY_ERROR)
        return 0;
    if (r != NULL && !c->doomed)
        log_error("redis: %s failed: %s", step, r->str);
    if (c->ac != NULL && r != NULL && !c->doomed)
        redisAsyncDisconnect(c->ac);
    if (r != NULL)
        c->doomed = 1; /* the replies still queued must not make it "up" */
    return 1;
}

static void on_auth(redisAsyncContext *ac, void *reply, void *priv)
{
    struct conn *c = ac->data;

    (void)priv;
    /* The reply text never contains the password. */
    handshake_failed(c, reply, "AUTH");
}

static void on_select(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)priv;
    handshake_failed(ac->data, reply, "SELECT");
}

static void on_script_load(redisAsyncContext *ac, void *reply, void *priv)
{
    struct conn *c = ac->data;
    redisReply *r = reply;
    int which = (int)(intptr_t)priv;

    if (handshake_failed(c, r, "SCRIPT LOAD"))
        return;
    if (r->type == REDIS_REPLY_STRING && r->len == 40)
        memcpy(c->store->sha[which], r->str, 41);
}

static void arm_blocking(struct conn *c);

static void on_ready(redisAsyncContext *ac, void *reply, void *priv)
{
    struct conn *c = ac->data;
    redisReply *r = reply;
    struct store *s;

    (void)priv;
    if (handshake_failed(c, r, "CLIENT ID") || c->doomed)
        return;
    s = c->store;
    c->up = 1;
    c->failures = 0;
    if (r->type == REDIS_REPLY_INTEGER)
        c->client_id = r->integer;
    if (c->queue < 0) {
        log_info("redis: connected");
        if (s->on_up != NULL)
            s->on_up(s->ctx);
    } else if (s->wanting) {
        arm_blocking(c);
    }
}

static void on_connect(const redisAsyncContext *cac, int status)
{
    redisAsyncContext *ac = (redisAsyncContext *)cac;
    struct conn *c = ac->data;
    struct store *s;
    char name[200];

    if (c == NULL)
        return; /* being freed (conn_close) */
    s = c->store;

    if (status != REDIS_OK) {
        if (c->failures == 0 || c->failures % 10 == 0)
            log_warn("redis: cannot connect (%s); retrying", ac->errstr);
        c->ac = NULL;
        schedule_reconnect(c);
        return;
    }
    /* Dead peers are noticed by the kernel even on idle connections. */
    redisEnableKeepAlive(&ac->c);
    /* Everything below is pipelined: one round trip for the handshake. */
    if (s->cfg->redis_password != NULL) {
        if (s->cfg->redis_username != NULL)
            redisAsyncCommand(ac, on_auth, NULL, "AUTH %s %s",
                              s->cfg->redis_username, s->cfg->redis_password);
        else
            redisAsyncCommand(ac, on_auth, NULL, "AUTH %s",
                              s->cfg->redis_password);
    }
    if (s->cfg->redis_db != 0)
        redisAsyncCommand(ac, on_select, NULL, "SELECT %d", s->cfg->redis_db);
    snprintf(name, sizeof(name), "mjq:%s:%s", s->worker,
             c->queue < 0 ? "cmd" : "take");
    redisAsyncCommand(ac, NULL, NULL, "CLIENT SETNAME %s", name);
    if (c->queue < 0) {
        for (int i = 0; i < SCRIPT_COUNT; i++)
            redisAsyncCommand(ac, on_script_load, (void *)(intptr_t)i,
                              "SCRIPT LOAD %s", script_text[i]);
    }
    redisAsyncCommand(ac, on_ready, NULL, "CLIENT ID");
}

static void connect_conn(struct conn *c)
{
    const struct config *cfg = c->store->cfg;
    redisAsyncContext *ac;

    if (cfg->redis_unix_path != NULL)
        ac = redisAsyncConnectUnix(cfg->redis_unix_path);
    else
        ac = redisAsyncConnect(cfg->redis_host, cfg->redis_port);
    if (ac == NULL || ac->err) {
        if (c->failures == 0 || c->failures % 10 == 0)
            log_warn("redis: cannot connect (%s); retrying",
                     ac != NULL ? ac->errstr : "out of memory");
        if (ac != NULL)
            redisAsyncFree(ac);
        schedule_reconnect(c);
        return;
    }
    ac->data = c;
    c->ac = ac;
    c->doomed = 0;
    redisLibeventAttach(ac, c->store->base);
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
}

static void conn_init(struct store *s, struct conn *c, int queue)
{
    c->store = s;
    c->queue = queue;
    c->retry = evtimer_new(s->base, on_retry_timer, c);
}

struct store *store_new(struct event_base *base, const struct config *cfg,
                        const char *worker_id, int takes,
                        store_notify_fn *on_up, store_notify_fn *on_down,
                        void *ctx)
{
    struct store *s = xcalloc(1, sizeof(*s));

    s->base = base;
    s->cfg = cfg;
    s->worker = xstrdup(worker_id);
    s->on_up = on_up;
    s->on_down = on_down;
    s->ctx = ctx;
    keys_processing(s->processing, KEYS_MAX, cfg->prefix, worker_id);
    keys_events(s->events, KEYS_MAX, cfg->prefix);
    keys_heartbeat(s->heartbeat, KEYS_MAX, cfg->prefix, worker_id);
    keys_heartbeat(s->heartbeat_prefix, KEYS_MAX, cfg->prefix, "");
    keys_workers(s->workers, KEYS_MAX, cfg->prefix);
    s->nqueues = cfg->nqueues;
    s->queue_keys = xcalloc(cfg->nqueues, sizeof(char *));
    s->caps = xcalloc(cfg->nqueues, sizeof(unsigned));
    for (size_t i = 0; i < cfg->nqueues; i++)
        s->caps[i] = UINT_MAX;
    s->stats_keys = xcalloc(cfg->nqueues, sizeof(char *));
    for (size_t i = 0; i < cfg->nqueues; i++) {
        s->queue_keys[i] = xmalloc(KEYS_MAX);
        keys_queue(s->queue_keys[i], KEYS_MAX, cfg->prefix, cfg->queues[i]);
        s->stats_keys[i] = xmalloc(KEYS_MAX);
        keys_stats_taken(s->stats_keys[i], KEYS_MAX, cfg->prefix,
                         cfg->queues[i]);
    }
    conn_init(s, &s->cmd, -1);
    s->blocking = xcalloc(cfg->nqueues, sizeof(struct conn));
    for (size_t i = 0; i < cfg->nqueues; i++)
        conn_init(s, &s->blocking[i], (int)i);
    connect_conn(&s->cmd);
    if (takes)
        for (size_t i = 0; i < cfg->nqueues; i++)
            connect_conn(&s->blocking[i]);
    return s;
}

static void conn_close(struct conn *c)
{
    if (c->ac != NULL) {
        redisAsyncContext *ac = c->ac;

        c->ac = NULL;
        c->up = 0;
        ac->data = NULL; /* on_disconnect must not touch c any more */
        redisAsyncFree(ac);
    }
    if (c->retry != NULL)
        event_free(c->retry);
    c->retry = NULL;
}

void store_free(struct store *s)
{
    if (s == NULL)
        return;
    s->freeing = 1;
    conn_close(&s->cmd);
    for (size_t i = 0; i < s->nqueues; i++) {
        conn_close(&s->blocking[i]);
        free(s->queue_keys[i]);
        free(s->stats_keys[i]);
    }
    free(s->blocking);
    free(s->queue_keys);
    free(s->caps);
    free(s->stats_keys);
    free(s->worker);
    free(s);
}

int store_is_up(const struct store *s)
{
    return s->cmd.up;
}

unsigned long long store_commands(const struct store *s)
{
    return s->commands;
}

/* A pending callback: what to call and with what. */
struct pending {
    struct store *store;
    union {
        store_take_fn *take;
        store_claim_fn *claim;
        store_done_fn *done;
        store_flag_fn *flag;
        store_sample_fn *sample;
    } cb;
    void *ctx;
};

static struct pending *pending_new(struct store *s, void *cb, void *ctx)
{
    struct pending *p = xmalloc(sizeof(*p));

    p->store = s;
    p->cb.done = (store_done_fn *)cb;
    p->ctx = ctx;
    return p;
}

static int reply_rc(const redisReply *r)
{
    if (r == NULL)
        return -1;
    return r->type == REDIS_REPLY_ERROR ? -2 : 0;
}

/* A NOSCRIPT error means Redis lost our scripts (SCRIPT FLUSH, failover):
 * reconnecting loads them again. */
static void check_noscript(struct store *s, const redisReply *r)
{
    if (r != NULL && r->type == REDIS_REPLY_ERROR &&
        strncmp(r->str, "NOSCRIPT", 8) == 0 && s->cmd.ac != NULL)
        redisAsyncDisconnect(s->cmd.ac);
}

static void deliver_items(store_take_fn *cb, void *ctx, redisReply *r,
                          int queue_fixed)
{
    struct store_item stack[64], *items = stack;
    size_t n = 0;

    if (queue_fixed >= 0) {
        /* A BLMOVE reply: one payload or nil. */
        if (r->type == REDIS_REPLY_STRING) {
            items[0].payload = xmemdup(r->str, r->len);
            items[0].len = r->len;
            items[0].queue = queue_fixed;
            n = 1;
        }
    } else if (r->type == REDIS_REPLY_ARRAY) {
        size_t want = r->elements / 2;

        if (want > sizeof(stack) / sizeof(stack[0]))
            items = xcalloc(want, sizeof(*items));
        for (size_t i = 0; i + 1 < r->elements; i += 2) {
            redisReply *q = r->element[i], *p = r->element[i + 1];

            if (q->type != REDIS_REPLY_INTEGER || p->type != REDIS_REPLY_STRING)
                continue;
            items[n].payload = xmemdup(p->str, p->len);
            items[n].len = p->len;
            items[n].queue = (int)q->integer;
            n++;
        }
    }
    cb(0, items, n, ctx);
    /* Payloads the callback did not steal are freed here. */
    for (size_t i = 0; i < n; i++)
        free(items[i].payload);
    if (items != stack)
        free(items);
}

static void on_take(redisAsyncContext *ac, void *reply, void *priv)
{
    struct pending *p = priv;
    redisReply *r = reply;

    (void)ac;
    p->store->takes_pending--;
    if (r == NULL)
        p->store->maybe_orphans = 1;
    if (reply_rc(r) != 0) {
        if (r != NULL)
            log_error("redis: take failed: %s", r->str);
        check_noscript(p->store, r);
        p->cb.take(reply_rc(r), NULL, 0, p->ctx);
    } else {
        deliver_items(p->cb.take, p->ctx, r, -1);
    }
    free(p);
}

int store_take(struct store *s, unsigned max, store_take_fn *cb, void *ctx)
{
    struct args a = {0};
    struct pending *p;

    if (max > 32)
        max = 32; /* bounds the stack array and one reply's size */
    args_add(&a, "EVALSHA");
    args_add(&a, s->sha[SCRIPT_TAKE]);
    args_addll(&a, 1 + 2 * (long long)s->cfg->nqueues);
    args_add(&a, s->processing);
    for (size_t i = 0; i < s->cfg->nqueues; i++)
        args_add(&a, s->queue_keys[i]);
    for (size_t i = 0; i < s->cfg->nqueues; i++)
        args_add(&a, s->stats_keys[i]);
    args_addll(&a, max);
    for (size_t i = 0; i < s->cfg->nqueues; i++)
        args_addll(&a, s->caps[i] < max ? s->caps[i] : max);
    p = pending_new(s, cb, ctx);
    if (send_args(&s->cmd, on_take, p, &a) != 0) {
        free(p);
        return -1;
    }
    s->takes_pending++;
    return 0;
}

void store_set_cap(struct store *s, size_t queue, unsigned cap)
{
    struct conn *c = &s->blocking[queue];

    s->caps[queue] = cap;
    if (cap == 0 && c->armed) {
        /* A blocking move armed before the pause would take the very job
         * that was just handed back. */
        struct args a = {0};

        args_add(&a, "CLIENT");
        args_add(&a, "UNBLOCK");
        args_addll(&a, c->client_id);
        send_args(&s->cmd, NULL, NULL, &a);
    }
}

unsigned store_cap(const struct store *s, size_t queue)
{
    return s->caps[queue];
}

int store_needs_reconcile(const struct store *s)
{
    return s->maybe_orphans;
}

void store_reconciled(struct store *s)
{
    s->maybe_orphans = 0;
}

int store_waiting(const struct store *s)
{
    for (size_t i = 0; i < s->cfg->nqueues; i++)
        if (s->blocking[i].armed)
            return 1;
    return 0;
}

static void on_list_held(redisAsyncContext *ac, void *reply, void *priv)
{
    struct pending *p = priv;
    redisReply *r = reply;
    struct store_item *items;
    size_t n = 0;

    (void)ac;
    if (reply_rc(r) != 0 || r->type != REDIS_REPLY_ARRAY) {
        p->cb.take(r == NULL ? -1 : -2, NULL, 0, p->ctx);
        free(p);
        return;
    }
    items = xcalloc(r->elements ? r->elements : 1, sizeof(*items));
    for (size_t i = 0; i < r->elements; i++) {
        if (r->element[i]->type != REDIS_REPLY_STRING)
            continue;
        items[n].payload = xmemdup(r->element[i]->str, r->element[i]->len);
        items[n].len = r->element[i]->len;
        items[n].queue = -1;
        n++;
    }
    p->cb.take(0, items, n, p->ctx);
    for (size_t i = 0; i < n; i++)
        free(items[i].payload);
    free(items);
    free(p);
}

int store_list_held(struct store *s, store_take_fn *cb, void *ctx)
{
    struct args a = {0};
    struct pending *p;

    args_add(&a, "LRANGE");
    args_add(&a, s->processing);
    args_add(&a, "0");
    args_add(&a, "-1");
    p = pending_new(s, cb, ctx);
    if (send_args(&s->cmd, on_list_held, p, &a) != 0) {
        free(p);
        return -1;
    }
    return 0;
}

static void on_blocking_take(redisAsyncContext *ac, void *reply, void *priv)
{
    struct conn *c = priv;
    struct store *s = c->store;
    redisReply *r = reply;

    (void)ac;
    c->armed = 0;
    if (r == NULL || s->freeing)
        return; /* connection lost: re-armed after reconnect if wanted */
    if (r->type == REDIS_REPLY_ERROR) {
        log_error("redis: blocking take failed: %s", r->str);
        return;
    }
    if (r->type == REDIS_REPLY_STRING) {
        struct args a = {0};

        /* Counted apart from the move (BLMOVE cannot run in a script):
         * a crash in between leaves the counter one short. */
        args_add(&a, "INCR");
        args_add(&a, s->stats_keys[c->queue]);
        send_args(&s->cmd, NULL, NULL, &a);
        /* Satisfied: the worker re-arms when it still has room. */
        s->wanting = 0;
        if (s->wait_cb != NULL)
            deliver_items(s->wait_cb, s->wait_ctx, r, c->queue);
    } else if (s->wanting) {
        arm_blocking(c); /* timed out with nothing: wait again */
    }
}

static void arm_blocking(struct conn *c)
{
    struct store *s = c->store;
    struct args a = {0};
    char timeout[32];

    if (c->armed || !c->up || s->caps[c->queue] == 0)
        return;
    args_add(&a, "BLMOVE");
    args_add(&a, s->queue_keys[c->queue]);
    args_add(&a, s->processing);
    args_add(&a, "RIGHT");
    args_add(&a, "LEFT");
    /* Bounded by half the heartbeat TTL: a worker silent long enough to be
     * swept (frozen, or cut off) has no blocking move left in Redis that
     * could pull a recovered job back into its list. */
    snprintf(timeout, sizeof(timeout), "%.3f",
             (double)s->cfg->heartbeat_ttl_ms / 2000.0);
    args_add(&a, timeout);
    if (send_args(c, on_blocking_take, c, &a) == 0)
        c->armed = 1;
}

void store_wait(struct store *s, store_take_fn *cb, void *ctx)
{
    s->wait_cb = cb;
    s->wait_ctx = ctx;
    s->wanting = 1;
    for (size_t i = 0; i < s->cfg->nqueues; i++)
        arm_blocking(&s->blocking[i]);
}

void store_wait_cancel(struct store *s)
{
    s->wanting = 0;
    for (size_t i = 0; i < s->cfg->nqueues; i++) {
        struct conn *c = &s->blocking[i];
        struct args a = {0};

        if (!c->armed)
            continue;
        args_add(&a, "CLIENT");
        args_add(&a, "UNBLOCK");
        args_addll(&a, c->client_id);
        send_args(&s->cmd, NULL, NULL, &a);
    }
}

static void on_claim(redisAsyncContext *ac, void *reply, void *priv)
{
    struct pending *p = priv;
    redisReply *r = reply;
    struct store_claim_info info;
    static const char *const kinds[] = {"new",  "mine", "resume",
                                        "done", "busy", "full"};
    int rc = reply_rc(r);

    (void)ac;
    memset(&info, 0, sizeof(info));
    if (rc == 0 && (r->type != REDIS_REPLY_ARRAY || r->elements != 10))
        rc = -2;
    if (rc != 0) {
        if (r != NULL)
            log_error("redis: claim failed: %s",
                      r->type == REDIS_REPLY_ERROR ? r->str : "bad reply");
        check_noscript(p->store, r);
        p->cb.claim(rc, NULL, p->ctx);
        free(p);
        return;
    }
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
        if (r->element[0]->str != NULL &&
            strcmp(r->element[0]->str, kinds[i]) == 0)
            info.kind = (enum store_claim_kind)i;
    info.cancelled = r->element[1]->integer != 0;
    snprintf(info.task_id, sizeof(info.task_id), "%s",
             r->element[2]->str != NULL ? r->element[2]->str : "");
    info.taken_ms =
        r->element[3]->str != NULL ? strtoll(r->element[3]->str, NULL, 10) : 0;
    info.submits =
        r->element[4]->str ? strtol(r->element[4]->str, NULL, 10) : 0;
    info.polls = r->element[5]->str ? strtol(r->element[5]->str, NULL, 10) : 0;
    info.recoveries =
        r->element[6]->str ? strtol(r->element[6]->str, NULL, 10) : 0;
    snprintf(info.owner, sizeof(info.owner), "%s",
             r->element[7]->str != NULL ? r->element[7]->str : "");
    snprintf(info.account, sizeof(info.account), "%s",
             r->element[8]->str != NULL ? r->element[8]->str : "");
    snprintf(info.leases, sizeof(info.leases), "%s",
             r->element[9]->str != NULL ? r->element[9]->str : "");
    p->cb.claim(0, &info, p->ctx);
    free(p);
}

int store_claim(struct store *s, const struct store_claim_req *req,
                store_claim_fn *cb, void *ctx)
{
    char job[KEYS_MAX], cancel[KEYS_MAX];
    struct args a = {0};
    struct pending *p;
    size_t n = req->ncands;

    if (n > (MAX_ARGS - 16) / 4)
        n = (MAX_ARGS - 16) / 4; /* bounded: accounts are few */
    keys_job(job, sizeof(job), s->cfg->prefix, req->id);
    keys_cancel(cancel, sizeof(cancel), s->cfg->prefix, req->id);
    args_add(&a, "EVALSHA");
    args_add(&a, s->sha[SCRIPT_CLAIM]);
    args_add(&a, "2");
    args_add(&a, job);
    args_add(&a, cancel);
    args_add(&a, s->worker);
    args_addll(&a, clock_wall_ms());
    args_add(&a, s->cfg->prefix);
    args_add(&a, req->queue);
    args_add(&a, req->action);
    args_add(&a, req->id);
    args_add(&a, req->parent_task != NULL ? req->parent_task : "");
    args_addll(&a, (long long)n);
    for (size_t i = 0; i < n; i++) {
        args_add(&a, req->cands[i].account);
        args_addll(&a, req->cands[i].limit);
        args_add(&a, req->mode);
        args_addll(&a, req->cands[i].mode_limit);
    }
    p = pending_new(s, cb, ctx);
    if (send_args(&s->cmd, on_claim, p, &a) != 0) {
        free(p);
        return -1;
    }
    return 0;
}

static void on_done(redisAsyncContext *ac, void *reply, void *priv)
{
    struct pending *p = priv;
    redisReply *r = reply;
    int rc = reply_rc(r);

    (void)ac;
    /* EXEC answers nil when the transaction was discarded, and an array
     * holding the errors of commands that failed inside it. */
    if (rc == 0 && r->type == REDIS_REPLY_NIL)
        rc = -2;
    if (rc == 0 && r->type == REDIS_REPLY_ARRAY)
        for (size_t i = 0; i < r->elements; i++)
            if (r->element[i]->type == REDIS_REPLY_ERROR) {
                log_error("redis: command in transaction failed: %s",
                          r->element[i]->str);
                rc = -2;
            }
    if (rc == -2 && r->type == REDIS_REPLY_ERROR)
        log_error("redis: %s", r->str);
    if (p->cb.done != NULL)
        p->cb.done(rc, p->ctx);
    free(p);
}

static int send_done(struct store *s, const struct args *a, store_done_fn *cb,
                     void *ctx)
{
    struct pending *p = pending_new(s, cb, ctx);

    if (send_args(&s->cmd, on_done, p, a) != 0) {
        free(p);
        return -1;
    }
    return 0;
}

static int send_plain(struct store *s, const struct args *a)
{
    return send_args(&s->cmd, NULL, NULL, a);
}

/* Event arguments: XADD events MAXLEN ~ N * type T ts MS worker W [id I]. */
static void event_args(struct store *s, struct args *a, const char *type,
                       const char *id)
{
    args_add(a, "XADD");
    args_add(a, s->events);
    args_add(a, "MAXLEN");
    args_add(a, "~");
    args_addll(a, s->cfg->events_maxlen);
    args_add(a, "*");
    args_add(a, "type");
    args_add(a, type);
    args_add(a, "ts");
    args_addll(a, clock_wall_ms());
    args_add(a, "worker");
    args_add(a, s->worker);
    if (id != NULL) {
        args_add(a, "id");
        args_add(a, id);
    }
}

void store_event(struct store *s, const char *type, const char *id,
                 const char *const *fields, size_t nfields)
{
    struct args a = {0};

    event_args(s, &a, type, id);
    for (size_t i = 0; i < nfields; i++) {
        args_add(&a, fields[2 * i]);
        args_add(&a, fields[2 * i + 1]);
    }
    send_args(&s->cmd, NULL, NULL, &a);
}

int store_submitted(struct store *s, const char *id, const char *task_id,
                    long submits, const char *account, store_done_fn *cb,
                    void *ctx)
{
    char job[KEYS_MAX];
    struct args a = {0};
    const char *fields[] = {"task_id", task_id};

    if (account != NULL) {
        char key[KEYS_MAX];

        keys_task_owner(key, sizeof(key), s->cfg->prefix, task_id);
        args_add(&a, "SET");
        args_add(&a, key);
        args_add(&a, account);
        args_add(&a, "EX");
        args_addll(&a, s->cfg->task_owner_ttl_s);
        send_plain(s, &a);
        memset(&a, 0, sizeof(a));
    }

    keys_job(job, sizeof(job), s->cfg->prefix, id);
    args_add(&a, "HSET");
    args_add(&a, job);
    args_add(&a, "task_id");
    args_add(&a, task_id);
    args_add(&a, "state");
    args_add(&a, "submitted");
    args_add(&a, "submits");
    args_addll(&a, submits);
    if (send_done(s, &a, cb, ctx) != 0)
        return -1;
    store_event(s, "submitted", id, fields, 1);
    return 0;
}

static void on_flag(redisAsyncContext *ac, void *reply, void *priv)
{
    struct pending *p = priv;
    redisReply *r = reply;
    int rc = reply_rc(r);

    (void)ac;
    p->cb.flag(rc,
               rc == 0 &&
                   ((r->type == REDIS_REPLY_INTEGER && r->integer != 0) ||
                    r->type == REDIS_REPLY_STRING),
               p->ctx);
    free(p);
}

static int send_flag(struct store *s, const struct args *a, store_flag_fn *cb,
                     void *ctx)
{
    struct pending *p = pending_new(s, cb, ctx);

    if (send_args(&s->cmd, on_flag, p, a) != 0) {
        free(p);
        return -1;
    }
    return 0;
}

void store_on_lapse(struct store *s, store_notify_fn *cb)
{
    s->on_lapse = cb;
}

static void on_owner(redisAsyncContext *ac, void *reply, void *priv)
{
    struct pending *p = priv;
    redisReply *r = reply;
    int rc = reply_rc(r);

    (void)ac;
    /* set = someone else owns or finished the record. */
    p->cb.flag(rc,
               rc == 0 && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
                   ((r->element[0]->type == REDIS_REPLY_STRING &&
                     strcmp(r->element[0]->str, p->store->worker) != 0) ||
                    (r->element[1]->type == REDIS_REPLY_STRING &&
                     strcmp(r->element[1]->str, "done") == 0)),
               p->ctx);
    free(p);
}

int store_taken_over(struct store *s, const char *id, store_flag_fn *cb,
                     void *ctx)
{
    char job[KEYS_MAX];
    struct args a = {0};
    struct pending *p;

    keys_job(job, sizeof(job), s->cfg->prefix, id);
    args_add(&a, "HMGET");
    args_add(&a, job);
    args_add(&a, "owner");
    args_add(&a, "state");
    p = pending_new(s, cb, ctx);
    if (send_args(&s->cmd, on_owner, p, &a) != 0) {
        free(p);
        return -1;
    }
    return 0;
}

int store_cancel_requested(struct store *s, const char *id, store_flag_fn *cb,
                           void *ctx)
{
    char key[KEYS_MAX];
    struct args a = {0};

    keys_cancel(key, sizeof(key), s->cfg->prefix, id);
    args_add(&a, "EXISTS");
    args_add(&a, key);
    return send_flag(s, &a, cb, ctx);
}

/* LPOS answers the element's index (0 is the newest) or nil. */
static void on_lpos(redisAsyncContext *ac, void *reply, void *priv)
{
    struct pending *p = priv;
    redisReply *r = reply;
    int rc = reply_rc(r);

    (void)ac;
    p->cb.flag(rc, rc == 0 && r->type == REDIS_REPLY_INTEGER, p->ctx);
    free(p);
}

int store_still_held(struct store *s, const char *payload, size_t len,
                     store_flag_fn *cb, void *ctx)
{
    struct args a = {0};
    struct pending *p;

    args_add(&a, "LPOS");
    args_add(&a, s->processing);
    args_addn(&a, payload, len);
    p = pending_new(s, cb, ctx);
    if (send_args(&s->cmd, on_lpos, p, &a) != 0) {
        free(p);
        return -1;
    }
    return 0;
}

static void field(struct store_field *f, size_t *n, const char *name,
                  const char *value)
{
    f[*n].name = name;
    f[*n].value = value;
    f[*n].len = strlen(value);
    (*n)++;
}

static void field_num(struct store_field *f, size_t *n, const char *name,
                      long long value)
{
    int len = snprintf(f[*n].num, sizeof(f[*n].num), "%lld", value);

    f[*n].name = name;
    f[*n].value = f[*n].num;
    f[*n].len = (size_t)len;
    (*n)++;
}

size_t store_result_fields(const struct store_result *r, const char *worker,
                           struct store_field *f, size_t max)
{
    size_t n = 0;
    const char *optional[][2] = {
        {"task_id", r->task_id},         {"image_url", r->image_url},
        {"fail_reason", r->fail_reason}, {"task", r->task},
        {"buttons", r->buttons},         {"meta", r->meta},
    };

    if (max < STORE_RESULT_FIELDS)
        return 0;
    field(f, &n, "id", r->id != NULL ? r->id : "");
    field(f, &n, "status", r->status);
    field(f, &n, "action", r->action != NULL ? r->action : "");
    for (size_t i = 0; i < sizeof(optional) / sizeof(optional[0]); i++)
        if (optional[i][1] != NULL && optional[i][1][0] != '\0')
            field(f, &n, optional[i][0], optional[i][1]);
    field(f, &n, "worker", worker);
    field_num(f, &n, "started_ms", r->started_ms);
    field_num(f, &n, "finished_ms", r->finished_ms);
    field_num(f, &n, "submits", r->submits);
    field_num(f, &n, "polls", r->polls);
    return n;
}

/* The finish and hand-back scripts answer 1 (done), 0 (the payload had
 * left the processing list: nothing was done) or 2 (finish: the result
 * stream's key is not a stream, nothing was done); callbacks get 0, 1 or
 * 2. */
static void on_script_done(redisAsyncContext *ac, void *reply, void *priv)
{
    struct pending *p = priv;
    redisReply *r = reply;
    int rc = reply_rc(r);

    (void)ac;
    if (rc == 0 && r->type != REDIS_REPLY_INTEGER)
        rc = -2;
    if (rc == -2) {
        log_error("redis: %s",
                  r->type == REDIS_REPLY_ERROR ? r->str : "bad script reply");
        check_noscript(p->store, r);
    }
    if (rc == 0 && r->integer != 1)
        rc = r->integer == 0 ? 1 : 2;
    if (p->cb.done != NULL)
        p->cb.done(rc, p->ctx);
    free(p);
}

static int send_script(struct store *s, const struct args *a, store_done_fn *cb,
                       void *ctx)
{
    struct pending *p = pending_new(s, cb, ctx);

    if (send_args(&s->cmd, on_script_done, p, a) != 0) {
        free(p);
        return -1;
    }
    return 0;
}

int store_finish(struct store *s, const struct store_result *r,
                 store_done_fn *cb, void *ctx)
{
    char results[KEYS_MAX], job[KEYS_MAX], dead[KEYS_MAX];
    /* Lives until the command is sent: its numbers are formatted in it. */
    struct store_field f[STORE_RESULT_FIELDS];
    size_t nfields;
    struct args a = {0};

    if (!s->cmd.up)
        return -1;
    keys_results(results, sizeof(results), s->cfg->prefix, r->reply_to);
    keys_job(job, sizeof(job), s->cfg->prefix, r->id != NULL ? r->id : "");
    keys_dead(dead, sizeof(dead), s->cfg->prefix);
    args_add(&a, "EVALSHA");
    args_add(&a, s->sha[SCRIPT_FINISH]);
    args_add(&a, "5");
    args_add(&a, results);
    args_add(&a, s->processing);
    args_add(&a, job);
    args_add(&a, s->events);
    args_add(&a, dead);
    args_add(&a, s->worker);
    args_addn(&a, r->payload, r->payload_len);
    args_add(&a, r->mark_done ? "1" : "0");
    args_add(&a, r->status);
    args_addll(&a, r->finished_ms);
    args_add(&a, r->task_id != NULL ? r->task_id : "");
    args_addll(&a, s->cfg->dedup_window_s);
    args_add(&a, r->leases != NULL ? r->leases : "");
    args_add(&a, r->dead ? "1" : "0");
    args_add(&a, r->fail_reason != NULL ? r->fail_reason : "");
    args_addll(&a, s->cfg->results_maxlen);
    args_addll(&a, s->cfg->events_maxlen);
    args_add(&a, r->id != NULL ? r->id : "");
    nfields = store_result_fields(r, s->worker, f, STORE_RESULT_FIELDS);
    for (size_t i = 0; i < nfields; i++) {
        args_add(&a, f[i].name);
        args_addn(&a, f[i].value, f[i].len);
    }
    return send_script(s, &a, cb, ctx);
}

int store_handback(struct store *s, const struct store_handback_req *req,
                   store_done_fn *cb, void *ctx)
{
    char job[KEYS_MAX];
    struct args a = {0};

    if (!s->cmd.up)
        return -1;
    keys_job(job, sizeof(job), s->cfg->prefix, req->id);
    args_add(&a, "EVALSHA");
    args_add(&a, s->sha[SCRIPT_HANDBACK]);
    args_add(&a, "4");
    args_add(&a, s->processing);
    args_add(&a, s->queue_keys[req->queue]);
    args_add(&a, job);
    args_add(&a, s->stats_keys[req->queue]);
    args_add(&a, s->worker);
    args_addn(&a, req->payload, req->len);
    args_add(&a, req->claimed ? "1" : "0");
    args_add(&a, req->task_id != NULL ? req->task_id : "");
    args_addll(&a, req->submits);
    args_addll(&a, req->polls);
    args_add(&a, req->leases != NULL ? req->leases : "");
    args_add(&a, req->id);
    return send_script(s, &a, cb, ctx);
}

static void on_heartbeat(redisAsyncContext *ac, void *reply, void *priv)
{
    struct store *s = priv;
    redisReply *r = reply;

    (void)ac;
    if (r == NULL)
        return;
    s->hb_sent_ms = 0;
    if (r->type == REDIS_REPLY_ERROR)
        return;
    /* SET ... GET answers the previous value: nil once we had a
     * heartbeat means it expired, and a sweep may have given our jobs
     * to other workers. */
    if (r->type == REDIS_REPLY_NIL && s->hb_alive && s->on_lapse != NULL)
        s->on_lapse(s->ctx);
    s->hb_alive = 1;
}

/*
 * hiredis 0.14 has no command timeout: a Redis that stops answering
 * without closing the socket would hold every command forever. Replies
 * come in order, so an unanswered heartbeat older than the heartbeat TTL
 * means the connection is stuck: shut the socket down, which hiredis sees
 * as a disconnect, and reconnect.
 */
static int watchdog(struct store *s)
{
    int64_t now = clock_mono_ms();

    if (s->hb_sent_ms == 0 || s->cmd.ac == NULL ||
        now - s->hb_sent_ms < s->cfg->heartbeat_ttl_ms)
        return 0;
    log_warn("redis: no reply for %lld ms: dropping the connection",
             (long long)(now - s->hb_sent_ms));
    s->hb_sent_ms = 0;
    shutdown(s->cmd.ac->c.fd, SHUT_RDWR);
    return 1;
}

static void on_sweep(redisAsyncContext *ac, void *reply, void *priv)
{
    struct pending *p = priv;
    redisReply *r = reply;

    (void)ac;
    if (reply_rc(r) == 0 && r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
        r->element[0]->type == REDIS_REPLY_INTEGER &&
        r->element[0]->integer < 0) {
        /* Another supervisor holds the sweep lock for this period. */
        if (p->cb.done != NULL)
            p->cb.done(1, p->ctx);
    } else if (reply_rc(r) == 0 && r->type == REDIS_REPLY_ARRAY &&
               r->elements > 0 && r->element[0]->type == REDIS_REPLY_INTEGER) {
        for (size_t i = 1; i + 1 < r->elements; i += 2)
            if (r->element[i]->type == REDIS_REPLY_STRING &&
                r->element[i + 1]->type == REDIS_REPLY_INTEGER)
                log_warn("worker %s is gone (no heartbeat): %lld job%s back "
                         "in the queues",
                         r->element[i]->str, r->element[i + 1]->integer,
                         r->element[i + 1]->integer == 1 ? "" : "s");
        if (r->element[0]->integer > 0)
            log_warn("recovered %lld jobs from dead workers",
                     r->element[0]->integer);
        if (p->cb.done != NULL)
            p->cb.done((int)r->element[0]->integer, p->ctx);
    } else {
        if (r != NULL && r->type == REDIS_REPLY_ERROR)
            log_error("redis: sweep failed: %s", r->str);
        check_noscript(p->store, r);
        if (p->cb.done != NULL)
            p->cb.done(r == NULL ? -1 : -2, p->ctx);
    }
    free(p);
}

int store_sweep(struct store *s, store_done_fn *cb, void *ctx)
{
    struct args a = {0};
    struct pending *p;

    args_add(&a, "EVALSHA");
    args_add(&a, s->sha[SCRIPT_SWEEP]);
    args_add(&a, "0");
    args_add(&a, s->cfg->prefix);
    args_add(&a, s->cfg->queues[0]);
    args_add(&a, s->worker);
    /* A little under the period, so the holder's next sweep finds the
     * lock free despite timer drift. */
    args_addll(&a, s->cfg->sweep_interval_ms - s->cfg->sweep_interval_ms / 10);
    p = pending_new(s, cb, ctx);
    if (send_args(&s->cmd, on_sweep, p, &a) != 0) {
        free(p);
        return -1;
    }
    return 0;
}

void store_heartbeat(struct store *s, const char *info)
{
    struct args a = {0};

    if (watchdog(s) || s->hb_sent_ms != 0)
        return;

    args_add(&a, "SET");
    args_add(&a, s->heartbeat);
    args_add(&a, info);
    args_add(&a, "PX");
    args_addll(&a, s->cfg->heartbeat_ttl_ms);
    args_add(&a, "GET");
    if (send_args(&s->cmd, on_heartbeat, s, &a) == 0)
        s->hb_sent_ms = clock_mono_ms();
    /* The registry the sweep walks: a worker stays in it until the sweep
     * has seen its heartbeat gone and emptied its processing list. */
    memset(&a, 0, sizeof(a));
    args_add(&a, "SADD");
    args_add(&a, s->workers);
    args_add(&a, s->worker);
    send_plain(s, &a);
}

void store_retire(struct store *s, store_done_fn *cb, void *ctx)
{
    struct args a = {0};

    args_add(&a, "DEL");
    args_add(&a, s->heartbeat);
    if (send_done(s, &a, cb, ctx) != 0 && cb != NULL)
        cb(-1, ctx);
}

void store_publish_accounts(struct store *s)
{
    static const char *const modes[MODE_COUNT] = {"default", "fast", "relax",
                                                  "turbo"};
    char key[KEYS_MAX];

    keys_accounts(key, sizeof(key), s->cfg->prefix);
    for (size_t i = 0; i < s->cfg->naccounts; i++) {
        const struct account_config *a = &s->cfg->accounts[i];
        struct args args = {0};
        char json[512];
        int n = snprintf(json, sizeof(json), "{\"modes\":[");

        for (int m = 0, k = 0; m < MODE_COUNT; m++)
            if (a->modes & (1u << m))
                n += snprintf(json + n, sizeof(json) - (size_t)n, "%s\"%s\"",
                              k++ ? "," : "", modes[m]);
        n += snprintf(json + n, sizeof(json) - (size_t)n,
                      "],\"max_in_flight\":%d,\"mode_limits\":{",
                      a->max_in_flight);
        for (int m = 0; m < MODE_COUNT; m++)
            n += snprintf(json + n, sizeof(json) - (size_t)n, "%s\"%s\":%d",
                          m ? "," : "", modes[m], a->mode_limit[m]);
        snprintf(json + n, sizeof(json) - (size_t)n,
                 "},\"batch_fetch\":%s,\"min_poll_interval_ms\":%ld}",
                 a->batch_fetch ? "true" : "false", a->min_poll_interval_ms);
        args_add(&args, "HSET");
        args_add(&args, key);
        args_add(&args, a->name);
        args_add(&args, json);
        send_plain(s, &args);
    }
}

int store_stats_finished(struct store *s, long long minute,
                         const char *const *names,
                         const unsigned long long *counts, size_t n)
{
    char key[KEYS_MAX];
    struct args a = {0};

    if (!s->cmd.up)
        return -1;
    keys_stats_finished(key, sizeof(key), s->cfg->prefix, minute);
    for (size_t i = 0; i < n; i++) {
        if (counts[i] == 0)
            continue;
        memset(&a, 0, sizeof(a));
        args_add(&a, "HINCRBY");
        args_add(&a, key);
        args_add(&a, names[i]);
        args_addll(&a, (long long)counts[i]);
        send_plain(s, &a);
    }
    memset(&a, 0, sizeof(a));
    args_add(&a, "EXPIRE");
    args_add(&a, key);
    args_add(&a, "7200");
    send_plain(s, &a);
    return 0;
}

static void on_sample(redisAsyncContext *ac, void *reply, void *priv)
{
    struct pending *p = priv;
    redisReply *r = reply;
    long long *taken, *depth;
    size_t n;
    int rc = reply_rc(r);

    (void)ac;
    if (rc == 0 && (r->type != REDIS_REPLY_ARRAY || r->elements % 2 != 0))
        rc = -2;
    if (rc != 0) {
        p->cb.sample(rc, NULL, NULL, 0, p->ctx);
        free(p);
        return;
    }
    n = r->elements / 2;
    taken = xcalloc(2 * n + 1, sizeof(long long));
    depth = taken + n;
    for (size_t i = 0; i < n; i++) {
        const redisReply *t = r->element[2 * i], *d = r->element[2 * i + 1];

        if (t->type == REDIS_REPLY_STRING)
            taken[i] = strtoll(t->str, NULL, 10);
        if (d->type == REDIS_REPLY_INTEGER)
            depth[i] = d->integer;
    }
    p->cb.sample(0, taken, depth, n, p->ctx);
    free(taken);
    free(p);
}

int store_sample_queues(struct store *s, char *const *queues, size_t n,
                        store_sample_fn *cb, void *ctx)
{
    char key[KEYS_MAX];
    struct args a = {0};
    struct pending *p;

    if (!s->cmd.up)
        return -1;
    args_add(&a, "MULTI");
    send_plain(s, &a);
    /* hiredis formats each command at once, so one key buffer serves. */
    for (size_t i = 0; i < n; i++) {
        memset(&a, 0, sizeof(a));
        keys_stats_taken(key, sizeof(key), s->cfg->prefix, queues[i]);
        args_add(&a, "GET");
        args_add(&a, key);
        send_plain(s, &a);
        memset(&a, 0, sizeof(a));
        keys_queue(key, sizeof(key), s->cfg->prefix, queues[i]);
        args_add(&a, "LLEN");
        args_add(&a, key);
        send_plain(s, &a);
    }
    memset(&a, 0, sizeof(a));
    args_add(&a, "EXEC");
    p = pending_new(s, cb, ctx);
    if (send_args(&s->cmd, on_sample, p, &a) != 0) {
        free(p);
        return -1;
    }
    return 0;
}
