"""``servectl tune`` against real engines on a tiny grid, and its pure parts on small tables."""

from __future__ import annotations

import csv
import math

import pytest

from tests.helpers import models_config, run_servectl
from tf_serving_platform.loadtest import tune
from tf_serving_platform.loadtest.tune import Setting, Trial
from tf_serving_platform.servectl.cli import main
from tf_serving_platform.serving.engine.config_protos import BatchingParameters, read_text_proto

PNG_HEADER = b"\x89PNG\r\n\x1a\n"
SLO_P99_MS = 500.0
TINY_GRID = ("--max-batch-sizes", "4,16", "--timeouts-us", "0,2000", "--threads", "1",
             "--queue", "4")
SHORT = ("--users", "4", "--duration", "3s")


def read_rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def tuned(test_models, tmp_path_factory):
    """Two settings of a 2x2 grid (the --budget draw), 3 s each, with a generous SLO."""
    out = tmp_path_factory.mktemp("tune")
    result = run_servectl("tune", "--model", "half_plus_two", "--model-base-path",
                          str(test_models["half_plus_two"]), *TINY_GRID, "--budget", "2",
                          *SHORT, "--slo-p99-ms", f"{SLO_P99_MS:g}", "--out", str(out),
                          timeout=240)
    return result, out


def test_chosen_setting_meets_the_slo_with_the_highest_throughput(tuned):
    result, out = tuned
    assert result.returncode == 0, result.stdout + result.stderr
    rows = read_rows(out / "tune.csv")
    expected = tune.sample(tune.build_grid((4, 16), (0, 2000), (1,), (4,)), 2)
    assert [(int(r["max_batch_size"]), int(r["batch_timeout_micros"]),
             int(r["max_enqueued_batches"]), int(r["num_batch_threads"])) for r in rows] == \
        [(s.max_batch_size, s.batch_timeout_micros, s.max_enqueued_batches, s.num_batch_threads)
         for s in expected]
    chosen = [r for r in rows if r["chosen"] == "True"]
    assert len(chosen) == 1
    best = chosen[0]
    assert best["meets_slo"] == "True" and float(best["p99_ms"]) <= SLO_P99_MS
    assert float(best["error_rate"]) <= 0.01 and int(best["requests"]) > 100
    passing = [float(r["rps"]) for r in rows if r["meets_slo"] == "True"]
    assert float(best["rps"]) == max(passing)
    for row in rows:  # the CSV's verdict is the SLO's rule
        meets = float(row["p99_ms"]) <= SLO_P99_MS and float(row["error_rate"]) <= 0.01
        assert (row["meets_slo"] == "True") == meets
    progress = [line for line in result.stdout.splitlines() if line.startswith("[")]
    assert len(progress) == 2 and all("req/s" in line for line in progress)
    assert f"chosen: #{best['index']} " in result.stdout


def test_written_file_is_plain_batching_parameters_the_engine_accepts(tuned):
    from tf_serving_platform.serving.engine.batcher import BatchingOptions

    _, out = tuned
    best = next(r for r in read_rows(out / "tune.csv") if r["chosen"] == "True")
    text = (out / "batching.config").read_text()
    assert text.startswith("# ") and "servectl tune" in text and "p99 <= 500 ms" in text
    settings = [line for line in text.splitlines() if not line.startswith("#")]
    assert settings == [f"{name} {{ value: {best[name]} }}" for name in
                        ("max_batch_size", "batch_timeout_micros", "max_enqueued_batches",
                         "num_batch_threads")]
    params = read_text_proto(out / "batching.config", BatchingParameters)
    assert [f.name for f, _ in params.ListFields()] == [
        "max_batch_size", "batch_timeout_micros", "max_enqueued_batches", "num_batch_threads"]
    options = BatchingOptions.from_proto(params, cpus=2)
    assert (options.max_batch_size, options.batch_timeout_micros, options.num_batch_threads,
            options.max_enqueued_batches) == (int(best["max_batch_size"]),
                                              int(best["batch_timeout_micros"]),
                                              int(best["num_batch_threads"]),
                                              int(best["max_enqueued_batches"]))


