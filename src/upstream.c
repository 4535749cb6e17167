/*
 * upstream.c: outbound HTTP through libcurl's multi interface, driven by the
 * gateway's libevent loop (STYLE.md section (d), "Upstream: curl multi glue").
 *
 * One struct upstream owns one CURLM, one evtimer for libcurl's timeout and
 * one persistent event per socket libcurl asks us to watch; a kept-alive
 * connection's stays registered between transfers (see upstream_socket_cb).
 * Each transfer is a struct upstream_req that owns its easy handle, header
 * list, response buffer and captured headers until its completion has run.
 *
 * Re-entrancy: completions run from upstream_drain(), after
 * curl_multi_socket_action() has returned, so a completion may call
 * upstream_start(), upstream_cancel() (on another transfer) and even
 * upstream_free(). The last is deferred until the libevent callback that
 * delivered the completion unwinds (the hiredis adapter's ENTERED/DELETED
 * idea), so the drain loop never touches freed memory.
 *
 * Streaming (req->stream set): the write callback hands each piece of body
 * to on_data instead of collecting it, and on_head runs from the header
 * callback at the blank line that ends the final response's headers. A PAUSE
 * verdict pauses receiving with curl_easy_pause(); upstream_resume() lifts
 * it from a zero-delay timer (see the comments there for libcurl's rules).
 *
 * Address filter (opts->addr_filter, e.g. ssrf.c's for tenant callbacks):
 * asked from libcurl's open-socket callback for every address about to be
 * connected to, after DNS; a refused transfer ends UPSTREAM_ERR_NOT_SENT
 * with "address not allowed: <ip>". Handles without one are unaffected.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <event2/event.h>

#include "gw.h"
#include "upstream.h"

/* Used when the caller passes 0 (or less): never run a transfer unbounded. */
#define UPSTREAM_DEFAULT_MAX_RESPONSE (1024 * 1024)
#define UPSTREAM_DEFAULT_CONNECT_TIMEOUT_MS 10000L
#define UPSTREAM_DEFAULT_TIMEOUT_MS 30000L
#define UPSTREAM_BUF_MIN 1024

const char *const upstream_result_text[UPSTREAM_RESULT_MAX] = {
    [UPSTREAM_OK] = "ok",
    [UPSTREAM_ERR_NOT_SENT] = "not_sent",
    [UPSTREAM_ERR_TIMEOUT] = "timeout",
    [UPSTREAM_ERR_BROKEN] = "broken",
    [UPSTREAM_ERR_TOO_LARGE] = "too_large",
    [UPSTREAM_ERR_CANCELLED] = "cancelled",
    [UPSTREAM_ERR_INTERNAL] = "internal",
};

#define UPSTREAM_IDLE_HANDLES 256 /* easy handles kept for reuse */
#define UPSTREAM_IDLE_CONNECTIONS 512 /* kept-alive connections, without a total cap */

/*
 * One socket libcurl asked us to watch, or a connection socket our
 * open-socket callback made (owned). An owned one lives from that callback
 * to our close-socket callback and is found by fd in up->byfd, so a kept-
 * alive connection keeps its struct, and its libevent registration, between
 * transfers: libcurl says CURL_POLL_REMOVE when a transfer lets go of the
 * connection and asks again when the next one takes it, and re-registering
 * each time costs an epoll_ctl ADD and DEL per transfer.
 */
struct upstream_sock {
    struct upstream *up;        /* owner */
    curl_socket_t fd;           /* the socket */
    struct event *ev;           /* EV_PERSIST with evflags, callback arg is this struct */
    short evflags;              /* EV_READ/EV_WRITE it is added with; 0: not added */
    int want;                   /* libcurl's last CURL_POLL_IN/OUT/INOUT; 0: not watched */
    unsigned owned : 1;         /* made by upstream_on_opensocket; up->byfd[fd] is this */
    unsigned read_seen : 1;     /* libcurl waited to read from it since it was opened */
    unsigned verified : 1;      /* fstat says fd is still the socket we opened */
    dev_t dev;                  /* identity of the socket we opened */
    ino_t ino;
    struct upstream_sock *prev; /* list of live sockets (for upstream_free) */
    struct upstream_sock *next;
};

struct upstream {
    struct event_base *base;     /* borrowed; must outlive upstream_free() */
    CURLM *multi;                /* owns the connection cache */
    struct event *timer;         /* libcurl's single timeout */
    size_t max_response_bytes;   /* body cap for every transfer */
    int running;                 /* transfers started and not yet completed */
    int entered;                 /* depth of libevent callbacks inside us */
    unsigned closing : 1;        /* upstream_free() is cancelling transfers */
    unsigned dead : 1;           /* upstream_free() deferred until entered == 0 */
    struct upstream_req *reqs;   /* running transfers */
    struct upstream_sock *socks; /* watched and owned sockets */
    struct upstream_sock **byfd; /* owned sockets by fd, nbyfd slots */
    int nbyfd;

    upstream_addr_filter addr_filter; /* asked before every connect, or NULL */
    void *addr_filter_arg;

    /* Finished easy handles kept for the next transfers: curl_easy_init()
     * allocates and sets up a large handle, curl_easy_reset() only clears it. */
    CURL *idle[UPSTREAM_IDLE_HANDLES];
    int nidle;
};

struct upstream_req {
    struct upstream *up;        /* owner */
    CURL *easy;                 /* owned; CURLOPT_PRIVATE points back here */
    struct curl_slist *headers; /* owned; libcurl does not copy it */
    upstream_cb cb;             /* completion, NULL once cancelled */
    void *arg;
    size_t body_len; /* request body length, for SEND_ERROR analysis */
    char *buf;       /* response body, NUL-terminated when done */
    size_t len;
    size_t cap;
    char *content_type; /* from the final response only */
    char *retry_after;
    int attempts;                /* times libcurl was about to send the request */
    unsigned in_headers : 1;     /* between a status line and its blank line */
    unsigned too_large : 1;      /* write callback refused: over the cap */
    unsigned oom : 1;            /* allocation failed in a callback */
    unsigned resend_blocked : 1; /* we refused libcurl's silent re-send */
    unsigned completing : 1;     /* its completion is running */
    unsigned addr_refused : 1;   /* the address filter refused an address */
    struct upstream_req *prev;
    struct upstream_req *next;
    /* streaming mode only */
    const struct upstream_stream *stream; /* the caller's, or NULL: collect the body */
    struct event *resume_ev;              /* zero-delay timer behind upstream_resume() */
    unsigned head_done : 1;               /* on_head has run */
    unsigned paused : 1;                  /* a verdict paused; no on_data until resumed */
    unsigned aborted : 1;                 /* a verdict aborted; no more callbacks */
    char errbuf[CURL_ERROR_SIZE];
    char refused[80]; /* "address not allowed: <ip>", the last address refused */
};

