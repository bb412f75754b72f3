"""The first run of configs/kddcup.yaml: make its Parquet file, then score it."""

from __future__ import annotations

import gzip
from pathlib import Path

import pyarrow.parquet as pq
import yaml

from bench import datasets as ds
from bench.kddcup_parquet import main as make_parquet
from streammem.cli import main

REPO = Path(__file__).resolve().parent.parent
NAMES = """back,normal,smurf.

duration: continuous.
protocol_type: symbolic.
src_bytes: continuous.
"""


def fake_upstream(root: Path, monkeypatch, rows: int = 900) -> None:
    """A small kddcup99/ folder whose MD5s the loader is told to trust."""
    folder = root / "kddcup99"
    folder.mkdir(parents=True)
    (folder / "kddcup.names").write_text(NAMES)
    lines = [
        f"{i % 3},{('tcp', 'udp')[i % 2]},{100 + i % 17},{'normal.' if i % 5 == 0 else 'smurf.'}"
        for i in range(rows)
    ]
    with gzip.open(folder / "kddcup.data_10_percent.gz", "wt") as handle:
        handle.write("\n".join(lines) + "\n")
    trusted = [(name, ds.md5sum(folder / name)) for name, _ in ds.KDDCUP99.resources]
    monkeypatch.setattr(ds.KDDCUP99, "resources", trusted)


def test_the_kddcup_config_runs_on_the_file_the_command_makes(tmp_path, monkeypatch, capsys):
    fake_upstream(tmp_path / "data-root", monkeypatch)
    target = tmp_path / "kddcup.parquet"
    args = ["--data-root", str(tmp_path / "data-root"), "--output", str(target)]
    assert make_parquet(args) == 0
    table = pq.read_table(target)
    assert table.column_names == ["duration", "protocol_type", "src_bytes", "label", "is_anomaly"]
    # In the protocol's shuffled order: the upstream blocks of one kind of traffic are broken.
    flags = table.column("is_anomaly").to_pylist()
    assert sum(flags) == 180 and flags[:5] != [True, False, False, False, False]
    assert table.column("duration").to_pylist() != [i % 3 for i in range(900)]
    assert make_parquet([*args, "--file-order"]) == 0
    flags = pq.read_table(target).column("is_anomaly").to_pylist()
    assert flags[:5] == [True, False, False, False, False]

    config = yaml.safe_load((REPO / "configs" / "kddcup.yaml").read_text())
    config["source"]["path"] = str(target)
    config["sink"].update(path=str(tmp_path / "scores.parquet"), plot=str(tmp_path / "p.png"))
    config["checkpoint"]["dir"] = str(tmp_path / "checkpoints")
    path = tmp_path / "kddcup.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["run", "--config", str(path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "events       900" in out
    assert "labels       is_anomaly, on the" in out  # the declared label: FAR and recall
    assert "false alarms" in out and "anomalous rows (recall" in out
    scores = pq.read_table(tmp_path / "scores.parquet")
    assert {"label", "is_anomaly", "score", "alert"} <= set(scores.column_names)
    assert (tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"


def test_a_missing_upstream_file_is_one_line_naming_it(tmp_path, capsys):
    assert make_parquet(["--data-root", str(tmp_path), "--output", str(tmp_path / "k.pq")]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert "missing 'kddcup.data_10_percent.gz'" in line
