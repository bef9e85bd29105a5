/*
 * dps-load: the e2e bench's native device fleet for symmetric-key group devices over HTTPS and
 * MQTT (bench/lib/native-client.mjs builds and drives it). It registers brand-new devices exactly
 * as the Node load client does (bench/lib/load-client.mjs + device-clients.mjs) but costs a
 * fraction of its CPU per registration, so on a 2-core machine the server under test, not the
 * client, sets the pace.
 *
 * One process, one thread, non-blocking sockets and epoll, OpenSSL 3 (libssl, libcrypto).
 * Build: cc -std=c11 -O2 -Wall -Wextra -Werror -o dps-load dps-load.c -lssl -lcrypto
 *
 * ---- Protocol (stdin → stdout, one line each way per command) --------------------------------
 *
 * A command is one line of TAB-separated fields; the first is the command, every other is
 * key=value (the value runs to the next TAB or the end of the line, so paths may hold spaces):
 *
 *   batch  transport=mqtt|https  target=<port>:<CA PEM file> (1..64 times)  idScope=<id scope>
 *          prefix=<registration id prefix>  count=<n>  concurrency=<n>  groupKey=<base64>
 *          resume=0|1  [timeoutMs=<per step, default 20000>]
 *
 * Every key except timeoutMs is required, none may repeat (except target), unknown keys are an
 * error. `batch` registers `count` brand-new devices, `concurrency` at a time; device i goes to
 * target i % targets and has the id prefix + an 8-digit sequence number (zero-padded; counted per
 * prefix over the process's life, starting at 1, as the Node client's `counters`). Each device is
 * "connect, one register request, close" on its own TCP + TLS connection to 127.0.0.1, the server
 * certificate verified against the target's CA for the host name `localhost` (also the SNI name).
 *
 * The answer is one line of JSON:
 *   {"ok":true,"samples":[<ms per device, connect start to close>...],"resumed":<n>,"cpuMs":<ms>}
 *   {"ok":false,"error":"<text>","cpuMs":<ms>}
 * samples are in completion order; resumed counts the batch's handshakes that resumed a TLS
 * session; cpuMs is getrusage(RUSAGE_SELF) user + system time at the end of the command. A
 * batch fails at its first failing device (the others in flight are dropped): any answer but 200
 * with a JSON body whose top-level "status" is "assigned" (the error names the registration id,
 * the status and the first 300 bytes of the body), a connection or TLS error, or a step without
 * progress for timeoutMs (TCP + TLS connect; MQTT CONNACK; SUBACK; the register answer).
 * End of input ends the process (exit 0).
 *
 * ---- What a device sends (as device-clients.mjs) ----------------------------------------------
 *
 * SAS token (buildSasToken of @provisio/protocol with the Node symmetric-key client's options):
 *   SharedAccessSignature sr={idScope}/registrations/{id}&sig={urlencoded base64 sig}&skn=registration&se={expiry}
 * with sr unencoded, expiry = now + 3600 s, sig = HMAC-SHA256(deviceKey, sr + "\n" + se) and
 * deviceKey = HMAC-SHA256(base64decode(groupKey), id) (deriveDeviceKey of @provisio/crypto).
 *
 * https: PUT /{idScope}/registrations/{id}/register?api-version=2019-03-31 with the headers of
 *   node:https (accept, connection: close, authorization, content-type, content-length, Host)
 *   and the body {"registrationId":"{id}"}; the answer is read to its content-length.
 * mqtt:  MQTT 3.1.1 CONNECT (clean session, keep-alive 180, client id = id, user name
 *   {idScope}/registrations/{id}/api-version=2019-03-31&ClientVersion=provisio-bench, password =
 *   the SAS token) → CONNACK; SUBSCRIBE $dps/registrations/res/# qos 1 → SUBACK; PUBLISH qos 1
 *   $dps/registrations/PUT/iotdps-register/?$rid=1 with the same JSON body → the publish on
 *   $dps/registrations/res/{status}/?$rid=1... (each publish with qos 1 acknowledged with PUBACK);
 *   then DISCONNECT (one write with that PUBACK; the Node client makes two).
 * Close: TLS close_notify, then the write side of the socket is shut; the device counts as done
 * (its sample taken, its slot given to the next device), and the socket is read until the server
 * closes it (at most 5 s) before it is closed, as a Node socket after end() is.
 *
 * TLS: 1.2 to 1.3, OpenSSL's default cipher suites, key-share groups fixed to OpenSSL 3.0's
 * defaults without the post-quantum hybrids later versions add (what Node 20 offers). With
 * resume=1 the last session ticket each target sent (new-session callback) is kept, across
 * batches, and offered on that target's next connections (the Node client's `tlsSessions`), a
 * copy each time as Node hands each connection the ticket's bytes; with resume=0 every
 * connection is a full handshake and no ticket is kept.
 *
 * Limits: 64 KiB per MQTT packet or HTTP body, 16 KiB of HTTP header, 1 MiB per command line.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/opensslv.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#if OPENSSL_VERSION_NUMBER < 0x30000000L
#error "dps-load needs OpenSSL 3 (Debian: libssl-dev)"
#endif

#define API "api-version=2019-03-31"
#define SERVER_NAME "localhost"
#define MAX_BODY (64 * 1024)
#define MAX_HTTP_HEADER (16 * 1024)
#define IN_CAP (MAX_BODY + MAX_HTTP_HEADER + 16)
#define OUT_CAP 4096
#define MAX_LINE (1024 * 1024)
#define MAX_TARGETS 64
#define MAX_CONCURRENCY 4096
#define MAX_COUNT 10000000L
#define MAX_ID 128
#define MAX_SCOPE 64
#define DRAIN_MS 5000.0
#define ERROR_CAP 1024

/* ---- small helpers ------------------------------------------------------------------------ */

static double now_ms(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec * 1000.0 + (double)t.tv_nsec / 1e6;
}

static double cpu_ms(void) {
  struct rusage u;
  getrusage(RUSAGE_SELF, &u);
  return (double)(u.ru_utime.tv_sec + u.ru_stime.tv_sec) * 1000.0 + (double)(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1000.0;
}

static void die(const char *what) {
  fprintf(stderr, "dps-load: %s: %s\n", what, strerror(errno));
  exit(2);
}

static void *xmalloc(size_t n) {
  void *p = malloc(n);
  if (p == NULL) die("out of memory");
  return p;
}

/** The first queued OpenSSL error as text (and the queue cleared), or "no OpenSSL detail". */
static const char *ssl_detail(char *buf, size_t cap) {
  unsigned long e = ERR_get_error();
  if (e == 0) snprintf(buf, cap, "no OpenSSL detail");
  else ERR_error_string_n(e, buf, cap);
  ERR_clear_error();
  return buf;
}

/* Strict base64 (standard alphabet, '=' padding optional but only at the end). -1 if invalid. */
static long base64_decode(const char *s, size_t n, unsigned char *out, size_t cap) {
  while (n > 0 && s[n - 1] == '=') n--;
  if (n % 4 == 1) return -1;
  size_t o = 0;
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < n; i++) {
    char ch = s[i];
    int v;
    if (ch >= 'A' && ch <= 'Z') v = ch - 'A';
    else if (ch >= 'a' && ch <= 'z') v = ch - 'a' + 26;
    else if (ch >= '0' && ch <= '9') v = ch - '0' + 52;
    else if (ch == '+') v = 62;
    else if (ch == '/') v = 63;
    else return -1;
    acc = (acc << 6) | (uint32_t)v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      if (o >= cap) return -1;
      out[o++] = (unsigned char)(acc >> bits);
    }
  }
  return (long)o;
}