/* What libcurl knows about how far a failed transfer got. */
struct upstream_progress {
    long request_size;       /* CURLINFO_REQUEST_SIZE: bytes of the first send */
    curl_off_t upload_bytes; /* CURLINFO_SIZE_UPLOAD_T: body bytes sent */
    long header_bytes;       /* CURLINFO_HEADER_SIZE: response header bytes */
    curl_off_t connect_us;   /* CURLINFO_CONNECT_TIME_T: 0 if never connected */
};

static void upstream_destroy(struct upstream *up);
static void upstream_sock_adopt(struct upstream *up, curl_socket_t fd);
static int upstream_on_closesocket(void *arg, curl_socket_t fd);

/* ------------------------------------------------------------------------ */
/* small helpers                                                             */

static void
upstream_tv_from_ms(struct timeval *tv, long ms)
{
    tv->tv_sec = ms / 1000;
    tv->tv_usec = (ms % 1000) * 1000;
}

static char *
upstream_strndup_trim(const char *s, size_t n)
{
    char *out;

    while (n > 0 && (*s == ' ' || *s == '\t')) {
        s++;
        n--;
    }
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n')) {
        n--;
    }
    out = malloc(n + 1);
    if (out == NULL) {
        return NULL;
    }
    memcpy(out, s, n);
    out[n] = '\0';
    return out;
}

/* Make room for n more bytes plus the terminating NUL. */
static int
upstream_buf_reserve(struct upstream_req *r, size_t n)
{
    size_t need, cap;
    char *p;

    if (n > SIZE_MAX - r->len - 1) {
        return GW_ERR;
    }
    need = r->len + n + 1;
    if (need <= r->cap) {
        return GW_OK;
    }
    cap = r->cap > 0 ? r->cap : UPSTREAM_BUF_MIN;
    while (cap < need) {
        if (cap > SIZE_MAX / 2) {
            cap = need;
            break;
        }
        cap *= 2;
    }
    p = realloc(r->buf, cap);
    if (p == NULL) {
        return GW_ERR;
    }
    r->buf = p;
    r->cap = cap;
    return GW_OK;
}

static void
upstream_link_req(struct upstream *up, struct upstream_req *r)
{
    r->prev = NULL;
    r->next = up->reqs;
    if (up->reqs != NULL) {
        up->reqs->prev = r;
    }
    up->reqs = r;
    up->running++;
}

static void
upstream_unlink_req(struct upstream *up, struct upstream_req *r)
{
    if (r->prev != NULL) {
        r->prev->next = r->next;
    } else {
        up->reqs = r->next;
    }
    if (r->next != NULL) {
        r->next->prev = r->prev;
    }
    r->prev = r->next = NULL;
    up->running--;
}

/* Free a request that is no longer attached to the multi handle. */
static void
upstream_req_free(struct upstream_req *r)
{
    struct upstream *up = r->up;

    if (r->easy != NULL && !up->closing && up->nidle < UPSTREAM_IDLE_HANDLES) {
        curl_easy_reset(r->easy);
        up->idle[up->nidle++] = r->easy;
    } else if (r->easy != NULL) {
        curl_easy_cleanup(r->easy);
    }
    if (r->resume_ev != NULL) {
        event_free(r->resume_ev);
    }
    curl_slist_free_all(r->headers);
    free(r->buf);
    free(r->content_type);
    free(r->retry_after);
    free(r);
}

/* ------------------------------------------------------------------------ */
/* per-transfer libcurl callbacks (never call back into the multi from here) */

/* Streaming: run on_head (once) for the final response; returns its verdict. */
static enum upstream_stream_verdict
upstream_stream_head(struct upstream_req *r)
{
    long status = 0;
    curl_off_t content_length = -1;

    r->head_done = 1;
    if (r->stream->on_head == NULL) {
        return UPSTREAM_STREAM_CONTINUE;
    }
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
    if (curl_easy_getinfo(r->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &content_length) !=
        CURLE_OK) {
        content_length = -1;
    }
    return r->stream->on_head(status, r->content_type, (long long)content_length, r->arg);
}

/*
 * Streaming: act on a verdict given for n bytes the callee has already taken
 * (on_data's chunk, or the header line that ended the head). Returns what
 * the libcurl callback must return: n, or 0 to abort (CURLE_WRITE_ERROR).
 *
 * PAUSE must not return CURL_WRITEFUNC_PAUSE here: libcurl would keep these
 * bytes and deliver them again on resume. So the bytes count as consumed and
 * receiving is paused with curl_easy_pause(CURLPAUSE_RECV), which libcurl
 * 7.88 explicitly allows from inside a callback (lib/easy.c: "one of few API
 * functions that are allowed to be called from within a callback"). From
 * then on libcurl holds back whatever it still receives (at most one more
 * read buffer plus the rest of the current one) in its pause buffer and
 * hands it over after CURLPAUSE_CONT, in order. Its chop_write() may still
 * call us for the rest of a piece larger than CURL_MAX_WRITE_SIZE in the
 * same loop; upstream_stream_write() answers those with CURL_WRITEFUNC_PAUSE
 * (not consumed, kept by libcurl). Every failure inside curl_easy_pause()
 * comes after the pause bit is set, so its result does not matter here.
 */
static size_t
upstream_stream_verdict(struct upstream_req *r, enum upstream_stream_verdict v, size_t n)
{
    if (v == UPSTREAM_STREAM_ABORT) {
        r->aborted = 1;
        return 0;
    }
    if (v == UPSTREAM_STREAM_PAUSE) {
        r->paused = 1;
        (void)curl_easy_pause(r->easy, CURLPAUSE_RECV);
    }
    return n;
}

