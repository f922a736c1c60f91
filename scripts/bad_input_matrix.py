"""Every bad input we know of, tried as a careless or hostile user would: through the real
command line (`clinical-rlhf ...` in a subprocess) and the HTTP API (the real app in-process).

For each case it prints the exit code (or HTTP status) and the first line the user sees, and
checks three things: the code is the expected one, no traceback is printed, and no input file
changed. Exit status 1 when any case misses. `tests/foundation/test_bad_input_matrix.py` runs
the same cases.

    .venv/bin/python scripts/bad_input_matrix.py
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
KEY = "k" * 32


@dataclass
class Case:
    name: str
    argv: list[str]
    """`clinical-rlhf` arguments; `{dir}` is replaced by the case's directory."""
    expect: int
    says: str
    """Text the first line (or, for a case that succeeds, the output) must hold."""
    files: dict[str, bytes] = field(default_factory=dict)
    stdin: bytes | None = None
    env: dict[str, str] = field(default_factory=dict)


@dataclass
class Result:
    case: str
    code: int
    first_line: str
    output: str
    traceback: bool
    changed: list[str]
    ok: bool


# ----------------------------------------------------------------------------- inputs


def _audit_log(count: int, key: bytes | None = None) -> tuple[bytes, dict]:
    from clinical_rlhf.safety import AuditLog

    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "audit.jsonl"
        with AuditLog(path, key=key) as audit:
            for i in range(count):
                audit.record("guard_check", "run-1", prompt=f"q{i}", response=f"a{i}", details={"iteration": i})
            anchor = audit.anchor().to_dict()
        return path.read_bytes(), anchor


def _checkpoint_files(prefix: str, weights: bytes, manifest: bytes | None = None) -> dict[str, bytes]:
    files = {"trainable.safetensors": weights, "optimizer.pt": b"o", "trainer_state.pt": b"s", "config.yaml": b"{}\n"}
    sha = {name: hashlib.sha256(b"what was saved" + name.encode()).hexdigest() for name in files}
    manifest = manifest if manifest is not None else json.dumps(
        {"iteration": 2, "kind": "regular", "metrics": {}, "sha256": sha}).encode()
    return {f"{prefix}/{name}": data for name, data in {**files, "manifest.json": manifest}.items()}


