#!/usr/bin/env python3
"""Validates fnwatch's alerts as OCSF Detection Findings, offline.

    python3 tests/e2e/validate_ocsf.py FILE.jsonl

Each non-blank line of FILE.jsonl must be one JSON object: an OCSF Detection
Finding (class_uid 2004, category_uid 2). Prints

    ok N findings (OCSF <version>, ocsf-json-schema <pkgversion>)

and exits 0, or prints `line K: <what is wrong>` to stderr for every problem
of every invalid line and exits 1 (also for a file with no findings). Exit 2
when the packages are missing: `bash infra/local/install-python-tools.sh`.

What it checks, against the published OCSF schema of the version the event
names in `metadata.version` (any version the package bundles; 1.0.0 to 1.8.0
in ocsf-json-schema 1.2.0), with the profiles the event names in
`metadata.profiles` applied (e.g. "cloud", which makes `cloud` required and
allows `resources[].region`; a profile the class does not have is an error):
  - JSON Schema 2020-12 (via `jsonschema`) built from the schema export:
    required attributes, types (a string is not an integer, a bool is not a
    number), enum ids (severity_id, activity_id, type_uid, status_id,
    observables[].type_id, ...), constants (class_uid 2004, category_uid 2),
    data-type patterns and ranges (ip_t, port_t, ...), "at least one of" and
    "just one of" constraints, and NO unknown attributes: every object but
    the free-form ones (`unmapped`, json_t attributes like `data`) rejects
    an attribute its schema (with the applied profiles) does not define;
  - attributes the version marks deprecated are errors;
  - what JSON Schema cannot say: type_uid == class_uid * 100 + activity_id;
    each enum's caption sibling (class_name, category_name, activity_name,
    type_name, severity, status, observables[].type, ...) equals the
    caption of its id, and is present when the id is 99 (Other);
  - every timestamp_t attribute (time, finding_info.created_time, ...) is
    epoch MILLISECONDS between 2000 and 2100 (a value in seconds fails);
  - no duplicate keys, no NaN/Infinity in the JSON.

Why ocsf-json-schema (PyPI, MIT, by Neil Smith): it ships the schema.ocsf.io
exports themselves (/export/schema of each released version) and turns them
into JSON Schema locally, so the test checks against the real published
schema with no network. The other PyPI candidates were weaker: ocsf-validator
checks schema *definitions* (the ocsf-schema repo), not events; ocsf-lib needs
the schema server or a schema checkout; py-ocsf-models (Prowler),
pydantic-ocsf and ocsf-emitter are pydantic models that accept unknown
attributes (extra ignored/allowed) and py-ocsf-models fills class_uid and
friends with defaults, so a broken object can pass.
"""

from __future__ import annotations

import json
import re
import sys

PROG = "validate_ocsf"
PACKAGE = "ocsf-json-schema"
CLASS_NAME = "detection_finding"  # class_uid 2004
OTHER_ID = 99
MS_MIN = 946_684_800_000  # 2000-01-01T00:00:00Z in ms
MS_MAX = 4_102_444_800_000  # 2100-01-01T00:00:00Z in ms
MAX_MSG = 300


def fail(msg: str, code: int = 1) -> "NoReturn":  # noqa: F821
    print(f"{PROG}: {msg}", file=sys.stderr)
    sys.exit(code)


def _no_dup_keys(pairs):
    obj = {}
    for key, value in pairs:
        if key in obj:
            raise ValueError(f"duplicate key {key!r}")
        obj[key] = value
    return obj


def _no_nan(name):
    raise ValueError(f"{name} is not valid JSON")


def _path(parts) -> str:
    return "/" + "/".join(str(p) for p in parts) if parts else "(top level)"


def _short(text: str) -> str:
    return text if len(text) <= MAX_MSG else text[: MAX_MSG - 3] + "..."