/* Streaming write callback: hand body bytes to on_data, never store them. */
static size_t
upstream_stream_write(struct upstream_req *r, char *ptr, size_t n)
{
    if (r->aborted) {
        return 0;
    }
    if (r->paused) {
        /* the rest of a piece libcurl is still chopping: keep it for resume */
        return CURL_WRITEFUNC_PAUSE;
    }
    if (!r->head_done) {
        /* only if the header callback never saw the head end; nothing taken yet */
        enum upstream_stream_verdict v = upstream_stream_head(r);

        if (v == UPSTREAM_STREAM_ABORT) {
            r->aborted = 1;
            return 0;
        }
        if (v == UPSTREAM_STREAM_PAUSE) {
            r->paused = 1;
            return CURL_WRITEFUNC_PAUSE; /* libcurl keeps ptr and pauses */
        }
    }
    if (r->stream->on_data == NULL) {
        return n;
    }
    return upstream_stream_verdict(r, r->stream->on_data(ptr, n, r->arg), n);
}

/*
 * Append body bytes. Returning a short count makes libcurl abort with
 * CURLE_WRITE_ERROR; the flags tell the classifier why. In streaming mode
 * the bytes go to on_data instead and the cap does not apply.
 */
static size_t
upstream_on_write(char *ptr, size_t size, size_t nmemb, void *arg)
{
    struct upstream_req *r = arg;
    size_t n = size * nmemb;

    if (n == 0) {
        return 0;
    }
    if (r->stream != NULL) {
        return upstream_stream_write(r, ptr, n);
    }
    if (n > r->up->max_response_bytes || r->len > r->up->max_response_bytes - n) {
        r->too_large = 1;
        return 0;
    }
    if (upstream_buf_reserve(r, n) != GW_OK) {
        r->oom = 1;
        return 0;
    }
    memcpy(r->buf + r->len, ptr, n);
    r->len += n;
    return n;
}

/* 1 if the header line starts with name followed by ':' (case-insensitive). */
static int
upstream_header_is(const char *line, size_t n, const char *name, size_t *value_off)
{
    size_t nl = strlen(name);

    if (n <= nl || line[nl] != ':' || strncasecmp(line, name, nl) != 0) {
        return 0;
    }
    *value_off = nl + 1;
    return 1;
}

static int
upstream_header_store(char **slot, const char *line, size_t n, size_t off)
{
    char *v = upstream_strndup_trim(line + off, n - off);

    if (v == NULL) {
        return GW_ERR;
    }
    free(*slot);
    *slot = v;
    return GW_OK;
}

/*
 * Capture Content-Type and Retry-After from the final response. libcurl
 * passes every status line (1xx interim responses included) and every header
 * line, then a blank line; trailers come after the blank line and are
 * ignored. A new status line forgets what an earlier response said.
 *
 * Streaming: the blank line of a final response (status >= 200, so never a
 * 1xx interim one; a 3xx too, as redirects are not followed) runs on_head.
 * libcurl 7.88 has settled the content length before this call
 * (Curl_http_size() runs "before the final call to the user's header
 * callback"), and no body byte has been delivered yet.
 */
static size_t
upstream_on_header(char *line, size_t size, size_t nmemb, void *arg)
{
    struct upstream_req *r = arg;
    size_t n = size * nmemb;
    size_t off;
    char **slot = NULL;

    if (n >= 5 && memcmp(line, "HTTP/", 5) == 0) {
        free(r->content_type);
        free(r->retry_after);
        r->content_type = NULL;
        r->retry_after = NULL;
        r->in_headers = 1;
        return n;
    }
    if (n == 0 || line[0] == '\r' || line[0] == '\n') {
        long status = 0;

        if (r->in_headers && r->stream != NULL && !r->head_done && !r->aborted &&
            curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status) == CURLE_OK &&
            status >= 200) {
            r->in_headers = 0;
            return upstream_stream_verdict(r, upstream_stream_head(r), n);
        }
        r->in_headers = 0;
        return n;
    }
    if (!r->in_headers) {
        return n;
    }
    if (upstream_header_is(line, n, "content-type", &off)) {
        slot = &r->content_type;
    } else if (upstream_header_is(line, n, "retry-after", &off)) {
        slot = &r->retry_after;
    }
    if (slot != NULL && upstream_header_store(slot, line, n, off) != GW_OK) {
        r->oom = 1;
        return 0;
    }
    return n;
}

/*
 * Called by libcurl right before it sends the request on a new or reused
 * connection. libcurl 7.88 silently re-sends a request on a fresh connection
 * when a reused connection died before any response byte arrived
 * (Curl_retry_request), even for POST. The vendor may have acted on the
 * first copy, so a second one could place the call twice. Allow a second
 * attempt only when nothing at all was written by the first; otherwise abort
 * and report UPSTREAM_ERR_BROKEN.
 */
static int
upstream_on_prereq(void *arg, char *primary_ip, char *local_ip, int primary_port, int local_port)
{
    struct upstream_req *r = arg;
    long request_size = 0;
    curl_off_t upload = 0;

    r->attempts++;
    if (r->attempts == 1) {
        return CURL_PREREQFUNC_OK;
    }
    if (curl_easy_getinfo(r->easy, CURLINFO_REQUEST_SIZE, &request_size) != CURLE_OK ||
        curl_easy_getinfo(r->easy, CURLINFO_SIZE_UPLOAD_T, &upload) != CURLE_OK ||
        request_size != 0 || upload != 0) {
        r->resend_blocked = 1;
        return CURL_PREREQFUNC_ABORT;
    }
    return CURL_PREREQFUNC_OK;
}

/*
 * CURLOPT_OPENSOCKETFUNCTION, set on every handle. libcurl calls it with each
 * resolved address right before connect() (every address it tries, happy
 * eyeballs included). With an address filter, the filter judges the address
 * really connected to, whatever the name resolved to this time. A refusal
 * is CURL_SOCKET_BAD: libcurl moves on to the next address or fails with
 * CURLE_COULDNT_CONNECT (NOT_SENT; nothing was connected). A reused
 * connection skips this, but libcurl reuses only for the same host and port,
 * and the connection's address was judged when it was opened. Every socket
 * made here is owned (upstream_sock_adopt) until upstream_on_closesocket.
 */
