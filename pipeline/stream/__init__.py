"""The streaming pipeline's logic, independent of Faust: settings and the batch processor.

agents/ holds the Faust app that feeds Kafka batches to :class:`BatchProcessor`.
"""