def test_table_plot_and_per_setting_runs_are_written(tuned):
    result, out = tuned
    assert (out / "tune.png").read_bytes().startswith(PNG_HEADER)
    header = next(line for line in result.stdout.splitlines() if line.startswith("#  "))
    assert header.split() == ["#", "max_batch", "timeout_us", "queue", "threads", "req/s",
                              "p50", "ms", "p99", "ms", "errors", "error", "%", "meets", "SLO"]
    runs = sorted((out / "runs").iterdir())
    assert len(runs) == 2
    for run in runs:  # the file each engine read, its log and the load test's own reports
        assert read_text_proto(run / "batching.config", BatchingParameters).HasField(
            "max_batch_size")
        assert (run / "results.json").exists() and (run / "engine.log").exists()


def test_impossible_slo_exits_1_and_writes_no_file(test_models, tmp_path):
    config = tmp_path / "models.config"
    config.write_text(models_config({"half_plus_two": test_models["half_plus_two"]}))
    output = tmp_path / "batching.config"
    result = run_servectl("tune", "--model", "half_plus_two", "--model-config-file", str(config),
                          *TINY_GRID, "--budget", "1", "--users", "2", "--duration", "2s",
                          "--slo-p99-ms", "0.001", "--out", str(tmp_path / "out"),
                          "--output", str(output), timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1].startswith("no setting met the SLO (p99 <= 0.001 ms")
    assert not output.exists()
    rows = read_rows(tmp_path / "out" / "tune.csv")
    assert len(rows) == 1 and rows[0]["meets_slo"] == "False" and rows[0]["chosen"] == "False"
    assert int(rows[0]["requests"]) > 0


@pytest.mark.parametrize("args, fragment", [
    (("--threads", "0"), "argument --threads: expected comma-separated integers >= 1"),
    (("--timeouts-us", "1000,x"), "argument --timeouts-us: expected comma-separated integers"),
    (("--budget", "0"), "argument --budget: expected a positive number"),
    (("--batch-size", "8", "--max-batch-sizes", "4,16"), "--max-batch-sizes 4 is below "
                                                         "--batch-size 8"),
    (("--slo-error-rate", "2"), "--slo-error-rate is a fraction in [0, 1]"),
])
def test_usage_errors_are_one_line_with_exit_2(tmp_path, capsys, args, fragment):
    argv = ["tune", "--model", "m", "--model-base-path", str(tmp_path), "--slo-p99-ms", "5",
            "--out", str(tmp_path / "out"), *args]
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    err = capsys.readouterr().err.strip()
    assert code == 2 and fragment in err and len(err.splitlines()) == 1, err


