#!/bin/sh
# Log4Shell as the JVM lives it after the JNDI injection, in a container of the
# atelier image: the JVM stand-in (/opt/atelier/jvm/bin/java, a process named
# java) starts curl, writes a .class file, then connects to the LDAP port 1389 of
# the target. Harmless: the target is the atelier's fake target or 127.0.0.1.
# (With 127.0.0.1 the LDAP connection is a loopback one, which the single rule
# leaves out on purpose; the chain still completes.)
# Usage: sh attack.sh [target-host]    (default 127.0.0.1)
set -u
target=${1:-127.0.0.1}
/opt/atelier/jvm/bin/java -jar /app/orders.jar "$target" || true
rm -f /tmp/Exploit.class
echo "log4shell: done (expect the Log4Shell exploitation chain and its three single rules)"
