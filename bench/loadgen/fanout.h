/*
 * The --fanout mode of loadgen.c, included by it (it uses loadgen's
 * connection machinery: conns, flush, run_loop, lat_add).
 *
 * conns[0..N-1] are subscribers (path cfg.sub_path), conns[N] is the
 * publisher (cfg.pub_path, on --pub-port when given: a second server that
 * relays to the first, e.g. through Redis). The server under test publishes
 * every message it receives on the publisher's connection to every
 * subscriber.
 *
 * Every message is binary, cfg.size bytes: bytes 0-7 are its sequence number
 * (little endian), the rest a pattern made from the sequence number, so a
 * subscriber checks every byte it receives against what was sent.
 *
 * 1. Priming: a message with sequence number 2^64-1 is sent every 100 ms
 *    until every subscriber has one, so every subscription is registered on
 *    the server before the measured messages start (a server may run its
 *    handler after the client has seen the 101).
 * 2. Messages 0, 1, 2, ... follow, at most cfg.window of them incomplete at a
 *    time: a message is complete when all N subscribers have it, and each
 *    completion queues the next message (a closed loop, so every server runs
 *    saturated with the same number of messages in flight).
 *    Full-delivery latency: from queueing a message on the publisher's
 *    connection to its arrival at the last subscriber.
 * 3. After the measured window, publishing stops, the messages in flight
 *    drain, and every subscriber must have had every message sent.
 *
 * Checked on every delivery: binary opcode and length, then the sequence
 * number against the next one that subscriber expects (a gap counts its size
 * as "lost", an older one is a "duplicate"), then every payload byte ("torn").
 * After the drain: messages sent that a subscriber never got ("missing").
 * A data message on the publisher's own connection is "stray".
 */
#define PRIME_SEQ UINT64_MAX

static int run_loop(double seconds, bool (*until)(void));
static void open_all(double timeout);
static void close_all(double timeout);
static double server_cpu_s(void);
static double cpu_s(void);

static uint64_t f_next, f_oldest;   /* next sequence number to send; oldest incomplete */
static uint32_t f_mask;             /* rings below hold f_mask + 1 >= cfg.window entries */
static uint32_t *f_count;           /* deliveries of each message in flight */
static uint8_t **f_payload;         /* payload of each message in flight */
static uint64_t *f_sent_at;         /* when each message in flight was queued */
static uint8_t *f_prime_payload;
static uint64_t f_subscribers, f_primed, f_deliveries, f_completed;
static uint64_t f_lost, f_torn, f_dup, f_stray, f_missing;
static bool f_publishing;

static conn_t *fanout_publisher(void) { return &conns[nconns - 1]; }

static void fanout_fill(uint8_t *p, uint64_t seq) {
  for (int i = 0; i < 8; i++) p[i] = (uint8_t)(seq >> (8 * i));
  uint32_t x = (uint32_t)(seq * 2654435761u) | 1u;
  for (uint64_t i = 8; i < cfg.size; i++) {
    x ^= x << 13; x ^= x >> 17; x ^= x << 5;
    p[i] = (uint8_t)x;
  }
}

/* Appends one masked frame to the publisher's outgoing buffer. */
static void fanout_queue(uint64_t seq, uint64_t now) {
  conn_t *c = fanout_publisher();
  uint8_t *payload = f_prime_payload;
  if (seq != PRIME_SEQ) {
    uint32_t slot = (uint32_t)seq & f_mask;
    payload = f_payload[slot];
    fanout_fill(payload, seq);
    f_count[slot] = 0;
    f_sent_at[slot] = now;
  }
  uint64_t need = c->out_len + cfg.size + 14;
  if (need > c->out_cap) {
    if (c->out_off) { /* drop what was sent before growing */
      memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
      c->out_len -= c->out_off; c->out_off = 0;
      need = c->out_len + cfg.size + 14;
    }
    if (need > c->out_cap) {
      c->out_cap = need * 2;
      c->out = realloc(c->out, c->out_cap);
      if (!c->out) die("realloc publisher buffer");
    }
  }
  c->out_len += build_client_frame(c->out + c->out_len, 2, payload, cfg.size, 0x5bd1e995u ^ (uint32_t)seq);
}

