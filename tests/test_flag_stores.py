"""The flagd document the flag channel's stores keep, one write at a time: what a write keeps (the
flag's own targeting and text, the other flags' text, other variants' users), what it refuses (targeting
it cannot ramp, a document not strict UTF-8 JSON, weights flagd does not evaluate), what a restore puts
back. Each backend's own behaviour is in test_flag_backends.py; whole Releases in test_flags.py."""

from __future__ import annotations

import base64
import json

from models.flags import FlagChannel

DOCUMENT = {"$schema": "https://flagd.dev/schema/v0/flags.json",
            "flags": {"new-checkout": {"state": "ENABLED", "variants": {"on": True, "off": False},
                                       "defaultVariant": "off"}}}


# ---- the flag's targeting: only the released variant's weight moves --------------------------------


def flagd_file(tmp_path, flags: dict, text: str | None = None):
    """A flagd file holding `flags` (or `text` as is), the store over it, and its channel for new-checkout."""
    from activities.targets.flag.file import FileBackend
    from activities.targets.flag.store import FlagdStore

    path = tmp_path / "flags.json"
    path.write_text(text if text is not None else json.dumps({"flags": flags}, indent=2))
    return path, FlagdStore(FileBackend()), FlagChannel(file=str(path), flag="new-checkout")


def evaluate(path, users: list[str]) -> dict[str, object]:
    """Each user's value of new-checkout, as flagd-core 2.x (the pinned evaluator) computes it."""
    from openfeature.contrib.tools.flagd.core import FlagdCore
    from openfeature.evaluation_context import EvaluationContext

    core = FlagdCore()
    core.set_flags(path.read_text())
    return {u: core.resolve_boolean_value("new-checkout", False, EvaluationContext(u, {"email": f"{u}@x.example"})).value
            for u in users}


USERS = [f"user-{n:05d}" for n in range(4000)]
CHECKOUT = {"state": "ENABLED", "variants": {"on": True, "off": False, "blue": True}, "defaultVariant": "off"}


def test_a_third_variant_keeps_its_users(tmp_path):
    flag = {**CHECKOUT, "targeting": {"fractional": [["blue", 20], ["on", 1], ["off", 79]]}}
    path, store, channel = flagd_file(tmp_path, {"new-checkout": flag})
    store.write(channel, "on", 500)
    assert json.loads(path.read_text())["flags"]["new-checkout"]["targeting"] == {
        "fractional": [["blue", 20], ["on", 5], ["off", 75]]}
    assert store.read(channel, "on").basis_points == 500 and store.read(channel, "blue").basis_points == 2000


def test_a_hand_made_split_only_grows(tmp_path):
    """[off, on] with a total of 100: at 5 % everyone who had it at 1 % still has it (superset)."""
    flag = {**CHECKOUT, "targeting": {"fractional": [["off", 99], ["on", 1]]}}
    path, store, channel = flagd_file(tmp_path, {"new-checkout": flag})
    assert store.read(channel, "on").basis_points == 100, "normalised by the total weight"
    before = {u for u, on in evaluate(path, USERS).items() if on}
    store.write(channel, "on", 550)
    after = {u for u, on in evaluate(path, USERS).items() if on}
    assert before and before <= after
    assert json.loads(path.read_text())["flags"]["new-checkout"]["targeting"] == {
        "fractional": [["off", 189], ["on", 11]]}, "weights doubled to express 5.5 %: nobody moved"


def test_rules_and_a_custom_bucketing_key_are_kept(tmp_path):
    bucketing = {"cat": [{"var": "$flagd.flagKey"}, {"var": "email"}]}
    targeting = {"if": [{"ends_with": [{"var": "email"}, "@staff.example"]}, "on",
                        {"fractional": [bucketing, ["on", 100], ["off", 9900]]}]}
    path, store, channel = flagd_file(tmp_path, {"new-checkout": {**CHECKOUT, "targeting": targeting}})
    store.write(channel, "on", 1000)
    written = json.loads(path.read_text())["flags"]["new-checkout"]["targeting"]
    assert written == {"if": [targeting["if"][0], "on", {"fractional": [bucketing, ["on", 1000], ["off", 9000]]}]}


def refusal(store, channel, basis_points: int) -> str:
    from temporalio.exceptions import ApplicationError

    try:
        store.write(channel, "on", basis_points)
    except ApplicationError as error:
        assert error.non_retryable and error.type == "Invalid"
        return str(error)
    raise AssertionError("written")