/* ---- TLS: one client context per CA file, one kept ticket per target ---------------------- */

typedef struct {
  char *ca_file;
  SSL_CTX *ctx;
} trust_t;

typedef struct {
  SSL_CTX *ctx;
  int port;
  SSL_SESSION *session;
} ticket_t;

static trust_t *trusts;
static size_t ntrusts;
static ticket_t *tickets;
static size_t ntickets;

static ticket_t *ticket_slot(SSL_CTX *ctx, int port, int create) {
  for (size_t i = 0; i < ntickets; i++)
    if (tickets[i].ctx == ctx && tickets[i].port == port) return &tickets[i];
  if (!create) return NULL;
  tickets = realloc(tickets, (ntickets + 1) * sizeof *tickets);
  if (tickets == NULL) die("out of memory");
  tickets[ntickets] = (ticket_t){ctx, port, NULL};
  return &tickets[ntickets++];
}

struct conn;
static int on_new_session(SSL *ssl, SSL_SESSION *session);

/** The client context trusting `ca_file` (made once per file); NULL with `err` set on failure. */
static SSL_CTX *trust_context(const char *ca_file, char *err, size_t cap) {
  for (size_t i = 0; i < ntrusts; i++)
    if (strcmp(trusts[i].ca_file, ca_file) == 0) return trusts[i].ctx;
  char detail[256];
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  if (ctx == NULL) {
    snprintf(err, cap, "SSL_CTX_new: %s", ssl_detail(detail, sizeof detail));
    return NULL;
  }
  if (SSL_CTX_load_verify_file(ctx, ca_file) != 1) {
    snprintf(err, cap, "cannot load the CA file %s: %s", ca_file, ssl_detail(detail, sizeof detail));
    SSL_CTX_free(ctx);
    return NULL;
  }
  if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 || SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) != 1 ||
      SSL_CTX_set1_groups_list(ctx, "X25519:P-256:X448:P-521:P-384") != 1) {
    snprintf(err, cap, "TLS settings: %s", ssl_detail(detail, sizeof detail));
    SSL_CTX_free(ctx);
    return NULL;
  }
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
  /* Whole TCP reads rather than a record header, then its body: half the read calls. */
  SSL_CTX_set_read_ahead(ctx, 1);
  /* A server closing without close_notify ends the stream like Node's sockets see it (EOF), not as an error. */
  SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
  /* Tickets are kept by on_new_session only (no internal cache). */
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  SSL_CTX_sess_set_new_cb(ctx, on_new_session);
  trusts = realloc(trusts, (ntrusts + 1) * sizeof *trusts);
  if (trusts == NULL) die("out of memory");
  trusts[ntrusts].ca_file = strdup(ca_file);
  if (trusts[ntrusts].ca_file == NULL) die("out of memory");
  trusts[ntrusts].ctx = ctx;
  ntrusts++;
  return ctx;
}

/* ---- registration ids: one counter per prefix ---------------------------------------------- */

typedef struct {
  char *prefix;
  unsigned long long seq;
} counter_t;

static counter_t *counters;
static size_t ncounters;

static unsigned long long next_seq(const char *prefix) {
  for (size_t i = 0; i < ncounters; i++)
    if (strcmp(counters[i].prefix, prefix) == 0) return ++counters[i].seq;
  counters = realloc(counters, (ncounters + 1) * sizeof *counters);
  if (counters == NULL) die("out of memory");
  counters[ncounters].prefix = strdup(prefix);
  if (counters[ncounters].prefix == NULL) die("out of memory");
  counters[ncounters].seq = 1;
  ncounters++;
  return 1;
}

/* ---- the batch ----------------------------------------------------------------------------- */

enum transport { T_HTTPS, T_MQTT };

typedef struct {
  int port;
  SSL_CTX *ctx;
} target_t;

typedef struct {
  int running;
  enum transport transport;
  target_t targets[MAX_TARGETS];
  int ntargets;
  char id_scope[MAX_SCOPE + 1];
  char prefix[MAX_ID + 1];
  long count, concurrency;
  unsigned char group_key[512];
  size_t group_key_len;
  int resume;
  double timeout_ms;
  long started, finished, active, resumed;
  double *samples;
  char error[ERROR_CAP]; /* first error; "" while none */
} job_t;

static job_t job;

/* ---- connections ----------------------------------------------------------------------------- */

enum state {
  S_IDLE,    /* in the pool */
  S_TCP,     /* TCP connect in progress */
  S_TLS,     /* TLS handshake */
  S_IO,      /* writing `out`, then reading the next answer */
  S_DRAIN,   /* done, close_notify sent, write side shut: reading until the server closes */
};

enum step { STEP_CONNECT, STEP_CONNACK, STEP_SUBACK, STEP_ANSWER };
static const char *const STEP_NAMES[] = {"TCP + TLS connect", "CONNACK", "SUBACK", "the register answer"};

typedef struct conn {
  struct conn *prev, *next; /* live list, or the pool (next only) */
  enum state state;
  enum step step;
  int fd;
  SSL *ssl;
  SSL_CTX *ctx;
  int port;
  int keep_tickets;
  char id[MAX_ID + 24]; /* prefix (<= MAX_ID - 16) + sequence number */
  double start, deadline;
  unsigned char out[OUT_CAP];
  size_t out_len;
  unsigned char *in; /* IN_CAP bytes */
  size_t in_len;
  int answered; /* the answer is complete: status, body */
  int status;
  const unsigned char *body;
  size_t body_len;
  size_t http_header_len; /* 0 until the header is complete */
  long content_length;    /* -1: none, read to the end */
} conn_t;

static conn_t *live;
static conn_t *pool;
static int epfd;

static conn_t *conn_get(void) {
  conn_t *c = pool;
  if (c != NULL) pool = c->next;
  else {
    c = xmalloc(sizeof *c);
    c->in = xmalloc(IN_CAP);
  }
  unsigned char *in = c->in;
  memset(c, 0, offsetof(conn_t, out));
  c->in = in;
  c->out_len = 0;
  c->in_len = 0;
  c->answered = 0;
  c->status = 0;
  c->body = NULL;
  c->body_len = 0;
  c->http_header_len = 0;
  c->content_length = -1;
  c->fd = -1;
  c->next = live;
  c->prev = NULL;
  if (live != NULL) live->prev = c;
  live = c;
  return c;
}