/* Completes the oldest messages every subscriber has, and tops the window up. */
static void fanout_advance(uint64_t now) {
  bool queued = false;
  while (f_oldest < f_next && f_count[f_oldest & f_mask] == f_subscribers) {
    lat_add(now - f_sent_at[f_oldest & f_mask]);
    if (measuring) f_completed++;
    f_oldest++;
  }
  while (f_publishing && f_next - f_oldest < (uint64_t)cfg.window) { fanout_queue(f_next++, now); queued = true; }
  if (queued) flush(fanout_publisher());
}

static void fanout_on_message(conn_t *c, int op, uint64_t len, uint64_t now) {
  if (c == fanout_publisher()) { f_stray++; return; }
  if (op != 2 || len != cfg.size) {
    if (f_torn++ < 5) fprintf(stderr, "subscriber %d: expected a binary message of %llu bytes, found opcode %d, %llu bytes\n",
                              c->idx, (unsigned long long)cfg.size, op, (unsigned long long)len);
    return;
  }
  uint64_t seq = 0;
  for (int i = 7; i >= 0; i--) seq = seq << 8 | c->mbuf[i];
  if (seq == PRIME_SEQ) {
    if (memcmp(c->mbuf, f_prime_payload, cfg.size) != 0) f_torn++;
    else if (c->expect != 0) f_dup++; /* priming after measured messages: reordered */
    else if (!c->primed) { c->primed = true; f_primed++; }
    return;
  }
  if (seq >= f_next) {
    if (f_torn++ < 5) fprintf(stderr, "subscriber %d: sequence number %llu was never sent\n", c->idx, (unsigned long long)seq);
    return;
  }
  if (seq < c->expect || seq < f_oldest) { f_dup++; return; }
  if (seq > c->expect) {
    if (f_lost == 0) fprintf(stderr, "subscriber %d: expected message %llu, found %llu\n", c->idx,
                             (unsigned long long)c->expect, (unsigned long long)seq);
    f_lost += seq - c->expect;
  }
  c->expect = seq + 1;
  if (memcmp(c->mbuf, f_payload[seq & f_mask], cfg.size) != 0) {
    if (f_torn++ < 5) fprintf(stderr, "subscriber %d: message %llu has other bytes than were sent\n", c->idx, (unsigned long long)seq);
    return;
  }
  if (measuring) f_deliveries++;
  if (++f_count[seq & f_mask] == f_subscribers && seq == f_oldest) fanout_advance(now);
}

static bool fanout_all_primed(void) { return f_primed >= f_subscribers; }
static bool fanout_drained(void) { return f_oldest == f_next; }

