"""Reading the release the running process reports on its status URL."""

from __future__ import annotations

import json
import math
import threading

import pytest

from tradeops.process.running import Running, read_running, wait_for_release

from .conftest import StatusServer, closed_url


def test_a_json_object_is_read(status_server: StatusServer) -> None:
    status_server.answer(
        release_id="r7", version="1.7", pid=4242, config_sha256="c" * 64, extra="ignored"
    )
    running = read_running(status_server.url)
    assert running == Running("r7", "1.7", 4242, None, "c" * 64)
    assert running.as_dict() == {
        "release_id": "r7",
        "version": "1.7",
        "pid": 4242,
        "config_sha256": "c" * 64,
        "error": None,
    }


def test_a_process_that_does_not_report_its_config_has_none(
    status_server: StatusServer,
) -> None:
    status_server.answer(release_id="r7", version="1.7", pid=4242, config_sha256=7)
    assert read_running(status_server.url).config_sha256 is None


def test_non_string_fields_are_stringified_and_a_bad_pid_dropped(
    status_server: StatusServer,
) -> None:
    status_server.answer(release_id=20240101, version=2.5, pid="123")
    running = read_running(status_server.url)
    assert (running.release_id, running.version, running.pid) == ("20240101", "2.5", None)
    assert running.error is None


def test_missing_fields_are_none_without_an_error(status_server: StatusServer) -> None:
    status_server.answer(healthy=True)
    assert read_running(status_server.url) == Running(None, None, None, None)


def test_a_closed_port_sets_the_error() -> None:
    url = closed_url()
    running = read_running(url, timeout_s=2.0)
    assert (running.release_id, running.version, running.pid) == (None, None, None)
    assert running.error is not None
    assert running.error.startswith(f"{url}: ")
    assert "refused" in running.error.lower()


def test_a_malformed_url_sets_the_error() -> None:
    running = read_running("not a url")
    assert running.release_id is None
    assert running.error is not None
    assert running.error.startswith("not a url: ")


def test_an_http_error_sets_the_error(status_server: StatusServer) -> None:
    status_server.raw(json.dumps({"release_id": "r1", "pid": 1}).encode(), status=503)
    running = read_running(status_server.url)
    assert running.release_id is None
    assert running.error is not None
    assert status_server.url in running.error


def test_non_json_sets_the_error(status_server: StatusServer) -> None:
    status_server.raw(b"<html>up</html>")
    running = read_running(status_server.url)
    assert running.release_id is None
    assert running.error is not None
    assert "not JSON" in running.error


@pytest.mark.parametrize("body", [b'["r1", 1]', b'"r1"', b"42", b"null"])
def test_json_that_is_not_an_object_sets_the_error(
    status_server: StatusServer, body: bytes
) -> None:
    status_server.raw(body)
    running = read_running(status_server.url)
    assert running == Running(None, None, None, f"{status_server.url}: not a JSON object")


def test_wait_returns_at_once_on_a_match(status_server: StatusServer) -> None:
    status_server.answer(release_id="r2", version="1.2", pid=500)
    matched, running = wait_for_release(status_server.url, "r2", timeout_s=5.0)
    assert matched
    assert running == Running("r2", "1.2", 500, None)
    assert status_server.hits == 1


def test_wait_follows_the_release_switch(status_server: StatusServer) -> None:
    status_server.answer(release_id="r1", pid=500)
    switched = threading.Event()

    def switch() -> None:
        # Switch only once the waiter has seen the old release at least twice.
        for _attempt in range(200):
            if status_server.hits >= 2:
                break
            switched.wait(0.02)
        status_server.answer(release_id="r2", pid=501)
        switched.set()

    switcher = threading.Thread(target=switch, daemon=True)
    switcher.start()
    try:
        matched, running = wait_for_release(
            status_server.url, "r2", timeout_s=20.0, interval_s=0.05
        )
    finally:
        switcher.join(timeout=10)
    assert switched.is_set()
    assert matched
    assert (running.release_id, running.pid) == ("r2", 501)
    assert status_server.hits >= 3


def test_not_pid_refuses_the_old_process(status_server: StatusServer) -> None:
    # The old process already reports the target release (e.g. the file was changed in
    # place): only an answer from another pid proves the restart.
    status_server.answer(release_id="r2", pid=500)
    matched, running = wait_for_release(
        status_server.url, "r2", timeout_s=0.3, not_pid=500, interval_s=0.05
    )
    assert not matched
    assert (running.release_id, running.pid) == ("r2", 500)


def test_not_pid_accepts_the_new_process(status_server: StatusServer) -> None:
    status_server.answer(release_id="r2", pid=501)
    matched, running = wait_for_release(status_server.url, "r2", timeout_s=5.0, not_pid=500)
    assert matched
    assert running.pid == 501


def test_timeout_returns_the_last_answer(status_server: StatusServer) -> None:
    status_server.answer(release_id="r1", version="1.1", pid=500)
    matched, running = wait_for_release(status_server.url, "r2", timeout_s=0.5, interval_s=0.1)
    assert not matched
    assert running == Running("r1", "1.1", 500, None)
    # Bounded by count, too: never more polls than the timeout allows.
    assert 1 <= status_server.hits <= math.ceil(0.5 / 0.1) + 1


def test_timeout_on_a_process_that_does_not_answer() -> None:
    url = closed_url()
    matched, running = wait_for_release(url, "r2", timeout_s=0.3, interval_s=0.1)
    assert not matched
    assert running.release_id is None
    assert running.error is not None
    assert running.error.startswith(url)


@pytest.mark.parametrize("timeout_s", [0.0, -3.0])
def test_a_zero_or_negative_timeout_still_reads_once(
    status_server: StatusServer, timeout_s: float
) -> None:
    status_server.answer(release_id="r1", pid=500)
    assert wait_for_release(status_server.url, "r1", timeout_s)[0]
    status_server.hits = 0
    matched, running = wait_for_release(status_server.url, "r2", timeout_s)
    assert not matched
    assert running.release_id == "r1"
    assert status_server.hits == 1


def test_gave_up_ends_the_wait_early(status_server: StatusServer) -> None:
    asked: list[int] = []

    def gave_up() -> str | None:
        asked.append(1)
        return "supervisord: FATAL" if len(asked) == 2 else None

    matched, last = wait_for_release(status_server.url, "r2", 600, gave_up=gave_up)
    assert not matched
    assert last.release_id == "r1"
    assert len(asked) == 2  # asked every GAVE_UP_EVERY polls, stopped at the first reason
