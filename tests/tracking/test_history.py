from __future__ import annotations

import random

import pytest

from tracking import services
from tracking.history import histories, metric_history
from tracking.ingest import Point, metrics_ingest
from tracking.models import MetricSeries


@pytest.fixture
def run(world):
    return services.run_create(user=world.owner.user, project=world.project)


def log(run, values: dict[int, float | None], *, key="loss", batch=10_000):
    items = sorted(values.items())
    for start in range(0, len(items), batch):
        chunk = items[start : start + batch]
        metrics_ingest(run=run, points=[Point(key, s, v, 1_700_000_000.0 + s) for s, v in chunk])
    return MetricSeries.objects.get(run=run, key=key)


def noisy(n: int, *, seed: int = 1, stride: int = 1) -> dict[int, float]:
    rng = random.Random(seed)
    return {i * stride: rng.uniform(-1, 1) for i in range(n)}


def test_it_returns_every_point_when_the_series_is_short(run):
    series = log(run, noisy(800))
    history = metric_history(series, max_points=1000)
    assert history.downsampled is False
    assert history.steps == list(range(800))
    assert history.total == 800


def test_downsampling_keeps_spikes_nan_and_both_ends(run):
    values = noisy(100_000)
    values[12_345] = 1e6
    values[67_890] = -1e6
    values[50_001] = None
    series = log(run, values)

    history = metric_history(series, max_points=1000)

    assert history.downsampled is True
    assert history.total == 100_000
    assert len(history.steps) <= 1000 + 2 + 1  # min+max per bucket, both ends, the NaN
    assert {0, 12_345, 50_001, 67_890, 99_999} <= set(history.steps)
    assert history.steps == sorted(set(history.steps))
    by_step = dict(zip(history.steps, history.values, strict=True))
    assert by_step[12_345] == 1e6
    assert by_step[67_890] == -1e6
    assert by_step[50_001] == "NaN"


def test_every_downsampled_point_is_a_real_point(run):
    values = noisy(20_000, seed=7)
    series = log(run, values)
    history = metric_history(series, max_points=300)
    for step, value in zip(history.steps, history.values, strict=True):
        assert values[step] == value