static int fanout_main(void) {
  f_subscribers = (uint64_t)(nconns - 1);
  uint32_t ring = 1;
  while (ring < (uint32_t)cfg.window) ring <<= 1;
  f_mask = ring - 1;
  f_count = calloc(ring, sizeof *f_count);
  f_sent_at = calloc(ring, sizeof *f_sent_at);
  f_payload = calloc(ring, sizeof *f_payload);
  f_prime_payload = malloc(cfg.size);
  if (!f_count || !f_sent_at || !f_payload || !f_prime_payload) die("malloc");
  fanout_fill(f_prime_payload, PRIME_SEQ);
  for (uint32_t i = 0; i < ring; i++) if (!(f_payload[i] = malloc(cfg.size))) die("malloc");
  for (int i = 0; i < nconns - 1; i++) if (!(conns[i].mbuf = malloc(cfg.size))) die("malloc");

  uint64_t t_open = now_ns();
  open_all(cfg.timeout + nconns / 200.0);
  double open_s = (double)(now_ns() - t_open) / 1e9;
  const char *failure = NULL;
  char why[160];
  if (c_open < (uint64_t)nconns) {
    snprintf(why, sizeof why, "only %llu of %d connections opened", (unsigned long long)c_open, nconns);
    failure = why;
  } else {
    uint64_t end = now_ns() + (uint64_t)((cfg.timeout + (double)f_subscribers / 500.0) * 1e9);
    while (!fanout_all_primed() && now_ns() < end && fanout_publisher()->fd >= 0) {
      fanout_queue(PRIME_SEQ, now_ns());
      flush(fanout_publisher());
      run_loop(0.1, fanout_all_primed);
    }
    if (!fanout_all_primed()) {
      snprintf(why, sizeof why, "only %llu of %llu subscribers received a priming message",
               (unsigned long long)f_primed, (unsigned long long)f_subscribers);
      failure = why;
    }
  }
  if (failure) {
    close_all(2.0);
    printf("{\"mode\":\"fanout\",\"subscribers\":%llu,\"size\":%llu,\"error\":\"%s\",\"errors\":%llu}\n",
           (unsigned long long)f_subscribers, (unsigned long long)cfg.size, failure,
           (unsigned long long)(c_errors ? c_errors : 1));
    return 1;
  }

  f_publishing = true;
  fanout_advance(now_ns());
  run_loop(cfg.warmup, NULL);
  measuring = true;
  uint64_t t0 = now_ns(); double cpu0 = cpu_s(), scpu0 = server_cpu_s();
  run_loop(cfg.duration, NULL);
  measuring = false;
  uint64_t t1 = now_ns(); double cpu1 = cpu_s(), scpu1 = server_cpu_s();
  double secs = (double)(t1 - t0) / 1e9;
  f_publishing = false;
  uint64_t drain_start = now_ns();
  run_loop(10.0, fanout_drained);
  double drain_s = (double)(now_ns() - drain_start) / 1e9;
  for (int i = 0; i < nconns - 1; i++)
    if (conns[i].expect < f_next) f_missing += f_next - conns[i].expect;
  long server_peak_kb = cfg.pid ? proc_status_kb(cfg.pid, "VmHWM") : -1;
  uint64_t open_at_end = c_open;
  uint64_t conn_errors = c_errors;
  close_all(3.0);
  qsort(lat, lat_n, sizeof *lat, cmp_u32);
  uint64_t errors = conn_errors + f_lost + f_torn + f_dup + f_stray + f_missing;
  printf("{\"mode\":\"fanout\",\"subscribers\":%llu,\"size\":%llu,\"window\":%d,\"duration_s\":%.3f,\"open_s\":%.3f,"
         "\"completed\":%llu,\"completed_per_s\":%.1f,\"deliveries\":%llu,\"deliveries_per_s\":%.1f,"
         "\"p50_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f,\"sent\":%llu,\"drain_s\":%.3f,"
         "\"lost\":%llu,\"torn\":%llu,\"duplicate\":%llu,\"stray\":%llu,\"missing\":%llu,\"connection_errors\":%llu,"
         "\"open_at_end\":%llu,\"errors\":%llu,\"client_cpu_pct\":%.1f,\"server_cpu_pct\":%.1f,\"server_peak_rss_kb\":%ld}\n",
         (unsigned long long)f_subscribers, (unsigned long long)cfg.size, cfg.window, secs, open_s,
         (unsigned long long)f_completed, (double)f_completed / secs, (unsigned long long)f_deliveries,
         (double)f_deliveries / secs, pct(0.5), pct(0.99), pct(0.999), (unsigned long long)f_next, drain_s,
         (unsigned long long)f_lost, (unsigned long long)f_torn, (unsigned long long)f_dup, (unsigned long long)f_stray,
         (unsigned long long)f_missing, (unsigned long long)conn_errors, (unsigned long long)open_at_end,
         (unsigned long long)errors, 100.0 * (cpu1 - cpu0) / secs, scpu0 < 0 ? -1.0 : 100.0 * (scpu1 - scpu0) / secs,
         server_peak_kb);
  return errors ? 1 : 0;
}
