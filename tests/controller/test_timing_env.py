"""An operator tunes the controller's timing through ``VOE_<FIELD>``
variables; a typo must stop the start with the variable named."""
from __future__ import annotations

import pytest

from voe.controller.timing import Timing


def test_variables_override_their_fields_with_their_types(monkeypatch):
    monkeypatch.setenv("VOE_HEARTBEAT_INTERVAL", "0.5")
    monkeypatch.setenv("VOE_START_FAILURES", "5")
    timing = Timing.from_env()
    assert timing.heartbeat_interval == 0.5
    assert timing.start_failures == 5 and isinstance(timing.start_failures, int)
    assert timing.boot_timeout == Timing().boot_timeout


@pytest.mark.parametrize("variable, raw", [("VOE_BOOT_TIMEOUT", "ninety"), ("VOE_BMC_SLOTS", "6.5")])
def test_a_value_that_is_not_a_number_names_its_variable(monkeypatch, variable, raw):
    monkeypatch.setenv(variable, raw)
    with pytest.raises(ValueError, match=f"{variable}='{raw}' is not a .*number.*set it like {variable}="):
        Timing.from_env()
