"""Where alerts go: the Kafka alert topic and OpenSearch."""
