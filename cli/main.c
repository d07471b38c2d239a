/*
 * lwwctl - the lww command-line client.
 *
 * Talks to one lwwd over its API socket (nng req/rep) with the versioned
 * binary format of core/codec.h. Output is for people by default and, with
 * --json, one JSON object per line for scripts. Exit codes: 0 ok, 1 lookup
 * found no value, 2 usage error, 3 node unreachable or timed out, 4 the
 * node (or this client, checking the same limits) refused the request.
 * Errors are one line on stderr.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <sodium.h>

#include "codec.h"
#include "envelope.h"
#include "err.h"
#include "hlc.h"
#include "limits.h"

enum {
	EXIT_OK = 0,
	EXIT_NOTFOUND = 1,
	EXIT_USAGE = 2,
	EXIT_UNREACHABLE = 3,
	EXIT_REFUSED = 4,
};

/* Where a packaged node listens (lwwd.conf's api, the systemd unit). */
#define DEFAULT_API "ipc:///run/lww/api"

static const char options_text[] =
    "options (before or after the command; --opt=value works too; --\n"
    "ends options, so an argument may start with '-'):\n"
    "  --api URL       the node's API (ipc:///path or tcp://host:port);\n"
    "                  default $LWW_API, else " DEFAULT_API "\n"
    "  --key FILE      sign every request with this key (lwwctl keygen);\n"
    "                  needed by nodes started with --clients; default\n"
    "                  $LWW_KEY\n"
    "  --timeout MS    give up after MS milliseconds (default 5000)\n"
    "  --json          machine-readable output\n"
    "  -h, --help      this text; lwwctl help COMMAND or COMMAND --help\n"
    "                  for one command\n"
    "  --version       the version\n"
    "\n"
    "exit codes: 0 ok, 1 lookup found no value, 2 usage error, 3 node\n"
    "unreachable or timed out, 4 request refused (limits, bad input, store\n"
    "full, file exists).\n";

static struct {
	const char *api;
	const char *api_from; /* "--api", "$LWW_API" or NULL: the default */
	const char *keyfile;
	int timeout_ms;
	int json;
	nng_socket sock;
	int open;
	int signing;
	lww_key key;
} g = {NULL, NULL, NULL, 5000, 0, NNG_SOCKET_INITIALIZER, 0, 0, {{0}, {0}}};

static int die(int code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static int
die(int code, const char *fmt, ...)
{
	va_list ap;
	fputs("lwwctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (g.open) {
		nng_close(g.sock);
	}
	exit(code);
}

static void usage_error(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

static void
usage_error(const char *fmt, ...)
{
	va_list ap;
	fputs("lwwctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\n(lwwctl help: the commands and options)\n", stderr);
	exit(EXIT_USAGE);
}

/* ---- JSON output ---- */

static int
utf8_valid(const uint8_t *p, size_t n)
{
	size_t i = 0;
	while (i < n) {
		uint8_t c = p[i];
		size_t len;
		uint32_t cp;
		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xe0) == 0xc0) {
			len = 2;
			cp = c & 0x1f;
		} else if ((c & 0xf0) == 0xe0) {
			len = 3;
			cp = c & 0x0f;
		} else if ((c & 0xf8) == 0xf0) {
			len = 4;
			cp = c & 0x07;
		} else {
			return 0;
		}
		if (len > n - i) {
			return 0;
		}
		for (size_t j = 1; j < len; j++) {
			if ((p[i + j] & 0xc0) != 0x80) {
				return 0;
			}
			cp = (cp << 6) | (p[i + j] & 0x3f);
		}
		if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
		    (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
		    (cp >= 0xd800 && cp <= 0xdfff)) {
			return 0;
		}
		i += len;
	}
	return 1;
}

static void
json_str(FILE *f, const uint8_t *p, size_t n)
{
	fputc('"', f);
	for (size_t i = 0; i < n; i++) {
		uint8_t c = p[i];
		if (c == '"' || c == '\\') {
			fputc('\\', f);
			fputc(c, f);
		} else if (c == '\n') {
			fputs("\\n", f);
		} else if (c == '\t') {
			fputs("\\t", f);
		} else if (c == '\r') {
			fputs("\\r", f);
		} else if (c < 0x20 || c == 0x7f) {
			fprintf(f, "\\u%04x", c);
		} else {
			fputc(c, f);
		}
	}
	fputc('"', f);
}

/* "NAME":"text" if p is UTF-8, else "NAME":"base64" + NAME_encoding. */
static void
json_bytes(FILE *f, const char *name, const uint8_t *p, size_t n)
{
	if (utf8_valid(p, n)) {
		fprintf(f, "\"%s\":", name);
		json_str(f, p, n);
		fprintf(f, ",\"%s_encoding\":\"utf8\"", name);
		return;
	}
	size_t blen =
	    sodium_base64_encoded_len(n, sodium_base64_VARIANT_ORIGINAL);
	char *b = malloc(blen);
	if (b == NULL) {
		die(EXIT_REFUSED, "out of memory");
	}
	sodium_bin2base64(b, blen, p, n, sodium_base64_VARIANT_ORIGINAL);
	fprintf(f, "\"%s\":\"%s\",\"%s_encoding\":\"base64\"", name, b, name);
	free(b);
}

static void
json_stamp(FILE *f, uint64_t hlc, uint64_t node)
{
	fprintf(f,
	        "\"hlc\":%" PRIu64 ",\"wall_ms\":%" PRIu64
	        ",\"logical\":%" PRIu64 ",\"node\":\"%016" PRIx64 "\"",
	        hlc, lww_hlc_wall(hlc), lww_hlc_logical(hlc), node);
}