static curl_socket_t
upstream_on_opensocket(void *arg, curlsocktype purpose, struct curl_sockaddr *address)
{
    struct upstream_req *r = arg;
    struct upstream *up = r->up;
    curl_socket_t fd;

    if (up->addr_filter != NULL && !up->addr_filter(&address->addr, up->addr_filter_arg)) {
        char ip[INET6_ADDRSTRLEN] = "?";
        const struct sockaddr *sa = &address->addr;

        if (sa->sa_family == AF_INET) {
            inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, ip,
                      sizeof(ip));
        } else if (sa->sa_family == AF_INET6) {
            inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, ip,
                      sizeof(ip));
        }
        r->addr_refused = 1;
        snprintf(r->refused, sizeof(r->refused), "address not allowed: %s", ip);
        return CURL_SOCKET_BAD;
    }
    /* what libcurl does without this callback */
    fd = socket(address->family, address->socktype, address->protocol);
    if (fd != CURL_SOCKET_BAD) {
        upstream_sock_adopt(up, fd);
    }
    return fd;
}

/* ------------------------------------------------------------------------ */
/* classification                                                            */

/*
 * Map a finished transfer to enum upstream_result.
 *
 * These requests place phone calls, so the one question that matters is:
 * can the vendor have seen a complete request? UPSTREAM_ERR_NOT_SENT is a
 * promise that it did not, and callers may retry on it (even on another
 * vendor). Every other failure is ambiguous and must not be retried blindly.
 * When in doubt the answer is therefore "maybe sent".
 *
 * "Something was sent" (sent below) is: CURLINFO_REQUEST_SIZE > 0 (bytes of
 * the request's first send(); libcurl 7.88 counts only that first write),
 * or CURLINFO_SIZE_UPLOAD_T > 0 (body bytes, plus any request bytes sent
 * after the first write), or CURLINFO_HEADER_SIZE > 0 (the peer answered).
 *
 *   CURLE_OK                         -> OK, whatever the HTTP status.
 *   write callback over the cap      -> TOO_LARGE (the vendor did answer).
 *   our pre-request hook refused a silent re-send -> BROKEN (the first copy
 *                                       may have been acted on).
 *   resolve, connect, TLS handshake and certificate errors, protocol not
 *   allowed, malformed URL           -> NOT_SENT: these stop libcurl before
 *                                       it writes the request. If sent is
 *                                       nevertheless true (libcurl reuses
 *                                       some codes later, e.g. an HTTP/0.9
 *                                       reply is UNSUPPORTED_PROTOCOL) the
 *                                       result is BROKEN.
 *   CURLE_OPERATION_TIMEDOUT         -> NOT_SENT only if the TCP connection
 *                                       was never up (CONNECT_TIME_T == 0,
 *                                       also true while queued for a
 *                                       connection slot) and nothing was
 *                                       sent; otherwise TIMEOUT.
 *   CURLE_SEND_ERROR                 -> NOT_SENT if nothing was sent, or if
 *                                       the request has a body and fewer
 *                                       than body_len body bytes went out
 *                                       (the vendor cannot have a complete
 *                                       request; the upload counter may
 *                                       over-count, never under-count) and
 *                                       no response byte came back;
 *                                       otherwise BROKEN.
 *   CURLE_OUT_OF_MEMORY, CURLE_FAILED_INIT -> INTERNAL if nothing was sent,
 *                                       else BROKEN.
 *   CURLE_RECV_ERROR, CURLE_GOT_NOTHING, CURLE_PARTIAL_FILE, a write error
 *   that was not the cap, and any code not listed -> BROKEN.
 */
static enum upstream_result
upstream_classify(const struct upstream_req *r, CURLcode rc, const struct upstream_progress *p)
{
    int sent = p->request_size > 0 || p->upload_bytes > 0 || p->header_bytes > 0;

    if (rc == CURLE_OK) {
        return UPSTREAM_OK;
    }
    if (r->too_large && rc == CURLE_WRITE_ERROR) {
        return UPSTREAM_ERR_TOO_LARGE;
    }
    if (r->resend_blocked) {
        return UPSTREAM_ERR_BROKEN;
    }

    switch (rc) {
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT:
    case CURLE_NOT_BUILT_IN:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_USE_SSL_FAILED:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CLIENTCERT:
        return sent ? UPSTREAM_ERR_BROKEN : UPSTREAM_ERR_NOT_SENT;

    case CURLE_OPERATION_TIMEDOUT:
        if (!sent && p->connect_us == 0) {
            return UPSTREAM_ERR_NOT_SENT;
        }
        return UPSTREAM_ERR_TIMEOUT;

    case CURLE_SEND_ERROR:
        if (!sent) {
            return UPSTREAM_ERR_NOT_SENT;
        }
        if (r->body_len > 0 && p->header_bytes == 0 && p->upload_bytes >= 0 &&
            (uint64_t)p->upload_bytes < (uint64_t)r->body_len) {
            return UPSTREAM_ERR_NOT_SENT;
        }
        return UPSTREAM_ERR_BROKEN;

    case CURLE_OUT_OF_MEMORY:
    case CURLE_FAILED_INIT:
        return sent ? UPSTREAM_ERR_BROKEN : UPSTREAM_ERR_INTERNAL;

    default:
        return UPSTREAM_ERR_BROKEN;
    }
}

/* ------------------------------------------------------------------------ */
/* completion                                                                */

/*
 * Complete one transfer that is still attached to the multi handle: read
 * what libcurl knows, detach the easy handle, call the completion exactly
 * once (unless cancelled), free. forced is UPSTREAM_RESULT_MAX for a transfer
 * libcurl finished with rc, or the result to report instead (CANCELLED).
 */
