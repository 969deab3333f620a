"""The generated tables in README.md and docs/ agree with the committed data they name:
one command, bench/report.py, writes the benchmark tables (between `<!-- table ... -->`
comments) and the PKKD protocol tables (`<!-- begin NAME -->` blocks, from results/pkkd_protocol)."""
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
REPORT = os.path.join(ROOT, "bench", "report.py")
MARKER = re.compile(r"<!-- table (\w+) ([^>]*?) -->\n(.*?)<!-- /table -->", re.S)


def report(*args):
    return subprocess.run([sys.executable, REPORT, *args], capture_output=True, text=True,
                          timeout=120)


def tables(path):
    with open(path) as f:
        return MARKER.findall(f.read())


@pytest.fixture
def copy(tmp_path):
    """README, docs and bench results of this checkout in a scratch repository."""
    shutil.copy(os.path.join(ROOT, "README.md"), tmp_path)
    shutil.copytree(os.path.join(ROOT, "docs"), tmp_path / "docs")
    shutil.copytree(os.path.join(ROOT, "bench", "results"), tmp_path / "bench" / "results")
    shutil.copytree(os.path.join(ROOT, "results", "pkkd_protocol"),
                    tmp_path / "results" / "pkkd_protocol")
    return tmp_path


def test_every_generated_table_agrees_with_its_data():
    result = report("--check")
    assert result.returncode == 0, result.stdout + result.stderr


def test_readme_and_speed_page_carry_generated_tables():
    readme = [(k, f) for k, f, _ in tables(os.path.join(ROOT, "README.md"))]
    assert [k for k, _ in readme] == ["speed"]   # one short table
    files = readme[0][1].split()
    with_imagenet = []
    for path in files:
        with open(os.path.join(ROOT, path)) as f:
            with_imagenet.append(bool(json.load(f).get("imagenet")))
    assert any(with_imagenet) and not all(with_imagenet)   # CIFAR and ImageNet rows
    kinds = {k for k, _, _ in tables(os.path.join(ROOT, "docs", "speed.md"))}
    assert {"paths", "layers", "steps", "xla"} <= kinds


def test_layer_ratios_read_from_the_json():
    """Independent of the generator: each row's ratio is the JSON's, to two decimals."""
    (files, body), = [(f, b) for k, f, b in tables(os.path.join(ROOT, "docs", "speed.md"))
                      if k == "layers" and "model106" in f]
    with open(os.path.join(ROOT, files.split()[0])) as f:
        layers = json.load(f)["layers"]
    rows = [line.split("|")[1:-1] for line in body.splitlines() if re.match(r"\| \d", line)]
    assert len(rows) == len(layers)
    for row, layer in zip(rows, layers):
        assert int(row[1]) == layer["batch"]
        assert float(row[4]) == pytest.approx(layer["ratio_fast"], abs=0.005)


def test_check_fails_when_a_figure_in_a_table_is_edited(copy):
    readme = copy / "README.md"
    text = readme.read_text()
    body = next(m.group(3) for m in MARKER.finditer(text) if m.group(1) == "speed")
    row = next(line for line in body.splitlines() if re.search(r"\d\.\d\d", line))
    edited = re.sub(r"(\d)\.(\d\d)", lambda m: f"{(int(m.group(1)) + 1) % 10}.{m.group(2)}", row,
                    count=1)
    readme.write_text(text.replace(row, edited, 1))
    result = report("--check", "--root", str(copy))
    assert result.returncode == 1
    assert "README.md" in result.stdout and "speed" in result.stdout
    assert report("--root", str(copy)).returncode == 0        # regenerating repairs it
    assert readme.read_text() == text


def test_check_fails_when_the_data_changes(copy):
    path = copy / "bench" / "results" / "intel_xeon_model106_2core_quick.json"
    data = json.loads(path.read_text())
    data["layers"][5]["ratio_fast"] += 0.1
    path.write_text(json.dumps(data))
    result = report("--check", "--root", str(copy))
    assert result.returncode == 1
    stale = result.stdout.splitlines()
    assert any(line.startswith("README.md:") for line in stale)
    assert any(line.startswith("docs/speed.md:") and "layers" in line for line in stale)


