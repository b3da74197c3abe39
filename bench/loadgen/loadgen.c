/*
 * loadgen: single-threaded epoll WebSocket (and raw TCP) load generator.
 *
 * Modes
 *   (default) ws throughput: K connections, each keeps W messages of S bytes
 *             in flight (pipelined), pre-built masked client frames, parses the
 *             echoed server frames (7/16/64-bit lengths, fragments, ping/close).
 *             Latency = time from queueing a message to its echo completing;
 *             with --window 1 this is the plain round-trip time.
 *   --raw     same workload over plain TCP (no handshake, no framing): a
 *             "message" is S echoed bytes. Used for TCP echo ceilings.
 *   --handshakes  C concurrent loops of: connect, upgrade (verify 101 +
 *             Sec-WebSocket-Accept), send close, await close/EOF, close fd.
 *   --idle N  open N upgraded connections, hold them, report the server's
 *             VmRSS delta (--pid) per connection, then close them.
 *   --fanout N  N subscriber connections (path --sub-path, default /sub) and
 *             one publisher connection (--pub-path, default /pub). The server
 *             under test publishes every message the publisher sends to all
 *             subscribers. See fanout.h for the protocol and what is checked.
 *
 * Output: one JSON line on stdout. Diagnostics on stderr.
 */
#define _GNU_SOURCE
#include "wscommon.h"
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

enum { M_WS, M_RAW, M_HANDSHAKES, M_IDLE, M_FANOUT };
enum { S_FREE, S_CONNECTING, S_HS, S_OPEN, S_CLOSING };

typedef struct conn {
  int fd, state, idx;
  uint64_t t_start;
  /* handshake */
  char hs[4096];
  int hslen, req_off;
  /* outgoing: to_send bytes of the repeated pre-built frame, pos = offset in frame */
  uint64_t to_send, pos;
  uint8_t ctrl[160];
  int ctrl_len, ctrl_off;
  bool want_close, sent_close, got_close, eof, failed;
  /* incoming frame parser */
  uint8_t hdr[14];
  int hdr_have, hdr_need;
  bool in_payload;
  uint64_t payload_left;
  int f_op, f_fin, msg_op;
  uint64_t msg_len;
  uint8_t cpay[125];
  int cpay_len;
  uint64_t raw_partial;
  /* send timestamps of messages in flight (ring) */
  uint64_t *ts;
  uint32_t ts_head, ts_tail, ts_mask;
  /* fanout: the payload of the message being received (cfg.size bytes kept),
     the next sequence number a subscriber expects, whether it got a priming
     message; the publisher's outgoing bytes */
  uint8_t *mbuf;
  uint64_t expect;
  bool primed;
  uint8_t *out;
  uint64_t out_len, out_off, out_cap;
  uint64_t measured; /* echoes in the measured window (fairness) */
} conn_t;

static struct {
  const char *host, *path;
  int port, mode, conns, window, concurrency, pid, text, raw;
  uint64_t size;
  double duration, warmup, hold, timeout;
  const char *sub_path, *pub_path;
  int pub_port; /* fanout: the publisher's server, when not the subscribers' */
} cfg = {"127.0.0.1", "/", 0, M_WS, 1, 1, 8, 0, 0, 0, 64, 5.0, 1.0, 2.0, 10.0, "/sub", "/pub", 0};

static int ep;
static conn_t *conns;
static int nconns;
static uint8_t *sendbuf;
static uint64_t sendbuf_len, flen;
static char req[1024], pubreq[1024];
static int reqlen, pubreqlen;
static char expect_accept[32];
static uint8_t rbuf[1 << 18];

static bool traffic, measuring, stopping;
static uint64_t c_msgs, c_bytes, c_errors, c_hs, c_open;
static uint64_t *lat_unused;
static uint32_t *lat;
static size_t lat_n, lat_cap;
#define LAT_MAX (1u << 24)

static void die(const char *m) { perror(m); exit(2); }

static void lat_add(uint64_t ns) {
  if (!measuring || lat_n >= LAT_MAX) return;
  if (lat_n == lat_cap) {
    lat_cap = lat_cap ? lat_cap * 2 : 1 << 16;
    lat = realloc(lat, lat_cap * sizeof *lat);
    if (!lat) die("realloc");
  }
  lat[lat_n++] = ns > 0xffffffffull ? 0xffffffffu : (uint32_t)ns;
}
static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}
static double pct(double p) {
  if (!lat_n) return -1;
  size_t i = (size_t)(p * (double)(lat_n - 1) + 0.5);
  return lat[i] / 1000.0;
}

