/* WebSocket clients of the daemon's API, in C: the latency benchmarks' client side.
 *
 *     wsclients HOST PORT PATH CLIENTS T0 MAX_DURATION SEQ_PER_SECOND
 *
 * What benchmarks/wsclients.py's raw clients do (its docstring is the reference), for a
 * fraction of their CPU: the clients stand in for dashboards on other machines, yet share
 * the two cores with the daemon under test, so the less they take the less they distort
 * its latency. `python -m benchmarks.wsclients --impl c` builds this file (gcc, cached) and
 * runs it; tests/test_benchmarks.py checks it against the Python clients on one recording.
 *
 * Opens CLIENTS connections to ws://HOST:PORT/PATH, one every 2 ms; each client's first text
 * message (the snapshot) makes it ready, and {"ready": N} is printed once all are. Every later
 * text message holding "type":"event" counts, with its latency: the clock (CLOCK_MONOTONIC,
 * Python's time.monotonic) read once per read of the socket, minus T0, minus the send time
 * that the load generator put in its SEQ (SEQ_PER_SECOND units). Pings are answered with a
 * masked pong; a close frame or the end of the connection counts as closed. Runs until stdin
 * closes or MAX_DURATION seconds pass, then prints the result line that Tally.result prints.
 */

#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BUCKETS_PER_SECOND 50000 /* 20 us, as BUCKETS_PER_SECOND in wsclients.py */
#define MAX_BUCKETS (BUCKETS_PER_SECOND * 600)
#define READ_SIZE 65536
#define MAX_FRAME (64u << 20) /* a frame larger than this is a broken peer */

typedef struct {
    int fd;
    int upgraded;
    int index; /* -1 until the snapshot arrived */
    int open;
    unsigned char *buffer;
    size_t used, size;
} Client;

