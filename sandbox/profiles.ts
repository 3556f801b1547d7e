/**
 * Guest profiles: which emulated devices the guest has, which of them /init
 * binds to vfio-pci, the IOMMU setup and module options. Each profile is one
 * plain object; add one to {@link PROFILES} and create `test/vm/<name>/`.
 */

/** An emulated PCI device of a profile. */
export interface GuestDevice {
  /** Short name, also used for fixture files (`nvme`, `e1000e`, `edu`). */
  name: string;
  /** PCI vendor ID, 4 lowercase hex digits. */
  vendor: string;
  /** PCI device ID, 4 lowercase hex digits. */
  device: string;
  /** True: /init binds it to vfio-pci. False: it keeps its guest driver. */
  vfio: boolean;
  /** QEMU arguments creating it; `{tmp}` is replaced by the run's scratch folder. */
  qemu: string[];
}

/**
 * An arm64 guest (QEMU `virt` with an SMMUv3, Debian trixie's arm64 kernel,
 * a small root of its own). Absent: an x86-64 q35 guest with intel-iommu.
 */
export interface Arm64Platform {
  /** Kernel page size: Debian's `arm64` flavour (4 KiB) or `arm64-16k` (16 KiB). */
  pageKiB: 4 | 16;
  /** MSI controller: `its` (GICv3 ITS, MSIs isolated) or `gicv2m` (GICv2m, no isolation). */
  msi: "its" | "gicv2m";
}

/** A guest configuration: devices, IOMMU, options, test suites. */
export interface Profile {
  /** Name used on the command line and as `$BUN_VFIO_PROFILE` in the guest. */
  name: string;
  /** One line for `--list-profiles`. */
  description: string;
  /** x86 only: QEMU intel-iommu `intremap`, interrupt remapping on or off. */
  intremap?: boolean;
  /** x86 only: `none` gives the guest no IOMMU at all (no intel-iommu device, no `intel_iommu=on`); default `intel`. */
  iommu?: "intel" | "none";
  /** x86 only: `built` when the profile needs the sandbox's own kernel (iommufd, no-IOMMU mode), not Debian's prebuilt one. */
  kernel?: "built";
  /** Set for arm64 guests (see {@link Arm64Platform}). */
  arm64?: Arm64Platform;
  /** Devices, in QEMU command-line order. */
  devices: GuestDevice[];
  /** Extra QEMU arguments placed before the devices (buses, bridges). */
  qemuExtra?: string[];
  /** Module options as `module.param=value` (kernel command-line syntax, read by /init). */
  moduleOptions?: string[];
  /**
   * Kernel modules /init loads beyond the sandbox's own (9p, VFIO), e.g. the
   * guest drivers of devices that keep them; their `depends=` are added, and
   * names the kernel has built in are skipped.
   */
  modules?: string[];
  /** Other kernel command-line words (`hugepages=16`). */
  kernelArgs?: string[];
  /** Environment of the guest command (e.g. `BUN_VFIO_BACKEND`), under the caller's own `env`. */
  guestEnv?: Record<string, string>;
  /** Sparse scratch files created in `{tmp}` before boot: name to size in MiB. */
  scratch?: Record<string, number>;
  /** Guest test folders beyond `test/vm/common` and `test/vm/<name>`. */
  extraTestDirs?: string[];
  /** Give the guest command a QMP bridge to QEMU's monitor (see monitor.ts). */
  monitor?: boolean;
}

/** QEMU's NVMe controller (1b36:0010) with a 64 MiB sparse raw disk. */
export const NVME: GuestDevice = {
  name: "nvme",
  vendor: "1b36",
  device: "0010",
  vfio: true,
  qemu: ["-drive", "if=none,id=nvm0,format=raw,file={tmp}/nvme0.img", "-device", "nvme,serial=bunvfio0,drive=nvm0"],
};

/**
 * An NVMe controller for the data-integrity suite: 512-byte blocks, MDTS 7
 * (512 KiB), a 64 MiB image the host seeds before boot and checks after.
 */
export const NVME_IO: GuestDevice = {
  name: "nvme",
  vendor: "1b36",
  device: "0010",
  vfio: true,
  qemu: ["-drive", "if=none,id=nvmio,format=raw,file={tmp}/nvme-io.img",
    "-device", "nvme,serial=bunvfioio,drive=nvmio,mdts=7,logical_block_size=512,physical_block_size=512"],
};

/** Intel 82574L (8086:10d3) on a user-mode netdev that reaches nothing (`restrict=on`); no option ROM. */
export const E1000E: GuestDevice = {
  name: "e1000e",
  vendor: "8086",
  device: "10d3",
  vfio: true,
  qemu: ["-netdev", "user,id=n0,restrict=on", "-device", "e1000e,netdev=n0,romfile="],
};