static void
upstream_complete(struct upstream_req *r, CURLcode rc, enum upstream_result forced)
{
    struct upstream *up = r->up;
    struct upstream_progress p = {0};
    struct upstream_response resp = {0};
    enum upstream_result res;
    long status = 0;
    curl_off_t total_us = 0;

    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(r->easy, CURLINFO_TOTAL_TIME_T, &total_us);
    curl_easy_getinfo(r->easy, CURLINFO_REQUEST_SIZE, &p.request_size);
    curl_easy_getinfo(r->easy, CURLINFO_SIZE_UPLOAD_T, &p.upload_bytes);
    curl_easy_getinfo(r->easy, CURLINFO_HEADER_SIZE, &p.header_bytes);
    curl_easy_getinfo(r->easy, CURLINFO_CONNECT_TIME_T, &p.connect_us);

    curl_multi_remove_handle(up->multi, r->easy);
    upstream_unlink_req(up, r);

    res = forced != UPSTREAM_RESULT_MAX ? forced : upstream_classify(r, rc, &p);

    resp.status = status;
    if (r->buf != NULL) {
        r->buf[r->len] = '\0';
        resp.body = r->buf;
    } else {
        resp.body = "";
    }
    resp.body_len = r->len;
    resp.content_type = r->content_type;
    resp.retry_after = r->retry_after;
    resp.total_ms = (double)total_us / 1000.0;
    if (res == UPSTREAM_OK) {
        resp.error = "";
    } else if (res == UPSTREAM_ERR_CANCELLED) {
        resp.error = "cancelled";
    } else if (res == UPSTREAM_ERR_TOO_LARGE) {
        resp.error = "response body over the size cap";
    } else if (r->resend_blocked) {
        resp.error = "connection died after the request was sent; not re-sent";
    } else if (r->aborted) {
        resp.error = "aborted by the stream receiver";
    } else if (r->oom) {
        resp.error = "out of memory";
    } else if (r->addr_refused && rc == CURLE_COULDNT_CONNECT) {
        /* libcurl only says it could not connect; say why */
        resp.error = r->refused;
    } else if (r->errbuf[0] != '\0') {
        resp.error = r->errbuf;
    } else {
        resp.error = curl_easy_strerror(rc);
    }

    if (r->cb != NULL) {
        r->completing = 1;
        if (r->stream != NULL && !r->head_done && res == UPSTREAM_OK) {
            /* a response libcurl never showed us a head end for: still once */
            (void)upstream_stream_head(r);
        }
        r->cb(res, &resp, r->arg);
    }
    upstream_req_free(r);
}

/* Deliver every finished transfer libcurl has queued. */
static void
upstream_drain(struct upstream *up)
{
    CURLMsg *msg;
    int left;

    while (!up->dead && (msg = curl_multi_info_read(up->multi, &left)) != NULL) {
        char *priv = NULL;
        CURLcode rc;

        if (msg->msg != CURLMSG_DONE) {
            continue;
        }
        rc = msg->data.result; /* msg is invalid after remove_handle */
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
        if (priv == NULL) {
            curl_multi_remove_handle(up->multi, msg->easy_handle);
            continue;
        }
        upstream_complete((struct upstream_req *)priv, rc, UPSTREAM_RESULT_MAX);
    }
}

/* Leave a libevent callback; run a deferred upstream_free() on the way out. */
static void
upstream_leave(struct upstream *up)
{
    up->entered--;
    if (up->entered == 0 && up->dead) {
        upstream_destroy(up);
    }
}

/* ------------------------------------------------------------------------ */
/* libevent <-> libcurl glue                                                 */

static int upstream_sock_watch(struct upstream_sock *s, int what);

/*
 * libevent: a socket is ready. If libcurl does not watch it (an idle kept-
 * alive connection, usually closed by the peer, or a paused transfer's),
 * libcurl would ignore the news and the level-triggered event would fire
 * again at once: stop listening until libcurl asks again.
 */
static void
upstream_on_socket(evutil_socket_t fd, short events, void *arg)
{
    struct upstream_sock *s = arg;
    struct upstream *up = s->up; /* s may be freed inside socket_action */
    int mask = 0;
    int running = 0;

    if (s->want == 0) {
        (void)upstream_sock_watch(s, 0);
        return;
    }
    if (events & EV_READ) {
        mask |= CURL_CSELECT_IN;
    }
    if (events & EV_WRITE) {
        mask |= CURL_CSELECT_OUT;
    }
    up->entered++;
    curl_multi_socket_action(up->multi, fd, mask, &running);
    upstream_drain(up);
    upstream_leave(up);
}

