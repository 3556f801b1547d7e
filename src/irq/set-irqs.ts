/**
 * The VFIO_DEVICE_SET_IRQS calls the irq layer makes, each with hints for
 * the ways vfio-pci refuses it (drivers/vfio/pci/vfio_pci_intrs.c).
 */
import { VfioError } from "../support/errors.ts";
import { check, type Hints } from "../sys/check.ts";
import { sys } from "../sys/runtime.ts";
import { encodeIrqSet, type IrqSetData } from "../uapi/structs.ts";
import * as V from "../uapi/vfio.ts";
import { irqIndexName, type IrqDevice } from "./port.ts";

const OP = "VFIO_DEVICE_SET_IRQS";

/** One SET_IRQS ioctl; returns the kernel's (non-negative) result, throws a VfioError on failure. */
export function setIrqs(dev: IrqDevice, index: number, start: number, count: number, action: number, data: IrqSetData, hints: Hints): number {
  const fd = dev.unsafeFd;
  return check(sys().ioctl(fd, V.VFIO_DEVICE_SET_IRQS, encodeIrqSet(index, start, count, action, data)), OP, dev.path, hints);
}

/**
 * Points vectors `[start, start + fds.length)` of `index` at the eventfds
 * (DATA_EVENTFD | ACTION_TRIGGER); an fd of -1 detaches that vector. When
 * the index is off, vfio-pci enables it with `start + fds.length` vectors.
 */
export function assignEventfds(dev: IrqDevice, index: number, start: number, fds: number[]): void {
  const name = irqIndexName(index);
  const ret = setIrqs(dev, index, start, fds.length, V.VFIO_IRQ_SET_ACTION_TRIGGER, { kind: "eventfd", fds }, {
    EINVAL: `The kernel refused ${name} vectors ${start}-${start + fds.length - 1}: another interrupt type (INTx, MSI, MSI-X) may be on for this device, or the vectors are beyond what it allows without disabling first.`,
    ENOSPC: "The host ran out of interrupt vectors: ask for fewer.",
    EBADF: "An eventfd was closed before the kernel took it (a library bug: please report it).",
    ENODEV: "The device has no interrupt line (PCI interrupt pin 0) or lost it: use MSI or MSI-X.",
  });
  // vfio_msi_enable() returns how many vectors the host *could* allocate when it cannot get them all.
  if (ret > 0) {
    throw new VfioError({
      op: OP, code: "ENOSPC", errno: 28, path: dev.path,
      detail: `the host could allocate only ${ret} of ${start + fds.length} ${name} vectors`,
      hint: `Ask for at most ${ret} vectors.`,
    });
  }
}

/** Turns an index off (DATA_NONE | ACTION_TRIGGER, count 0): every vector is freed. */
export function disableIndex(dev: IrqDevice, index: number): void {
  setIrqs(dev, index, 0, 0, V.VFIO_IRQ_SET_ACTION_TRIGGER, { kind: "none" }, {
    EINVAL: `${irqIndexName(index)} is not the interrupt type the kernel has enabled for this device.`,
  });
}

/** Signals vectors from software, as if the device had raised them (DATA_NONE | ACTION_TRIGGER). */
export function triggerVectors(dev: IrqDevice, index: number, start: number, count = 1): void {
  setIrqs(dev, index, start, count, V.VFIO_IRQ_SET_ACTION_TRIGGER, { kind: "none" }, {
    EINVAL: `${irqIndexName(index)} is not enabled, or vectors ${start}-${start + count - 1} are out of range.`,
  });
}

/** Masks or unmasks vectors through the kernel (DATA_NONE | ACTION_MASK or ACTION_UNMASK); only where MASKABLE. */
export function maskVectors(dev: IrqDevice, index: number, start: number, count: number, masked: boolean): void {
  const action = masked ? V.VFIO_IRQ_SET_ACTION_MASK : V.VFIO_IRQ_SET_ACTION_UNMASK;
  setIrqs(dev, index, start, count, action, { kind: "none" }, {
    ENOTTY: `The kernel cannot mask ${irqIndexName(index)} through SET_IRQS (irqInfo().maskable is false).`,
    EINVAL: `${irqIndexName(index)} is not enabled, or the vector is out of range.`,
  });
}

/**
 * Registers (fd >= 0) or removes (fd -1) an eventfd whose signal unmasks
 * the index (DATA_EVENTFD | ACTION_UNMASK): the INTx resample path.
 */
export function setUnmaskEventfd(dev: IrqDevice, index: number, fd: number): void {
  setIrqs(dev, index, 0, 1, V.VFIO_IRQ_SET_ACTION_UNMASK, { kind: "eventfd", fds: [fd] }, {
    EINVAL: `${irqIndexName(index)} is not enabled: enable it before registering an unmask eventfd.`,
    ENOTTY: `The kernel has no unmask eventfd for ${irqIndexName(index)}.`,
  });
}
