/**
 * The per-device registry of the irq layer: one MSI-X, MSI, INTx, ERR and
 * REQ object per device, the "one of INTx/MSI/MSI-X at a time" rule, and
 * teardown that turns everything off before the device fd closes (the
 * device calls it first thing in close()).
 */
import { otherTypeEnabled } from "./irq-errors.ts";
import { IntxInterrupt } from "./intx.ts";
import { MsiInterrupts } from "./msi.ts";
import { MsixInterrupts } from "./msix.ts";
import { ErrorEvents, ReleaseRequests } from "./device-events.ts";
import type { IrqPciDevice } from "./port.ts";
import type { ExclusiveGate } from "./vector-index.ts";

/** Every interrupt index of one vfio-pci device. */
export class DeviceInterrupts {
  readonly msix: MsixInterrupts;
  readonly msi: MsiInterrupts;
  readonly intx: IntxInterrupt;
  readonly err: ErrorEvents;
  readonly req: ReleaseRequests;

  constructor(dev: IrqPciDevice) {
    let active: number | undefined;
    const gate: ExclusiveGate = {
      claim(index, op) {
        if (active !== undefined && active !== index) throw otherTypeEnabled(op, index, active, dev.path);
        active = index;
      },
      release(index) {
        if (active === index) active = undefined;
      },
    };
    this.msix = new MsixInterrupts(dev, gate);
    this.msi = new MsiInterrupts(dev, gate);
    this.intx = new IntxInterrupt(dev, gate);
    this.err = new ErrorEvents(dev);
    this.req = new ReleaseRequests(dev);
  }

  /**
   * Turns every index off and ends every wait, continuing past failures;
   * rethrows the first failure at the end. Runs from device.close() before
   * the device fd is closed.
   */
  teardown(): void {
    let first: unknown;
    for (const index of [this.msix, this.msi, this.intx, this.err, this.req]) {
      try {
        index._teardown();
      } catch (err) {
        first ??= err;
      }
    }
    if (first !== undefined) throw first;
  }
}