/* libevent: libcurl's timeout expired. */
static void
upstream_on_timer(evutil_socket_t fd, short events, void *arg)
{
    struct upstream *up = arg;
    int running = 0;

    up->entered++;
    curl_multi_socket_action(up->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    upstream_drain(up);
    upstream_leave(up);
}

/*
 * libevent: the zero-delay timer armed by upstream_resume(). Lifts the pause
 * from here, outside every libcurl callback and outside the caller's stack.
 * curl_easy_pause(CURLPAUSE_CONT) first hands the data libcurl held back to
 * the write callback (on_data may pause again meanwhile: libcurl 7.88 copies
 * its pause buffers before that flush "to allow for immediate re-pausing"),
 * then asks for the transfer to run now. An ABORT during the flush fails
 * only curl_easy_pause(), not the transfer, so that transfer is completed
 * here (BROKEN via the classifier: a write error). Otherwise libcurl is
 * driven at once instead of trusting its 0 ms timer request.
 */
static void
upstream_on_resume(evutil_socket_t fd, short events, void *arg)
{
    struct upstream_req *r = arg;
    struct upstream *up = r->up;
    CURLcode rc;
    int running = 0;

    if (!r->paused) {
        return;
    }
    up->entered++;
    r->paused = 0;
    rc = curl_easy_pause(r->easy, CURLPAUSE_CONT);
    if (rc != CURLE_OK) {
        upstream_complete(r, rc, UPSTREAM_RESULT_MAX);
    } else {
        curl_multi_socket_action(up->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    }
    upstream_drain(up);
    upstream_leave(up);
}

/* A socket struct for fd, in the list; not yet watched, not owned. */
static struct upstream_sock *
upstream_sock_new(struct upstream *up, curl_socket_t fd)
{
    struct upstream_sock *s = calloc(1, sizeof(*s));

    if (s == NULL) {
        return NULL;
    }
    s->ev = event_new(up->base, fd, EV_PERSIST, upstream_on_socket, s);
    if (s->ev == NULL) {
        free(s);
        return NULL;
    }
    s->up = up;
    s->fd = fd;
    s->next = up->socks;
    if (up->socks != NULL) {
        up->socks->prev = s;
    }
    up->socks = s;
    return s;
}

static void
upstream_sock_free(struct upstream *up, struct upstream_sock *s)
{
    if (s->prev != NULL) {
        s->prev->next = s->next;
    } else {
        up->socks = s->next;
    }
    if (s->next != NULL) {
        s->next->prev = s->prev;
    }
    if (s->owned && s->fd >= 0 && s->fd < up->nbyfd && up->byfd[s->fd] == s) {
        up->byfd[s->fd] = NULL;
    }
    event_free(s->ev);
    free(s);
}

/* The owned socket struct for fd, or NULL. */
static struct upstream_sock *
upstream_sock_owned(struct upstream *up, curl_socket_t fd)
{
    return fd >= 0 && fd < up->nbyfd ? up->byfd[fd] : NULL;
}

/*
 * Make s's libevent registration match what (CURL_POLL_IN/OUT/INOUT, or 0
 * for none). Nothing to do when it already does: the common case of a kept-
 * alive connection taken by the next transfer, still registered for reading.
 */
static int
upstream_sock_watch(struct upstream_sock *s, int what)
{
    short flags = 0;

    if (what & CURL_POLL_IN) {
        flags |= EV_READ;
    }
    if (what & CURL_POLL_OUT) {
        flags |= EV_WRITE;
    }
    if (flags == s->evflags) {
        return 0;
    }
    if (s->evflags != 0) {
        event_del(s->ev);
        s->evflags = 0;
    }
    if (flags == 0) {
        return 0;
    }
    if (event_assign(s->ev, s->up->base, s->fd, flags | EV_PERSIST, upstream_on_socket, s) != 0 ||
        event_add(s->ev, NULL) != 0) {
        return -1;
    }
    s->evflags = flags;
    return 0;
}

/* 1 if s->fd is still the socket upstream_on_opensocket made (fstat, once). */
static int
upstream_sock_verify(struct upstream_sock *s)
{
    struct stat st;

    if (!s->verified && fstat(s->fd, &st) == 0 && st.st_dev == s->dev && st.st_ino == s->ino) {
        s->verified = 1;
    }
    return s->verified;
}

/*
 * Our open-socket callback made fd: own it from now until our close-socket
 * callback. A struct already there means libcurl closed that fd without
 * telling us (7.88 closes a connect attempt it gave up on that way, e.g. a
 * happy-eyeballs loser); the kernel then dropped its epoll registration
 * while libevent still counts it, so register it anew if libcurl still
 * watches that fd number. Out of memory, fd is simply not owned: it is
 * watched the plain way, added and deleted per transfer.
 */
static void
upstream_sock_adopt(struct upstream *up, curl_socket_t fd)
{
    struct upstream_sock *s = upstream_sock_owned(up, fd);
    struct stat st;
    short flags;

    if (fd < 0 || fstat(fd, &st) != 0) {
        return;
    }
    if (fd >= up->nbyfd) {
        int n = up->nbyfd > 0 ? up->nbyfd : 64;
        struct upstream_sock **p;

        while (n <= fd) {
            n *= 2;
        }
        p = realloc(up->byfd, (size_t)n * sizeof(*p));
        if (p == NULL) {
            return;
        }
        memset(p + up->nbyfd, 0, (size_t)(n - up->nbyfd) * sizeof(*p));
        up->byfd = p;
        up->nbyfd = n;
    }
    if (s == NULL) {
        s = upstream_sock_new(up, fd);
        if (s == NULL) {
            return;
        }
        s->owned = 1;
        up->byfd[fd] = s;
    } else if ((flags = s->evflags) != 0) {
        event_del(s->ev); /* ENOENT from epoll, which libevent tolerates */
        s->evflags = 0;
        if (s->want != 0 && event_add(s->ev, NULL) == 0) {
            s->evflags = flags; /* libcurl will not ask again for what it has */
        }
    }
    s->dev = st.st_dev;
    s->ino = st.st_ino;
    s->read_seen = 0;
    s->verified = 0;
}

/*
 * CURLOPT_CLOSESOCKETFUNCTION, set on every handle: libcurl closes a
 * connection socket through here (after CURL_POLL_REMOVE, if it was
 * watched). The registration must go before the fd does: once the number is
 * reused (by the front end, hiredis or us), libevent would believe the new socket
 * already registered, and its events would be lost.
 */
static int
upstream_on_closesocket(void *arg, curl_socket_t fd)
{
    struct upstream *up = arg;
    struct upstream_sock *s = upstream_sock_owned(up, fd);

    if (s != NULL) {
        (void)upstream_sock_watch(s, 0);
        if (s->want == 0) {
            upstream_sock_free(up, s);
        } else {
            /* libcurl still holds it as its socket pointer: free it on REMOVE */
            up->byfd[fd] = NULL;
            s->owned = 0;
        }
    }
    return close(fd);
}

/*
 * CURLMOPT_SOCKETFUNCTION: watch, re-watch or forget a socket. May be called
 * from curl_multi_cleanup(). Returning -1 would abort every transfer, so
 * allocation failure is the only reason to do it.
 *
 * On CURL_POLL_REMOVE an owned connection socket stays registered for
 * reading ("parked") while it idles in libcurl's connection cache; the next
 * transfer to take it then usually asks for exactly that, and nothing needs
 * doing. Parking is safe only for a socket libcurl will close through our
 * close-socket callback: one that libcurl has waited to read from (so a
 * connected, active connection, never a connect attempt libcurl might drop
 * silently) and that fstat shows is still the socket we opened (not, say,
 * the resolver's socket pair on a number a dropped attempt freed). Any
 * other socket is deleted from libevent on REMOVE, as before.
 */
static int
upstream_socket_cb(CURL *easy, curl_socket_t fd, int what, void *arg, void *sockp)
{
    struct upstream *up = arg;
    struct upstream_sock *s = sockp;

    if (s == NULL) {
        s = upstream_sock_owned(up, fd);
        if (s == NULL && what == CURL_POLL_REMOVE) {
            return 0;
        }
        if (s == NULL && (s = upstream_sock_new(up, fd)) == NULL) {
            return -1;
        }
        if (what != CURL_POLL_REMOVE) {
            curl_multi_assign(up->multi, fd, s);
        }
    }
    if (what == CURL_POLL_REMOVE) {
        s->want = 0;
        if (!s->owned) {
            upstream_sock_free(up, s);
        } else if (!s->read_seen || s->evflags != EV_READ) {
            /* (an idle socket registered for writing would fire at once) */
            (void)upstream_sock_watch(s, 0);
        } else if (!upstream_sock_verify(s)) {
            /* byfd[fd] outlived its socket: not ours to keep */
            upstream_sock_free(up, s);
        }
        return 0;
    }
    s->want = what;
    if (what & CURL_POLL_IN) {
        s->read_seen = 1;
    }
    return upstream_sock_watch(s, what);
}

/*
 * CURLMOPT_TIMERFUNCTION: (re)arm or delete the single timer. Never drive
 * libcurl from here.
 *
 * A 0 ms request from outside our callbacks (curl_multi_add_handle() in
 * upstream_start() called by the front end, a Redis reply, ...) activates
 * the timer event instead: it runs later in this same loop pass, so the
 * request goes out without an extra epoll_wait() round, and every transfer
 * started in the pass shares the one run. From inside our callbacks (libcurl
 * asking again, or a completion starting a transfer) it waits for the next
 * pass as before, so nothing can keep the loop from polling.
 */
static int
upstream_timer_cb(CURLM *multi, long timeout_ms, void *arg)
{
    struct upstream *up = arg;
    struct timeval tv;

    if (timeout_ms < 0) {
        evtimer_del(up->timer);
        return 0;
    }
    if (timeout_ms == 0 && up->entered == 0) {
        event_active(up->timer, EV_TIMEOUT, 0);
        return 0;
    }
    upstream_tv_from_ms(&tv, timeout_ms);
    return evtimer_add(up->timer, &tv) == 0 ? 0 : -1;
}

/* ------------------------------------------------------------------------ */
/* public API                                                                */

/*
 * Create the multi handle and its timer on base. opts may be NULL; a zero
 * max_response_bytes means UPSTREAM_DEFAULT_MAX_RESPONSE (1 MiB), so no
 * transfer is ever uncapped. Returns NULL on failure. The caller must have
 * called curl_global_init().
 */
struct upstream *
upstream_new(struct event_base *base, const struct upstream_opts *opts)
{
    struct upstream *up;
    CURLMcode mc = CURLM_OK;

    if (base == NULL) {
        return NULL;
    }
    up = calloc(1, sizeof(*up));
    if (up == NULL) {
        return NULL;
    }
    up->base = base;
    up->max_response_bytes = UPSTREAM_DEFAULT_MAX_RESPONSE;
    if (opts != NULL && opts->max_response_bytes > 0) {
        up->max_response_bytes = opts->max_response_bytes;
    }
    if (opts != NULL && opts->addr_filter != NULL) {
        up->addr_filter = opts->addr_filter;
        up->addr_filter_arg = opts->addr_filter_arg;
    }
    up->timer = evtimer_new(base, upstream_on_timer, up);
    up->multi = curl_multi_init();
    if (up->timer == NULL || up->multi == NULL) {
        goto error;
    }
    mc |= curl_multi_setopt(up->multi, CURLMOPT_SOCKETFUNCTION, upstream_socket_cb);
    mc |= curl_multi_setopt(up->multi, CURLMOPT_SOCKETDATA, up);
    mc |= curl_multi_setopt(up->multi, CURLMOPT_TIMERFUNCTION, upstream_timer_cb);
    mc |= curl_multi_setopt(up->multi, CURLMOPT_TIMERDATA, up);
    if (opts != NULL && opts->max_host_connections > 0) {
        mc |=
            curl_multi_setopt(up->multi, CURLMOPT_MAX_HOST_CONNECTIONS, opts->max_host_connections);
    }
    if (opts != NULL && opts->max_total_connections > 0) {
        mc |= curl_multi_setopt(up->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS,
                                opts->max_total_connections);
    }
    /* libcurl sizes its idle-connection cache at 4 per transfer running, so
     * when load dips it closes kept-alive vendor connections and opens new
     * ones a moment later (each a dozen syscalls). Keep them. */
    mc |= curl_multi_setopt(up->multi, CURLMOPT_MAXCONNECTS,
                            opts != NULL && opts->max_total_connections > 0
                                ? opts->max_total_connections
                                : UPSTREAM_IDLE_CONNECTIONS);
    if (mc != CURLM_OK) {
        goto error;
    }
    return up;

error:
    if (up->multi != NULL) {
        curl_multi_cleanup(up->multi);
    }
    if (up->timer != NULL) {
        event_free(up->timer);
    }
    free(up);
    return NULL;
}

/* The real teardown: no transfers left, not inside one of our callbacks. */
static void
upstream_destroy(struct upstream *up)
{
    while (up->nidle > 0) {
        curl_easy_cleanup(up->idle[--up->nidle]);
    }
    /* the socket callback may run during cleanup: base and events still live */
    curl_multi_cleanup(up->multi);
    up->multi = NULL;
    while (up->socks != NULL) {
        upstream_sock_free(up, up->socks);
    }
    free(up->byfd);
    event_free(up->timer);
    free(up);
}

/*
 * Complete every running transfer with UPSTREAM_ERR_CANCELLED (each exactly
 * once), then free everything. Must run while the event base is alive. May
 * be called from a completion; the final free then waits until the libevent
 * callback that delivered it returns. upstream_start() fails meanwhile.
 */
void
upstream_free(struct upstream *up)
{
    if (up == NULL || up->closing) {
        return;
    }
    up->closing = 1;
    while (up->reqs != NULL) {
        upstream_complete(up->reqs, CURLE_OK, UPSTREAM_ERR_CANCELLED);
    }
    if (up->entered > 0) {
        up->dead = 1;
        return;
    }
    upstream_destroy(up);
}

/* 1 if s contains CR or LF (header injection). */
static int
upstream_has_crlf(const char *s)
{
    return strpbrk(s, "\r\n") != NULL;
}

/* Method and body options. */
static CURLcode
upstream_set_method(CURL *e, const struct upstream_request *req)
{
    const char *method = req->method;
    const char *body = req->body != NULL ? req->body : "";
    CURLcode rc = CURLE_OK;

    if (method == NULL) {
        method = req->body != NULL ? "POST" : "GET";
    }
    if (strcasecmp(method, "GET") == 0 && req->body == NULL) {
        return curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    }
    if (strcasecmp(method, "HEAD") == 0) {
        return curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    }
    if (strcasecmp(method, "DELETE") == 0 && req->body == NULL) {
        return curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, "DELETE");
    }
    /*
     * Everything else carries a body (possibly empty, so POST sends
     * Content-Length: 0 and never falls back to reading stdin). The size is
     * set first so COPYPOSTFIELDS copies body_len bytes, NULs included.
     */
    rc |= curl_easy_setopt(e, CURLOPT_POST, 1L);
    rc |= curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
                           (curl_off_t)(req->body != NULL ? req->body_len : 0));
    rc |= curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, body);
    if (strcasecmp(method, "POST") != 0) {
        rc |= curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    }
    return rc;
}

