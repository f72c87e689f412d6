#include "healthcheck.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include <curl/curl.h>

#include "config.h"

/*
 * `mjq health [URL]`: the HEALTHCHECK of the container image. mjq links
 * libcurl already, so the image needs no curl or wget (fewer packages,
 * fewer CVEs to patch) for one GET. A short-lived CLI: the easy interface.
 */

#define DEFAULT_LISTEN    "127.0.0.1:9187"
#define DEFAULT_TIMEOUT_S 5
#define BODY_KEEP         200 /* bytes of a failing answer shown */

struct body {
    char text[BODY_KEEP + 1];
    size_t len;
};

/* WARNING: libcurl callback. Keeps the first bytes, swallows the rest. */
static size_t on_body(char *data, size_t size, size_t n, void *ctx)
{
    struct body *b = ctx;
    size_t len = size * n, room = BODY_KEEP - b->len;
    size_t take = len < room ? len : room;

    memcpy(b->text + b->len, data, take);
    b->len += take;
    b->text[b->len] = '\0';
    return len;
}

int healthcheck_default_url(const char *listen, char *buf, size_t len)
{
    const char *colon, *host;
    char *end;
    long port;
    int n, hlen;

    if (listen == NULL)
        listen = DEFAULT_LISTEN;
    colon = strrchr(listen, ':');
    if (colon == NULL || colon[1] == '\0')
        return -1;
    errno = 0;
    port = strtol(colon + 1, &end, 10);
    if (errno != 0 || *end != '\0' || port < 1 || port > 65535)
        return -1;
    host = listen;
    hlen = (int)(colon - listen);
    if (hlen == 0 || (hlen == 7 && strncmp(host, "0.0.0.0", 7) == 0) ||
        (hlen == 1 && host[0] == '*')) {
        host = "127.0.0.1";
        hlen = 9;
    } else if ((hlen == 2 && strncmp(host, "::", 2) == 0) ||
               (hlen == 4 && strncmp(host, "[::]", 4) == 0)) {
        host = "[::1]";
        hlen = 5;
    }
    n = snprintf(buf, len, "http://%.*s:%ld/healthz", hlen, host, port);
    return n < 0 || (size_t)n >= len ? -1 : 0;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: mjq health [URL] [--config FILE] [--timeout S]\n\n"
            "GETs URL and succeeds on HTTP 2xx: the container HEALTHCHECK, "
            "with no curl\nin the image. URL defaults to "
            "http://<admin address>/healthz, a wildcard host\n(0.0.0.0, "
            "::, empty) replaced by loopback. The admin address is\n"
            "MJQ_HTTP_LISTEN; else admin.listen of the config file "
            "(--config FILE or\nMJQ_CONFIG), only that setting read; "
            "else, with no file, %s.\n\n"
            "  --config FILE the file `mjq run` reads, for its "
            "admin.listen\n"
            "  --timeout S   whole request timeout in seconds (1..300, "
            "default %d)\n\n"
            "Exit codes: 0 HTTP 2xx, 1 any other status or no answer (the "
            "reason on\nstderr), 64 usage or no address to check, 78 the "
            "config file or its\nadmin.listen is invalid.\n",
            DEFAULT_LISTEN, DEFAULT_TIMEOUT_S);
}

/* Parses argv into *url, *config and *timeout_s. Returns 0, 1 after
 * --help, or -EX_USAGE. */
static int parse_args(int argc, char **argv, const char **url,
                      const char **config, long *timeout_s)
{
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *value = NULL;
        char *end;

        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            usage(stdout);
            return 1;
        }
        if (strncmp(arg, "--config=", 9) == 0) {
            *config = arg + 9;
            continue;
        }
        if (strcmp(arg, "--config") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "mjq health: --config: missing FILE\n");
                return -EX_USAGE;
            }
            *config = argv[++i];
            continue;
        }
        if (strncmp(arg, "--timeout=", 10) == 0)
            value = arg + 10;
        else if (strcmp(arg, "--timeout") == 0 && i + 1 < argc)
            value = argv[++i];
        if (value != NULL) {
            errno = 0;
            *timeout_s = strtol(value, &end, 10);
            if (errno != 0 || end == value || *end != '\0' || *timeout_s < 1 ||
                *timeout_s > 300) {
                fprintf(stderr, "mjq health: --timeout: want 1..300 s\n");
                return -EX_USAGE;
            }
            continue;
        }
        if (strncmp(arg, "-", 1) == 0 || *url != NULL) {
            fprintf(stderr,
                    "mjq health: unexpected argument '%s' (see "
                    "--help)\n",
                    arg);
            return -EX_USAGE;
        }
        *url = arg;
    }
    if (*url != NULL && strncmp(*url, "http://", 7) != 0 &&
        strncmp(*url, "https://", 8) != 0) {
        fprintf(stderr, "mjq health: URL must start with http:// or "
                        "https://\n");
        return -EX_USAGE;
    }
    return 0;
}

