// A learning Ethernet bridge in user space that holds every frame for a fixed one-way delay before
// forwarding it: the WAN benchmark's stand-in for netem, which this kernel lacks. It reads frames
// from the host ends of the benchmark's veth pairs (AF_PACKET) and writes each one, `delay_ms`
// later, to the port its destination MAC was learned on (or to every other port). Writes go through
// each port's qdisc, so the kernel's token-bucket shaper still limits the rate.
//
//   delay-bridge DELAY_MS IFACE...
//
// Frames carry the kernel's virtio-net header (PACKET_VNET_HDR): a TCP segment offloaded as one
// 64 KiB frame is forwarded as such and cut into MTU-sized packets where it leaves.
//
// Why C: at 80 Mbit/s a link carries ~7,000 frames/s each way; the benchmark's workers need the
// machine's two cores, so the bridge must cost next to nothing. On SIGTERM or SIGINT it prints how
// many frames it forwarded and dropped, and exits.
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <linux/virtio_net.h>
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

#define MAX_PORTS 32
#define MAX_FRAME (65536 + 64)
#define VNET sizeof(struct virtio_net_hdr)
// Frames held at once: 80 Mbit/s × 50 ms is ~350 full frames per link; this is ample for 32 ports.
#define QUEUE 32768
#define MACS 256

struct frame {
  uint64_t due_ns;
  int in_port;
  int len;
  unsigned char *data;  // virtio-net header, then the Ethernet frame
};

static struct frame *queue;
static size_t head, count;
static int socks[MAX_PORTS];
static int ports;
static unsigned char macs[MACS][6];
static int mac_port[MACS];
static int nmacs;
static volatile sig_atomic_t stopping;
static unsigned long forwarded, dropped;

static uint64_t now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

static void on_signal(int sig) {
  (void)sig;
  stopping = 1;
}

static void learn(const unsigned char *mac, int port) {
  if (mac[0] & 1) return;  // a group address is never a source
  for (int i = 0; i < nmacs; i++)
    if (memcmp(macs[i], mac, 6) == 0) {
      mac_port[i] = port;
      return;
    }
  if (nmacs < MACS) {
    memcpy(macs[nmacs], mac, 6);
    mac_port[nmacs++] = port;
  }
}

static int port_of(const unsigned char *mac) {
  if (mac[0] & 1) return -1;
  for (int i = 0; i < nmacs; i++)
    if (memcmp(macs[i], mac, 6) == 0) return mac_port[i];
  return -1;
}

static void forward(struct frame *f) {
  int out = port_of(f->data + VNET);
  for (int p = 0; p < ports; p++) {
    if (p == f->in_port || (out >= 0 && p != out)) continue;
    // A full qdisc (the shaper's queue) drops the frame, as a router's would.
    if (send(socks[p], f->data, (size_t)f->len, MSG_DONTWAIT) < 0) dropped++;
    else forwarded++;
  }
}

static int open_port(const char *name) {
  int s = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
  if (s < 0) {
    perror("socket(AF_PACKET)");
    exit(2);
  }
  struct sockaddr_ll a = {0};
  a.sll_family = AF_PACKET;
  a.sll_protocol = htons(ETH_P_ALL);
  a.sll_ifindex = (int)if_nametoindex(name);
  if (a.sll_ifindex == 0 || bind(s, (struct sockaddr *)&a, sizeof a) < 0) {
    fprintf(stderr, "cannot bind to %s: %s\n", name, strerror(errno));
    exit(2);
  }
  // Our own writes to this port must not come back to us as arrivals.
  int one = 1;
  setsockopt(s, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof one);
  if (setsockopt(s, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof one) < 0) {
    perror("PACKET_VNET_HDR");
    exit(2);
  }
  return s;
}

int main(int argc, char **argv) {
  if (argc < 3 || argc - 2 > MAX_PORTS) {
    fprintf(stderr, "usage: %s DELAY_MS IFACE... (at most %d interfaces)\n", argv[0], MAX_PORTS);
    return 2;
  }
  const uint64_t delay_ns = (uint64_t)(atof(argv[1]) * 1e6);
  ports = argc - 2;
  for (int p = 0; p < ports; p++) socks[p] = open_port(argv[p + 2]);
  queue = calloc(QUEUE, sizeof *queue);
  if (!queue) return 2;
  signal(SIGTERM, on_signal);
  signal(SIGINT, on_signal);
  struct pollfd fds[MAX_PORTS];
  for (int p = 0; p < ports; p++) fds[p] = (struct pollfd){.fd = socks[p], .events = POLLIN};
  static unsigned char buf[MAX_FRAME];
  fprintf(stderr, "delay-bridge: %d ports, %.3f ms one-way delay\n", ports, delay_ns / 1e6);
  while (!stopping) {
    uint64_t t = now_ns();
    while (count && queue[head].due_ns <= t) {
      forward(&queue[head]);
      free(queue[head].data);
      head = (head + 1) % QUEUE;
      count--;
    }
    struct timespec wait = {0, 50 * 1000000};  // wake at least every 50 ms to notice a signal
    if (count) {
      uint64_t left = queue[head].due_ns - t;
      if (left < 50000000ull) wait = (struct timespec){0, (long)left};
    }
    if (ppoll(fds, (nfds_t)ports, &wait, NULL) <= 0) continue;
    t = now_ns();
    for (int p = 0; p < ports; p++) {
      if (!(fds[p].revents & POLLIN)) continue;
      for (;;) {
        ssize_t n = recv(socks[p], buf, sizeof buf, MSG_DONTWAIT);
        if (n < 0) break;
        if (n < (ssize_t)(VNET + 14) || count == QUEUE) {
          dropped++;
          continue;
        }
        struct frame *f = &queue[(head + count) % QUEUE];
        f->data = malloc((size_t)n);
        if (!f->data) {
          dropped++;
          continue;
        }
        memcpy(f->data, buf, (size_t)n);
        f->len = (int)n;
        f->in_port = p;
        f->due_ns = t + delay_ns;
        learn(f->data + VNET + 6, p);
        count++;
      }
    }
  }
  fprintf(stderr, "delay-bridge: forwarded %lu frames, dropped %lu\n", forwarded, dropped);
  return 0;
}
