"""docs/recipes.md must agree with the configs: every table row with a config key states the
value that the config named above the table (with its ``base:`` chain) resolves to."""

import re
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from vidreid.engine.config import load_config

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "recipes.md"
CONFIG_LINE = re.compile(r"^Config: `(configs/[^`]+\.yaml)`")
HEADER = ["Setting", "Key", "Ours", "Authors", "Source", "Why"]
MIN_ROWS = 5  # a method table shorter than this has lost its rows


def parse_doc(text: str) -> dict[str, list[tuple[int, str, str]]]:
    """config path -> [(line number, key, our value as YAML text)] of its table."""
    tables: dict[str, list[tuple[int, str, str]]] = {}
    current = None
    for lineno, line in enumerate(text.splitlines(), 1):
        m = CONFIG_LINE.match(line)
        if m:
            current = m.group(1)
            tables.setdefault(current, [])
            continue
        if current is None or not line.startswith("|"):
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[:2] == HEADER[:2] or set(cells[0]) <= {"-", " "} and cells[0]:
            continue
        if len(cells) != len(HEADER):
            raise AssertionError(f"{DOC}:{lineno}: {len(cells)} cells, expected {len(HEADER)}")
        key, ours = cells[1], cells[2]
        if key == "—":
            continue
        key_m, ours_m = re.fullmatch(r"`([\w.]+)`", key), re.fullmatch(r"`(.*)`", ours)
        assert key_m and ours_m, f"{DOC}:{lineno}: key and value must be `code`: {key} | {ours}"
        tables[current].append((lineno, key_m.group(1), ours_m.group(1)))
    return tables


TABLES = parse_doc(DOC.read_text(encoding="utf-8"))


def test_every_paper_config_has_a_table():
    for cfg in ("cosam/mars.yaml", "gltr/mars.yaml", "gltr/mars_stage1.yaml", "gltr/mars_e2e.yaml",
                "tkp/mars.yaml", "attribute/mars.yaml", "vrstc/mars.yaml",
                "baselines/tp_mars.yaml"):
        assert len(TABLES.get(f"configs/{cfg}", [])) >= MIN_ROWS, cfg


@pytest.mark.parametrize("config", sorted(TABLES), ids=lambda c: c.removeprefix("configs/"))
def test_table_values_match_the_config(config: str):
    cfg = load_config(REPO / config)
    wrong = []
    for lineno, key, ours in TABLES[config]:
        actual = OmegaConf.select(cfg, key, default=None)
        if OmegaConf.is_config(actual):
            actual = OmegaConf.to_container(actual, resolve=True)
        expected = yaml.safe_load(ours)
        if actual != expected:
            wrong.append(f"{DOC.name}:{lineno} {key}: table says {expected!r}, config has {actual!r}")
    assert not wrong, "\n".join(wrong)


def test_parser_catches_a_disagreement():
    text = ("Config: `configs/tkp/mars.yaml`\n\n| Setting | Key | Ours | Authors | Source | Why |\n"
            "| --- | --- | --- | --- | --- | --- |\n| Batch | `data.batch_size` | `17` | 16 | x | — |\n")
    (line, key, ours), = parse_doc(text)["configs/tkp/mars.yaml"]
    assert key == "data.batch_size"
    assert yaml.safe_load(ours) != load_config(REPO / "configs/tkp/mars.yaml").data.batch_size
