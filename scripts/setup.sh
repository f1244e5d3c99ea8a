#!/usr/bin/env bash
# Set up everything voe needs on a fresh Debian machine: system packages, a
# virtualenv with the pinned Python dependencies, and the console's build.
# Idempotent and quick when already done. Used by ./demo, ./test and CI.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  pkg-config libvirt-dev libvirt-clients  # libvirt-python builds against libvirt
  libvirt-daemon libvirt-daemon-driver-qemu libxml2-utils  # the lab's KVM hypervisor hosts; domain XML checks
  ipmitool snmp                            # real IPMI and SNMP clients, for tests and operators
  tgt nfs-ganesha nfs-ganesha-vfs dbus     # userspace iSCSI target and NFS server (managed over DBus)
  libiscsi-bin libnfs-utils                # userspace iSCSI and NFS clients, for the storage tests
  dnsmasq-base dnsmasq-utils               # DHCP and the iPXE chain for the lab's KVM machines
  qemu-system-x86 ipxe-qemu                # the lab's KVM machines and their network-boot firmware
  openvswitch-switch ethtool               # the lab switches' forwarding plane (userspace datapath)
  iproute2 procps
  chromium                                 # the console's browser tests (Playwright drives it)
  busybox-static e2fsprogs qemu-utils      # the sample persona images, built here; qcow2 clones
  mmdebstrap                               # the real persona system (Debian, from this machine's apt sources)
  syslinux syslinux-common mtools dosfstools fdisk  # its SAN-boot disk: MBR, syslinux on FAT, built without a mount
  rsync openssh-client                     # capture of a live server's root (voe template create --from-host)
  golang-go golang-github-vmware-govmomi-dev  # VMware's vCenter simulator, built below for the vSphere tests
)
missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# libvirtd resolves its QEMU driver's user and group (Debian's: libvirt-qemu)
# as it starts, before it reads the lab's qemu.conf, which runs QEMU as root.
# Debian's libvirt-daemon-system makes them, with a system-wide daemon the
# lab does not want: made here alone.
if [ "$(id -u)" -eq 0 ] && ! getent passwd libvirt-qemu >/dev/null; then
  getent group libvirt-qemu >/dev/null || groupadd --system libvirt-qemu
  useradd --system --gid libvirt-qemu --no-create-home --home-dir /var/lib/libvirt --shell /usr/sbin/nologin libvirt-qemu
fi

PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.voe-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ requirements.lock -nt "$stamp" ]; then
  echo "setup: installing Python dependencies (pinned by requirements.lock)"
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -c requirements.lock -e '.[test,agent]'
  touch "$stamp"
fi

if [ -f console/package.json ]; then
  if ! command -v npm >/dev/null; then
    echo "setup: npm is needed to build the console" >&2; exit 1
  fi
  if [ ! -d console/node_modules ] || [ console/package-lock.json -nt console/node_modules ]; then
    # the locked versions, without rewriting the lock. Not `npm ci`: it refuses
    # a lock that lacks rollup's packages for other platforms, which the
    # npm mirror this project builds from does not carry
    (cd console && npm install --no-save --no-audit --no-fund --loglevel=error)
  fi
  (cd console && npm run --silent build)
fi
if [ ! -f build/templates/.built ] || [ src/voe/images/samples.py -nt build/templates/.built ]; then
  echo "setup: building the sample persona templates (build/templates)"
  .venv/bin/python -m voe.images.samples build/templates >/dev/null
  touch build/templates/.built
fi
if [ "$(id -u)" -eq 0 ]; then
  # the real persona system: built once (about 3.5 minutes), kept in /var/cache/voe/images;
  # a failed build fails its own tests, not the setup of everything else
  .venv/bin/python -m voe.images.debian >/dev/null || echo "setup: the Debian persona system was not built (above)"
else
  echo "setup: not root: the Debian persona system (voe.images.debian) is not built; its tests skip"
fi
if [ ! -x build/vcsim ] || [ scripts/vcsim/main.go -nt build/vcsim ]; then
  echo "setup: building VMware's vCenter simulator (build/vcsim) from Debian's govmomi, offline"
  mkdir -p build/go/src/vcsim build/go/cache
  cp scripts/vcsim/main.go build/go/src/vcsim/
  (cd build/go/src/vcsim && GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE="$PWD/../../cache" \
    go build -o ../../../vcsim .)
fi
echo "setup: ready (.venv)"