def test_model_missing_from_the_config_file_is_a_usage_error(tmp_path, capsys):
    config = tmp_path / "models.config"
    config.write_text(models_config({"other": "/models/other"}))
    code = main(["tune", "--model", "half_plus_two", "--model-config-file", str(config),
                 "--slo-p99-ms", "5", "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == (f"servectl tune: error: --model-config-file {config} does not "
                                 "serve 'half_plus_two'; it serves other")


def test_missing_slo_or_model_location_is_refused():
    assert run_servectl("tune", "--model", "m", "--model-base-path", "/tmp").returncode == 2
    assert run_servectl("tune", "--model", "m", "--slo-p99-ms", "5").returncode == 2


# --- the pure parts ---------------------------------------------------------------------

def test_default_grid_follows_the_recipe():
    grid = tune.build_grid(cores=4)
    assert len(grid) == len(tune.DEFAULT_MAX_BATCH_SIZES) * len(tune.DEFAULT_TIMEOUTS_US)
    assert {s.num_batch_threads for s in grid} == {4}  # threads = cores
    assert {s.max_enqueued_batches for s in grid} == {4}  # queue ~ threads (online serving)
    assert [s.batch_timeout_micros for s in grid[:5]] == [0, 1000, 2000, 5000, 10000]
    assert {s.max_batch_size for s in grid} == {8, 16, 32}
    assert tune.build_grid(cores=0)[0].num_batch_threads == 1


def test_overridden_grid_is_the_full_product_with_the_queue_tied_to_threads():
    grid = tune.build_grid((8, 32), (0, 1000), (1, 2), (2, 8))
    assert len(grid) == 16 and len(set(grid)) == 16
    assert grid[0] == Setting(max_batch_size=8, batch_timeout_micros=0, max_enqueued_batches=2,
                              num_batch_threads=1)
    tied = tune.build_grid((8,), (0,), (1, 2))
    assert [(s.num_batch_threads, s.max_enqueued_batches) for s in tied] == [(1, 1), (2, 2)]


def test_parse_values():
    assert tune.parse_values("8,32,8", 1) == (8, 32)
    assert tune.parse_values("0,1000", 0) == (0, 1000)
    for bad in ("", "8,,32", "a", "0", "-1,4"):
        with pytest.raises(ValueError, match="comma-separated integers >= 1"):
            tune.parse_values(bad, 1)


def test_budget_draw_is_deterministic_and_keeps_grid_order():
    grid = tune.build_grid((4, 8, 16, 32), (0, 1000, 5000), (1, 2))
    assert tune.sample(grid, None) == grid and tune.sample(grid, 100) == grid
    picked = tune.sample(grid, 5)
    assert picked == tune.sample(grid, 5) and len(set(picked)) == 5
    assert picked == sorted(picked, key=grid.index)
    assert tune.sample(grid, 5, seed=1) == tune.sample(grid, 5, seed=1)
    with pytest.raises(ValueError):
        tune.sample(grid, 0)


def trial(index, rps, p99, meets, errors=0):
    return Trial(index, Setting(index, 0, 1, 1), 1000, rps, p99 / 2, p99, errors, meets)


def test_choose_takes_the_highest_throughput_that_meets_the_slo():
    trials = [trial(1, 900.0, 8.0, True), trial(2, 1500.0, 60.0, False),
              trial(3, 1200.0, 9.5, True), trial(4, 1100.0, 4.0, True)]
    assert tune.choose(trials).index == 3  # 2 is faster but misses the SLO
    tied = [trial(1, 1000.0, 9.0, True), trial(2, 1000.0, 7.0, True),
            trial(3, 1000.0, 7.0, True)]
    assert tune.choose(tied).index == 2  # a tie goes to the lower p99, then the earlier one
    assert tune.choose([trial(1, 2000.0, 80.0, False)]) is None
    assert tune.choose([]) is None


def test_table_and_csv_mark_the_chosen_setting(tmp_path):
    trials = [trial(1, 900.0, 8.0, True), trial(2, 1500.0, 60.0, False, errors=30),
              Trial(3, Setting(2, 0, 1, 1), 0, 0.0, math.nan, math.nan, 0, False, "no request")]
    chosen = tune.choose(trials)
    lines = tune.table(trials, chosen).splitlines()
    assert lines[2].endswith("yes *") and lines[3].endswith("no") and "3.00%" in lines[3]
    rows = read_rows(tune.write_csv(trials, chosen, tmp_path / "t.csv"))
    assert [r["chosen"] for r in rows] == ["True", "False", "False"]
    assert rows[2]["note"] == "no request" and rows[2]["p99_ms"] == "nan"
    png = tune.plot(trials, chosen, 10.0, tmp_path / "t.png").read_bytes()
    assert png.startswith(PNG_HEADER)


def test_config_text_round_trips_through_the_engines_reader(tmp_path):
    from tf_serving_platform.serving.engine.batcher import BatchingOptions

    setting = Setting(max_batch_size=32, batch_timeout_micros=1000, max_enqueued_batches=2,
                      num_batch_threads=2)
    path = tmp_path / "batching.config"
    path.write_text(setting.config_text(["measured somewhere", ""]))
    assert path.read_text().splitlines()[:3] == ["# measured somewhere", "#",
                                                  "max_batch_size { value: 32 }"]
    params = read_text_proto(path, BatchingParameters)
    assert Setting.from_proto(params) == setting
    options = BatchingOptions.from_proto(params, cpus=8)
    assert (options.max_batch_size, options.batch_timeout_micros, options.max_enqueued_batches,
            options.num_batch_threads) == (32, 1000, 2, 2)
