/**
 * The guest's /init, a busybox shell script. It is the same for every run;
 * what changes per run (devices to bind, directory, command) comes from the
 * writable share (`ctl/job.sh`, `ctl/cmd.sh`), and module options from the
 * kernel command line (`module.param=value`, as modprobe reads them).
 */
import { CTL, GUEST_RESULTS_DIR, INIT_PREFIX, MARK_EXIT, MARK_INIT, MARK_RUN, SHARE_OUT, TAG_HOST, TAG_SHARE } from "./protocol.ts";

/** 9p message size: bigger is faster; the kernel caps it for virtio. */
const MSIZE = 512000;

/**
 * The text of /init. Modules are expected in `/lib/modules/<name>.ko`, their
 * order in `/lib/modules/order`. x86 (default): chroot into the host's `/`
 * shared read-only. `ownRoot` (the arm64 guest): the initramfs is the root,
 * the host's `/` is mounted on `/host` and only the working directory is
 * bound in at its own path; `$GUEST_BUN` (from job.sh) is linked as
 * `/usr/local/bin/bun`.
 */
export function initScript(opts: { ownRoot?: boolean } = {}): string {
  return `#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t devtmpfs devtmpfs /dev
exec </dev/console >/dev/console 2>&1
mount -t proc proc /proc
mount -t sysfs sysfs /sys
echo "${MARK_INIT}"
say() { echo "${INIT_PREFIX} $*"; }
die() {
  echo "${INIT_PREFIX} error: $*"
  [ -d /share/ctl ] && echo 125 > /share/${CTL.status}
  echo "${MARK_EXIT}125>>"
  sync; poweroff -f; sleep 30
}

# Modules, in dependency order; options from "module.param=value" on the kernel command line.
for m in $(cat /lib/modules/order); do
  opts=""
  for w in $(cat /proc/cmdline); do case "$w" in "$m".*) opts="$opts \${w#"$m".}";; esac; done
  insmod /lib/modules/$m.ko $opts || die "insmod $m$opts failed"
done

${opts.ownRoot ? "R=/host; mkdir -p $R" : "R=/root"}
mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=${MSIZE},cache=loose ${TAG_HOST} $R || die "cannot mount the host's / (9p tag ${TAG_HOST})"
mount -t 9p -o trans=virtio,version=9p2000.L,msize=${MSIZE} ${TAG_SHARE} /share || die "cannot mount the results share (9p tag ${TAG_SHARE})"
[ -f /share/${CTL.job} ] || die "no /share/${CTL.job}"
BIND=""; WORKDIR=/; TMPBINDS=""; RESULTS=${GUEST_RESULTS_DIR}
. /share/${CTL.job}

# Bind every device whose vendor:device is listed in BIND to vfio-pci.
for id in $BIND; do
  found=0
  for dev in /sys/bus/pci/devices/*; do
    [ "$(cat $dev/vendor):$(cat $dev/device)" = "0x\${id%:*}:0x\${id#*:}" ] || continue
    found=1; bdf=\${dev##*/}
    echo vfio-pci > $dev/driver_override || die "cannot set driver_override of $bdf"
    if [ -e $dev/driver ]; then
      old=$(readlink $dev/driver); echo $bdf > $dev/driver/unbind || die "cannot unbind $bdf from \${old##*/}"
    fi
    echo $bdf > /sys/bus/pci/drivers_probe
    drv=$(readlink $dev/driver); grp=$(readlink $dev/iommu_group); grp=\${grp##*/}
    [ "\${drv##*/}" = vfio-pci ] || die "$bdf ($id) did not bind to vfio-pci (driver: \${drv##*/})"
    # vfio's no-IOMMU mode gives each device a fake group whose node is /dev/vfio/noiommu-N.
    [ -e /dev/vfio/noiommu-$grp ] && grp="$grp (no-IOMMU, /dev/vfio/noiommu-$grp)"
    say "$bdf ($id) bound to vfio-pci, iommu group \${grp:-none}"
  done
  [ $found = 1 ] || die "no PCI device $id in the guest"
done

${opts.ownRoot ? OWN_ROOT : CHROOT}echo 1 > /proc/sys/kernel/printk
cat /proc/kmsg > /share/${CTL.kernelLog} &
echo "${MARK_RUN}"
env -i ${opts.ownRoot ? "" : "chroot $R "}/bin/sh -c "$(cat /share/${CTL.cmd})" </dev/null
st=$?
echo $st > /share/${CTL.status}
echo "${MARK_EXIT}$st>>"
sync
poweroff -f
sleep 30
`;
}

/** x86: the chroot: host / read-only, writable /tmp, the guest's /proc /sys /dev, results share. */
const CHROOT = `# The chroot: host / read-only, writable /tmp, the guest's /proc /sys /dev, results share.
mkdir -p /dev/shm && mount -t tmpfs -o mode=1777 shm /dev/shm
# Huge pages (reserved with hugepages=N on the command line) for DMA buffers, where systemd would mount them.
if grep -qw hugetlbfs /proc/filesystems; then mkdir -p /dev/hugepages && mount -t hugetlbfs hugetlbfs /dev/hugepages || die "cannot mount hugetlbfs"; fi
# Host folders under /tmp the command needs (its directory, Bun, the package, its arguments): bound over the tmpfs.
[ -n "$TMPBINDS" ] && { mkdir -p /hosttmp && mount -o bind $R/tmp /hosttmp; }
mount -t tmpfs -o mode=1777 tmp $R/tmp || die "cannot mount tmpfs on /tmp"
mount -o bind /proc $R/proc && mount -o bind /sys $R/sys && mount -o rbind /dev $R/dev || die "cannot bind /proc /sys /dev"
for p in $TMPBINDS; do
  [ -e "/hosttmp\${p#/tmp}" ] || die "$p (needed by the command) does not exist on the host"
  # A file directly in /tmp (bun /tmp/x.ts) needs a file to bind onto, a folder a folder.
  if [ -d "/hosttmp\${p#/tmp}" ]; then mkdir -p "$R$p"; else touch "$R$p"; fi && mount -o bind "/hosttmp\${p#/tmp}" "$R$p" || die "cannot bind $p into the guest"
done
mkdir -p $R$RESULTS && mount -o bind /share/${SHARE_OUT} $R$RESULTS || die "cannot bind the results share"

`;

/** arm64: the initramfs is the root; the working directory and the guest's Bun come from the host's / on $R. */
const OWN_ROOT = `mkdir -p /dev/shm /tmp /usr/local/bin && mount -t tmpfs -o mode=1777 shm /dev/shm && mount -t tmpfs -o mode=1777 tmp /tmp || die "cannot mount tmpfs"
[ -x "$R$GUEST_BUN" ] || die "no Bun for the guest at $GUEST_BUN"
ln -sf "$R$GUEST_BUN" /usr/local/bin/bun
mkdir -p "$WORKDIR" && mount -o bind "$R$WORKDIR" "$WORKDIR" || die "cannot bind $WORKDIR"
mkdir -p $RESULTS && mount -o bind /share/${SHARE_OUT} $RESULTS || die "cannot bind the results share"
`;
