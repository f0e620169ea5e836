"""``manage.py metering_writer``: partitions are checked before anything starts."""

from __future__ import annotations

import pytest
from django.core.management import CommandError, call_command


@pytest.mark.parametrize("partitions", ["9", "x", "-1"])
def test_partitions_outside_the_stream_are_refused(partitions, settings):
    settings.METERING_PARTITIONS = 4
    with pytest.raises(CommandError, match="from 0 to 3"):
        call_command("metering_writer", "--partitions", partitions, "--wait", "0")