/** QEMU's educational device (1234:11e8): MSI, DMA engine, 1 MiB BAR0. */
export const EDU: GuestDevice = { name: "edu", vendor: "1234", device: "11e8", vfio: true, qemu: ["-device", "edu"] };

/** A transitional virtio-net (legacy id 1af4:1000, I/O BAR) on a user-mode netdev that reaches nothing; no option ROM. */
export const VIRTIO_NET: GuestDevice = {
  name: "virtio-net",
  vendor: "1af4",
  device: "1000",
  vfio: false,
  qemu: ["-netdev", "user,id=vn0,restrict=on", "-device", "virtio-net-pci,netdev=vn0,romfile="],
};

/** A transitional virtio-blk (1af4:1001) on `{tmp}/ext4.img`. */
export const VIRTIO_BLK: GuestDevice = {
  name: "virtio-blk",
  vendor: "1af4",
  device: "1001",
  vfio: false,
  qemu: ["-drive", "if=none,id=vb0,format=raw,file={tmp}/ext4.img", "-device", "virtio-blk-pci,drive=vb0"],
};

/**
 * What every arm64 profile adds: QEMU's pci-testdev (1b36:0005), not in
 * `devices` (no guest driver claims it and /init leaves it unbound, so it has
 * no IOMMU group until something binds it), and the arm64-only suites.
 */
const ARM64_COMMON = {
  qemuExtra: ["-device", "pci-testdev"],
};