static void
json_entry(FILE *f, const lww_entry *e)
{
	fputc('{', f);
	json_bytes(f, "key", e->key, e->klen);
	fputc(',', f);
	if (lww_entry_is_tombstone(e)) {
		fputs("\"removed\":true,", f);
	} else {
		json_bytes(f, "value", e->val, e->vlen);
		fputc(',', f);
	}
	json_stamp(f, e->hlc, e->node);
	fputs("}\n", f);
}

/* ---- talking to the node ---- */

/* nng's error text, lower-cased to read well after a colon. */
static const char *
nerr(int rv)
{
	static char buf[128];
	snprintf(buf, sizeof(buf), "%s", nng_strerror(rv));
	if (buf[0] >= 'A' && buf[0] <= 'Z' && buf[1] >= 'a' && buf[1] <= 'z') {
		buf[0] = (char) (buf[0] - 'A' + 'a');
	}
	return buf;
}

/* The secret key leaves memory however lwwctl ends (exit or return). */
static void
wipe_key(void)
{
	lww_key_wipe(&g.key);
}

/* Loads --key (or $LWW_KEY): from then on every request is signed. */
static void
load_key(void)
{
	lww_err rv;

	if (g.keyfile == NULL || *g.keyfile == '\0') {
		return;
	}
	(void) atexit(wipe_key);
	if ((rv = lww_key_load(g.keyfile, &g.key)) != LWW_OK) {
		die(EXIT_USAGE, "cannot load --key %s: %s%s", g.keyfile,
		    lww_strerror(rv),
		    rv == LWW_EPERM ? " (chmod 600 it, as its owner)" : "");
	}
	g.signing = 1;
}

static void
connect_api(void)
{
	int rv;

	if (g.open) {
		return;
	}
	load_key();
	if (g.api == NULL || *g.api == '\0') {
		g.api = DEFAULT_API;
		g.api_from = NULL;
	}
	if ((rv = nng_req0_open(&g.sock)) != 0) {
		die(EXIT_UNREACHABLE, "cannot open socket: %s",
		    nng_strerror(rv));
	}
	g.open = 1;
	nng_socket_set_ms(g.sock, NNG_OPT_RECVTIMEO, g.timeout_ms);
	nng_socket_set_ms(g.sock, NNG_OPT_SENDTIMEO, g.timeout_ms);
	nng_socket_set_size(g.sock, NNG_OPT_RECVMAXSZ, LWW_MSG_MAX);
	/* A req socket resends after this long; our writes are not
	 * idempotent in their stamps, so never resend within a timeout. */
	nng_socket_set_ms(g.sock, NNG_OPT_REQ_RESENDTIME,
	                  NNG_DURATION_INFINITE);
	rv = nng_dial(g.sock, g.api, NULL, 0);
	if (rv == NNG_EADDRINVAL || rv == NNG_ENOTSUP || rv == NNG_EINVAL) {
		nng_close(g.sock);
		g.open = 0;
		usage_error("bad %s URL (want ipc:///path or "
		            "tcp://host:port): %s",
		            g.api_from ? g.api_from : "--api", g.api);
	}
	if (rv != 0 && g.api_from == NULL) {
		/* Most often: no local node, or lwwd listens elsewhere. */
		die(EXIT_UNREACHABLE,
		    "cannot reach %s (the default address): %s; give the "
		    "node's API with --api URL or $LWW_API",
		    g.api, nerr(rv));
	}
	if (rv != 0) {
		die(EXIT_UNREACHABLE, "cannot reach %s (from %s): %s", g.api,
		    g.api_from, nerr(rv));
	}
}

/* Sends a request, waits for the reply, decodes it into *rep (borrowing
 * from *msg, which the caller frees). Exits on transport errors. */
static void
call(const lww_buf *req, nng_msg **msg, lww_rep *rep)
{
	static lww_buf auth, env;
	const lww_buf *out = req;
	nng_msg *m;
	int rv;

	if (g.signing) {
		/* Signed, with our clock and a fresh nonce: the node refuses
		 * stale or replayed copies. */
		uint8_t nonce[LWW_NONCE_BYTES];
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		randombytes_buf(nonce, sizeof(nonce));
		lww_buf_reset(&auth);
		lww_buf_reset(&env);
		if (lww_auth_encode(&auth,
		                    (uint64_t) ts.tv_sec * 1000 +
		                        (uint64_t) ts.tv_nsec / 1000000,
		                    nonce, req->p, req->len) != LWW_OK ||
		    lww_envelope_seal(&g.key, auth.p, auth.len, &env) !=
		        LWW_OK) {
			die(EXIT_REFUSED, "request too large to sign");
		}
		out = &env;
	}
	if ((rv = nng_msg_alloc(&m, 0)) != 0 ||
	    (rv = nng_msg_append(m, out->p, out->len)) != 0) {
		die(EXIT_REFUSED, "cannot build request: %s", nng_strerror(rv));
	}
	if ((rv = nng_sendmsg(g.sock, m, 0)) != 0) {
		nng_msg_free(m);
		die(EXIT_UNREACHABLE, "cannot send to %s: %s", g.api, nerr(rv));
	}
	if ((rv = nng_recvmsg(g.sock, &m, 0)) != 0) {
		die(EXIT_UNREACHABLE, "no reply from %s: %s", g.api, nerr(rv));
	}
	if (lww_rep_decode(nng_msg_body(m), nng_msg_len(m), rep) != LWW_OK) {
		nng_msg_free(m);
		die(EXIT_UNREACHABLE, "malformed reply from %s", g.api);
	}
	*msg = m;
}

