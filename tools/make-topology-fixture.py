#!/usr/bin/env python3
"""Writes hwloc v2 XML topologies of real server shapes, with their GPUs, for tests and for
swarmd --topology: the machines swarm is built for, on a machine that has none of them.

Each shape is the layout a person would find with `lstopo --of xml` on such a server:
packages, NUMA nodes (one per package, or several per package as AMD's NPS4 or Intel's SNC
make them, each then under a Group), cores with two hardware threads, one host bridge per GPU
under the object whose NUMA node the GPU is attached to, each GPU an NVIDIA 3D controller
(PCI class 0302) with a "cudaN" OS device, and the NUMA distance matrix the firmware (SLIT)
reports. The shapes:

  2s-8gpu        two sockets, one NUMA node each, 32 cores per socket, four GPUs per socket
                 (a DGX-style or HGX-style 8-GPU server); distances 10 local, 21 remote
  1s-4n-8gpu     one socket split in four NUMA nodes (AMD EPYC in NPS4), 16 cores per node,
                 two GPUs per node; distances 10 local, 12 to the other nodes
  1s-1gpu        a one-socket workstation: 8 cores, one NUMA node, one GPU

Usage: make-topology-fixture.py SHAPE OUT.xml   (or --all DIR to write every shape)
"""
import argparse
import os
import sys

SHAPES = {
    # packages, NUMA nodes per package, cores per node, GPUs per node, local/remote
    # distance within a package and across packages, memory per node (GiB)
    "2s-8gpu": dict(packages=2, nodes=1, cores=32, gpus=4, near=21, far=21, mem=512),
    "1s-4n-8gpu": dict(packages=1, nodes=4, cores=16, gpus=2, near=12, far=12, mem=128),
    "1s-1gpu": dict(packages=1, nodes=1, cores=8, gpus=1, near=10, far=10, mem=64),
}
THREADS = 2


def mask(bits):
    """hwloc's bitmap string: 32-bit words, most significant first, comma separated."""
    if not bits:
        return "0x0"
    top = max(bits) // 32
    words = []
    for w in range(top, -1, -1):
        v = 0
        for b in bits:
            if b // 32 == w:
                v |= 1 << (b % 32)
        words.append("0x%08x" % v)
    return ",".join(words)


class Writer:
    def __init__(self):
        self.lines = []
        self.gp = 0

    def gp_index(self):
        self.gp += 1
        return self.gp

    def open(self, depth, text):
        self.lines.append("  " * depth + text)


def sets(cpus, nodes):
    c, n = mask(cpus), mask(nodes)
    return ('cpuset="%s" complete_cpuset="%s" nodeset="%s" complete_nodeset="%s"' %
            (c, c, n, n))


def write_cores(w, s, node, depth, n_cores, core):
    """NUMA node node's cores, each with its two threads, numbered from core on; the next
    core's number."""
    for c in range(s["cores"]):
        # Linux numbers the first thread of every core of the machine first, then the
        # siblings: PU k and k + (all cores) share a core, as on real servers.
        first = node * s["cores"] + c
        threads = [first, first + n_cores]
        w.open(depth + 1, '<object type="Core" os_index="%d" %s gp_index="%d">' %
               (core, sets(threads, [node]), w.gp_index()))
        for t in sorted(threads):
            w.open(depth + 2, '<object type="PU" os_index="%d" %s gp_index="%d"/>' %
                   (t, sets([t], [node]), w.gp_index()))
        w.open(depth + 1, '</object>')
        core += 1
    return core


def write_gpus(w, s, depth, gpu):
    """A node's GPUs, numbered from gpu on, each under its host bridge; the next GPU's number."""
    for _ in range(s["gpus"]):
        bus = 0x18 + 0x20 * gpu
        w.open(depth, '<object type="Bridge" gp_index="%d" bridge_type="0-1" depth="0" '
               'bridge_pci="0000:[%02x-%02x]">' % (w.gp_index(), bus, bus))
        w.open(depth + 1, '<object type="PCIDev" gp_index="%d" pci_busid="0000:%02x:00.0" '
               'pci_type="0302 [10de:2330] [10de:16c1] a1 00" pci_link_speed="31.5">' %
               (w.gp_index(), bus))
        w.open(depth + 2, '<object type="OSDev" gp_index="%d" name="cuda%d" '
               'subtype="CUDA" osdev_type="5">' % (w.gp_index(), gpu))
        w.open(depth + 3, '<info name="Backend" value="CUDA"/>')
        w.open(depth + 3, '<info name="GPUVendor" value="NVIDIA Corporation"/>')
        w.open(depth + 3, '<info name="GPUModel" value="NVIDIA H100 80GB HBM3"/>')
        w.open(depth + 2, '</object>')
        w.open(depth + 1, '</object>')
        w.open(depth, '</object>')
        gpu += 1
    return gpu