/** Closes what the connection holds and returns it to the pool. */
static void conn_release(conn_t *c) {
  if (c->ssl != NULL) SSL_free(c->ssl);
  if (c->fd >= 0) close(c->fd);
  c->ssl = NULL;
  c->fd = -1;
  if (c->prev != NULL) c->prev->next = c->next;
  else live = c->next;
  if (c->next != NULL) c->next->prev = c->prev;
  c->state = S_IDLE;
  c->next = pool;
  pool = c;
}

static int on_new_session(SSL *ssl, SSL_SESSION *session) {
  conn_t *c = SSL_get_app_data(ssl);
  if (c == NULL || !c->keep_tickets) return 0;
  ticket_t *t = ticket_slot(c->ctx, c->port, 1);
  if (t->session != NULL) SSL_SESSION_free(t->session);
  t->session = session;
  return 1; /* the reference is ours now */
}

/** Records the batch's first error (later ones are consequences or noise). */
static void job_fail(const char *fmt, ...) {
  if (job.error[0] != '\0') return;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(job.error, sizeof job.error, fmt, ap);
  va_end(ap);
  if (job.error[0] == '\0') snprintf(job.error, sizeof job.error, "unknown error");
}

static const char *transport_name(void) { return job.transport == T_MQTT ? "mqtt" : "https"; }

/** A device failed: the batch fails; its connection is closed. */
static void conn_fail(conn_t *c, const char *fmt, ...) {
  char why[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, sizeof why, fmt, ap);
  va_end(ap);
  job_fail("%s %s (127.0.0.1:%d): %s", transport_name(), c->id, c->port, why);
  job.active--;
  conn_release(c);
}

static int out_append(conn_t *c, const void *p, size_t n) {
  if (c->out_len + n > OUT_CAP) return -1;
  memcpy(c->out + c->out_len, p, n);
  c->out_len += n;
  return 0;
}

/* ---- SAS token ----------------------------------------------------------------------------- */

/*
 * HMAC-SHA256 (RFC 2104) over one SHA-256 fetched once and one reused digest context: OpenSSL
 * 3.0's one-shot HMAC() looks the algorithms up by name on every call, which costs more than the
 * hashing itself at one token per device.
 */
static EVP_MD *sha256;
static EVP_MD_CTX *md_ctx;

static int hmac_sha256(const unsigned char *key, size_t key_len, const unsigned char *msg, size_t msg_len, unsigned char out[32]) {
  unsigned char block[64], inner[32];
  unsigned int n = 0;
  if (sha256 == NULL && (sha256 = EVP_MD_fetch(NULL, "SHA256", NULL)) == NULL) return -1;
  if (md_ctx == NULL && (md_ctx = EVP_MD_CTX_new()) == NULL) return -1;
  memset(block, 0, sizeof block);
  if (key_len > sizeof block) {
    if (EVP_DigestInit_ex2(md_ctx, sha256, NULL) != 1 || EVP_DigestUpdate(md_ctx, key, key_len) != 1 || EVP_DigestFinal_ex(md_ctx, block, &n) != 1) return -1;
  } else memcpy(block, key, key_len);
  for (size_t i = 0; i < sizeof block; i++) block[i] ^= 0x36;
  if (EVP_DigestInit_ex2(md_ctx, sha256, NULL) != 1 || EVP_DigestUpdate(md_ctx, block, sizeof block) != 1 || EVP_DigestUpdate(md_ctx, msg, msg_len) != 1 ||
      EVP_DigestFinal_ex(md_ctx, inner, &n) != 1)
    return -1;
  for (size_t i = 0; i < sizeof block; i++) block[i] ^= 0x36 ^ 0x5c;
  if (EVP_DigestInit_ex2(md_ctx, sha256, NULL) != 1 || EVP_DigestUpdate(md_ctx, block, sizeof block) != 1 || EVP_DigestUpdate(md_ctx, inner, sizeof inner) != 1 ||
      EVP_DigestFinal_ex(md_ctx, out, &n) != 1)
    return -1;
  OPENSSL_cleanse(block, sizeof block);
  return 0;
}

/** The device's SAS token into `out`; its length, or -1 if it does not fit. */
static int sas_token(const char *id, char *out, size_t cap) {
  unsigned char device_key[32], sig[32];
  if (hmac_sha256(job.group_key, job.group_key_len, (const unsigned char *)id, strlen(id), device_key) != 0) return -1;
  long long se = (long long)time(NULL) + 3600;
  char sr[MAX_SCOPE + MAX_ID + 32];
  int srn = snprintf(sr, sizeof sr, "%s/registrations/%s", job.id_scope, id);
  char signed_text[sizeof sr + 32];
  int sn = snprintf(signed_text, sizeof signed_text, "%s\n%lld", sr, se);
  if (srn < 0 || sn < 0 || (size_t)sn >= sizeof signed_text) return -1;
  if (hmac_sha256(device_key, sizeof device_key, (const unsigned char *)signed_text, (size_t)sn, sig) != 0) return -1;
  unsigned char b64[64];
  int bn = EVP_EncodeBlock(b64, sig, 32);
  char encoded[128];
  size_t en = 0;
  for (int i = 0; i < bn; i++) { /* encodeURIComponent over the base64 alphabet */
    const char *rep = b64[i] == '+' ? "%2B" : b64[i] == '/' ? "%2F" : b64[i] == '=' ? "%3D" : NULL;
    if (rep != NULL) {
      memcpy(encoded + en, rep, 3);
      en += 3;
    } else encoded[en++] = (char)b64[i];
  }
  encoded[en] = '\0';
  int n = snprintf(out, cap, "SharedAccessSignature sr=%s&sig=%s&skn=registration&se=%lld", sr, encoded, se);
  return n < 0 || (size_t)n >= cap ? -1 : n;
}

/* ---- MQTT ------------------------------------------------------------------------------------ */

static size_t mqtt_varint(unsigned char *p, size_t n) {
  size_t i = 0;
  do {
    unsigned char b = n % 128;
    n /= 128;
    if (n > 0) b |= 0x80;
    p[i++] = b;
  } while (n > 0);
  return i;
}

static size_t put_u16(unsigned char *p, size_t v) {
  p[0] = (unsigned char)(v >> 8);
  p[1] = (unsigned char)v;
  return 2;
}

static size_t put_str(unsigned char *p, const char *s, size_t n) {
  put_u16(p, n);
  memcpy(p + 2, s, n);
  return n + 2;
}

/** Appends one packet: fixed header byte, remaining length, body. */
static int mqtt_packet(conn_t *c, unsigned char first, const unsigned char *body, size_t n) {
  unsigned char head[5];
  head[0] = first;
  size_t h = 1 + mqtt_varint(head + 1, n);
  if (out_append(c, head, h) != 0 || out_append(c, body, n) != 0) return -1;
  return 0;
}