/* The exit code for a reply's error and its one-line text in msg. */
static int
reply_error(const lww_rep *rep, char *msg, size_t cap)
{
	int code = rep->status == LWW_ENOTFOUND ? EXIT_NOTFOUND : EXIT_REFUSED;
	if (rep->status == LWW_EBUSY || rep->status == LWW_ECLOSED) {
		code = EXIT_UNREACHABLE; /* the node could not serve it now */
	}
	size_t n = rep->msglen < cap - 1 ? rep->msglen : cap - 1;
	memcpy(msg, rep->msg, n);
	msg[n] = '\0';
	for (size_t i = 0; i < n; i++) {
		if (msg[i] == '\n' || msg[i] == '\r') {
			msg[i] = ' ';
		}
	}
	if (n == 0) {
		snprintf(msg, cap, "%s", lww_strerror(rep->status));
	}
	return code;
}

/* Exits with the node's error, if the reply carries one. */
static void
check_reply(nng_msg *m, const lww_rep *rep)
{
	char msg[LWW_ERRMSG_MAX + 1];
	int code;

	if (rep->status == LWW_OK) {
		return;
	}
	code = reply_error(rep, msg, sizeof(msg));
	nng_msg_free(m);
	die(code, "%s", msg);
}

/* Encodes q, sends it (connecting first if need be) and returns the
 * node's successful reply; exits with the node's error otherwise. The
 * caller frees *m. */
static void
request(const lww_req *q, nng_msg **m, lww_rep *rep)
{
	static lww_buf b;

	lww_buf_reset(&b);
	if (lww_req_encode(&b, q) != LWW_OK) {
		die(EXIT_REFUSED, "cannot encode request");
	}
	connect_api();
	call(&b, m, rep);
	check_reply(*m, rep);
}

static void
check_key(const uint8_t *k, size_t n)
{
	(void) k;
	if (n < LWW_KEY_MIN) {
		die(EXIT_REFUSED, "key is empty (keys are 1 to %d bytes)",
		    LWW_KEY_MAX);
	}
	if (n > LWW_KEY_MAX) {
		die(EXIT_REFUSED, "key longer than %d bytes (%zu given)",
		    LWW_KEY_MAX, n);
	}
}

static uint8_t *
read_stdin(size_t max, size_t *n)
{
	size_t cap = 65536, len = 0;
	uint8_t *p = malloc(cap);

	if (p == NULL) {
		die(EXIT_REFUSED, "out of memory");
	}
	for (;;) {
		size_t r;
		if (len == cap) {
			if (cap > max) {
				free(p);
				die(EXIT_REFUSED,
				    "value longer than %zu bytes on stdin",
				    max);
			}
			cap *= 2;
			uint8_t *np = realloc(p, cap);
			if (np == NULL) {
				free(p);
				die(EXIT_REFUSED, "out of memory");
			}
			p = np;
		}
		r = fread(p + len, 1, cap - len, stdin);
		len += r;
		if (r == 0) {
			break;
		}
	}
	if (ferror(stdin)) {
		free(p);
		die(EXIT_REFUSED, "cannot read stdin: %s", strerror(errno));
	}
	if (len > max) {
		free(p);
		die(EXIT_REFUSED, "value longer than %zu bytes on stdin", max);
	}
	*n = len;
	return p;
}

/* ---- commands ---- */

static int
cmd_write(int op, int argc, char **argv)
{
	lww_req q = {.op = (uint8_t) op};
	uint8_t *stdin_val = NULL;
	nng_msg *m;
	lww_rep rep;

	(void) argc;
	q.key = (const uint8_t *) argv[0];
	q.klen = strlen(argv[0]);
	check_key(q.key, q.klen);
	if (op == LWW_OP_ADD) {
		if (strcmp(argv[1], "-") == 0) {
			stdin_val = read_stdin(LWW_VAL_MAX, &q.vlen);
			q.val = stdin_val;
		} else {
			q.val = (const uint8_t *) argv[1];
			q.vlen = strlen(argv[1]);
		}
		if (q.vlen > LWW_VAL_MAX) {
			die(EXIT_REFUSED,
			    "value longer than %d bytes (%zu given)",
			    LWW_VAL_MAX, q.vlen);
		}
	}
	request(&q, &m, &rep);
	if (g.json) {
		fputc('{', stdout);
		json_bytes(stdout, "key", q.key, q.klen);
		fputc(',', stdout);
		json_stamp(stdout, rep.hlc, rep.node);
		fputs("}\n", stdout);
	}
	nng_msg_free(m);
	free(stdin_val);
	return EXIT_OK;
}

static int
cmd_lookup(int argc, char **argv)
{
	lww_req q = {.op = LWW_OP_LOOKUP};
	nng_msg *m;
	lww_rep rep;

	(void) argc;
	q.key = (const uint8_t *) argv[0];
	q.klen = strlen(argv[0]);
	check_key(q.key, q.klen);
	request(&q, &m, &rep);
	if (g.json) {
		json_entry(stdout, &rep.entry);
	} else {
		fwrite(rep.entry.val, 1, rep.entry.vlen, stdout);
		fputc('\n', stdout);
	}
	nng_msg_free(m);
	return EXIT_OK;
}