/* ---- frame building ---- */
static size_t build_client_frame(uint8_t *out, int op, const uint8_t *payload, uint64_t len, uint32_t maskkey) {
  size_t h = 0;
  out[h++] = 0x80 | (uint8_t)op;
  if (len < 126) out[h++] = 0x80 | (uint8_t)len;
  else if (len < 65536) { out[h++] = 0x80 | 126; out[h++] = len >> 8; out[h++] = len & 255; }
  else { out[h++] = 0x80 | 127; for (int i = 7; i >= 0; i--) out[h++] = (uint8_t)(len >> (8 * i)); }
  uint8_t mk[4] = {maskkey >> 24, maskkey >> 16, maskkey >> 8, maskkey};
  memcpy(out + h, mk, 4); h += 4;
  for (uint64_t i = 0; i < len; i++) out[h + i] = payload[i] ^ mk[i & 3];
  return h + len;
}

static void prepare(void) {
  uint8_t *payload = malloc(cfg.size ? cfg.size : 1);
  uint64_t seed = 0x9E3779B97F4A7C15ull;
  for (uint64_t i = 0; i < cfg.size; i++) {
    seed ^= seed << 13; seed ^= seed >> 7; seed ^= seed << 17;
    payload[i] = cfg.text ? (uint8_t)('a' + (seed % 26)) : (uint8_t)seed;
  }
  uint8_t *frame = malloc(cfg.size + 14);
  if (cfg.raw) { memcpy(frame, payload, cfg.size); flen = cfg.size; }
  else flen = build_client_frame(frame, cfg.text ? 1 : 2, payload, cfg.size, 0x37fa213du);
  uint64_t copies = (uint64_t)cfg.window;
  uint64_t min_copies = ((1 << 18) + flen - 1) / flen;
  if (copies < min_copies) copies = min_copies;
  copies += 1;
  sendbuf_len = copies * flen;
  sendbuf = malloc(sendbuf_len);
  if (!sendbuf) die("malloc sendbuf");
  for (uint64_t i = 0; i < copies; i++) memcpy(sendbuf + i * flen, frame, flen);
  free(frame); free(payload);
  /* handshake key: random 16 bytes, base64 */
  uint8_t k[16]; char key[32];
  for (int i = 0; i < 16; i++) { seed ^= seed << 13; seed ^= seed >> 7; seed ^= seed << 17; k[i] = (uint8_t)(seed ^ now_ns()); }
  base64_encode(k, 16, key);
  ws_accept_for_key(key, strlen(key), expect_accept);
  reqlen = snprintf(req, sizeof req,
                    "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n",
                    cfg.mode == M_FANOUT ? cfg.sub_path : cfg.path, cfg.host, cfg.port, key);
  pubreqlen = snprintf(pubreq, sizeof pubreq,
                       "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                       "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n",
                       cfg.pub_path, cfg.host, cfg.pub_port ? cfg.pub_port : cfg.port, key);
}

/* ---- connection lifecycle ---- */
static void conn_free(conn_t *c) {
  if (c->fd >= 0) { epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL); close(c->fd); }
  c->fd = -1;
  if (c->state >= S_OPEN && c_open) c_open--;
  c->state = S_FREE;
}

static void conn_start(conn_t *c) {
  uint64_t *ts = c->ts; uint32_t mask = c->ts_mask; int idx = c->idx;
  uint8_t *mbuf = c->mbuf, *out = c->out; uint64_t out_cap = c->out_cap;
  memset(c, 0, sizeof *c);
  c->ts = ts; c->ts_mask = mask; c->idx = idx;
  c->mbuf = mbuf; c->out = out; c->out_cap = out_cap;
  c->hdr_need = 2;
  c->t_start = now_ns();
  c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c->fd < 0) die("socket");
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  int port = cfg.mode == M_FANOUT && cfg.pub_port && c->idx == nconns - 1 ? cfg.pub_port : cfg.port;
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  inet_pton(AF_INET, cfg.host, &a.sin_addr);
  c->state = S_CONNECTING;
  struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET | EPOLLRDHUP, .data.ptr = c};
  if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) < 0) die("epoll_ctl");
  if (connect(c->fd, (struct sockaddr *)&a, sizeof a) < 0 && errno != EINPROGRESS) {
    fprintf(stderr, "connect: %s\n", strerror(errno));
    c_errors++;
    conn_free(c);
  }
}