static int mqtt_connect(conn_t *c) {
  char sas[512], user[MAX_SCOPE + MAX_ID + 96];
  int sn = sas_token(c->id, sas, sizeof sas);
  int un = snprintf(user, sizeof user, "%s/registrations/%s/" API "&ClientVersion=provisio-bench", job.id_scope, c->id);
  if (sn < 0 || un < 0 || (size_t)un >= sizeof user) return -1;
  unsigned char body[1200];
  size_t n = 0;
  n += put_str(body + n, "MQTT", 4);
  body[n++] = 4;    /* protocol level 3.1.1 */
  body[n++] = 0xc2; /* user name, password, clean session */
  n += put_u16(body + n, 180);
  n += put_str(body + n, c->id, strlen(c->id));
  n += put_str(body + n, user, (size_t)un);
  n += put_str(body + n, sas, (size_t)sn);
  return mqtt_packet(c, 0x10, body, n);
}

static int mqtt_subscribe(conn_t *c) {
  static const char topic[] = "$dps/registrations/res/#";
  unsigned char body[64];
  size_t n = put_u16(body, 1);
  n += put_str(body + n, topic, sizeof topic - 1);
  body[n++] = 1;
  return mqtt_packet(c, 0x82, body, n);
}

static int mqtt_register(conn_t *c) {
  unsigned char body[MAX_ID + 128];
  static const char topic[] = "$dps/registrations/PUT/iotdps-register/?$rid=1";
  size_t n = put_str(body, topic, sizeof topic - 1);
  n += put_u16(body + n, 2); /* the Node client's first message id */
  n += (size_t)sprintf((char *)body + n, "{\"registrationId\":\"%s\"}", c->id);
  return mqtt_packet(c, 0x32, body, n);
}

/** Whether `query` (the part after "?") has $rid=1. */
static int rid_is_one(const unsigned char *q, size_t n) {
  size_t i = 0;
  while (i < n) {
    size_t j = i;
    while (j < n && q[j] != '&') j++;
    if (j - i == 6 && memcmp(q + i, "$rid=1", 6) == 0) return 1;
    if (j - i == 8 && memcmp(q + i, "%24rid=1", 8) == 0) return 1;
    i = j + 1;
  }
  return 0;
}

/** Handles the complete packets in `in`; 0 to go on, -1 when the connection failed. */
static int mqtt_input(conn_t *c) {
  for (;;) {
    if (c->answered || c->in_len < 2) return 0;
    size_t rl = 0, i = 1;
    unsigned mult = 1;
    for (;;) {
      if (i >= c->in_len) return 0; /* length incomplete */
      unsigned char b = c->in[i++];
      rl += (size_t)(b & 0x7f) * mult;
      if (!(b & 0x80)) break;
      mult *= 128;
      if (i > 4) {
        conn_fail(c, "malformed MQTT remaining length");
        return -1;
      }
    }
    if (rl > MAX_BODY) {
      conn_fail(c, "MQTT packet of %zu bytes, more than %d", rl, MAX_BODY);
      return -1;
    }
    if (c->in_len < i + rl) return 0;
    unsigned type = c->in[0] >> 4, flags = c->in[0] & 15;
    const unsigned char *p = c->in + i;
    switch (type) {
    case 2: /* CONNACK */
      if (c->step != STEP_CONNACK || rl != 2) {
        conn_fail(c, "unexpected CONNACK");
        return -1;
      }
      if (p[1] != 0) {
        conn_fail(c, "CONNACK return code %u", p[1]);
        return -1;
      }
      if (mqtt_subscribe(c) != 0) goto overflow;
      c->step = STEP_SUBACK;
      c->deadline = now_ms() + job.timeout_ms;
      break;
    case 9: /* SUBACK */
      if (c->step != STEP_SUBACK || rl < 3 || p[0] != 0 || p[1] != 1) {
        conn_fail(c, "unexpected SUBACK");
        return -1;
      }
      if (p[2] == 0x80) {
        conn_fail(c, "SUBACK refused the subscription to $dps/registrations/res/#");
        return -1;
      }
      if (mqtt_register(c) != 0) goto overflow;
      c->step = STEP_ANSWER;
      c->deadline = now_ms() + job.timeout_ms;
      break;
    case 4:  /* PUBACK of the register publish */
    case 13: /* PINGRESP */
      break;
    case 3: { /* PUBLISH */
      unsigned qos = (flags >> 1) & 3;
      if (c->step == STEP_CONNACK || rl < 2 || qos == 3) {
        conn_fail(c, "unexpected or malformed PUBLISH");
        return -1;
      }
      size_t tl = ((size_t)p[0] << 8) | p[1];
      size_t off = 2 + tl + (qos > 0 ? 2 : 0);
      if (off > rl) {
        conn_fail(c, "malformed PUBLISH");
        return -1;
      }
      const unsigned char *topic = p + 2;
      if (qos > 0) {
        unsigned char ack[2] = {p[2 + tl], p[3 + tl]};
        if (mqtt_packet(c, 0x40, ack, 2) != 0) goto overflow;
      }
      static const char res[] = "$dps/registrations/res/";
      size_t rn = sizeof res - 1;
      if (tl > rn && memcmp(topic, res, rn) == 0) {
        size_t k = rn;
        int status = 0, digits = 0;
        while (k < tl && topic[k] >= '0' && topic[k] <= '9' && digits < 9) status = status * 10 + (topic[k++] - '0'), digits++;
        if (digits > 0 && k + 2 <= tl && topic[k] == '/' && topic[k + 1] == '?' && rid_is_one(topic + k + 2, tl - k - 2)) {
          c->status = status;
          c->body = p + off;
          c->body_len = rl - off;
          c->answered = 1;
          /* The answer stays in `in` (consumed no further); DISCONNECT goes out with the PUBACK. */
          unsigned char none = 0;
          if (mqtt_packet(c, 0xe0, &none, 0) != 0) goto overflow;
          return 0;
        }
      }
      break;
    }
    default:
      conn_fail(c, "unexpected MQTT packet type %u", type);
      return -1;
    }
    memmove(c->in, c->in + i + rl, c->in_len - i - rl);
    c->in_len -= i + rl;
  }
overflow:
  conn_fail(c, "output buffer overflow");
  return -1;
}

/* ---- HTTPS ------------------------------------------------------------------------------------ */

static int https_request(conn_t *c) {
  char sas[512], body[MAX_ID + 32];
  int sn = sas_token(c->id, sas, sizeof sas);
  int bn = snprintf(body, sizeof body, "{\"registrationId\":\"%s\"}", c->id);
  if (sn < 0 || bn < 0) return -1;
  int n = snprintf((char *)c->out, OUT_CAP,
                   "PUT /%s/registrations/%s/register?" API " HTTP/1.1\r\n"
                   "accept: application/json\r\n"
                   "connection: close\r\n"
                   "authorization: %s\r\n"
                   "content-type: application/json; charset=utf-8\r\n"
                   "content-length: %d\r\n"
                   "Host: 127.0.0.1:%d\r\n"
                   "\r\n%s",
                   job.id_scope, c->id, sas, bn, c->port, body);
  if (n < 0 || n >= OUT_CAP) return -1;
  c->out_len = (size_t)n;
  return 0;
}