static int
cmd_list(int argc, char **argv)
{
	lww_req q = {.op = LWW_OP_LIST, .limit = LWW_LIST_LIMIT_MAX};
	uint8_t after[LWW_KEY_MAX];
	uint64_t damaged = 0;
	int more;

	if (argc == 1) {
		q.key = (const uint8_t *) argv[0];
		q.klen = strlen(argv[0]);
		if (q.klen > LWW_KEY_MAX) {
			die(EXIT_REFUSED, "prefix longer than %d bytes",
			    LWW_KEY_MAX);
		}
	}
	do {
		nng_msg *m;
		lww_rep rep;
		lww_entry e;
		size_t off = 0;

		request(&q, &m, &rep);
		if (rep.op != LWW_OP_LIST) {
			nng_msg_free(m);
			die(EXIT_UNREACHABLE, "unexpected reply from %s",
			    g.api);
		}
		while (lww_entries_next(&rep.entries, &off, &e)) {
			if (g.json) {
				json_entry(stdout, &e);
			} else {
				fwrite(e.key, 1, e.klen, stdout);
				fputc('\n', stdout);
			}
			memcpy(after, e.key, e.klen);
			q.after = after;
			q.alen = e.klen;
		}
		/* Damaged records are skipped by the node; say so at the
		 * end, after every sound one is out. */
		damaged += rep.damaged;
		more = rep.more && rep.entries.count > 0;
		nng_msg_free(m);
	} while (more);
	if (damaged > 0) {
		fflush(stdout);
		die(EXIT_REFUSED,
		    "%llu stored record%s failed %s checksum and %s left out; "
		    "the node drops %s and repair fetches sound copies from "
		    "peers (see its log, event=record_damaged)",
		    (unsigned long long) damaged, damaged == 1 ? "" : "s",
		    damaged == 1 ? "its" : "their",
		    damaged == 1 ? "was" : "were",
		    damaged == 1 ? "it" : "them");
	}
	return EXIT_OK;
}

static int
cmd_reload(int argc, char **argv)
{
	lww_req q = {.op = LWW_OP_RELOAD};
	nng_msg *m;
	lww_rep rep;

	(void) argc;
	(void) argv;
	request(&q, &m, &rep);
	if (g.json) {
		puts("{\"reloaded\":true}");
	}
	nng_msg_free(m);
	return EXIT_OK;
}

/* ---- human-readable stats and peers ----
 * The node answers both in JSON (flat objects, one level of nesting,
 * names limited to [A-Za-z0-9._-]); --json prints that as it is. For
 * people, a tiny walker over exactly that shape prints aligned tables. */

typedef void (*json_pair_fn)(const char *key, size_t klen, const char *val,
                             size_t vlen, void *arg);

/* Walks one object at *p, calling fn for every scalar; a nested object's
 * fields get "outer." before their names. Returns the position after the
 * object, or NULL if the text is not of that shape. */
static const char *
walk_object(const char *p, const char *prefix, json_pair_fn fn, void *arg)
{
	char key[128];

	if (*p++ != '{') {
		return NULL;
	}
	while (*p && *p != '}') {
		const char *k, *v;
		size_t kl;
		int n;
		if (*p == ',') {
			p++;
		}
		if (*p++ != '"' || (k = strchr(p, '"')) == NULL) {
			return NULL;
		}
		n = snprintf(key, sizeof(key), "%s%.*s", prefix, (int) (k - p),
		             p);
		kl = n < 0                      ? 0
		     : (size_t) n < sizeof(key) ? (size_t) n
		                                : sizeof(key) - 1;
		p = k + 1;
		if (*p++ != ':') {
			return NULL;
		}
		if (*p == '[') {
			/* An array (stats' recent deliveries): too long for a
			 * table; counted, and left to --json. */
			int depth = 0, items = 0;
			char cnt[48];
			for (; *p; p++) {
				if (*p == '[' || *p == '{') {
					items += *p == '{' && depth == 1;
					depth++;
				} else if (*p == ']' || *p == '}') {
					if (--depth == 0) {
						break;
					}
				}
			}
			if (*p++ != ']') {
				return NULL;
			}
			snprintf(cnt, sizeof(cnt), "%d entries (see --json)",
			         items);
			fn(key, kl, cnt, strlen(cnt), arg);
			continue;
		}
		if (*p == '{') {
			char sub[130];
			snprintf(sub, sizeof(sub), "%.*s.", (int) kl, key);
			if ((p = walk_object(p, sub, fn, arg)) == NULL) {
				return NULL;
			}
			continue;
		}
		if (*p == '"') {
			v = ++p;
			if ((p = strchr(p, '"')) == NULL) {
				return NULL;
			}
			fn(key, kl, v, (size_t) (p - v), arg);
			p++;
			continue;
		}
		v = p;
		while (*p && *p != ',' && *p != '}') {
			p++;
		}
		fn(key, kl, v, (size_t) (p - v), arg);
	}
	return *p == '}' ? p + 1 : NULL;
}

static void
print_pair(const char *key, size_t klen, const char *val, size_t vlen,
           void *arg)
{
	(void) arg;
	printf("%-28.*s %.*s\n", (int) klen, key, (int) vlen, val);
}

#define PEER_COLS 11
typedef struct peer_row {
	char f[PEER_COLS][40];
	/* A configured address, or a neighbour on the gossip link (lwwd
	 * appends these after the origins; "kind" says which). */
	char kind[16], url[256], dial[24], state[16], last_error[160];
	char direction[8], mode[8], copies[24], duplicates[24], forwarded[24];
} peer_row;

static const char *const peer_cols[PEER_COLS] = {"name",
                                                 "node",
                                                 "last_contact_ms_ago",
                                                 "seq",
                                                 "lag",
                                                 "batches",
                                                 "last_repair_ms_ago",
                                                 "repair_keys",
                                                 "clock_offset_ms",
                                                 "clock_uncertainty_ms",
                                                 "clock_refused_ours"};