static void issue(conn_t *c, uint64_t now) {
  c->ts[c->ts_head++ & c->ts_mask] = now;
  c->to_send += flen;
}

static void queue_ctrl(conn_t *c, int op, const uint8_t *p, int len) {
  if (c->ctrl_len - c->ctrl_off + len + 6 > (int)sizeof c->ctrl) return; /* drop; never happens in practice */
  if (c->ctrl_off == c->ctrl_len) c->ctrl_off = c->ctrl_len = 0;
  c->ctrl_len += (int)build_client_frame(c->ctrl + c->ctrl_len, op, p, (uint64_t)len, 0x11223344u);
}

static void flush(conn_t *c) {
  if (c->fd < 0 || c->state < S_OPEN) return;
  for (;;) {
    if (c->want_close && c->to_send == 0 && c->ctrl_off == c->ctrl_len) {
      c->want_close = false;
      c->sent_close = true;
      if (cfg.raw) { shutdown(c->fd, SHUT_WR); return; }
      uint8_t code[2] = {0x03, 0xE8}; /* 1000 */
      queue_ctrl(c, 8, code, 2);
    }
    if (c->out_off < c->out_len) { /* fanout publisher: whole frames only */
      ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
      if (n < 0) { if (errno == EAGAIN) return; goto err; }
      c->out_off += (uint64_t)n;
      if (c->out_off == c->out_len) c->out_off = c->out_len = 0;
      continue;
    }
    if (c->ctrl_off < c->ctrl_len && c->pos == 0) {
      ssize_t n = send(c->fd, c->ctrl + c->ctrl_off, (size_t)(c->ctrl_len - c->ctrl_off), MSG_NOSIGNAL);
      if (n < 0) { if (errno == EAGAIN) return; goto err; }
      c->ctrl_off += (int)n;
      continue;
    }
    if (c->to_send == 0) return;
    uint64_t len = sendbuf_len - c->pos;
    if (len > c->to_send) len = c->to_send;
    ssize_t n = send(c->fd, sendbuf + c->pos, len, MSG_NOSIGNAL);
    if (n < 0) { if (errno == EAGAIN) return; goto err; }
    c->to_send -= (uint64_t)n;
    c->pos = (c->pos + (uint64_t)n) % flen;
  }
err:
  if (!stopping) { fprintf(stderr, "send: %s\n", strerror(errno)); c_errors++; }
  c->eof = true;
}

#include "fanout.h"

static void on_message(conn_t *c, int op, uint64_t len, uint64_t now) {
  if (cfg.mode == M_FANOUT) { fanout_on_message(c, op, len, now); return; }
  int want = cfg.text ? 1 : 2;
  if (!cfg.raw && (op != want || len != cfg.size)) {
    if (!stopping) { fprintf(stderr, "unexpected message op=%d len=%llu\n", op, (unsigned long long)len); c_errors++; }
  }
  if (c->ts_tail != c->ts_head) lat_add(now - c->ts[c->ts_tail++ & c->ts_mask]);
  if (measuring) { c_msgs++; c_bytes += len; c->measured++; }
  if (traffic && !stopping && (cfg.mode == M_WS || cfg.mode == M_RAW)) issue(c, now);
}

static void on_frame_done(conn_t *c, uint64_t now) {
  int op = c->f_op;
  if (op >= 8) {
    if (op == 8) c->got_close = true;
    else if (op == 9) queue_ctrl(c, 10, c->cpay, c->cpay_len); /* ping -> pong */
    return;
  }
  if (c->f_fin) on_message(c, c->msg_op, c->msg_len, now);
}