static int ieq_prefix(const unsigned char *p, size_t n, const char *word) {
  size_t w = strlen(word);
  if (n < w) return 0;
  for (size_t i = 0; i < w; i++) {
    unsigned char a = p[i];
    if (a >= 'A' && a <= 'Z') a = (unsigned char)(a - 'A' + 'a');
    if (a != (unsigned char)word[i]) return 0;
  }
  return 1;
}

/** Parses the status line and headers once complete; 0 to go on, -1 when the connection failed. */
static int https_input(conn_t *c, int eof) {
  if (c->http_header_len == 0) {
    const unsigned char *end = memmem(c->in, c->in_len, "\r\n\r\n", 4);
    if (end == NULL) {
      if (c->in_len > MAX_HTTP_HEADER) {
        conn_fail(c, "HTTP header larger than %d bytes", MAX_HTTP_HEADER);
        return -1;
      }
      if (eof) {
        conn_fail(c, "connection closed after %zu bytes, before the end of the HTTP header", c->in_len);
        return -1;
      }
      return 0;
    }
    c->http_header_len = (size_t)(end - c->in) + 4;
    if (c->http_header_len > MAX_HTTP_HEADER) {
      conn_fail(c, "HTTP header larger than %d bytes", MAX_HTTP_HEADER);
      return -1;
    }
    if (c->in_len < 12 || memcmp(c->in, "HTTP/1.", 7) != 0 || c->in[8] != ' ') {
      conn_fail(c, "not an HTTP/1.x answer: %.40s", (const char *)c->in);
      return -1;
    }
    c->status = 0;
    for (int k = 9; k < 12; k++) {
      if (c->in[k] < '0' || c->in[k] > '9') {
        conn_fail(c, "bad HTTP status line");
        return -1;
      }
      c->status = c->status * 10 + (c->in[k] - '0');
    }
    /* Headers: content-length; transfer-encoding is not spoken. */
    const unsigned char *line = memmem(c->in, c->http_header_len, "\r\n", 2) + 2;
    const unsigned char *stop = c->in + c->http_header_len - 2;
    while (line < stop) {
      const unsigned char *eol = memmem(line, (size_t)(stop - line) + 2, "\r\n", 2);
      size_t ln = (size_t)(eol - line);
      if (ieq_prefix(line, ln, "content-length:")) {
        long v = 0;
        size_t k = 15;
        while (k < ln && (line[k] == ' ' || line[k] == '\t')) k++;
        if (k == ln) goto bad_length;
        for (; k < ln && line[k] >= '0' && line[k] <= '9'; k++) {
          v = v * 10 + (line[k] - '0');
          if (v > MAX_BODY) {
            conn_fail(c, "HTTP body of more than %d bytes", MAX_BODY);
            return -1;
          }
        }
        while (k < ln && (line[k] == ' ' || line[k] == '\t')) k++;
        if (k != ln || (c->content_length >= 0 && c->content_length != v)) goto bad_length;
        c->content_length = v;
      } else if (ieq_prefix(line, ln, "transfer-encoding:")) {
        conn_fail(c, "HTTP answer with transfer-encoding (%d); only content-length is read", c->status);
        return -1;
      }
      line = eol + 2;
    }
  }
  size_t have = c->in_len - c->http_header_len;
  if (c->content_length >= 0 ? have >= (size_t)c->content_length : eof) {
    c->body = c->in + c->http_header_len;
    c->body_len = c->content_length >= 0 ? (size_t)c->content_length : have;
    c->answered = 1;
    return 0;
  }
  if (eof) {
    conn_fail(c, "connection closed after %zu of %ld body bytes (HTTP %d)", have, c->content_length, c->status);
    return -1;
  }
  if (have > MAX_BODY) {
    conn_fail(c, "HTTP body of more than %d bytes", MAX_BODY);
    return -1;
  }
  return 0;
bad_length:
  conn_fail(c, "bad content-length header");
  return -1;
}

/* ---- the answer: a JSON object whose top-level "status" is "assigned" ------------------------ */

typedef struct {
  const unsigned char *p, *end;
} json_t;

static void jws(json_t *j) {
  while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r')) j->p++;
}

/** A string (at '"'); its decoded ASCII text into out (NUL-terminated, cut at cap). 0 or -1. */
static int jstring(json_t *j, char *out, size_t cap) {
  size_t o = 0;
  if (j->p >= j->end || *j->p != '"') return -1;
  j->p++;
  while (j->p < j->end) {
    unsigned char ch = *j->p++;
    if (ch == '"') {
      if (out != NULL) out[o < cap ? o : cap - 1] = '\0';
      return 0;
    }
    if (ch < 0x20) return -1;
    if (ch == '\\') {
      if (j->p >= j->end) return -1;
      unsigned char e = *j->p++;
      if (e == 'u') {
        unsigned v = 0;
        for (int k = 0; k < 4; k++) {
          if (j->p >= j->end) return -1;
          unsigned char h = *j->p++;
          v = v * 16 + (unsigned)(h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10 : h >= 'A' && h <= 'F' ? h - 'A' + 10 : 99);
          if (v > 0xffff) return -1;
        }
        ch = v < 0x80 ? (unsigned char)v : '?';
      } else if (e == 'n') ch = '\n';
      else if (e == 't') ch = '\t';
      else if (e == 'r') ch = '\r';
      else if (e == 'b') ch = '\b';
      else if (e == 'f') ch = '\f';
      else if (e == '"' || e == '\\' || e == '/') ch = e;
      else return -1;
    }
    if (out != NULL && o + 1 < cap) out[o] = (char)ch;
    o++;
  }
  return -1;
}

static int jvalue(json_t *j, int depth);

static int jcontainer(json_t *j, int depth, unsigned char close, int keyed) {
  j->p++;
  jws(j);
  if (j->p < j->end && *j->p == close) {
    j->p++;
    return 0;
  }
  for (;;) {
    jws(j);
    if (keyed) {
      if (jstring(j, NULL, 0) != 0) return -1;
      jws(j);
      if (j->p >= j->end || *j->p++ != ':') return -1;
    }
    if (jvalue(j, depth + 1) != 0) return -1;
    jws(j);
    if (j->p >= j->end) return -1;
    unsigned char ch = *j->p++;
    if (ch == close) return 0;
    if (ch != ',') return -1;
  }
}

