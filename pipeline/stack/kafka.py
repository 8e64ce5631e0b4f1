"""Kafka in KRaft mode, one process that is both broker and controller.

Installed as plain jars (kafka_2.13 and its runtime dependencies plus log4j2)
resolved by Maven from deploy/local/kafka/pom.xml into `<home>/kafka/libs`.
Configuration is rewritten on every start from the settings, so a changed
port takes effect; the storage is formatted once, on first start, with a
generated cluster id that then lives in the data dir's meta.properties.
"""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Callable

from pipeline.errors import StackError
from pipeline.stack.marker import install_needed, write_marker
from pipeline.stack.process import ServerProcess, markers_for
from pipeline.stack.settings import KAFKA_SASL_PASSWORD, KAFKA_SASL_USER, REPO_ROOT, StackSettings
from pipeline.stack.toolchain import JavaHome, mvn_copy_dependencies

NAME = "kafka"
POM = REPO_ROOT / "deploy" / "local" / "kafka" / "pom.xml"


def server(settings: StackSettings) -> ServerProcess:
    return ServerProcess(NAME, settings.run_dir / "kafka.pid", markers_for(NAME, settings.home))


def data_dir(settings: StackSettings) -> Path:
    return settings.data_dir / "kafka"


def log_path(settings: StackSettings) -> Path:
    return settings.logs_dir / "kafka.log"


def install(settings: StackSettings, java: JavaHome, say: Callable[[str], None]) -> None:
    """Make `<home>/kafka/libs` hold the jars of `kafka_version`; no-op when already whole."""
    root = settings.kafka_dir
    if not install_needed(NAME, root, settings.kafka_version, POM, say):
        return
    say(f"kafka {settings.kafka_version}: resolving jars with mvn (cached in ~/.m2)")
    shutil.rmtree(root, ignore_errors=True)
    staging = settings.home / "kafka.partial"
    shutil.rmtree(staging, ignore_errors=True)
    mvn_copy_dependencies(
        POM,
        staging / "libs",
        {"kafka.version": settings.kafka_version},
        java=java,
        log_path=settings.logs_dir / "mvn-kafka.log",
        what=f"Kafka {settings.kafka_version}",
        extra=("-DincludeScope=runtime",),
    )
    if not any((staging / "libs").glob(f"kafka_2.13-{settings.kafka_version}.jar")):
        raise StackError(f"mvn finished but kafka_2.13-{settings.kafka_version}.jar is not in {staging / 'libs'}")
    staging.replace(root)
    write_marker(root, settings.kafka_version, skip=("config",))


# SCRAM-SHA-256 only: a client asking for SCRAM-SHA-512 shows the "listener does not enable
# that mechanism" error (tests/integration/test_kafka_credentials.py)
SCRAM_MECHANISMS = ("SCRAM-SHA-256",)
SCRAM_MARKER = "peregrine-scram-users"  # in the data dir: the test user's SCRAM credentials exist


def _scram_credentials(mechanism: str) -> str:
    """A StorageTool ``--add-scram`` value: the local test user's credentials for ``mechanism``."""
    return f"{mechanism}=[name={KAFKA_SASL_USER},password={KAFKA_SASL_PASSWORD}]"


def _plain_jaas(user: str, password: str) -> str:
    """The broker side of SASL/PLAIN: the users it accepts (user_<name>="<password>")."""
    return (f'org.apache.kafka.common.security.plain.PlainLoginModule required '
            f'username="{user}" password="{password}" user_{user}="{password}";')


TLS_STORE_PASSWORD = "peregrine-local-tls"  # the local broker's keystore on loopback, not a secret
TLS_VALIDITY_DAYS = "3650"