def test_targeting_the_channel_cannot_ramp_is_refused_naming_why(tmp_path):
    cases = {
        "DISABLED": {**CHECKOUT, "state": "DISABLED"},
        "no fractional": {**CHECKOUT, "targeting": {"if": [{"var": "beta"}, "on", "off"]}},
        "sit between": {**CHECKOUT, "targeting": {"fractional": [["on", 1], ["blue", 50], ["off", 49]]}},
        "the rest is": {**CHECKOUT, "targeting": {"fractional": [["blue", 60], ["on", 1], ["off", 39]]}},
    }
    for why, flag in cases.items():
        path, store, channel = flagd_file(tmp_path, {"new-checkout": flag})
        before = path.read_text()
        assert why in refusal(store, channel, 5000 if why == "the rest is" else 500)
        assert path.read_text() == before, why


def test_other_flags_keep_their_text(tmp_path):
    text = ('{\n  "$schema": "https://flagd.dev/schema/v0/flags.json",\n  "flags": {\n'
            '    "zeta": {"state": "ENABLED", "variants": {"tarte": "crème brûlée", "n": 1.50}, "defaultVariant": "n"},\n'
            '    "new-checkout": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off"},\n'
            '    "alpha": {"state": "ENABLED", "variants": {"big": 1e3}, "defaultVariant": "big"}\n  }\n}\n')
    path, store, channel = flagd_file(tmp_path, {}, text=text)
    store.write(channel, "on", 500)
    written = path.read_text()
    lines = [line for line in text.splitlines() if "new-checkout" not in line]
    assert [line for line in written.splitlines() if line in lines] == lines, "the rest as written, in order"
    assert json.loads(written)["flags"]["new-checkout"]["targeting"] == {"fractional": [["on", 500], ["off", 9500]]}


def test_a_flag_without_targeting_is_split_only_when_its_default_is_the_baseline(tmp_path):
    """No targeting: everyone gets defaultVariant. Only when that is the baseline does a two-way split
    move nobody else; a default of another variant ('blue') or of the released one is refused, named."""
    for default in ("blue", "on"):
        path, store, channel = flagd_file(tmp_path, {"new-checkout": {**CHECKOUT, "defaultVariant": default}})
        before = path.read_text()
        assert f"defaultVariant {default!r}" in refusal(store, channel, 500)
        assert path.read_text() == before, default
    path, store, channel = flagd_file(tmp_path, {"new-checkout": CHECKOUT})
    store.write(channel, "on", 500)
    assert json.loads(path.read_text())["flags"]["new-checkout"]["targeting"] == {
        "fractional": [["on", 500], ["off", 9500]]}


def test_a_restore_puts_back_the_entries_read_only_if_the_split_is_still_the_channels(tmp_path):
    original = [["blue", 10], ["on", 1], ["off", 2]]
    path, store, channel = flagd_file(tmp_path, {"new-checkout": {**CHECKOUT, "targeting": {"fractional": original}}})
    store.write(channel, "on", 2000)  # a phase (weights scaled)
    store.write(channel, "on", store.read(channel, "on").basis_points, restore=original)
    assert json.loads(path.read_text())["flags"]["new-checkout"]["targeting"] == {"fractional": original}
    store.write(channel, "on", 2000)
    flags = json.loads(path.read_text())
    flags["flags"]["new-checkout"]["targeting"]["fractional"][0][1] += 1  # someone else moved blue meanwhile
    path.write_text(json.dumps(flags))
    store.write(channel, "on", 769, restore=original)
    written = json.loads(path.read_text())["flags"]["new-checkout"]["targeting"]["fractional"]
    assert written != original and store.read(channel, "on").basis_points == 769, "the share, their change kept"


def _attempt(store, channel, basis_points):
    from temporalio.exceptions import ApplicationError

    try:
        return store.write(channel, "on", basis_points)
    except ApplicationError as error:
        return error


def test_a_document_not_strict_utf8_json_is_refused_naming_the_store(tmp_path):
    """A UTF-8 byte-order mark, UTF-16, a non-finite number: permanent errors naming the store (were plain
    exceptions retried for 30 minutes, or `Infinity` written back)."""
    from temporalio.exceptions import ApplicationError

    document = json.dumps({"flags": {"new-checkout": CHECKOUT}})
    for why, data in (("byte-order mark", b"\xef\xbb\xbf" + document.encode()), ("UTF-8", document.encode("utf-16")),
                      ("finite", document.replace('"off"}', '"off", "x": 1e400}').encode()),
                      ("finite", document.replace('"off"}', '"off", "x": NaN}').encode())):
        path, store, channel = flagd_file(tmp_path, {})
        path.write_bytes(data)
        for attempt in (lambda: store.read(channel, "on"), lambda: store.write(channel, "on", 500)):  # noqa: B023
            try:
                attempt()
                raise AssertionError(f"read ({why})")
            except ApplicationError as error:
                assert error.non_retryable and why in str(error) and "flags.json" in str(error), error
        assert path.read_bytes() == data