static int jvalue(json_t *j, int depth) {
  if (depth > 64) return -1;
  jws(j);
  if (j->p >= j->end) return -1;
  unsigned char ch = *j->p;
  if (ch == '{') return jcontainer(j, depth, '}', 1);
  if (ch == '[') return jcontainer(j, depth, ']', 0);
  if (ch == '"') return jstring(j, NULL, 0);
  static const char *const words[] = {"true", "false", "null"};
  for (int k = 0; k < 3; k++) {
    size_t n = strlen(words[k]);
    if ((size_t)(j->end - j->p) >= n && memcmp(j->p, words[k], n) == 0) {
      j->p += n;
      return 0;
    }
  }
  const unsigned char *start = j->p;
  while (j->p < j->end && (strchr("+-.eE", *j->p) != NULL || (*j->p >= '0' && *j->p <= '9'))) j->p++;
  return j->p > start && (start[0] == '-' || (start[0] >= '0' && start[0] <= '9')) ? 0 : -1;
}

/** Whether the body is one JSON object whose top-level "status" is the string "assigned". */
static int body_assigned(const unsigned char *body, size_t n) {
  json_t j = {body, body + n};
  int assigned = 0;
  jws(&j);
  if (j.p >= j.end || *j.p != '{') return 0;
  j.p++;
  jws(&j);
  if (j.p < j.end && *j.p == '}') j.p++;
  else
    for (;;) {
      char key[16];
      jws(&j);
      if (jstring(&j, key, sizeof key) != 0) return 0;
      jws(&j);
      if (j.p >= j.end || *j.p++ != ':') return 0;
      jws(&j);
      if (strcmp(key, "status") == 0 && j.p < j.end && *j.p == '"') {
        char value[16];
        if (jstring(&j, value, sizeof value) != 0) return 0;
        assigned = strcmp(value, "assigned") == 0;
      } else if (jvalue(&j, 1) != 0) return 0;
      jws(&j);
      if (j.p >= j.end) return 0;
      unsigned char ch = *j.p++;
      if (ch == '}') break;
      if (ch != ',') return 0;
    }
  jws(&j);
  return j.p == j.end && assigned;
}

/* ---- the device state machine ---------------------------------------------------------------- */

static void start_device(void) {
  long i = job.started++;
  job.active++;
  conn_t *c = conn_get();
  const target_t *t = &job.targets[i % job.ntargets];
  c->port = t->port;
  c->ctx = t->ctx;
  c->keep_tickets = job.resume;
  snprintf(c->id, sizeof c->id, "%s%08llu", job.prefix, next_seq(job.prefix));
  c->start = now_ms();
  c->deadline = c->start + job.timeout_ms;
  c->step = STEP_CONNECT;
  c->state = S_TCP;
  c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (c->fd < 0) {
    conn_fail(c, "socket: %s", strerror(errno));
    return;
  }
  int one = 1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)c->port), .sin_addr = {htonl(INADDR_LOOPBACK)}};
  if (connect(c->fd, (struct sockaddr *)&a, sizeof a) != 0 && errno != EINPROGRESS) {
    conn_fail(c, "connect: %s", strerror(errno));
    return;
  }
  struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, .data.ptr = c};
  if (epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd, &ev) != 0) {
    conn_fail(c, "epoll_ctl: %s", strerror(errno));
    return;
  }
}

/** Reads and discards until the server closes (or nothing more is there for now). */
static void drain(conn_t *c) {
  char sink[4096];
  for (;;) {
    ssize_t n = read(c->fd, sink, sizeof sink);
    if (n > 0) continue;
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) return;
    conn_release(c); /* 0: closed; other errors: nothing left to do either */
    return;
  }
}

/** The device is done (answer judged, close sent): sample it, then read until the server closes. */
static void device_done(conn_t *c) {
  if (c->status != 200 || !body_assigned(c->body, c->body_len)) {
    char shown[301 * 4];
    size_t n = c->body_len < 300 ? c->body_len : 300, o = 0;
    for (size_t k = 0; k < n; k++) { /* printable ASCII as is, the rest as \xNN */
      unsigned char ch = c->body[k];
      if (ch >= 0x20 && ch < 0x7f) shown[o++] = (char)ch;
      else o += (size_t)sprintf(shown + o, "\\x%02x", ch);
    }
    shown[o] = '\0';
    conn_fail(c, "status %d, body %s", c->status, shown);
    return;
  }
  job.samples[job.finished++] = now_ms() - c->start;
  if (SSL_session_reused(c->ssl)) job.resumed++;
  job.active--;
  SSL_free(c->ssl);
  c->ssl = NULL;
  shutdown(c->fd, SHUT_WR);
  c->state = S_DRAIN;
  c->deadline = now_ms() + DRAIN_MS;
  drain(c); /* the server may have closed already (its edge is gone) */
}

/** Turns an SSL result into: 1 retry later (want read/write), 0 closed cleanly, -1 failed (reported). */
static int ssl_trouble(conn_t *c, int r, const char *what) {
  int e = SSL_get_error(c->ssl, r);
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return 1;
  if (e == SSL_ERROR_ZERO_RETURN) return 0;
  char detail[256];
  if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) {
    if (errno == 0) return 0; /* EOF (callers set errno to 0 first) */
    conn_fail(c, "%s: %s", what, strerror(errno));
    return -1;
  }
  long v = SSL_get_verify_result(c->ssl);
  ssl_detail(detail, sizeof detail);
  if (v != X509_V_OK) conn_fail(c, "%s: %s (certificate: %s)", what, detail, X509_verify_cert_error_string(v));
  else conn_fail(c, "%s: %s", what, detail);
  return -1;
}

/** Sends the first request once TLS is up. 0, or -1 (reported). */
static int on_tls_up(conn_t *c) {
  int r = job.transport == T_MQTT ? mqtt_connect(c) : https_request(c);
  if (r != 0) {
    conn_fail(c, "request larger than the output buffer");
    return -1;
  }
  c->step = job.transport == T_MQTT ? STEP_CONNACK : STEP_ANSWER;
  c->deadline = now_ms() + job.timeout_ms;
  c->state = S_IO;
  return 0;
}