def ensure_tls(settings: StackSettings, java: JavaHome, say: Callable[[str], None]) -> Path:
    """The SSL listener's keystore, made once with the JDK's keytool: a local CA
    (``ca.pem``, what clients trust) and the broker's key and certificate signed by it,
    for ``settings.host`` (an IP SAN, so a client's hostname check passes) and
    localhost. Returns the broker's PKCS12 keystore. Made in a temporary dir then
    renamed, so an interrupted run leaves nothing half made."""
    tls = settings.kafka_tls_dir
    keystore = tls / "broker.p12"
    if keystore.is_file() and settings.kafka_ca_file.is_file():
        return keystore
    say(f"kafka: making a local CA and the SSL listener's certificate in {tls}")
    staging = tls.with_name(tls.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    keytool = str(java.home / "bin" / "keytool")
    store = ["-storetype", "PKCS12", "-storepass", TLS_STORE_PASSWORD]
    steps = [
        ["-genkeypair", "-alias", "ca", "-dname", "CN=Peregrine local CA", "-ext", "bc:c", "-keyalg", "RSA", "-keysize", "2048",
         "-validity", TLS_VALIDITY_DAYS, "-keystore", "ca.p12", *store],
        ["-exportcert", "-rfc", "-alias", "ca", "-keystore", "ca.p12", *store, "-file", "ca.pem"],
        ["-genkeypair", "-alias", "broker", "-dname", f"CN={settings.host}", "-keyalg", "RSA", "-keysize", "2048",
         "-validity", TLS_VALIDITY_DAYS, "-keystore", "broker.p12", *store],
        ["-certreq", "-alias", "broker", "-keystore", "broker.p12", *store, "-file", "broker.csr"],
        ["-gencert", "-rfc", "-alias", "ca", "-keystore", "ca.p12", *store, "-infile", "broker.csr", "-outfile", "broker.pem",
         "-validity", TLS_VALIDITY_DAYS, "-ext", f"SAN=IP:{settings.host},DNS:localhost", "-ext", "EKU=serverAuth"],
        ["-importcert", "-noprompt", "-alias", "ca", "-file", "ca.pem", "-keystore", "broker.p12", *store],
        ["-importcert", "-alias", "broker", "-file", "broker.pem", "-keystore", "broker.p12", *store],
    ]
    for step in steps:
        _run_tool([keytool, *step], 120, f"keytool {step[0]} failed in {staging}", cwd=staging)
    shutil.rmtree(tls, ignore_errors=True)
    staging.replace(tls)
    return keystore


def _keystore(settings: StackSettings, listener: str) -> list[str]:
    """A TLS listener's keystore settings (server authentication only)."""
    prefix = f"listener.name.{listener}.ssl"
    return [
        f"{prefix}.keystore.location={settings.kafka_tls_dir / 'broker.p12'}",
        f"{prefix}.keystore.type=PKCS12",
        f"{prefix}.keystore.password={TLS_STORE_PASSWORD}",
        f"{prefix}.key.password={TLS_STORE_PASSWORD}",
        f"{prefix}.client.auth=none",
    ]


def _sasl_jaas(listener: str) -> list[str]:
    """A SASL listener's logins: PLAIN's user in its JAAS line, SCRAM's in the cluster metadata."""
    return [
        f"listener.name.{listener}.plain.sasl.jaas.config={_plain_jaas(KAFKA_SASL_USER, KAFKA_SASL_PASSWORD)}",
        *(f"listener.name.{listener}.{m.lower()}.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;"
          for m in SCRAM_MECHANISMS),
    ]


def _server_properties(settings: StackSettings) -> str:
    host = settings.host
    sasl = f"SASL_PLAINTEXT://{host}:{settings.kafka_sasl_port}"
    tls = f"SSL://{host}:{settings.kafka_ssl_port}"
    sasl_tls = f"SASL_SSL://{host}:{settings.kafka_sasl_ssl_port}"
    return "\n".join([
        "# Written by `peregrine stack up` on every start; edit pipeline/stack/settings.py instead.",
        "process.roles=broker,controller",
        "node.id=1",
        f"controller.quorum.voters=1@{host}:{settings.kafka_controller_port}",
        f"listeners=PLAINTEXT://{host}:{settings.kafka_port},{sasl},{tls},{sasl_tls},CONTROLLER://{host}:{settings.kafka_controller_port}",
        f"advertised.listeners=PLAINTEXT://{host}:{settings.kafka_port},{sasl},{tls},{sasl_tls}",
        "controller.listener.names=CONTROLLER",
        "inter.broker.listener.name=PLAINTEXT",
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SSL:SSL,SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT",
        # the SSL and SASL_SSL listeners: server authentication by TLS, keystore from ensure_tls
        *_keystore(settings, "ssl"),
        *_keystore(settings, "sasl_ssl"),
        # the SASL listener: PLAIN and SCRAM with one local test user (stack settings
        # KAFKA_SASL_USER/PASSWORD); PLAIN's users are in its JAAS line, SCRAM's in the
        # cluster metadata (added when the storage is formatted)
        f"sasl.enabled.mechanisms=PLAIN,{','.join(SCRAM_MECHANISMS)}",
        *(line for listener in ("sasl_plaintext", "sasl_ssl") for line in _sasl_jaas(listener)),
        f"log.dirs={data_dir(settings)}",
        "num.partitions=1",
        "auto.create.topics.enable=false",
        "offsets.topic.replication.factor=1",
        "offsets.topic.num.partitions=4",
        "transaction.state.log.replication.factor=1",
        "transaction.state.log.min.isr=1",
        "share.coordinator.state.topic.replication.factor=1",
        "share.coordinator.state.topic.min.isr=1",
        "group.initial.rebalance.delay.ms=0",
        "log.retention.hours=24",
        "",
    ])


_LOG4J2 = """\
# Written by `peregrine stack up`: everything to stdout, which goes to logs/kafka.log.
status = warn
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.state.name = state.change.logger
logger.state.level = WARN
logger.config.name = org.apache.kafka.common.config.AbstractConfig
logger.config.level = WARN
"""


def configure(settings: StackSettings) -> tuple[Path, Path]:
    """Write server.properties and log4j2.properties; returns their paths."""
    config = settings.kafka_dir / "config"
    config.mkdir(parents=True, exist_ok=True)
    properties = config / "server.properties"
    properties.write_text(_server_properties(settings))
    log4j = config / "log4j2.properties"
    log4j.write_text(_LOG4J2)
    return properties, log4j


def new_cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes, URL-safe base64 without padding (what StorageTool
    makes). Like Kafka's own Uuid.randomUuid, never one that starts with "-": one in 64 did, and
    StorageTool's argument parser took it for an option ("--cluster-id: expected one argument")."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def _java_base(settings: StackSettings, java: JavaHome, log4j: Path) -> list[str]:
    return [
        str(java.java),
        *markers_for(NAME, settings.home),
        f"-Dlog4j2.configurationFile={log4j}",
        f"-Dkafka.logs.dir={settings.logs_dir}",
        "-Djava.awt.headless=true",
        "-cp",
        str(settings.kafka_dir / "libs" / "*"),
    ]


def format_storage_if_needed(settings: StackSettings, java: JavaHome, properties: Path, log4j: Path, say: Callable[[str], None]) -> None:
    """Format KRaft storage once; the cluster id is then kept in meta.properties."""
    meta = data_dir(settings) / "meta.properties"
    if meta.is_file():
        return
    data_dir(settings).mkdir(parents=True, exist_ok=True)
    cluster_id = new_cluster_id()
    say(f"kafka: formatting storage in {data_dir(settings)} (cluster id {cluster_id})")
    argv = _java_base(settings, java, log4j) + [
        "kafka.tools.StorageTool", "format", "--cluster-id", cluster_id, "--config", str(properties),
    ]
    for mechanism in SCRAM_MECHANISMS:
        argv += ["--add-scram", _scram_credentials(mechanism)]
    _run_tool(argv, 300, f"kafka storage format failed in {data_dir(settings)}")
    (data_dir(settings) / SCRAM_MARKER).write_text(",".join(SCRAM_MECHANISMS) + "\n")


def _run_tool(argv: list[str], timeout_s: float, failure: str, cwd: Path | None = None) -> None:
    """Run one of Kafka's (or the JDK's) command-line tools; a StackError with its last line when it fails."""
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, cwd=cwd)
    if done.returncode != 0:
        detail = (done.stderr.strip() or done.stdout.strip()).splitlines()[-1:] or ["no output"]
        raise StackError(f"{failure}: {detail[0][:400]}")


