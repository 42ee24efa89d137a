"""The pipeline's wiring and the console, without a Spark session: stage selection, settings
for a loaded Config, stage lines, and where library logs go."""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path

import pytest

from cardlake.config import ConfigError, load_config
from cardlake.console import StageLine, jvm_log_settings, setup_logging
from cardlake.gold.config import GoldConfig
from cardlake.pipeline import STAGE_NAMES, STAGES, Lake, run_stages, select, settings_for
from cardlake.synth.params import SynthParams


def test_stages_run_in_pipeline_order_whatever_the_order_asked() -> None:
    assert STAGE_NAMES[:5] == ("generate", "bronze", "silver", "gold", "ml")
    assert [s.name for s in select(["gold", "bronze"])] == ["bronze", "gold"]
    assert [s.name for s in select(None)] == list(STAGE_NAMES)


def test_every_stage_on_the_lake_says_what_its_lineage_reads() -> None:
    # What a stage writes is found by the versions that change; what it reads, it declares.
    for stage in STAGES:
        assert bool(stage.reads) == stage.needs_lake, stage.name
        for name in stage.reads:
            layer, _, table = name.partition(".")
            assert layer in {"landing", "bronze", "silver", "gold"} and table, name
    (bronze,) = select(["bronze"])
    assert "landing.card_transactions" in bronze.reads
    assert not [n for n in bronze.reads if not n.startswith("landing.")]


def test_an_unknown_stage_is_a_usage_error_naming_it() -> None:
    with pytest.raises(ConfigError, match="no stage named 'gld'"):
        select(["bronze", "gld"])


def test_settings_for_a_config_keeps_its_synth_overrides() -> None:
    cfg = load_config("test", overrides={"synth": {"seed": 5, "n_customers": 30}})
    settings = settings_for(cfg)
    assert settings.of(SynthParams) == SynthParams(seed=5, n_customers=30)
    assert settings.of(GoldConfig).features.lookback_months == 12
    bad = load_config("test", overrides={"synth": {"n_customerz": 30}})
    with pytest.raises(ConfigError, match="n_customerz"):
        settings_for(bad)


def test_a_stage_without_the_lake_starts_no_session(tmp_path: Path) -> None:
    # generate is plain Python: running it must not build a SparkSession.
    cfg = load_config(
        "test",
        overrides={
            "paths.landing_root": str(tmp_path / "landing"),
            "paths.truth_root": str(tmp_path / "t"),
            "synth": {"seed": 1, "n_customers": 10},
        },
    )
    lake = Lake(settings_for(cfg))
    (outcome,) = run_stages(lake, select(["generate"]), month="2024-03")
    assert lake.spark is None
    assert outcome.name == "generate" and outcome.seconds > 0
    assert (tmp_path / "landing" / "crm_customers" / "2024-03").is_dir()
    with pytest.raises(ConfigError, match="outside the generated history"):
        run_stages(lake, select(["generate"]), month="2030-01")


def test_stage_line_off_a_terminal_is_one_final_line() -> None:
    out = io.StringIO()
    line = StageLine("gold", "star schema", lambda: None, stream=out).start()
    line.finish("done")
    (text,) = out.getvalue().splitlines()
    assert text.split()[:2] == ["ok", "gold"] and text.split()[2].endswith("s")
    assert "star schema" in text


def test_library_logs_go_to_the_file_and_warnings_to_the_console_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CARDLAKE_LOG_FILE", raising=False)
    assert jvm_log_settings() == {}  # no run log: Spark's defaults
    log_file = tmp_path / "logs" / "run.log"
    try:
        setup_logging(log_file)
        logging.getLogger("great_expectations.core").info("validating 12 expectations")
        # Splink's training notes are for the file; its errors, framed with banner lines, reach
        # the console with their words on one line.
        logging.getLogger("splink.internals.linker").warning(
            "\n-- WARNING --\nYou have called predict(), but there are some parameter estimates\n"
            "which have neither been estimated or specified in your settings dictionary."
        )
        long_message = "ERROR:\nLevel x not observed" + "!" * 400
        logging.getLogger("splink.internals.em").error(long_message)
        try:
            raise RuntimeError("boom\nsecond line")
        except RuntimeError:
            logging.getLogger("mlflow.store").warning("could not log", exc_info=True)
        for handler in logging.getLogger().handlers:
            handler.flush()
        console = capsys.readouterr().err
        assert "validating 12 expectations" not in console
        assert "cardlake: warning: mlflow.store: could not log" in console
        assert "Traceback" not in console
        assert "You have called predict()" not in console
        (long,) = [line for line in console.splitlines() if "splink.internals.em" in line]
        assert long.startswith("cardlake: error: splink.internals.em: Level x not observed!!")
        assert long.endswith("...") and len(long) < 320
        text = log_file.read_text()
        assert "INFO great_expectations.core: validating 12 expectations" in text
        assert "WARNING splink.internals.linker: \n-- WARNING --\nYou have called predict()" in text
        assert "Traceback" in text and "RuntimeError: boom" in text
        options = jvm_log_settings()["spark.driver.extraJavaOptions"]
        assert f"-Dcardlake.log.file={log_file}" in options and "log4j2.properties" in options
    finally:
        setup_logging(None)
        os.environ.pop("CARDLAKE_LOG_FILE", None)  # later sessions must not log to this file


def test_what_a_stage_prints_goes_to_the_log_file_not_the_console(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import sys
    from dataclasses import replace

    def chatty(tables: object, settings: object, *, month: str | None) -> str:
        print("Created version '1' of model 'cardlake-fraud'.", file=sys.stderr)  # as MLflow does
        print("fitting  100%|##########|")
        # what logging.captureWarnings makes of warnings.warn (pytest records them itself)
        logging.getLogger("py.warnings").warning(
            "mlflow/types/utils.py:440: UserWarning: Hint: Inferred schema contains integer"
        )
        logging.getLogger("cardlake.test").warning("a warning of ours")
        return "done"

    (generate,) = select(["generate"])
    stage = replace(generate, name="chatty", run=chatty, needs_lake=False)
    log_file = tmp_path / "run.log"
    lake = Lake(settings_for(load_config("test")))
    try:
        setup_logging(log_file)
        (outcome,) = run_stages(lake, [stage], month=None)
        for handler in logging.getLogger().handlers:
            handler.flush()
        console = capsys.readouterr()
    finally:
        setup_logging(None)
        os.environ.pop("CARDLAKE_LOG_FILE", None)
    assert outcome.result == "done"
    assert console.out == ""
    assert console.err == "cardlake: warning: cardlake.test: a warning of ours\n"
    text = log_file.read_text()
    for printed in (
        "Created version '1'",
        "fitting  100%",
        "Inferred schema contains integer",
        "a warning of ours",
    ):
        assert printed in text, printed