static const char *const peer_heads[] = {
    "NAME",    "NODE",        "LAST CONTACT", "SEQ",          "LAG",
    "BATCHES", "LAST REPAIR", "REPAIRED",     "CLOCK OFFSET", "REFUSED"};

static void
peer_pair(const char *key, size_t klen, const char *val, size_t vlen, void *arg)
{
	peer_row *r = arg;
	struct {
		const char *k;
		char *dst;
		size_t n;
	} addr[] = {{"kind", r->kind, sizeof(r->kind)},
	            {"url", r->url, sizeof(r->url)},
	            {"dial", r->dial, sizeof(r->dial)},
	            {"state", r->state, sizeof(r->state)},
	            {"last_error", r->last_error, sizeof(r->last_error)},
	            {"direction", r->direction, sizeof(r->direction)},
	            {"mode", r->mode, sizeof(r->mode)},
	            {"copies", r->copies, sizeof(r->copies)},
	            {"duplicates", r->duplicates, sizeof(r->duplicates)},
	            {"forwarded", r->forwarded, sizeof(r->forwarded)}};
	for (size_t i = 0; i < sizeof(addr) / sizeof(addr[0]); i++) {
		if (strlen(addr[i].k) == klen &&
		    memcmp(addr[i].k, key, klen) == 0) {
			snprintf(addr[i].dst, addr[i].n, "%.*s", (int) vlen,
			         val);
		}
	}
	for (size_t i = 0; i < PEER_COLS; i++) {
		if (strlen(peer_cols[i]) == klen &&
		    memcmp(peer_cols[i], key, klen) == 0) {
			snprintf(r->f[i], sizeof(r->f[i]), "%.*s", (int) vlen,
			         strncmp(val, "null", vlen) == 0 && vlen == 4
			             ? "-"
			             : val);
			/* Ages in ms become "1.2s ago", or "never". */
			if (strstr(peer_cols[i], "ms_ago") != NULL) {
				long long ms = atoll(r->f[i]);
				if (ms < 0) {
					snprintf(r->f[i], sizeof(r->f[i]),
					         "never");
				} else {
					snprintf(r->f[i], sizeof(r->f[i]),
					         "%.1fs ago",
					         (double) ms / 1000);
				}
			}
		}
	}
}

static int
print_human(int op, const char *text)
{
	const char *p = text;

	if (op == LWW_OP_STATS) {
		return walk_object(p, "", print_pair, NULL) != NULL ? 0 : -1;
	}
	if (*p++ != '[') {
		return -1;
	}
	printf("%-16s %-16s %-14s %16s %6s %8s %-14s %8s %-16s %7s\n",
	       peer_heads[0], peer_heads[1], peer_heads[2], peer_heads[3],
	       peer_heads[4], peer_heads[5], peer_heads[6], peer_heads[7],
	       peer_heads[8], peer_heads[9]);
	int addr_head = 0, nb_head = 0;
	while (*p == '{' || *p == ',') {
		peer_row r;
		if (*p == ',') {
			p++;
		}
		memset(&r, 0, sizeof(r));
		if ((p = walk_object(p, "", peer_pair, &r)) == NULL) {
			return -1;
		}
		if (strcmp(r.kind, "neighbour") == 0) {
			if (!nb_head) {
				printf(
				    "\n%-16s %-9s %-5s %-14s %8s %8s %9s %s\n",
				    "NEIGHBOUR", "DIRECTION", "MODE",
				    "LAST CONTACT", "COPIES", "DUPS",
				    "FORWARDED", "URL");
				nb_head = 1;
			}
			printf("%-16s %-9s %-5s %-14s %8s %8s %9s %s\n", r.f[0],
			       r.direction, r.mode, r.f[2], r.copies,
			       r.duplicates, r.forwarded,
			       strcmp(r.url, "null") == 0 ? "(dialled us)"
			                                  : r.url);
			continue;
		}
		if (strcmp(r.kind, "address") == 0) {
			if (!addr_head) {
				printf("\n%-40s %-15s %-11s %s\n", "ADDRESS",
				       "DIALLED AS", "STATE", "LAST ERROR");
				addr_head = 1;
			}
			printf("%-40s %-15s %-11s %s\n", r.url, r.dial, r.state,
			       r.last_error[0] ? r.last_error : "-");
			continue;
		}
		/* Offset and uncertainty: "+12ms ±1", or "-" unknown. */
		char clk[48] = "-";
		if (r.f[8][0] != '\0' && strcmp(r.f[8], "-") != 0) {
			snprintf(clk, sizeof(clk), "%+lldms \302\261%s",
			         atoll(r.f[8]), r.f[9]);
		}
		printf("%-16s %-16s %-14s %16s %6s %8s %-14s %8s %-16s %7s\n",
		       r.f[0], r.f[1], r.f[2], r.f[3], r.f[4], r.f[5], r.f[6],
		       r.f[7], clk, r.f[10][0] ? r.f[10] : "0");
	}
	return *p == ']' ? 0 : -1;
}

static int
cmd_text(int op, int argc, char **argv)
{
	lww_req q = {.op = (uint8_t) op};
	nng_msg *m;
	lww_rep rep;

	(void) argc;
	(void) argv;
	request(&q, &m, &rep);
	if (g.json) {
		fwrite(rep.text, 1, rep.textlen, stdout);
		fputc('\n', stdout);
	} else {
		char *text = malloc(rep.textlen + 1);
		if (text == NULL) {
			die(EXIT_REFUSED, "out of memory");
		}
		memcpy(text, rep.text, rep.textlen);
		text[rep.textlen] = '\0';
		if (print_human(op, text) != 0) {
			/* Not the shape we know (a newer node?): show it raw. */
			printf("%s\n", text);
		}
		free(text);
	}
	nng_msg_free(m);
	return EXIT_OK;
}

