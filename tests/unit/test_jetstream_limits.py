"""JetStream limits: the tenant's meaning (-1 unlimited, 0 none, N at most N) encoded the way nats-server reads a JWT
(server/accounts.go and server/jetstream.go, cited in operators/claims/account.py). Pure, no Django."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from operators.claims import JetStreamLimits, JwtError, jetstream_server_reading, jetstream_tenant_limits

ON = {"mem_storage": 1024, "disk_storage": 4096}


# ------------------------------------------------------------------------------------------------
# Per field
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("field", ["mem_storage", "disk_storage"])
@pytest.mark.parametrize("value", [-1, 0, 1, 10_000])
def test_storage_is_written_as_it_is_and_the_server_enforces_zero(field, value):
    other = "disk_storage" if field == "mem_storage" else "mem_storage"
    lim = jetstream_tenant_limits(**{field: value, other: 100}, streams=5, consumer=50)
    assert getattr(lim, field) == value
    assert jetstream_server_reading(lim)[field] == value  # 0 = no bytes of this storage, -1 unlimited


def test_both_storages_zero_is_jetstream_off():
    lim = jetstream_tenant_limits(mem_storage=0, disk_storage=0, streams=5, consumer=50)
    assert not lim.enabled
    assert set(jetstream_server_reading(lim).values()) == {0}


@pytest.mark.parametrize("value", [-1, 1, 5])
def test_streams_unlimited_or_positive_is_written_as_it_is(value):
    lim = jetstream_tenant_limits(**ON, streams=value, consumer=50)
    assert lim.to_json()["streams"] == value and lim.enabled
    assert jetstream_server_reading(lim)["streams"] == value


def test_streams_zero_turns_jetstream_off():
    """The server enforces MaxStreams only when > 0: a 0 in the JWT would be unlimited, so 0 is JetStream off."""
    lim = jetstream_tenant_limits(**ON, streams=0, consumer=50)
    assert lim.to_json()["mem_storage"] == 0 and lim.to_json()["disk_storage"] == 0
    assert not lim.enabled
    assert jetstream_server_reading(lim)["streams"] == 0 and jetstream_server_reading(lim)["consumer"] == 0


@pytest.mark.parametrize("value", [-1, 1, 50])
def test_consumer_unlimited_or_positive_is_written_as_it_is(value):
    lim = jetstream_tenant_limits(**ON, streams=5, consumer=value)
    assert lim.to_json()["consumer"] == value
    assert jetstream_server_reading(lim)["consumer"] == value


def test_consumer_zero_with_jetstream_on_is_refused():
    with pytest.raises(JwtError, match="consumer cannot be 0"):
        jetstream_tenant_limits(**ON, streams=5, consumer=0)


@pytest.mark.parametrize("kw", [{"mem_storage": 0, "disk_storage": 0, "streams": 5},
                                {**ON, "streams": 0}])
def test_consumer_zero_with_jetstream_off_is_fine(kw):
    assert not jetstream_tenant_limits(**kw, consumer=0).enabled


@pytest.mark.parametrize("field", ["mem_storage", "disk_storage", "streams", "consumer"])
@pytest.mark.parametrize("value", [-2, True, 1.5, "1"])
def test_non_limits_are_refused(field, value):
    kw = {**ON, "streams": 5, "consumer": 50, field: value}
    with pytest.raises(JwtError, match=field):
        jetstream_tenant_limits(**kw)


@pytest.mark.parametrize("field", ["max_ack_pending", "mem_max_stream_bytes", "disk_max_stream_bytes"])
def test_the_server_reads_zero_and_minus_one_as_unlimited_for_the_other_fields(field):
    """accounts.go ``toUnlimited``: > 0 kept, anything else -1; we write 0 (unlimited) and expose none of them."""
    for value in (0, -1):
        assert jetstream_server_reading(JetStreamLimits(**ON, **{field: value}))[field] == -1
    assert jetstream_server_reading(JetStreamLimits(**ON, **{field: 7}))[field] == 7
    assert jetstream_tenant_limits(**ON, streams=5, consumer=50).to_json()[field] == 0


def test_the_legacy_encoding_was_unlimited():
    """What the issue saw: storage set, streams and consumers left at 0, read by the server as unlimited."""
    legacy = JetStreamLimits(mem_storage=0, disk_storage=256 << 20, streams=0, consumer=0)
    assert jetstream_server_reading(legacy)["streams"] == -1 and jetstream_server_reading(legacy)["consumer"] == -1


# ------------------------------------------------------------------------------------------------
# The property: what the server enforces is what the tenant asked for (or JetStream is off)
# ------------------------------------------------------------------------------------------------

limit = st.one_of(st.just(-1), st.just(0), st.integers(min_value=1, max_value=2**53))


@given(mem=limit, disk=limit, streams=limit, consumer=limit)
def test_property_the_server_enforces_the_tenants_meaning(mem, disk, streams, consumer):
    try:
        lim = jetstream_tenant_limits(mem_storage=mem, disk_storage=disk, streams=streams, consumer=consumer)
    except JwtError:
        assert consumer == 0 and streams != 0 and (mem, disk) != (0, 0)
        return
    read = jetstream_server_reading(lim)
    if streams == 0 or (mem, disk) == (0, 0):
        assert not lim.enabled and set(read.values()) == {0}
        return
    assert (read["mem_storage"], read["disk_storage"], read["streams"], read["consumer"]) == (
        mem, disk, streams, consumer)