def write_distances(w, s, n_nodes):
    """The NUMA distance matrix (SLIT): 10 local, near within a package, far across."""
    vals = []
    for a in range(n_nodes):
        for b in range(n_nodes):
            if a == b:
                vals.append(10)
            elif a // s["nodes"] == b // s["nodes"]:
                vals.append(s["near"])
            else:
                vals.append(s["far"])
    idx = "".join("%d " % i for i in range(n_nodes))
    val = "".join("%d " % v for v in vals)
    w.open(1, '<distances2 type="NUMANode" nbobjs="%d" kind="5" indexing="os">' % n_nodes)
    w.open(2, '<indexes length="%d">%s</indexes>' % (len(idx), idx))
    w.open(2, '<u64values length="%d">%s</u64values>' % (len(val), val))
    w.open(1, '</distances2>')


def shape_xml(name):
    s = SHAPES[name]
    n_nodes = s["packages"] * s["nodes"]
    pus_per_node = s["cores"] * THREADS
    n_cores = n_nodes * s["cores"]
    all_pus = list(range(n_nodes * pus_per_node))

    def node_pus(node):
        first = list(range(node * s["cores"], (node + 1) * s["cores"]))
        return first + [c + n_cores for c in first]

    all_nodes = list(range(n_nodes))
    w = Writer()
    w.open(0, '<?xml version="1.0" encoding="UTF-8"?>')
    w.open(0, '<!DOCTYPE topology SYSTEM "hwloc2.dtd">')
    w.open(0, '<topology version="2.0">')
    allowed = 'allowed_cpuset="%s" allowed_nodeset="%s"' % (mask(all_pus), mask(all_nodes))
    w.open(1, '<object type="Machine" os_index="0" %s %s gp_index="%d">' %
           (sets(all_pus, all_nodes), allowed, w.gp_index()))
    w.open(2, '<info name="Backend" value="swarm-fixture"/>')
    w.open(2, '<info name="SwarmFixture" value="%s"/>' % name)
    gpu = 0
    core = 0
    for p in range(s["packages"]):
        p_nodes = list(range(p * s["nodes"], (p + 1) * s["nodes"]))
        p_pus = [c for node in p_nodes for c in node_pus(node)]
        w.open(2, '<object type="Package" os_index="%d" %s gp_index="%d">' %
               (p, sets(p_pus, p_nodes), w.gp_index()))
        w.open(3, '<info name="CPUModel" value="swarm fixture %s"/>' % name)
        for node in p_nodes:
            pus = node_pus(node)
            depth = 3
            if s["nodes"] > 1:
                # Several nodes in one package: each hangs under a Group of its cores.
                w.open(depth, '<object type="Group" %s gp_index="%d" kind="1000" '
                       'subkind="0">' % (sets(pus, [node]), w.gp_index()))
                depth += 1
            w.open(depth, '<object type="NUMANode" os_index="%d" %s gp_index="%d" '
                   'local_memory="%d"/>' % (node, sets(pus, [node]), w.gp_index(),
                                            s["mem"] << 30))
            w.open(depth, '<object type="L3Cache" %s gp_index="%d" cache_size="%d" depth="3" '
                   'cache_linesize="64" cache_associativity="16" cache_type="0">' %
                   (sets(pus, [node]), w.gp_index(), 32 << 20))
            core = write_cores(w, s, node, depth, n_cores, core)
            w.open(depth, '</object>')
            gpu = write_gpus(w, s, depth, gpu)
            if s["nodes"] > 1:
                w.open(3, '</object>')
        w.open(2, '</object>')
    w.open(1, '</object>')
    if n_nodes > 1:
        write_distances(w, s, n_nodes)
    w.open(0, '</topology>')
    return "\n".join(w.lines) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="shapes: " + ", ".join(SHAPES))
    ap.add_argument("shape", nargs="?", choices=sorted(SHAPES))
    ap.add_argument("out", nargs="?")
    ap.add_argument("--all", metavar="DIR", help="write SHAPE.xml for every shape into DIR")
    a = ap.parse_args()
    if a.all:
        os.makedirs(a.all, exist_ok=True)
        for name in SHAPES:
            with open(os.path.join(a.all, name + ".xml"), "w") as f:
                f.write(shape_xml(name))
        return 0
    if not a.shape or not a.out:
        ap.error("give SHAPE and OUT.xml, or --all DIR")
    with open(a.out, "w") as f:
        f.write(shape_xml(a.shape))
    return 0


if __name__ == "__main__":
    sys.exit(main())
