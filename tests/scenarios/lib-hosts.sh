# Hosts on a LAN inside one machine, for the migration scenarios (POSIX sh,
# busybox's unshare/nsenter/ip/brctl; sourced after lib-toolstack.sh).
#
# A "host" is a network namespace (held by a sleeping process: ns_new) with
# its own domusd, xenstored, run and log directories (host_dirs) and its own
# bridge xenbr0 (host_bridge), so that a guest's `vif = ['bridge=xenbr0']`
# means the same on every host and its tap vif<domid>.0 lands on the bridge
# of the host it runs on.  veth pairs (ns_link) join the bridges into one L2
# segment; a namespace with no bridge, linked to one, is a client on the
# LAN.  Processes started inside a namespace (domusd by the first `domus`
# command there, its xenstored and domus-vms) stay in it.  Unix sockets are
# paths, so `domus` reaches a host's domusd from anywhere through its
# DOMUS_RUN_DIR; TCP goes through the namespaces' own stacks.

# ns_new NAME: a new network namespace, its holder's pid in NS_<NAME>, lo up.
ns_new() {
    unshare -n sleep 100000 &
    eval "NS_$1=$!"
    _i=0
    while [ "$(readlink "/proc/$!/ns/net")" = "$(readlink /proc/self/ns/net)" ] &&
        [ "$_i" -lt 50 ]; do
        sleep 0.1; _i=$((_i + 1))
    done
    inns "$1" ip link set lo up
}

# inns NAME CMD...: CMD in NAME's network namespace (environment kept).
inns() {
    _ns="$(eval echo "\$NS_$1")"
    shift
    nsenter -t "$_ns" -n "$@"
}

# ns_stop: ends the namespaces' holders (a namespace lives on while
# processes run in it).
ns_stop() {
    for _v in $(set | sed -n 's/^\(NS_[A-Za-z0-9]*\)=.*/\1/p'); do
        kill "$(eval echo "\$$_v")" 2>/dev/null
    done
}

# host_bridge NAME ADDR/PREFIX MAC: xenbr0 in NAME, up, with that address
# and a MAC of its own (a bridge otherwise takes its lowest port's, which
# changes as vifs come and go).  (STP is off: ports forward at once.)
host_bridge() {
    inns "$1" brctl addbr xenbr0 &&
        inns "$1" ip link set xenbr0 address "$3" &&
        inns "$1" ip link set xenbr0 up &&
        inns "$1" ip addr add "$2" dev xenbr0
}

# ns_link NS1 IF1 BR1 NS2 IF2 BR2: a veth pair IF1 (in NS1, port of bridge
# BR1) - IF2 (in NS2, port of BR2); an empty BR leaves that end out of any
# bridge.  Both ends up.
ns_link() {
    inns "$1" ip link add "$2" type veth || return 1
    # busybox's ip takes no peer name: the kernel names it vethN.
    _peer="$(inns "$1" ip -o link | sed -n "s/^[0-9]*: \([^:@]*\)@$2:.*/\1/p")"
    [ -n "$_peer" ] || return 1
    inns "$1" ip link set "$_peer" name "$5" &&
        inns "$1" ip link set "$5" netns "$(eval echo "\$NS_$4")" || return 1
    [ -z "$3" ] || inns "$1" brctl addif "$3" "$2" || return 1
    [ -z "$6" ] || inns "$4" brctl addif "$6" "$5" || return 1
    inns "$1" ip link set "$2" up && inns "$4" ip link set "$5" up
}

# bridge_ports NS BR: the interfaces in bridge BR of NS, one a line.
bridge_ports() {
    inns "$1" ip -o link | sed -n "s/^[0-9]*: \([^:@]*\)[:@].* master $2 .*/\1/p"
}
