"""Structured Streaming: card events to scored fraud alerts, exactly once.

- :mod:`cardlake.stream.broker`: a single-node Kafka (KRaft) from Kafka's Maven jars.
- :mod:`cardlake.stream.events`: the event contract (schema, parsing, quarantine reasons).
- :mod:`cardlake.stream.job`: the streaming query (file or Kafka source) and its sinks.
"""
