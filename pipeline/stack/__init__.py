"""The local stack: single-node Kafka (KRaft) and OpenSearch on 127.0.0.1, no Docker.

    settings    every default (versions, ports, topics, index) and PEREGRINE_* overrides
    toolchain   finding Java and running Maven (~/.m2 is the download cache)
    marker      install markers that detect a partial or corrupt install
    kafka       Kafka's install, configuration, storage format and command line
    opensearch  OpenSearch's install, configuration, run-as user and command line
    process     pid files, ownership checks, start and stop
    ports       who holds a port
    health      readiness probes
    provision   topics and the alert index template
    lifecycle   up / down / status
"""
