#ifndef MJQ_HTTP_H
#define MJQ_HTTP_H

#include <stddef.h>

#include <curl/curl.h>
#include <event2/event.h>

/*
 * Asynchronous HTTP client: libcurl's multi interface driven by libevent
 * (the hiperfifo shape). One struct http per process; connections are
 * reused across requests by the multi handle. Nothing here knows the MJ
 * API: that is upstream.c.
 */

struct http;
struct http_request;

struct http_response {
    long status;         /* HTTP status; 0 when no response arrived */
    int transport_error; /* 0, or the CURLcode of a transport failure */
    const char *error;   /* transport error text, "" when none */
    const char *body;    /* borrowed for the callback; NUL-terminated */
    size_t len;          /* body length in bytes */
    long retry_after_ms; /* Retry-After header in ms, -1 when absent */
    int maybe_delivered; /* 0 only when the request surely never reached
                          * the server (connect/resolve failure) */
};

/*
 * Called once per request that was not cancelled, from the event loop
 * (never from inside libcurl). resp and its body are borrowed. The
 * callback may start new requests.
 */
typedef void http_done_fn(const struct http_response *resp, void *ctx);

/*
 * Creates the client on base. Returns NULL if libcurl cannot be set up.
 * max_connections caps open connections (0: libcurl's default).
 */
struct http *http_new(struct event_base *base, long max_connections);

/*
 * Frees the client. Pending requests are dropped without their callbacks.
 * NULL-safe. Must not be called from an http_done_fn.
 */
void http_free(struct http *http);

/*
 * Starts a request. method is "GET" or "POST". headers is borrowed and
 * must outlive the request. body (POST only) is stolen: freed with free()
 * when the request ends; may be NULL. timeout_ms bounds the whole
 * request, connect_timeout_ms its connection set-up.
 * Returns a handle usable with http_cancel until the callback runs, or
 * NULL on failure (then cb is never called and body is freed).
 */
struct http_request *http_start(struct http *http, const char *method,
                                const char *url, struct curl_slist *headers,
                                char *body, size_t len, long timeout_ms,
                                long connect_timeout_ms, http_done_fn *cb,
                                void *ctx);

/* Aborts a request; its callback is never called. NULL-safe. */
void http_cancel(struct http_request *req);

/* Requests currently in flight. */
size_t http_in_flight(const struct http *http);

/* Total requests started since http_new (for metrics and benchmarks). */
unsigned long long http_requests_total(const struct http *http);

#endif
