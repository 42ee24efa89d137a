"""The errors the harness turns into exit codes; every layer may raise them (nothing imported).

``cardlake.cli`` maps them: :class:`JobFailed` to 1 (the data failed a check),
``cardlake.config.ConfigError`` to 2, ``cardlake.spark.JavaError`` and
:class:`ConnectorMissing` to 3, :class:`LakeLocked` to 5, anything else to 4 (a crash).
"""

from __future__ import annotations


class JobFailed(RuntimeError):
    """The job's data failed a check; the message says which file, row, field or expectation."""


class ConnectorMissing(RuntimeError):
    """A connector the configuration asks for (Delta's jars, S3A) is not on the classpath."""


class LakeLocked(RuntimeError):
    """Another pipeline run holds the lake's lock."""
