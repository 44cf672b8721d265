"""A complete, strict parser of the Prometheus text exposition format (version 0.0.4) for tests.

Independent of the picker's fast parser (endpoint_picker.scrape), which reads only a few series:
tests compare the two on real vLLM pages, and compare whole page shapes (families, types, label
names, histogram buckets) between real vLLM and the simulator.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "vllm_metrics"

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_SAMPLE = re.compile(rf"^({_NAME})(?:\{{(.*)\}})?\s+(\S+)(?:\s+(-?\d+))?$")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*(?:,|$)')
_UNESCAPE = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}
_SUFFIXES = {"histogram": ("_bucket", "_sum", "_count", "_created"), "summary": ("", "_sum", "_count", "_created"),
             "counter": ("", "_created"), "gauge": ("",), "untyped": ("",)}


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


@dataclass
class Family:
    name: str
    type: str = "untyped"
    help: str = ""
    samples: list[Sample] = field(default_factory=list)


def _labels(block: str, line: str) -> dict[str, str]:
    out, pos = {}, 0
    while pos < len(block):
        m = _LABEL.match(block, pos)
        assert m, f"bad label block at {block[pos:]!r} in {line!r}"
        key, raw = m.groups()
        assert key not in out, f"duplicate label {key!r} in {line!r}"
        out[key] = re.sub(r'\\[\\"n]', lambda e: _UNESCAPE[e.group()], raw)
        pos = m.end()
    return out


def parse(text: str) -> dict[str, Family]:
    """Families by name, in page order. Raises AssertionError on anything malformed."""
    families: dict[str, Family] = {}
    current: Family | None = None
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            _, kind, name, *rest = line.split(" ", 3)
            fam = families.setdefault(name, Family(name))
            if kind == "TYPE":
                assert rest and rest[0] in _SUFFIXES, f"bad TYPE line {line!r}"
                fam.type = rest[0]
            else:
                fam.help = rest[0] if rest else ""
            current = fam
            continue
        if line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        assert m, f"unparseable sample line {line!r}"
        name, block, value, _ = m.groups()
        fam = current
        if fam is None or not any(name == fam.name + s for s in _SUFFIXES[fam.type]):
            fam = families.setdefault(name, Family(name))  # an untyped sample of its own
        fam.samples.append(Sample(name, _labels(block or "", line), float(value)))
    return families


def parse_file(name: str) -> dict[str, Family]:
    return parse((FIXTURES / name).read_text())


@dataclass(frozen=True)
class Shape:
    """What a scraper or a query depends on: type, sample names with their label names, buckets."""

    type: str
    labels: frozenset[tuple[str, frozenset[str]]]
    buckets: tuple[str, ...] = ()


def shape(fam: Family) -> Shape:
    labels = frozenset((s.name, frozenset(k for k in s.labels if k != "le")) for s in fam.samples)
    buckets: tuple[str, ...] = ()
    if fam.type == "histogram":
        seen: list[str] = []
        for s in fam.samples:
            if s.name.endswith("_bucket") and s.labels["le"] not in seen:
                seen.append(s.labels["le"])
        buckets = tuple(seen)
    return Shape(fam.type, labels, buckets)


ENUMERATED = ("finished_reason", "source", "reason", "sleep_state", "max_lora")
"""Labels whose values are a fixed set (queries filter on them); other values (model, lists, config) vary."""


def shape_differences(real: dict[str, Family], other: dict[str, Family], *, skip=lambda name: False,
                      other_name: str = "the other page") -> list[str]:
    """Families, types, series and label names, enumerated label values and buckets that differ."""
    out = []
    for name in sorted(set(real) | set(other)):
        if skip(name):
            continue
        if name not in other:
            out.append(f"{name}: only on the real page ({real[name].type})")
            continue
        if name not in real:
            out.append(f"{name}: only on {other_name} ({other[name].type})")
            continue
        r, s = shape(real[name]), shape(other[name])
        if r.type != s.type:
            out.append(f"{name}: type {s.type}, real {r.type}")
        if r.labels != s.labels:
            out.append(f"{name}: series/label names {sorted((n, sorted(l)) for n, l in s.labels)}, "
                       f"real {sorted((n, sorted(l)) for n, l in r.labels)}")
        if r.buckets != s.buckets:
            out.append(f"{name}: buckets {s.buckets}, real {r.buckets}")
        for label in ENUMERATED:
            rv = {x.labels[label] for x in real[name].samples if label in x.labels}
            sv = {x.labels[label] for x in other[name].samples if label in x.labels}
            if rv != sv:
                out.append(f"{name}: {label} values {sorted(sv)}, real {sorted(rv)}")
    return out


def sample_names(families: dict[str, Family]) -> set[str]:
    """Every series name on the page (families' declared names and their samples' names)."""
    return set(families) | {s.name for f in families.values() for s in f.samples}


def values(families: dict[str, Family], name: str) -> list[Sample]:
    return [s for f in families.values() for s in f.samples if s.name == name]


def series(text: str, name: str) -> dict[tuple[str, ...], float]:
    """{label values in page order: value} of every sample named `name` on a page."""
    return {tuple(s.labels.values()): s.value for s in values(parse(text), name)}


def newest_lora(families: dict[str, Family]) -> Sample | None:
    """vllm:lora_requests_info's current series: the one set last (the value is a timestamp)."""
    series = values(families, "vllm:lora_requests_info")
    return max(series, key=lambda s: s.value) if series else None
