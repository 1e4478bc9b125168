"""Values from outside the runbook text are data, rendered once: a value ``{{ 7*7 }}``
given with -e, read from a params file, printed by a step, set by a step, read from
the environment, an inventory or a secret reaches every sink as that literal text."""

from __future__ import annotations

import http.server
import json
import threading
from typing import TYPE_CHECKING

import pytest

from tests.conftest import audit_records

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.e2e

PAYLOAD = "{{ 7*7 }}"
# one marker per source, so a value that was rendered again shows as e.g. "P49"
SOURCES = {
    "P": "-e",
    "F": "--params-file",
    "O": "steps.out.stdout",
    "J": "steps.js.json",
    "V": "set:",
    "E": "env",
    "H": "host.vars",
    "S": "secrets",
}
EXPECTED = [marker + PAYLOAD for marker in SOURCES] + ["J" + PAYLOAD]
REFS = [
    "params.p",
    "params.q",
    "steps.out.stdout",
    "steps.js.json.k",
    "vars.v",
    "env.E_SOURCE",
    "host.vars.hv",
    "secrets.s",
    "vars.w.k",
]


@pytest.fixture
def bodies() -> Iterator[tuple[str, list[bytes]]]:
    received: list[bytes] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            received.append(self.rfile.read(int(self.headers["Content-Length"])))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", received
    server.shutdown()
    server.server_close()


def _runbook(url: str) -> str:
    quoted = " ".join(f"{{{{ {ref} | quote }}}}" for ref in REFS)
    argv = ", ".join(f'"{{{{ {ref} }}}}"' for ref in REFS)
    env = ", ".join(f'X{i}: "{{{{ {ref} }}}}"' for i, ref in enumerate(REFS))
    from_env = " ".join(f'"$X{i}"' for i in range(len(REFS)))
    body = "|".join(f"{{{{ {ref} }}}}" for ref in REFS)
    as_json = ", ".join(f'"{{{{ {ref} }}}}"' for ref in REFS)
    return f"""\
version: 1
name: data
hosts: box
params:
  p: {{type: string}}
  q: {{type: string}}
secrets:
  s: {{env: S_SOURCE}}
steps:
  - id: out
    run: cat o.txt
  - id: js
    run: cat j.json
  - id: setv
    set: {{v: "{{{{ env.V_SOURCE }}}}", w: "{{{{ steps.js.json }}}}"}}
  - id: shell
    run: printf '%s\\n' {quoted} > run.txt
  - id: args
    argv: [sh, -c, 'printf "%s\\n" "$@" > argv.txt', sh, {argv}]
  - id: environment
    env: {{{env}}}
    run: printf '%s\\n' {from_env} > env.txt
  - id: tpl
    template: {{src: t.j2, dest: tpl.txt}}
  - id: cp
    copy: {{src: o.txt, dest: copy.txt}}
  - id: post
    http: {{url: "{url}", method: POST, body: "{body}"}}
  - id: post_json
    http: {{url: "{url}", method: POST, json: [{as_json}]}}
"""


def test_outside_values_reach_every_sink_as_literal_text(
    runbook_cli, tmp_path: Path, state_dir: Path, bodies
) -> None:
    url, received = bodies
    (tmp_path / "o.txt").write_text("O" + PAYLOAD)
    (tmp_path / "j.json").write_text(json.dumps({"k": "J" + PAYLOAD}))
    (tmp_path / "t.j2").write_text("".join(f"{{{{ {ref} }}}}\n" for ref in REFS))
    (tmp_path / "params.yaml").write_text(f"q: 'F{PAYLOAD}'\n")
    (tmp_path / "inventory.yaml").write_text(
        "version: 1\n"
        f"hosts:\n  box: {{connection: local, vars: {{hv: 'H{PAYLOAD}'}}}}\n"
    )
    rb = tmp_path / "rb.yaml"
    rb.write_text(_runbook(url))
    result = runbook_cli(
        "run", str(rb), "-i", "inventory.yaml", "-e", f"p=P{PAYLOAD}",
        "--params-file", "params.yaml", "--report", "json:report.json",
        env={"E_SOURCE": "E" + PAYLOAD, "V_SOURCE": "V" + PAYLOAD,
             "S_SOURCE": "S" + PAYLOAD},
    )  # fmt: skip
    assert result.code == 0, result.output
    for name in ("run.txt", "argv.txt", "env.txt", "tpl.txt"):
        assert (tmp_path / name).read_text().splitlines() == EXPECTED, name
    assert (tmp_path / "copy.txt").read_text() == "O" + PAYLOAD
    assert received[0].decode().split("|") == EXPECTED
    assert json.loads(received[1]) == EXPECTED
    report = (tmp_path / "report.json").read_text()
    audit = json.dumps(audit_records(state_dir))
    for text in (report, audit, result.stderr):
        assert "S" + PAYLOAD not in text  # a secret stays masked
        for marker in SOURCES:
            assert f"{marker}49" not in text
    for marker in "POJEV":  # what the steps printed, set and ran, as written
        assert marker + PAYLOAD in report
        assert marker + PAYLOAD in audit
