"""The wire contract shared by the service, its client and the handoff (pure)."""

import io
import json

import pyarrow as pa
import pytest

from jupyterhub_civis import protocol
from jupyterhub_civis.errors import InvalidInput


def test_result_ids():
    assert protocol.valid_result_id("0123456789abcdef" * 2)
    for bad in ("", "0" * 31, "0" * 33, "A" * 32, "../" + "0" * 29, "0" * 32 + "\n", None, 5):
        assert not protocol.valid_result_id(bad)


def _bodies():
    table = pa.table({"n": range(10)})
    stream, file = io.BytesIO(), io.BytesIO()
    with pa.ipc.new_stream(stream, table.schema) as w:
        w.write_table(table)
    with pa.ipc.new_file(file, table.schema) as w:
        w.write_table(table)
    return stream.getvalue(), file.getvalue()


def test_arrow_media_types_from_head_and_tail():
    stream, file = _bodies()
    for body, media in ((stream, protocol.ARROW_STREAM), (file, protocol.ARROW_FILE)):
        assert protocol.arrow_prefix_ok(body[:6])
        assert protocol.arrow_media_type(body[:8], body[-8:], len(body)) == media
        assert protocol.arrow_media_type(body[:8], body[-9:-1], len(body) - 1) is None  # torn
        assert protocol.stored_media_type(body[:8]) == media
    foreign = b"PAR1" + b"\0" * 100 + b"\xff\xff\xff\xff\x00\x00\x00\x00"  # ends like a stream
    assert not protocol.arrow_prefix_ok(foreign[:6])
    assert protocol.arrow_media_type(foreign[:8], foreign[-8:], len(foreign)) is None
    assert protocol.arrow_prefix_ok(b"AR")  # too short to judge yet


def test_upload_header_accepts_the_clients_own_header():
    header = protocol.UploadHeader(key="k", sql="select 1", rows=5, pins=["a.ipynb"], server="x")
    assert protocol.parse_upload_header(header.header_value()) == header
    assert protocol.parse_upload_header(None) == protocol.UploadHeader()


@pytest.mark.parametrize(
    "raw, field",
    [
        ({"rows": 1e30}, "X-Civis-Result.rows"),
        ({"rows": 10**30}, "X-Civis-Result.rows"),
        ({"rows": -1}, "X-Civis-Result.rows"),
        ({"rows": "5"}, "X-Civis-Result.rows"),
        ({"key": "k" * 129}, "X-Civis-Result.key"),
        ({"connection": 5}, "X-Civis-Result.connection"),
        ({"owner": "alice"}, "X-Civis-Result.owner"),
        ({"pins": "a.ipynb"}, "X-Civis-Result.pins"),
        ({"pins": [""]}, "X-Civis-Result.pins[0]"),
        ({"pins": ["ok", "x" * 1025]}, "X-Civis-Result.pins[1]"),
        ({"pins": ["a\0b"]}, "X-Civis-Result.pins[0]"),
        ({"pins": ["n.ipynb"] * 65}, "X-Civis-Result.pins"),
        ([1, 2], "X-Civis-Result"),
    ],
)
def test_upload_header_names_the_bad_field(raw, field):
    with pytest.raises(InvalidInput) as e:
        protocol.parse_upload_header(json.dumps(raw))
    assert e.value.field == field, e.value


@pytest.mark.parametrize("raw", ["{not json", "[" * 100_000, '{"pins": ' + "[" * 5000])
def test_malformed_or_deeply_nested_json_is_invalid_input(raw):
    with pytest.raises(InvalidInput, match="not valid JSON"):
        protocol.parse_upload_header(raw)
    with pytest.raises(InvalidInput, match="not valid JSON"):
        protocol.parse_handoff_request(raw.encode())


def test_pin_requests_from_body_and_query():
    assert protocol.parse_pin_request(b'{"ref": "a.ipynb"}').ref == "a.ipynb"
    assert protocol.parse_pin_request({"ref": "a.ipynb"}).ref == "a.ipynb"
    for bad in (b"{}", b'{"ref": ""}', b'{"ref": 5}', b'{"ref": "a", "x": 1}', b"[]"):
        with pytest.raises(InvalidInput):
            protocol.parse_pin_request(bad)
    with pytest.raises(InvalidInput) as e:
        protocol.parse_pin_request({"ref": None})
    assert e.value.field == "ref"


def test_handoff_lines_round_trip():
    request = protocol.HandoffRequest(token="t", id="0" * 32)
    assert request.line().endswith(b"\n")
    assert protocol.parse_handoff_request(request.line().rstrip(b"\n")) == request
    for bad in (b'{"token": "t"}', b'{"token": "", "id": "x"}', b'{"token": 1, "id": "x"}'):
        with pytest.raises(InvalidInput):
            protocol.parse_handoff_request(bad)
    reply = json.loads(protocol.handoff_reply(404, message="result not found"))
    assert reply == {"status": 404, "message": "result not found"}
