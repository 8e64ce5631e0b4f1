"""The syscall source's fields: Falco's syscall field classes, with types.

Types follow Falco's "Supported Fields" (CHARBUF -> STRING; INT*/UINT*/PID/
UID/GID/FD/ERRNO -> INT; PORT; BOOL; IPV4ADDR/IPADDR -> IPADDR; IPNET;
ABSTIME; RELTIME; BYTEBUF -> BYTES). Two deliberate departures: ``evt.time``
is ABSTIME (collectors send nanoseconds; Falco formats it as text) and
``evt.rawarg`` is INT (its real type is the parameter's; numbers are by far
its common use). See :mod:`pipeline.fields.declare` for the table syntax.
"""

TABLE = """
# --- evt: the event itself
evt.num INT
evt.time ABSTIME
evt.time.s STRING
evt.time.iso8601 STRING
evt.datetime STRING
evt.datetime.s STRING
evt.rawtime ABSTIME
evt.rawtime.s INT
evt.rawtime.ns INT
evt.reltime RELTIME
evt.reltime.s INT
evt.reltime.ns INT
evt.deltatime RELTIME
evt.deltatime.s INT
evt.deltatime.ns INT
evt.latency RELTIME
evt.latency.s INT
evt.latency.ns INT
evt.latency.human STRING
evt.dir STRING
evt.type STRING
evt.type.is INT key
syscall.type STRING
evt.category STRING
evt.cpu INT
evt.args STRING
evt.arg STRING keyidx
evt.rawarg INT keyidx
evt.info STRING
evt.buffer BYTES
evt.buflen INT
evt.res STRING
evt.rawres INT
evt.failed BOOL
evt.is_io BOOL
evt.is_io_read BOOL
evt.is_io_write BOOL
evt.io_dir STRING
evt.is_wait BOOL
evt.wait_latency RELTIME
evt.is_syslog BOOL
evt.count INT
evt.count.error INT
evt.count.error.file INT
evt.count.error.net INT
evt.count.error.memory INT
evt.count.error.other INT
evt.count.exit INT
evt.abspath STRING
evt.abspath.src STRING
evt.abspath.dst STRING
evt.is_open_read BOOL
evt.is_open_write BOOL
evt.is_open_exec BOOL
evt.is_open_create BOOL
evt.hostname STRING
evt.source STRING
evt.pluginname STRING
evt.plugininfo STRING
evt.is_async BOOL
evt.asynctype STRING
# --- proc: the process (and its parent and ancestors)
proc.exe STRING
proc.pexe STRING
proc.aexe STRING idx?
proc.exepath STRING
proc.pexepath STRING
proc.aexepath STRING idx?
proc.name STRING
proc.pname STRING
proc.aname STRING idx?
proc.args STRING
proc.cmdline STRING
proc.pcmdline STRING
proc.acmdline STRING idx?
proc.cmdnargs INT
proc.cmdlenargs INT
proc.exeline STRING
proc.env STRING key?
proc.cwd STRING
proc.loginshellid INT
proc.tty INT
proc.pid INT
proc.ppid INT
proc.apid INT idx?
proc.vpid INT
proc.pvpid INT
proc.sid INT
proc.sname STRING
proc.sid.exe STRING
proc.sid.exepath STRING
proc.vpgid INT
proc.vpgid.name STRING
proc.vpgid.exe STRING
proc.vpgid.exepath STRING
proc.pgid INT
proc.pgid.name STRING
proc.pgid.exe STRING
proc.pgid.exepath STRING
proc.duration RELTIME
proc.ppid.duration RELTIME
proc.pid.ts ABSTIME
proc.ppid.ts ABSTIME
proc.is_exe_writable BOOL
proc.is_exe_upper_layer BOOL
proc.is_exe_from_memfd BOOL
proc.is_sid_leader BOOL
proc.is_vpgid_leader BOOL
proc.is_pgid_leader BOOL
proc.exe_ino INT
proc.exe_ino.ctime ABSTIME
proc.exe_ino.mtime ABSTIME
proc.exe_ino.ctime_duration_proc_start RELTIME
proc.exe_ino.ctime_duration_pidns_start RELTIME
proc.pidns_init_start_ts ABSTIME
proc.nthreads INT
proc.nchilds INT
proc.fdopencount INT
proc.fdlimit INT
proc.fdusage INT
proc.vmsize INT
proc.vmrss INT
proc.vmswap INT
proc.pfmajor INT
proc.pfminor INT
proc.stdin.type STRING
proc.stdout.type STRING
proc.stderr.type STRING
proc.stdin.name STRING
proc.stdout.name STRING
proc.stderr.name STRING
proc.is_container_healthcheck BOOL
proc.is_container_liveness_probe BOOL
proc.is_container_readiness_probe BOOL
# --- thread
thread.tid INT
thread.ismain BOOL
thread.vtid INT
thread.exectime RELTIME
thread.totexectime RELTIME
thread.cgroups STRING
thread.cgroup STRING key
thread.nametid STRING
thread.cap_permitted STRING
thread.cap_inheritable STRING
thread.cap_effective STRING
thread.vmsize INT
thread.vmrss INT
# --- user and group
user.uid INT
user.name STRING
user.homedir STRING
user.shell STRING
user.loginuid INT
user.loginname STRING
group.gid INT
group.name STRING
# --- fd: the file descriptor the event is about
fd.num INT
fd.type STRING
fd.typechar STRING
fd.name STRING
fd.nameraw STRING
fd.directory STRING
fd.filename STRING
fd.ip IPADDR
fd.cip IPADDR
fd.sip IPADDR
fd.lip IPADDR
fd.rip IPADDR
fd.port PORT
fd.cport PORT
fd.sport PORT
fd.lport PORT
fd.rport PORT
fd.l4proto STRING
fd.sockfamily STRING
fd.is_server BOOL
fd.uid STRING
fd.containername STRING
fd.containerdirectory STRING
fd.proto STRING
fd.cproto STRING
fd.sproto STRING
fd.lproto STRING
fd.rproto STRING
fd.net IPNET
fd.cnet IPNET
fd.snet IPNET
fd.lnet IPNET
fd.rnet IPNET
fd.connected BOOL
fd.name_changed BOOL
fd.cip.name STRING
fd.sip.name STRING
fd.lip.name STRING
fd.rip.name STRING
fd.dev INT
fd.dev.major INT
fd.dev.minor INT
fd.ino INT
fd.types STRING list idx?
# --- fs.path: the paths of file-system events (mkdir, unlink, rename, link...)
fs.path.name STRING
fs.path.nameraw STRING
fs.path.source STRING
fs.path.sourceraw STRING
fs.path.target STRING
fs.path.targetraw STRING
# --- container
container.id STRING
container.full_id STRING
container.name STRING
container.image STRING
container.image.id STRING
container.image.repository STRING
container.image.tag STRING
container.image.digest STRING
container.type STRING
container.privileged BOOL
container.mounts STRING
container.mount STRING key
container.mount.source STRING key
container.mount.dest STRING key
container.mount.mode STRING key
container.mount.rdwr STRING key
container.mount.propagation STRING key
container.healthcheck STRING
container.liveness_probe STRING
container.readiness_probe STRING
container.start_ts ABSTIME
container.duration RELTIME
container.ip IPADDR
container.cni.json STRING
container.host_pid BOOL
container.host_network BOOL
container.host_ipc BOOL
container.label STRING key
container.labels STRING
# --- k8s: pod metadata from the container runtime or the k8smeta plugin
k8s.pod.name STRING
k8s.pod.id STRING
k8s.pod.uid STRING
k8s.pod.sandbox_id STRING
k8s.pod.full_sandbox_id STRING
k8s.pod.label STRING key
k8s.pod.labels STRING
k8s.pod.ip IPADDR
k8s.pod.cni.json STRING
k8s.ns.name STRING
k8s.ns.id STRING
k8s.ns.label STRING key
k8s.ns.labels STRING
k8s.rc.name STRING
k8s.rc.id STRING
k8s.rc.label STRING key
k8s.rc.labels STRING
k8s.rs.name STRING
k8s.rs.id STRING
k8s.rs.label STRING key
k8s.rs.labels STRING
k8s.svc.name STRING
k8s.svc.id STRING
k8s.svc.label STRING key
k8s.svc.labels STRING
k8s.deployment.name STRING
k8s.deployment.id STRING
k8s.deployment.label STRING key
k8s.deployment.labels STRING
"""