class Schemas:
    """The raw schema export of each version and one compiled validator per
    (version, profiles), built on first use."""

    def __init__(self, ocsf_json_schema, jsonschema):
        self.lib = ocsf_json_schema
        self.jsonschema = jsonschema
        self.versions = ocsf_json_schema.get_packaged_versions()
        self.raw: dict[str, dict] = {}
        self.validators: dict[tuple, object] = {}

    def raw_schema(self, version: str) -> dict:
        if version not in self.raw:
            self.raw[version] = self.lib.get_ocsf_schema(version=version)
        return self.raw[version]

    def class_profiles(self, version: str) -> list[str]:
        return list(self.raw_schema(version)["classes"][CLASS_NAME].get("profiles") or [])

    def validator(self, version: str, profiles: tuple[str, ...]):
        key = (version, profiles)
        if key not in self.validators:
            embedded = self.lib.OcsfJsonSchemaEmbedded(self.raw_schema(version))
            schema = embedded.get_class_schema(CLASS_NAME, list(profiles))
            self.validators[key] = self.jsonschema.Draft202012Validator(schema)
        return self.validators[key]


def _schema_errors(validator, event) -> list[str]:
    out = []
    errors = sorted(validator.iter_errors(event), key=lambda e: [str(p) for p in e.absolute_path])
    # A value of the wrong type also fails its enum: say it once.
    type_failed = {tuple(e.absolute_path) for e in errors if e.validator == "type"}
    for err in errors:
        where = _path(err.absolute_path)
        subs = err.schema.get(err.validator) if isinstance(err.schema, dict) else None
        if err.validator in ("enum", "const") and tuple(err.absolute_path) in type_failed:
            continue
        if err.validator in ("anyOf", "oneOf") and isinstance(subs, list) and all(
            isinstance(s, dict) and list(s) == ["required"] for s in subs
        ):
            names = ", ".join(s["required"][0] for s in subs)
            how = "at least one" if err.validator == "anyOf" else "exactly one"
            out.append(f"{where}: needs {how} of: {names}")
        elif err.validator == "enum" and isinstance(subs, list):
            numbers = sorted(v for v in subs if isinstance(v, (int, float)) and not isinstance(v, bool))
            others = sorted((v for v in subs if v not in numbers), key=str)
            allowed = ", ".join(str(v) for v in numbers + others)
            out.append(f"{where}: {err.instance!r} is not one of {allowed}")
        else:
            out.append(f"{where}: {_short(err.message)}")
    return out


def _semantic_errors(raw: dict, event: dict) -> list[str]:
    """Checks that JSON Schema cannot express, walking the event along the
    schema's attribute definitions."""
    out = []
    cu, ai, tu = event.get("class_uid"), event.get("activity_id"), event.get("type_uid")
    if all(type(v) is int for v in (cu, ai, tu)) and tu != cu * 100 + ai:
        out.append(f"/type_uid: {tu} != class_uid * 100 + activity_id = {cu * 100 + ai}")

    def walk(instance: dict, attrs: dict, path: list) -> None:
        for name, value in instance.items():
            spec = attrs.get(name)
            if spec is None:
                continue  # unknown attributes are the JSON Schema's to report
            here = path + [name]
            if "@deprecated" in spec:
                dep = spec["@deprecated"] if isinstance(spec["@deprecated"], dict) else {}
                why = re.sub(r"<[^>]+>", "", str(dep.get("message", ""))).strip()
                since = f" since OCSF {dep['since']}" if dep.get("since") else ""
                out.append(f"{_path(here)}: deprecated{since}" + (f": {why}" if why else ""))
            enum, sibling = spec.get("enum"), spec.get("sibling")
            if enum and sibling and type(value) is int and str(value) in enum:
                caption = enum[str(value)].get("caption")
                have = instance.get(sibling)
                if value == OTHER_ID:
                    if not isinstance(have, str) or not have:
                        out.append(f"{_path(path + [sibling])}: required when {name} is 99 (Other), "
                                   "with the source's own name")
                elif have is not None and have != caption:
                    out.append(f"{_path(path + [sibling])}: {have!r} does not match {name} {value} "
                               f"(expected {caption!r})")
            if spec.get("type") == "timestamp_t":
                for i, ts in enumerate(value if isinstance(value, list) else [value]):
                    if type(ts) is int and not MS_MIN <= ts < MS_MAX:
                        at = here + [i] if isinstance(value, list) else here
                        hint = " (seconds, not milliseconds?)" if MS_MIN // 1000 <= ts < MS_MAX // 1000 else ""
                        out.append(f"{_path(at)}: {ts} is not epoch milliseconds between 2000 and 2100{hint}")
            obj_type = spec.get("object_type") if spec.get("type") == "object_t" else None
            child = raw["objects"].get(obj_type, {}).get("attributes") if obj_type else None
            if child:
                items = value if isinstance(value, list) else [value]
                for i, item in enumerate(items):
                    if isinstance(item, dict):
                        walk(item, child, here + [i] if isinstance(value, list) else here)

    walk(event, raw["classes"][CLASS_NAME]["attributes"], [])
    return out


