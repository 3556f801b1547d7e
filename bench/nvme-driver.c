/*
 * The C baseline of the NVMe benchmark: a userspace NVMe driver through VFIO
 * with the same queue logic as examples/nvme (admin queue, Set Features
 * Number of Queues, one interrupt-driven and one polled I/O queue pair, PRP1
 * only for 4 KiB, CIDs from a free stack, phase-bit reaping, one CQ head
 * doorbell per batch). It runs one workload and prints one JSON line.
 *
 *   nvme-driver <bdf> <group-path> <read|write> <qd> <polled|interrupt> <ios> <entries> [warmup]
 *
 * Layouts from the NVMe base specification (registers 3.1, entries 4.2/4.6).
 * Compiled by bench/run.ts at bench time with cc -O2.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/vfio.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096
#define die(...) do { fprintf(stderr, __VA_ARGS__); fprintf(stderr, " (errno %d)\n", errno); exit(1); } while (0)

static volatile uint8_t *bar;
static uint32_t stride;
static int container;
static uint64_t next_iova = 0x100000;

static double now_ns(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1e9 + t.tv_nsec; }
static uint32_t rd32(uint32_t off) { return *(volatile uint32_t *)(bar + off); }
static void wr32(uint32_t off, uint32_t v) { *(volatile uint32_t *)(bar + off) = v; }
static void wr64(uint32_t off, uint64_t v) { wr32(off, (uint32_t)v); wr32(off + 4, (uint32_t)(v >> 32)); }

/* Anonymous memory mapped for DMA at the next free IOVA. */
static void *dma_alloc(size_t size, uint64_t *iova) {
  size = (size + PAGE - 1) & ~(size_t)(PAGE - 1);
  void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  if (p == MAP_FAILED) die("mmap dma");
  memset(p, 0, size);
  struct vfio_iommu_type1_dma_map m = { .argsz = sizeof m, .flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE,
    .vaddr = (uintptr_t)p, .iova = next_iova, .size = size };
  if (ioctl(container, VFIO_IOMMU_MAP_DMA, &m)) die("VFIO_IOMMU_MAP_DMA");
  *iova = next_iova;
  next_iova += size;
  return p;
}

struct queue {
  uint16_t qid, entries, depth, tail, head, phase;
  uint32_t *sq;
  volatile uint32_t *cq;
  uint64_t sq_iova, cq_iova;
  uint16_t *free_cids; int free_top;
  double *start; /* submit time per CID */
  int efd;
};

static void queue_init(struct queue *q, uint16_t qid, uint16_t entries, int efd) {
  memset(q, 0, sizeof *q);
  q->qid = qid; q->entries = entries; q->depth = entries - 1; q->phase = 1; q->efd = efd;
  q->sq = dma_alloc((size_t)entries * 64, &q->sq_iova);
  q->cq = dma_alloc((size_t)entries * 16, &q->cq_iova);
  q->free_cids = calloc(q->depth, 2);
  q->start = calloc(q->depth, sizeof(double));
  for (int i = 0; i < q->depth; i++) q->free_cids[i] = q->depth - 1 - i;
  q->free_top = q->depth;
}

static int submit(struct queue *q, uint8_t opcode, uint32_t nsid, uint32_t c10, uint32_t c11, uint32_t c12, uint64_t prp1) {
  if (q->free_top == 0) return -1;
  int cid = q->free_cids[--q->free_top];
  uint32_t *e = q->sq + q->tail * 16;
  e[0] = ((uint32_t)cid << 16) | opcode; e[1] = nsid;
  e[2] = e[3] = e[4] = e[5] = 0;
  e[6] = (uint32_t)prp1; e[7] = (uint32_t)(prp1 >> 32); e[8] = e[9] = 0;
  e[10] = c10; e[11] = c11; e[12] = c12; e[13] = e[14] = e[15] = 0;
  if (++q->tail == q->entries) q->tail = 0;
  __atomic_thread_fence(__ATOMIC_RELEASE); /* entry before doorbell (wmb) */
  wr32(0x1000 + 2 * q->qid * stride, q->tail);
  return cid;
}

typedef void (*done_fn)(struct queue *q, int cid, uint32_t status, uint32_t dw0);

static int reap(struct queue *q, done_fn done) {
  int n = 0;
  for (;;) {
    volatile uint32_t *c = q->cq + q->head * 4;
    uint32_t dw3 = c[3];
    if (((dw3 >> 16) & 1) != q->phase) break;
    __atomic_thread_fence(__ATOMIC_ACQUIRE); /* phase before the rest (dma_rmb) */
    uint32_t dw0 = c[0];
    if (++q->head == q->entries) { q->head = 0; q->phase ^= 1; }
    int cid = dw3 & 0xffff;
    q->free_cids[q->free_top++] = cid;
    n++;
    done(q, cid, (dw3 >> 17) & 0x7fff, dw0);
  }
  if (n) wr32(0x1000 + (2 * q->qid + 1) * stride, q->head);
  return n;
}