static void parse_ws(conn_t *c, const uint8_t *p, size_t n, uint64_t now) {
  while (n) {
    if (!c->in_payload) {
      while (n && c->hdr_have < c->hdr_need) {
        c->hdr[c->hdr_have++] = *p++; n--;
        if (c->hdr_have == 2) {
          int l7 = c->hdr[1] & 0x7f;
          c->hdr_need = 2 + (l7 == 126 ? 2 : l7 == 127 ? 8 : 0) + ((c->hdr[1] & 0x80) ? 4 : 0);
        }
      }
      if (c->hdr_have < c->hdr_need) return;
      c->f_fin = c->hdr[0] >> 7;
      c->f_op = c->hdr[0] & 15;
      int l7 = c->hdr[1] & 0x7f;
      uint64_t len = (uint64_t)l7;
      if (l7 == 126) len = (uint64_t)c->hdr[2] << 8 | c->hdr[3];
      else if (l7 == 127) { len = 0; for (int i = 0; i < 8; i++) len = len << 8 | c->hdr[2 + i]; }
      if (c->hdr[1] & 0x80) { if (!stopping) c_errors++; } /* server frames must not be masked */
      c->hdr_have = 0; c->hdr_need = 2;
      c->payload_left = len;
      c->cpay_len = 0;
      c->in_payload = true;
      if (c->f_op != 0 && c->f_op < 8) { c->msg_op = c->f_op; c->msg_len = 0; }
    }
    uint64_t take = c->payload_left < n ? c->payload_left : n;
    if (c->f_op >= 8) {
      for (uint64_t i = 0; i < take; i++) if (c->cpay_len < 125) c->cpay[c->cpay_len++] = p[i];
    } else {
      if (c->mbuf && c->msg_len < cfg.size) {
        uint64_t room = cfg.size - c->msg_len;
        memcpy(c->mbuf + c->msg_len, p, take < room ? take : room);
      }
      c->msg_len += take;
    }
    p += take; n -= take;
    c->payload_left -= take;
    if (c->payload_left == 0) { c->in_payload = false; on_frame_done(c, now); }
  }
}

static void parse_raw(conn_t *c, size_t n, uint64_t now) {
  c->raw_partial += n;
  while (c->raw_partial >= cfg.size) { c->raw_partial -= cfg.size; on_message(c, 0, cfg.size, now); }
}

static void on_open(conn_t *c, uint64_t now) {
  c->state = S_OPEN;
  c_open++;
  if (cfg.mode == M_HANDSHAKES) {
    lat_add(now - c->t_start); /* connect -> verified 101 */
    c->want_close = true;
    flush(c);
  } else if (traffic && !stopping) {
    for (int i = 0; i < cfg.window; i++) issue(c, now);
    flush(c);
  }
}

static void hs_read(conn_t *c, const uint8_t *p, size_t n, uint64_t now) {
  size_t room = sizeof c->hs - 1 - (size_t)c->hslen;
  size_t take = n < room ? n : room;
  memcpy(c->hs + c->hslen, p, take);
  int old = c->hslen;
  c->hslen += (int)take;
  c->hs[c->hslen] = 0;
  char *e = strstr(c->hs, "\r\n\r\n");
  if (!e) {
    if (c->hslen >= (int)sizeof c->hs - 1) { fprintf(stderr, "handshake response too large\n"); c_errors++; c->eof = true; c->failed = true; }
    return;
  }
  size_t hlen = (size_t)(e + 4 - c->hs);
  size_t vlen = 0;
  const char *acc = http_header(c->hs, hlen, "Sec-WebSocket-Accept", &vlen);
  if (strncmp(c->hs, "HTTP/1.1 101", 12) != 0 || !acc || vlen != strlen(expect_accept) ||
      memcmp(acc, expect_accept, vlen) != 0) {
    fprintf(stderr, "bad handshake response: %.*s\n", (int)(hlen > 200 ? 200 : hlen), c->hs);
    c_errors++;
    c->eof = true;
    c->failed = true;
    return;
  }
  on_open(c, now);
  size_t used = hlen - (size_t)old; /* bytes of p consumed by the header */
  if (used < n) parse_ws(c, p + used, n - used, now);
}

/* all: read until EAGAIN or EOF. Otherwise a short read ends it: with
   edge-triggered epoll, data that arrives later raises a new event, and a
   read that returns less than asked has emptied the socket (one syscall
   instead of two per wakeup). A hang-up must be read to the end: its event
   comes only once. */
