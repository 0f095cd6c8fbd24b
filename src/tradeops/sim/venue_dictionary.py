"""The simulator's venue data dictionary: a FIX 4.4 dictionary plus its extensions.

The extensions (``FIX44-venue-extensions.xml``) are the fields the simulator
sends only with ``fix.venue_extensions: true``. :func:`write_venue_dictionary`
merges them into a QuickFIX-format dictionary (QuickFIX's own ``FIX44.xml``)
so that a counterparty validating every message accepts them.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

EXTENSIONS = Path(__file__).with_name("FIX44-venue-extensions.xml")


class DictionaryError(ValueError):
    """The base dictionary cannot take the extensions."""


def _message(root: ET.Element, msg_type: str) -> ET.Element:
    for message in root.iterfind("./messages/message"):
        if message.get("msgtype") == msg_type:
            return message
    raise DictionaryError(f"the base dictionary has no message {msg_type}")


def _group(root: ET.Element, parent: ET.Element, name: str, depth: int = 0) -> ET.Element | None:
    """The group ``name`` in ``parent``, or in a component it uses (QuickFIX nests them)."""
    found = parent.find(f"./group[@name='{name}']")
    if found is not None or depth > 8:
        return found
    for ref in parent.iterfind("./component"):
        component = root.find(f"./components/component[@name='{ref.get('name')}']")
        if component is not None:
            found = _group(root, component, name, depth + 1)
            if found is not None:
                return found
    for group in parent.iterfind("./group"):
        found = _group(root, group, name, depth + 1)
        if found is not None:
            return found
    return None


def merge_extensions(root: ET.Element, ext: ET.Element) -> ET.Element:
    """Add the fields and message members of ``ext`` to the dictionary ``root``."""
    fields = root.find("./fields")
    if fields is None:
        raise DictionaryError("the base dictionary has no <fields>")
    known = {f.get("name") for f in fields}
    for field in ext.iterfind("./fields/field"):
        if field.get("name") not in known:
            fields.append(ET.Element("field", dict(field.attrib)))
            known.add(field.get("name"))
    for spec in ext.iterfind("./message"):
        target = _message(root, str(spec.get("msgtype")))
        if spec.get("group"):
            group = _group(root, target, str(spec.get("group")))
            if group is None:
                raise DictionaryError(f"message {spec.get('msgtype')} has no {spec.get('group')}")
            target = group
        present = {f.get("name") for f in target.findall("./field")}
        for member in spec.iterfind("./field"):
            name = member.get("name")
            if name not in known:
                raise DictionaryError(f"extension field {name} is not defined")
            if name not in present:
                target.append(ET.Element("field", {"name": str(name), "required": "N"}))
    return root


def write_venue_dictionary(base: str | Path, out: str | Path) -> Path:
    """Write ``base`` (a QuickFIX FIX44.xml) with the venue extensions to ``out``."""
    # Trusted input: our own file and the FIX engine's installed dictionary.
    tree = ET.parse(base)  # noqa: S314
    merge_extensions(tree.getroot(), ET.parse(EXTENSIONS).getroot())  # noqa: S314
    out_path = Path(out)
    tree.write(out_path, encoding="UTF-8", xml_declaration=True)
    return out_path