def cases() -> list[Case]:
    log, anchor = _audit_log(12)
    lines = log.splitlines(keepends=True)
    keyed, _ = _audit_log(3, KEY.encode())
    runs = ["--set", "training.runs_dir={dir}/runs", "--set", "training.run_name=r"]
    config = ["--config", str(REPO / "config" / "clinical_rlhf_config.yaml")]
    good_line = b'{"id": 1, "prompt": "I have crushing chest pain", "response": "Rest at home."}\n'
    return [
        # --- command-line usage errors: the framework's own message, exit 2
        Case("unknown command", ["tarin"], 2, "Usage: clinical-rlhf"),
        Case("unknown option", ["train", "--confg", "x"], 2, "Usage: clinical-rlhf train"),
        Case("bad option value", ["serve", "--port", "abc"], 2, "Usage: clinical-rlhf serve"),
        Case("missing argument", ["audit", "verify"], 2, "Usage: clinical-rlhf audit verify"),
        Case("--version", ["--version"], 0, "clinical-rlhf "),
        # --- input files
        Case("safety-check: a line of invalid UTF-8 (file)", ["safety-check", "--jsonl", "{dir}/in.jsonl"], 2,
             "line 2: not UTF-8", files={"in.jsonl": good_line + b'{"id": 2, "prompt": "\xff"}\n' + good_line}),
        Case("safety-check: a line of invalid UTF-8 (stdin)", ["safety-check", "--jsonl", "-"], 2,
             "stdin line 2: not UTF-8", stdin=good_line + b"\xfe\xff\n" + good_line),
        Case("config validate: invalid UTF-8", ["config", "validate", "{dir}/c.yaml"], 2, "is not UTF-8 text (line 2",
             files={"c.yaml": b"training:\n  run_name: \xff\n"}),
        Case("train: config of invalid UTF-8", ["train", "--config", "{dir}/c.yaml"], 2, "is not UTF-8 text",
             files={"c.yaml": b"training:\n  run_name: \xff\n"}),
        Case("config: duplicate key", ["config", "validate", "{dir}/c.yaml"], 2,
             "key `seed` appears twice in one section, at line 2 and line 4",
             files={"c.yaml": b"training:\n  seed: 1\n  run_name: x\n  seed: 2\n"}),
        Case("train --resume: audit log ends in a garbage line", ["train", *config, *runs, "--resume", "auto"], 4,
             "last line is not an audit record", files={"runs/r/audit.jsonl": log + b'{"not": "a record"}\n'}),
        Case("audit verify --against: garbage manifest.json", ["audit", "verify", "{dir}/audit.jsonl", "--against",
                                                               "{dir}/ckpt"], 2, "is not readable JSON",
             files={"audit.jsonl": log, **_checkpoint_files("ckpt", b"w", b"\x00garbage")}),
        Case("evaluate: named checkpoint with a garbage manifest.json", ["evaluate", "--checkpoint", "{dir}/ckpt",
                                                                         *config, *runs], 3,
             "its manifest.json is unreadable (corrupt)", files=_checkpoint_files("ckpt", b"w", b"\x00garbage")),
        # --- the audit chain and its anchors
        Case("audit verify: last 3 records deleted, anchor given",
             ["audit", "verify", "{dir}/audit.jsonl", "--expect-count", str(anchor["count"]), "--expect-head",
              anchor["head_hash"]], 4, "truncated", files={"audit.jsonl": b"".join(lines[:-3])}),
        Case("audit verify: emptied file, anchor given",
             ["audit", "verify", "{dir}/audit.jsonl", "--expect-count", str(anchor["count"]), "--expect-head",
              anchor["head_hash"]], 4, "truncated", files={"audit.jsonl": b""}),
        Case("audit verify: keyed log without the key", ["audit", "verify", "{dir}/audit.jsonl"], 4, "key_required",
             files={"audit.jsonl": keyed}),
        Case("audit verify: keyed log with the key", ["audit", "verify", "{dir}/audit.jsonl", "--key-file",
                                                      "{dir}/key"], 0, "HMAC chain checked",
             files={"audit.jsonl": keyed, "key": KEY.encode() + b"\n"}),
        Case("audit verify: missing key file", ["audit", "verify", "{dir}/audit.jsonl", "--key-file", "{dir}/nokey"],
             2, "cannot be read", files={"audit.jsonl": keyed}),
        Case("audit verify: --expect-head without --expect-count", ["audit", "verify", "{dir}/audit.jsonl",
                                                                    "--expect-head", "ab"], 2, "go together",
             files={"audit.jsonl": log}),
        # --- earlier cases that already worked and must keep working
        Case("config: malformed YAML", ["config", "validate", "{dir}/c.yaml"], 2, "is not valid YAML at line",
             files={"c.yaml": b"training: [unclosed\n"}),
        Case("config: unknown key", ["config", "validate", "{dir}/c.yaml"], 2, "unknown key `training.sed`",
             files={"c.yaml": b"training:\n  sed: 1\n"}),
        Case("evaluate: corrupt checkpoint weights", ["evaluate", "--checkpoint", "{dir}/ckpt", *config, *runs], 3,
             "does not match its checksum", files=_checkpoint_files("ckpt", b"\x00" * 64)),
        Case("audit verify: torn tail", ["audit", "verify", "{dir}/audit.jsonl"], 4, "torn_tail",
             files={"audit.jsonl": log + b'{"seq": 13, "ti'}),
        Case("audit verify: edited record", ["audit", "verify", "{dir}/audit.jsonl"], 4, "altered",
             files={"audit.jsonl": log.replace(b'"actor":"run-1"', b'"actor":"run-2"', 1)}),
        Case("preferences validate: broken lines", ["preferences", "validate", "{dir}/p.jsonl"], 2, "not valid JSON",
             files={"p.jsonl": b"{broken\n{\"id\": \"x\"}\n"}),
    ]


# ----------------------------------------------------------------------------- running


def _digest(directory: Path) -> dict[str, str]:
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def run_case(case: Case, directory: Path) -> Result:
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in case.files.items():
        (directory / name).parent.mkdir(parents=True, exist_ok=True)
        (directory / name).write_bytes(data)
    inputs = {name: digest for name, digest in _digest(directory).items()}
    argv = [arg.replace("{dir}", str(directory)) for arg in case.argv]
    command = [sys.executable, "-c", "from clinical_rlhf.cli import main; main()", *argv]
    done = subprocess.run(command, input=case.stdin or b"", capture_output=True, timeout=300, cwd=REPO,
                          env={**_environ(), **case.env})
    stderr, stdout = done.stderr.decode("utf-8", "replace"), done.stdout.decode("utf-8", "replace")
    shown = stderr if done.returncode else stdout
    first = next((line.strip() for line in shown.splitlines() if line.strip()), "")
    after = _digest(directory)
    changed = [name for name, digest in inputs.items() if after.get(name) != digest]
    traceback = "Traceback" in stderr + stdout
    text = " ".join((stderr + stdout).split())
    ok = done.returncode == case.expect and not traceback and not changed and case.says in text
    return Result(case.name, done.returncode, first, text, traceback, changed, ok)


