"""How long a call on an open IPMI session waits before it goes again on a
new login: short while the controller is quiet (a BMC that restarted drops
its sessions silently), bounded whatever its BMCs did lately, and the whole
timeout while many calls are in flight (a group start)."""

from __future__ import annotations

from voe.drivers.power.ipmi import LOGIN_PATIENCE, MAX_PATIENCE, MIN_PATIENCE, QUIET_CALLS, _Pace


def test_a_quiet_controller_gives_an_open_session_a_short_bounded_patience():
    pace = _Pace()
    assert pace.patience(3.0) == MIN_PATIENCE
    for _ in range(50):  # open sessions answering slowly (a loaded BMC)
        pace.began()
        pace.ended(0.9)
    assert MIN_PATIENCE < pace.patience(3.0) <= MAX_PATIENCE


def test_calls_without_an_answer_do_not_move_the_patience():
    pace = _Pace()
    for _ in range(50):  # given up, or logged in first: the driver reports no answer time
        pace.began()
        pace.ended(None)
    assert pace.patience(3.0) == MIN_PATIENCE


def test_a_busy_controller_waits_the_whole_timeout():
    pace = _Pace()
    for _ in range(QUIET_CALLS + 1):
        pace.began()
    assert pace.patience(3.0) == 3.0


def test_a_silent_login_is_made_again_while_quiet_but_never_past_the_timeout():
    pace = _Pace()
    assert pace.login_patience(3.0) == LOGIN_PATIENCE
    assert pace.login_patience(1.5) == 1.5  # the last try gets what is left
    for _ in range(QUIET_CALLS + 1):
        pace.began()
    assert pace.login_patience(3.0) == 3.0  # under load a login is never given up early