static double t0, seq_per_second;
static long clients_wanted, ready, events, closed;
static long *per_client;
static unsigned long *hist;
static long hist_size;
static double latency_max, first_time, last_time;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_time(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void fail(const char *what) {
    fprintf(stderr, "wsclients: %s: %s\n", what, strerror(errno));
    exit(2);
}

static void send_all(int fd, const void *data, size_t length) {
    const char *at = data;
    while (length) {
        ssize_t sent = send(fd, at, length, MSG_NOSIGNAL);
        if (sent < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            return; /* the connection is gone: its read says so */
        }
        at += sent;
        length -= (size_t)sent;
    }
}

static void message(Client *client, const unsigned char *payload, size_t length, double at) {
    const char *seq = memmem(payload, length, "\"seq\":", 6);
    if (seq == NULL || memmem(payload, length, "\"type\":\"event\"", 14) == NULL)
        return;
    const char *digit = seq + 6, *end = (const char *)payload + length;
    long long value = 0;
    while (digit < end && *digit >= '0' && *digit <= '9')
        value = value * 10 + (*digit++ - '0');
    double latency = at - t0 - value / seq_per_second;
    if (latency < 0.0)
        latency = 0.0;
    long bucket = (long)(latency * BUCKETS_PER_SECOND);
    if (bucket >= MAX_BUCKETS)
        bucket = MAX_BUCKETS - 1;
    if (bucket >= hist_size) {
        long size = hist_size ? hist_size : 4096;
        while (size <= bucket)
            size *= 2;
        hist = realloc(hist, size * sizeof *hist);
        if (hist == NULL)
            fail("realloc");
        memset(hist + hist_size, 0, (size - hist_size) * sizeof *hist);
        hist_size = size;
    }
    hist[bucket]++;
    if (latency > latency_max)
        latency_max = latency;
    if (!events)
        first_time = at;
    last_time = at;
    events++;
    per_client[client->index]++;
}

static void control_frame(Client *client, int opcode, const unsigned char *payload,
                          size_t length) {
    if (opcode == 1) { /* the first text message: the snapshot */
        client->index = (int)ready++;
        if (ready == clients_wanted) {
            printf("{\"ready\": %ld}\n", ready);
            fflush(stdout);
        }
    } else if (opcode == 9 && length <= 125) { /* ping: a masked pong with its payload */
        unsigned char pong[2 + 4 + 125];
        unsigned char mask[4] = {0x12, 0x34, 0x56, 0x78};
        pong[0] = 0x8A;
        pong[1] = 0x80 | (unsigned char)length;
        memcpy(pong + 2, mask, 4);
        for (size_t i = 0; i < length; i++)
            pong[6 + i] = payload[i] ^ mask[i % 4];
        send_all(client->fd, pong, 6 + length);
    } else if (opcode == 8) {
        closed++;
    }
}

/* Read the frames whole in the client's buffer; keep the partial one. */
static void frames(Client *client, double at) {
    unsigned char *buffer = client->buffer;
    size_t size = client->used, offset = 0;
    if (!client->upgraded) {
        unsigned char *end = memmem(buffer, size, "\r\n\r\n", 4);
        if (end == NULL)
            return;
        unsigned char *line_end = memmem(buffer, size, "\r\n", 2);
        if (memmem(buffer, (size_t)(line_end - buffer), " 101 ", 5) == NULL) {
            fprintf(stderr, "wsclients: handshake refused: %.80s\n", buffer);
            exit(2);
        }
        client->upgraded = 1;
        offset = (size_t)(end - buffer) + 4;
    }
    while (size - offset >= 2) {
        int opcode = buffer[offset] & 0x0F;
        uint64_t length = buffer[offset + 1] & 0x7F;
        size_t header = 2;
        if (length == 126) {
            if (size - offset < 4)
                break;
            length = ((uint64_t)buffer[offset + 2] << 8) | buffer[offset + 3];
            header = 4;
        } else if (length == 127) {
            if (size - offset < 10)
                break;
            length = 0;
            for (int i = 2; i < 10; i++)
                length = (length << 8) | buffer[offset + i];
            header = 10;
        }
        if (length > MAX_FRAME) {
            fprintf(stderr, "wsclients: frame of %llu bytes\n", (unsigned long long)length);
            exit(2);
        }
        if (size - offset - header < length)
            break;
        const unsigned char *payload = buffer + offset + header;
        offset += header + (size_t)length;
        if (opcode == 1 && client->index >= 0)
            message(client, payload, (size_t)length, at);
        else
            control_frame(client, opcode, payload, (size_t)length);
    }
    memmove(buffer, buffer + offset, size - offset);
    client->used = size - offset;
}

static int connect_one(const char *host, int port, const char *path, int epoll_fd,
                       Client *client) {
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, host, &address.sin_addr) != 1) {
        fprintf(stderr, "wsclients: not an IPv4 address: %s\n", host);
        exit(2);
    }
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        fail("socket");
    if (connect(fd, (struct sockaddr *)&address, sizeof address) < 0) {
        close(fd); /* as a Python client whose connection failed: never ready */
        return -1;
    }
    char request[1024];
    int length = snprintf(request, sizeof request,
                          "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                          "Connection: Upgrade\r\nSec-WebSocket-Key: c29ub3NkLWJlbmNoLWtleQ==\r\n"
                          "Sec-WebSocket-Version: 13\r\n\r\n",
                          path, host, port);
    if (length < 0 || (size_t)length >= sizeof request) {
        fprintf(stderr, "wsclients: the URL is too long\n");
        exit(2);
    }
    send_all(fd, request, (size_t)length);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    client->fd = fd;
    client->index = -1;
    client->open = 1;
    client->size = READ_SIZE * 2;
    client->buffer = malloc(client->size);
    if (client->buffer == NULL)
        fail("malloc");
    struct epoll_event event = {.events = EPOLLIN, .data.ptr = client};
    if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &event) < 0)
        fail("epoll_ctl");
    return 0;
}