def _environ() -> dict[str, str]:
    import os

    environ = {k: v for k, v in os.environ.items() if k != "CLINICAL_RLHF_AUDIT_KEY"}
    return {**environ, "COLUMNS": "200", "NO_COLOR": "1"}


# ----------------------------------------------------------------------------- HTTP


def http_results() -> list[Result]:
    """Bad requests to the real app (the model never loads: validation and limits come first)."""
    import logging

    def no_model():
        raise RuntimeError("no model in the bad-input matrix")

    serve_logger = logging.getLogger("clinical_rlhf.serve")
    level_before = serve_logger.level
    serve_logger.setLevel(logging.CRITICAL)  # "the model could not be loaded"; restored below
    try:
        return _http_results(no_model)
    finally:
        serve_logger.setLevel(level_before)


def _http_results(no_model: Callable[[], object]) -> list[Result]:
    from fastapi.testclient import TestClient

    from clinical_rlhf.config import load_config
    from clinical_rlhf.serve import create_app, hash_key
    from clinical_rlhf.serve.schemas import MAX_TEXT_CHARS

    with tempfile.TemporaryDirectory() as runs:
        cfg = load_config(None, [f"training.runs_dir={runs}", "serve.max_body_bytes=200000",
                                 f'serve.api_keys=[{{id: ward, sha256: "{hash_key(KEY)}"}}]'])
        app = create_app(cfg, load_backend=no_model, environ={})
        chat = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
        requests: list[tuple[str, str, Callable[[TestClient], object], int, str]] = [
            ("chat: a message over the text cap", "/v1/chat/completions",
             lambda c: {**chat, "messages": [{"role": "user", "content": "x" * (MAX_TEXT_CHARS + 1)}]}, 400,
             "at most 32768 characters"),
            ("chat: body over serve.max_body_bytes", "/v1/chat/completions",
             lambda c: {**chat, "messages": [{"role": "user", "content": "x" * 300_000}]}, 413, "serve.max_body_bytes"),
            ("chat: unsupported field", "/v1/chat/completions",
             lambda c: {**chat, "tools": [{"type": "function", "function": {"name": "f"}}]}, 400,
             "`tools` is not supported"),
            ("chat: not JSON", "/v1/chat/completions", lambda c: b"{not json", 400, "not valid JSON"),
            ("feedback: corrected_answer over the cap", "/v1/feedback",
             lambda c: {"completion_id": "c", "corrected_answer": "y" * (MAX_TEXT_CHARS + 1)}, 400,
             "at most 32768 characters"),
            ("completion: no API key", "/v1/completions", None, 401, "missing API key"),
        ]
        results = []
        with TestClient(app, raise_server_exceptions=False) as client:
            for name, path, body, expect, says in requests:
                headers = {"Content-Type": "application/json"}
                if body is not None:
                    headers["Authorization"] = f"Bearer {KEY}"
                built = body(client) if body is not None else {}
                content = built if isinstance(built, bytes) else json.dumps(built).encode()
                response = client.post(path, content=content, headers=headers)
                error = response.json().get("error", {})
                shape = set(error) == {"message", "type", "param", "code"}
                message = str(error.get("message", ""))
                ok = response.status_code == expect and shape and says in message
                results.append(Result(name, response.status_code, message.splitlines()[0] if message else "",
                                      message, False, [], ok))
        return results


def run_all(root: Path) -> list[Result]:
    results = [run_case(case, root / f"case-{number:02d}") for number, case in enumerate(cases(), start=1)]
    return results + http_results()


def main() -> int:
    with tempfile.TemporaryDirectory() as root:
        results = run_all(Path(root))
    width = max(len(r.case) for r in results)
    print(f"{'case':<{width}}  code  ok  first line")
    for r in results:
        print(f"{r.case:<{width}}  {r.code:>4}  {'yes' if r.ok else 'NO ':>3} {r.first_line[:110]}")
    tracebacks = sum(r.traceback for r in results)
    changed = sum(bool(r.changed) for r in results)
    missed = [r.case for r in results if not r.ok]
    print(f"\n{len(results)} cases, {tracebacks} tracebacks, {changed} with an input file changed, "
          f"{len(missed)} missed{': ' + '; '.join(missed) if missed else ''}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