def test_a_missing_data_file_is_one_line(copy):
    (copy / "docs" / "extra.md").write_text(
        "<!-- table layers bench/results/nowhere.json -->\n<!-- /table -->\n")
    result = report("--check", "--root", str(copy))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: bench/results/nowhere.json: No such file or directory"]


def test_check_covers_the_protocol_tables(copy):
    """A figure edited in docs/pkkd_protocol.md's main table fails the same check, naming the block."""
    doc = copy / "docs" / "pkkd_protocol.md"
    text = doc.read_text()
    start = text.index("<!-- begin main -->")
    body = text[start:text.index("<!-- end main -->")]
    row = next(line for line in body.splitlines() if re.search(r"\d\d\.\d\d", line))
    edited = re.sub(r"(\d\d)\.(\d\d)", lambda m: f"{int(m.group(1)) + 1}.{m.group(2)}", row, count=1)
    doc.write_text(text.replace(row, edited, 1))
    result = report("--check", "--root", str(copy))
    assert result.returncode == 1
    assert result.stdout.splitlines() == ["docs/pkkd_protocol.md: block 'main' disagrees with its data"]
    assert report("--root", str(copy)).returncode == 0
    assert doc.read_text() == text


def test_protocol_tables_follow_the_results(copy):
    """A changed accuracy in a committed results.json makes the protocol block stale."""
    path = next((copy / "results" / "pkkd_protocol" / "main").glob("*/results.json"))
    data = json.loads(path.read_text())
    data["student"]["top1"] += 0.05
    path.write_text(json.dumps(data))
    result = report("--check", "--root", str(copy))
    assert result.returncode == 1
    assert "docs/pkkd_protocol.md: block 'main' disagrees with its data" in result.stdout.splitlines()


def test_a_missing_protocol_folder_is_one_line(copy):
    shutil.rmtree(copy / "results" / "pkkd_protocol")
    result = report("--check", "--root", str(copy))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: results/pkkd_protocol: no such folder (the protocol blocks' data)"]


def test_imagenet_layer_ratios_read_from_the_json_and_smoke_refused(copy):
    """Independent of the generator: each shape's fwd+bwd ratio is the JSON's; a --smoke
    JSON (one round at toy batches) is refused as a figure, in one line."""
    (files, body), = [(f, b) for k, f, b in tables(os.path.join(ROOT, "docs", "speed.md"))
                      if k == "imagenet_layers"]
    path = files.split()[0]
    with open(os.path.join(ROOT, path)) as f:
        layers = json.load(f)["imagenet"]["layers"]
    rows = [line.split("|")[1:-1] for line in body.splitlines() if re.match(r"\| \d", line)]
    assert len(rows) == len(layers) > 0
    for row, layer in zip(rows, layers):
        assert float(row[2].split()[0]) == pytest.approx(layer["fwd_bwd_b32"]["ratio"], abs=0.005)
    with open(copy / path) as f:
        data = json.load(f)
    data["imagenet"]["smoke"] = True
    with open(copy / path, "w") as f:
        json.dump(data, f)
    out = report("--check", "--root", str(copy))
    assert out.returncode == 2 and "--smoke" in out.stderr and "Traceback" not in out.stderr


def test_readme_imagenet_row_reads_the_json():
    """Independent of the generator: the worst fwd+bwd shape's ratio is the JSON's."""
    (files, body), = [(f, b) for k, f, b in tables(os.path.join(ROOT, "README.md"))]
    for path in files.split():
        with open(os.path.join(ROOT, path)) as f:
            data = json.load(f)
        if not data.get("imagenet"):
            continue
        ratios = [layer["fwd_bwd_b32"]["ratio"] for layer in data["imagenet"]["layers"]
                  if layer.get("fwd_bwd_b32")]
        row = next(line for line in body.splitlines() if line.startswith("|") and path in line)
        worst = re.search(r"fwd\+bwd, batch 32 [\d.]+ / ([\d.]+)", row)
        assert worst and float(worst.group(1)) == pytest.approx(max(ratios), abs=0.005)
