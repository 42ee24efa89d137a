"""Fixtures for the matcher's tests.

Bridge until the session profiles carry ``spark.jars`` for Splink's similarity UDFs: when no
launcher arguments are set, put the jar on the command line of the JVM the shared ``spark``
fixture starts. This runs at collection, before any session exists; it only adds a jar.
"""

from __future__ import annotations

import os

import pytest

splink = pytest.importorskip("splink")

if "PYSPARK_SUBMIT_ARGS" not in os.environ:
    from cardlake.er import splink_spark_conf

    os.environ["PYSPARK_SUBMIT_ARGS"] = f"--jars {splink_spark_conf()['spark.jars']} pyspark-shell"
