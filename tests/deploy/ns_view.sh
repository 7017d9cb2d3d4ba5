#!/usr/bin/env bash
# ns_view.sh: run by test_namespaces.sh as the first process of new IPC, mount, PID, network
# and UTS namespaces (root inside them, by privilege or through a user namespace). It builds
# the view a client container has: fresh tmpfs over /run, /tmp, /dev/shm and /var/tmp, so that
# no path-based channel (a socket, a shm object, a file) of the host is reachable, then only
# swarmd's socket directory bind-mounted back at /run/swarm and the client's binaries at
# /run/client, as `-v /run/swarm:/run/swarm` gives a container. It reports what it sees
# ("view KEY=VALUE" lines, checked by the caller) and then runs the client.
#
# usage: ns_view.sh SOCKDIR BINDIR MARKER SHMID POSIX_SHM_NAME REQUESTS
set -euo pipefail

sockdir=$1 bindir=$2 marker=$3 shmid=$4 posix_shm=$5 requests=$6

# /run first: the binds are taken from the host's paths, which /tmp's tmpfs hides next.
mount -t tmpfs -o mode=0755 swarm-ns-run /run
mkdir /run/swarm /run/client
mount --bind "$sockdir" /run/swarm
mount --bind "$bindir" /run/client
for d in /tmp /dev/shm /var/tmp; do
	if [[ -d $d ]]; then
		mount -t tmpfs -o mode=1777 swarm-ns-hide "$d"
	fi
done
# POSIX message queues are a file system bound to the IPC namespace it was mounted in.
if [[ -d /dev/mqueue ]]; then
	mount -t mqueue mqueue /dev/mqueue
fi

present() { if [[ -e $1 ]]; then echo present; else echo absent; fi; }
echo "view uid=$(id -u)"
echo "view marker=$(present "$marker")"
echo "view posix_shm=$(present "/dev/shm/$posix_shm")"
# ipcs lists the segments of the namespace it runs in: the host's must not be there.
if ipcs -m | awk -v id="$shmid" '$2 == id { found = 1 } END { exit !found }'; then
	echo "view sysv_shm=present"
else
	echo "view sysv_shm=absent"
fi
echo "view sysv_shm_count=$(ipcs -m | awk '$2 ~ /^[0-9]+$/' | wc -l)"
# /proc is this PID namespace's (unshare --mount-proc): swarmd and its workers are not in it.
n=0
for comm in /proc/[0-9]*/comm; do
	read -r name <"$comm" 2>/dev/null || continue
	[[ $name == swarmd || $name == swarm-worker ]] && n=$((n + 1))
done
echo "view swarm_processes=$n"
echo "view net_links=$(awk 'NR > 2' /proc/net/dev | wc -l)"
echo "view sockdir=$(ls -A /run/swarm | tr '\n' ' ')"
echo "view tmp_entries=$(ls -A /tmp | wc -l)"

unset SWARM_SOCKET XDG_RUNTIME_DIR SWARM_REGISTRY
export LD_LIBRARY_PATH=/run/client
exec /run/client/ns_client /run/swarm/swarmd.sock "$requests"