static uint32_t admin_status, admin_dw0; static int admin_done;
static void on_admin(struct queue *q, int cid, uint32_t status, uint32_t dw0) { (void)q; (void)cid; admin_status = status; admin_dw0 = dw0; admin_done = 1; }

static uint32_t admin_cmd(struct queue *aq, uint8_t op, uint32_t nsid, uint32_t c10, uint32_t c11, uint64_t prp1) {
  admin_done = 0;
  if (submit(aq, op, nsid, c10, c11, 0, prp1) < 0) die("admin queue full");
  double end = now_ns() + 10e9;
  while (!admin_done) { reap(aq, on_admin); if (now_ns() > end) die("admin opcode 0x%x timed out", op); }
  if (admin_status) die("admin opcode 0x%x failed: status 0x%x", op, admin_status);
  return admin_dw0;
}

static void wait_rdy(uint32_t want, double ms) {
  double end = now_ns() + ms * 1e6;
  while ((rd32(0x1c) & 1) != want) if (now_ns() > end) die("CSTS.RDY != %u", want);
}

/* Workload state. */
static uint32_t rng = 12345;
static uint64_t ns_blocks4k; static uint32_t ns_lbas_per_4k;
static uint8_t opcode; static uint64_t data_iova; static long ios_left, ios_done; static double *lat; static long lat_n;
static struct queue *ioq;

static uint64_t next_lba(void) { rng ^= rng << 13; rng ^= rng >> 17; rng ^= rng << 5; return (uint64_t)(rng % ns_blocks4k) * ns_lbas_per_4k; }

static void issue(struct queue *q) {
  uint64_t lba = next_lba();
  double t = now_ns();
  int cid = submit(q, opcode, 1, (uint32_t)lba, (uint32_t)(lba >> 32), ns_lbas_per_4k - 1, data_iova);
  if (cid < 0) die("I/O queue full");
  q->start[cid] = t;
  ios_left--;
}

static void on_io(struct queue *q, int cid, uint32_t status, uint32_t dw0) {
  (void)dw0;
  if (status) die("I/O failed: status 0x%x", status);
  lat[lat_n++] = now_ns() - q->start[cid];
  ios_done++;
  if (ios_left > 0) issue(q);
}

static int cmp(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return x < y ? -1 : x > y; }