/*
 * Start a transfer; everything in req is copied. Returns NULL (and the
 * callback never runs) when the request is unusable: no URL, a header with
 * CR/LF, or libcurl/allocation failure. Otherwise cb runs exactly once, from
 * the event loop, never before this returns (libcurl starts the transfer from
 * its 0 ms timer). Non-positive timeouts get the defaults above.
 */
struct upstream_req *
upstream_start(struct upstream *up, const struct upstream_request *req, upstream_cb cb, void *arg)
{
    struct upstream_req *r;
    CURL *e;
    CURLcode rc = CURLE_OK;
    long connect_ms, total_ms;
    size_t i;

    if (up == NULL || up->closing || req == NULL || req->url == NULL || cb == NULL ||
        (req->method != NULL && upstream_has_crlf(req->method))) {
        return NULL;
    }
    r = calloc(1, sizeof(*r));
    if (r == NULL) {
        return NULL;
    }
    r->up = up;
    r->cb = cb;
    r->arg = arg;
    r->body_len = req->body != NULL ? req->body_len : 0;
    r->stream = req->stream;
    if (r->stream != NULL) {
        r->resume_ev = evtimer_new(up->base, upstream_on_resume, r);
        if (r->resume_ev == NULL) {
            goto error;
        }
    }
    r->easy = e = up->nidle > 0 ? up->idle[--up->nidle] : curl_easy_init();
    if (e == NULL) {
        goto error;
    }

    for (i = 0; req->headers != NULL && req->headers[i] != NULL; i++) {
        struct curl_slist *l;

        if (upstream_has_crlf(req->headers[i])) {
            goto error;
        }
        l = curl_slist_append(r->headers, req->headers[i]);
        if (l == NULL) {
            goto error;
        }
        r->headers = l;
    }
    {
        /* no 100-continue round trip: the body follows the headers at once */
        struct curl_slist *l = curl_slist_append(r->headers, "Expect:");

        if (l == NULL) {
            goto error;
        }
        r->headers = l;
    }

    connect_ms =
        req->connect_timeout_ms > 0 ? req->connect_timeout_ms : UPSTREAM_DEFAULT_CONNECT_TIMEOUT_MS;
    total_ms = req->timeout_ms > 0 ? req->timeout_ms : UPSTREAM_DEFAULT_TIMEOUT_MS;

    rc |= curl_easy_setopt(e, CURLOPT_URL, req->url);
    rc |= curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    rc |= curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    rc |= curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    rc |= curl_easy_setopt(e, CURLOPT_PROXY, "");
    rc |= curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
    rc |= curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    rc |= curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    if (req->small_answer && req->stream == NULL) {
        /* libcurl 7.88 allocates its receive buffer (16 KiB by default) for
         * every transfer and frees it after: at that size each one goes
         * through glibc's large-chunk path, which consolidates its fast bins.
         * 1 KiB is recycled from glibc's per-thread cache instead; a larger
         * answer is still read whole, in more pieces. */
        rc |= curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 1024L);
    }
    rc |= curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
    rc |= curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, total_ms);
    rc |= curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
    rc |= curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)r);
    rc |= curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
    rc |= curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, upstream_on_write);
    rc |= curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
    rc |= curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, upstream_on_header);
    rc |= curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
    rc |= curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, upstream_on_prereq);
    rc |= curl_easy_setopt(e, CURLOPT_PREREQDATA, r);
    rc |= curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, upstream_on_opensocket);
    rc |= curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, r);
    rc |= curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, upstream_on_closesocket);
    rc |= curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, up);
    rc |= upstream_set_method(e, req);
    if (rc != CURLE_OK) {
        goto error;
    }

    /* libcurl arms its timer (0 ms) here; nothing completes synchronously */
    if (curl_multi_add_handle(up->multi, e) != CURLM_OK) {
        goto error;
    }
    upstream_link_req(up, r);
    return r;

