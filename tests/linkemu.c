/* linkemu: an emulated link between two interfaces (the kernel here has no netem).
 *
 * Frames read from each interface with AF_PACKET go out of the other after a rate-limited queue (tail drop
 * past --limit-ms of queueing), a fixed one-way delay and random loss, the same in both directions. The rate
 * is fixed (--rate MBIT) or follows a trace (--trace "MS:MBIT,MS:MBIT,...", repeated), each frame charged
 * its length (as tbf does). Built by tests/emulated.py with gcc; bounded: it exits after --seconds. SIGUSR1
 * restarts the trace from its first step (each test run on a traced link then sees the same rates).
 *
 *   linkemu IF_A IF_B [--rate 40] [--trace 200:12,300:30] [--delay-ms 30] [--loss 0.005]
 *           [--limit-ms 50] [--seed 1] [--seconds 3600]
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SLOTS 16384
#define FRAME 2048
#define MAX_STEPS 4096
#ifndef PACKET_IGNORE_OUTGOING
#define PACKET_IGNORE_OUTGOING 23
#endif

typedef struct { int64_t at; int len; unsigned char data[FRAME]; } slot_t;
typedef struct {
    int in, out;           /* read from in, write to out */
    slot_t *ring; int head, count;
    int64_t busy_until;    /* when the emulated wire is free */
    uint64_t frames, bytes, lost, dropped;
} way_t;

static int64_t step_ms[MAX_STEPS]; static double step_mbit[MAX_STEPS]; static int steps;
static int64_t trace_ns, start_ns;
static double fixed_mbit = 0, loss = 0; static int64_t delay_ns = 0, limit_ns = 50000000;
static uint64_t rng = 88172645463325252ULL;
static volatile sig_atomic_t stop_now = 0, restart_now = 0;

static int64_t now_ns(void) {
    struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000LL + t.tv_nsec;
}
static double uniform(void) { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; return (rng >> 11) * (1.0 / 9007199254740992.0); }

static double rate_at(int64_t t) {
    if (!steps) return fixed_mbit;
    int64_t x = (t - start_ns) % trace_ns, acc = 0;
    for (int i = 0; i < steps; i++) { acc += step_ms[i] * 1000000LL; if (x < acc) return step_mbit[i]; }
    return step_mbit[steps - 1];
}

static int open_if(const char *name) {
    int fd = socket(AF_PACKET, SOCK_RAW | SOCK_NONBLOCK, htons(ETH_P_ALL));
    if (fd < 0) { perror("socket"); exit(1); }
    struct sockaddr_ll a = {0};
    a.sll_family = AF_PACKET; a.sll_protocol = htons(ETH_P_ALL); a.sll_ifindex = if_nametoindex(name);
    if (!a.sll_ifindex) { fprintf(stderr, "no interface %s\n", name); exit(1); }
    if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0) { perror("bind"); exit(1); }
    int one = 1, big = 16 << 20;
    setsockopt(fd, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof big);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &big, sizeof big);
    return fd;
}

static void take(way_t *w, int64_t t) {
    for (;;) {
        slot_t *s = &w->ring[(w->head + w->count) % SLOTS];
        ssize_t n = recv(w->in, s->data, FRAME, MSG_TRUNC);
        if (n < 0) return;
        if (n > FRAME) { w->dropped++; continue; }   /* a GSO frame: offloads should be off */
        w->frames++;
        if (loss > 0 && uniform() < loss) { w->lost++; continue; }
        int64_t begin = w->busy_until > t ? w->busy_until : t;
        if (begin - t > limit_ns || w->count == SLOTS) { w->dropped++; continue; }  /* the queue is full */
        double mbit = rate_at(begin);
        int64_t wire = mbit > 0 ? (int64_t)(n * 8 * 1000.0 / mbit) : 0;  /* ns: bits / (Mbit/s) * 1000 */
        w->busy_until = begin + wire;
        s->at = w->busy_until + delay_ns; s->len = (int)n;
        w->count++; w->bytes += n;
    }
}