static void on_readable(conn_t *c, bool all) {
  for (;;) {
    ssize_t n = read(c->fd, rbuf, sizeof rbuf);
    if (n == 0) { c->eof = true; return; }
    if (n < 0) {
      if (errno == EAGAIN) return;
      if (!stopping && !c->sent_close) { fprintf(stderr, "read: %s\n", strerror(errno)); c_errors++; c->failed = true; }
      c->eof = true;
      return;
    }
    uint64_t now = now_ns();
    if (c->state == S_HS) hs_read(c, rbuf, (size_t)n, now);
    else if (cfg.raw) parse_raw(c, (size_t)n, now);
    else parse_ws(c, rbuf, (size_t)n, now);
    if (c->eof || (!all && (size_t)n < sizeof rbuf)) return;
  }
}

static void on_connected(conn_t *c) {
  int err = 0; socklen_t l = sizeof err;
  getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l);
  if (err) { fprintf(stderr, "connect: %s\n", strerror(err)); c_errors++; c->eof = true; c->failed = true; return; }
  if (cfg.raw) { on_open(c, now_ns()); return; }
  c->state = S_HS;
  bool pub = cfg.mode == M_FANOUT && c == fanout_publisher();
  ssize_t n = send(c->fd, pub ? pubreq : req, (size_t)(pub ? pubreqlen : reqlen), MSG_NOSIGNAL);
  if (n != (pub ? pubreqlen : reqlen)) { fprintf(stderr, "handshake send short\n"); c_errors++; c->eof = true; c->failed = true; }
}