def test_a_fractional_whose_weights_flagd_refuses_is_refused(tmp_path):
    """Weights adding up to 0, or beyond flagd's maximum (2^31-1): refused on read and write (were read as
    0 % and written over)."""
    from temporalio.exceptions import ApplicationError

    for entries in ([["on", 0], ["off", 0]], [["on", 1], ["off", 2_147_483_647]]):
        path, store, channel = flagd_file(tmp_path, {"new-checkout": {**CHECKOUT, "targeting": {"fractional": entries}}})
        before = path.read_text()
        for method in ("read", "write"):
            error = _attempt(store, channel, 500) if method == "write" else None
            if method == "read":
                try:
                    store.read(channel, "on")
                except ApplicationError as refused:
                    error = refused
            assert isinstance(error, ApplicationError) and error.non_retryable and "add up to" in str(error), error
        assert path.read_text() == before


def test_the_released_flag_keeps_its_own_text_but_its_targeting(tmp_path):
    text = ('{\n  "flags": {\n    "new-checkout": {\n      "state": "ENABLED",\n'
            '      "variants": {"on": true, "off": false},\n      "defaultVariant": "off",\n'
            '      "metadata": {"note": "crème", "n": 1.50},\n'
            '      "targeting": {"fractional": [["on", 1], ["off", 99]]}\n    }\n  }\n}\n')
    path, store, channel = flagd_file(tmp_path, {}, text=text)
    store.write(channel, "on", 500)
    written = path.read_text()
    before, after = text[:text.index('"targeting"')], text[text.index("]]}") + 3:]
    assert written.startswith(before) and written.endswith(after), "only the targeting's value rewritten"
    assert json.loads(written)["flags"]["new-checkout"]["targeting"] == {"fractional": [["on", 5], ["off", 95]]}




# ---- which stores a Release may name: the worker's configuration decides --------------------------


def test_a_release_names_only_the_flag_stores_the_worker_allows(tmp_path, monkeypatch):
    """A flags file outside the allowed directories (the worker's own files, a link out), an Unleash server
    that would receive the admin token, an S3 endpoint that would receive the worker's signatures: each
    refused before anything is read or sent, naming the field."""
    import pytest
    from temporalio.exceptions import ApplicationError

    from activities.targets.flag import FlagActivities
    from models.flags import FlagInput

    allowed = tmp_path / "flags"
    allowed.mkdir()
    (allowed / "flags.json").write_text(json.dumps(DOCUMENT))
    (allowed / "escape.json").symlink_to(tmp_path / "outside.json")
    config = tmp_path / "stores.yaml"
    config.write_text(f"files: [{allowed}]\nunleash: ['https://unleash.example/api']\n"
                      "s3Endpoints: ['https://minio.internal:9000']\ns3Buckets: [flags]\n")
    monkeypatch.setenv("DURABLE_ROLLOUTS_FLAG_STORES", str(config))
    monkeypatch.setenv("DURABLE_ROLLOUTS_UNLEASH_TOKEN", "admin-token")
    activities = FlagActivities(lambda flag_object: None, httpx_client())

    def read(**store):
        return activities.read_flag_share(FlagInput(channel=FlagChannel(flag="new-checkout", **store), variant="on",
                                                    basis_points=0))

    assert read(file=str(allowed / "flags.json")).basis_points == 0
    for store, field in (({"file": "/etc/passwd"}, "file"), ({"file": str(allowed / "escape.json")}, "file"),
                         ({"file": str(allowed / ".." / "stores.yaml")}, "file"),
                         ({"unleash": {"url": "https://unleash.example.attacker.test/api"}}, "unleash.url"),
                         ({"unleash": {"url": "http://unleash.example/api"}}, "unleash.url"),
                         ({"unleash": {"url": "https://unleash.example/apiv2"}}, "unleash.url"),
                         ({"unleash": {"url": "https://unleash.example/api/../admin"}}, "unleash.url"),
                         ({"unleash": {"url": "https://unleash.example/api/%2E%2E/admin"}}, "unleash.url"),
                         ({"unleash": {"url": "https://unleash.example/"}}, "unleash.url"),
                         ({"s3": {"bucket": "tuf-updates", "key": "metadata/timestamp.json"}}, "s3.bucket"),
                         ({"s3": {"bucket": "flags", "key": "f.json", "endpoint": "https://minio.internal:9001"}},
                          "s3.endpoint")):
        with pytest.raises(ApplicationError, match=f"channel.flag.{field} .* this worker's "
                                                   r"\$DURABLE_ROLLOUTS_FLAG_STORES allows") as raised:
            read(**store)
        assert raised.value.non_retryable
    monkeypatch.delenv("DURABLE_ROLLOUTS_FLAG_STORES")
    with pytest.raises(ApplicationError, match="channel.flag.file"):
        read(file=str(allowed / "flags.json"))


def httpx_client():
    import httpx

    def refuse(request):
        raise AssertionError(f"nothing may be sent: {request.url}")

    return httpx.Client(transport=httpx.MockTransport(refuse))
