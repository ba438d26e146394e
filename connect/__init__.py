"""Connections to Kafka and Redis: client properties, secrets and the start-up check.

No Flink import here: the job, the simulator, the tools and serving nodes share it.
"""
