#!/usr/bin/env bash
# Checks `ipfs-accelerate hw --json` against nvidia-smi on an NVIDIA machine.
#
# Usage: scripts/device/hw_check.sh path/to/ipfs-accelerate
#
# For every GPU nvidia-smi lists, finds our CUDA device with the same PCI
# address (or, failing that, the same index) and compares the name, total
# memory (within 1%: nvidia-smi rounds to MiB, and libcuda's total leaves out
# what the driver reserves), compute capability and driver version. Prints
# one PASS or FAIL line per comparison and exits 1 on any FAIL, 2 when it
# cannot run. Needs python3 and nvidia-smi.
set -euo pipefail

bin=${1:?usage: $0 path/to/ipfs-accelerate}
command -v nvidia-smi >/dev/null || { echo "FAIL nvidia-smi not found" >&2; exit 2; }
command -v python3 >/dev/null || { echo "FAIL python3 not found" >&2; exit 2; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$bin" hw --json >"$tmp/ours.json" || { echo "FAIL $bin hw --json exited $?" >&2; exit 2; }
nvidia-smi --query-gpu=name,memory.total,memory.free,compute_cap,driver_version,pci.bus_id \
  --format=csv,noheader,nounits >"$tmp/smi.csv"

python3 - "$tmp/ours.json" "$tmp/smi.csv" <<'PY'
import csv, json, re, sys

ours = json.load(open(sys.argv[1]))
smi = [[c.strip() for c in row] for row in csv.reader(open(sys.argv[2])) if row]
cuda = [d for d in ours.get("devices", []) if d.get("kind") == "cuda"]
failed = 0

def report(ok, what):
    global failed
    print(("PASS " if ok else "FAIL ") + what)
    failed += not ok

def pci(s):
    # "00000000:3B:00.0" (nvidia-smi) and "0000:3b:00.0" (ours) alike
    m = re.match(r"^([0-9a-fA-F]+):([0-9a-fA-F]+):([0-9a-fA-F]+)\.([0-7])$", s or "")
    return tuple(int(x, 16) for x in m.groups()) if m else None

for p in ours.get("probes", []):
    if p["name"] in ("nvidia", "nvml"):
        print(f"  probe {p['name']}: {p['message']}")
report(len(cuda) == len(smi), f"device count: ours {len(cuda)}, nvidia-smi {len(smi)}")

for i, (name, total_mib, free_mib, cc, driver, bus) in enumerate(smi):
    dev = next((d for d in cuda if pci(d.get("pci_bus")) == pci(bus)), None)
    how = "PCI address"
    if dev is None and i < len(cuda):
        dev, how = cuda[i], "index (no PCI match)"
    if dev is None:
        report(False, f"gpu {i} ({bus}): not among our CUDA devices")
        continue
    tag = f"{dev['id']} <-> gpu {i} {bus} by {how}:"
    report(dev.get("name") == name, f"{tag} name {dev.get('name')!r} vs {name!r}")
    smi_total = int(float(total_mib)) * 1024 * 1024
    ours_total = dev.get("memory_total") or 0
    diff = abs(ours_total - smi_total) / smi_total if smi_total else 1.0
    report(diff <= 0.01, f"{tag} memory_total {ours_total} vs {smi_total} ({diff:.2%} apart)")
    report(dev.get("compute_capability") == cc,
           f"{tag} compute_capability {dev.get('compute_capability')!r} vs {cc!r}")
    report(dev.get("driver") == driver, f"{tag} driver {dev.get('driver')!r} vs {driver!r}")
    if dev.get("memory_free") is not None and free_mib.replace(".", "").isdigit():
        print(f"  info: memory_free {dev['memory_free']} vs nvidia-smi {int(float(free_mib)) << 20}")

print("hw_check: " + ("all PASS" if not failed else f"{failed} FAIL"))
sys.exit(1 if failed else 0)
PY