/** All profiles, by name. */
export const PROFILES: Record<string, Profile> = {
  remap: {
    name: "remap",
    description: "intel-iommu with interrupt remapping; nvme, e1000e, edu on vfio-pci (the suites on the type1 container; profile iommufd runs them on iommufd)",
    intremap: true,
    devices: [NVME, E1000E, EDU],
    scratch: { "nvme0.img": 64 },
    guestEnv: { BUN_VFIO_BACKEND: "type1" },
  },
  "no-remap": {
    name: "no-remap",
    description: "intel-iommu without interrupt remapping (type1 refuses groups until allow_unsafe_interrupts=1); same devices",
    intremap: false,
    devices: [NVME, E1000E, EDU],
    moduleOptions: ["vfio_iommu_type1.allow_unsafe_interrupts=0"],
    scratch: { "nvme0.img": 64 },
  },
  "shared-group": {
    name: "shared-group",
    description: "edu (vfio-pci) and virtio-rng (virtio-pci) behind one PCIe-to-PCI bridge: one IOMMU group, not viable; " +
      "plus a virtio-net and a virtio-blk (ext4 image) on their guest drivers, for bind's in-use guards",
    intremap: true,
    qemuExtra: ["-device", "pcie-root-port,id=rp0,bus=pcie.0,chassis=1", "-device", "pcie-pci-bridge,id=br0,bus=rp0"],
    devices: [
      { ...EDU, qemu: ["-device", "edu,bus=br0,addr=1"] },
      { name: "virtio-rng", vendor: "1af4", device: "1005", vfio: false, qemu: ["-device", "virtio-rng-pci,bus=br0,addr=2"] },
      VIRTIO_NET,
      VIRTIO_BLK,
    ],
    // ext4 asks the crypto API for crc32c at mount time (not a depends= of ext4.ko).
    modules: ["virtio_net", "virtio_blk", "crc32c_generic", "ext4"],
    // test/vm/shared-group/host.ts makes an ext4 filesystem in it before boot.
    scratch: { "ext4.img": 16 },
  },
  iommufd: {
    name: "iommufd",
    description: "remap's guest (intel-iommu with interrupt remapping; nvme, e1000e, edu on vfio-pci), the library on iommufd and the VFIO cdev",
    intremap: true,
    devices: [NVME, E1000E, EDU],
    scratch: { "nvme0.img": 64 },
    guestEnv: { BUN_VFIO_BACKEND: "iommufd" },
    kernel: "built",
    // The remap suites that open devices through the run's backend (test/vm/backend.ts); the type1-only ones
    // (core, leaks, bad-inputs) and the backend-neutral CLI ones run in remap.
    extraTestDirs: ["test/vm/remap/bar.test.ts", "test/vm/remap/dma.test.ts", "test/vm/remap/irq.test.ts", "test/vm/remap/safety.test.ts",
      "test/vm/remap/examples.test.ts", "test/vm/remap/readme.test.ts"],
  },
  noiommu: {
    name: "noiommu",
    description: "no IOMMU at all, vfio's unsafe no-IOMMU mode (/dev/vfio/noiommu-N); nvme and edu on vfio-pci; 16 huge pages of 2 MiB",
    iommu: "none",
    // edu's default dma_mask is 28 bits; without an IOMMU its buffers sit wherever the huge pages are, so let it reach all of RAM
    devices: [NVME, { ...EDU, qemu: ["-device", "edu,dma_mask=0xffffffffffffffff"] }],
    moduleOptions: ["vfio.enable_unsafe_noiommu_mode=1"],
    kernelArgs: ["hugepagesz=2M", "hugepages=16"],
    scratch: { "nvme0.img": 64 },
    guestEnv: { BUN_VFIO_BACKEND: "noiommu" },
    kernel: "built",
  },
  nvme: {
    name: "nvme",
    description: "nvme on vfio-pci whose disk image the host seeds before boot and checks after (test/vm/nvme/host.ts)",
    intremap: true,
    devices: [NVME_IO],
    scratch: { "nvme-io.img": 64 },
  },
  hotplug: {
    name: "hotplug",
    description: "remap plus an nvme behind a PCIe root port (QEMU id nvme-hp) that guest tests unplug through the QMP bridge",
    intremap: true,
    devices: [EDU],
    // Not in `devices`: /init leaves it alone and the test binds it, so unplugging it breaks no other suite.
    qemuExtra: [
      "-device", "pcie-root-port,id=rp1,bus=pcie.0,chassis=1,slot=1",
      "-drive", "if=none,id=nvmhp,format=raw,file={tmp}/nvme-hp.img",
      "-device", "nvme,serial=bunvfiohp,drive=nvmhp,bus=rp1,id=nvme-hp",
      // a second one (slot 2) for the same unplug over iommufd
      "-device", "pcie-root-port,id=rp2,bus=pcie.0,chassis=2,slot=2",
      "-drive", "if=none,id=nvmhp2,format=raw,file={tmp}/nvme-hp2.img",
      "-device", "nvme,serial=bunvfiohp2,drive=nvmhp2,bus=rp2,id=nvme-hp2",
    ],
    scratch: { "nvme-hp.img": 16, "nvme-hp2.img": 16 },
    monitor: true,
  },
  arm64: {
    name: "arm64",
    description: "arm64 virt, SMMUv3, GICv3 ITS (MSIs isolated), 4 KiB pages; nvme, e1000e, edu on vfio-pci",
    arm64: { pageKiB: 4, msi: "its" },
    devices: [NVME, E1000E, EDU],
    // The remap suites assert each platform's own ground truth (test/vm/platform.ts).
    extraTestDirs: ["test/vm/arm64-all", "test/vm/remap"],
    ...ARM64_COMMON,
    scratch: { "nvme0.img": 64 },
  },
  "arm64-16k": {
    name: "arm64-16k",
    description: "arm64 virt, SMMUv3, GICv3 ITS, 16 KiB pages (nvme BAR0 is one page); nvme, e1000e, edu on vfio-pci",
    arm64: { pageKiB: 16, msi: "its" },
    devices: [NVME, E1000E, EDU],
    extraTestDirs: ["test/vm/arm64-all", "test/vm/remap"],
    ...ARM64_COMMON,
    scratch: { "nvme0.img": 64 },
  },
  "arm64-16k-gicv2m": {
    name: "arm64-16k-gicv2m",
    description: "arm64 virt, SMMUv3, GICv2m (no MSI isolation; allow_unsafe_interrupts=1), 16 KiB pages; nvme, e1000e, edu on vfio-pci",
    arm64: { pageKiB: 16, msi: "gicv2m" },
    devices: [NVME, E1000E, EDU],
    extraTestDirs: ["test/vm/arm64-all"],
    ...ARM64_COMMON,
    moduleOptions: ["vfio_iommu_type1.allow_unsafe_interrupts=1"],
    scratch: { "nvme0.img": 64 },
  },
};

/** The profile used when none is named. */
export const DEFAULT_PROFILE = "remap";

/**
 * Look up a profile by name.
 * @throws Error naming the known profiles when `name` is unknown
 */
export function getProfile(name: string): Profile {
  const p = PROFILES[name];
  if (!p) throw new Error(`unknown sandbox profile "${name}" (known: ${Object.keys(PROFILES).join(", ")})`);
  return p;
}

/**
 * The guest test folders of a profile, relative to the project root:
 * `test/vm/common`, `test/vm/<name>`, then its extra folders.
 */
export function profileTestDirs(p: Profile): string[] {
  return ["test/vm/common", `test/vm/${p.name}`, ...(p.extraTestDirs ?? [])];
}