static void handle(conn_t *c, uint32_t evs) {
  if (c->state == S_CONNECTING) {
    if (!(evs & (EPOLLOUT | EPOLLERR | EPOLLHUP))) return;
    on_connected(c);
  }
  if (!c->eof && (evs & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
    on_readable(c, (evs & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0);
  if (!c->eof && c->state >= S_OPEN) flush(c);
}

/* What to do with a connection that is finished or failed. */
static void settle(conn_t *c) {
  if (c->state == S_FREE) return;
  bool done = c->eof || (c->got_close && (c->sent_close || cfg.mode != M_HANDSHAKES));
  bool unexpected = !stopping && !c->sent_close;
  if (c->got_close && !c->sent_close && !c->want_close) { c->want_close = true; flush(c); } /* answer server close */
  if (cfg.mode == M_HANDSHAKES) {
    if (!done) return;
    bool ok = c->state >= S_OPEN;
    if (ok && measuring) c_hs++;
    if (!ok && !stopping && !c->failed) c_errors++;
    conn_free(c);
    if (!stopping) conn_start(c);
    return;
  }
  if (done) {
    if (unexpected) { fprintf(stderr, "connection %d closed unexpectedly\n", c->idx); c_errors++; }
    conn_free(c);
  }
}

static int run_loop(double seconds, bool (*until)(void)) {
  struct epoll_event evs[512];
  uint64_t end = now_ns() + (uint64_t)(seconds * 1e9), last_scan = now_ns();
  for (;;) {
    uint64_t t = now_ns();
    if (t >= end) return 0;
    if (until && until()) return 1;
    int ms = (int)((end - t) / 1000000) + 1;
    if (ms > 20) ms = 20;
    int n = epoll_wait(ep, evs, 512, ms);
    if (n < 0 && errno != EINTR) die("epoll_wait");
    for (int i = 0; i < n; i++) {
      conn_t *c = evs[i].data.ptr;
      if (c->fd < 0) continue;
      handle(c, evs[i].events);
      if (c->eof || c->got_close) settle(c);
    }
    if (t - last_scan > 100000000ull) { /* per-connection timeouts (handshake mode) */
      last_scan = t;
      if (cfg.mode == M_HANDSHAKES) {
        for (int i = 0; i < nconns; i++) {
          if (conns[i].state == S_FREE) { if (!stopping) conn_start(&conns[i]); }
          else if ((int64_t)(now_ns() - conns[i].t_start) > (int64_t)(cfg.timeout * 1e9)) {
            fprintf(stderr, "handshake cycle timed out\n");
            if (!stopping) c_errors++;
            conn_free(&conns[i]);
            if (!stopping) conn_start(&conns[i]);
          }
        }
      }
    }
  }
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}
/* echoes per connection in the measured window: the fewest, the 10th
   percentile and the median (how evenly the server served them) */
static void per_conn_counts(uint64_t *min, uint64_t *p10, uint64_t *median) {
  uint64_t *v = malloc((size_t)nconns * sizeof *v);
  if (!v) die("malloc");
  for (int i = 0; i < nconns; i++) v[i] = conns[i].measured;
  qsort(v, (size_t)nconns, sizeof *v, cmp_u64);
  *min = v[0]; *p10 = v[nconns / 10]; *median = v[nconns / 2];
  free(v);
}

static int target_open;
static bool all_open(void) { return c_open >= (uint64_t)target_open; }
static bool all_closed(void) {
  for (int i = 0; i < nconns; i++) if (conns[i].state != S_FREE) return false;
  return true;
}
static int in_progress(void) {
  int k = 0;
  for (int i = 0; i < nconns; i++) if (conns[i].state == S_CONNECTING || conns[i].state == S_HS) k++;
  return k;
}

/* open connections [0, nconns) with at most cfg.concurrency handshakes in progress */
static void open_all(double timeout) {
  uint64_t end = now_ns() + (uint64_t)(timeout * 1e9);
  int next = 0;
  target_open = nconns;
  while (!all_open() && now_ns() < end) {
    int room = cfg.concurrency - in_progress();
    while (room-- > 0 && next < nconns) conn_start(&conns[next++]);
    run_loop(0.005, all_open);
    if (next >= nconns && in_progress() == 0) break;
  }
}

/* server CPU seconds (utime+stime of all its threads) from /proc/PID/stat; -1 if unknown */
static double server_cpu_s(void) {
  if (!cfg.pid) return -1;
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%d/stat", cfg.pid);
  FILE *f = fopen(path, "r");
  if (!f) return -1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = 0;
  char *p = strrchr(buf, ')');
  if (!p) return -1;
  unsigned long ut = 0, st = 0;
  /* fields after ")": state(3) ... utime(14) stime(15) */
  if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2) return -1;
  return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static double cpu_s(void) {
  struct rusage r;
  getrusage(RUSAGE_SELF, &r);
  return (double)r.ru_utime.tv_sec + r.ru_utime.tv_usec / 1e6 + r.ru_stime.tv_sec + r.ru_stime.tv_usec / 1e6;
}

static void close_all(double timeout) {
  stopping = true;
  for (int i = 0; i < nconns; i++) {
    conn_t *c = &conns[i];
    if (c->state == S_FREE) continue;
    if (c->state < S_OPEN) { conn_free(c); continue; }
    if (!c->sent_close) { c->want_close = true; flush(c); }
    if (c->eof) conn_free(c);
  }
  run_loop(timeout, all_closed);
  for (int i = 0; i < nconns; i++) if (conns[i].state != S_FREE) conn_free(&conns[i]);
}

static void usage(void) {
  fprintf(stderr,
          "usage: loadgen --port P [--host 127.0.0.1] [--path /]\n"
          "  [--conns K] [--window W] [--size S] [--text] [--duration D] [--warmup S]\n"
          "  [--raw] | [--handshakes [--concurrency C]] | [--idle N --pid SERVER_PID [--hold S]]\n"
          "  | [--fanout N [--sub-path /sub] [--pub-path /pub] [--pub-port P2]]\n");
  exit(2);
}

int main(int argc, char **argv) {
  static struct option opts[] = {
      {"host", 1, 0, 'h'}, {"port", 1, 0, 'p'}, {"path", 1, 0, 'P'}, {"conns", 1, 0, 'c'},
      {"window", 1, 0, 'w'}, {"size", 1, 0, 's'}, {"text", 0, 0, 't'}, {"duration", 1, 0, 'd'},
      {"warmup", 1, 0, 'u'}, {"raw", 0, 0, 'r'}, {"handshakes", 0, 0, 'H'}, {"concurrency", 1, 0, 'C'},
      {"idle", 1, 0, 'i'}, {"pid", 1, 0, 'x'}, {"hold", 1, 0, 'o'}, {"timeout", 1, 0, 'T'},
      {"fanout", 1, 0, 'F'}, {"sub-path", 1, 0, 'S'}, {"pub-path", 1, 0, 'B'}, {"pub-port", 1, 0, 'Q'},
      {0, 0, 0, 0}};
  int o, raw = 0, idle = 0, conc_set = 0, fanout = 0;
  while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
    switch (o) {
      case 'h': cfg.host = optarg; break;
      case 'p': cfg.port = atoi(optarg); break;
      case 'P': cfg.path = optarg; break;
      case 'c': cfg.conns = atoi(optarg); break;
      case 'w': cfg.window = atoi(optarg); break;
      case 's': cfg.size = strtoull(optarg, NULL, 10); break;
      case 't': cfg.text = 1; break;
      case 'd': cfg.duration = atof(optarg); break;
      case 'u': cfg.warmup = atof(optarg); break;
      case 'r': raw = 1; break;
      case 'H': cfg.mode = M_HANDSHAKES; break;
      case 'C': cfg.concurrency = atoi(optarg); conc_set = 1; break;
      case 'i': idle = atoi(optarg); break;
      case 'x': cfg.pid = atoi(optarg); break;
      case 'o': cfg.hold = atof(optarg); break;
      case 'T': cfg.timeout = atof(optarg); break;
      case 'F': fanout = atoi(optarg); break;
      case 'S': cfg.sub_path = optarg; break;
      case 'B': cfg.pub_path = optarg; break;
      case 'Q': cfg.pub_port = atoi(optarg); break;
      default: usage();
    }
  }
  if (!cfg.port || cfg.window < 1 || cfg.conns < 1 || (raw && cfg.size == 0)) usage();
  if (idle) { cfg.mode = M_IDLE; cfg.conns = idle; if (!conc_set) cfg.concurrency = 64; }
  if (fanout) {
    if (raw || idle || cfg.mode != M_WS || cfg.text || cfg.size < 8) { fprintf(stderr, "--fanout takes binary messages of --size >= 8\n"); return 2; }
    cfg.mode = M_FANOUT; cfg.conns = fanout + 1; if (!conc_set) cfg.concurrency = 64;
  }
  signal(SIGPIPE, SIG_IGN);
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) { rl.rlim_cur = rl.rlim_max; setrlimit(RLIMIT_NOFILE, &rl); }
  cfg.raw = raw;
  if (raw && cfg.mode == M_HANDSHAKES) { fprintf(stderr, "--handshakes needs WebSocket\n"); return 2; }
  if (raw && cfg.mode == M_WS) cfg.mode = M_RAW;
  prepare();
  ep = epoll_create1(EPOLL_CLOEXEC);
  nconns = cfg.mode == M_HANDSHAKES ? cfg.concurrency : cfg.conns;
  conns = calloc((size_t)nconns, sizeof *conns);
  uint32_t ring = 1;
  while (ring < (uint32_t)cfg.window + 1) ring <<= 1;
  for (int i = 0; i < nconns; i++) {
    conns[i].fd = -1; conns[i].idx = i; conns[i].ts_mask = ring - 1;
    conns[i].ts = calloc(ring, sizeof(uint64_t));
  }
  (void)lat_unused;
  const char *mname = cfg.mode == M_WS ? "ws" : cfg.mode == M_RAW ? "raw" : cfg.mode == M_HANDSHAKES ? "handshakes" : "idle";
  if (cfg.mode == M_FANOUT) return fanout_main();

  if (cfg.mode == M_HANDSHAKES) {
    for (int i = 0; i < nconns; i++) conn_start(&conns[i]);
    run_loop(cfg.warmup, NULL);
    measuring = true;
    uint64_t t0 = now_ns(); double cpu0 = cpu_s(), scpu0 = server_cpu_s();
    run_loop(cfg.duration, NULL);
    measuring = false;
    uint64_t t1 = now_ns(); double cpu1 = cpu_s(), scpu1 = server_cpu_s();
    double secs = (double)(t1 - t0) / 1e9;
    close_all(2.0);
    qsort(lat, lat_n, sizeof *lat, cmp_u32);
    printf("{\"mode\":\"%s\",\"concurrency\":%d,\"duration_s\":%.3f,\"handshakes\":%llu,\"handshakes_per_s\":%.1f,"
           "\"hs_p50_us\":%.1f,\"hs_p99_us\":%.1f,\"errors\":%llu,\"client_cpu_pct\":%.1f,\"server_cpu_pct\":%.1f}\n",
           mname, cfg.concurrency, secs, (unsigned long long)c_hs, (double)c_hs / secs, pct(0.5), pct(0.99),
           (unsigned long long)c_errors, 100.0 * (cpu1 - cpu0) / secs, scpu0 < 0 ? -1.0 : 100.0 * (scpu1 - scpu0) / secs);
    return 0;
  }

  if (cfg.mode == M_IDLE) {
    long before = cfg.pid ? proc_status_kb(cfg.pid, "VmRSS") : -1;
    uint64_t t0 = now_ns();
    open_all(cfg.timeout + nconns / 200.0);
    double open_s = (double)(now_ns() - t0) / 1e9;
    uint64_t established = c_open;
    run_loop(cfg.hold, NULL);
    long after = cfg.pid ? proc_status_kb(cfg.pid, "VmRSS") : -1;
    uint64_t still = c_open;
    close_all(5.0);
    double per = (before >= 0 && after >= 0 && established) ? (double)(after - before) * 1024.0 / (double)established : -1;
    printf("{\"mode\":\"%s\",\"conns\":%d,\"established\":%llu,\"still_open\":%llu,\"open_s\":%.3f,"
           "\"rss_before_kb\":%ld,\"rss_after_kb\":%ld,\"rss_per_conn_bytes\":%.0f,\"errors\":%llu}\n",
           mname, nconns, (unsigned long long)established, (unsigned long long)still, open_s, before, after, per,
           (unsigned long long)c_errors);
    return 0;
  }

  /* throughput / latency */
  open_all(cfg.timeout);
  if (c_open < (uint64_t)nconns) {
    printf("{\"mode\":\"%s\",\"conns\":%d,\"window\":%d,\"size\":%llu,\"error\":\"only %llu of %d connections opened\","
           "\"errors\":%llu}\n",
           mname, nconns, cfg.window, (unsigned long long)cfg.size, (unsigned long long)c_open, nconns,
           (unsigned long long)(c_errors ? c_errors : 1));
    return 1;
  }
  traffic = true;
  uint64_t t = now_ns();
  for (int i = 0; i < nconns; i++) {
    for (int k = 0; k < cfg.window; k++) issue(&conns[i], t);
    flush(&conns[i]);
  }
  run_loop(cfg.warmup, NULL);
  c_msgs = c_bytes = 0;
  uint64_t err0 = c_errors;
  measuring = true;
  uint64_t t0 = now_ns(); double cpu0 = cpu_s(), scpu0 = server_cpu_s();
  run_loop(cfg.duration, NULL);
  measuring = false;
  uint64_t t1 = now_ns(); double cpu1 = cpu_s(), scpu1 = server_cpu_s();
  uint64_t msgs = c_msgs, bytes = c_bytes, errs = c_errors;
  (void)err0;
  uint64_t open_at_end = c_open;
  double secs = (double)(t1 - t0) / 1e9;
  uint64_t fewest, p10, median;
  per_conn_counts(&fewest, &p10, &median);
  close_all(3.0);
  qsort(lat, lat_n, sizeof *lat, cmp_u32);
  double mean = 0;
  for (size_t i = 0; i < lat_n; i++) mean += lat[i];
  mean = lat_n ? mean / (double)lat_n / 1000.0 : -1;
  printf("{\"mode\":\"%s\",\"conns\":%d,\"window\":%d,\"size\":%llu,\"type\":\"%s\",\"duration_s\":%.3f,"
         "\"msgs\":%llu,\"msgs_per_s\":%.1f,\"mb_per_s\":%.2f,\"p50_us\":%.1f,\"p99_us\":%.1f,\"p999_us\":%.1f,"
         "\"mean_us\":%.1f,\"per_conn_min\":%llu,\"per_conn_p10\":%llu,\"per_conn_median\":%llu,\"open_at_end\":%llu,\"errors\":%llu,\"client_cpu_pct\":%.1f,\"server_cpu_pct\":%.1f}\n",
         mname, nconns, cfg.window, (unsigned long long)cfg.size, cfg.mode == M_RAW ? "raw" : cfg.text ? "text" : "binary",
         secs, (unsigned long long)msgs, (double)msgs / secs, (double)bytes / secs / 1e6, pct(0.5), pct(0.99),
         pct(0.999), mean, (unsigned long long)fewest, (unsigned long long)p10, (unsigned long long)median,
         (unsigned long long)open_at_end, (unsigned long long)errs, 100.0 * (cpu1 - cpu0) / secs,
         scpu0 < 0 ? -1.0 : 100.0 * (scpu1 - scpu0) / secs);
  return errs ? 1 : 0;
}