/* One GET. Returns 0 on 2xx, else 1 after printing why. */
static int check(const char *url, long timeout_s)
{
    char errbuf[CURL_ERROR_SIZE] = "";
    struct body body = {.len = 0};
    CURL *h = curl_easy_init();
    long status = 0;
    CURLcode res;

    if (h == NULL) {
        fprintf(stderr, "mjq health: cannot initialise libcurl\n");
        return 1;
    }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout_s * 1000);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, timeout_s * 1000);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "mjq-health/" MJQ_VERSION);
    res = curl_easy_perform(h);
    if (res == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(h);
    if (res != CURLE_OK) {
        fprintf(stderr, "mjq health: %s: %s\n", url,
                errbuf[0] != '\0' ? errbuf : curl_easy_strerror(res));
        return 1;
    }
    body.text[strcspn(body.text, "\r\n")] = '\0';
    if (status < 200 || status > 299) {
        fprintf(stderr, "mjq health: %s: HTTP %ld %s\n", url, status,
                body.text);
        return 1;
    }
    printf("%s: HTTP %ld\n", url, status);
    return 0;
}

/*
 * The default URL: MJQ_HTTP_LISTEN (more lenient than the config: ":PORT"
 * works), else the config file's admin.listen. Only that setting of the
 * file is read, so a mistake elsewhere in it (which the running
 * supervisor does not have: it read the file before) cannot make a
 * healthy container look sick. Returns 0, or an exit code after printing
 * why.
 */
static int default_url(const char *config, char *buf, size_t len)
{
    const char *listen = getenv("MJQ_HTTP_LISTEN");
    struct config cfg;
    struct config_error err;
    int rc;

    if (config == NULL)
        config = getenv("MJQ_CONFIG");
    if (listen != NULL || config == NULL || config[0] == '\0') {
        if (healthcheck_default_url(listen, buf, len) == 0)
            return 0;
        fprintf(stderr, "mjq health: MJQ_HTTP_LISTEN '%s': want HOST:PORT\n",
                listen);
        return EX_USAGE;
    }
    config_defaults(&cfg);
    rc = config_file_setting(&cfg, config, "admin.listen", &err);
    if (rc < 0) {
        char line[1024];

        config_error_format(&err, line, sizeof(line));
        fprintf(stderr, "mjq health: %s\n", line);
        rc = EX_CONFIG;
    } else if (cfg.admin_listen == NULL) {
        fprintf(stderr,
                "mjq health: no admin endpoint to check: MJQ_HTTP_LISTEN is "
                "unset and admin.listen in %s is %s; pass a URL\n",
                config, rc == 0 ? "not set" : "empty");
        rc = EX_USAGE;
    } else if (healthcheck_default_url(cfg.admin_listen, buf, len) != 0) {
        fprintf(stderr, "mjq health: admin.listen '%s' in %s: want HOST:PORT\n",
                cfg.admin_listen, config);
        rc = EX_USAGE;
    } else {
        rc = 0;
    }
    config_free(&cfg);
    return rc;
}

int healthcheck_main(int argc, char **argv)
{
    const char *url = NULL, *config = NULL;
    long timeout_s = DEFAULT_TIMEOUT_S;
    char buf[512];
    int rc = parse_args(argc, argv, &url, &config, &timeout_s);

    if (rc != 0)
        return rc > 0 ? 0 : -rc;
    if (url == NULL) {
        rc = default_url(config, buf, sizeof(buf));
        if (rc != 0)
            return rc;
        url = buf;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
        fprintf(stderr, "mjq health: cannot initialise libcurl\n");
        return 1;
    }
    rc = check(url, timeout_s);
    curl_global_cleanup();
    return rc;
}
