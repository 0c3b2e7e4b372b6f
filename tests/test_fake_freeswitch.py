"""The fake ``freeswitch`` module has the real module's names and signatures, nothing more.

REAL is transcribed from the SWIG wrapper mod_python3 ships (FreeSWITCH 1.10,
src/mod/languages/mod_python3/freeswitch.py). ``*args`` there means the wrapper accepts
no keywords; the parameters are then those of switch_cpp.h, and the fake makes them
positional-only so a keyword call fails here as it would inside FreeSWITCH.
"""

from __future__ import annotations

import __future__
import inspect
import types

import freeswitch
import fsctl
import pytest

#: The names shared/docs/freeswitch.md documents, which are all fs-guard may use.
DOCUMENTED = {
    "consoleLog", "consoleCleanLog", "getGlobalVariable", "setGlobalVariable", "running", "msleep",
    "Session", "Event", "EventConsumer", "API", "Stream",
}
REAL = {
    "consoleLog": "(level_str, msg)",
    "consoleCleanLog": "(msg)",
    "getGlobalVariable": "(var_name)",
    "setGlobalVariable": "(var_name, var_val)",
    "running": "()",
    "msleep": "(ms)",
    "API.__init__": "(self, s=None)",
    "API.execute": "(self, command, data=None)",
    "API.executeString": "(self, command)",
    "API.getTime": "(self)",
    "Stream.__init__": "(self, s=None, /)",  # *args: Stream(), Stream(switch_stream_handle_t *)
    "Stream.read": "(self, len)",
    "Stream.write": "(self, data)",
    "Stream.raw_write": "(self, data, len)",
    "Stream.get_data": "(self)",
    "Event.__init__": "(self, type, subclass_name=None, /)",  # *args
    "Event.serialize": "(self, format=None)",
    "Event.getHeader": "(self, header_name)",
    "Event.getBody": "(self)",
    "Event.getType": "(self)",
    "Event.addBody": "(self, value)",
    "Event.addHeader": "(self, header_name, value)",
    "Event.delHeader": "(self, header_name)",
    "Event.fire": "(self)",
    "EventConsumer.__init__": "(self, event_name=None, subclass_name='', len=5000, /)",  # *args
    "EventConsumer.bind": "(self, event_name, subclass_name='', /)",  # *args
    "EventConsumer.pop": "(self, block=0, timeout=0)",  # timeout in ms
    "EventConsumer.cleanup": "(self)",
    "Session.__init__": "(self, uuid=None, a_leg=None, /)",  # *args: Session(uuid, a_leg)
    "Session.getVariable": "(self, var)",
    "Session.setVariable": "(self, var, val)",
    "Session.hangup": "(self, cause='normal_clearing', /)",  # *args
    "Session.hangupCause": "(self)",
    "Session.ready": "(self)",
    "Session.answered": "(self)",
    "Session.execute": "(self, app, data=None)",
    "Session.consoleLog": "(self, level_str, msg)",
}


def public(namespace: dict) -> dict:
    return {
        name: value for name, value in namespace.items()
        if not name.startswith("_")
        and not isinstance(value, (types.ModuleType, __future__._Feature))
    }


def test_the_fake_has_exactly_the_documented_public_names():
    assert set(public(vars(freeswitch))) == DOCUMENTED


def test_every_public_function_and_method_has_the_real_signature():
    found = {}
    for name, value in public(vars(freeswitch)).items():
        if inspect.isclass(value):
            for attr, member in vars(value).items():
                if inspect.isfunction(member) and (attr == "__init__" or not attr.startswith("_")):
                    found[f"{name}.{attr}"] = str(inspect.signature(member))
        else:
            found[name] = str(inspect.signature(value))
    assert found == REAL


def test_a_keyword_call_the_real_wrapper_refuses_fails_on_the_fake_too():
    with pytest.raises(TypeError):
        freeswitch.EventConsumer(event_name="CUSTOM")
    with pytest.raises(TypeError):
        freeswitch.Session().hangup(cause="CALL_REJECTED")


def test_pop_waits_at_most_timeout_milliseconds_and_returns_none_after_cleanup():
    consumer = freeswitch.EventConsumer("CUSTOM", "sofia::register_failure")
    assert consumer.pop(1, 1) is None
    freeswitch.Event("CUSTOM", "sofia::register_failure").fire()
    assert consumer.pop(1, 1).getHeader("event-subclass") == "sofia::register_failure"
    consumer.cleanup()
    assert consumer.pop(1, 0) is None and consumer.bind("CUSTOM", "x") == 0


def test_a_full_queue_drops_new_events_and_logs_as_freeswitch_does():
    consumer = freeswitch.EventConsumer("CUSTOM", "sofia::register_failure", 2)
    for _ in range(3):
        freeswitch.Event("CUSTOM", "sofia::register_failure").fire()
    assert fsctl.dropped() == 1 and fsctl.log_lines("err") == ["Cannot queue any more events.....\n"]
    assert consumer.pop() is not None and consumer.pop() is not None and consumer.pop() is None
