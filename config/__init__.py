"""The application config (``flink-conf/adloop.yaml`` + environment), below every layer that reads it."""