static void give(way_t *w, int64_t t) {
    while (w->count && w->ring[w->head].at <= t) {
        slot_t *s = &w->ring[w->head];
        if (send(w->out, s->data, s->len, 0) < 0 && errno == EAGAIN) return;  /* retry on the next turn */
        w->head = (w->head + 1) % SLOTS; w->count--;
    }
}

static void on_signal(int sig) { (void)sig; stop_now = 1; }
static void on_restart(int sig) { (void)sig; restart_now = 1; }

static void parse_trace(char *spec) {
    for (char *tok = strtok(spec, ","); tok && steps < MAX_STEPS; tok = strtok(NULL, ",")) {
        char *colon = strchr(tok, ':');
        if (!colon) { fprintf(stderr, "trace step %s is not MS:MBIT\n", tok); exit(2); }
        step_ms[steps] = atoll(tok); step_mbit[steps] = atof(colon + 1); trace_ns += step_ms[steps] * 1000000LL; steps++;
    }
    if (!trace_ns) { fprintf(stderr, "empty trace\n"); exit(2); }
}

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: linkemu IF_A IF_B [options]\n"); return 2; }
    double seconds = 3600;
    for (int i = 3; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--rate")) fixed_mbit = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--trace")) parse_trace(argv[i + 1]);
        else if (!strcmp(argv[i], "--delay-ms")) delay_ns = (int64_t)(atof(argv[i + 1]) * 1e6);
        else if (!strcmp(argv[i], "--loss")) loss = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--limit-ms")) limit_ns = (int64_t)(atof(argv[i + 1]) * 1e6);
        else if (!strcmp(argv[i], "--seed")) rng = 88172645463325252ULL ^ (uint64_t)atoll(argv[i + 1]) * 2654435761ULL;
        else if (!strcmp(argv[i], "--seconds")) seconds = atof(argv[i + 1]);
        else { fprintf(stderr, "unknown option %s\n", argv[i]); return 2; }
    }
    signal(SIGTERM, on_signal); signal(SIGINT, on_signal); signal(SIGUSR1, on_restart);
    int a = open_if(argv[1]), b = open_if(argv[2]);
    way_t ways[2] = {{.in = a, .out = b}, {.in = b, .out = a}};
    for (int k = 0; k < 2; k++) ways[k].ring = calloc(SLOTS, sizeof(slot_t));
    start_ns = now_ns();
    int64_t end = start_ns + (int64_t)(seconds * 1e9);
    printf("ready\n"); fflush(stdout);
    struct pollfd fds[2] = {{.fd = a, .events = POLLIN}, {.fd = b, .events = POLLIN}};
    while (!stop_now) {
        int64_t t = now_ns();
        if (t > end) break;
        if (restart_now) { restart_now = 0; start_ns = t; printf("restarted\n"); fflush(stdout); }
        int64_t next = t + 100000000LL;
        for (int k = 0; k < 2; k++) if (ways[k].count && ways[k].ring[ways[k].head].at < next) next = ways[k].ring[ways[k].head].at;
        int64_t wait = next - t;
        struct timespec ts = {wait / 1000000000LL, wait % 1000000000LL};
        if (wait > 0) ppoll(fds, 2, &ts, NULL);
        t = now_ns();
        for (int k = 0; k < 2; k++) take(&ways[k], t);
        for (int k = 0; k < 2; k++) give(&ways[k], now_ns());
    }
    for (int k = 0; k < 2; k++)
        fprintf(stderr, "way %d: frames %llu bytes %llu lost %llu dropped %llu\n", k, (unsigned long long)ways[k].frames,
                (unsigned long long)ways[k].bytes, (unsigned long long)ways[k].lost, (unsigned long long)ways[k].dropped);
    return 0;
}
