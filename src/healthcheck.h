#ifndef MJQ_HEALTHCHECK_H
#define MJQ_HEALTHCHECK_H

#include <stddef.h>

/*
 * Entry point of `mjq health`: GETs the supervisor's health endpoint
 * (argv[0] is "health"), for container health checks in an image that
 * has no curl. Returns the process exit code: 0 on HTTP 2xx, 1 on any
 * other answer or no answer, 64 usage or no address to check, 78 an
 * unreadable config file or an invalid admin.listen in it.
 */
int healthcheck_main(int argc, char **argv);

/*
 * The default URL: http://<listen>/healthz, where listen is
 * MJQ_HTTP_LISTEN's HOST:PORT (NULL: 127.0.0.1:9187) with a wildcard or
 * empty host (0.0.0.0, *, ::) replaced by the loopback address. Writes
 * it into buf. Returns 0, or -1 if listen is not HOST:PORT.
 */
int healthcheck_default_url(const char *listen, char *buf, size_t len);

#endif