/* A load in progress: the batch being built and what the node stored. */
typedef struct load_state {
	lww_buf b;
	size_t loaded; /* entries the node has stored */
	size_t first;  /* the stdin line of the batch's first entry */
} load_state;

static void load_fail(load_state *st, size_t line, int code, const char *fmt,
                      ...) __attribute__((format(printf, 4, 5)));

/* Stops a load at stdin line `line`: says how many entries were stored
 * (every line before it, so `tail -n +LINE` resumes) in plain text on
 * stderr and, with --json, as {"loaded":N,"line":L,"error":"..."} on
 * stdout. */
static void
load_fail(load_state *st, size_t line, int code, const char *fmt, ...)
{
	char why[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	if (isatty(STDERR_FILENO) && st->loaded > 0) {
		fputc('\n', stderr);
	}
	if (g.json) {
		printf("{\"loaded\":%zu,\"line\":%zu,\"error\":", st->loaded,
		       line);
		json_str(stdout, (const uint8_t *) why, strlen(why));
		fputs("}\n", stdout);
		fflush(stdout);
	}
	die(code,
	    "stdin line %zu: %s; stopped there with %zu entr%s stored (the "
	    "lines before it); resume with: tail -n +%zu FILE | lwwctl load",
	    line, why, st->loaded, st->loaded == 1 ? "y" : "ies", line);
}

/* Sends the batch as one LOAD request and checks its reply. */
static void
load_flush(load_state *st, size_t next_line)
{
	char msg[LWW_ERRMSG_MAX + 1];
	nng_msg *m;
	lww_rep rep;

	if (lww_load_count(&st->b) == 0) {
		st->first = next_line;
		return;
	}
	call(&st->b, &m, &rep);
	if (rep.status != LWW_OK) {
		int code = reply_error(&rep, msg, sizeof(msg));
		nng_msg_free(m);
		load_fail(st, st->first, code,
		          "the node refused the batch from this line on: %s",
		          msg);
	}
	st->loaded += rep.count;
	nng_msg_free(m);
	if (isatty(STDERR_FILENO)) {
		fprintf(stderr, "\rlwwctl: loaded %zu", st->loaded);
	}
	lww_load_begin(&st->b);
	st->first = next_line;
}

/* Finds "name": in a JSON object line and returns the start of its value. */
static const char *
json_find(const char *line, const char *name)
{
	char pat[64];
	const char *p;
	snprintf(pat, sizeof(pat), "\"%s\":", name);
	p = strstr(line, pat);
	if (p == NULL) {
		return NULL;
	}
	/* Other tools write "name": "value"; list writes no space. */
	for (p += strlen(pat); *p == ' ' || *p == '\t'; p++) {
	}
	return p;
}

/* Decodes a JSON string value (as list prints it) into out. */
static int
json_unstr(const char *p, uint8_t *out, size_t max, size_t *n)
{
	size_t len = 0;
	if (p == NULL || *p != '"') {
		return -1;
	}
	for (p++; *p && *p != '"'; p++) {
		int c = (unsigned char) *p;
		if (c == '\\') {
			p++;
			switch (*p) {
			case 'n':
				c = '\n';
				break;
			case 't':
				c = '\t';
				break;
			case 'r':
				c = '\r';
				break;
			case '"':
				c = '"';
				break;
			case '\\':
				c = '\\';
				break;
			case '/':
				c = '/';
				break;
			case 'u': {
				unsigned v;
				if (sscanf(p + 1, "%4x", &v) != 1 || v > 0x7f) {
					return -1; /* list escapes only ASCII */
				}
				c = (int) v;
				p += 4;
				break;
			}
			default:
				return -1;
			}
		}
		if (len >= max) {
			return -1;
		}
		out[len++] = (uint8_t) c;
	}
	if (*p != '"') {
		return -1;
	}
	*n = len;
	return 0;
}

/* Reads key or value from a JSON line: text, or base64 per NAME_encoding. */
static int
json_field_bytes(const char *line, const char *name, uint8_t *out, size_t max,
                 size_t *n)
{
	char enc[32];
	const char *e;
	snprintf(enc, sizeof(enc), "%s_encoding", name);
	e = json_find(line, enc);
	if (json_unstr(json_find(line, name), out, max, n) != 0) {
		return -1;
	}
	if (e != NULL && strncmp(e, "\"base64\"", 8) == 0) {
		size_t bin;
		uint8_t *tmp = malloc(*n + 1);
		if (tmp == NULL) {
			return -1;
		}
		if (sodium_base642bin(tmp, *n + 1, (const char *) out, *n, NULL,
		                      &bin, NULL,
		                      sodium_base64_VARIANT_ORIGINAL) != 0) {
			free(tmp);
			return -1;
		}
		memcpy(out, tmp, bin);
		*n = bin;
		free(tmp);
	}
	return 0;
}

static int
cmd_load(int argc, char **argv)
{
	static uint8_t key[LWW_KEY_MAX * 2 + 8];
	uint8_t *val = malloc(LWW_VAL_MAX * 2 + 8);
	load_state st = {LWW_BUF_INIT, 0, 1};
	char *line = NULL;
	size_t cap = 0, lineno = 0;
	ssize_t len;

	(void) argc;
	(void) argv;
	if (val == NULL) {
		die(EXIT_REFUSED, "out of memory");
	}
	connect_api();
	lww_load_begin(&st.b);
	while ((len = getline(&line, &cap, stdin)) != -1) {
		lww_entry e = {0};
		char bad[128] = "";
		lineno++;
		if (len > 0 && line[len - 1] == '\n') {
			line[--len] = '\0';
		}
		/* Files from Windows end lines with CRLF: the \r is not part
		 * of the value. */
		if (len > 0 && line[len - 1] == '\r') {
			line[--len] = '\0';
		}
		if (len == 0) {
			continue;
		}
		if (g.json) {
			size_t kl = 0, vl = 0;
			if (json_field_bytes(line, "key", key, sizeof(key),
			                     &kl) != 0) {
				snprintf(bad, sizeof(bad), "no valid \"key\"");
			} else if (json_find(line, "removed") != NULL) {
				e.flags = LWW_ENTRY_TOMBSTONE;
			} else if (json_field_bytes(line, "value", val,
			                            LWW_VAL_MAX * 2,
			                            &vl) != 0) {
				snprintf(bad, sizeof(bad),
				         "no valid \"value\"");
			}
			e.key = key;
			e.klen = kl;
			e.val = val;
			e.vlen = vl;
		} else {
			char *tab = memchr(line, '\t', (size_t) len);
			if (tab == NULL) {
				snprintf(bad, sizeof(bad),
				         "want KEY<TAB>VALUE, found no tab");
			} else {
				e.key = (const uint8_t *) line;
				e.klen = (size_t) (tab - line);
				e.val = (const uint8_t *) tab + 1;
				e.vlen = (size_t) (line + len - tab - 1);
			}
		}
		if (!bad[0] && (e.klen < LWW_KEY_MIN || e.klen > LWW_KEY_MAX)) {
			snprintf(bad, sizeof(bad), "key must be 1 to %d bytes",
			         LWW_KEY_MAX);
		}
		if (!bad[0] && e.vlen > LWW_VAL_MAX) {
			snprintf(bad, sizeof(bad), "value longer than %d bytes",
			         LWW_VAL_MAX);
		}
		if (bad[0]) {
			/* Store every good line before this one first, so the
			 * count is exact and a resume starts here. */
			load_flush(&st, lineno);
			load_fail(&st, lineno, EXIT_REFUSED, "%s", bad);
		}
		if (st.b.len + lww_entry_size(&e) >
		        LWW_BATCH_BYTES_TARGET * 4 ||
		    lww_load_count(&st.b) == LWW_BATCH_ENTRIES_MAX) {
			load_flush(&st, lineno);
		}
		if (lww_load_add(&st.b, &e) != LWW_OK) {
			load_flush(&st, lineno);
			load_fail(&st, lineno, EXIT_REFUSED, "cannot encode");
		}
	}
	load_flush(&st, lineno + 1);
	if (isatty(STDERR_FILENO) && st.loaded > 0) {
		fputc('\n', stderr);
	}
	if (g.json) {
		printf("{\"loaded\":%zu}\n", st.loaded);
	}
	free(line);
	free(val);
	lww_buf_fini(&st.b);
	return EXIT_OK;
}

static int
cmd_keygen(int argc, char **argv)
{
	char text[LWW_PK_TEXT_LEN + 1];
	lww_key k;
	lww_err rv;

	(void) argc;
	if (lww_key_generate(&k) != LWW_OK) {
		die(EXIT_REFUSED, "cannot generate a key");
	}
	rv = lww_key_save(&k, argv[0]);
	lww_key_wipe(&k);
	if (rv != LWW_OK) {
		die(EXIT_REFUSED, "cannot write %s: %s%s", argv[0],
		    lww_strerror(rv),
		    rv == LWW_EEXIST ? " (will not overwrite a key)" : "");
	}
	lww_pk_to_text(k.pk, text, sizeof(text));
	if (g.json) {
		printf("{\"file\":");
		json_str(stdout, (const uint8_t *) argv[0], strlen(argv[0]));
		printf(",\"public_key\":\"%s\",\"node\":\"%016" PRIx64 "\"}\n",
		       text, lww_node_id(k.pk));
	} else {
		printf("%s\n", text);
	}
	return EXIT_OK;
}

static int
run_add(int argc, char **argv)
{
	return cmd_write(LWW_OP_ADD, argc, argv);
}

static int
run_remove(int argc, char **argv)
{
	return cmd_write(LWW_OP_REMOVE, argc, argv);
}

static int
run_stats(int argc, char **argv)
{
	return cmd_text(LWW_OP_STATS, argc, argv);
}

static int
run_peers(int argc, char **argv)
{
	return cmd_text(LWW_OP_PEERS, argc, argv);
}

static int run_help(int argc, char **argv);

/* The one command table: parsing, argument counts, the overview and each
 * command's usage all come from it. help lines after the first are
 * continuation lines. */
typedef struct command {
	const char *name;
	const char *args;
	int min, max; /* operands */
	int (*run)(int argc, char **argv);
	const char *help;
} command;

static const command commands[] = {
    {"add", "KEY VALUE", 2, 2, run_add,
     "write VALUE under KEY; VALUE '-' reads stdin\n"
     "(binary-safe); prints nothing (--json: the stamp).\n"
     "A VALUE starting with '-' needs -- before it:\n"
     "lwwctl add -- KEY -5"},
    {"remove", "KEY", 1, 1, run_remove,
     "remove KEY (a tombstone that replicates)"},
    {"lookup", "KEY", 1, 1, cmd_lookup,
     "print the value and a newline; exit 1 if absent\n"
     "(--json: key, value and stamp)"},
    {"list", "[PREFIX]", 0, 1, cmd_list,
     "keys in byte order, one a line (--json: one object\n"
     "a line with key, value and stamp)"},
    {"load", "", 0, 0, cmd_load,
     "bulk writes from stdin: KEY<TAB>VALUE lines (CRLF\n"
     "too), or with --json the objects that list prints.\n"
     "On a bad line it stops, stores the lines before it\n"
     "and says how many (--json: {\"loaded\":N,\"line\":L,\n"
     "\"error\":\"...\"}), exit 4"},
    {"stats", "", 0, 0, run_stats, "node counters (--json: one JSON object)"},
    {"peers", "", 0, 0, run_peers,
     "every trusted origin (last contact, sequence seen, lag, repair,\n"
     "clock), each configured address, and the neighbours on the gossip\n"
     "link (eager or lazy, copies); --json: one array, \"kind\" says which"},
    {"reload", "", 0, 0, cmd_reload,
     "make the node re-read its trust and clients files"},
    {"keygen", "FILE", 1, 1, cmd_keygen,
     "make an Ed25519 key pair: FILE (secret, mode 0600)\n"
     "and FILE.pub (the public key for trust files)"},
    {"help", "[COMMAND]", 0, 1, run_help, "this text, or one command's usage"},
};

#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static const command *
find_command(const char *name)
{
	for (size_t i = 0; i < NCOMMANDS; i++) {
		if (strcmp(commands[i].name, name) == 0) {
			return &commands[i];
		}
	}
	return NULL;
}

/* Prints text with every line after the first indented by `indent`. */
static void
print_indented(FILE *f, const char *text, int indent)
{
	for (const char *p = text; *p;) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t) (nl - p) : strlen(p);
		fprintf(f, "%.*s\n", (int) n, p);
		p += n;
		if (*p == '\n' && *++p) {
			fprintf(f, "%*s", indent, "");
		}
	}
}