def test_each_bucket_keeps_its_extremes(run):
    values = noisy(40_000, seed=3)
    series = log(run, values)
    history = metric_history(series, max_points=200)
    kept = set(history.steps)
    # A bucket spans at most span/buckets steps plus one rollup cell (16**2 here), so
    # a point that is the extreme of everything within that radius is its bucket's extreme.
    radius = 40_000 // 100 + 16**2
    checked = 0
    for start in range(radius, 40_000 - 2 * radius, radius // 2):
        for pick in (min, max):
            step = pick(range(start, start + radius), key=values.__getitem__)
            around = range(max(0, step - radius), min(40_000, step + radius + 1))
            if step == pick(around, key=values.__getitem__):
                assert step in kept
                checked += 1
    assert checked > 20


def test_ingest_order_does_not_change_the_downsampled_answer(world, run):
    values = noisy(30_000, seed=11)
    in_order = log(run, values)
    other = services.run_create(user=world.owner.user, project=world.project)
    items = list(values.items())
    random.Random(5).shuffle(items)
    for start in range(0, len(items), 3_000):
        chunk = items[start : start + 3_000]
        metrics_ingest(run=other, points=[Point("loss", s, v, 1.0) for s, v in chunk])
    shuffled = MetricSeries.objects.get(run=other, key="loss")
    expected = metric_history(in_order, max_points=500)
    actual = metric_history(shuffled, max_points=500)
    assert actual.steps == expected.steps
    assert actual.values == expected.values


def test_zooming_restricts_to_the_step_range(run):
    values = noisy(50_000, seed=2)
    values[20_000] = 50.0
    values[45_000] = 99.0
    series = log(run, values)
    history = metric_history(series, max_points=100, step_min=10_007, step_max=30_003)
    assert history.steps[0] == 10_007
    assert history.steps[-1] == 30_003
    assert 20_000 in history.steps
    assert 45_000 not in history.steps
    assert history.total == 30_003 - 10_007 + 1
    assert history.downsampled is True


def test_sparse_steps_are_downsampled_too(run):
    values = noisy(5_000, stride=1_000)
    values[2_500_000] = 7.0
    series = log(run, values)
    history = metric_history(series, max_points=100)
    assert 2_500_000 in history.steps
    assert len(history.steps) <= 102


def test_a_range_without_points_is_empty(run):
    series = log(run, noisy(100))
    history = metric_history(series, step_min=1_000, step_max=2_000)
    assert (history.steps, history.total) == ([], 0)


def test_limit_pages_full_fidelity_reads(run):
    series = log(run, noisy(250))
    page = metric_history(series, limit=100)
    assert page.steps == list(range(100))
    assert page.next_step == 100
    rest = metric_history(series, step_min=page.next_step, limit=1000)
    assert rest.steps == list(range(100, 250))
    assert rest.next_step is None


class TestApi:
    def test_it_serves_history_of_keys_with_slashes(self, world, run):
        log(run, {0: 1.0, 1: 0.5}, key="train/loss")
        response = world.viewer.client().get(f"/api/v1/runs/{run.pk}/metrics/train/loss")
        assert response.status_code == 200
        body = response.json()
        assert body == {
            "key": "train/loss",
            "steps": [0, 1],
            "values": [1.0, 0.5],
            "timestamps": [1_700_000_000.0, 1_700_000_001.0],
            "total": 2,
            "downsampled": False,
            "next_step": None,
            "next_cursor": None,
        }

    def test_it_lists_metric_keys_with_summaries(self, world, run):
        log(run, {0: 3.0, 5: 1.0, 9: 2.0}, key="loss")
        log(run, {0: 0.1}, key="acc")
        body = world.viewer.client().get(f"/api/v1/runs/{run.pk}/metrics").json()
        assert [m["key"] for m in body["metrics"]] == ["acc", "loss"]
        loss = body["metrics"][1]
        assert (loss["count"], loss["last"], loss["min"], loss["max"], loss["last_step"]) == (
            3,
            2.0,
            1.0,
            3.0,
            9,
        )

    @pytest.mark.parametrize(
        ("query", "field"),
        [
            ("max_points=1", "max_points"),
            ("max_points=abc", "max_points"),
            ("max_points=1000000", "max_points"),
            ("step_min=-1", "step_min"),
            ("step_max=99999999999999999999", "step_max"),
            ("limit=0", "limit"),
        ],
    )
    def test_it_rejects_bad_parameters(self, world, run, query, field):
        log(run, {0: 1.0})
        response = world.viewer.client().get(f"/api/v1/runs/{run.pk}/metrics/loss?{query}")
        assert response.status_code == 400
        assert response.json()["error"]["field"] == field

    def test_an_unknown_key_is_404(self, world, run):
        response = world.viewer.client().get(f"/api/v1/runs/{run.pk}/metrics/nope")
        assert response.status_code == 404
        assert response.json()["error"]["field"] == "key"

    def test_outsiders_see_nothing(self, world, run):
        log(run, {0: 1.0})
        client = world.outsider.client()
        assert client.get(f"/api/v1/runs/{run.pk}/metrics/loss").status_code == 404
        assert client.get(f"/api/v1/runs/{run.pk}/metrics").status_code == 404


def test_range_counts_from_rollups_match_a_plain_count(run):
    from tracking import rollups
    from tracking.models import MetricPoint

    rng = random.Random(9)
    values = {rng.randrange(0, 3_000_000): 1.0 for _ in range(20_000)}
    series = log(run, values)
    for _ in range(25):
        lo = rng.randrange(0, 3_000_000)
        hi = lo + rng.choice([10, 5_000, 300_000, 2_000_000])
        plain = MetricPoint.objects.filter(series=series, step__gte=lo, step__lte=hi).count()
        assert rollups.count_in_range(series.pk, lo, hi) == plain


# --- Many series at once -----------------------------------------------------------


def _many_series(run) -> list[MetricSeries]:
    spiky = noisy(30_000, seed=3)
    spiky[12_345], spiky[20_001] = 50.0, None
    return [
        log(run, noisy(300, seed=1), key="short"),
        log(run, spiky, key="spiky"),
        log(run, noisy(5_000, seed=2, stride=7), key="sparse"),
        log(run, noisy(100_003, seed=4), key="long"),
        log(run, {5: 1.0}, key="single"),
    ]


@pytest.mark.parametrize("max_points", [2, 100, 400, 1000])
def test_many_series_at_once_answer_what_one_at_a_time_does(run, max_points):
    series_list = _many_series(run)
    together = histories(series_list, max_points=max_points)
    for series in series_list:
        alone = metric_history(series, max_points=max_points)
        assert together[series.pk].as_dict() == alone.as_dict(), series.key


@pytest.mark.parametrize("max_points", [2, 100, 400])
def test_many_series_without_timestamps_keep_the_same_steps_and_values(run, max_points):
    series_list = _many_series(run)
    together = histories(series_list, max_points=max_points, timestamps=False)
    for series in series_list:
        alone = metric_history(series, max_points=max_points).as_dict()
        mine = together[series.pk].as_dict()
        assert (mine["steps"], mine["values"]) == (alone["steps"], alone["values"]), series.key
        assert mine["total"] == alone["total"] and mine["downsampled"] == alone["downsampled"]


def test_many_series_cost_the_same_queries_as_two(run, django_assert_max_num_queries):
    series_list = _many_series(run)
    with django_assert_max_num_queries(4) as few:
        histories([series_list[0], series_list[3]], max_points=400)  # one short, one long
    with django_assert_max_num_queries(4) as many:
        histories(series_list, max_points=400)
    assert len(few) == len(many)
