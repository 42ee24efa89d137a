"""The training template on a tiny task whose answer is known by hand: the label is a band of one
feature (|x| < 1), which trees cut exactly and a straight line through x cannot, so gradient-
boosted trees must win; what it logs, registers and aliases is read back from a real SQLite
MLflow store."""

from __future__ import annotations

import time

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from cardlake.ml import tracking, training
from cardlake.ml.common import Fitted
from cardlake.ml.settings import GbtGrid, LrGrid, PropensitySettings

# Any model's settings carry the registry name, the grids and the trees' step.
BAND_SETTINGS = PropensitySettings(
    model_name="unit-band",
    lr_grid=LrGrid(reg_param=(0.0,), elastic_net=(0.0,)),
    gbt_grid=GbtGrid(max_depth=(2,), max_iter=(3,)),
    gbt_step_size=0.5,
)


def band_task(**changes) -> training.ModelTask:
    defaults = {
        "name": "unit",
        "run_name": "band",
        "settings": BAND_SETTINGS,
        "seed": 3,
        "numeric": ("x",),
        "categorical": (),
        "parts": {"test": "test rows"},
        "choose_on": "validation_auc",
        "promotion_metric": "test_auc",
        "drivers_title": "Band drivers",
    }
    return training.ModelTask(**(defaults | changes))


def band_rows(spark, xs: list[float]):
    # Inside the band (|x| < 1) is the positive class; a None x is filled with 0 by the model's
    # features, so it is inside the band.
    rows = [(x, int(abs(x) < 1)) for x in xs] + [(None, 1)]
    return spark.createDataFrame(rows, "x double, label int")


@pytest.mark.slow
def test_trees_win_a_band_and_are_registered_as_champion(spark, tracker):
    grid = [-3.0, -2.5, -2.0, -1.5, -0.75, -0.5, -0.25, 0.0, 0.25, 0.5, 0.75, 1.5, 2.0, 2.5, 3.0]
    fit_df = band_rows(spark, grid * 3)
    valid_df = band_rows(spark, [x + 0.1 for x in grid])
    test_df = band_rows(spark, [-2.8, -1.8, -0.6, -0.1, 0.3, 0.6, 1.7, 2.8])
    task = band_task()
    seen: list[str] = []

    def count_rows(candidate: training.Candidate) -> dict[str, float]:
        seen.append(candidate.kind)
        return {f"{candidate.kind}_test_scored": float(candidate.scored["test"].count())}

    with training.model_run(tracker, task, time.perf_counter()) as out:
        trained = training.train_and_register(
            tracker,
            task,
            fit_df=fit_df,
            valid_df=valid_df,
            parts={"test": test_df},
            evaluate=count_rows,
            registry_tags=lambda chosen, found: {"auc_seen": f"{found[f'{chosen}_test_auc']:.2f}"},
        )
        out.update(trained.metrics)
        run_id = mlflow.active_run().info.run_id

    assert seen == ["lr", "gbt"]
    assert trained.chosen == "gbt"
    # 9 test rows: 5 in the band (-0.6, -0.1, 0.3, 0.6 and the None), 4 outside, all cut apart
    assert trained.metrics["gbt_test_auc"] == 1.0
    assert trained.metrics["gbt_test_rows"] == 9.0
    assert trained.metrics["gbt_test_positive_rate"] == pytest.approx(5 / 9)
    # Any score monotone in x ranks the band between the outer rows, two on each side (-2.8,
    # -1.8 | 1.7, 2.8): each positive beats half the negatives, whichever the slope's sign.
    assert trained.metrics["lr_test_auc"] == 0.5
    assert trained.metrics["gbt_test_scored"] == 9.0
    assert trained.metrics["promoted"] == 1.0
    assert set(trained.scored) == set()  # nothing kept cached unless asked

    client = MlflowClient(tracking_uri=tracker.uri)
    run = client.get_run(run_id)
    assert run.info.run_name == "band"
    assert run.data.params["gbt.best.max_depth"] == "2"
    assert run.data.params["gbt.best.max_iter"] == "3"
    assert run.data.params["lr.best.reg_param"] == "0.0"
    assert run.data.tags["candidate"] == "gbt"
    assert run.data.metrics["gbt_test_auc"] == 1.0
    assert "training_seconds" in run.data.metrics
    artefacts = {
        f.path for folder in ("tables", "plots") for f in client.list_artifacts(run_id, folder)
    }
    assert artefacts == {
        "tables/lr_grid.csv",
        "tables/gbt_grid.csv",
        "tables/lr_drivers.csv",
        "tables/gbt_drivers.csv",
        "plots/lr_drivers.png",
        "plots/gbt_drivers.png",
        "plots/roc_test.png",
        "plots/pr_test.png",
        "plots/gains_test.png",
    }
    champion = client.get_model_version_by_alias("unit-band", tracking.CHAMPION)
    assert str(champion.version) == trained.champion_version == "1"
    assert champion.tags["kind"] == "gbt"
    assert champion.tags["auc_seen"] == "1.00"
    assert champion.tags[tracking.METRIC_TAG] == "test_auc"
    assert str(client.get_model_version_by_alias("unit-band", tracking.CHALLENGER).version) == "1"


def fitted(kind: str, auc: float, pr_auc: float) -> Fitted:
    return Fitted(kind=kind, model=None, params={}, validation={"auc": auc, "pr_auc": pr_auc})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("choose_on", "lr", "gbt"),
    [
        ("validation_auc", 0.9, 0.7),  # lr's validation AUC
        ("validation_pr_auc", 0.2, 0.4),  # gbt's validation PR AUC
        ("oos_auc", 0.55, 0.65),  # the metrics' lr_oos_auc, gbt_oos_auc
    ],
)
def test_choice_reads_validation_or_the_kinds_metric(choose_on, lr, gbt):
    task = band_task(choose_on=choose_on)
    models = {"lr": fitted("lr", 0.9, 0.2), "gbt": fitted("gbt", 0.7, 0.4)}
    found = {"lr_oos_auc": 0.55, "gbt_oos_auc": 0.65}
    assert training.choice_value(task, models["lr"], found, "lr") == lr
    assert training.choice_value(task, models["gbt"], found, "gbt") == gbt