static void result(void) {
    long low = 0, high = 0;
    for (long i = 0; i < ready; i++) {
        if (i == 0 || per_client[i] < low)
            low = per_client[i];
        if (per_client[i] > high)
            high = per_client[i];
    }
    printf("{\"ready\": %ld, \"events\": %ld, \"per_client_min\": %ld, \"per_client_max\": %ld, "
           "\"hist\": {",
           ready, events, low, high);
    const char *comma = "";
    for (long i = 0; i < hist_size; i++) {
        if (hist[i]) {
            printf("%s\"%ld\": %lu", comma, i, hist[i]);
            comma = ", ";
        }
    }
    printf("}, \"max\": %.9f, \"first\": %.9f, \"last\": %.9f, \"closed\": %ld, \"cpu\": %.6f}\n",
           latency_max, first_time, last_time, closed, cpu_time());
    fflush(stdout);
}

int main(int argc, char **argv) {
    if (argc != 8) {
        fprintf(stderr, "usage: %s HOST PORT PATH CLIENTS T0 MAX_DURATION SEQ_PER_SECOND\n",
                argv[0]);
        return 2;
    }
    const char *host = argv[1], *path = argv[3];
    int port = atoi(argv[2]);
    clients_wanted = atol(argv[4]);
    t0 = atof(argv[5]);
    double max_duration = atof(argv[6]);
    seq_per_second = atof(argv[7]);
    if (clients_wanted < 0 || seq_per_second <= 0) {
        fprintf(stderr, "wsclients: bad CLIENTS or SEQ_PER_SECOND\n");
        return 2;
    }
    Client *clients = calloc((size_t)clients_wanted + 1, sizeof *clients);
    per_client = calloc((size_t)clients_wanted + 1, sizeof *per_client);
    if (clients == NULL || per_client == NULL)
        fail("calloc");
    int epoll_fd = epoll_create1(0);
    if (epoll_fd < 0)
        fail("epoll_create1");
    struct epoll_event watch = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(epoll_fd, EPOLL_CTL_ADD, 0, &watch); /* a regular file cannot be watched */

    double start = now(), deadline = start + max_duration;
    long connected = 0;
    struct epoll_event ready_events[256];
    for (;;) {
        double at = now();
        if (at >= deadline)
            break;
        while (connected < clients_wanted && at >= start + connected * 0.002) {
            connect_one(host, port, path, epoll_fd, &clients[connected]);
            connected++;
        }
        double wake = connected >= clients_wanted ? deadline : start + connected * 0.002;
        int timeout = wake > at ? (int)((wake - at) * 1000) + 1 : 0;
        int count = epoll_wait(epoll_fd, ready_events, 256, timeout);
        if (count < 0) {
            if (errno == EINTR)
                continue;
            fail("epoll_wait");
        }
        for (int i = 0; i < count; i++) {
            Client *client = ready_events[i].data.ptr;
            if (client == NULL) { /* stdin: closed means stop */
                char scratch[4096];
                if (read(0, scratch, sizeof scratch) <= 0) {
                    result();
                    return 0;
                }
                continue;
            }
            if (!client->open)
                continue;
            if (client->size - client->used < READ_SIZE) {
                client->size = client->used + READ_SIZE * 2;
                client->buffer = realloc(client->buffer, client->size);
                if (client->buffer == NULL)
                    fail("realloc");
            }
            ssize_t got = recv(client->fd, client->buffer + client->used, READ_SIZE, 0);
            if (got < 0 && (errno == EAGAIN || errno == EINTR))
                continue;
            if (got <= 0) {
                epoll_ctl(epoll_fd, EPOLL_CTL_DEL, client->fd, NULL);
                close(client->fd);
                client->open = 0;
                if (client->upgraded)
                    closed++;
                continue;
            }
            client->used += (size_t)got;
            frames(client, now());
        }
    }
    result();
    return 0;
}