def add_scram_users_if_needed(settings: StackSettings, java: JavaHome, log4j: Path, say: Callable[[str], None]) -> None:
    """A data dir formatted before the SASL listener took SCRAM: add the test user's SCRAM
    credentials once, through the running broker (Kafka's ConfigCommand)."""
    marker = data_dir(settings) / SCRAM_MARKER
    if marker.is_file() or not (data_dir(settings) / "meta.properties").is_file():
        return
    say(f"kafka: adding SCRAM credentials for user {KAFKA_SASL_USER}")
    config = ",".join(f"{m}=[password={KAFKA_SASL_PASSWORD}]" for m in SCRAM_MECHANISMS)
    argv = _java_base(settings, java, log4j) + [
        "kafka.admin.ConfigCommand", "--bootstrap-server", settings.kafka_bootstrap, "--alter",
        "--add-config", config, "--entity-type", "users", "--entity-name", KAFKA_SASL_USER,
    ]
    _run_tool(argv, 120, f"kafka: adding SCRAM credentials for {KAFKA_SASL_USER} failed")
    marker.write_text(",".join(SCRAM_MECHANISMS) + "\n")


def argv(settings: StackSettings, java: JavaHome, properties: Path, log4j: Path) -> list[str]:
    java_bin, *options = _java_base(settings, java, log4j)
    heap = settings.kafka_heap
    memory = [f"-Xms{heap}", f"-Xmx{heap}", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20"]
    return [java_bin, *memory, *options, "kafka.Kafka", str(properties)]


def environment(java: JavaHome) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KAFKA_", "JAVA_TOOL_OPTIONS"))}
    env["JAVA_HOME"] = str(java.home)
    return env
