"""The backbone [model] fields declared once (engine/nn/backbones.py: @backbone_fields) and placed
in each diffusion family's section where its Model form shows them: `backbone`, the UNet's and the
label fields right after `family`, the DiT's as one block under the "DiT" heading at the end (flow
matching's: before its reflow fields)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pytest

from engine.core.families import family_spec
from engine.core.schema import Section, opt
from engine.nn.backbones import backbone_fields, dit_fields, unet_fields

UNET = [name for name, _, _ in unet_fields()]
DIT = [name for name, _, _ in dit_fields()]
FAMILIES = {"ddpm": None, "edm": None, "flow_matching": "reflow"}   # family -> the field after the DiT's


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_each_diffusion_section_has_the_backbone_fields_where_its_form_shows_them(family):
    names = [f.name for f in dataclasses.fields(family_spec(family).config)]
    assert names[:1 + len(UNET)] == ["family", *UNET]
    at = names.index(DIT[0])
    assert names[at:at + len(DIT)] == DIT
    after = FAMILIES[family]
    assert names[at + len(DIT):at + len(DIT) + 1] == ([after] if after else [])


def test_the_sections_share_one_declaration_with_fields_of_their_own():
    sections = [family_spec(family).config for family in sorted(FAMILIES)]
    fields = [{f.name: f for f in dataclasses.fields(s)} for s in sections]
    for name in UNET + DIT:
        first = fields[0][name]
        for other in fields[1:]:
            assert other[name].metadata == first.metadata and other[name] is not first
    # a list default is built afresh for each config, not shared between sections or objects
    a, b = sections[0](), sections[1]()
    assert a.channel_mults == b.channel_mults and a.channel_mults is not b.channel_mults


def test_a_section_without_the_named_fields_is_refused_when_it_is_declared():
    with pytest.raises(TypeError, match="'family'"):
        @dataclass
        @backbone_fields()
        class NoFamily(Section):
            steps: int = opt(1, "Steps.")
    with pytest.raises(TypeError, match="'reflow'"):
        @dataclass
        @backbone_fields(dit_before="reflow")
        class NoReflow(Section):
            family: str = opt("x", "Model family.")
