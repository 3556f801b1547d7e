/*
 * C baseline of the in-guest VFIO micro-benchmarks (bench/guest-micro.ts is
 * the TypeScript side): the same system calls on the same device in the
 * same boot. Prints "name value" lines: ns per operation, or ms for the
 * 1 GiB DMA map/unmap, or us for wake latency percentiles.
 *
 *   guest-micro <bdf> <group-path> <iterations> <wake-samples>
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
#include <time.h>
#include <unistd.h>

#define die(...) do { fprintf(stderr, __VA_ARGS__); fprintf(stderr, " (errno %d)\n", errno); exit(1); } while (0)
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec * 1e9 + t.tv_nsec; }
static int cmp(const void *a, const void *b) { double x = *(const double *)a, y = *(const double *)b; return x < y ? -1 : x > y; }

int main(int argc, char **argv) {
  if (argc < 5) die("usage: guest-micro bdf group iterations wake-samples");
  long n = atol(argv[3]); int samples = atoi(argv[4]);
  int c = open("/dev/vfio/vfio", O_RDWR), g = open(argv[2], O_RDWR);
  if (c < 0 || g < 0 || ioctl(g, VFIO_GROUP_SET_CONTAINER, &c) || ioctl(c, VFIO_SET_IOMMU, VFIO_TYPE1v2_IOMMU)) die("setup");
  int d = ioctl(g, VFIO_GROUP_GET_DEVICE_FD, argv[1]);
  if (d < 0) die("device");
  struct vfio_region_info r0 = { .argsz = sizeof r0, .index = 0 }, r2 = { .argsz = sizeof r2, .index = 2 };
  struct vfio_region_info cfg = { .argsz = sizeof cfg, .index = VFIO_PCI_CONFIG_REGION_INDEX };
  if (ioctl(d, VFIO_DEVICE_GET_REGION_INFO, &r0) || ioctl(d, VFIO_DEVICE_GET_REGION_INFO, &r2) || ioctl(d, VFIO_DEVICE_GET_REGION_INFO, &cfg)) die("region info");
  uint16_t cmd; if (pread(d, &cmd, 2, cfg.offset + 4) != 2) die("config");
  cmd |= 0x6; if (pwrite(d, &cmd, 2, cfg.offset + 4) != 2) die("config");
  volatile uint32_t *bar0 = mmap(NULL, 0x1000, PROT_READ | PROT_WRITE, MAP_SHARED, d, r0.offset);
  volatile uint32_t *bar2 = mmap(NULL, 0x1000, PROT_READ | PROT_WRITE, MAP_SHARED, d, r2.offset);
  if (bar0 == MAP_FAILED || bar2 == MAP_FAILED) die("mmap");
  uint32_t sink = 0, v; double t;

  /* Region info as the library reads it: the fixed struct, then again with the size the kernel asked for (capabilities). */
  uint8_t big[4096];
  t = now();
  for (long i = 0; i < n; i++) {
    struct vfio_region_info ri = { .argsz = sizeof ri, .index = 0 };
    if (ioctl(d, VFIO_DEVICE_GET_REGION_INFO, &ri)) die("region info");
    if (ri.argsz > sizeof ri) {
      memset(big, 0, ri.argsz); struct vfio_region_info *rb = (void *)big; rb->argsz = ri.argsz; rb->index = 0;
      if (ioctl(d, VFIO_DEVICE_GET_REGION_INFO, rb)) die("region info caps");
    }
  }
  printf("region-info %f\n", (now() - t) / n);
  t = now();
  for (long i = 0; i < n; i++) { struct vfio_irq_info ii = { .argsz = sizeof ii, .index = VFIO_PCI_MSIX_IRQ_INDEX }; if (ioctl(d, VFIO_DEVICE_GET_IRQ_INFO, &ii)) die("irq info"); }
  printf("irq-info %f\n", (now() - t) / n);
  t = now(); for (long i = 0; i < n; i++) { if (pread(d, &v, 4, r0.offset + 8) != 4) die("pread"); sink += v; } printf("trapped-read32 %f\n", (now() - t) / n);
  t = now(); for (long i = 0; i < n; i++) sink += bar0[2]; printf("bar0-read32 %f\n", (now() - t) / n);
  t = now(); for (long i = 0; i < n; i++) bar0[0x24 / 4] = 0; printf("bar0-write32 %f\n", (now() - t) / n);
  t = now(); for (long i = 0; i < n; i++) sink += bar2[1]; printf("cmb-read32 %f\n", (now() - t) / n);
  t = now(); for (long i = 0; i < n; i++) bar2[1] = (uint32_t)i; printf("cmb-write32 %f\n", (now() - t) / n);

  /* DMA: 1 GiB of populated anonymous memory mapped and unmapped in 2 MiB chunks at IOVA 1 GiB. */
  const size_t GIB = 1ul << 30, CHUNK = 2ul << 20;
  uint8_t *mem = mmap(NULL, GIB, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  if (mem == MAP_FAILED) die("mmap 1 GiB");
  t = now();
  for (size_t off = 0; off < GIB; off += CHUNK) {
    struct vfio_iommu_type1_dma_map m = { .argsz = sizeof m, .flags = VFIO_DMA_MAP_FLAG_READ | VFIO_DMA_MAP_FLAG_WRITE, .vaddr = (uintptr_t)mem + off, .iova = GIB + off, .size = CHUNK };
    if (ioctl(c, VFIO_IOMMU_MAP_DMA, &m)) die("map");
  }
  printf("dma-map-1g %f\n", (now() - t) / 1e6);
  t = now();
  for (size_t off = 0; off < GIB; off += CHUNK) {
    struct vfio_iommu_type1_dma_unmap u = { .argsz = sizeof u, .iova = GIB + off, .size = CHUNK };
    if (ioctl(c, VFIO_IOMMU_UNMAP_DMA, &u)) die("unmap");
  }
  printf("dma-unmap-1g %f\n", (now() - t) / 1e6);
  munmap(mem, GIB);

  /* Wake latency: VFIO_DEVICE_SET_IRQS DATA_NONE|TRIGGER on MSI-X vector 0, then poll(2) + read(2) on its eventfd. */
  int efd = eventfd(0, EFD_NONBLOCK);
  char buf[sizeof(struct vfio_irq_set) + sizeof(int)];
  struct vfio_irq_set *is = (void *)buf;
  *is = (struct vfio_irq_set){ .argsz = sizeof buf, .flags = VFIO_IRQ_SET_DATA_EVENTFD | VFIO_IRQ_SET_ACTION_TRIGGER, .index = VFIO_PCI_MSIX_IRQ_INDEX, .start = 0, .count = 1 };
  memcpy(is->data, &efd, sizeof efd);
  if (ioctl(d, VFIO_DEVICE_SET_IRQS, is)) die("enable MSI-X");
  struct vfio_irq_set trig = { .argsz = sizeof trig, .flags = VFIO_IRQ_SET_DATA_NONE | VFIO_IRQ_SET_ACTION_TRIGGER, .index = VFIO_PCI_MSIX_IRQ_INDEX, .start = 0, .count = 1 };
  double *lat = calloc(samples, sizeof(double));
  for (int i = 0; i < samples; i++) {
    double t0 = now();
    if (ioctl(d, VFIO_DEVICE_SET_IRQS, &trig)) die("trigger");
    struct pollfd p = { .fd = efd, .events = POLLIN };
    if (poll(&p, 1, 5000) != 1) die("no wake");
    uint64_t x; if (read(efd, &x, 8) != 8) die("read");
    lat[i] = now() - t0;
  }
  qsort(lat, samples, sizeof(double), cmp);
  printf("wake-median %f\nwake-p99 %f\n", lat[samples / 2] / 1e3, lat[(int)(samples * 0.99)] / 1e3);
  return sink == 42;
}