static void drive(conn_t *c, uint32_t events) {
  if (c->state == S_IDLE) return; /* a stale event for a connection given up in this round */
  if (c->state == S_DRAIN) {
    drain(c);
    return;
  }
  if (c->state == S_TCP) {
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) err = errno;
    if (err != 0) {
      conn_fail(c, "connect: %s", strerror(err));
      return;
    }
    if (!(events & EPOLLOUT)) return;
    c->ssl = SSL_new(c->ctx);
    if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1 || SSL_set_tlsext_host_name(c->ssl, SERVER_NAME) != 1 || SSL_set1_host(c->ssl, SERVER_NAME) != 1) {
      char detail[256];
      conn_fail(c, "TLS set-up: %s", ssl_detail(detail, sizeof detail));
      return;
    }
    SSL_set_app_data(c->ssl, c);
    if (job.resume) {
      ticket_t *t = ticket_slot(c->ctx, c->port, 0);
      if (t != NULL && t->session != NULL) {
        /* A copy per connection, as Node's client passes each one the ticket's bytes anew: the
           library marks a TLS 1.3 session it resumed as used up. */
        SSL_SESSION *copy = SSL_SESSION_dup(t->session);
        if (copy != NULL && SSL_SESSION_is_resumable(copy)) SSL_set_session(c->ssl, copy);
        if (copy != NULL) SSL_SESSION_free(copy);
      }
    }
    c->state = S_TLS;
  }
  for (;;) {
    if (c->state == S_TLS) {
      ERR_clear_error();
      errno = 0;
      int r = SSL_connect(c->ssl);
      if (r == 1) {
        if (on_tls_up(c) != 0) return;
        continue;
      }
      int t = ssl_trouble(c, r, "TLS handshake");
      if (t == 0) conn_fail(c, "TLS handshake: connection closed by the server");
      return;
    }
    /* S_IO: flush what is queued, then read the next answer. */
    if (c->out_len > 0) {
      size_t wrote = 0;
      ERR_clear_error();
      errno = 0;
      int r = SSL_write_ex(c->ssl, c->out, c->out_len, &wrote);
      if (r != 1) {
        int t = ssl_trouble(c, r, "write");
        if (t == 0) conn_fail(c, "connection closed by the server during %s", STEP_NAMES[c->step]);
        return;
      }
      c->out_len = 0;
    }
    if (c->answered) {
      ERR_clear_error();
      SSL_shutdown(c->ssl); /* close_notify; the server's is not waited for */
      device_done(c);
      return;
    }
    if (c->in_len >= IN_CAP) {
      conn_fail(c, "answer larger than %d bytes", IN_CAP);
      return;
    }
    size_t got = 0;
    ERR_clear_error();
    errno = 0;
    int r = SSL_read_ex(c->ssl, c->in + c->in_len, IN_CAP - c->in_len, &got);
    int eof = 0;
    if (r != 1) {
      int t = ssl_trouble(c, r, "read");
      if (t != 0) return;
      eof = 1;
    } else c->in_len += got;
    if (job.transport == T_MQTT) {
      if (mqtt_input(c) != 0) return;
      if (eof && !c->answered) {
        conn_fail(c, "connection closed by the server while waiting for %s", STEP_NAMES[c->step]);
        return;
      }
    } else if (https_input(c, eof) != 0) return;
  }
}

/* ---- commands ------------------------------------------------------------------------------- */

static int id_chars(const char *s, int scope) {
  if (*s == '\0') return 0;
  for (; *s; s++) {
    char ch = *s;
    int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || (!scope && (ch == '-' || ch == '.' || ch == '_' || ch == ':'));
    if (!ok) return 0;
  }
  return 1;
}

static int parse_long(const char *s, long lo, long hi, long *out) {
  if (*s == '\0') return -1;
  long v = 0;
  for (; *s; s++) {
    if (*s < '0' || *s > '9') return -1;
    v = v * 10 + (*s - '0');
    if (v > hi) return -1;
  }
  if (v < lo) return -1;
  *out = v;
  return 0;
}

/** Fills `job` from a batch line (fields after "batch"); 0, or -1 with job.error set. */
static int parse_batch(char *fields) {
  int have_transport = 0, have_scope = 0, have_prefix = 0, have_count = 0, have_conc = 0, have_key = 0, have_resume = 0, have_timeout = 0;
  job.ntargets = 0;
  job.timeout_ms = 20000;
  char *save = NULL;
  for (char *f = strtok_r(fields, "\t", &save); f != NULL; f = strtok_r(NULL, "\t", &save)) {
    char *eq = strchr(f, '=');
    if (eq == NULL) {
      job_fail("bad command: field \"%.60s\" is not key=value", f);
      return -1;
    }
    *eq = '\0';
    const char *k = f, *v = eq + 1;
    long n;
#define ONCE(flag)                                             \
  if (flag) {                                                  \
    job_fail("bad command: %s given twice", k);                \
    return -1;                                                 \
  }                                                            \
  flag = 1
    if (strcmp(k, "transport") == 0) {
      ONCE(have_transport);
      if (strcmp(v, "mqtt") == 0) job.transport = T_MQTT;
      else if (strcmp(v, "https") == 0) job.transport = T_HTTPS;
      else {
        job_fail("bad command: transport must be mqtt or https, not \"%.40s\"", v);
        return -1;
      }
    } else if (strcmp(k, "target") == 0) {
      const char *colon = strchr(v, ':');
      char port[8] = "";
      if (colon != NULL && (size_t)(colon - v) < sizeof port) memcpy(port, v, (size_t)(colon - v)), port[colon - v] = '\0';
      if (colon == NULL || parse_long(port, 1, 65535, &n) != 0 || colon[1] == '\0') {
        job_fail("bad command: target must be <port>:<CA file>, not \"%.80s\"", v);
        return -1;
      }
      if (job.ntargets >= MAX_TARGETS) {
        job_fail("bad command: more than %d targets", MAX_TARGETS);
        return -1;
      }
      char err[512] = "";
      SSL_CTX *ctx = trust_context(colon + 1, err, sizeof err);
      if (ctx == NULL) {
        job_fail("%s", err);
        return -1;
      }
      job.targets[job.ntargets++] = (target_t){(int)n, ctx};
    } else if (strcmp(k, "idScope") == 0) {
      ONCE(have_scope);
      if (strlen(v) > MAX_SCOPE || !id_chars(v, 1)) {
        job_fail("bad command: idScope must be 1 to %d letters and digits", MAX_SCOPE);
        return -1;
      }
      strcpy(job.id_scope, v);
    } else if (strcmp(k, "prefix") == 0) {
      ONCE(have_prefix);
      if (strlen(v) > MAX_ID - 16 || !id_chars(v, 0)) {
        job_fail("bad command: prefix must be 1 to %d of a-z A-Z 0-9 - . _ :", MAX_ID - 16);
        return -1;
      }
      strcpy(job.prefix, v);
    } else if (strcmp(k, "count") == 0) {
      ONCE(have_count);
      if (parse_long(v, 1, MAX_COUNT, &job.count) != 0) {
        job_fail("bad command: count must be 1 to %ld", MAX_COUNT);
        return -1;
      }
    } else if (strcmp(k, "concurrency") == 0) {
      ONCE(have_conc);
      if (parse_long(v, 1, MAX_CONCURRENCY, &job.concurrency) != 0) {
        job_fail("bad command: concurrency must be 1 to %d", MAX_CONCURRENCY);
        return -1;
      }
    } else if (strcmp(k, "groupKey") == 0) {
      ONCE(have_key);
      long kn = base64_decode(v, strlen(v), job.group_key, sizeof job.group_key);
      if (kn <= 0) {
        job_fail("bad command: groupKey must be non-empty base64 (at most %zu bytes)", sizeof job.group_key);
        return -1;
      }
      job.group_key_len = (size_t)kn;
    } else if (strcmp(k, "resume") == 0) {
      ONCE(have_resume);
      if (strcmp(v, "0") != 0 && strcmp(v, "1") != 0) {
        job_fail("bad command: resume must be 0 or 1");
        return -1;
      }
      job.resume = v[0] == '1';
    } else if (strcmp(k, "timeoutMs") == 0) {
      ONCE(have_timeout);
      if (parse_long(v, 1, 3600000, &n) != 0) {
        job_fail("bad command: timeoutMs must be 1 to 3600000");
        return -1;
      }
      job.timeout_ms = (double)n;
    } else {
      job_fail("bad command: unknown key \"%.40s\"", k);
      return -1;
    }
#undef ONCE
  }
  const char *missing = !have_transport ? "transport" : job.ntargets == 0 ? "target" : !have_scope ? "idScope" : !have_prefix ? "prefix" : !have_count ? "count" : !have_conc ? "concurrency" : !have_key ? "groupKey" : !have_resume ? "resume" : NULL;
  if (missing != NULL) {
    job_fail("bad command: %s missing", missing);
    return -1;
  }
  return 0;
}