def check_event(schemas: Schemas, event) -> tuple[str | None, list[str]]:
    """Returns (OCSF version used, problems)."""
    if not isinstance(event, dict):
        return None, [f"not a JSON object but {type(event).__name__}"]
    meta = event.get("metadata")
    version = meta.get("version") if isinstance(meta, dict) else None
    if not isinstance(version, str):
        return None, ["/metadata/version: missing or not a string; it names the OCSF version to validate against"]
    if version not in schemas.versions:
        have = ", ".join(sorted(schemas.versions))
        return None, [f"/metadata/version: {version!r} is not an OCSF version {PACKAGE} bundles ({have})"]

    profiles = meta.get("profiles", [])
    problems = []
    if not isinstance(profiles, list) or not all(isinstance(p, str) for p in profiles):
        problems.append("/metadata/profiles: must be an array of strings")
        profiles = []
    known = schemas.class_profiles(version)
    for p in profiles:
        if p not in known:
            problems.append(f"/metadata/profiles: {p!r} is not a profile of Detection Finding in "
                            f"OCSF {version} ({', '.join(known)})")
    applied = tuple(sorted({p for p in profiles if p in known}))

    problems += _schema_errors(schemas.validator(version, applied), event)
    problems += _semantic_errors(schemas.raw_schema(version), event)
    return version, problems


def main(argv: list[str]) -> None:
    if len(argv) != 2 or argv[1] in ("-h", "--help"):
        print(__doc__.strip(), file=sys.stderr)
        sys.exit(0 if len(argv) == 2 else 2)
    try:
        import importlib.metadata

        import jsonschema
        import ocsf_json_schema
    except ImportError as e:
        fail(f"{e}; run: bash infra/local/install-python-tools.sh", 2)
    pkg_version = importlib.metadata.version(PACKAGE)
    schemas = Schemas(ocsf_json_schema, jsonschema)

    try:
        with open(argv[1], encoding="utf-8") as f:
            lines = f.read().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        fail(f"cannot read {argv[1]}: {e}")

    count, bad, versions = 0, 0, set()
    for k, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        count += 1
        try:
            event = json.loads(line, object_pairs_hook=_no_dup_keys, parse_constant=_no_nan)
        except ValueError as e:
            problems, version = [f"not valid JSON: {e}"], None
        else:
            version, problems = check_event(schemas, event)
        if problems:
            bad += 1
            for p in problems:
                print(f"line {k}: {p}", file=sys.stderr)
        elif version:
            versions.add(version)

    if count == 0:
        fail(f"{argv[1]}: no findings (the file has no non-blank line)")
    if bad:
        print(f"{PROG}: {bad} of {count} findings are not valid OCSF Detection Findings", file=sys.stderr)
        sys.exit(1)
    print(f"ok {count} findings (OCSF {'+'.join(sorted(versions))}, {PACKAGE} {pkg_version})")


if __name__ == "__main__":
    main(sys.argv)
