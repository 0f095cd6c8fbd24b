"""The venue dictionary: FIX44.xml plus the simulator's declared extensions."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tradeops.sim.venue_dictionary import DictionaryError, write_venue_dictionary

BASE = """<fix major='4' minor='4'>
 <header/><trailer/>
 <messages>
  <message name='MarketDataSnapshotFullRefresh' msgtype='W'><field name='MDReqID' required='N'/>
   <group name='NoMDEntries' required='Y'><field name='MDEntryType' required='Y'/></group>
  </message>
  <message name='MarketDataIncrementalRefresh' msgtype='X'>
   <component name='MDIncGrp' required='Y'/>
  </message>
  <message name='PositionReport' msgtype='AP'><field name='Symbol' required='Y'/></message>
 </messages>
 <components>
  <component name='MDIncGrp'>
   <group name='NoMDEntries' required='Y'><field name='MDUpdateAction' required='Y'/></group>
  </component>
 </components>
 <fields>
  <field number='83' name='RptSeq' type='INT'/>
  <field number='55' name='Symbol' type='STRING'/>
 </fields>
</fix>"""


def _names(element: ET.Element | None) -> list[str | None]:
    assert element is not None
    return [f.get("name") for f in element.findall("./field")]


def test_the_extensions_are_declared_where_the_simulator_sends_them(tmp_path: Path) -> None:
    base = tmp_path / "FIX44.xml"
    base.write_text(BASE, encoding="utf-8")
    root = ET.parse(write_venue_dictionary(base, tmp_path / "venue.xml")).getroot()

    numbers = {f.get("number") for f in root.iterfind("./fields/field")}
    assert {"9101", "9102", "9103", "83"} <= numbers
    assert "RptSeq" in _names(root.find("./messages/message[@msgtype='W']"))
    ap = _names(root.find("./messages/message[@msgtype='AP']"))
    assert ap[-3:] == ["VenueAvgPx", "VenueRealizedPnL", "VenueUnrealizedPnL"]
    x_entries = root.find("./components/component[@name='MDIncGrp']/group[@name='NoMDEntries']")
    assert "RptSeq" in _names(x_entries)


def test_a_base_without_the_extended_message_is_refused(tmp_path: Path) -> None:
    base = tmp_path / "FIX44.xml"
    base.write_text(BASE.replace("msgtype='AP'", "msgtype='AQ'"), encoding="utf-8")
    with pytest.raises(DictionaryError, match="no message AP"):
        write_venue_dictionary(base, tmp_path / "venue.xml")
