"""Flink SQL of the project: DDL and views derived from the event contract, plus .sql files."""
