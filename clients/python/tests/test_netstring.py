"""Netstring framing: round trips, frames split anywhere, and malformed input."""

import pytest

from jobcenter_client.netstring import Decoder, NetstringError, encode


def test_encode_frames_length_payload_comma():
    assert encode(b"") == b"0:,"
    assert encode(b'{"a":1}') == b'7:{"a":1},'
    assert encode("é".encode()) == b"2:\xc3\xa9,"


def test_round_trip_byte_by_byte():
    msgs = [b"", b"hello", b'{"jsonrpc":"2.0"}', b"x" * 1000]
    stream = b"".join(encode(m) for m in msgs)
    dec = Decoder()
    out = []
    for i in range(len(stream)):
        out.extend(dec.feed(stream[i : i + 1]))
    assert out == msgs


def test_several_frames_in_one_read():
    dec = Decoder()
    assert dec.feed(b"1:a,2:bc,3:d") == [b"a", b"bc"]
    assert dec.feed(b"ef,") == [b"def"]


@pytest.mark.parametrize("bad", [b"x:abc,", b"-1:a,", b"3:abcd", b":a,", b"01:a,", b"1" * 30])
def test_malformed_input_is_rejected(bad):
    with pytest.raises(NetstringError):
        Decoder().feed(bad)


def test_oversized_frame_is_rejected_before_reading_it():
    dec = Decoder(max_frame=10)
    with pytest.raises(NetstringError, match="exceeds"):
        dec.feed(b"11:")
    assert Decoder(max_frame=10).feed(b"10:0123456789,") == [b"0123456789"]