error:
    upstream_req_free(r);
    return NULL;
}

/*
 * Abort a running transfer without calling its callback, and free it. A
 * no-op on NULL and from inside the transfer's own completion (the handle is
 * freed when the completion returns). A streamed transfer gets no further
 * on_head or on_data either, paused or not: libcurl's held-back data and a
 * pending resume timer are freed with it.
 */
void
upstream_cancel(struct upstream_req *r)
{
    if (r == NULL || r->completing) {
        return;
    }
    r->cb = NULL;
    curl_multi_remove_handle(r->up->multi, r->easy);
    upstream_unlink_req(r->up, r);
    upstream_req_free(r);
}

/*
 * Continue a streamed transfer that on_head or on_data paused. A no-op on
 * NULL, on a transfer that is not paused (or not streamed), and from inside
 * its completion. The transfer does not continue inside this call: it only
 * arms a zero-delay timer, and on the next loop pass upstream_on_resume()
 * calls curl_easy_pause(CURLPAUSE_CONT) and drives libcurl. So on_data (and
 * the completion) never run synchronously from upstream_resume(), although
 * libcurl itself would flush held-back data from inside curl_easy_pause().
 * Until then the transfer stays paused, and its deadline keeps running.
 */
void
upstream_resume(struct upstream_req *r)
{
    static const struct timeval now = {0, 0};

    if (r == NULL || r->stream == NULL || !r->paused || r->completing || r->aborted) {
        return;
    }
    /* fails only out of memory: the transfer then ends at its deadline */
    (void)evtimer_add(r->resume_ev, &now);
}

/* Transfers started and not yet completed or cancelled. */
int
upstream_running(const struct upstream *up)
{
    return up != NULL ? up->running : 0;
}