static void
print_usage(FILE *f)
{
	fputs("usage: lwwctl [OPTIONS] COMMAND [ARGS]\n\ncommands:\n", f);
	for (size_t i = 0; i < NCOMMANDS; i++) {
		char head[32];
		snprintf(head, sizeof(head), "%s %s", commands[i].name,
		         commands[i].args);
		fprintf(f, "  %-17s ", head);
		print_indented(f, commands[i].help, 20);
	}
	fputc('\n', f);
	fputs(options_text, f);
}

static void
print_command_usage(FILE *f, const command *c)
{
	fprintf(f, "usage: lwwctl [OPTIONS] %s%s%s\n\n", c->name,
	        c->args[0] ? " " : "", c->args);
	print_indented(f, c->help, 0);
	fputc('\n', f);
	fputs(options_text, f);
}

static int
run_help(int argc, char **argv)
{
	const command *c;

	if (argc == 0) {
		print_usage(stdout);
		return EXIT_OK;
	}
	if ((c = find_command(argv[0])) == NULL) {
		usage_error("help: unknown command '%s'", argv[0]);
	}
	print_command_usage(stdout, c);
	return EXIT_OK;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"api", required_argument, NULL, 'a'},
	    {"key", required_argument, NULL, 'k'},
	    {"timeout", required_argument, NULL, 't'},
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	const command *c;
	int ch, help = 0;

	g.api = getenv("LWW_API");
	g.api_from = "$LWW_API";
	g.keyfile = getenv("LWW_KEY");
	/* Options may come before or after the command, as in etcdctl and
	 * consul: getopt permutes them to the front. A leading '-' in an
	 * argument is an option unless -- came before it. ':' first: a
	 * missing option argument is told apart from an unknown option. */
	opterr = 0;
	while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (ch) {
		case 'a':
			g.api = optarg;
			g.api_from = "--api";
			break;
		case 'k':
			g.keyfile = optarg;
			break;
		case 't': {
			char *end;
			long v;
			errno = 0;
			v = strtol(optarg, &end, 10);
			if (errno || *end || v < 1 || v > 3600000) {
				usage_error(
				    "--timeout '%s': want 1..3600000 ms",
				    optarg);
			}
			g.timeout_ms = (int) v;
			break;
		}
		case 'j':
			g.json = 1;
			break;
		case 'h':
			help = 1;
			break;
		case 'V':
			printf("lwwctl %s\n", LWW_VERSION);
			return EXIT_OK;
		case ':':
			usage_error("option %s needs a value",
			            argv[optind - 1]);
			break;
		default:
			if (optopt != 0) {
				usage_error("unknown option '-%c' (an argument "
				            "starting with '-' goes after --)",
				            optopt);
			}
			usage_error("unknown option '%s' (an argument starting "
			            "with '-' goes after --)",
			            argv[optind - 1]);
		}
	}
	if (optind >= argc) {
		if (help) {
			print_usage(stdout);
			return EXIT_OK;
		}
		usage_error("%s", "missing COMMAND");
	}
	if ((c = find_command(argv[optind])) == NULL) {
		usage_error("unknown command '%s'", argv[optind]);
	}
	optind++;
	argc -= optind;
	argv += optind;
	if (help) {
		print_command_usage(stdout, c);
		return EXIT_OK;
	}
	if (argc < c->min || argc > c->max) {
		fprintf(stderr, "lwwctl: %s: %s\n", c->name,
		        argc < c->min ? "missing argument"
		                      : "too many arguments");
		fprintf(stderr,
		        "usage: lwwctl [OPTIONS] %s%s%s (lwwctl help %s)\n",
		        c->name, c->args[0] ? " " : "", c->args, c->name);
		return EXIT_USAGE;
	}
	if (sodium_init() < 0) {
		die(EXIT_REFUSED, "libsodium failed to initialise");
	}
	return c->run(argc, argv);
}
