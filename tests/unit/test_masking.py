"""Secrets are masked in every form we can recognise, even when output arrives in
chunks that cut a secret in two."""

from __future__ import annotations

import json
import shlex

from runbook_engine.secrets import Masker
from runbook_engine.transports.base import Stream
from runbook_engine.transports.output import StepOutput

SECRET = 'hunter2-it\'s "quoted"'


def test_every_recognisable_form_is_masked():
    masker = Masker([SECRET])
    text = f"a {SECRET} b {shlex.quote(SECRET)} c {json.dumps(SECRET)} d"
    masked = masker.mask(text)
    assert SECRET not in masked and shlex.quote(SECRET) not in masked
    assert json.dumps(SECRET)[1:-1] not in masked
    assert masked.count("***") == 3


def test_url_encoded_forms_are_masked_as_jinja_and_urllib_write_them():
    from runbook_engine import render

    token = "abc/def+ghi jkl"
    masker = Masker([token])
    for source in ("{{ t | urlencode }}", "{{ {'t': t} | urlencode }}"):
        encoded = render.render(source, {"t": token}, "w")
        assert token not in encoded and masker.mask(encoded).count("***") == 1, encoded


def test_short_secrets_are_not_masked_and_nothing_else_changes():
    masker = Masker(["abc"])
    assert not masker.active
    assert masker.mask("abc abc") == "abc abc"


def test_secret_split_across_chunks_is_masked_live_and_in_the_tail():
    masker = Masker([SECRET])
    shown: list[str] = []
    output = StepOutput(
        masker.mask,
        lambda stream, text: shown.append(text),
        secret_margin=masker.longest,
    )
    data = f"before {SECRET} after\n".encode()
    for i in range(len(data)):  # one byte at a time: every possible cut
        output.write(Stream.STDOUT, data[i : i + 1])
    output.close()
    assert SECRET not in "".join(shown)
    assert "before *** after" in "".join(shown)
    assert output.tail(Stream.STDOUT) == "before *** after\n"


def test_tail_is_bounded_and_never_starts_with_a_secret_fragment():
    masker = Masker([SECRET])
    output = StepOutput(masker.mask, None, keep=1000, secret_margin=masker.longest)
    for _ in range(5000):
        output.write(Stream.STDOUT, f"x{SECRET}y\n".encode())
    tail = output.tail(Stream.STDOUT)
    assert len(tail) <= 1000
    for cut in range(1, len(SECRET)):
        assert not tail.startswith(SECRET[cut:]) or len(SECRET[cut:]) < 2
    assert SECRET[5:] not in tail


def test_endless_line_is_passed_on_in_pieces_with_memory_bounded():
    shown: list[int] = []
    output = StepOutput(lambda s: s, lambda stream, text: shown.append(len(text)))
    chunk = b"x" * 65536
    for _ in range(64):  # 4 MiB without a newline
        output.write(Stream.STDOUT, chunk)
    assert sum(shown) > 3 * 1024 * 1024
    assert max(shown) < 200 * 1024
    assert len(output.tail(Stream.STDOUT)) == 64 * 1024


def test_invalid_utf8_never_crashes():
    shown: list[str] = []
    output = StepOutput(lambda s: s, lambda stream, text: shown.append(text))
    output.write(Stream.STDERR, b"\xff\xfe\xc3")
    output.write(Stream.STDERR, b"\xa9 ok\n")
    output.close()
    assert "".join(shown).endswith("é ok\n")
    assert "\ufffd" in output.tail(Stream.STDERR)