/** Writes a JSON string literal (bytes ≥ 0x80 as \u00XX). */
static void json_quote(FILE *f, const char *s) {
  fputc('"', f);
  for (; *s; s++) {
    unsigned char ch = (unsigned char)*s;
    if (ch == '"' || ch == '\\') fprintf(f, "\\%c", ch);
    else if (ch < 0x20 || ch >= 0x7f) fprintf(f, "\\u%04x", ch);
    else fputc(ch, f);
  }
  fputc('"', f);
}

static void answer(void) {
  if (job.error[0] != '\0') {
    fputs("{\"ok\":false,\"error\":", stdout);
    json_quote(stdout, job.error);
  } else {
    fputs("{\"ok\":true,\"samples\":[", stdout);
    for (long i = 0; i < job.finished; i++) printf(i == 0 ? "%.3f" : ",%.3f", job.samples[i]);
    printf("],\"resumed\":%ld", job.resumed);
  }
  printf(",\"cpuMs\":%.3f}\n", cpu_ms());
  if (fflush(stdout) != 0) die("stdout");
}

/** Ends the running batch: drops the devices still in flight (after an error), answers. */
static void end_batch(void) {
  for (conn_t *c = live, *next; c != NULL; c = next) {
    next = c->next;
    if (c->state != S_DRAIN) conn_release(c);
  }
  job.active = 0;
  answer();
  free(job.samples);
  job.samples = NULL;
  job.running = 0;
}

static void command(char *line) {
  memset(job.error, 0, sizeof job.error);
  job.started = job.finished = job.active = job.resumed = 0;
  char *tab = strchr(line, '\t');
  if (tab != NULL) *tab = '\0';
  if (strcmp(line, "batch") != 0) {
    job_fail("unknown command \"%.40s\"", line);
    answer();
    return;
  }
  if (parse_batch(tab == NULL ? line + strlen(line) : tab + 1) != 0) {
    answer();
    return;
  }
  job.samples = xmalloc((size_t)job.count * sizeof *job.samples);
  job.running = 1;
}

/* ---- main loop ------------------------------------------------------------------------------ */

/* Room for at least 4 KiB more input in *buf (doubling it); -1, said on stderr, past 16 lines' worth. */
static int input_room(char **buf, size_t *cap, size_t len) {
  if (*cap - len >= 4096) return 0;
  if (*cap >= 16 * MAX_LINE) {
    fprintf(stderr, "dps-load: more than %d bytes of input queued\n", 16 * MAX_LINE);
    return -1;
  }
  *cap *= 2;
  *buf = realloc(*buf, *cap);
  if (*buf == NULL) die("out of memory");
  return 0;
}

int main(void) {
  signal(SIGPIPE, SIG_IGN);
  epfd = epoll_create1(EPOLL_CLOEXEC);
  if (epfd < 0) die("epoll_create1");
  int flags = fcntl(0, F_GETFL);
  if (flags < 0 || fcntl(0, F_SETFL, flags | O_NONBLOCK) != 0) die("stdin");
  size_t cap = 65536, len = 0;
  char *buf = xmalloc(cap);
  int input_done = 0;
  struct epoll_event sev = {.events = EPOLLIN, .data.ptr = NULL};
  if (epoll_ctl(epfd, EPOLL_CTL_ADD, 0, &sev) != 0) {
    if (errno != EPERM) die("epoll_ctl stdin");
    /* A regular file (by hand: dps-load < commands): read it whole now. */
    if (fcntl(0, F_SETFL, flags) != 0) die("stdin");
    for (;;) {
      if (input_room(&buf, &cap, len) != 0) return 2;
      ssize_t r = read(0, buf + len, cap - len);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) die("stdin");
      if (r == 0) break;
      len += (size_t)r;
    }
    input_done = 1;
  }
  struct epoll_event events[256];

  for (;;) {
    /* Idle: run the next complete command line, or stop at the end of input. */
    while (!job.running) {
      char *nl = memchr(buf, '\n', len);
      if (nl == NULL) {
        if (input_done) {
          free(buf);
          return 0;
        }
        break;
      }
      *nl = '\0';
      size_t used = (size_t)(nl - buf) + 1;
      if (used > 1) command(buf);
      memmove(buf, buf + used, len - used);
      len -= used;
    }
    if (job.running) {
      while (job.error[0] == '\0' && job.started < job.count && job.active < job.concurrency) start_device();
      if (job.error[0] != '\0' || job.finished == job.count) {
        end_batch();
        continue;
      }
    }

    double now = now_ms(), next = now + 1000;
    for (conn_t *c = live; c != NULL; c = c->next)
      if (c->deadline < next) next = c->deadline;
    int wait = live == NULL && !job.running ? -1 : next <= now ? 0 : (int)(next - now) + 1;
    int n = epoll_wait(epfd, events, 256, wait);
    if (n < 0) {
      if (errno == EINTR) continue;
      die("epoll_wait");
    }
    for (int i = 0; i < n; i++) {
      if (events[i].data.ptr == NULL) { /* stdin */
        for (;;) {
          if (input_room(&buf, &cap, len) != 0) return 2;
          ssize_t r = read(0, buf + len, cap - len);
          if (r > 0) len += (size_t)r;
          else if (r < 0 && errno == EINTR) continue;
          else {
            if (r == 0 || errno != EAGAIN) {
              input_done = 1;
              epoll_ctl(epfd, EPOLL_CTL_DEL, 0, NULL);
            }
            break;
          }
        }
        if (memchr(buf, '\n', len) == NULL && len > MAX_LINE) {
          fprintf(stderr, "dps-load: command line longer than %d bytes\n", MAX_LINE);
          return 2;
        }
        continue;
      }
      drive(events[i].data.ptr, events[i].events);
    }
    /* Steps without progress. */
    now = now_ms();
    for (conn_t *c = live, *nx; c != NULL; c = nx) {
      nx = c->next;
      if (c->deadline > now) continue;
      if (c->state == S_DRAIN) conn_release(c);
      else conn_fail(c, "no progress within %.0f ms (waiting for %s)", job.timeout_ms, STEP_NAMES[c->step]);
    }
  }
}