int main(int argc, char **argv) {
  if (argc < 8) { fprintf(stderr, "usage: nvme-driver bdf group read|write qd polled|interrupt ios entries [warmup]\n"); return 2; }
  const char *bdf = argv[1];
  opcode = strcmp(argv[3], "write") == 0 ? 0x01 : 0x02;
  int qd = atoi(argv[4]); int polled = strcmp(argv[5], "polled") == 0; long ios = atol(argv[6]); int entries = atoi(argv[7]);

  container = open("/dev/vfio/vfio", O_RDWR);
  int group = open(argv[2], O_RDWR);
  if (container < 0 || group < 0) die("open container/group");
  if (ioctl(group, VFIO_GROUP_SET_CONTAINER, &container) || ioctl(container, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU)) die("attach");
  int dev = ioctl(group, VFIO_GROUP_GET_DEVICE_FD, bdf);
  if (dev < 0) die("device fd");
  struct vfio_region_info cfg = { .argsz = sizeof cfg, .index = VFIO_PCI_CONFIG_REGION_INDEX };
  struct vfio_region_info r0 = { .argsz = sizeof r0, .index = 0 };
  if (ioctl(dev, VFIO_DEVICE_GET_REGION_INFO, &cfg) || ioctl(dev, VFIO_DEVICE_GET_REGION_INFO, &r0)) die("region info");
  uint16_t cmd; if (pread(dev, &cmd, 2, cfg.offset + 4) != 2) die("config read");
  cmd |= 0x6; if (pwrite(dev, &cmd, 2, cfg.offset + 4) != 2) die("config write"); /* memory + bus master */
  bar = mmap(NULL, r0.size, PROT_READ | PROT_WRITE, MAP_SHARED, dev, r0.offset);
  if (bar == MAP_FAILED) die("mmap BAR0");

  /* MSI-X: vector 0 admin, 1 the I/O queue (an eventfd each). */
  int efd[2] = { eventfd(0, EFD_NONBLOCK), eventfd(0, EFD_NONBLOCK) };
  char irqbuf[sizeof(struct vfio_irq_set) + 2 * sizeof(int)];
  struct vfio_irq_set *is = (struct vfio_irq_set *)irqbuf;
  *is = (struct vfio_irq_set){ .argsz = sizeof irqbuf, .flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, .index = VFIO_PCI_MSIX_IRQ_INDEX, .start = 0, .count = 2 };
  memcpy(is->data, efd, sizeof efd);
  if (ioctl(dev, VFIO_DEVICE_SET_IRQS, is)) die("SET_IRQS");

  uint64_t cap = (uint64_t)rd32(0) | ((uint64_t)rd32(4) << 32);
  double to_ms = ((cap >> 24) & 0xff) * 500.0; if (to_ms < 500) to_ms = 500;
  stride = 4u << ((cap >> 32) & 0xf);
  uint32_t mqes = (cap & 0xffff) + 1; if ((uint32_t)entries > mqes) entries = mqes;

  uint32_t cc = rd32(0x14);
  if ((cc & 1) && !(rd32(0x1c) & 1)) wait_rdy(1, to_ms);
  wr32(0x14, cc & ~1u); wait_rdy(0, to_ms);
  struct queue aq; queue_init(&aq, 0, 32, efd[0]);
  wr32(0x24, (31u << 16) | 31u); wr64(0x28, aq.sq_iova); wr64(0x30, aq.cq_iova);
  wr32(0x14, (4u << 20) | (6u << 16) | 1u); wait_rdy(1, to_ms);

  uint64_t id_iova; uint8_t *id = dma_alloc(PAGE, &id_iova);
  admin_cmd(&aq, 0x06, 1, 0x00, 0, id_iova); /* Identify Namespace 1 */
  uint64_t nsze; memcpy(&nsze, id, 8);
  uint8_t flbas = id[26]; uint32_t lbaf; memcpy(&lbaf, id + 128 + 4 * (flbas & 0xf), 4);
  uint32_t bs = 1u << ((lbaf >> 16) & 0xff);
  ns_lbas_per_4k = PAGE / bs; ns_blocks4k = nsze / ns_lbas_per_4k;
  admin_cmd(&aq, 0x09, 0, 0x07, 0, 0); /* Set Features, Number of Queues: one pair */
  struct queue q; queue_init(&q, 1, entries, efd[1]); ioq = &q;
  admin_cmd(&aq, 0x05, 0, ((uint32_t)(entries - 1) << 16) | 1, (1u << 16) | (polled ? 0 : 2) | 1, q.cq_iova);
  admin_cmd(&aq, 0x01, 0, ((uint32_t)(entries - 1) << 16) | 1, (1u << 16) | 1, q.sq_iova);
  void *data = dma_alloc(PAGE, &data_iova);
  memset(data, 0x5a, PAGE);

  long warmup = argc > 8 ? atol(argv[8]) : 1000; if (warmup > ios) warmup = ios;
  lat = calloc(ios > warmup ? ios : warmup, sizeof(double));
  double t0 = 0; struct rusage ru0, ru1;
  for (int pass = 0; pass < 2; pass++) { /* pass 0: warm-up, as the TypeScript side does */
    long n = pass ? ios : warmup;
    ios_left = n; ios_done = 0; lat_n = 0;
    getrusage(RUSAGE_SELF, &ru0);
    t0 = now_ns();
    for (int i = 0; i < qd && ios_left > 0; i++) issue(&q);
    double deadline = t0 + 120e9;
    while (ios_done < n) {
      if (polled) { reap(&q, on_io); }
      else {
        struct pollfd p = { .fd = q.efd, .events = POLLIN };
        if (poll(&p, 1, 1000) < 0 && errno != EINTR) die("poll");
        uint64_t v; if (read(q.efd, &v, 8) < 0 && errno != EAGAIN) die("read eventfd");
        reap(&q, on_io);
      }
      if (now_ns() > deadline) die("workload timed out");
    }
  }
  double t1 = now_ns();
  getrusage(RUSAGE_SELF, &ru1);
  double cpu_us = (ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) * 1e6 + (ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec)
    + (ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) * 1e6 + (ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec);
  qsort(lat, lat_n, sizeof(double), cmp);
  printf("{\"iops\":%.1f,\"p50_us\":%.2f,\"p99_us\":%.2f,\"cpu_us_per_io\":%.3f,\"ios\":%ld}\n",
    ios / ((t1 - t0) / 1e9), lat[lat_n / 2] / 1e3, lat[(long)(lat_n * 0.99)] / 1e3, cpu_us / ios, ios);

  /* Delete the queue, normal shutdown. */
  admin_cmd(&aq, 0x00, 0, 1, 0, 0);
  admin_cmd(&aq, 0x04, 0, 1, 0, 0);
  wr32(0x14, (rd32(0x14) & ~(3u << 14)) | (1u << 14));
  double end = now_ns() + to_ms * 1e6;
  while (((rd32(0x1c) >> 2) & 3) != 2) if (now_ns() > end) die("shutdown timed out");
  return 0;
}
